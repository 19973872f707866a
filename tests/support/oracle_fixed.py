"""The slow, obvious NumPy oracle for poolkit's fixed-length family (issue 3).

Written from the definitions -- PyTorch's adaptive bins and fractional intervals, torchvision /
ONNX ``MaxRoiPool``, ONNX ``RoiAlign`` -- with explicit Python loops over outputs and window taps,
sharing no code with ``poolkit``.  Small arrays only.

Conventions: pooled axes are given in ascending order; flat indices are row-major over the pooled
axes of the input (PyTorch's per-plane index); the first maximum wins and NaN beats every number.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _planes(x, axes):
    """Iterate over the batch positions: yields (index tuple with slices at the pooled axes)."""
    batch_axes = [a for a in range(x.ndim) if a not in axes]
    for pos in itertools.product(*[range(x.shape[a]) for a in batch_axes]):
        idx = [slice(None)] * x.ndim
        for a, p in zip(batch_axes, pos):
            idx[a] = p
        yield tuple(idx)


def _first_max(values, positions):
    """First maximum of a list (NaN wins, the first NaN): (value, position)."""
    best, best_p = None, None
    for v, p in zip(values, positions):
        if best is None:
            best, best_p = v, p
        elif math.isnan(best):
            continue
        elif math.isnan(v) or v > best:
            best, best_p = v, p
    return best, best_p


def _flat(pos, sizes):
    f = 0
    for p, s in zip(pos, sizes):
        f = f * s + p
    return f


def _window_pool(x, axes, windows_per_axis, reduce):
    """Generic box pooling: ``windows_per_axis[j]`` is a list of ranges along ``axes[j]`` (the same
    for every plane).  ``reduce(values, positions)`` returns (value, flat index or None)."""
    out_shape = list(x.shape)
    for a, w in zip(axes, windows_per_axis):
        out_shape[a] = len(w)
    sizes = [x.shape[a] for a in axes]
    out = np.empty(out_shape, dtype=object)
    idx = np.empty(out_shape, dtype=object)
    for plane in _planes(x, axes):
        xp = x[plane]
        op = out[plane]
        ip = idx[plane]
        for opos in itertools.product(*[range(len(w)) for w in windows_per_axis]):
            taps = list(itertools.product(*[windows_per_axis[j][opos[j]] for j in range(len(axes))]))
            vals = [xp[t].item() if hasattr(xp[t], "item") else xp[t] for t in taps]
            v, p = reduce(vals, taps)
            op[opos] = v
            ip[opos] = None if p is None else _flat(p, sizes)
    return out, idx


# ---------------------------------------------------------------------------------------------
# adaptive, global, spatial pyramid
# ---------------------------------------------------------------------------------------------


def ref_adaptive_bins(in_size, out_size):
    """PyTorch: start = floor(i * In / Out), end = ceil((i + 1) * In / Out)."""
    return [range((i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)) for i in range(out_size)]


def ref_adaptive_max(x, out_sizes, axes):
    """Values (dtype of x) and int64 indices; ``out_sizes`` may hold None (keep the axis)."""
    x = np.asarray(x)
    wins = [ref_adaptive_bins(x.shape[a], x.shape[a] if o is None else o) for a, o in zip(axes, out_sizes)]
    out, idx = _window_pool(x, axes, wins, _first_max)
    return out.astype(x.dtype), idx.astype(np.int64)


def ref_adaptive_avg(x, out_sizes, axes):
    x = np.asarray(x)
    wins = [ref_adaptive_bins(x.shape[a], x.shape[a] if o is None else o) for a, o in zip(axes, out_sizes)]
    out, _ = _window_pool(x.astype(np.float64), axes, wins, lambda v, p: (math.fsum(v) / len(v), None))
    return out.astype(np.float64)


def ref_adaptive_max_backward(g, x, out_sizes, axes):
    x = np.asarray(x)
    _, idx = ref_adaptive_max(x, out_sizes, axes)
    gx = np.zeros(x.shape, dtype=np.float64)
    sizes = [x.shape[a] for a in axes]
    for plane in _planes(x, axes):
        gp, ip, gxp = g[plane], idx[plane], gx[plane]
        for opos in itertools.product(*[range(s) for s in gp.shape]):
            gxp[np.unravel_index(ip[opos], sizes)] += gp[opos]
    return gx


def ref_adaptive_avg_backward(g, x, out_sizes, axes):
    x = np.asarray(x)
    wins = [ref_adaptive_bins(x.shape[a], x.shape[a] if o is None else o) for a, o in zip(axes, out_sizes)]
    gx = np.zeros(x.shape, dtype=np.float64)
    for plane in _planes(x, axes):
        gp, gxp = g[plane], gx[plane]
        for opos in itertools.product(*[range(len(w)) for w in wins]):
            taps = list(itertools.product(*[wins[j][opos[j]] for j in range(len(axes))]))
            for t in taps:
                gxp[t] += gp[opos] / len(taps)
    return gx


def ref_spp(x, levels, mode, axes):
    parts = []
    for level in levels:
        sizes = [level] * len(axes)
        out = ref_adaptive_max(x, sizes, axes)[0] if mode == "max" else ref_adaptive_avg(x, sizes, axes)
        parts.append(out.reshape(x.shape[0], -1))
    return np.concatenate(parts, axis=1)


# ---------------------------------------------------------------------------------------------
# masked pooling: per-row slicing
# ---------------------------------------------------------------------------------------------


def ref_masked_pool(x, mask, mode, axis, fill):
    """Row by row: keep the valid steps of row n with boolean indexing, reduce them with NumPy."""
    x = np.asarray(x)
    rows = []
    for n in range(x.shape[0]):
        row = np.take(x[n], np.flatnonzero(mask[n]), axis=axis - 1)
        if row.shape[axis - 1] == 0:
            rows.append(np.full(np.delete(np.array(x.shape[1:]), axis - 1), fill, dtype=np.float64))
            continue
        r64 = row.astype(np.float64)
        rows.append({"max": np.max, "min": np.min, "sum": np.sum, "mean": np.mean}[mode](r64, axis=axis - 1))
    return np.stack(rows) if rows else np.zeros((0,) + tuple(np.delete(np.array(x.shape[1:]), axis - 1)))


def ref_masked_pool_backward(g, x, mask, mode, axis):
    x = np.asarray(x)
    gx = np.zeros(x.shape, dtype=np.float64)
    xm = np.moveaxis(x, axis, 1)
    gm = np.moveaxis(gx, axis, 1)
    for n in range(x.shape[0]):
        valid = list(np.flatnonzero(mask[n]))
        if not valid:
            continue
        for feat in itertools.product(*[range(s) for s in xm.shape[2:]]):
            gv = g[(n,) + feat]
            if mode in ("sum", "mean"):
                for t in valid:
                    gm[(n, t) + feat] += gv / (len(valid) if mode == "mean" else 1)
            else:
                vals = [xm[(n, t) + feat] for t in valid]
                if mode == "min":
                    vals = [-v for v in vals]
                _, t = _first_max(vals, valid)
                gm[(n, t) + feat] += gv
    return gx


# ---------------------------------------------------------------------------------------------
# fractional max pooling
# ---------------------------------------------------------------------------------------------


def ref_fractional_starts(sample, in_size, out_size, pool, dtype):
    """aten FractionalMaxPool2d.cpp ``generate_intervals``, scalar by scalar in ``dtype``."""
    T = np.dtype(dtype).type
    seq = [0] * out_size
    if out_size > 1:
        alpha = T(in_size - pool) / T(out_size - 1)
        u = T(sample)
        for i in range(out_size - 1):
            seq[i] = int(T(T(i) + u) * alpha) - int(T(u * alpha))
    seq[out_size - 1] = in_size - pool
    return seq


def ref_fractional_max(x, kernel, out_sizes, samples, axes, dtype):
    """Loops over planes; ``samples[..., j]`` drives pooled axis ``order[j]`` as PyTorch does
    (2 axes: sample 0 -> W, sample 1 -> H; 3 axes: sample j -> axis j)."""
    x = np.asarray(x)
    d = len(axes)
    which = [1, 0] if d == 2 else list(range(d))  # which sample drives axes[j]
    out_shape = list(x.shape)
    for a, o in zip(axes, out_sizes):
        out_shape[a] = o
    out = np.empty(out_shape, dtype=x.dtype)
    idx = np.empty(out_shape, dtype=np.int64)
    sizes = [x.shape[a] for a in axes]
    batch_axes = [a for a in range(x.ndim) if a not in axes]
    samples = np.asarray(samples).reshape([x.shape[a] for a in batch_axes] + [d])
    for plane in _planes(x, axes):
        bpos = tuple(plane[a] for a in batch_axes)
        u = samples[bpos]
        wins = []
        for j, a in enumerate(axes):
            st = ref_fractional_starts(u[which[j]], x.shape[a], out_sizes[j], kernel[j], dtype)
            wins.append([range(s, s + kernel[j]) for s in st])
        xp = x[plane]
        for opos in itertools.product(*[range(o) for o in out_sizes]):
            taps = list(itertools.product(*[wins[j][opos[j]] for j in range(d)]))
            v, p = _first_max([xp[t] for t in taps], taps)
            out[plane][opos] = v
            idx[plane][opos] = _flat(p, sizes)
    return out, idx


# ---------------------------------------------------------------------------------------------
# ROI pooling (torchvision roi_pool / ONNX MaxRoiPool) and ROI align (ONNX RoiAlign)
# ---------------------------------------------------------------------------------------------


def _round_away(v):
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def ref_roi_pool(x, rois, pooled, scale, dtype=np.float64):
    """Loops; coordinates in ``dtype`` (float32 as ONNX Runtime); returns (out, argmax flat h*W+w)."""
    T = np.dtype(dtype).type
    x = np.asarray(x)
    n, c, h, w = x.shape
    ph_n, pw_n = pooled
    out = np.zeros((len(rois), c, ph_n, pw_n), dtype=np.float64)
    arg = np.full(out.shape, -1, dtype=np.int64)
    for k, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, x2, y2 = (_round_away(float(T(T(v) * T(scale)))) for v in roi[1:])
        rh = max(y2 - y1 + 1, 1)
        rw = max(x2 - x1 + 1, 1)
        bh = T(rh) / T(ph_n)
        bw = T(rw) / T(pw_n)
        for ph in range(ph_n):
            hs = min(max(int(math.floor(T(ph) * bh)) + y1, 0), h)
            he = min(max(int(math.ceil(T(ph + 1) * bh)) + y1, 0), h)
            for pw in range(pw_n):
                ws = min(max(int(math.floor(T(pw) * bw)) + x1, 0), w)
                we = min(max(int(math.ceil(T(pw + 1) * bw)) + x1, 0), w)
                if he <= hs or we <= ws:
                    continue
                taps = [(i, j) for i in range(hs, he) for j in range(ws, we)]
                for ch in range(c):
                    v, p = _first_max([float(x[b, ch, i, j]) for i, j in taps], taps)
                    out[k, ch, ph, pw] = v
                    arg[k, ch, ph, pw] = p[0] * w + p[1]
    return out, arg


def ref_roi_pool_backward(g, x, rois, pooled, scale, dtype=np.float64):
    _, arg = ref_roi_pool(x, rois, pooled, scale, dtype)
    n, c, h, w = np.shape(x)
    gx = np.zeros((n, c, h, w))
    for k in range(len(rois)):
        b = int(rois[k][0])
        for ch, ph, pw in itertools.product(range(c), range(pooled[0]), range(pooled[1])):
            a = arg[k, ch, ph, pw]
            if a >= 0:
                gx[b, ch, a // w, a % w] += g[k, ch, ph, pw]
    return gx


def _align_samples(roi, pooled_h, pooled_w, grid_h, grid_w, h, w, ph, pw):
    """The (positions, weights) of every sample of bin (ph, pw), ONNX's PreCalc in float64."""
    x1, y1, bin_h, bin_w = roi
    samples = []
    for iy in range(grid_h):
        y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(grid_w):
            xx = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            yv, xv = y, xx
            if yv < -1.0 or yv > h or xv < -1.0 or xv > w:
                samples.append(([(0, 0)] * 4, [0.0] * 4))
                continue
            yv = max(yv, 0.0)
            xv = max(xv, 0.0)
            y0, x0 = int(yv), int(xv)
            if y0 >= h - 1:
                y0 = y1_ = h - 1
                yv = float(y0)
            else:
                y1_ = y0 + 1
            if x0 >= w - 1:
                x0 = x1_ = w - 1
                xv = float(x0)
            else:
                x1_ = x0 + 1
            ly, lx = yv - y0, xv - x0
            hy, hx = 1 - ly, 1 - lx
            samples.append(([(y0, x0), (y0, x1_), (y1_, x0), (y1_, x1_)], [hy * hx, hy * lx, ly * hx, ly * lx]))
    return samples


def _align_geometry(roi, pooled, scale, sampling_ratio, aligned):
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (float(v) * scale - off for v in roi)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(rh / pooled[0]))
    gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(rw / pooled[1]))
    return (x1, y1, rh / pooled[0], rw / pooled[1]), max(gh, 0), max(gw, 0)


def ref_roi_align(x, rois, batch_indices, pooled, scale, sampling_ratio, mode, aligned):
    """ONNX RoiAlign (opset 16), in float64 loops."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    out = np.zeros((len(rois), c) + tuple(pooled))
    for k, roi in enumerate(rois):
        b = int(batch_indices[k])
        geom, gh, gw = _align_geometry(roi, pooled, scale, sampling_ratio, aligned)
        for ph, pw in itertools.product(range(pooled[0]), range(pooled[1])):
            samples = _align_samples(geom, pooled[0], pooled[1], gh, gw, h, w, ph, pw)
            for ch in range(c):
                if mode == "avg":
                    acc = sum(sum(wt * x[b, ch, i, j] for (i, j), wt in zip(pos, wts)) for pos, wts in samples)
                    out[k, ch, ph, pw] = acc / max(gh * gw, 1)
                else:
                    best = 0.0
                    for s, (pos, wts) in enumerate(samples):
                        val = max(wt * x[b, ch, i, j] for (i, j), wt in zip(pos, wts))
                        best = val if s == 0 else max(best, val)
                    out[k, ch, ph, pw] = best
    return out
