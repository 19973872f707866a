"""Kernels of the general path: one pooled axis of a C-contiguous ``(outer, length, inner)`` view
at a time.  Output ``m`` reduces the positions ``starts[m] + j * step`` for ``j < counts[m]``; a box
window is separable, so applying them axis by axis serves any number of pooled axes in any layout.
The contiguous ``inner`` axis is the innermost loop, so LLVM vectorises it.

Each kernel takes a chunk ``[t0, t1)`` of its independent work (see :mod:`poolkit._engine`) and runs
compiled without reference counting.
"""

import numpy as np
from numba import njit

from ._loops import add2, better, kernel, max2, vacc, vput, vzero
from ._runs import sum_columns64, sum_runs4
from .sync import at, claim, cpu, move_off, pause, report_done, watch


@njit(inline="always")
def _reduce_axis(x, starts, counts, step, out, t0, t1, comb):
    """out[o, m, i] = comb-reduction over the window m of x[o, :, i], for t = o * M + m in [t0, t1)."""
    length, n_inner = x.shape[1], x.shape[2]
    n_out = starts.shape[0]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    for t in range(t0, t1):
        o, m = divmod(t, n_out)
        src = (o * length + starts[m]) * n_inner
        for j in range(counts[m]):
            vput(of, t * n_inner, xf, src + j * step * n_inner, n_inner, 1, j == 0, comb)


@kernel
def max_axis(x, starts, counts, step, out, t0, t1):
    """Window maxima along the middle axis (the first maximum wins, NaN propagates)."""
    _reduce_axis(x, starts, counts, step, out, t0, t1, max2)


@kernel
def sum_axis(x, starts, counts, step, out, t0, t1):
    """Window sums along the middle axis, accumulated in out's dtype (float64, or float32 when
    asked)."""
    _reduce_axis(x, starts, counts, step, out, t0, t1, add2)


@kernel
def max_axis_indices(x, idx_in, has_idx_in, starts, counts, step, scale, out, idx_out, t0, t1):
    """max_axis that also tracks flat indices: idx_out = idx_in[winner] + winner_position * scale.

    Axes are processed from the last pooled axis to the first, and a later tap replaces the current
    best only when strictly greater (or the first NaN), so the winner is the first maximum in
    row-major window order.
    """
    n_inner = x.shape[2]
    n_out = starts.shape[0]
    for t in range(t0, t1):
        o, m = divmod(t, n_out)
        s = starts[m]
        for i in range(n_inner):
            out[o, m, i] = x[o, s, i]
            idx_out[o, m, i] = (idx_in[o, s, i] if has_idx_in else 0) + s * scale
        for j in range(1, counts[m]):
            pos = s + j * step
            for i in range(n_inner):
                v = x[o, pos, i]
                if better(v, out[o, m, i]):
                    out[o, m, i] = v
                    idx_out[o, m, i] = (idx_in[o, pos, i] if has_idx_in else 0) + pos * scale


@kernel
def sum_axis_adjoint(g, starts, counts, step, out, o0, o1):
    """The transpose of sum_axis for planes o0 <= o < o1: out[o, p, i] = sum of g[o, m, i] over the
    windows m holding p."""
    n_out, n_inner = g.shape[1], g.shape[2]
    length = out.shape[1]
    gf = g.reshape(g.size)
    of = out.reshape(out.size)
    for o in range(o0, o1):
        plane = o * length * n_inner
        vzero(of, plane, length * n_inner)
        for m in range(n_out):
            for j in range(counts[m]):
                vacc(of, plane + (starts[m] + j * step) * n_inner, gf, (o * n_out + m) * n_inner, n_inner, 1, add2)


# --------------------------------------------------------------------------------------------
# whole axes: global pooling
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _max_run(xf, base, n):
    """The maximum of the contiguous run xf[base : base + n] (n >= 1): eight lanes of plain
    comparisons (they vectorise) and a flag for NaN, which is then the first NaN of the run.
    Ties keep a tied value (equal values are equal; of +0.0 and -0.0 either may be kept)."""
    b = np.uint64(base)
    m = np.uint64(n)
    eight = np.uint64(8)
    if m < 2 * eight:
        a = xf[b]
        for j in range(np.uint64(1), m):
            a = max2(a, xf[b + j])
        return a
    a0, a1, a2, a3 = xf[b], xf[b + 1], xf[b + 2], xf[b + 3]
    a4, a5, a6, a7 = xf[b + 4], xf[b + 5], xf[b + 6], xf[b + 7]
    nan = (a0 != a0) | (a1 != a1) | (a2 != a2) | (a3 != a3) | (a4 != a4) | (a5 != a5) | (a6 != a6) | (a7 != a7)
    end = (m // eight) * eight
    for j in range(eight, end, eight):
        p = b + j
        v0, v1, v2, v3 = xf[p], xf[p + 1], xf[p + 2], xf[p + 3]
        v4, v5, v6, v7 = xf[p + 4], xf[p + 5], xf[p + 6], xf[p + 7]
        a0 = v0 if v0 > a0 else a0
        a1 = v1 if v1 > a1 else a1
        a2 = v2 if v2 > a2 else a2
        a3 = v3 if v3 > a3 else a3
        a4 = v4 if v4 > a4 else a4
        a5 = v5 if v5 > a5 else a5
        a6 = v6 if v6 > a6 else a6
        a7 = v7 if v7 > a7 else a7
        nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3) | (v4 != v4) | (v5 != v5) | (v6 != v6) | (v7 != v7)
    a = max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))
    for j in range(end, m):
        v = xf[b + j]
        a = v if v > a else a
        nan |= v != v
    if nan:  # the first NaN of the run
        for j in range(m):
            if xf[b + j] != xf[b + j]:
                return xf[b + j]
    return a


@kernel
def max_whole(x, out, t0, t1):
    """Global maxima: out[o, i] = maximum over the whole middle axis of x[o, :, i], for o in
    [t0, t1): a contiguous run per o when inner == 1, else rows of the inner axis combined into
    out."""
    length, n_inner = x.shape[1], x.shape[2]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    if n_inner == 1:
        for o in range(t0, t1):
            of[o] = _max_run(xf, o * length, length)
    else:
        for o in range(t0, t1):
            src = o * length * n_inner
            for j in range(length):
                vput(of, o * n_inner, xf, src + j * n_inner, n_inner, 1, j == 0, max2)


@kernel(reassociate=True)
def sum_whole(x, out, divisor, acc, t0, t1):
    """Global means: out[o, i] = (sum over the whole middle axis of x[o, :, i], in acc's dtype:
    float64, or float32 when asked) / divisor, written in out's dtype (divisor 1.0: the sums).  A
    run per o when inner == 1 -- a plain running sum, which reassociation lets LLVM vectorise (the
    eight hand-written lanes it replaces were 3x slower), four runs at a time -- else rows of the
    inner axis added into ``acc`` (inner entries), three rows per pass.  Each sum is added in the
    same order as one run or one row at a time, so the results are the same bits; interleaved
    against that code on this AMD EPYC, one thread, (32, 512, 7, 7) in cache: 0.66-0.86 of its
    time as NCHW, 0.66-0.85 as NHWC, float64 or float32 sums."""
    length, n_inner = x.shape[1], x.shape[2]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    n = np.uint64(length)
    zero = acc.dtype.type(0)
    if n_inner == 1:
        o = t0
        while o + 4 <= t1 and sum_runs4(xf, np.uint64(o) * n, n, of, np.uint64(o), divisor, acc):
            o += 4
        while o + 4 <= t1:  # four runs at once: their short tails overlap instead of queueing
            b = np.uint64(o * length)
            a0, a1, a2, a3 = zero, zero, zero, zero
            for j in range(n):
                a0 += xf[b + j]
                a1 += xf[b + n + j]
                a2 += xf[b + n + n + j]
                a3 += xf[b + n + n + n + j]
            of[o], of[o + 1], of[o + 2], of[o + 3] = a0 / divisor, a1 / divisor, a2 / divisor, a3 / divisor
            o += 4
        for r in range(o, t1):
            b = np.uint64(r * length)
            a = zero
            for j in range(n):
                a += xf[b + j]
            of[r] = a / divisor
    else:
        ni = np.uint64(n_inner)
        for o in range(t0, t1):
            src = np.uint64(o) * n * ni
            d = np.uint64(o) * ni
            c0 = np.uint64(0)  # channels [0, c0) are done, 64 at a time in registers
            while c0 + 64 <= ni and sum_columns64(xf, src + c0, n, ni, of, d + c0, divisor, acc):
                c0 += np.uint64(64)
            if c0 == ni:
                continue
            m = ni - c0  # the other channels: rows added into acc in order (the same bits)
            vput(acc, 0, xf, src + c0, m, 1, True, add2)
            j = 1
            while j + 3 <= length:  # three rows per pass over acc
                a = src + c0 + np.uint64(j) * ni
                for q in range(m):
                    acc[q] = ((acc[q] + xf[a + q]) + xf[a + ni + q]) + xf[a + ni + ni + q]
                j += 3
            for k in range(j, length):
                vput(acc, 0, xf, src + c0 + np.uint64(k) * ni, m, 1, False, add2)
            for i in range(m):
                of[d + c0 + i] = acc[i] / divisor


#: The fields of a global sum's mailbox (an int64 array; the divisor is read through a float64 view
#: of it), which the calling thread fills before it publishes the call: the next chunk to claim
#: (see :func:`_take_sums`), the number of chunks, the (outer, length, inner) view, the addresses of
#: the input, the output and the scratch rows (one of ``inner`` entries per thread), the divisor,
#: the kind of the call (0 for a call whose helpers run Python), and the CPU the call was made from
#: (-1 if unknown).
(BOX_NEXT, BOX_CHUNKS, BOX_OUTER, BOX_LENGTH, BOX_INNER, BOX_X, BOX_OUT, BOX_ACC, BOX_DIVISOR, BOX_KIND,
 BOX_CPU) = range(11)
BOX_SIZE = 11


@kernel
def post_sums(box, boxf, x, out, acc, chunks, divisor, kind, here):
    """Write a global sum's call into the mailbox ``box`` (``boxf``: its float64 view), as the
    calling thread does before it publishes the call: the counter at 0, ``chunks`` chunks, the
    (outer, length, inner) view ``x`` (C-contiguous) summed into ``out`` (outer, inner) over the
    scratch rows ``acc`` (one of inner entries per thread), ``divisor``, the call's ``kind`` and the
    CPU it is made from (``here``, -1 if unknown).  One compiled call instead of three
    ``ndarray.ctypes`` addresses, a new mailbox and its copy, which took 7.9 and 5.0 us of Python
    with cold caches (see "Global averages without the GIL" in BENCHMARKS.md)."""
    box[BOX_NEXT] = 0
    box[BOX_CHUNKS] = chunks
    box[BOX_OUTER], box[BOX_LENGTH], box[BOX_INNER] = x.shape
    box[BOX_X], box[BOX_OUT], box[BOX_ACC] = x.ctypes.data, out.ctypes.data, acc.ctypes.data
    boxf[BOX_DIVISOR] = divisor
    box[BOX_KIND] = kind
    box[BOX_CPU] = here


@njit(inline="always")
def _take_sums(box, x, out, acc, divisor):
    """The chunks of a global sum a thread claims, one at a time from the mailbox's counter, until
    none is left.  (Each thread first taking chunks of its own, so that its rows stay in its
    core's cache from one call to the next, measured no faster: back to back, medians of 4000
    (32, 7, 7, 512) float32 calls, 54-57 us either way.)"""
    n, outer = box[BOX_CHUNKS], box[BOX_OUTER]
    c = claim(box, BOX_NEXT)
    while c < n:
        sum_whole(x, out, divisor, acc, outer * c // n, outer * (c + 1) // n)
        c = claim(box, BOX_NEXT)


@kernel
def follow_sums(flags, i, seen, rounds, settle, every, masks, box, boxf, x_like, out_like, acc_like, kind):
    """A helper's part of global sums (:func:`sum_whole`), and its watch for the next call, all
    without the GIL: the calls of one global average pooling layer, made batch after batch, pass
    no GIL between the threads.

    Watches ``flags[0]`` (the generation) from ``seen`` as :func:`~poolkit._kernels.sync.spin`
    does.  A new call whose mailbox ``box`` holds ``kind`` (the arrays' dtypes this kernel is
    compiled for: those of ``x_like``, ``out_like`` and ``acc_like``) is run here: the helper
    claims chunks until none are left (:func:`_take_sums`), reports the generation into ``flags[1 +
    i]`` and watches again.  A helper that finds itself on the CPU the call was made from first
    moves off it (:func:`~poolkit._kernels.sync.move_off`, with the (2, n) uint64 scratch ``masks``):
    the scheduler may put a helper that never sleeps on the caller's CPU, where the two would share
    one CPU.  (Moved from Python, the helper then waited for the GIL, and its wake-up put it back
    on the caller's CPU.)  Returns ``(done, next)``: ``done`` is the last generation it ran (``seen``
    if none); ``next`` is a new generation whose call it leaves to Python (returned after the
    settling pause), ``done`` if the watch timed out, or -1 if the report found the caller's mark
    (the caller sleeps on its lock, which the helper must release).

    ``i = -1`` is the calling thread's part: it claims chunks at once and returns ``(seen, seen)``."""
    while True:
        g = seen
        if i >= 0:
            g = watch(flags, 0, seen, rounds, every)
            if g == seen:
                return seen, seen
            if box[BOX_KIND] != kind:
                pause(settle)
                return seen, g
            if cpu() == box[BOX_CPU]:
                move_off(box[BOX_CPU], masks)
        outer, length, inner = box[BOX_OUTER], box[BOX_LENGTH], box[BOX_INNER]
        x = at(x_like, box[BOX_X], (outer, length, inner))
        out = at(out_like, box[BOX_OUT], (outer, inner))
        acc = at(acc_like, box[BOX_ACC] + (i + 1) * inner * acc_like.itemsize, (inner,))
        _take_sums(box, x, out, acc, boxf[BOX_DIVISOR])
        if i < 0:
            return seen, seen
        if report_done(flags, 1 + i, g):
            return g, -1
        seen = g
