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


# Hot loops run over zero-based unsigned indices: numba adds a negative-index wraparound check to
# every signed index it cannot prove non-negative, and that check stops LLVM from vectorising the
# loop (measured: 6 ns -> 0.6 ns per element for a 3-tap max).
#
# Rows are addressed as (flat array, offset), never as array views: every view numba makes costs an
# atomic increment and decrement of the array's reference count, and with one view per row and tap
# those atomics took a third of the time of a 2x2 max pool (measured with perf), more with two
# threads sharing the input's count.  Passing an array into a helper, inlined or not, costs the
# same pair, so every loop runs in a function compiled with ``_nrt=False`` (no reference counts at
# all); such a function cannot allocate, so its caller makes the buffers it needs.


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
def _vcopy(dst, d0, src, s0, n, stride):
    """dst[d0 + q] = src[s0 + q * stride] for q < n."""
    d, s, st = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    for q in range(np.uint64(n)):
        dst[d + q] = src[s + q * st]


@njit(inline="always")
def _vacc(dst, d0, src, s0, n, stride, is_sum):
    """dst[d0 + q] = combine(dst[d0 + q], src[s0 + q * stride]) for q < n."""
    d, s, st = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    if is_sum:
        for q in range(np.uint64(n)):
            dst[d + q] += src[s + q * st]
    else:
        for q in range(np.uint64(n)):
            v = src[s + q * st]
            b = dst[d + q]
            dst[d + q] = v if _better(v, b) else b


@njit(inline="always")
def _vput(dst, d0, src, s0, n, stride, first, is_sum):
    """_vcopy for a window's first tap, _vacc for the others."""
    if first:
        _vcopy(dst, d0, src, s0, n, stride)
    else:
        _vacc(dst, d0, src, s0, n, stride, is_sum)


@njit(inline="always")
def _vpair(dst, d0, a, a0, b, b0, n, is_sum):
    """dst[d0 + q] = combine(a[a0 + q], b[b0 + q]) for q < n (a holds the earlier taps)."""
    d, ua, ub = np.uint64(d0), np.uint64(a0), np.uint64(b0)
    if is_sum:
        for q in range(np.uint64(n)):
            dst[d + q] = a[ua + q] + b[ub + q]
    else:
        for q in range(np.uint64(n)):
            u = a[ua + q]
            v = b[ub + q]
            dst[d + q] = v if _better(v, u) else u


@njit(inline="always")
def _vspread(dst, d0, src, s0, n, stride):
    """dst[d0 + q * stride] += src[s0 + q] for q < n."""
    d, s, st = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    for q in range(np.uint64(n)):
        dst[d + q * st] += src[s + q]


@njit(inline="always")
def _vzero(dst, d0, n):
    d = np.uint64(d0)
    for q in range(np.uint64(n)):
        dst[d + q] = 0


@njit(inline="always")
def _reduce_rows(xf, plane, height, row_len, d0, nd, dd, h0, nh, dh, buf, is_sum):
    """buf = reduction of the input rows (d0 + jd*dd, h0 + jh*dh) of the plane starting at xf[plane]."""
    first = True
    for jd in range(nd):
        for jh in range(nh):
            _vput(buf, 0, xf, plane + ((d0 + jd * dd) * height + h0 + jh * dh) * row_len, row_len, 1, first, is_sum)
            first = False


@njit(inline="always")
def _window_taps(buf, n_inner, s, c, dw, is_sum, dst, d0):
    """dst[d0 : d0 + n_inner] = reduction of the c taps s, s + dw, ... of the row buffer."""
    if n_inner == 1:
        a = buf[np.uint64(s)]
        for j in range(1, c):
            a = _combine(a, buf[np.uint64(s + j * dw)], is_sum)
        dst[np.uint64(d0)] = a
        return
    _vcopy(dst, d0, buf, s * n_inner, n_inner, 1)
    for j in range(1, c):
        _vacc(dst, d0, buf, (s + j * dw) * n_inner, n_inner, 1, is_sum)


@njit(cache=True, _nrt=False)
def _strided_taps(dst, d0, src, s0, n, n_inner, stride, first, is_sum):
    """dst[d0 + q*I + i] (op)= src[s0 + q*stride*I + i] for q < n, i < I."""
    if stride == 1:
        _vput(dst, d0, src, s0, n * n_inner, 1, first, is_sum)
    elif n_inner == 1:
        # literal strides let LLVM vectorise the strided loads (measured: 3.5x for max, stride 4)
        if stride == 2:
            _vput(dst, d0, src, s0, n, 2, first, is_sum)
        elif stride == 4:
            _vput(dst, d0, src, s0, n, 4, first, is_sum)
        else:
            _vput(dst, d0, src, s0, n, stride, first, is_sum)
    else:
        for q in range(n):
            _vput(dst, d0 + q * n_inner, src, s0 + q * stride * n_inner, n_inner, 1, first, is_sum)


@njit(cache=True, _nrt=False)
def _direct_taps(dst, d0, buf, b0, n, kw, stride, is_sum):
    """dst[d0 + q] = reduction of buf[b0 + q*stride + j] over j < kw, for q < n, when (kw, stride)
    is one of the common small windows (2, 2), (3, 2), (2, 1), (3, 1): literal loops that LLVM
    vectorises, one pass instead of kw.  Returns False (nothing written) for other windows.

    Every index term is uint64 (a plain int literal would make the sum signed, and numba's
    wraparound check on it would stop the vectoriser)."""
    d, m = np.uint64(d0), np.uint64(n)
    b0_, b1, b2 = np.uint64(b0), np.uint64(b0 + 1), np.uint64(b0 + 2)
    two = np.uint64(2)
    if stride == 2 and kw == 2:
        for q in range(m):
            dst[d + q] = _combine(buf[b0_ + two * q], buf[b1 + two * q], is_sum)
    elif stride == 2 and kw == 3:
        for q in range(m):
            dst[d + q] = _combine(_combine(buf[b0_ + two * q], buf[b1 + two * q], is_sum), buf[b2 + two * q], is_sum)
    elif stride == 1 and kw == 2:
        for q in range(m):
            dst[d + q] = _combine(buf[b0_ + q], buf[b1 + q], is_sum)
    elif stride == 1 and kw == 3:
        for q in range(m):
            dst[d + q] = _combine(_combine(buf[b0_ + q], buf[b1 + q], is_sum), buf[b2 + q], is_sum)
    else:
        return False
    return True


@njit(cache=True, _nrt=False)
def _reduce_cols(work, n_inner, sw, cw, dw, kw, stride_w, lo, hi, doubling, is_sum, acc, a0):
    """acc[a0 + ow * n_inner + i] = reduction of the W taps of window ow in the row buffer.

    ``work`` holds the row buffer in its first half (row_len entries) and scratch in its second.
    Edge windows (ow < lo or ow >= hi) are reduced tap by tap.  The full, regular windows
    lo <= ow < hi (first tap at sw[lo] + (ow - lo) * stride_w) are reduced in one pass for the common
    small windows, otherwise tap-major, so the loops run along ow; with ``doubling``, over log2(kw)
    levels instead: level l + 1 combines pairs of level-l entries 2**l taps apart (ping-ponging
    between the two halves of ``work``), and each output combines the levels of the set bits of kw
    -- about log2(kw) + popcount(kw) passes, with no subtraction, so sums stay as accurate as a
    direct sum.  The row buffer may be overwritten.
    """
    tail = max(hi, lo)
    for e in range(lo + sw.shape[0] - tail):  # the edge windows, inlined (a call each cost more)
        ow = e if e < lo else e - lo + tail
        _window_taps(work, n_inner, sw[ow], cw[ow], dw, is_sum, acc, a0 + ow * n_inner)
    if hi <= lo:
        return
    n = hi - lo
    d0 = a0 + lo * n_inner
    p0 = sw[lo]
    if n_inner == 1 and dw == 1 and not doubling and _direct_taps(acc, d0, work, p0, n, kw, stride_w, is_sum):
        return
    if not doubling:
        for j in range(kw):
            _strided_taps(acc, d0, work, (p0 + j * dw) * n_inner, n, n_inner, stride_w, j == 0, is_sum)
        return
    width = work.shape[0] // 2
    level = 0
    other = width
    span = 1
    covered = 0
    bits = kw
    while bits:
        if bits & 1:
            _strided_taps(acc, d0, work, level + (p0 + covered * dw) * n_inner, n, n_inner, stride_w, covered == 0,
                          is_sum)
            covered += span
        bits >>= 1
        if bits:
            off = span * dw * n_inner
            _vpair(work, other, work, level, work, level + off, width - off, is_sum)
            level, other = other, level
            span *= 2


@njit(cache=True, _nrt=False)
def _row_blocks(xf, plane, row_len, r0, r1, kh, m, g, sfx, is_sum):
    """Prefix (g) and suffix (sfx) reductions over the rows of block m = [r0 + m*kh, ...) of the
    2-D plane starting at xf[plane], into ring slot m % 2 (rows slot*kh ... slot*kh + kh - 1 of the
    flat (2 * kh, row_len) buffers)."""
    b0 = r0 + m * kh
    b1 = min(b0 + kh, r1)
    base = (m % 2) * kh - b0
    n = row_len
    _vcopy(g, (base + b0) * n, xf, plane + b0 * n, n, 1)
    for h in range(b0 + 1, b1):
        _vpair(g, (base + h) * n, g, (base + h - 1) * n, xf, plane + h * n, n, is_sum)
    _vcopy(sfx, (base + b1 - 1) * n, xf, plane + (b1 - 1) * n, n, 1)
    for h in range(b1 - 2, b0 - 1, -1):
        _vpair(sfx, (base + h) * n, xf, plane + h * n, sfx, (base + h + 1) * n, n, is_sum)


@njit(cache=True, _nrt=False)
def _scatter_plane(plane, src, ix, add):
    """Zero the plane, then plane[ix[q, i], i] (+)= src[q, i].  Indices outside the plane are
    skipped and counted; the count is returned (the caller raises)."""
    n_pos, n_inner = plane.shape
    _vzero(plane.reshape(plane.size), 0, plane.size)
    limit = np.uint64(n_pos)
    bad = 0
    for q in range(src.shape[0]):
        for i in range(np.uint64(n_inner)):
            p = np.uint64(ix[q, i])  # negative indices wrap to huge values
            if p >= limit:
                bad += 1
            elif add:
                plane[p, i] += src[q, i]
            else:
                plane[p, i] = src[q, i]
    return bad


@njit(inline="always")
def _n_chunks(total, n_threads, parallel):
    """Work split: a few chunks per thread in the parallel build, one in the serial build."""
    return max(min(total, 4 * n_threads), 1) if parallel else 1


# The fused kernels take the window tables of D, H and W in one int64 array (sd, cd, sh, ch, sw, cw:
# starts and counts) and their scalars in another (FusedView.params), so that a call passes a
# handful of arguments: numba's dispatch costs about 45 ns per argument, which is most of a tiny call.
(P_INNER, P_DD, P_DH, P_DW, P_KH, P_STRIDE_H, P_LO_H, P_HI_H, P_BLOCKS_H, P_KW, P_STRIDE_W, P_LO_W, P_HI_W,
 P_DOUBLING_W, P_ROWS_DISJOINT, P_OD, P_OH, P_OW, P_HEIGHT, P_WIDTH) = range(20)


@njit(inline="always")
def _tables(tables, params):
    """The (sd, cd, sh, ch, sw, cw) views of the packed window tables."""
    n_od, n_oh, n_ow = params[P_OD], params[P_OH], params[P_OW]
    a = 2 * n_od
    b = a + 2 * n_oh
    return (tables[:n_od], tables[n_od:a], tables[a:a + n_oh], tables[a + n_oh:b], tables[b:b + n_ow],
            tables[b + n_ow:b + 2 * n_ow])


@njit(inline="always")
def _divisor_views(divs, params):
    """The (div_d, div_h, div_w) views of the packed reciprocal divisors."""
    n_od, n_oh = params[P_OD], params[P_OH]
    return divs[:n_od], divs[n_od:n_od + n_oh], divs[n_od + n_oh:]


@njit(inline="always")
def _row_coords(t, n_od, n_oh):
    """(o, od, oh) of output row t = (o * OD + od) * OH + oh."""
    o = t // (n_od * n_oh)
    r = t - o * (n_od * n_oh)
    od = r // n_oh
    return o, od, r - od * n_oh


def _pool_rows_for(is_sum):
    """The row function of pool_max (is_sum False) or pool_sum (True), built from one source.

    ``is_sum`` is a closure constant: numba prunes the other mode's branches before typing them, so
    each build compiles only its own code (and the on-disk cache keys the two apart).
    """

    @njit(cache=True)
    def pool_rows(x, tables, params, divs, out, t0, t1):
        """Output rows t0 <= t < t1 (t = (o * OD + od) * OH + oh) of pool_max / pool_sum, with their
        own buffers: the row and _reduce_cols' scratch, the W reductions, and the H blocks' ring of
        prefix and suffix rows -- in float64 for sums, x's dtype for maxima."""
        row_len, out_len = x.shape[3], out.shape[3]
        blocks_h = params[P_BLOCKS_H] != 0 and x.shape[1] == 1 and params[P_HI_H] > params[P_LO_H]
        ring = (2 * params[P_KH] if blocks_h else 0) * row_len
        if is_sum:
            work = np.empty(2 * row_len + out_len + 2 * ring, dtype=np.float64)
        else:
            work = np.empty(2 * row_len + out_len + 2 * ring, dtype=x.dtype)
        a = 2 * row_len
        b = a + out_len
        slot_block = np.full(2, -1, dtype=np.int64)
        rows(x, tables, params, divs, out, blocks_h, work[:a], work[a:b], work[b:b + ring], work[b + ring:],
             slot_block, t0, t1)

    @njit(cache=True, _nrt=False)
    def rows(x, tables, params, divs, out, blocks_h, buf, acc, g, sfx, slot_block, t0, t1):
        """The loop of pool_rows over flat arrays, compiled without reference counting (no array
        is made here, so every view and call is free of atomic increments)."""
        sd, cd, sh, ch, sw, cw = _tables(tables, params)
        n_inner, dd, dh, dw = params[P_INNER], params[P_DD], params[P_DH], params[P_DW]
        kh, lo_h, hi_h = params[P_KH], params[P_LO_H], params[P_HI_H]
        kw, stride_w, lo_w, hi_w = params[P_KW], params[P_STRIDE_W], params[P_LO_W], params[P_HI_W]
        doubling_w = params[P_DOUBLING_W] != 0
        n_d, n_h, row_len = x.shape[1], x.shape[2], x.shape[3]
        n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
        div_d, div_h, div_w = _divisor_views(divs, params)
        xf = x.reshape(x.size)
        out_len = out.shape[3]
        of = out.reshape(out.size)
        plane_len = n_d * n_h * row_len
        plane = -1
        r0 = 0
        for t in range(t0, t1):
            o, od, oh = _row_coords(t, n_od, n_oh)
            if blocks_h and lo_h <= oh < hi_h:
                if t // n_oh != plane:  # a new plane: blocks align at this window's start
                    plane = t // n_oh
                    r0 = sh[oh]
                    slot_block[:] = -1
                s = sh[oh]
                m = (s - r0) // kh
                for mm in (m, m + 1):
                    if slot_block[mm % 2] != mm and r0 + mm * kh < n_h:
                        _row_blocks(xf, o * plane_len, row_len, r0, n_h, kh, mm, g, sfx, is_sum)
                        slot_block[mm % 2] = mm
                e = s + kh - 1
                ge = ((((e - r0) // kh) % 2) * kh + (e - r0) % kh) * row_len
                if (s - r0) % kh == 0:
                    _vcopy(buf, 0, g, ge, row_len, 1)
                else:
                    _vpair(buf, 0, sfx, ((m % 2) * kh + (s - r0) % kh) * row_len, g, ge, row_len, is_sum)
            else:
                _reduce_rows(xf, o * plane_len, n_h, row_len, sd[od], cd[od], dd, sh[oh], ch[oh], dh, buf, is_sum)
            d0 = t * out_len
            if is_sum:
                _reduce_cols(buf, n_inner, sw, cw, dw, kw, stride_w, lo_w, hi_w, doubling_w, is_sum, acc, 0)
                scale = div_d[od] * div_h[oh]
                if n_inner == 1:
                    d = np.uint64(d0)
                    for q in range(np.uint64(n_ow)):
                        of[d + q] = acc[q] * (scale * div_w[q])
                else:
                    for ow in range(n_ow):
                        f = scale * div_w[ow]
                        d = np.uint64(d0 + ow * n_inner)
                        a = np.uint64(ow * n_inner)
                        for q in range(np.uint64(n_inner)):
                            of[d + q] = acc[a + q] * f
            else:
                _reduce_cols(buf, n_inner, sw, cw, dw, kw, stride_w, lo_w, hi_w, doubling_w, is_sum, of, d0)

    return pool_rows


_pool_rows_max = _pool_rows_for(False)
_pool_rows_sum = _pool_rows_for(True)


@njit(cache=True)
def _max_rows_indices(x, tables, params, out, idx, t0, t1):
    """Output rows t0 <= t < t1 of max_fused_indices, with their own buffers."""
    buf = np.empty(x.shape[3], dtype=x.dtype)
    row = np.empty(x.shape[3], dtype=np.int64)
    _max_rows_indices_loop(x, tables, params, out, idx, buf, row, t0, t1)


@njit(cache=True, _nrt=False)
def _max_rows_indices_loop(x, tables, params, out, idx, buf, row, t0, t1):
    """The loop of _max_rows_indices, compiled without reference counting."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    n_inner, dd, dh, dw = params[P_INNER], params[P_DD], params[P_DH], params[P_DW]
    height, width = params[P_HEIGHT], params[P_WIDTH]
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    row_len, out_len = x.shape[3], out.shape[3]
    plane_len = x.shape[1] * x.shape[2] * row_len
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    idf = idx.reshape(idx.size)
    n = np.uint64(row_len)
    for t in range(t0, t1):
        o, od, oh = _row_coords(t, n_od, n_oh)
        first = True
        for jd in range(cd[od]):
            d = sd[od] + jd * dd
            for jh in range(ch[oh]):
                h = sh[oh] + jh * dh
                flat_row = d * height + h
                src = np.uint64(o * plane_len + flat_row * row_len)
                if first:
                    for q in range(n):
                        buf[q] = xf[src + q]
                        row[q] = flat_row
                    first = False
                else:
                    for q in range(n):
                        v = xf[src + q]
                        b = buf[q]
                        take = _better(v, b)
                        buf[q] = v if take else b
                        row[q] = flat_row if take else row[q]
        d0 = t * out_len
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
                of[d0 + ow * n_inner + i] = b
                idf[d0 + ow * n_inner + i] = bi


@njit(cache=True)
def _spread_planes(g, tables, params, divs, out, o0, o1):
    """Planes o0 <= o < o1 of sum_fused_adjoint, with their own buffers.

    When no input row (d, h) lies in two windows (``rows_disjoint``), each row is written once,
    straight into ``out``; otherwise rows accumulate in a float64 plane that is copied at the end.
    """
    plane_len = out.shape[1] * out.shape[2] * out.shape[3]
    acc = np.empty(0 if params[P_ROWS_DISJOINT] else plane_len, dtype=np.float64)
    rowbuf = np.empty(out.shape[3], dtype=np.float64)
    vals = np.empty(g.shape[3], dtype=np.float64)
    _spread_planes_loop(g, tables, params, divs, out, acc, rowbuf, vals, o0, o1)


@njit(cache=True, _nrt=False)
def _spread_planes_loop(g, tables, params, divs, out, acc, rowbuf, vals, o0, o1):
    """The loop of _spread_planes, compiled without reference counting."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    n_inner, dd, dh, dw = params[P_INNER], params[P_DD], params[P_DH], params[P_DW]
    kw, stride_w, lo, hi = params[P_KW], params[P_STRIDE_W], params[P_LO_W], params[P_HI_W]
    rows_disjoint = params[P_ROWS_DISJOINT] != 0
    div_d, div_h, div_w = _divisor_views(divs, params)
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    row_len, g_len = out.shape[3], g.shape[3]
    plane_len = out.shape[1] * out.shape[2] * row_len
    gf = g.reshape(g.size)
    of = out.reshape(out.size)
    for o in range(o0, o1):
        dst_plane = o * plane_len
        if rows_disjoint:
            _vzero(of, dst_plane, plane_len)
        else:
            _vzero(acc, 0, plane_len)
        for od in range(n_od):
            for oh in range(n_oh):
                _vzero(rowbuf, 0, row_len)
                src = ((o * n_od + od) * n_oh + oh) * g_len
                scale = div_d[od] * div_h[oh]
                for ow in range(n_ow):
                    f = scale * div_w[ow]
                    for i in range(n_inner):
                        vals[ow * n_inner + i] = gf[src + ow * n_inner + i] * f
                for ow in range(n_ow):  # edge windows
                    if ow < lo or ow >= hi:
                        for j in range(cw[ow]):
                            _vacc(rowbuf, (sw[ow] + j * dw) * n_inner, vals, ow * n_inner, n_inner, 1, True)
                if hi > lo:  # full windows, tap-major
                    n = hi - lo
                    v0 = lo * n_inner
                    for j in range(kw):
                        d0 = (sw[lo] + j * dw) * n_inner
                        if stride_w == 1:
                            _vacc(rowbuf, d0, vals, v0, n * n_inner, 1, True)
                        elif n_inner == 1:
                            _vspread(rowbuf, d0, vals, v0, n, stride_w)
                        else:
                            for q in range(n):
                                _vacc(rowbuf, d0 + q * stride_w * n_inner, vals, v0 + q * n_inner, n_inner, 1, True)
                for jd in range(cd[od]):
                    for jh in range(ch[oh]):
                        row = (sd[od] + jd * dd) * out.shape[2] + sh[oh] + jh * dh
                        if rows_disjoint:
                            _vcopy(of, dst_plane + row * row_len, rowbuf, 0, row_len, 1)
                        else:
                            _vacc(acc, row * row_len, rowbuf, 0, row_len, 1, True)
        if not rows_disjoint:
            _vcopy(of, dst_plane, acc, 0, plane_len, 1)


@njit(cache=True, _nrt=False)
def _reduce_axis_part(x, starts, counts, step, is_sum, out, t0, t1):
    """Outputs t0 <= t < t1 (t = o * n_out + m) of reduce_axis."""
    length, n_inner = x.shape[1], x.shape[2]
    n_out = starts.shape[0]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    for t in range(t0, t1):
        o = t // n_out
        m = t - o * n_out
        src = (o * length + starts[m]) * n_inner
        _vcopy(of, t * n_inner, xf, src, n_inner, 1)
        for j in range(1, counts[m]):
            _vacc(of, t * n_inner, xf, src + j * step * n_inner, n_inner, 1, is_sum)


@njit(cache=True, _nrt=False)
def _sum_adjoint_part(g, starts, counts, step, out, o0, o1):
    """Planes o0 <= o < o1 of sum_axis_adjoint."""
    n_out, n_inner = g.shape[1], g.shape[2]
    length = out.shape[1]
    gf = g.reshape(g.size)
    of = out.reshape(out.size)
    for o in range(o0, o1):
        plane = o * length * n_inner
        _vzero(of, plane, length * n_inner)
        for m in range(n_out):
            for j in range(counts[m]):
                _vacc(of, plane + (starts[m] + j * step) * n_inner, gf, (o * n_out + m) * n_inner, n_inner, 1, True)


def _build(parallel):
    """Compile-on-demand kernels, multi-threaded when ``parallel``."""

    @njit(cache=True, parallel=parallel)
    def reduce_axis(x, starts, counts, step, is_sum, out, n_threads):
        """out[o, m, i] = max (or sum, in out's dtype) over the window m of x[o, :, i]."""
        total = x.shape[0] * starts.shape[0]
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            _reduce_axis_part(x, starts, counts, step, is_sum, out, total * c // n_chunks,
                              total * (c + 1) // n_chunks)

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
        n_outer = g.shape[0]
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        for c in prange(n_chunks):
            _sum_adjoint_part(g, starts, counts, step, out, n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks)

    @njit(cache=True, parallel=parallel)
    def pool_max(x, tables, params, divs, out, n_threads):
        """Window maxima over 1, 2 or 3 adjacent axes.

        x: (O, D, H, W*I); out: (O, OD, OH, OW*I); tables and params as FusedView's.  Windows
        lo <= i < hi of H and W are full and regular; van Herk / Gil-Werman row blocks along H
        (only when D == 1) and tap doubling along W serve wide windows.  Work is split into
        4 * n_threads chunks of output rows.  divs is unused (one signature for both modes).
        """
        total = x.shape[0] * out.shape[1] * out.shape[2]
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            _pool_rows_max(x, tables, params, divs, out, total * c // n_chunks, total * (c + 1) // n_chunks)

    @njit(cache=True, parallel=parallel)
    def pool_sum(x, tables, params, divs, out, n_threads):
        """Window sums times the reciprocal divisors (FusedView.divisors), accumulated in float64;
        as pool_max otherwise."""
        total = x.shape[0] * out.shape[1] * out.shape[2]
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            _pool_rows_sum(x, tables, params, divs, out, total * c // n_chunks, total * (c + 1) // n_chunks)

    @njit(cache=True, parallel=parallel)
    def max_fused_indices(x, tables, params, out, idx, n_threads):
        """pool_max with flat indices ((d * H + h) * W + w) of the first maximum.

        The row pass keeps, per column, the first maximal row; the column pass breaks ties (and NaN
        against NaN) by the smaller flat index, which makes the winner the row-major first maximum.
        """
        total = x.shape[0] * out.shape[1] * out.shape[2]
        n_chunks = _n_chunks(total, n_threads, parallel)
        for c in prange(n_chunks):
            _max_rows_indices(x, tables, params, out, idx, total * c // n_chunks, total * (c + 1) // n_chunks)

    @njit(cache=True, parallel=parallel)
    def sum_fused_adjoint(g, tables, params, divs, out, n_threads):
        """The transpose of pool_sum: out[o] = sum over windows of g / divisor, spread over taps.

        g: (O, OD, OH, OW*I); out: (O, D, H, W*I), any float dtype (accumulated in float64 per plane).
        Planes are independent; windows overlapping inside a plane accumulate in order.
        """
        n_outer = g.shape[0]
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        for c in prange(n_chunks):
            _spread_planes(g, tables, params, divs, out, n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks)

    @njit(cache=True, parallel=parallel)
    def scatter_add(g, idx, out, n_threads):
        """out[o, idx[o, q, i], i] += g[o, q, i] on a zero-filled out; the pooled axes flattened in q.

        Serves any layout whose pooled axes are adjacent (inner = the trailing batch axes).  Returns
        the number of indices outside [0, out.shape[1]), which were skipped.
        """
        n_outer = g.shape[0]
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        bad = 0
        for c in prange(n_chunks):
            for o in range(n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks):
                bad += _scatter_plane(out[o], g[o], idx[o], True)
        return bad

    @njit(cache=True, parallel=parallel)
    def scatter_set(v, idx, out, n_threads):
        """out[o, idx[o, q, i], i] = v[o, q, i] on a zero-filled out (the later duplicate wins); returns
        the number of indices outside [0, out.shape[1]), as scatter_add."""
        n_outer = v.shape[0]
        n_chunks = _n_chunks(n_outer, n_threads, parallel)
        bad = 0
        for c in prange(n_chunks):
            for o in range(n_outer * c // n_chunks, n_outer * (c + 1) // n_chunks):
                bad += _scatter_plane(out[o], v[o], idx[o], False)
        return bad

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
