"""Numba kernels. No validation, no Python objects: every index they receive has been checked.

The general kernels reduce one axis of a C-contiguous ``(outer, length, inner)`` view: output ``m``
reduces the positions ``starts[m] + j * step`` for ``j < counts[m]``.  A box window is separable, so
applying them axis by axis serves every dimension count and layout.  The contiguous ``inner`` axis
is the innermost loop so that LLVM vectorises it.

Every kernel exists twice, built from one source by ``_build``: ``parallel`` (``prange`` over a few
chunks per thread) and ``serial``, which small calls use because waking a thread pool costs far
more than they do.  The ``parallel`` flag is a closure variable of each kernel, so numba's on-disk
cache keeps the two builds apart.

Max kernels keep PyTorch's rules: the first maximum wins, and NaN beats every number (the first NaN
wins).  No fastmath flag is used anywhere, so NaN comparisons stay exact.
"""

from types import SimpleNamespace

import numpy as np
from numba import njit, prange


# ============================================================================================
# Fused 2-D / 3-D kernels.
#
# The input is viewed as (outer, D, H, W * inner): the pooled axes D, H, W are adjacent and
# `inner` holds the trailing batch axes (1 for NCHW, C for NHWC).  2-D pooling uses D = 1.  Each
# output row (o, od, oh) is made in one trip through memory: its window's input rows are reduced
# into a row buffer (vectorised along the contiguous W * inner axis), then the W taps of every
# output are reduced from that buffer.  Wide windows cost about log2(k) operations per output, not
# k: along H the van Herk / Gil-Werman scheme makes each row from one block suffix and one block
# prefix; along W taps are combined by doubling.  Neither needs an inverse, so sums keep the
# accuracy of a direct sum (no running add-and-subtract).
# ============================================================================================


# Hot loops run over zero-based unsigned indices of 1-D slices: numba adds a negative-index
# wraparound check to every signed index it cannot prove non-negative, and that check stops LLVM
# from vectorising the loop (measured: 6 ns -> 0.6 ns per element for a 3-tap max).


@njit(inline="always")
def _better(v, b):
    """True when v replaces the current maximum b: strictly greater, or the first NaN."""
    return (v > b) | ((v != v) & (b == b))  # no short-circuit: the loops stay branch-free


@njit(inline="always")
def _combine(a, b, is_sum):
    if is_sum:
        return a + b
    return b if _better(b, a) else a


@njit(inline="always")
def _vcopy(dst, src, n, stride):
    """dst[q] = src[q * stride] for q < n."""
    st = np.uint64(stride)
    for q in range(np.uint64(n)):
        dst[q] = src[q * st]


@njit(inline="always")
def _vacc(dst, src, n, stride, is_sum):
    """dst[q] = combine(dst[q], src[q * stride]) for q < n."""
    st = np.uint64(stride)
    if is_sum:
        for q in range(np.uint64(n)):
            dst[q] += src[q * st]
    else:
        for q in range(np.uint64(n)):
            v = src[q * st]
            b = dst[q]
            dst[q] = v if _better(v, b) else b


@njit(inline="always")
def _vpair(dst, a, b, n, is_sum):
    """dst[q] = combine(a[q], b[q]) for q < n (a holds the earlier taps)."""
    if is_sum:
        for q in range(np.uint64(n)):
            dst[q] = a[q] + b[q]
    else:
        for q in range(np.uint64(n)):
            u = a[q]
            v = b[q]
            dst[q] = v if _better(v, u) else u


@njit(inline="always")
def _reduce_rows(x, o, d0, nd, dd, h0, nh, dh, buf, is_sum):
    """buf = reduction of the rows x[o, d0 + jd*dd, h0 + jh*dh, :] over the window's taps."""
    n = buf.shape[0]
    first = True
    for jd in range(nd):
        for jh in range(nh):
            src = x[o, d0 + jd * dd, h0 + jh * dh]
            if first:
                _vcopy(buf, src, n, 1)
                first = False
            else:
                _vacc(buf, src, n, 1, is_sum)


@njit(cache=True)
def _window_taps(buf, n_inner, s, c, dw, is_sum, dst):
    """dst[:n_inner] = reduction of the c taps s, s + dw, ... of the row buffer."""
    if n_inner == 1:
        a = buf[np.uint64(s)]
        for j in range(1, c):
            a = _combine(a, buf[np.uint64(s + j * dw)], is_sum)
        dst[0] = a
        return
    _vcopy(dst, buf[s * n_inner:], n_inner, 1)
    for j in range(1, c):
        _vacc(dst, buf[(s + j * dw) * n_inner:], n_inner, 1, is_sum)


@njit(cache=True)
def _strided_taps(dst, src, n, n_inner, stride, first, is_sum):
    """dst[q*I + i] (op)= src[q*stride*I + i] for q < n, i < I, for contiguous or strided windows."""
    if stride == 1:
        if first:
            _vcopy(dst, src, n * n_inner, 1)
        else:
            _vacc(dst, src, n * n_inner, 1, is_sum)
    elif n_inner == 1:
        # literal strides let LLVM vectorise the strided loads (measured: 3.5x for max, stride 4)
        if stride == 2:
            if first:
                _vcopy(dst, src, n, 2)
            else:
                _vacc(dst, src, n, 2, is_sum)
        elif stride == 4:
            if first:
                _vcopy(dst, src, n, 4)
            else:
                _vacc(dst, src, n, 4, is_sum)
        elif first:
            _vcopy(dst, src, n, stride)
        else:
            _vacc(dst, src, n, stride, is_sum)
    else:
        for q in range(n):
            if first:
                _vcopy(dst[q * n_inner:], src[q * stride * n_inner:], n_inner, 1)
            else:
                _vacc(dst[q * n_inner:], src[q * stride * n_inner:], n_inner, 1, is_sum)


@njit(inline="always")
def _reduce_cols(buf, n_inner, sw, cw, dw, kw, stride_w, lo, hi, spare, doubling, is_sum, acc):
    """acc[ow * n_inner + i] = reduction of the W taps of window ow in the row buffer.

    Edge windows (ow < lo or ow >= hi) are reduced tap by tap.  The full, regular windows
    lo <= ow < hi (first tap at sw[lo] + (ow - lo) * stride_w) are reduced tap-major, so the loops
    run along ow; with ``doubling``, over log2(kw) levels instead: level l + 1 combines pairs of
    level-l entries 2**l taps apart (ping-ponging between ``buf`` and ``spare``), and each output
    combines the levels of the set bits of kw -- about log2(kw) + popcount(kw) passes, with no
    subtraction, so sums stay as accurate as a direct sum.  ``buf`` is overwritten.
    """
    for ow in range(sw.shape[0]):
        if ow < lo or ow >= hi:
            _window_taps(buf, n_inner, sw[ow], cw[ow], dw, is_sum, acc[ow * n_inner:])
    if hi <= lo:
        return
    n = hi - lo
    dst = acc[lo * n_inner:]
    p0 = sw[lo]
    if not doubling:
        for j in range(kw):
            _strided_taps(dst, buf[(p0 + j * dw) * n_inner:], n, n_inner, stride_w, j == 0, is_sum)
        return
    level = buf
    other = spare
    width = buf.shape[0]
    span = 1
    covered = 0
    bits = kw
    while bits:
        if bits & 1:
            _strided_taps(dst, level[(p0 + covered * dw) * n_inner:], n, n_inner, stride_w, covered == 0, is_sum)
            covered += span
        bits >>= 1
        if bits:
            off = span * dw * n_inner
            _vpair(other, level, level[off:], width - off, is_sum)
            level, other = other, level
            span *= 2


@njit(cache=True)
def _row_blocks(x, o, r0, r1, kh, m, g, sfx, is_sum):
    """Prefix (g) and suffix (sfx) reductions over the rows of block m = [r0 + m*kh, ...) of
    plane o, into ring slot m % 2 (rows slot*kh ... slot*kh + kh - 1)."""
    b0 = r0 + m * kh
    b1 = min(b0 + kh, r1)
    base = (m % 2) * kh - b0
    n = g.shape[1]
    _vcopy(g[base + b0], x[o, 0, b0], n, 1)
    for h in range(b0 + 1, b1):
        _vpair(g[base + h], g[base + h - 1], x[o, 0, h], n, is_sum)
    _vcopy(sfx[base + b1 - 1], x[o, 0, b1 - 1], n, 1)
    for h in range(b1 - 2, b0 - 1, -1):
        _vpair(sfx[base + h], x[o, 0, h], sfx[base + h + 1], n, is_sum)


@njit(inline="always")
def _vspread(dst, src, n, stride):
    """dst[q * stride] += src[q] for q < n."""
    st = np.uint64(stride)
    for q in range(np.uint64(n)):
        dst[q * st] += src[q]


@njit(inline="always")
def _vzero(dst):
    for q in range(np.uint64(dst.shape[0])):
        dst[q] = 0


@njit(cache=True)
def _scatter_plane(plane, src, ix, add):
    """plane[ix[q, i], i] (+)= src[q, i] on a zero-filled plane; indices checked by the caller."""
    _vzero(plane.reshape(plane.size))
    n_src, n_inner = src.shape
    if n_inner == 1:
        for q in range(np.uint64(n_src)):
            if add:
                plane[np.uint64(ix[q, 0]), 0] += src[q, 0]
            else:
                plane[np.uint64(ix[q, 0]), 0] = src[q, 0]
    else:
        for q in range(n_src):
            for i in range(np.uint64(n_inner)):
                if add:
                    plane[np.uint64(ix[q, i]), i] += src[q, i]
                else:
                    plane[np.uint64(ix[q, i]), i] = src[q, i]


@njit(inline="always")
def _n_chunks(total, n_threads, parallel):
    """Work split: a few chunks per thread in the parallel build, one in the serial build."""
    return max(min(total, 4 * n_threads), 1) if parallel else 1


def _pool_rows_for(is_sum):
    """The row function of pool_max (is_sum False) or pool_sum (True), built from one source.

    ``is_sum`` is a closure constant: numba prunes the other mode's branches before typing them, so
    each build compiles only its own code (and the on-disk cache keys the two apart).
    """

    @njit(cache=True)
    def pool_rows(x, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_h, regular_w, acc_proto,
                  div_d, div_h, div_w, out, t0, t1):
        """Output rows t0 <= t < t1 (t = (o * OD + od) * OH + oh) of pool_max / pool_sum, with their
        own buffers."""
        kh, _, lo_h, hi_h, blocks_h = regular_h
        kw, stride_w, lo_w, hi_w, doubling_w = regular_w
        n_d, n_h, row_len = x.shape[1], x.shape[2], x.shape[3]
        n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
        blocks_h = blocks_h and n_d == 1 and hi_h > lo_h
        buf = np.empty(row_len, dtype=acc_proto.dtype)
        spare = np.empty(row_len, dtype=acc_proto.dtype)
        acc = np.empty(out.shape[3], dtype=acc_proto.dtype)
        ring = 2 * kh if blocks_h else 0
        g = np.empty((ring, row_len), dtype=acc_proto.dtype)
        sfx = np.empty((ring, row_len), dtype=acc_proto.dtype)
        slot_block = np.full(2, -1, dtype=np.int64)
        plane = -1
        r0 = 0
        for t in range(t0, t1):
            o = t // (n_od * n_oh)
            r = t - o * (n_od * n_oh)
            od = r // n_oh
            oh = r - od * n_oh
            if blocks_h and lo_h <= oh < hi_h:
                if t // n_oh != plane:  # a new plane: blocks align at this window's start
                    plane = t // n_oh
                    r0 = sh[oh]
                    slot_block[:] = -1
                s = sh[oh]
                m = (s - r0) // kh
                for mm in (m, m + 1):
                    if slot_block[mm % 2] != mm and r0 + mm * kh < n_h:
                        _row_blocks(x, o, r0, n_h, kh, mm, g, sfx, is_sum)
                        slot_block[mm % 2] = mm
                e = s + kh - 1
                ge = g[(((e - r0) // kh) % 2) * kh + (e - r0) % kh]
                if (s - r0) % kh == 0:
                    _vcopy(buf, ge, row_len, 1)
                else:
                    _vpair(buf, sfx[(m % 2) * kh + (s - r0) % kh], ge, row_len, is_sum)
            else:
                _reduce_rows(x, o, sd[od], cd[od], dd, sh[oh], ch[oh], dh, buf, is_sum)
            dst = out[o, od, oh]
            if is_sum:
                _reduce_cols(buf, n_inner, sw, cw, dw, kw, stride_w, lo_w, hi_w, spare, doubling_w, is_sum, acc)
                scale = div_d[od] * div_h[oh]
                if n_inner == 1:
                    for q in range(np.uint64(n_ow)):
                        dst[q] = acc[q] * (scale * div_w[q])
                else:
                    for ow in range(n_ow):
                        f = scale * div_w[ow]
                        a = acc[ow * n_inner:]
                        d = dst[ow * n_inner:]
                        for q in range(np.uint64(n_inner)):
                            d[q] = a[q] * f
            else:
                _reduce_cols(buf, n_inner, sw, cw, dw, kw, stride_w, lo_w, hi_w, spare, doubling_w, is_sum, dst)

    return pool_rows


_pool_rows_max = _pool_rows_for(False)
_pool_rows_sum = _pool_rows_for(True)


@njit(cache=True)
def _max_rows_indices(x, n_inner, height, width, sd, cd, dd, sh, ch, dh, sw, cw, dw, out, idx, t0, t1):
    """Output rows t0 <= t < t1 of max_fused_indices, with their own buffers."""
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    buf = np.empty(x.shape[3], dtype=x.dtype)
    row = np.empty(x.shape[3], dtype=np.int64)
    n = np.uint64(x.shape[3])
    for t in range(t0, t1):
        o = t // (n_od * n_oh)
        r = t - o * (n_od * n_oh)
        od = r // n_oh
        oh = r - od * n_oh
        first = True
        for jd in range(cd[od]):
            d = sd[od] + jd * dd
            for jh in range(ch[oh]):
                h = sh[oh] + jh * dh
                src = x[o, d, h]
                flat_row = d * height + h
                if first:
                    for q in range(n):
                        buf[q] = src[q]
                        row[q] = flat_row
                    first = False
                else:
                    for q in range(n):
                        v = src[q]
                        b = buf[q]
                        take = _better(v, b)
                        buf[q] = v if take else b
                        row[q] = flat_row if take else row[q]
        dst = out[o, od, oh]
        dst_idx = idx[o, od, oh]
        for ow in range(n_ow):
            for i in range(n_inner):
                w = sw[ow]
                p = w * n_inner + i
                b = buf[p]
                bi = row[p] * width + w
                for j in range(1, cw[ow]):
                    w = sw[ow] + j * dw
                    p = w * n_inner + i
                    v = buf[p]
                    fi = row[p] * width + w
                    if v > b or (v == b and fi < bi) or (v != v and (b == b or fi < bi)):
                        b = v
                        bi = fi
                dst[ow * n_inner + i] = b
                dst_idx[ow * n_inner + i] = bi


@njit(cache=True)
def _spread_planes(g, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_w, rows_disjoint, div_d, div_h,
                   div_w, out, o0, o1):
    """Planes o0 <= o < o1 of sum_fused_adjoint, with their own buffers.

    When no input row (d, h) lies in two windows (``rows_disjoint``), each row is written once,
    straight into ``out``; otherwise rows accumulate in a float64 plane that is copied at the end.
    """
    kw, stride_w, lo, hi, _ = regular_w
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    row_len = out.shape[3]
    plane_rows = 0 if rows_disjoint else out.shape[1] * out.shape[2]
    acc = np.empty((plane_rows, row_len), dtype=np.float64)
    flat = acc.reshape(acc.size)
    rowbuf = np.empty(row_len, dtype=np.float64)
    vals = np.empty(n_ow * n_inner, dtype=np.float64)
    for o in range(o0, o1):
        dst_plane = out[o]
        if rows_disjoint:
            _vzero(dst_plane.reshape(dst_plane.size))
        else:
            _vzero(flat)
        for od in range(n_od):
            for oh in range(n_oh):
                _vzero(rowbuf)
                src = g[o, od, oh]
                scale = div_d[od] * div_h[oh]
                for ow in range(n_ow):
                    f = scale * div_w[ow]
                    for i in range(n_inner):
                        vals[ow * n_inner + i] = src[ow * n_inner + i] * f
                for ow in range(n_ow):  # edge windows
                    if ow < lo or ow >= hi:
                        for j in range(cw[ow]):
                            _vacc(rowbuf[(sw[ow] + j * dw) * n_inner:], vals[ow * n_inner:], n_inner, 1, True)
                if hi > lo:  # full windows, tap-major
                    n = hi - lo
                    v = vals[lo * n_inner:]
                    for j in range(kw):
                        dst = rowbuf[(sw[lo] + j * dw) * n_inner:]
                        if stride_w == 1:
                            _vacc(dst, v, n * n_inner, 1, True)
                        elif n_inner == 1:
                            _vspread(dst, v, n, stride_w)
                        else:
                            for q in range(n):
                                _vacc(dst[q * stride_w * n_inner:], v[q * n_inner:], n_inner, 1, True)
                for jd in range(cd[od]):
                    for jh in range(ch[oh]):
                        d = sd[od] + jd * dd
                        h = sh[oh] + jh * dh
                        if rows_disjoint:
                            _vcopy(dst_plane[d, h], rowbuf, row_len, 1)
                        else:
                            _vacc(acc[d * out.shape[2] + h], rowbuf, row_len, 1, True)
        if not rows_disjoint:
            _vcopy(dst_plane.reshape(dst_plane.size), flat, flat.shape[0], 1)


def _build(parallel):
    """Compile-on-demand kernels, multi-threaded when ``parallel``."""

    @njit(cache=True, parallel=parallel)
    def reduce_axis(x, starts, counts, step, is_sum, out, n_threads):
        """out[o, m, i] = max (or sum, in out's dtype) over the window m of x[o, :, i]."""
        n_outer, _, n_inner = x.shape
        n_out = starts.shape[0]
        total = n_outer * n_out
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            for t in range(total * c // n_chunks, total * (c + 1) // n_chunks):
                o = t // n_out
                m = t - o * n_out
                dst = out[o, m]
                _vcopy(dst, x[o, starts[m]], n_inner, 1)
                for j in range(1, counts[m]):
                    _vacc(dst, x[o, starts[m] + j * step], n_inner, 1, is_sum)

    @njit(cache=True, parallel=parallel)
    def max_axis_indices(x, idx_in, has_idx_in, starts, counts, step, scale, out, idx_out, n_threads):
        """reduce_axis (max) that also tracks flat indices: idx_out = idx_in[winner] + winner_position * scale.

        Axes are processed from the last pooled axis to the first, and a later tap replaces the current
        best only when strictly greater (or the first NaN), so the winner is the first maximum in
        row-major window order.
        """
        n_outer, _, n_inner = x.shape
        n_out = starts.shape[0]
        total = n_outer * n_out
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            for t in range(total * c // n_chunks, total * (c + 1) // n_chunks):
                o = t // n_out
                m = t - o * n_out
                s = starts[m]
                for i in range(n_inner):
                    out[o, m, i] = x[o, s, i]
                    if has_idx_in:
                        idx_out[o, m, i] = idx_in[o, s, i] + s * scale
                    else:
                        idx_out[o, m, i] = s * scale
                for j in range(1, counts[m]):
                    pos = s + j * step
                    for i in range(n_inner):
                        v = x[o, pos, i]
                        if _better(v, out[o, m, i]):
                            out[o, m, i] = v
                            if has_idx_in:
                                idx_out[o, m, i] = idx_in[o, pos, i] + pos * scale
                            else:
                                idx_out[o, m, i] = pos * scale

    @njit(cache=True, parallel=parallel)
    def sum_axis_adjoint(g, starts, counts, step, out, n_threads):
        """The transpose of reduce_axis's sums: out[o, p, i] = sum of g[o, m, i] over the windows m holding p."""
        n_outer, n_out, n_inner = g.shape
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        for c in prange(n_chunks):
            for o in range(n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks):
                plane = out[o]
                _vzero(plane.reshape(plane.size))
                for m in range(n_out):
                    for j in range(counts[m]):
                        _vacc(out[o, starts[m] + j * step], g[o, m], n_inner, 1, True)

    @njit(cache=True, parallel=parallel)
    def pool_max(x, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_h, regular_w, acc_proto,
                 div_d, div_h, div_w, out, n_threads):
        """Window maxima over 1, 2 or 3 adjacent axes.

        x: (O, D, H, W*I); out: (O, OD, OH, OW*I).  regular_h / regular_w = (kernel, stride, lo, hi,
        fast): windows lo <= i < hi are full and regular; ``fast`` selects van Herk / Gil-Werman row
        blocks along H (only when D == 1) and tap doubling along W.  Work is split into
        4 * n_threads chunks of output rows.  div_* are unused (one signature for both modes).
        """
        total = x.shape[0] * sd.shape[0] * sh.shape[0]
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            _pool_rows_max(x, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_h, regular_w, acc_proto,
                           div_d, div_h, div_w, out, total * c // n_chunks, total * (c + 1) // n_chunks)

    @njit(cache=True, parallel=parallel)
    def pool_sum(x, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_h, regular_w, acc_proto,
                 div_d, div_h, div_w, out, n_threads):
        """Window sums times the reciprocal divisors div_d[od] * div_h[oh] * div_w[ow], accumulated
        in acc_proto's dtype (float64); as pool_max otherwise."""
        total = x.shape[0] * sd.shape[0] * sh.shape[0]
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            _pool_rows_sum(x, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_h, regular_w, acc_proto,
                           div_d, div_h, div_w, out, total * c // n_chunks, total * (c + 1) // n_chunks)

    @njit(cache=True, parallel=parallel)
    def max_fused_indices(x, n_inner, height, width, sd, cd, dd, sh, ch, dh, sw, cw, dw, out, idx, n_threads):
        """pool_max with flat indices ((d * H + h) * W + w) of the first maximum.

        The row pass keeps, per column, the first maximal row; the column pass breaks ties (and NaN
        against NaN) by the smaller flat index, which makes the winner the row-major first maximum.
        """
        total = x.shape[0] * sd.shape[0] * sh.shape[0]
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            _max_rows_indices(x, n_inner, height, width, sd, cd, dd, sh, ch, dh, sw, cw, dw, out, idx,
                              total * c // n_chunks, total * (c + 1) // n_chunks)
    @njit(cache=True, parallel=parallel)
    def sum_fused_adjoint(g, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_w, rows_disjoint, div_d, div_h,
                          div_w, out, n_threads):
        """The transpose of pool_sum: out[o] = sum over windows of g / divisor, spread over taps.

        g: (O, OD, OH, OW*I); out: (O, D, H, W*I), any float dtype (accumulated in float64 per plane).
        Planes are independent; windows overlapping inside a plane accumulate in order.
        """
        n_outer = g.shape[0]
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        for c in prange(n_chunks):
            _spread_planes(g, n_inner, sd, cd, dd, sh, ch, dh, sw, cw, dw, regular_w, rows_disjoint, div_d, div_h,
                           div_w, out, n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks)
    @njit(cache=True, parallel=parallel)
    def scatter_add(g, idx, out, n_threads):
        """out[o, idx[o, q, i], i] += g[o, q, i] on a zero-filled out; the pooled axes flattened in q.

        Serves any layout whose pooled axes are adjacent (inner = the trailing batch axes).  The
        indices were checked to lie in [0, out.shape[1]).
        """
        n_outer = g.shape[0]
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        for c in prange(n_chunks):
            for o in range(n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks):
                _scatter_plane(out[o], g[o], idx[o], True)

    @njit(cache=True, parallel=parallel)
    def scatter_set(v, idx, out, n_threads):
        """out[o, idx[o, q, i], i] = v[o, q, i] on a zero-filled out (the later duplicate wins)."""
        n_outer = v.shape[0]
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        for c in prange(n_chunks):
            for o in range(n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks):
                _scatter_plane(out[o], v[o], idx[o], False)

    return SimpleNamespace(
        reduce_axis=reduce_axis,
        max_axis_indices=max_axis_indices,
        sum_axis_adjoint=sum_axis_adjoint,
        pool_max=pool_max,
        pool_sum=pool_sum,
        max_fused_indices=max_fused_indices,
        sum_fused_adjoint=sum_fused_adjoint,
        scatter_add=scatter_add,
        scatter_set=scatter_set,
    )


parallel = _build(True)
serial = _build(False)
