"""Fused kernels for windows over 1, 2 or 3 adjacent axes: forward max and sum, max with indices,
and the adjoint of the sum.

The input is viewed as (outer, D, H, W * inner): the pooled axes D, H, W are adjacent and
``inner`` holds the trailing batch axes (1 for NCHW, C for NHWC); 2-D pooling has D = 1, 1-D
pooling D = H = 1.  Each output row (o, od, oh) is made in one trip through memory: its window's
input rows are reduced into a row buffer (vectorised along the contiguous W * inner axis), then the
W taps of every output are reduced from that buffer.

Every variant is its own module-level function with its own name -- ``max_small_k2s2``, ``sum_wide``
and so on -- so numba's on-disk cache, which keys a function by its name, source location and
argument types, can never hand one variant's machine code to another.  The variants share one
source through inlined bodies whose mode arguments are literal constants at each call site, so
numba prunes the branches a variant does not take before it types them, and each variant compiles
only its own code:

* ``small_k2s2``, ``small_k3s2``, ``small_k2s1``, ``small_k3s1``, ``small_k4s4``: full windows of
  kw taps at stride s along W (one pass, a literal loop);
* ``line_k2s2`` ... ``line_k4s4``: the small windows when every window is one input row (1-D
  pooling), read from the input in place, without the row buffer;
* ``pairs_s2``, ``pairs_s1``: 2-D windows all full and 2x2, each output row straight from its two
  input rows, without the row buffer;
* ``taps``: any other window, tap-major (literal strides 1, 2 and 4 vectorise);
* ``inner``, ``inner2``, ``inner3``: channels-last windows, whose taps are runs of the inner axis
  combined straight into the output; 2x2 and 3x3 windows combine all their taps in one pass;
* ``wide``: wide windows in about log2(k) operations per output, not k -- along H the
  van Herk / Gil-Werman scheme makes each row from one block suffix and one block prefix, along W
  taps combine by doubling.  Neither needs an inverse, so sums keep the accuracy of a direct sum.

Kernels take a chunk of output rows ``t0 <= t < t1`` and a scratch buffer ``work`` that the caller
allocates (:mod:`poolkit._engine` runs chunks on its threads), and they run compiled without
reference counting (``_nrt=False``), so they cannot allocate.
"""

import numpy as np
from numba import njit

from ._loops import (
    add2,
    better,
    kernel,
    max2,
    max_num,
    pair_at,
    prefetch,
    prefetch_ahead,
    rmw,
    unruly_seen,
    unruly_start,
    unruly_take,
    vacc,
    vcopy,
    vpair,
    vput,
    vspread,
    vzero,
)
from ._runs import (
    max_rows3,
    max_taps3,
    pair_max,
    pair_sums,
)

# The window tables of D, H and W come packed in one int64 array (sd, cd, sh, ch, sw, cw: starts
# and counts) and the scalars in another (poolkit._geometry.FusedView.params), so that a call passes
# few arguments: numba's dispatch costs about 45 ns per argument, which is most of a tiny call.
(P_INNER, P_DD, P_DH, P_DW, P_KH, P_STRIDE_H, P_LO_H, P_HI_H, P_BLOCKS_H, P_KW, P_STRIDE_W, P_LO_W, P_HI_W,
 P_DOUBLING_W, P_ROWS_DISJOINT, P_OD, P_OH, P_OW, P_HEIGHT, P_WIDTH, P_PAD_W, P_OVER_W) = range(22)


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
def _next_row(o, od, oh, n_od, n_oh):
    """(o, od, oh) of the output row after (o, od, oh): two compares instead of _row_coords' two
    divisions, which cost most of a short row's time."""
    oh += 1
    if oh == n_oh:
        oh = 0
        od += 1
        if od == n_od:
            od = 0
            o += 1
    return o, od, oh


@njit(inline="always")
def _row_coords(t, n_od, n_oh):
    """(o, od, oh) of output row t = (o * OD + od) * OH + oh."""
    o = t // (n_od * n_oh)
    r = t - o * (n_od * n_oh)
    od = r // n_oh
    return o, od, r - od * n_oh


# --------------------------------------------------------------------------------------------
# the forward: rows into a buffer, then W taps
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _rows_direct(xf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, buf, g, sfx, state, comb):
    """The row strategy of the small and taps variants: buf = reduction of the window's input rows
    (d0 + jd*dd, h0 + jh*dh) of plane o, combined in that order (row-major), three rows of one jd
    per pass over buf where it can: one write of buf instead of three read-modify-writes (a 3x3x3
    max went from 3.3 to 2.5 ms).  A row is first stored into buf, so sums are float64 from their
    first operand, as a row at a time.  (One function, not a wrapper of a row reducer: numba copies
    an inlined body once per level it is inlined through.)"""
    plane = o * plane_len
    d0, nd, dd, h0, nh, dh = sd[od], cd[od], params[P_DD], sh[oh], ch[oh], params[P_DH]
    first = True
    n = np.uint64(row_len)
    for jd in range(nd):
        jh = 0
        while jh + 3 <= nh:
            a = np.uint64(plane + ((d0 + jd * dd) * height + h0 + jh * dh) * row_len)
            b = a + np.uint64(dh * row_len)
            c = b + np.uint64(dh * row_len)
            if first:
                for q in range(n):
                    buf[q] = xf[a + q]
                    buf[q] = comb(comb(buf[q], xf[b + q]), xf[c + q])
            else:
                for q in range(n):
                    buf[q] = comb(comb(comb(buf[q], xf[a + q]), xf[b + q]), xf[c + q])
            first = False
            jh += 3
        for j in range(jh, nh):
            vput(buf, 0, xf, plane + ((d0 + jd * dd) * height + h0 + j * dh) * row_len, row_len, 1, first, comb)
            first = False
    return state


@njit(inline="always")
def _rows_sums(xf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, buf, g, sfx, state, comb):
    """The row strategy of the sums of the variants that fill the row buffer (small, taps, edges):
    buf = the sum of the window's input rows in groups of up to three, each group summed first,
    (a + b) + c, then added to buf.  Over 2-D planes (one slice) a group is three rows along H,
    as in _rows_direct: one write of buf instead of three read-modify-writes.  Over volumes a group
    is a row's window slices (d0 + jd*dd, jd ascending), rows h0 + jh*dh in order: the order of
    :func:`sum_volume_k3s2`, which sums each window's slices into a plane first, once for all the
    rows of (o, od), and so makes these bits.  (The maxima keep _rows_direct's row-major order,
    which their NaN and tie rules follow.)  Each tap is converted to ``buf``'s type (float64, or
    float32 for float32 sums) as it is read, and every addition is in that type."""
    nd, nh = cd[od], ch[oh]
    row_step = np.uint64(params[P_DH] * row_len)
    slice_step = np.uint64(params[P_DD] * height * row_len)
    base = np.uint64(o * plane_len + (sd[od] * height + sh[oh]) * row_len)
    # (groups, taps per group, step within a group): over volumes one group per row, row_step apart
    n_out, n_in, step = (1, nh, row_step) if nd == 1 else (nh, nd, slice_step)
    wide = buf.dtype.type
    first = True
    n = np.uint64(row_len)
    for i in range(n_out):
        j = 0
        while j < n_in:
            a = base + np.uint64(i) * row_step + np.uint64(j) * step
            b = a + step
            c = b + step
            k = min(n_in - j, 3)
            if first:
                if k == 3:
                    for q in range(n):
                        buf[q] = comb(comb(wide(xf[a + q]), wide(xf[b + q])), wide(xf[c + q]))
                elif k == 2:
                    for q in range(n):
                        buf[q] = comb(wide(xf[a + q]), wide(xf[b + q]))
                else:
                    for q in range(n):
                        buf[q] = xf[a + q]
            elif k == 3:
                for q in range(n):
                    buf[q] = comb(buf[q], comb(comb(wide(xf[a + q]), wide(xf[b + q])), wide(xf[c + q])))
            elif k == 2:
                for q in range(n):
                    buf[q] = comb(buf[q], comb(wide(xf[a + q]), wide(xf[b + q])))
            else:
                for q in range(n):
                    buf[q] = comb(buf[q], wide(xf[a + q]))
            first = False
            j += k
    return state


@njit(inline="always")
def _row_blocks(xf, plane, row_len, b0, b1, base, n_scans, g, sfx, comb):
    """Prefix reductions (into g) and, when ``n_scans`` is 2, suffix reductions (into sfx) over the
    rows b0 <= h < b1 of the 2-D plane starting at xf[plane]: row h of the scan goes to row
    ``base + h`` of the flat (2 * kh, row_len) buffers.  One loop makes both: a max or a sum does
    not depend on the order its operands come in, so the suffix scan is the prefix scan run
    backwards.  The prefix adds the rows in order, top first, as a direct reduction would."""
    n = row_len
    for which in range(2):  # a literal range: LLVM unrolls it (range(n_scans) made sums 12% slower)
        if which < n_scans:
            dst = g if which == 0 else sfx
            h0, step = (b0, 1) if which == 0 else (b1 - 1, -1)
            vcopy(dst, (base + h0) * n, xf, plane + h0 * n, n, 1)
            for i in range(1, b1 - b0):
                h = h0 + i * step
                vpair(dst, (base + h) * n, dst, (base + h - step) * n, xf, plane + h * n, n, comb)


@njit(inline="always")
def _rows_blocks(xf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, buf, g, sfx, state, comb):
    """The row strategy of the blocks and wide variants (2-D pooling, no dilation along H): for
    full windows along H, van Herk / Gil-Werman blocks of kh rows, kept in a two-block ring of
    prefix and suffix reductions, make each row buffer from one suffix and one prefix.  A window
    clipped by the padding is scanned as one short prefix into slot 0 (which then holds no block):
    the same code, so the kernel compiles one scan instead of two (0.5 s less of a first call).
    ``state`` is (plane, r0, block in slot 0, block in slot 1, and two entries of the ``stop``'s,
    :func:`_window_nan`)."""
    plane, r0, slot0, slot1 = state[0], state[1], state[2], state[3]
    kh = params[P_KH]
    s = sh[oh]
    full = params[P_LO_H] <= oh < params[P_HI_H]
    if full and t // sh.shape[0] != plane:  # a new plane: blocks align at this window's start
        plane = t // sh.shape[0]
        r0 = s
        slot0 = -1
        slot1 = -1
    m = (s - r0) // kh if full else 0
    for mm in range(m, m + (2 if full else 1)):
        if full:
            held = slot0 if mm % 2 == 0 else slot1
            b0 = r0 + mm * kh
            b1 = min(b0 + kh, height)
            scans = 2 if held != mm and b0 < height else 0
            base = (mm % 2) * kh - b0
        else:  # the clipped window's rows, as a prefix in slot 0
            b0 = s
            b1 = s + ch[oh]
            scans = 1 if b1 > b0 else 0
            base = -b0
        if scans:
            _row_blocks(xf, o * plane_len, row_len, b0, b1, base, scans, g, sfx, comb)
            if full and mm % 2 == 1:
                slot1 = mm
            else:
                slot0 = mm if full else -1
    if full:
        e = s + kh - 1
        ge = ((((e - r0) // kh) % 2) * kh + (e - r0) % kh) * row_len
        aligned = (s - r0) % kh == 0
    else:
        ge = (ch[oh] - 1) * row_len
        aligned = True
    if aligned:
        if full or ch[oh] > 0:
            vcopy(buf, 0, g, ge, row_len, 1)
    else:
        vpair(buf, 0, sfx, ((m % 2) * kh + (s - r0) % kh) * row_len, g, ge, row_len, comb)
    return plane, r0, slot0, slot1, state[4], state[5]


@njit(inline="always")
def _cols_edges(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first):
    """The edge windows ow < lo and ow >= hi (clipped by padding or ceil mode, or every window of
    an irregular table), tap by tap.  Every column strategy starts with this.

    Every strategy combines the taps of the row at work[b] into dst, overwriting it when ``first``
    (the window's first row); the small and doubled strategies read a row buffer that already holds
    the whole window's rows, and are only called with ``first`` true."""
    lo, hi = params[P_LO_W], params[P_HI_W]
    tail = max(hi, lo)
    for e in range(lo + sw.shape[0] - tail):
        ow = e if e < lo else e - lo + tail
        for j in range(cw[ow]):  # its taps sw[ow] + j * dw, each a run of the inner axis
            vput(dst, a0 + ow * n_inner, work, b + (sw[ow] + j * params[P_DW]) * n_inner, n_inner, 1, j == 0 and first,
                 comb)


@njit(inline="always")
def _cols_small(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first):
    """Full windows of kw taps at stride s with inner == 1: ``lit`` is the loop of the variant
    (:func:`_k2s2`, :func:`_k3s2`, :func:`_k2s1`, :func:`_k3s1` or :func:`_k4s4`), one pass that
    LLVM vectorises, the taps combined in order (as tap-major passes would: the same bits).
    Non-overlapping windows of four were tap-major passes of stride 4, 7x slower on an AMD EPYC
    (one thread, (512, 65536) float32 rows: 48.5 against 7.1 ms).

    Each loop is a function of its own, passed in, so a variant inlines its own loop only.  One
    kernel holding all five loops took 0.3-0.4 s longer to compile (its LLVM lowering 1.35-1.40 s
    against 1.03-1.13 s for one loop, on this AMD EPYC); five loops chosen by a literal and pruned
    after inlining still cost numba's inlining pass 0.13-0.37 s more than one (inlining all five and
    their reductions before the pruning).

    Every index term is uint64 (a plain int literal would make the sum signed, and numba's
    wraparound check on it would stop the vectoriser).  Each loop converts a window's first tap to
    dst's dtype (float64 for sums) and adds the others to it there, so it may read the input
    itself (:func:`_feed_line`) as well as the row buffer, with the same result."""
    _cols_edges(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first)
    lo, hi = params[P_LO_W], params[P_HI_W]
    lit(dst, np.uint64(a0 + lo), work, np.uint64(b + sw[lo]), np.uint64(hi - lo), comb)


@njit(inline="always")
def _k2s2(dst, d, src, s, m, comb):
    """dst[d + q] = the window of 2 taps at stride 2 starting at src[s + 2 * q], for q < m."""
    wide = dst.dtype.type
    s1, two = s + np.uint64(1), np.uint64(2)
    for q in range(m):
        dst[d + q] = comb(wide(src[s + two * q]), src[s1 + two * q])


@njit(inline="always")
def _k3s2(dst, d, src, s, m, comb):
    """dst[d + q] = the window of 3 taps at stride 2 starting at src[s + 2 * q], for q < m."""
    wide = dst.dtype.type
    s1, s2, two = s + np.uint64(1), s + np.uint64(2), np.uint64(2)
    for q in range(m):
        dst[d + q] = comb(comb(wide(src[s + two * q]), src[s1 + two * q]), src[s2 + two * q])


@njit(inline="always")
def _k2s1(dst, d, src, s, m, comb):
    """dst[d + q] = the window of 2 taps at stride 1 starting at src[s + q], for q < m."""
    wide = dst.dtype.type
    s1 = s + np.uint64(1)
    for q in range(m):
        dst[d + q] = comb(wide(src[s + q]), src[s1 + q])


@njit(inline="always")
def _k3s1(dst, d, src, s, m, comb):
    """dst[d + q] = the window of 3 taps at stride 1 starting at src[s + q], for q < m."""
    wide = dst.dtype.type
    s1, s2 = s + np.uint64(1), s + np.uint64(2)
    for q in range(m):
        dst[d + q] = comb(comb(wide(src[s + q]), src[s1 + q]), src[s2 + q])


@njit(inline="always")
def _k4s4(dst, d, src, s, m, comb):
    """dst[d + q] = the window of 4 taps at stride 4 starting at src[s + 4 * q], for q < m."""
    wide = dst.dtype.type
    s1, s2, s3, four = s + np.uint64(1), s + np.uint64(2), s + np.uint64(3), np.uint64(4)
    for q in range(m):
        dst[d + q] = comb(comb(comb(wide(src[s + four * q]), src[s1 + four * q]), src[s2 + four * q]),
                          src[s3 + four * q])


@njit(inline="always")
def _strided_runs(dst, d0, src, s0, n, n_inner, stride, first, comb):
    """dst[d0 + q*I + i] (comb)= src[s0 + q*stride*I + i] for q < n, i < I: runs of the inner axis."""
    for q in range(n):
        vput(dst, d0 + q * n_inner, src, s0 + q * stride * n_inner, n_inner, 1, first, comb)


@njit(inline="always")
def _cols_taps(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first):
    """Full windows tap-major, one strided pass per tap, when inner == 1 or the stride is 1 (then
    the inner axis joins the run).  ``lit`` is the stride as a literal (1, 2 or 4: LLVM vectorises
    the strided loads; measured 3.5x for max at stride 4) or -1 for the plan's stride."""
    _cols_edges(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first)
    dw, kw, lo, hi = params[P_DW], params[P_KW], params[P_LO_W], params[P_HI_W]
    stride = lit if lit > 0 else params[P_STRIDE_W]
    for j in range(kw if hi > lo else 0):
        vput(dst, a0 + lo * n_inner, work, b + (sw[lo] + j * dw) * n_inner, (hi - lo) * n_inner, stride,
             j == 0 and first, comb)


@njit(inline="always")
def _cols_inner(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first):
    """Full windows tap-major when inner > 1 and the stride is > 1: a run of the inner axis per
    output and tap."""
    _cols_edges(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first)
    dw, kw, lo, hi = params[P_DW], params[P_KW], params[P_LO_W], params[P_HI_W]
    for j in range(kw if hi > lo else 0):
        _strided_runs(dst, a0 + lo * n_inner, work, b + (sw[lo] + j * dw) * n_inner, hi - lo, n_inner,
                      params[P_STRIDE_W], j == 0 and first, comb)


@njit(inline="always")
def _cols_doubled(work, b, n_inner, sw, cw, params, comb, dst, a0, lit, first):
    """Every window by doubling, when inner == 1 or the stride is 1: level l + 1 combines pairs of
    level-l entries 2**l taps apart (ping-ponging between the two halves of ``work``), and each
    output combines the levels of the set bits of kw -- about log2(kw) + popcount(kw) passes
    instead of kw, with no subtraction, so sums stay as accurate as a direct sum.  The row buffer
    (first half of ``work``) is overwritten.

    The row sits in the buffer after ``P_PAD_W`` positions (the padding before W) and before
    ``P_OVER_W`` more (the padding after, and ceil mode's overhang), which ``lit`` fills
    (:func:`_pad_copies` for maxima, :func:`_pad_zeros` for sums) so that they change no window's
    result: the windows clipped by the padding are then full windows of the padded row, window 0
    starting at its position 0, made by the same passes.  Made tap by tap, as the other column
    strategies make them (:func:`_cols_edges`), the 8 clipped windows of a 9x9 s1 p4 max of
    (4, 16, 256, 256) float32 took a third of its time (two threads, back to back: 2.74 ms, and
    1.85 ms for the same call without padding); padded, 1.87-2.11 ms (the average 3.43 -> 2.80 ms),
    and its cold first call 2.24-2.31 -> 2.14-2.20 s (the average's 2.57-2.61 -> 2.24-2.25 s)."""
    dw, kw, stride = params[P_DW], params[P_KW], params[P_STRIDE_W]
    width = work.shape[0] // 2
    tap = dw * n_inner
    lit(work, params[P_PAD_W] * n_inner, width - params[P_OVER_W] * n_inner, width, tap)
    n = sw.shape[0] * n_inner  # every window: n entries at ``stride`` (inner == 1 or stride == 1)
    level = 0
    other = width
    span = 1
    covered = 0
    bits = kw
    while bits:
        if bits & 1:
            vput(dst, a0, work, level + covered * tap, n, stride, covered == 0, comb)
            covered += span
        bits >>= 1
        if bits:
            off = span * tap
            vpair(work, other, work, level, work, level + off, width - off, comb)
            level, other = other, level
            span *= 2


@njit(inline="always")
def _pad_copies(work, lo, hi, width, tap):
    """The padding of a maximum's row buffer (:func:`_cols_doubled`): work[:lo] and work[hi:width]
    around the row work[lo:hi], each entry a copy of the row's entry ``tap`` (the dilation in
    entries) or a multiple of it apart -- before the row, the row's first entry of its class
    modulo ``tap``; after it, the last.  The taps of a window are one such class, so that entry is
    the window's own first (or last) tap: a window's maximum does not change, bits included (a
    repeated operand next to the one it copies, which max2 keeps first among its ties).  The row
    is longer than ``tap`` (the plan doubles only with a full window, ``(kw - 1) * tap + 1``
    entries at least), so it holds every class."""
    for i in range(lo - 1, -1, -1):  # right to left: each from a row entry or a copy made already
        work[i] = work[i + tap]
    for i in range(hi, width):
        work[i] = work[i - tap]


@njit(inline="always")
def _pad_zeros(work, lo, hi, width, tap):
    """The padding of a sum's row buffer (:func:`_cols_doubled`): -0.0 in work[:lo] and
    work[hi:width], the additive identity for every float64 (x + -0.0 is x, -0.0 and NaN payloads
    included)."""
    for i in range(lo):
        work[i] = -0.0
    for i in range(hi, width):
        work[i] = -0.0


@njit(inline="always")
def _feed_buffer(xf, buf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, g, sfx, state, comb,
                 rows, cols, n_inner, sw, cw, dst, a0, lit, direct):
    """The window's rows reduced into the row buffer by ``rows``, then its taps by ``cols``."""
    state = rows(xf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, buf[params[P_PAD_W] * n_inner:],
                 g, sfx, state, comb)
    cols(buf, 0, n_inner, sw, cw, params, comb, dst, a0, lit, True)
    return state


@njit(inline="always")
def _feed_single(xf, buf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, g, sfx, state, comb,
                 rows, cols, n_inner, sw, cw, dst, a0, lit, direct):
    """As _feed_buffer, but a window of one input row has its taps read from the input itself (no
    copy into the buffer: 1-D max pooling moves each byte once).  Maxima only: a sum's buffer is
    float64 and its input is not, so the two cannot share one ``src`` (1-D sums: _feed_line)."""
    src, b = buf, 0
    if cd[od] == 1 and ch[oh] == 1:
        src, b = xf, o * plane_len + (sd[od] * height + sh[oh]) * row_len
    else:
        state = rows(xf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, buf, g, sfx, state, comb)
    cols(src, b, n_inner, sw, cw, params, comb, dst, a0, lit, True)
    return state


@njit(inline="always")
def _no_stop(xf, o, od, oh, sd, cd, sh, ch, params, height, row_len, plane_len, state):
    """Never stop (every kernel but the fastmax ones)."""
    return False, state


@njit(inline="always")
def _window_nan(xf, o, od, oh, sd, cd, sh, ch, params, height, row_len, plane_len, state):
    """(whether the input rows of output row (o, od, oh)'s windows may hold a NaN, the new state):
    the ``stop`` of the fastmax kernels, which combine with :func:`max_num` (exact for numbers,
    not for NaN) and leave the rest of their chunk to the exact kernel from the first such row.

    The window's rows lie between flat input rows lo and hi (rows of all planes counted in order;
    rows in between that a 3-D or dilated window skips are scanned too: a NaN there only hands
    the rest of the chunk over early).  Each row is scanned once per chunk: ``state``'s last two
    entries are the first row not yet scanned and the previous window's lo (its first four are the
    row strategy's, :func:`_rows_blocks`).  Windows start at
    nondecreasing rows, so the rows from lo to the first unscanned one were scanned, and found
    clean, before; a window starting before the one before it (no pooling here makes one)
    rescans from its own lo."""
    upto, prev = state[4], state[5]
    lo = o * (plane_len // row_len) + sd[od] * height + sh[oh]
    hi = lo + (cd[od] - 1) * params[P_DD] * height + (ch[oh] - 1) * params[P_DH]
    if lo < prev:
        upto = lo
    n = np.uint64(row_len)
    for r in range(max(upto, lo), hi + 1):
        b = np.uint64(r * row_len)
        bad = False
        for q in range(n):
            bad |= xf[b + q] != xf[b + q]  # vectorised (fastmax kernels are for float dtypes only)
        if bad:
            return True, state
    return False, (state[0], state[1], state[2], state[3], max(upto, hi + 1), lo)


@njit(inline="always")
def _feed_line(xf, buf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, g, sfx, state, comb,
               rows, cols, n_inner, sw, cw, dst, a0, lit, direct):
    """Every window one input row (1-D pooling, or windows one row high and deep): its taps read
    from the input itself, for sums too -- each is converted to float64 as it is read, as the row
    buffer would convert it, so the same bits.  The row buffer of a 1-D sum is float64, twice the
    input row: filling and reading it took half the time of a (512, 65536) float32 average by 4
    (one thread: 20.1 -> 10.3 ms without it)."""
    cols(xf, o * plane_len + (sd[od] * height + sh[oh]) * row_len, n_inner, sw, cw, params, comb, dst, a0, lit, True)
    return state


@njit(inline="always")
def _feed_rows(xf, buf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, g, sfx, state, comb,
               rows, cols, n_inner, sw, cw, dst, a0, lit, direct):
    """Every window row read from the input, its taps combined straight into dst -- no row buffer
    (channels-last windows, whose taps are runs of the inner axis)."""
    first = True
    for jd in range(cd[od]):
        for jh in range(ch[oh]):
            b = o * plane_len + ((sd[od] + jd * params[P_DD]) * height + sh[oh] + jh * params[P_DH]) * row_len
            cols(xf, b, n_inner, sw, cw, params, comb, dst, a0, lit, first)
            first = False
    return state


@njit(inline="always")
def _row_taps(dst, d0, xf, s0, m, ni, step, tap, n_taps, first, comb):
    """The taps of one input row into m full windows along W, in the order _feed_rows combines
    them (tap by tap): dst[d0 + q*ni + i] (comb)= xf[s0 + q*step + j*tap + i] for j < n_taps, the
    first tap stored when ``first``.  The windows of _feed_pairs and _feed_nines clipped along H.
    (They went through _feed_rows, whose column strategy and its helpers numba inlined into every
    kernel of these variants for one output row in 56: a first NHWC 3x3 max call took 3.76-3.83 s
    with that, 2.72-3.17 s with this, in fresh processes on this project's AMD EPYC.)"""
    for q in range(m):
        d = d0 + q * ni
        s = s0 + q * step
        for j in range(n_taps):
            p = s + np.uint64(j) * tap
            if first and j == 0:
                for i in range(ni):
                    dst[d + i] = xf[p + i]
            else:
                for i in range(ni):
                    dst[d + i] = rmw(comb, dst[d + i], xf[p + i])


@njit(inline="always")
def _direct_factor(direct, lo, m):
    """(output, row offset, factor) of a feed that scales the sums of its full windows straight into
    the output (lit 1): ``direct`` is _forward's (out, t * out_len, div_d[od] * div_h[oh], div_w);
    the full windows all hold kw taps, so they share the divisor div_w[lo] (their sums times it:
    the bits _scale makes of them)."""
    of, e0, scale, div_w = direct
    return of, e0, scale * div_w[lo] if m else 1.0


@njit(inline="always")
def _direct_copy(of, e, acc, d, n, f):
    """of[e + q] = acc[d + q] * f for q < n: full windows a feed summed into ``acc`` (rows clipped
    along H), scaled into the output as _scale would."""
    for q in range(np.uint64(n)):
        of[e + q] = acc[d + q] * f


@njit(inline="always")
def _feed_pairs(xf, buf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, g, sfx, state, comb,
                rows, cols, n_inner, sw, cw, dst, a0, lit, direct):
    """Windows of two rows (and two taps along W) of 2-D pooling in runs of the inner axis: the four
    taps of each full window's run combined in one pass, in _feed_rows' order (row by row, tap by
    tap): one write per output instead of a write and three read-modify-writes.  Windows of one
    row (at padded edges) take their row's taps with _row_taps, in the same order.

    ``lit`` 1 (sums: sum_inner2, sum_inner3): the full windows' sums go straight into the output,
    times their one divisor (see _direct_factor), instead of into the float64 row ``dst`` that
    _scale then reads back (its finish is _scale_edges: the edge windows only).  The same bits;
    interleaved on the family-26 AMD EPYC, one thread, float32 channels-last averages: 2x2
    (32, 56, 56, 128) 3.61 -> 3.16 ms, 3x3 s2 p1 (32, 112, 112, 64) 8.85 -> 7.34 ms."""
    n_rows = cd[od] * ch[oh]  # (2-D pooling: cd is 1)
    r0 = o * plane_len + (sd[od] * height + sh[oh]) * row_len
    rs = params[P_DH] * row_len
    for r in range(n_rows):  # a loop, not a call per row: one inlined copy compiles faster
        _cols_edges(xf, r0 + r * rs, n_inner, sw, cw, params, comb, dst, a0, lit, r == 0)
    lo, hi = params[P_LO_W], params[P_HI_W]
    ni = np.uint64(n_inner)
    tap = np.uint64(params[P_DW] * n_inner)
    step = np.uint64(params[P_STRIDE_W] * n_inner)
    m = np.uint64(max(hi - lo, 0))
    d0 = np.uint64(a0 + lo * n_inner)
    w0 = sw[lo] * n_inner if m else 0  # the first full window's input offset (none: sw has no entry lo)
    of, e0, f = _direct_factor(direct, lo, m)
    if n_rows != 2:
        for r in range(n_rows):
            _row_taps(dst, d0, xf, np.uint64(r0 + r * rs + w0), m, ni, step, tap, params[P_KW], r == 0, comb)
        if lit == 1:
            _direct_copy(of, e0 + d0, dst, d0, m * ni, f)
        return state
    r1 = r0 + rs
    wide = dst.dtype.type
    for q in range(m):
        d = d0 + q * ni
        s0 = np.uint64(r0 + w0) + q * step
        s1 = np.uint64(r1 + w0) + q * step
        e = e0 + d
        prefetch_ahead(xf, s0, step)
        prefetch_ahead(xf, s1, step)
        for i in range(ni):  # the taps in order, the first in dst's dtype (float64 for sums)
            v = comb(comb(comb(wide(xf[s0 + i]), xf[s0 + tap + i]), xf[s1 + i]), xf[s1 + tap + i])
            if lit == 1:  # sums scaled straight into the output
                of[e + i] = v * f
            else:
                dst[d + i] = v
    return state


@njit(inline="always")
def _feed_nines(xf, buf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, g, sfx, state, comb,
                rows, cols, n_inner, sw, cw, dst, a0, lit, direct):
    """As _feed_pairs for 3x3 windows: a window of three rows (and three taps along W) combines the
    nine taps of each full window's run in one pass, in _feed_rows' order (row by row, tap by
    tap), instead of nine passes over dst.  Windows clipped along H take their rows' taps with
    _row_taps, in the same order."""
    n_rows = cd[od] * ch[oh]  # (2-D pooling: cd is 1)
    r0 = o * plane_len + (sd[od] * height + sh[oh]) * row_len
    rs = params[P_DH] * row_len
    for r in range(n_rows):  # a loop, not a call per row: one inlined copy compiles faster
        _cols_edges(xf, r0 + r * rs, n_inner, sw, cw, params, comb, dst, a0, lit, r == 0)
    lo, hi = params[P_LO_W], params[P_HI_W]
    ni = np.uint64(n_inner)
    tap = np.uint64(params[P_DW] * n_inner)
    two = tap + tap
    step = np.uint64(params[P_STRIDE_W] * n_inner)
    m = np.uint64(max(hi - lo, 0))
    d0 = np.uint64(a0 + lo * n_inner)
    w0 = sw[lo] * n_inner if m else 0  # the first full window's input offset (none: sw has no entry lo)
    of, e0, f = _direct_factor(direct, lo, m)
    if n_rows != 3:
        for r in range(n_rows):
            _row_taps(dst, d0, xf, np.uint64(r0 + r * rs + w0), m, ni, step, tap, params[P_KW], r == 0, comb)
        if lit == 1:
            _direct_copy(of, e0 + d0, dst, d0, m * ni, f)
        return state
    r1 = r0 + rs
    r2 = r1 + rs
    wide = dst.dtype.type
    for q in range(m):
        d = d0 + q * ni
        s0 = np.uint64(r0 + w0) + q * step
        s1 = np.uint64(r1 + w0) + q * step
        s2 = np.uint64(r2 + w0) + q * step
        e = e0 + d
        if lit == 1:  # sums (measured: 3x3 s2 averages 6.8 -> 4.7 ms one thread; maxima 5.5 -> 6.1, not asked)
            prefetch_ahead(xf, s0, step)
            prefetch_ahead(xf, s1, step)
            prefetch_ahead(xf, s2, step)
        for i in range(ni):  # the taps in order, the first in dst's dtype (float64 for sums)
            v = comb(comb(wide(xf[s0 + i]), xf[s0 + tap + i]), xf[s0 + two + i])
            v = comb(comb(comb(v, xf[s1 + i]), xf[s1 + tap + i]), xf[s1 + two + i])
            v = comb(comb(comb(v, xf[s2 + i]), xf[s2 + tap + i]), xf[s2 + two + i])
            if lit == 1:  # sums scaled straight into the output
                of[e + i] = v * f
            else:
                dst[d + i] = v
    return state


@njit(inline="always")
def _pairs(x, tables, params, divs, out, work, t0, t1, comb, lit, is_sum, guarded, row):
    """Output rows t0 <= t < t1 of 2-D windows of two rows by two taps, all full (``lit`` 22 or
    21: stride 2 or 1 along W), each row straight from its two input rows r0 and r1 into ``out``:
    no row buffer, one pass instead of three.  Each window is combined as the buffered path
    (_forward) combines it -- its two rows at each tap first, the first row in ``work``'s dtype
    (float64 sums), then its taps in order, times the same divisor -- so the same bits.

    Rows of 14 or 56 were the buffered path's worst case, its per-row work outweighing the row's.
    Interleaved against it on this AMD EPYC, one thread, float32: 2x2 stride-2 average
    (32, 512, 14, 14) 0.36 of its time, maximum 0.47; (32, 128, 56, 56) 0.82 and 0.62; stride-1
    average (8, 64, 56, 56) 0.46.  (3x3 and 4x4 windows read this way were 1.3-1.6x slower: each
    input element is read by more windows.)

    When the windows tile each plane's rows (stride 2 along H, H even), output row t reads its two
    input rows from t * 2 * W on: the loop over rows is one multiply per row, without the plane
    and row stepping.  That, the first window's offset folded into the rows (see _pairs_row) and
    one divisor per row instead of one per output took, interleaved against the code before on
    the family-26 AMD EPYC, one thread, float32: the 2x2 stride-2 average (32, 512, 14, 14)
    0.88 -> 0.53 ms, (32, 128, 56, 56) 3.29 -> 1.88 ms; the maximum 0.98 -> 0.93 and 2.05 ->
    1.92 ms.

    ``guarded`` (fastmax_pairs_s1): stop at the first row whose windows' rows may hold a NaN and
    return it, as _forward does with :func:`_window_nan`; else return t1.  ``row`` makes one output
    row: :func:`_pairs_row`, or :func:`_byte_pairs_row` (:func:`bytemax_pairs_s2`)."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    height, row_len = x.shape[2], x.shape[3]
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    div_d, div_h, div_w = _divisor_views(divs, params)
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    plane_len = x.shape[1] * height * row_len
    wide = work.dtype.type
    rs, b, m = np.uint64(params[P_DH] * row_len), np.uint64(sw[0] if n_ow else 0), np.uint64(n_ow)
    step = np.uint64(2 if lit == 22 else 1)
    w_div = div_w[0] if n_ow else 1.0
    hs = params[P_STRIDE_H] * row_len
    if not guarded and n_od == 1 and n_oh * hs == plane_len and sd[0] == 0 and sh[0] == 0:
        # the windows tile each plane's rows: output row t reads input rows from t * hs on
        scale = div_d[0] * div_h[0] * w_div if is_sum else 1.0  # every window is full
        uh, uo = np.uint64(hs), np.uint64(out.shape[3])
        for t in range(np.uint64(t0), np.uint64(t1)):
            r0 = t * uh + b
            prefetch_ahead(xf, r0, uh)
            row(of, t * uo, xf, r0, r0 + rs, step, m, comb, wide, scale, is_sum)
        return t1
    state = (np.int64(-1), np.int64(0), np.int64(-1), np.int64(-1), np.int64(-1), np.int64(0))
    o, od, oh = _row_coords(t0, n_od, n_oh)
    for t in range(t0, t1):
        r0 = np.uint64(o * plane_len + (sd[od] * height + sh[oh]) * row_len)
        d = np.uint64(t * out.shape[3])
        if is_sum:  # every window is full, so every div_w is div_w[0]: one factor per row
            row(of, d, xf, r0 + b, r0 + rs + b, step, m, comb, wide, div_d[od] * div_h[oh] * w_div, True)
        else:
            if guarded:  # fastmax: stop at the first row whose windows' rows hold a NaN
                halt, state = _window_nan(xf, o, od, oh, sd, cd, sh, ch, params, height, row_len, plane_len, state)
                if halt:
                    return t
            row(of, d, xf, r0 + b, r0 + rs + b, step, m, comb, wide, 1.0, False)
        o, od, oh = _next_row(o, od, oh, n_od, n_oh)
    return t1


@njit(inline="always")
def _pairs_row(of, d, xf, r0, r1, step, m, comb, wide, scale, is_sum):
    """One output row of _pairs: of[d + q] = the window at r0 + step * q and the next tap, and the
    same taps from r1 (the first window's taps in the two rows), the two rows at each tap first
    (times ``scale``, the product of the window's reciprocal divisors, for sums).

    The first window's offset is in r0 and r1, not added to each tap: with ``b + step * q`` as
    the tap LLVM vectorised the loop far worse (one thread, float32, 2x2 average of
    (32, 128, 56, 56): 1.93 ms with the offset folded into the rows, 3.22 ms without)."""
    one = np.uint64(1)
    for q in range(m):
        p = step * q
        v = comb(comb(wide(xf[r0 + p]), xf[r1 + p]), comb(wide(xf[r0 + p + one]), xf[r1 + p + one]))
        if is_sum:
            of[d + q] = v * scale
        else:
            of[d + q] = v


@njit(inline="always")
def _pair_sums_row(of, d, xf, r0, r1, step, m, comb, wide, scale, is_sum):
    """:func:`_pairs_row` for the sums of windows 2 wide at stride 2 (``step`` 2, ``comb`` add2),
    8 or 4 outputs at a time as LLVM vectors (:data:`pair_sums`: the same additions in the same
    order, so the same bits) when the input is float32 (sums in float64 or float32) and the row
    holds at least 4 outputs; otherwise :func:`_pairs_row`."""
    if not pair_sums(xf, r0, r1, r1, of, d, np.uint64(m), scale, wide):
        _pairs_row(of, d, xf, r0, r1, step, m, comb, wide, scale, is_sum)


@njit(inline="always")
def _byte_pairs_row(of, d, xf, r0, r1, step, m, comb, wide, scale, is_sum):
    """:func:`_pairs_row` for the maxima of uint8 windows 2 wide at stride 2 (``step`` 2; ``comb``
    unused): 16 or 8 outputs at a time as LLVM vectors (:data:`pair_max`); rows of fewer than 8
    load each window row's two taps as one 2-byte load (:func:`pair_at`), whose bytes are compared
    as 16-bit lanes.  The maximum of integers has no order rules to keep."""
    if pair_max(xf, r0, r1, r1, of, d, np.uint64(m), scale, wide):
        return
    two, low, high = np.uint64(2), np.uint16(0xFF), np.uint16(8)
    for q in range(m):
        w0, w1 = pair_at(xf, r0 + two * q), pair_at(xf, r1 + two * q)
        of[d + q] = np.uint8(max(max(w0 & low, w1 & low), max(w0 >> high, w1 >> high)))


@njit(inline="always")
def _keep(of, acc, t, out_len, n_inner, n_ow, div_d, div_h, div_w, od, oh, lo, hi):
    """The finish of a maximum's output row: none (feed wrote it into ``of``)."""


@njit(inline="always")
def _scale(of, acc, t, out_len, n_inner, n_ow, div_d, div_h, div_w, od, oh, lo, hi):
    """The finish of a sum's output row t: its window sums (``acc``) times the reciprocal divisors."""
    d0 = t * out_len
    scale = div_d[od] * div_h[oh]
    if n_inner == 1:
        d = np.uint64(d0)
        for q in range(np.uint64(n_ow)):
            of[d + q] = acc[q] * (scale * div_w[q])
    else:
        for ow in range(n_ow):
            f = scale * div_w[ow]
            d = np.uint64(d0 + ow * n_inner)
            u = np.uint64(ow * n_inner)
            for q in range(np.uint64(n_inner)):
                of[d + q] = acc[u + q] * f


@njit(inline="always")
def _scale_edges(of, acc, t, out_len, n_inner, n_ow, div_d, div_h, div_w, od, oh, lo, hi):
    """_scale for the edge windows ow < lo and ow >= hi only (runs of the inner axis): the feed
    (_feed_pairs or _feed_nines with lit 1) wrote the full windows' scaled sums into ``of``."""
    scale = div_d[od] * div_h[oh]
    tail = max(hi, lo)
    for e in range(lo + n_ow - tail):
        ow = e if e < lo else e - lo + tail
        f = scale * div_w[ow]
        d = np.uint64(t * out_len + ow * n_inner)
        u = np.uint64(ow * n_inner)
        for q in range(np.uint64(n_inner)):
            of[d + q] = acc[u + q] * f


@njit(inline="always")
def _forward(x, tables, params, divs, out, work, t0, t1, comb, rows, cols, lit, is_sum, feed, finish, stop):
    """Output rows t0 <= t < t1 (t = (o * OD + od) * OH + oh) of the window maxima (is_sum False,
    ``work`` of x's dtype) or of the window sums times the reciprocal divisors (is_sum True, sums
    accumulated in a float64 ``work``), with the row strategy ``rows`` and column strategy ``cols``.

    ``work`` (see work_size) holds the row buffer and doubling scratch (2 * row_len, each half with
    the row's padding for :func:`_cols_doubled`), the sums of
    one output row (out_len, sums only) and the blocks' ring of prefix and suffix rows.

    ``feed`` (:func:`_feed_buffer`, :func:`_feed_single`, :func:`_feed_rows`) says where the
    column strategy reads each output row's window from; ``lit`` is the column strategy's constant
    (a literal stride for :func:`_cols_taps`, the loop for :func:`_cols_small`, the row's padding
    for :func:`_cols_doubled`); ``finish`` ends
    each output row: :func:`_keep` for maxima, :func:`_scale` for sums.  Passing the sums' scaling
    as a function, rather than behind ``is_sum``, keeps it out of the maxima's kernels altogether:
    numba inlines every call before it prunes the branches of a literal (with the loops of
    _cols_small, 1.72 s against 1.98 s for a first 3x3 max, median of 3 compiles on this AMD EPYC).

    ``stop`` (:func:`_no_stop`, or :func:`_window_nan` for the fastmax kernels) is asked before each
    output row whether to stop there; the kernel returns the first row it did not make (t1 when
    it made them all).
    """
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    n_inner = params[P_INNER]
    height, row_len = x.shape[2], x.shape[3]
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    div_d, div_h, div_w = _divisor_views(divs, params)
    xf = x.reshape(x.size)
    out_len = out.shape[3]
    of = out.reshape(out.size)
    plane_len = x.shape[1] * height * row_len
    span = row_len + (params[P_PAD_W] + params[P_OVER_W]) * n_inner  # the row and its padding (doubled only)
    buf = work[:2 * span]
    a = 2 * span + (out_len if is_sum else 0)
    acc = work[2 * span:a]
    ring = (work.shape[0] - a) // 2
    g = work[a:a + ring]
    sfx = work[a + ring:]
    state = (np.int64(-1), np.int64(0), np.int64(-1), np.int64(-1), np.int64(-1), np.int64(0))
    lo, hi = params[P_LO_W], params[P_HI_W]
    o, od, oh = _row_coords(t0, n_od, n_oh)
    for t in range(t0, t1):
        halt, state = stop(xf, o, od, oh, sd, cd, sh, ch, params, height, row_len, plane_len, state)
        if halt:
            return t
        dst = acc if is_sum else of
        a0 = 0 if is_sum else t * out_len
        # for a feed that writes sums into ``of`` itself (lit 1, see _feed_pairs): the output row
        # and the row's divisor factors
        direct = (of, np.uint64(t * out_len), div_d[od] * div_h[oh], div_w)
        state = feed(xf, buf, o, od, oh, t, sd, cd, sh, ch, params, height, row_len, plane_len, g, sfx, state, comb,
                     rows, cols, n_inner, sw, cw, dst, a0, lit, direct)
        finish(of, acc, t, out_len, n_inner, n_ow, div_d, div_h, div_w, od, oh, lo, hi)
        o, od, oh = _next_row(o, od, oh, n_od, n_oh)
    return t1


def work_size(name: str, in4, out4, params) -> int:
    """Entries of the ``work`` buffer one chunk of the forward kernel ``name`` needs (see _forward):
    none for the pairs kernels, which read only its dtype (a small call then passes one empty
    array it made once instead of allocating a buffer per call: 0.2 us of a 1.8 us call)."""
    if "_pairs_" in name:
        return 0
    row_len = in4[3]
    padded = row_len + (int(params[P_PAD_W]) + int(params[P_OVER_W])) * int(params[P_INNER])  # see _cols_doubled
    return (2 * padded + (out4[3] if name.startswith("sum_") else 0)
            + (4 * int(params[P_KH]) * row_len if name.endswith(("_blocks", "_wide")) else 0)
            + (in4[2] * row_len if name.endswith("_small_k3s2") and in4[1] > 1 else 0))  # the volume kernels' plane


def _one_row(f) -> bool:
    """Whether every window of the fused view ``f`` is one input row (one along D and one along H)."""
    return bool((f.pd.counts == 1).all() and (f.ph.counts == 1).all())


def variant(f, op: str) -> str:
    """The name of the forward kernel for the fused view ``f`` and ``op`` ("max" or "sum")."""
    p = f.params
    blocks = bool(p[P_BLOCKS_H]) and f.in4[1] == 1
    doubling = bool(p[P_DOUBLING_W])
    stride, inner = int(p[P_STRIDE_W]), int(p[P_INNER])
    runs = inner > 1 and stride > 1  # the W taps are runs of the inner axis: only the inner variant
    if blocks and not runs:
        kind = "wide" if doubling else "blocks"
    elif doubling and not runs:
        kind = "doubled"
    elif p[P_HI_W] <= p[P_LO_W]:
        kind = "edges"
    elif (inner == 1 and f.in4[1] == 1 and p[P_KW] == p[P_KH] == 2 and p[P_DW] == 1 and stride in (1, 2)
          and p[P_LO_W] == 0 and p[P_HI_W] == p[P_OW] and p[P_LO_H] == 0 and p[P_HI_H] == p[P_OH]):
        kind = f"pairs_s{stride}"  # every window full and 2x2 (2-D): no row buffer, no edges
    elif inner == 1 and p[P_DW] == 1 and (stride in (1, 2) and p[P_KW] in (2, 3) or stride == p[P_KW] == 4):
        # windows of one input row read it in place; the small variants' maxima are NaN-guarded
        kind = f"{'line' if _one_row(f) else 'small'}_k{p[P_KW]}s{stride}"
    elif runs:
        square = p[P_KW] if p[P_KW] == p[P_KH] and p[P_KW] in (2, 3) and f.in4[1] == 1 else 0
        kind = f"inner{square}" if square else "inner"
    else:
        kind = "taps" + (str(stride) if stride in (1, 2, 4) else "")
    return f"{op}_{kind}"


# One named function per variant: the on-disk cache's identity of each.  Max kernels take a work
# buffer of x's dtype, sum kernels a float64 one; divs is unused by max (one signature for all).
# (op, rows, cols, literal stride) -- the wrappers below are spelled out, not generated, because
# numba caches a function by its source location.

@kernel
def max_edges(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, every window tap by tap (irregular tables: adaptive, global, fractional)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_edges, 0, False, _feed_single, _keep, _no_stop)


@kernel
def max_small_k2s2(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows of 2 taps at stride 2 along W (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k2s2, False, _feed_single, _keep, _no_stop)


@kernel
def max_small_k3s2(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows of 3 taps at stride 2 along W (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k3s2, False, _feed_single, _keep, _no_stop)


@kernel
def max_small_k2s1(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows of 2 taps at stride 1 along W (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k2s1, False, _feed_single, _keep, _no_stop)


@kernel
def max_small_k3s1(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows of 3 taps at stride 1 along W (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k3s1, False, _feed_single, _keep, _no_stop)


@kernel
def max_small_k4s4(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows of 4 taps at stride 4 along W (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k4s4, False, _feed_single, _keep, _no_stop)


@kernel
def max_line_k2s2(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, windows of one input row and 2 taps at stride 2 along W (inner == 1), read in
    place, with max2 (the NaN rules) throughout: a NaN scan before each row cost more than it saved."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k2s2, False, _feed_line, _keep, _no_stop)


@kernel
def max_line_k3s2(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, windows of one input row and 3 taps at stride 2 along W (inner == 1), read in
    place, with max2 (the NaN rules) throughout: a NaN scan before each row cost more than it saved."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k3s2, False, _feed_line, _keep, _no_stop)


@kernel
def max_line_k2s1(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, windows of one input row and 2 taps at stride 1 along W (inner == 1), read in
    place, with max2 (the NaN rules) throughout: a NaN scan before each row cost more than it saved."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k2s1, False, _feed_line, _keep, _no_stop)


@kernel
def max_line_k3s1(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, windows of one input row and 3 taps at stride 1 along W (inner == 1), read in
    place, with max2 (the NaN rules) throughout: a NaN scan before each row cost more than it saved."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k3s1, False, _feed_line, _keep, _no_stop)


@kernel
def max_line_k4s4(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, windows of one input row and 4 taps at stride 4 along W (inner == 1), read in
    place, with max2 (the NaN rules) throughout: a NaN scan before each row cost more than it saved."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_small, _k4s4, False, _feed_line, _keep, _no_stop)


@kernel
def max_pairs_s2(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, every window full and 2x2 at stride 2 along W (2-D, inner == 1)."""
    _pairs(x, tables, params, divs, out, work, t0, t1, max2, 22, False, False, _pairs_row)


@kernel
def bytemax_pairs_s2(x, tables, params, divs, out, work, t0, t1):
    """max_pairs_s2 for uint8 (the same results), each window row's taps loaded as one pair
    (:func:`_byte_pairs_row`); returns t1.  Run instead of the variant for uint8 (see
    :func:`twin`): LLVM leaves max_pairs_s2's loop of byte loads at stride 2 mostly scalar.  Two
    threads, (32, 128, 56, 56), the call, interleaved: 0.82-1.18 -> 0.60-0.72 ms."""
    return _pairs(x, tables, params, divs, out, work, t0, t1, max2, 22, False, False, _byte_pairs_row)


@kernel
def max_pairs_s1(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, every window full and 2x2 at stride 1 along W (2-D, inner == 1)."""
    _pairs(x, tables, params, divs, out, work, t0, t1, max2, 21, False, False, _pairs_row)


@kernel
def max_taps1(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows tap by tap at stride 1."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_taps, 1, False, _feed_single, _keep, _no_stop)


@kernel
def max_taps2(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows tap by tap at stride 2 (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_taps, 2, False, _feed_single, _keep, _no_stop)


@kernel
def max_taps4(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows tap by tap at stride 4 (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_taps, 4, False, _feed_single, _keep, _no_stop)


@kernel
def max_taps(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows tap by tap at any stride (inner == 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_taps, -1, False, _feed_single, _keep, _no_stop)


@kernel
def max_inner(x, tables, params, divs, out, work, t0, t1):
    """Window maxima, full windows tap by tap in runs of the inner axis (inner > 1, stride > 1)."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_inner, 0, False, _feed_rows, _keep, _no_stop)


@kernel
def max_inner2(x, tables, params, divs, out, work, t0, t1):
    """Window maxima of 2x2 windows in runs of the inner axis: the four taps in one pass."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_inner, 0, False, _feed_pairs, _keep, _no_stop)


@kernel
def max_inner3(x, tables, params, divs, out, work, t0, t1):
    """Window maxima of 3x3 windows in runs of the inner axis: the nine taps in one pass."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_inner, 0, False, _feed_nines, _keep, _no_stop)


@kernel
def max_doubled(x, tables, params, divs, out, work, t0, t1):
    """Window maxima of windows wide along W: taps combined by doubling."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_direct, _cols_doubled, _pad_copies, False, _feed_buffer, _keep, _no_stop)


@kernel
def max_blocks(x, tables, params, divs, out, work, t0, t1):
    """Window maxima of windows wide along H: van Herk / Gil-Werman row blocks."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_blocks, _cols_taps, -1, False, _feed_buffer, _keep, _no_stop)


@kernel
def max_wide(x, tables, params, divs, out, work, t0, t1):
    """Window maxima of windows wide along H and W: row blocks and doubled taps."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             max2, _rows_blocks, _cols_doubled, _pad_copies, False, _feed_buffer, _keep, _no_stop)


# The NaN-guarded twins of the max variants whose windows overlap along H (each input row read by
# more than one output row).  They combine with max_num, one instruction where max2 takes three
# compares and a blend, and stop at the first output row whose windows' input rows hold a NaN,
# returning it: poolkit._engine runs the exact variant (same name without "fast") from there.
# Measured on this project's AMD EPYC (family 26), one thread, float32, interleaved with the
# exact variant, same bits: 3x3 s2 p1 (32, 64, 112, 112) 0.47-0.57 of its time (0.83 in cache),
# 3x3x3 s2 p1 0.77, 5x5 s3 p2 0.75, 1-D 5 s3 0.65, 2x2 s1 0.82 (pairs_s1); channels-last 3x3 s2 p1
# (32, 112, 112, 64) 0.66 (inner3), 5x5 s2 p2 0.91 (inner).  Where each input row is read once
# (2x2 s2, 1-D by 4, channels-last 2x2 s2: 0.98-1.28x) or windows are 2 taps wide (2x2 s1 p1,
# 1.19x), the scan costs about what it saves or more: those variants have no twin.  From memory the
# scan also serves as a prefetch: the 3x3 twin without it took 1.45x as long.  A twin holding the
# exact path itself, rather than handing over, took 0.35-0.55 s longer to compile (a first 3x3 max
# 1.3 -> 1.9 s); handing over costs 0.1-0.2 s (the scan).  The wide twin (van Herk rows and doubled
# taps, the row scan keeping its two entries after the blocks' four in the kernels' ``state``), on
# this project's Intel Xeon, a 9x9 s1 p4 max of (4, 16, 256, 256) float32, fresh processes in turn
# with the exact variant, the suite's timing (the second call after idle, two threads): 2.00-2.10
# against 2.29-2.68 ms; back to back, one thread 3.43-3.46 against 3.59-3.73 ms.  (Before the
# padded rows of _cols_doubled, when the clipped windows took a third of the call, such a twin
# saved 1-6%, and was not kept.)


@kernel
def fastmax_small_k3s2(x, tables, params, divs, out, work, t0, t1):
    """max_small_k3s2 with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_small, _k3s2, False, _feed_single, _keep, _window_nan)


@kernel
def fastmax_wide(x, tables, params, divs, out, work, t0, t1):
    """max_wide with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_blocks, _cols_doubled, _pad_copies, False, _feed_buffer, _keep, _window_nan)


#: The largest plane (bytes) :func:`fastmax_plane_k3s2` scans whole and the plane kernels prefetch
#: ahead: it and the next one stay in a core's L2 (1 MiB on the family-26 EPYC); the max twin of
#: larger planes keeps the row scan.
PLANE_SCAN_BYTES = 1 << 18


@njit(inline="always")
def _get(xf, i):
    """The value of the element ``xf[i]``: the plane kernels' ``load`` of arrays of their own dtype."""
    return xf[i]


@njit(inline="always")
def _put(of, i, v):
    """``of[i] = v`` (cast to ``of``'s dtype): the plane kernels' ``store``."""
    of[i] = v


@njit(inline="always")
def _nan_at(xf, i):
    """Whether ``xf[i]`` is NaN: the plane kernels' ``is_nan``."""
    return xf[i] != xf[i]


@njit(inline="always")
def _any_nan(xf, base, n, is_nan):
    """Whether one of ``xf[base : base + n]`` is NaN (by ``is_nan``): the maxima's plane scan."""
    bad = False
    for q in range(np.uint64(n)):
        bad |= is_nan(xf, base + q)
    return bad


@njit(inline="always")
def _no_nan(xf, base, n, is_nan):
    """The sums' plane scan: none (a sum needs no NaN rule)."""
    return False


@njit(inline="always")
def _plane_scan(xf, o, scanned, plane_len, scan, is_nan):
    """(whether plane ``o`` holds a NaN by ``scan``, the plane now scanned): the plane kernels
    scan a plane once, whole, before its first output row (``scanned``: the plane scanned last)."""
    if o == scanned:
        return False, scanned
    return scan(xf, np.uint64(o * plane_len), plane_len, is_nan), o


@njit(inline="always")
def _emit_max(of, i, v, f, store):
    """A maximum's output: ``v`` (``f`` unused)."""
    store(of, i, v)


@njit(inline="always")
def _emit_sum(of, i, v, f, store):
    """A sum's output: ``v`` times its reciprocal divisor ``f``."""
    store(of, i, v * f)


@njit(inline="always")
def _no_row(x, r0, r1, r2, out, d, m, scale, acc):
    """The plane kernels' ``rows3`` and ``taps3`` for sums: none (the plain loops)."""
    return False


@njit(inline="always")
def _plane_k3s2(x, tables, params, divs, out, work, t0, t1, od, comb, scan, emit, load, store, is_nan, rows3, taps3):
    """Output rows t0 <= t < t1 of 3-wide stride-2 windows of at most 3 rows over 2-D planes
    (D = 1, inner 1), written out rather than through :func:`_forward`: the maxima (``comb``
    max_num, ``scan`` :func:`_any_nan`, ``emit`` :func:`_emit_max`) of
    :func:`fastmax_plane_k3s2`, up to the first row of the first plane that holds a NaN
    (returned), or the sums times the reciprocal divisors (add2, :func:`_no_nan`,
    :func:`_emit_sum`) of :func:`sum_plane_k3s2` (``work`` float64 for float64 sums; returns t1),
    their divisors those of output slice ``od`` along D (0 over 2-D planes; the slice whose plane
    :func:`sum_volume_k3s2` passes).  Elements are read by ``load(xf, i)`` (and converted to
    ``work``'s type), written by ``store(of, i, v)`` and checked by
    ``is_nan(xf, i)`` (:func:`_get`, :func:`_put`, :func:`_nan_at`; the float16 plane kernels of
    :mod:`poolkit._kernels.half` read and write float16 bits, and find NaNs by the bits: 5.3 ->
    4.9 ms against converting them).  ``rows3`` and ``taps3`` make a buffer row of three input
    rows and a row of full windows' taps as LLVM vectors where they serve the dtypes
    (:data:`~poolkit._kernels._runs.max_rows3`, :data:`~poolkit._kernels._runs.max_taps3`,
    returning False where not; :func:`_no_row` for sums), the plain loops otherwise.  The choices
    are functions passed in, not an ``is_sum``
    literal, so that each kernel compiles only its own code (with the literal, a first 3x3 max
    took 2.17 s cold against 1.77 s before the sums shared this body, on the family-25 EPYC).

    The window's rows go into the row buffer first (in ``work``'s dtype), then the taps, in the
    order of the exact variant (max_small_k3s2, sum_small_k3s2: :func:`_rows_direct` then
    :func:`_cols_small` and :func:`_scale`), so the same bits; the full windows' sums are scaled
    straight into the output, by their one divisor (see :func:`_direct_factor`).  While a plane's
    rows are made, each output row asks for the cache lines of its share of the next plane
    (``prefetch``), when a plane is at most PLANE_SCAN_BYTES: it and the next one stay in a core's
    L2.  The maxima scan each plane for NaN whole, once, before its first output row: the next
    plane's scan then reads from the cache."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    div_d, div_h, div_w = _divisor_views(divs, params)
    dh, dw, lo, hi = params[P_DH], params[P_DW], params[P_LO_W], params[P_HI_W]
    n_oh, n_ow = sh.shape[0], sw.shape[0]
    row_len, out_len = x.shape[3], out.shape[3]
    plane_len = x.shape[2] * row_len
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    buf = work[:row_len]
    wide = work.dtype.type
    n = np.uint64(row_len)
    zero = np.uint64(0)
    line = np.uint64(max(64 // x.itemsize, 1))
    # the next plane's elements each row prefetches (none when two planes would not stay in L2, or
    # when x is one plane: the volume kernels' plane in ``work`` has no next one)
    share = np.uint64((plane_len + n_oh - 1) // n_oh
                      if plane_len * x.itemsize <= PLANE_SCAN_BYTES and x.shape[0] > 1 else 0)
    tail = max(hi, lo)
    m = np.uint64(max(hi - lo, 0))
    w0 = np.uint64(sw[lo] if m else 0)
    o, _, oh = _row_coords(t0, 1, n_oh)
    scanned = -1
    for t in range(t0, t1):
        base = np.uint64(o * plane_len)
        nan, scanned = _plane_scan(xf, o, scanned, plane_len, scan, is_nan)
        if nan:
            return t
        ahead = base + np.uint64(plane_len) + np.uint64(oh) * share
        for z in range(np.uint64(0), share, line):
            prefetch(xf, ahead + z)
        # the window's rows into buf, three at a time, then one at a time
        a = base + np.uint64(sh[oh] * row_len)
        step = np.uint64(dh * row_len)
        nh = ch[oh]
        if nh == 3:
            b, c = a + step, a + step + step
            if not rows3(xf, a, b, c, buf, zero, n, 0.0, wide):
                for q in range(n):
                    buf[q] = comb(comb(wide(load(xf, a + q)), wide(load(xf, b + q))), wide(load(xf, c + q)))
        elif nh == 2:
            b = a + step
            for q in range(n):
                buf[q] = comb(wide(load(xf, a + q)), wide(load(xf, b + q)))
        else:
            for q in range(n):
                buf[q] = load(xf, a + q)
        # the taps: edge windows (at most 3 taps) one by one, then the full ones in one pass
        d0 = t * out_len
        scale = div_d[od] * div_h[oh]
        for e in range(lo + n_ow - tail):
            ow = e if e < lo else e - lo + tail
            s0, v = sw[ow], buf[sw[ow]]
            if cw[ow] > 1:
                v = comb(v, buf[s0 + dw])
                if cw[ow] > 2:
                    v = comb(v, buf[s0 + dw + dw])
            emit(of, d0 + ow, v, scale * div_w[ow], store)
        f = scale * div_w[lo] if m else 1.0
        d, two = np.uint64(d0 + lo), np.uint64(2)
        w1, w2 = w0 + np.uint64(1), w0 + np.uint64(2)
        if not taps3(buf, w0, w0, w0, of, d, m, 0.0, wide):
            for q in range(m):
                v = comb(comb(buf[w0 + two * q], buf[w1 + two * q]), buf[w2 + two * q])
                emit(of, d + q, v, f, store)
        oh += 1
        if oh == n_oh:
            oh = 0
            o += 1
    return t1


@kernel
def fastmax_plane_k3s2(x, tables, params, divs, out, work, t0, t1):
    """max_small_k3s2 with max_num for 2-D windows (D = 1) of at most 3 rows over planes of at
    most PLANE_SCAN_BYTES, up to the first row of the first plane that holds a NaN (returned):
    :func:`_plane_k3s2`.  Written out rather than through :func:`_forward`: the general row and
    column strategies cost about 20 ns per output row more (one thread, (32, 64, 112, 112) float32
    3x3 s2 p1, 16 passes over two images in cache: 5.8 ms with them, 3.6 ms written out; from
    memory, with the prefetch, 6.5 against 4.2 ms).
    """
    return _plane_k3s2(x, tables, params, divs, out, work, t0, t1, 0, max_num, _any_nan, _emit_max, _get, _put, _nan_at,
                       max_rows3, max_taps3)


@njit(inline="always")
def _volume_views(x, tables, params, out, work):
    """What the volume kernels (:func:`fastmax_volume_k3s2`, :func:`sum_volume_k3s2`) work with:
    (flat x, flat out, the plane ``p`` in ``work`` (its first H * W entries), ``p`` as a 4-D
    one-plane array, the rest of ``work``, H * W as uint64, the step from one window slice to the
    next, the D window tables sd and cd, OD, OH, D, OW)."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    height, row_len = x.shape[2], x.shape[3]
    plane = height * row_len
    n = np.uint64(plane)
    p = work[:plane]
    return (x.reshape(x.size), out.reshape(out.size), p, p.reshape((1, 1, height, row_len)), work[plane:], n,
            np.uint64(params[P_DD]) * n, sd, cd, sd.shape[0], sh.shape[0], x.shape[1], out.shape[3])


@njit(inline="always")
def _slab(t, t1, n_od, n_oh, depth, sd, cd, plane):
    """(o, od, oh of output row t, the end of this (o, od)'s rows in the chunk, the flat index of
    its first window slice, the window's slices) for the volume kernels."""
    o, od, oh = _row_coords(t, n_od, n_oh)
    return o, od, oh, min(t1, t - oh + n_oh), np.uint64((o * depth + sd[od]) * plane), cd[od]


@kernel
def fastmax_volume_k3s2(x, tables, params, divs, out, work, t0, t1):
    """max_small_k3s2 with max_num for 3-D windows (D > 1) of at most 3 slices and 3 rows, 3 wide at
    stride 2, over planes of at most PLANE_SCAN_BYTES, up to the first row of the first (o, od)
    whose window slices hold a NaN or a -0.0 (returned; the exact variant makes the rest).

    The exact variant reduces each output row's 3 x 3 input rows slice by slice, then row by row
    (:func:`_rows_direct`): nine short rows per output row.  Here the window slices of each (o, od)
    are reduced first, in one pass over whole planes, into a plane in ``work`` (its first H * W
    entries), and that plane's output rows are then made as a 2-D plane's are
    (:func:`_plane_k3s2`).  That combines each window's taps in another order than the variant --
    which changes no bit while the taps hold neither NaN nor -0.0 (equal numbers other than the two
    zeros have the same bits), and the pass finds those, by their bits
    (:func:`~poolkit._kernels._loops.unruly_take`).  One thread, (2, 16, 64, 64, 64) float32
    3x3x3 s2 p1, interleaved with the row twin (fastmax_small_k3s2): 3.24-3.56 ms against
    4.80-5.05 ms (a prototype of this kernel, BENCHMARKS.md)."""
    xf, of, p, p4, rest, n, dd, sd, cd, n_od, n_oh, depth, out_len = _volume_views(x, tables, params, out, work)
    t = t0
    while t < t1:
        o, od, oh, stop, b0, nd = _slab(t, t1, n_od, n_oh, depth, sd, cd, p.size)
        big, low = unruly_start(xf[b0])
        if nd == 3:
            b1 = b0 + dd
            b2 = b1 + dd
            for i in range(n):
                a, b, c = xf[b0 + i], xf[b1 + i], xf[b2 + i]
                p[i] = max_num(max_num(a, b), c)
                big, low = unruly_take(a, b, c, big, low)
        elif nd == 2:
            b1 = b0 + dd
            for i in range(n):
                a, b = xf[b0 + i], xf[b1 + i]
                p[i] = max_num(a, b)
                big, low = unruly_take(a, b, b, big, low)
        else:
            for i in range(n):
                a = xf[b0 + i]
                p[i] = a
                big, low = unruly_take(a, a, a, big, low)
        if unruly_seen(big, low):  # a NaN or a -0.0
            return t
        e = (o * n_od + od) * n_oh * out_len  # the slab's output rows, as one plane's
        o4 = of[e:e + n_oh * out_len].reshape((1, 1, n_oh, out_len))
        _plane_k3s2(p4, tables, params, divs, o4, rest, oh, oh + stop - t, 0, max_num, _no_nan, _emit_max, _get, _put,
                    _nan_at, max_rows3, max_taps3)
        t = stop
    return t1


@kernel
def sum_volume_k3s2(x, tables, params, divs, out, work, t0, t1):
    """sum_small_k3s2 for 3-D windows (D > 1) of at most 3 slices and 3 rows, 3 wide at stride 2,
    over planes whose float64 sums fit in L2 (:func:`plane`), the same bits: the window slices of
    each (o, od) are summed first, in one pass over whole planes, into a plane in ``work`` (its
    first H * W entries, in ``work``'s type), whose output rows are then made as a 2-D plane's are
    (:func:`_plane_k3s2`), with the divisors of slice od.  The variant sums each row's slices first
    too (:func:`_rows_sums`), but for each output row again, nine input rows per output row: at
    stride 2 along D and H it reads each input row 2.25 times, this 1.5 times (and the plane's rows
    1.5 times).  Measured: BENCHMARKS.md, "3-D averages: the slices first"."""
    xf, of, p, p4, rest, n, dd, sd, cd, n_od, n_oh, depth, out_len = _volume_views(x, tables, params, out, work)
    wide = work.dtype.type
    t = t0
    while t < t1:
        o, od, oh, stop, b0, nd = _slab(t, t1, n_od, n_oh, depth, sd, cd, p.size)
        if nd == 3:
            b1 = b0 + dd
            b2 = b1 + dd
            for i in range(n):
                p[i] = add2(add2(wide(xf[b0 + i]), wide(xf[b1 + i])), wide(xf[b2 + i]))
        elif nd == 2:
            b1 = b0 + dd
            for i in range(n):
                p[i] = add2(wide(xf[b0 + i]), wide(xf[b1 + i]))
        else:
            for i in range(n):
                p[i] = xf[b0 + i]
        e = (o * n_od + od) * n_oh * out_len  # the slab's output rows, as one plane's
        o4 = of[e:e + n_oh * out_len].reshape((1, 1, n_oh, out_len))
        _plane_k3s2(p4, tables, params, divs, o4, rest, oh, oh + stop - t, od, add2, _no_nan, _emit_sum, _get, _put,
                    _nan_at, _no_row, _no_row)
        t = stop


@kernel
def sum_plane_k3s2(x, tables, params, divs, out, work, t0, t1):
    """sum_small_k3s2 for 2-D windows (D = 1) of at most 3 rows, the same bits, written out
    (:func:`_plane_k3s2`): the engine runs it instead of the variant (see :func:`plane`)."""
    _plane_k3s2(x, tables, params, divs, out, work, t0, t1, 0, add2, _no_nan, _emit_sum, _get, _put, _nan_at, _no_row,
                _no_row)


def plane(f, op: str) -> str | None:
    """The name of the written-out plane kernel the engine runs instead of the fused view ``f``'s
    ``op`` variant, or None: :func:`sum_plane_k3s2` for sums of windows 3 wide at stride 2 and at
    most 3 high over 2-D planes (inner 1), any plane size, and :func:`sum_volume_k3s2` for such
    windows at most 3 deep over 3-D inputs whose planes of float64 sums are at most
    PLANE_SCAN_BYTES (the maxima of such windows have twins instead: :func:`twin`)."""
    if op != "sum" or variant(f, op) != "sum_small_k3s2" or f.params[P_KH] > 3:
        return None
    if f.in4[1] == 1:
        return "sum_plane_k3s2"
    if f.pd.kernel <= 3 and f.in4[2] * f.in4[3] * 8 <= PLANE_SCAN_BYTES:
        return "sum_volume_k3s2"
    return None


def twin(f, itemsize: int, kind: str = "f") -> str | None:
    """The name of the fastmax twin of the fused view ``f``'s max variant for elements of
    ``itemsize`` bytes and NumPy dtype kind ``kind``, or None when it has none:
    :func:`fastmax_plane_k3s2` for windows 3 wide at stride 2 and at most 3 high over small 2-D
    planes, :func:`fastmax_volume_k3s2` for such windows at most 3 deep over small planes of 3-D
    inputs, else, for floats, ``"fast"`` + the variant's name where that exists.

    Integers have no NaN, so max_num is max2 for them and the plane and volume twins give the
    variant's results (their gain is their order of work: two threads, uint8 (32, 64, 112, 112)
    3x3 s2 p1, 3.29-3.33 ms by the variant, 1.82-1.88 ms by the plane twin); the other twins would
    only add their NaN checks.  uint8 2x2 stride-2 maxima have :func:`bytemax_pairs_s2`."""
    name = variant(f, "max")
    if (name == "max_small_k3s2" and f.params[P_KH] <= 3 and f.pd.kernel <= 3
            and f.in4[2] * f.in4[3] * itemsize <= PLANE_SCAN_BYTES):
        return "fastmax_plane_k3s2" if f.in4[1] == 1 else "fastmax_volume_k3s2"
    if kind != "f":
        return "bytemax_pairs_s2" if name == "max_pairs_s2" and kind == "u" and itemsize == 1 else None
    return "fast" + name if "fast" + name in globals() else None


@kernel
def fastmax_small_k3s1(x, tables, params, divs, out, work, t0, t1):
    """max_small_k3s1 with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_small, _k3s1, False, _feed_single, _keep, _window_nan)


@kernel
def fastmax_pairs_s1(x, tables, params, divs, out, work, t0, t1):
    """max_pairs_s1 with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _pairs(x, tables, params, divs, out, work, t0, t1, max_num, 21, False, True, _pairs_row)


@kernel
def fastmax_taps1(x, tables, params, divs, out, work, t0, t1):
    """max_taps1 with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_taps, 1, False, _feed_single, _keep, _window_nan)


@kernel
def fastmax_taps2(x, tables, params, divs, out, work, t0, t1):
    """max_taps2 with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_taps, 2, False, _feed_single, _keep, _window_nan)


@kernel
def fastmax_taps4(x, tables, params, divs, out, work, t0, t1):
    """max_taps4 with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_taps, 4, False, _feed_single, _keep, _window_nan)


@kernel
def fastmax_taps(x, tables, params, divs, out, work, t0, t1):
    """max_taps with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_taps, -1, False, _feed_single, _keep, _window_nan)


@kernel
def fastmax_inner(x, tables, params, divs, out, work, t0, t1):
    """max_inner with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_inner, 0, False, _feed_rows, _keep, _window_nan)


@kernel
def fastmax_inner3(x, tables, params, divs, out, work, t0, t1):
    """max_inner3 with max_num, up to the first row whose windows may hold a NaN (returned)."""
    return _forward(x, tables, params, divs, out, work, t0, t1,
                    max_num, _rows_direct, _cols_inner, 0, False, _feed_nines, _keep, _window_nan)


@kernel
def sum_edges(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_edges."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_edges, 0, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_small_k2s2(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_small_k2s2."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k2s2, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_small_k3s2(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_small_k3s2."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k3s2, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_small_k2s1(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_small_k2s1."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k2s1, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_small_k3s1(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_small_k3s1."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k3s1, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_small_k4s4(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_small_k4s4."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k4s4, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_line_k2s2(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors, windows of one input row and 2 taps at stride 2
    along W (inner == 1), read in place."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k2s2, True, _feed_line, _scale, _no_stop)


@kernel
def sum_line_k3s2(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors, windows of one input row and 3 taps at stride 2
    along W (inner == 1), read in place."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k3s2, True, _feed_line, _scale, _no_stop)


@kernel
def sum_line_k2s1(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors, windows of one input row and 2 taps at stride 1
    along W (inner == 1), read in place."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k2s1, True, _feed_line, _scale, _no_stop)


@kernel
def sum_line_k3s1(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors, windows of one input row and 3 taps at stride 1
    along W (inner == 1), read in place."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k3s1, True, _feed_line, _scale, _no_stop)


@kernel
def sum_line_k4s4(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors, windows of one input row and 4 taps at stride 4
    along W (inner == 1), read in place."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_small, _k4s4, True, _feed_line, _scale, _no_stop)


@kernel
def sum_pairs_s2(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_pairs_s2."""
    _pairs(x, tables, params, divs, out, work, t0, t1, add2, 22, True, False, _pair_sums_row)


@kernel
def sum_pairs_s1(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_pairs_s1."""
    _pairs(x, tables, params, divs, out, work, t0, t1, add2, 21, True, False, _pairs_row)


@kernel
def sum_taps1(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_taps1."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_taps, 1, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_taps2(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_taps2."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_taps, 2, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_taps4(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_taps4."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_taps, 4, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_taps(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_taps."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_taps, -1, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_inner(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_inner."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_inner, 0, True, _feed_rows, _scale, _no_stop)


@kernel
def sum_inner2(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_inner2."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_inner, 1, True, _feed_pairs, _scale_edges, _no_stop)


@kernel
def sum_inner3(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_inner3."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_inner, 1, True, _feed_nines, _scale_edges, _no_stop)


@kernel
def sum_doubled(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_doubled."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_sums, _cols_doubled, _pad_zeros, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_blocks(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_blocks."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_blocks, _cols_taps, -1, True, _feed_buffer, _scale, _no_stop)


@kernel
def sum_wide(x, tables, params, divs, out, work, t0, t1):
    """Window sums times the reciprocal divisors; the windows as in max_wide."""
    _forward(x, tables, params, divs, out, work, t0, t1,
             add2, _rows_blocks, _cols_doubled, _pad_zeros, True, _feed_buffer, _scale, _no_stop)


# --------------------------------------------------------------------------------------------
# max with indices
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _later(v, fi, b, bi):
    """True when the tap v at flat index fi replaces the maximum so far b at bi: greater, equal at
    a smaller index, or a NaN against a number or against a NaN at a larger index (branch-free)."""
    return (v > b) | ((v == b) & (fi < bi)) | ((v != v) & ((b == b) | (fi < bi)))


@njit(inline="always")
def _flat_row(k, n_h, sd, od, sh, oh, dd, dh, height):
    """The flat row d * H + h of the k-th input row of the window of output row (od, oh)."""
    return (sd[od] + (k // n_h) * dd) * height + sh[oh] + (k % n_h) * dh


@njit(inline="always")
def _index_rows(xf, buf, row, o, od, oh, sd, cd, sh, ch, params, height, row_len, plane_len):
    """The maxima of the input rows of output row (o, od, oh)'s windows, column by column, into one
    half of ``buf[:2 * row_len]`` and the flat row of each column's first maximum into the same
    half of ``row``; returns the offset of that half (0 or row_len).

    Each pass combines the maxima so far (the first pass: the window's first row, its flat row
    filled in) with two more rows (the last repeated when the window has no more: a repeated row
    never wins), so a 3-row window takes one pass.  No pass writes the half it reads: in place,
    the row and column passes of a (4, 32, 32, 64, 64) 3x3x3 s2 p1 float32 max with indices took
    35 ms against 10.6 (two threads), of a (16, 64, 112, 112) 5x5 s3 p2 one 20 against 10 ms."""
    dd, dh = params[P_DD], params[P_DH]
    n, base = np.uint64(row_len), o * plane_len
    n_h = ch[oh]
    last = cd[od] * n_h - 1
    r0 = _flat_row(0, n_h, sd, od, sh, oh, dd, dh, height)
    for q in range(n):
        row[q] = r0
    src, s0, a = xf, np.uint64(base + r0 * row_len), np.uint64(0)
    for k in range(1, max(last, 1) + 1, 2):
        r1 = _flat_row(min(k, last), n_h, sd, od, sh, oh, dd, dh, height)
        r2 = _flat_row(min(k + 1, last), n_h, sd, od, sh, oh, dd, dh, height)
        s1, s2, na = np.uint64(base + r1 * row_len), np.uint64(base + r2 * row_len), n - a
        for q in range(n):
            b = src[s0 + q]
            bi = row[a + q]
            v = xf[s1 + q]
            take = better(v, b)
            b = v if take else b
            bi = r1 if take else bi
            v = xf[s2 + q]
            take = better(v, b)
            buf[na + q] = v if take else b
            row[na + q] = r2 if take else bi
        src, s0, a = buf, na, na
    return a


@njit(inline="always")
def _index_taps(buf, row, a, w0, w1, w2, acc, c, dst, dsti, d, n_runs, run_len, stride, step, width, n_inner):
    """One pass of the full windows' column taps: runs r < n_runs of run_len outputs, output
    (r, e) reading the taps at columns w + r * stride (+ e * step when inner == 1) of the row pass's
    half ``a`` and writing dst[d + r * run_len + e], dsti likewise.  The pass takes the maximum so
    far -- the taps w0 and w1 (``acc`` false: the window's first two) or buf[c + ...] and
    row[c + ...] (``acc``) -- and the tap w2.  A repeated tap never wins.  Inner == 1: one run of
    every output, ``step`` the stride; inner > 1: one run per output column, of the inner axis
    (step 1)."""
    ua, uc, ud, ui = np.uint64(a), np.uint64(c), np.uint64(d), np.uint64(n_inner)
    un, st, sp = np.uint64(run_len), np.uint64(stride), np.uint64(step)
    w_step = sp if n_inner == 1 else np.uint64(0)  # the column of element e of a run, over its first's
    for r in range(np.uint64(n_runs)):
        c0, c1, c2 = np.uint64(w0) + r * st, np.uint64(w1) + r * st, np.uint64(w2) + r * st
        p0, p1, p2 = ua + c0 * ui, ua + c1 * ui, ua + c2 * ui
        o = r * un
        for e in range(un):
            if acc:
                b = buf[uc + o + e]
                bi = row[uc + o + e]
            else:
                b = buf[p0 + e * sp]
                bi = row[p0 + e * sp] * width + np.int64(c0 + e * w_step)
                v = buf[p1 + e * sp]
                fi = row[p1 + e * sp] * width + np.int64(c1 + e * w_step)
                take = _later(v, fi, b, bi)
                b = v if take else b
                bi = fi if take else bi
            v = buf[p2 + e * sp]
            fi = row[p2 + e * sp] * width + np.int64(c2 + e * w_step)
            take = _later(v, fi, b, bi)
            dst[ud + o + e] = v if take else b
            dsti[ud + o + e] = fi if take else bi


@kernel
def max_indices(x, tables, params, out, idx, buf, row, t0, t1):
    """Output rows t0 <= t < t1 of the window maxima with flat indices ((d * H + h) * W + w) of the
    first maximum, in row-major order (NaN beats every number; the first NaN wins).  ``buf`` (x's
    dtype) and ``row`` (int64) hold :func:`index_work_size` entries each.

    Each output row: the row passes (:func:`_index_rows`) keep, per column, the maximum of the
    window rows and its first row; the column passes (:func:`_index_taps`, vectorised, then the
    clipped edge windows one by one) compare the columns' flat indices on ties, which makes the
    winner the row-major first maximum.

    One kernel, its body written out: inlined, a body this size cost 0.9 s of the first call
    (numba copies an inlined body's IR block by block, each copy with the whole scope), so there
    is no variant with the stride as a literal (for a (32, 64, 112, 112) 3x3 s2 p1 float32 max,
    two threads, 20 against 24 ms)."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    n_inner, dw, kw = params[P_INNER], params[P_DW], params[P_KW]
    height, width = params[P_HEIGHT], params[P_WIDTH]
    stride, lo, hi = params[P_STRIDE_W], params[P_LO_W], params[P_HI_W]
    step = stride if n_inner == 1 else 1  # between neighbouring outputs' taps in the row buffer
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    row_len, out_len = x.shape[3], out.shape[3]
    plane_len = x.shape[1] * x.shape[2] * row_len
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    idf = idx.reshape(idx.size)
    m = max(hi - lo, 0)  # the full windows lo <= ow < hi
    n_runs, run_len = (1, m) if n_inner == 1 else (m, n_inner)
    tail = max(hi, lo)
    cols = 2 * row_len  # the column passes' two halves, after the row pass's
    n_passes = max(kw, 3) - 2  # taps 0-2 in the first pass, then one tap per pass, the last into out
    o, od, oh = _row_coords(t0, n_od, n_oh)
    for t in range(t0, t1):
        a = _index_rows(xf, buf, row, o, od, oh, sd, cd, sh, ch, params, height, row_len, plane_len)
        d0 = t * out_len
        for g in range(lo + n_ow - tail):  # the edge windows, clipped, one by one
            ow = g if g < lo else g - lo + tail
            for i in range(n_inner):
                w = sw[ow]
                p = np.int64(a) + w * n_inner + i
                b = buf[p]
                bi = row[p] * width + w
                for j in range(1, cw[ow]):
                    w = sw[ow] + j * dw
                    p = np.int64(a) + w * n_inner + i
                    v = buf[p]
                    fi = row[p] * width + w
                    take = _later(v, fi, b, bi)
                    b = v if take else b
                    bi = fi if take else bi
                of[d0 + ow * n_inner + i] = b
                idf[d0 + ow * n_inner + i] = bi
        w0, c = sw[lo] if m > 0 else 0, cols
        for j in range(n_passes if m > 0 else 0):
            into_out = j == n_passes - 1
            dst, dsti = (of, idf) if into_out else (buf, row)
            nd = d0 + lo * n_inner if into_out else 2 * cols + out_len - c  # the half the last pass did not write
            first = j == 0
            _index_taps(buf, row, a, w0, w0 + min(1, kw - 1) * dw if first else w0,
                        w0 + (min(2, kw - 1) if first else j + 2) * dw, not first, c, dst, dsti, nd, n_runs, run_len,
                        stride, step, width, n_inner)
            c = nd
        o, od, oh = _next_row(o, od, oh, n_od, n_oh)


@njit(inline="always")
def _first_max(b, bi, v, vi):
    """The maximum so far ``b`` (at code ``bi``) against a later tap ``v`` (at code ``vi``) of a
    NaN-free window, taps in row-major order: the strictly greater one, so the first maximum
    stays."""
    take = v > b
    return (v if take else b), (vi if take else bi)


@njit(inline="always")
def _first_in_window(xf, p, step, nh, nw, tap, down):
    """(maximum, offset code) of a clipped window of ``nh`` rows ``step`` apart and ``nw`` taps
    ``tap`` apart from ``xf[p]``, NaN-free, taps in row-major order (rows ``down`` apart in flat
    indices): the first maximum, one tap at a time."""
    b, bi = xf[p], np.int32(0)
    for k in range(nh):
        for j in range(nw):
            if k or j:
                b, bi = _first_max(b, bi, xf[p + np.uint64(k) * step + np.uint64(j) * tap], np.int32(k * down + j))
    return b, bi


@njit(inline="always")
def _index_views(x, out, idx):
    """The index twins' flat views of their input, maxima and indices (4-D), and the lengths of an
    input row, an output row and an input plane."""
    row_len = x.shape[3]
    return x.reshape(x.size), out.reshape(out.size), idx.reshape(idx.size), row_len, out.shape[3], x.shape[2] * row_len


@njit(inline="always")
def _tap_codes(down):
    """The offsets (int32) of taps 1-8 of a 3x3 window from its first, in flat indices, rows
    ``down`` apart (numba widens int32 arithmetic: made once, outside the loops)."""
    return (np.int32(1), np.int32(2), np.int32(down), np.int32(down + 1), np.int32(down + 2),
            np.int32(2 * down), np.int32(2 * down + 1), np.int32(2 * down + 2))


@njit(inline="always")
def _first_of_nine(xf, p0, p1, p2, s1, s2, codes):
    """(maximum, offset code) of the NaN-free taps ``xf[p + 0]``, ``xf[p + s1]``, ``xf[p + s2]`` of
    the window rows p0, p1, p2, in that order (row-major): the first maximum.  A window of fewer
    rows repeats its last one, whose taps never win again."""
    b, bi = _first_max(xf[p0], np.int32(0), xf[p0 + s1], codes[0])
    b, bi = _first_max(b, bi, xf[p0 + s2], codes[1])
    b, bi = _first_max(b, bi, xf[p1], codes[2])
    b, bi = _first_max(b, bi, xf[p1 + s1], codes[3])
    b, bi = _first_max(b, bi, xf[p1 + s2], codes[4])
    b, bi = _first_max(b, bi, xf[p2], codes[5])
    b, bi = _first_max(b, bi, xf[p2 + s1], codes[6])
    return _first_max(b, bi, xf[p2 + s2], codes[7])


@njit(inline="always")
def _nine_run(xf, of, idf, p0, p1, p2, s1, s2, sc, d, m, f0, fc, codes):
    """m outputs of 3x3 windows: output q's maximum into of[d + q], its flat index f0 + q * fc +
    (the winner's offset code) into idf[d + q], its taps at p + q * sc (+ s1, + s2) of the rows
    p0, p1, p2 (:func:`_first_of_nine`).  Inlined at one call per row count, so each loop sees
    how its rows lie: a row count tested inside one loop (or rows picked by it) made it slower,
    see BENCHMARKS.md."""
    for q in range(m):
        c = sc * q
        b, bi = _first_of_nine(xf, p0 + c, p1 + c, p2 + c, s1, s2, codes)
        of[d + q] = b
        idf[d + q] = f0 + np.int64(q) * fc + np.int64(bi)


@njit(inline="always")
def _nine_rows(xf, of, idf, r0, step, nh, s1, s2, sc, d, m, f0, fc, codes):
    """:func:`_nine_run` for a window of ``nh`` rows (1 to 3) from r0, ``step`` apart, its last
    row repeated."""
    if nh == 3:
        _nine_run(xf, of, idf, r0, r0 + step, r0 + step + step, s1, s2, sc, d, m, f0, fc, codes)
    elif nh == 2:
        _nine_run(xf, of, idf, r0, r0 + step, r0 + step, s1, s2, sc, d, m, f0, fc, codes)
    else:
        _nine_run(xf, of, idf, r0, r0, r0, s1, s2, sc, d, m, f0, fc, codes)


@kernel
def index_plane_k3s2(x, tables, params, out, idx, t0, t1):
    """max_indices for windows 3 wide at stride 2 and at most 3 rows high over 2-D planes (D = 1,
    inner 1) of at most PLANE_SCAN_BYTES, up to the first row of the first plane that holds a NaN
    (returned; max_indices makes the rest).  The same results: without a NaN, max_indices' winner
    is the window's maximum at its smallest flat index, which a scan of the taps in row-major order
    (flat order) keeping a strictly greater tap finds too -- a -0.0 and a 0.0 of one window are
    equal, and the first of them wins in both.

    Each window's taps are read straight from the input rows, nine per output, with the tap's
    offset from the window's first as an int32 beside the maximum (:func:`_first_of_nine`); the
    full windows of an output row in one pass (:func:`_nine_rows`; the taps at the literal stride
    2: LLVM loads pairs and splits them), the clipped ones one by one.  max_indices instead keeps a
    row buffer of the window rows' maxima and an int64 row per column and compares flat indices on
    ties.  Measured: BENCHMARKS.md, "Maxima with indices read straight"."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    dh, lo, hi = params[P_DH], params[P_LO_W], params[P_HI_W]
    n_oh, n_ow = sh.shape[0], sw.shape[0]
    xf, of, idf, row_len, out_len, plane_len = _index_views(x, out, idx)
    tail = max(hi, lo)
    m = np.uint64(max(hi - lo, 0))
    w0 = np.uint64(sw[lo] if m else 0)
    two = np.uint64(2)
    step = np.uint64(dh * row_len)  # from one window row to the next
    row_down = dh * row_len  # the same, as a flat index's step
    codes = _tap_codes(row_down)
    one = np.uint64(1)
    o, _, oh = _row_coords(t0, 1, n_oh)
    scanned = -1
    for t in range(t0, t1):
        nan, scanned = _plane_scan(xf, o, scanned, plane_len, _any_nan, _nan_at)
        if nan:
            return t
        first = sh[oh] * row_len  # the flat index of the window's first row's column 0
        a = np.uint64(o * plane_len + first)
        nh = ch[oh]
        d0 = t * out_len
        for e in range(lo + n_ow - tail):  # the clipped windows, one by one
            ow = e if e < lo else e - lo + tail
            b, bi = _first_in_window(xf, a + np.uint64(sw[ow]), step, nh, cw[ow], np.uint64(1), row_down)
            of[d0 + ow] = b
            idf[d0 + ow] = np.int64(first + sw[ow]) + np.int64(bi)
        # the full windows: output lo + q reads columns w0 + 2q, + 1, + 2 of each window row
        d = np.uint64(d0 + lo)
        f0 = np.int64(first) + np.int64(w0)
        _nine_rows(xf, of, idf, a + w0, step, nh, one, two, two, d, m, f0, np.int64(2), codes)
        o, _, oh = _next_row(o, 0, oh, 1, n_oh)
    return t1


@kernel
def index_cl_k3s2(x, tables, params, out, idx, t0, t1):
    """max_indices for windows 3 wide at stride 2 and at most 3 rows high over 2-D channels-last
    planes (D = 1, inner > 1), up to the first output row whose window rows hold a NaN (returned;
    max_indices makes the rest): the same results, as :func:`index_plane_k3s2` gives them.  Each
    tap is a run of the inner axis, so each window's taps are added up a run at a time, nine loads
    a vector of outputs, the offset of each lane's winner an int32 beside it.  An output row checks
    its window rows for NaN first, as the fastmax row twins do (:func:`_window_nan`: each row once
    per chunk)."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    dh, lo, hi = params[P_DH], params[P_LO_W], params[P_HI_W]
    n_inner, width = params[P_INNER], params[P_WIDTH]
    n_oh, n_ow = sh.shape[0], sw.shape[0]
    xf, of, idf, row_len, out_len, plane_len = _index_views(x, out, idx)
    ni = np.uint64(n_inner)
    n2 = ni + ni
    step = np.uint64(dh * row_len)  # from one window row to the next
    down = dh * width  # the same in flat indices
    codes = _tap_codes(down)
    height = x.shape[2]
    state = (np.int64(-1), np.int64(0), np.int64(-1), np.int64(-1), np.int64(-1), np.int64(0))
    o, _, oh = _row_coords(t0, 1, n_oh)
    for t in range(t0, t1):
        nan, state = _window_nan(xf, o, 0, oh, sd, cd, sh, ch, params, height, row_len, plane_len, state)
        if nan:
            return t
        a = np.uint64(o * plane_len + sh[oh] * row_len)
        nh = ch[oh]
        flat = sh[oh] * width  # the flat index of the window's first row's first column
        d0 = t * out_len
        for ow in range(n_ow):
            s0 = np.uint64(sw[ow]) * ni
            d = np.uint64(d0) + np.uint64(ow) * ni
            f = np.int64(flat + sw[ow])
            r0 = a + s0
            if ow < lo or ow >= hi:  # a clipped window, a channel at a time
                for i in range(ni):
                    b, bi = _first_in_window(xf, r0 + i, step, nh, cw[ow], ni, down)
                    of[d + i] = b
                    idf[d + i] = f + np.int64(bi)
                continue
            _nine_rows(xf, of, idf, r0, step, nh, ni, n2, np.uint64(1), d, ni, f, np.int64(0), codes)
        o, _, oh = _next_row(o, 0, oh, 1, n_oh)
    return t1


def index_twin(f, itemsize: int) -> str | None:
    """The name of the kernel that runs before max_indices for the fused view ``f`` and elements
    of ``itemsize`` bytes (max_indices makes the rows it leaves), or None:
    :func:`index_plane_k3s2` for windows 3 wide at stride 2 and at most 3 high over 2-D planes
    (inner 1) of at most PLANE_SCAN_BYTES, the fastmax plane twin's windows;
    :func:`index_cl_k3s2` for such windows over channels-last planes (inner > 1) of any size."""
    p = f.params
    if f.in4[1] != 1 or p[P_KH] > 3:
        return None
    if variant(f, "max") == "max_small_k3s2" and f.in4[2] * f.in4[3] * itemsize <= PLANE_SCAN_BYTES:
        return "index_plane_k3s2"
    if p[P_INNER] > 1 and p[P_KW] == 3 and p[P_STRIDE_W] == 2 and p[P_DW] == 1:
        return "index_cl_k3s2"
    return None


def index_work_size(in4, out4) -> int:
    """Entries of each of max_indices' two buffers (``buf`` of x's dtype, ``row`` int64): two
    halves of an input row for the row passes and two of an output row for the column passes."""
    return 2 * in4[3] + 2 * out4[3]


# --------------------------------------------------------------------------------------------
# the adjoint of the sum
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _spread_pairs(row, b, vals, v0, m, kw):
    """The full windows' tap-major passes of sum_adjoint for windows of kw (1, 2 or 3) taps at
    stride 2 along W (inner 1): vals[v0 + q] added to row[b + 2q + j] for q < m and j < kw, in one
    pass over pairs of elements that adds to each element what the passes would, in their order:
    row[b + 2p] gets vals[v0 + p] (tap 0), then vals[v0 + p - 1] (tap 2); row[b + 2p + 1] gets
    vals[v0 + p] (tap 1).  The pairs vectorise; a strided pass per tap did not (its stores scatter).
    """
    ub, uv, um = np.uint64(b), np.uint64(v0), np.uint64(m)
    one, two = np.uint64(1), np.uint64(2)
    if kw == 3:
        row[ub] += vals[uv]
        row[ub + one] += vals[uv]
        for p in range(one, um):
            row[ub + two * p] = (row[ub + two * p] + vals[uv + p]) + vals[uv + p - one]
            row[ub + two * p + one] += vals[uv + p]
        row[ub + two * um] += vals[uv + um - one]
    elif kw == 2:
        for p in range(um):
            row[ub + two * p] += vals[uv + p]
            row[ub + two * p + one] += vals[uv + p]
    else:
        for p in range(um):
            row[ub + two * p] += vals[uv + p]


@kernel
def sum_adjoint(g, tables, params, divs, cover, out, work, o0, o1):
    """Planes o0 <= o < o1 of the transpose of the sum kernels: each g / divisor spread over its
    window's taps.  g: (O, OD, OH, OW*I); out: (O, D, H, W*I) of any float dtype.

    ``work`` (float64, adjoint_work_size) holds the spread of one output row and the scaled
    gradient row.  When no input row (d, h) lies in two windows, each spread row is written
    straight into ``out``, and only the rows no window holds are zeroed.  Otherwise ``work`` also
    holds the spread rows of all of a plane's output rows, and each input row r is then written
    once: 0.0 plus the spread rows of the windows holding it, in the order of their output rows
    (``cover``, :meth:`poolkit._geometry.FusedView.row_windows`: D * H + 1 offsets, then the
    lists) -- the additions, and so the bits, of accumulating every spread row into a zeroed
    float64 plane, without that plane (a 3x3 s2 p1 average backward, one thread: 0.68 -> 0.46 ns
    per input element in cache).
    """
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    n_inner, dd, dh, dw = params[P_INNER], params[P_DD], params[P_DH], params[P_DW]
    kw, stride_w, lo, hi = params[P_KW], params[P_STRIDE_W], params[P_LO_W], params[P_HI_W]
    rows_disjoint = params[P_ROWS_DISJOINT] != 0
    div_d, div_h, div_w = _divisor_views(divs, params)
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    # disjoint windows without dilation visit the rows (d, h) in increasing order when one of D
    # and H is a single row or a single window (else a D window visits its rows once per H window)
    rows_in_order = rows_disjoint and dd == 1 and dh == 1 and (out.shape[1] == 1 or n_oh == 1)
    row_len, g_len = out.shape[3], g.shape[3]
    n_rows = out.shape[1] * out.shape[2]
    plane_len = n_rows * row_len
    n = np.uint64(row_len)
    rowbuf = work[:row_len]
    vals = work[row_len:row_len + g_len]
    spreads = work[row_len + g_len:]  # overlapping rows: the spread row of each output row of a plane
    gf = g.reshape(g.size)
    of = out.reshape(out.size)
    for o in range(o0, o1):
        dst_plane = o * plane_len
        next_row = 0  # rows_in_order: rows below it are written
        if rows_disjoint and not rows_in_order:
            vzero(of, dst_plane, plane_len)
        for od in range(n_od):
            for oh in range(n_oh):
                t = od * n_oh + oh
                row = rowbuf if rows_disjoint else spreads[t * row_len:(t + 1) * row_len]
                vzero(row, 0, row_len)
                src = (o * n_od * n_oh + t) * g_len
                scale = div_d[od] * div_h[oh]
                if n_inner == 1:
                    for ow in range(n_ow):
                        vals[ow] = gf[src + ow] * (scale * div_w[ow])
                else:
                    for ow in range(n_ow):
                        f = scale * div_w[ow]
                        for i in range(n_inner):
                            vals[ow * n_inner + i] = gf[src + ow * n_inner + i] * f
                tail = max(hi, lo)
                for e in range(lo + n_ow - tail):  # the edge windows ow < lo and ow >= hi, as in _cols_edges
                    ow = e if e < lo else e - lo + tail
                    for j in range(cw[ow]):
                        vacc(row, (sw[ow] + j * dw) * n_inner, vals, ow * n_inner, n_inner, 1, add2)
                if hi > lo and n_inner == 1 and stride_w == 2 and dw == 1 and kw <= 3:
                    _spread_pairs(row, sw[lo], vals, lo, hi - lo, kw)
                elif hi > lo:  # full windows, tap-major
                    m = hi - lo
                    v0 = lo * n_inner
                    for j in range(kw):
                        d0 = (sw[lo] + j * dw) * n_inner
                        if stride_w == 1:
                            vacc(row, d0, vals, v0, m * n_inner, 1, add2)
                        elif n_inner == 1:
                            vspread(row, d0, vals, v0, m, stride_w)
                        else:
                            for q in range(m):
                                vacc(row, d0 + q * stride_w * n_inner, vals, v0 + q * n_inner, n_inner, 1, add2)
                if rows_disjoint:
                    for jd in range(cd[od]):
                        for jh in range(ch[oh]):
                            r = (sd[od] + jd * dd) * out.shape[2] + sh[oh] + jh * dh
                            if rows_in_order:
                                vzero(of, dst_plane + next_row * row_len, (r - next_row) * row_len)
                                next_row = r + 1
                            vcopy(of, dst_plane + r * row_len, rowbuf, 0, row_len, 1)
        if rows_in_order:
            vzero(of, dst_plane + next_row * row_len, (n_rows - next_row) * row_len)
        if not rows_disjoint:
            for r in range(n_rows):
                k0, k1 = cover[r], cover[r + 1]
                d = np.uint64(dst_plane + r * row_len)
                if k0 == k1:
                    vzero(of, d, row_len)
                    continue
                a = np.uint64(cover[n_rows + 1 + k0] * row_len)
                if k1 - k0 == 1:
                    for q in range(n):
                        of[d + q] = 0.0 + spreads[a + q]
                elif k1 - k0 == 2:
                    b = np.uint64(cover[n_rows + 2 + k0] * row_len)
                    for q in range(n):
                        of[d + q] = (0.0 + spreads[a + q]) + spreads[b + q]
                else:
                    for q in range(n):
                        rowbuf[q] = 0.0 + spreads[a + q]
                    for k in range(k0 + 1, k1):
                        vacc(rowbuf, 0, spreads, cover[n_rows + 1 + k] * row_len, row_len, 1, add2)
                    vcopy(of, d, rowbuf, 0, row_len, 1)


def adjoint_work_size(in4, out4, params) -> int:
    """Entries of the float64 ``work`` buffer one chunk of sum_adjoint needs."""
    return in4[3] + out4[3] + (0 if params[P_ROWS_DISJOINT] else out4[1] * out4[2] * in4[3])
