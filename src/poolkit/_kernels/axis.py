"""Kernels of the general path: one pooled axis of a C-contiguous ``(outer, length, inner)`` view
at a time.  Output ``m`` reduces the positions ``starts[m] + j * step`` for ``j < counts[m]``; a box
window is separable, so applying them axis by axis serves any number of pooled axes in any layout.
The contiguous ``inner`` axis is the innermost loop, so LLVM vectorises it.

Each kernel takes a chunk ``[t0, t1)`` of its independent work (see :mod:`poolkit._engine`) and runs
compiled without reference counting.
"""

from numba import njit

from ._loops import add2, better, kernel, max2, vacc, vput, vzero


@njit(inline="always")
def _reduce_axis(x, starts, counts, step, out, t0, t1, comb):
    """out[o, m, i] = comb-reduction over the window m of x[o, :, i], for t = o * M + m in [t0, t1)."""
    length, n_inner = x.shape[1], x.shape[2]
    n_out = starts.shape[0]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    for t in range(t0, t1):
        o = t // n_out
        m = t - o * n_out
        src = (o * length + starts[m]) * n_inner
        for j in range(counts[m]):
            vput(of, t * n_inner, xf, src + j * step * n_inner, n_inner, 1, j == 0, comb)


@kernel
def max_axis(x, starts, counts, step, out, t0, t1):
    """Window maxima along the middle axis (the first maximum wins, NaN propagates)."""
    _reduce_axis(x, starts, counts, step, out, t0, t1, max2)


@kernel
def sum_axis(x, starts, counts, step, out, t0, t1):
    """Window sums along the middle axis, accumulated in out's dtype (float64)."""
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
