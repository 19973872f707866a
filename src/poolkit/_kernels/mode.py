"""Mode pooling: the most frequent value of each window (label images), over any number of pooled
axes.

The input comes as a C-contiguous ``(planes, cells)`` array: the pooled axes last and flattened
(:func:`poolkit._engine.mode_reduce` moves them there).  For each output position the window's
valid taps are gathered into a scratch buffer, sorted, and the longest run of equal values wins;
runs are met in ascending order and only a strictly longer one replaces the best, so ties go to
the smallest value.  Equal means ``==``, so -0.0 and 0.0 are one value (reported as 0.0), and all
NaNs are one value that sorts after every number (as in ``np.sort``): NaN is the mode only when it
is strictly the most frequent value.

Small windows (up to 16 taps: a 2x2x2 pyramid block is 8) are sorted by insertion, larger ones by
heapsort, in place: the kernel allocates nothing (``_nrt=False``), its caller passes the buffers.
It takes a chunk ``[t0, t1)`` of output positions, like every kernel (see :mod:`poolkit._engine`).
"""

from numba import njit

from ._loops import kernel

# params layout: [n, in_size * n, out_size * n, dilation * n]; tables: starts of each pooled axis,
# then counts of each pooled axis, concatenated in axis order (out_size entries each).


@njit(inline="always")
def _before(a, b):
    """The sort order: numbers ascending, NaN after every number."""
    return (a < b) | ((a == a) & (b != b))


@njit(inline="always")
def _same(a, b):
    return (a == b) | ((a != a) & (b != b))


@njit(inline="always")
def _sift(buf, root, end):
    """Restore the max-heap below ``root`` in buf[0:end]."""
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and _before(buf[child], buf[child + 1]):
            child += 1
        if _before(buf[root], buf[child]):
            tmp = buf[root]
            buf[root] = buf[child]
            buf[child] = tmp
            root = child
        else:
            return


@njit(inline="always")
def _sort(buf, k):
    """Sort buf[0:k] in place (NaN last)."""
    if k <= 16:
        for i in range(1, k):
            v = buf[i]
            j = i - 1
            while j >= 0 and _before(v, buf[j]):
                buf[j + 1] = buf[j]
                j -= 1
            buf[j + 1] = v
        return
    for start in range(k // 2 - 1, -1, -1):
        _sift(buf, start, k)
    for end in range(k - 1, 0, -1):
        tmp = buf[0]
        buf[0] = buf[end]
        buf[end] = tmp
        _sift(buf, 0, end)


@kernel
def mode_window(x, tables, params, buf, pos, out, t0, t1):
    """out[b, m] = the mode of window m of plane b, for t = b * M + m in [t0, t1).

    ``buf`` holds a window's values (the largest window's tap count), ``pos`` 3 * n int64 scratch
    (window starts, counts and the tap odometer).
    """
    n = params[0]
    n_cells = x.shape[1]
    n_out = out.shape[1]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    for t in range(t0, t1):
        b, m = divmod(t, n_out)
        # the window of output m: starts and counts along each axis (last axis fastest)
        rest = m
        k = 1
        toff = 0
        for a in range(n):
            toff += params[1 + n + a]
        toff_a = toff
        for a in range(n - 1, -1, -1):
            n_o = params[1 + n + a]
            toff_a -= n_o
            o = rest % n_o
            rest //= n_o
            pos[a] = tables[toff_a + o]
            pos[n + a] = tables[toff + toff_a + o]
            pos[2 * n + a] = 0
            k *= pos[n + a]
        # gather the taps in row-major window order
        base = b * n_cells
        for q in range(k):
            flat = 0
            for a in range(n):
                flat = flat * params[1 + a] + pos[a] + pos[2 * n + a] * params[1 + 2 * n + a]
            buf[q] = xf[base + flat]
            a = n - 1
            while a >= 0:
                pos[2 * n + a] += 1
                if pos[2 * n + a] < pos[n + a]:
                    break
                pos[2 * n + a] = 0
                a -= 1
        _sort(buf, k)
        best = buf[0]
        best_run = 0
        run = 0
        for q in range(k):
            if q > 0 and _same(buf[q], buf[q - 1]):
                run += 1
            else:
                run = 1
            if run > best_run:
                best_run = run
                best = buf[q]
        of[t] = abs(best) if best == 0 else best
