"""The slow, obvious NumPy oracle for poolkit's pooling engine.

Every function here is written from the definitions in issue 2 -- explicit Python loops over the
output positions and over the taps of each window -- and shares no code with ``poolkit``.  It is
meant to be read, not to be fast: use it on small arrays only.  It is itself checked against
PyTorch in ``peers/test_torch.py``.

Conventions (the same as the public API):

* ``axes`` is the tuple of pooled axes (any order, negative allowed); every other axis is a batch
  axis.  ``kernel``, ``stride``, ``dilation`` and ``pads`` follow the order of ``axes``.
* ``pads`` is a sequence of ``(before, after)`` pairs (plain ints mean symmetric padding).
* Flat indices are row-major over the pooled axes taken in ascending axis order, over the
  *unpadded* input (PyTorch's per-plane index).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "ref_output_size",
    "ref_output_shape",
    "ref_resolve_padding",
    "ref_max_pool",
    "ref_avg_pool",
    "ref_lp_pool",
    "ref_max_pool_backward",
    "ref_avg_pool_backward",
    "ref_lp_pool_backward",
    "ref_max_unpool",
    "ref_windows_ok",
]


# ---------------------------------------------------------------------------------------------
# geometry, from the definitions
# ---------------------------------------------------------------------------------------------


def _tup(v, n):
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    assert len(v) == n
    return v


def _pairs(pads, n):
    if isinstance(pads, (int, np.integer)):
        return [(int(pads), int(pads))] * n
    out = []
    for p in pads:
        if isinstance(p, (int, np.integer)):
            out.append((int(p), int(p)))
        else:
            b, a = p
            out.append((int(b), int(a)))
    assert len(out) == n
    return out


def ref_output_size(L, k, s, pb, pa, d, ceil_mode):
    """PyTorch ``pooling_output_shape_pad_lr``: floor/ceil((L+pb+pa-d*(k-1)-1)/s) + 1, and in ceil
    mode the last window is dropped if it starts at or past ``L + pb`` (i.e. in the right padding
    or beyond)."""
    num = L + pb + pa - d * (k - 1) - 1
    if ceil_mode:
        out = -((-num) // s) + 1  # exact integer ceil division
    else:
        out = num // s + 1
    if ceil_mode and out > 0 and (out - 1) * s >= L + pb:
        out -= 1
    return out


def _same(L, k, s, d, lower):
    out = -(-L // s)  # ceil(L / s)
    total = max((out - 1) * s + d * (k - 1) + 1 - L, 0)
    if lower:
        return (total - total // 2, total // 2)
    return (total // 2, total - total // 2)


def ref_resolve_padding(input_shape, kernel, stride=None, padding=0, dilation=1, axes=None):
    """Explicit (before, after) pairs, one per pooled axis in the order of ``axes``.

    ``"same"`` is TF/ONNX SAME_UPPER (odd cell at the end), ``"same_lower"`` puts it at the start.
    """
    nd = len(input_shape)
    if axes is None:
        axes = tuple(range(nd - len(kernel), nd))
    n = len(axes)
    k = _tup(kernel, n)
    s = k if stride is None else _tup(stride, n)
    d = _tup(dilation, n)
    L = [input_shape[a] for a in axes]
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in range(n))
        lower = {"same": False, "same_lower": True}[padding]
        return tuple(_same(L[i], k[i], s[i], d[i], lower) for i in range(n))
    return tuple(_pairs(padding, n))


def _setup(x, kernel, stride, pads, dilation, ceil_mode, axes):
    """Per-axis parameters, put in ascending axis order; x with the pooled axes moved last."""
    x = np.asarray(x)
    nd = x.ndim
    axes = tuple(int(a) % nd for a in axes)
    n = len(axes)
    k = _tup(kernel, n)
    s = k if stride is None else _tup(stride, n)
    d = _tup(dilation, n)
    if isinstance(pads, str):
        pads = ref_resolve_padding(x.shape, k, s, pads, d, axes)
    p = _pairs(pads, n)
    order = sorted(range(n), key=lambda i: axes[i])
    sax = [axes[i] for i in order]
    geo = []
    for i in order:
        L = x.shape[axes[i]]
        o = ref_output_size(L, k[i], s[i], p[i][0], p[i][1], d[i], ceil_mode)
        geo.append(dict(L=L, k=k[i], s=s[i], d=d[i], pb=p[i][0], pa=p[i][1], o=o))
    dest = list(range(nd - n, nd))
    xt = np.moveaxis(x, sax, dest)
    return xt, sax, dest, geo


def _finish(out_t, sax, dest):
    return np.moveaxis(out_t, dest, sax)


def _taps(geo, opos):
    """All taps of the window at output position ``opos``, in row-major window order.

    Yields ``(position, inside_input, inside_padded_extent)`` for each tap.
    """
    ranges = [range(g["k"]) for g in geo]
    for js in itertools.product(*ranges):
        pos = []
        inside = True
        in_ext = True
        for g, o, j in zip(geo, opos, js):
            q = o * g["s"] - g["pb"] + j * g["d"]
            pos.append(q)
            if not (0 <= q < g["L"]):
                inside = False
            if not (-g["pb"] <= q < g["L"] + g["pa"]):
                in_ext = False
        yield tuple(pos), inside, in_ext


def ref_windows_ok(shape, kernel, stride, pads, dilation, ceil_mode, axes):
    """True when the output is non-empty on every pooled axis and every window holds >= 1 input
    cell (the geometries the engine must accept)."""
    n = len(axes)
    nd = len(shape)
    axes = tuple(a % nd for a in axes)
    k = _tup(kernel, n)
    s = k if stride is None else _tup(stride, n)
    d = _tup(dilation, n)
    if isinstance(pads, str):
        pads = ref_resolve_padding(shape, k, s, pads, d, axes)
    p = _pairs(pads, n)
    for i, a in enumerate(axes):
        L = shape[a]
        o = ref_output_size(L, k[i], s[i], p[i][0], p[i][1], d[i], ceil_mode)
        if o <= 0:
            return False
        for w in range(o):
            if not any(0 <= w * s[i] - p[i][0] + j * d[i] < L for j in range(k[i])):
                return False
    return True


def _flat(pos, geo):
    f = 0
    for q, g in zip(pos, geo):
        f = f * g["L"] + q
    return f


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _batch_view(xt, n):
    """xt (pooled axes last) as (B, *pooled) plus the batch shape."""
    bshape = xt.shape[: xt.ndim - n]
    B = int(np.prod(bshape, dtype=np.int64))
    return xt.reshape((B,) + xt.shape[xt.ndim - n :]), bshape


# ---------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------


def ref_max_pool(x, kernel, stride, pads, dilation, ceil_mode, axes):
    """(out, indices): the max of the valid taps of every window, and the flat index of the winner.

    Padded cells never take part.  Ties go to the first maximum in row-major window order; a NaN
    wins over everything and the first NaN's index is reported.
    """
    x = np.asarray(x)
    xt, sax, dest, geo = _setup(x, kernel, stride, pads, dilation, ceil_mode, axes)
    n = len(geo)
    xb, bshape = _batch_view(xt, n)
    outs = tuple(g["o"] for g in geo)
    out = np.zeros((xb.shape[0],) + outs, dtype=x.dtype)
    idx = np.zeros((xb.shape[0],) + outs, dtype=np.int64)
    isfloat = x.dtype.kind == "f"
    for b in range(xb.shape[0]):
        for opos in itertools.product(*[range(o) for o in outs]):
            best = None
            best_i = -1
            for pos, inside, _ in _taps(geo, opos):
                if not inside:
                    continue
                v = xb[(b,) + pos]
                if best is None:
                    best, best_i = v, _flat(pos, geo)
                    continue
                if isfloat and np.isnan(best):
                    continue
                if (isfloat and np.isnan(v)) or v > best:
                    best, best_i = v, _flat(pos, geo)
            assert best is not None, "window without an input cell"
            out[(b,) + opos] = best
            idx[(b,) + opos] = best_i
    out = out.reshape(bshape + outs)
    idx = idx.reshape(bshape + outs)
    return _finish(out, sax, dest), _finish(idx, sax, dest)


def _divisor(geo, opos, count_include_pad, divisor_override):
    if divisor_override is not None:
        return divisor_override
    cnt = 0
    for _, inside, in_ext in _taps(geo, opos):
        if count_include_pad:
            cnt += in_ext
        else:
            cnt += inside
    return cnt


def _float_windows(x, kernel, stride, pads, dilation, ceil_mode, axes, value):
    """``value(taps, geo, opos)`` of every window, where ``taps`` lists the window's valid input
    values as Python floats; float64, returned in x's float dtype (float64 for ints)."""
    x = np.asarray(x)
    rdt = _float_dtype(x.dtype)
    xt, sax, dest, geo = _setup(x, kernel, stride, pads, dilation, ceil_mode, axes)
    xb, bshape = _batch_view(xt, len(geo))
    outs = tuple(g["o"] for g in geo)
    out = np.zeros((xb.shape[0],) + outs, dtype=np.float64)
    for b in range(xb.shape[0]):
        for opos in itertools.product(*[range(o) for o in outs]):
            taps = [float(xb[(b,) + pos]) for pos, inside, _ in _taps(geo, opos) if inside]
            out[(b,) + opos] = value(taps, geo, opos)
    out = out.reshape(bshape + outs)
    return _finish(out, sax, dest).astype(rdt)


def ref_avg_pool(x, kernel, stride, pads, dilation, ceil_mode, axes, count_include_pad=True,
                 divisor_override=None):
    """Sum of the valid taps divided by the divisor: ``divisor_override`` if given, else the number
    of taps inside the padded extent ``[-pb, L + pa)`` (count_include_pad) or inside the input.
    Computed with exact float64 sums (math.fsum); result in x's float dtype, float64 for ints."""
    return _float_windows(x, kernel, stride, pads, dilation, ceil_mode, axes,
                          lambda taps, geo, opos: math.fsum(taps) / _divisor(geo, opos, count_include_pad,
                                                                             divisor_override))


def ref_lp_pool(x, p, kernel, stride, pads, dilation, ceil_mode, axes):
    """``(sum |x|^p) ** (1/p)`` over the valid taps of every window (padding counts as zeros)."""
    p = float(p)
    return _float_windows(x, kernel, stride, pads, dilation, ceil_mode, axes,
                          lambda taps, geo, opos: math.fsum([abs(v) ** p for v in taps]) ** (1.0 / p))


# ---------------------------------------------------------------------------------------------
# backward (gradient of sum(g * op(x)) with respect to x)
# ---------------------------------------------------------------------------------------------


def _grad_setup(g, x, kernel, stride, pads, dilation, ceil_mode, axes):
    x = np.asarray(x)
    xt, sax, dest, geo = _setup(x, kernel, stride, pads, dilation, ceil_mode, axes)
    n = len(geo)
    gt = np.moveaxis(np.asarray(g), sax, dest)
    outs = tuple(g_["o"] for g_ in geo)
    assert gt.shape == xt.shape[: xt.ndim - n] + outs, (gt.shape, outs)
    xb, bshape = _batch_view(xt, n)
    gb = gt.reshape((xb.shape[0],) + outs)
    return x, xb, gb, bshape, geo, sax, dest, outs


def ref_max_pool_backward(g, x, kernel, stride, pads, dilation, ceil_mode, axes):
    """Each grad_output value is added to the input cell that won its window."""
    x = np.asarray(x)
    _, idx = ref_max_pool(x, kernel, stride, pads, dilation, ceil_mode, axes)
    x, xb, gb, bshape, geo, sax, dest, outs = _grad_setup(g, x, kernel, stride, pads, dilation, ceil_mode, axes)
    it = np.moveaxis(idx, sax, dest).reshape(gb.shape)
    S = tuple(g_["L"] for g_ in geo)
    gx = np.zeros(xb.shape, dtype=np.float64)
    for b in range(xb.shape[0]):
        for opos in itertools.product(*[range(o) for o in outs]):
            pos = np.unravel_index(int(it[(b,) + opos]), S)
            gx[(b,) + tuple(int(q) for q in pos)] += float(gb[(b,) + opos])
    gx = gx.reshape(bshape + S)
    return _finish(gx, sax, dest).astype(_float_dtype(x.dtype))


def ref_avg_pool_backward(g, x, kernel, stride, pads, dilation, ceil_mode, axes, count_include_pad=True,
                          divisor_override=None):
    """Each grad_output value, divided by its window's divisor, is added to every valid tap."""
    x, xb, gb, bshape, geo, sax, dest, outs = _grad_setup(g, x, kernel, stride, pads, dilation, ceil_mode, axes)
    gx = np.zeros(xb.shape, dtype=np.float64)
    for b in range(xb.shape[0]):
        for opos in itertools.product(*[range(o) for o in outs]):
            div = _divisor(geo, opos, count_include_pad, divisor_override)
            share = float(gb[(b,) + opos]) / div
            for pos, inside, _ in _taps(geo, opos):
                if inside:
                    gx[(b,) + pos] += share
    S = tuple(g_["L"] for g_ in geo)
    gx = gx.reshape(bshape + S)
    return _finish(gx, sax, dest).astype(_float_dtype(x.dtype))


def ref_lp_pool_backward(g, x, p, kernel, stride, pads, dilation, ceil_mode, axes):
    """d y / d x_t = sign(x_t) |x_t|^(p-1) y^(1-p) for every valid tap t, 0 where y == 0
    (and 0 at x_t == 0)."""
    x = np.asarray(x)
    p = float(p)
    y = ref_lp_pool(x.astype(np.float64), p, kernel, stride, pads, dilation, ceil_mode, axes)
    x, xb, gb, bshape, geo, sax, dest, outs = _grad_setup(g, x, kernel, stride, pads, dilation, ceil_mode, axes)
    yb = np.moveaxis(y, sax, dest).reshape(gb.shape)
    gx = np.zeros(xb.shape, dtype=np.float64)
    for b in range(xb.shape[0]):
        for opos in itertools.product(*[range(o) for o in outs]):
            yv = float(yb[(b,) + opos])
            if yv == 0.0:
                continue
            gv = float(gb[(b,) + opos])
            for pos, inside, _ in _taps(geo, opos):
                if not inside:
                    continue
                xv = float(xb[(b,) + pos])
                if xv == 0.0:
                    continue
                gx[(b,) + pos] += math.copysign(abs(xv) ** (p - 1.0), xv) * yv ** (1.0 - p) * gv
    S = tuple(g_["L"] for g_ in geo)
    gx = gx.reshape(bshape + S)
    return _finish(gx, sax, dest).astype(_float_dtype(x.dtype))


def ref_max_unpool(values, indices, output_size, axes=None):
    """A zero array whose pooled axes have ``output_size`` (in the order of ``axes``; default the
    last ``len(output_size)`` axes), with each value written at its flat index (row-major over the
    pooled axes in ascending axis order)."""
    values = np.asarray(values)
    indices = np.asarray(indices)
    assert values.shape == indices.shape
    nd = values.ndim
    n = len(output_size)
    if axes is None:
        axes = tuple(range(nd - n, nd))
    axes = tuple(a % nd for a in axes)
    shape = list(values.shape)
    for a, sz in zip(axes, output_size):
        shape[a] = int(sz)
    out = np.zeros(shape, dtype=values.dtype)
    sax = sorted(axes)
    pooled_sizes = tuple(shape[a] for a in sax)
    batch_axes = [a for a in range(nd) if a not in axes]
    for vpos in np.ndindex(*values.shape):
        f = int(indices[vpos])
        assert 0 <= f < int(np.prod(pooled_sizes))
        coords = np.unravel_index(f, pooled_sizes)
        opos = list(vpos)
        for a, c in zip(sax, coords):
            opos[a] = int(c)
        for a in batch_axes:
            opos[a] = vpos[a]
        out[tuple(opos)] = values[vpos]
    return out


def ref_output_shape(input_shape, kernel, stride, pads, dilation, ceil_mode, axes):
    nd = len(input_shape)
    axes = tuple(a % nd for a in axes)
    n = len(axes)
    k = _tup(kernel, n)
    s = k if stride is None else _tup(stride, n)
    d = _tup(dilation, n)
    if isinstance(pads, str):
        pads = ref_resolve_padding(input_shape, k, s, pads, d, axes)
    p = _pairs(pads, n)
    shape = list(input_shape)
    for i, a in enumerate(axes):
        shape[a] = ref_output_size(input_shape[a], k[i], s[i], p[i][0], p[i][1], d[i], ceil_mode)
    return tuple(shape)
