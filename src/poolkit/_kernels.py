"""Numba kernels. No validation, no Python objects: every index they receive has been checked.

The general kernels reduce one axis of a C-contiguous ``(outer, length, inner)`` view: output ``m``
reduces the positions ``starts[m] + j * step`` for ``j < counts[m]``.  A box window is separable, so
applying them axis by axis serves every dimension count and layout.  The contiguous ``inner`` axis
is the innermost loop so that LLVM vectorises it.

Max kernels keep PyTorch's rules: the first maximum wins, and NaN beats every number (the first NaN
wins).  No fastmath flag is used anywhere, so NaN comparisons stay exact.
"""

from numba import njit, prange


@njit(cache=True, parallel=True)
def max_axis(x, starts, counts, step, out):
    """out[o, m, i] = max over the window m of x[o, :, i]."""
    n_outer, _, n_inner = x.shape
    n_out = starts.shape[0]
    for t in prange(n_outer * n_out):
        o = t // n_out
        m = t - o * n_out
        s = starts[m]
        for i in range(n_inner):
            out[o, m, i] = x[o, s, i]
        for j in range(1, counts[m]):
            pos = s + j * step
            for i in range(n_inner):
                v = x[o, pos, i]
                b = out[o, m, i]
                if v > b or (v != v and b == b):
                    out[o, m, i] = v


@njit(cache=True, parallel=True)
def max_axis_indices(x, idx_in, has_idx_in, starts, counts, step, scale, out, idx_out):
    """max_axis that also tracks flat indices: idx_out = idx_in[winner] + winner_position * scale.

    Axes are processed from the last pooled axis to the first, and a later tap replaces the current
    best only when strictly greater (or the first NaN), so the winner is the first maximum in
    row-major window order.
    """
    n_outer, _, n_inner = x.shape
    n_out = starts.shape[0]
    for t in prange(n_outer * n_out):
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
                b = out[o, m, i]
                if v > b or (v != v and b == b):
                    out[o, m, i] = v
                    if has_idx_in:
                        idx_out[o, m, i] = idx_in[o, pos, i] + pos * scale
                    else:
                        idx_out[o, m, i] = pos * scale


@njit(cache=True, parallel=True)
def sum_axis(x, starts, counts, step, out):
    """out[o, m, i] = sum over the window m of x[o, :, i], accumulated in out's dtype (float64)."""
    n_outer, _, n_inner = x.shape
    n_out = starts.shape[0]
    for t in prange(n_outer * n_out):
        o = t // n_out
        m = t - o * n_out
        s = starts[m]
        for i in range(n_inner):
            out[o, m, i] = x[o, s, i]
        for j in range(1, counts[m]):
            pos = s + j * step
            for i in range(n_inner):
                out[o, m, i] += x[o, pos, i]


@njit(cache=True, parallel=True)
def sum_axis_adjoint(g, starts, counts, step, out):
    """The transpose of sum_axis: out[o, p, i] = sum of g[o, m, i] over the windows m holding p."""
    n_outer, n_out, n_inner = g.shape
    for o in prange(n_outer):
        out[o, :, :] = 0.0
        for m in range(n_out):
            s = starts[m]
            for j in range(counts[m]):
                pos = s + j * step
                for i in range(n_inner):
                    out[o, pos, i] += g[o, m, i]


@njit(cache=True, parallel=True)
def scatter_add(g, idx, out):
    """out[p, idx[p, q]] += g[p, q] on a zero-filled out (planes p in parallel)."""
    n_planes, n_src = g.shape
    for p in prange(n_planes):
        out[p, :] = 0
        for q in range(n_src):
            out[p, idx[p, q]] += g[p, q]


@njit(cache=True, parallel=True)
def scatter_set(v, idx, out):
    """out[p, idx[p, q]] = v[p, q] on a zero-filled out (the later of two equal indices wins)."""
    n_planes, n_src = v.shape
    for p in prange(n_planes):
        out[p, :] = 0
        for q in range(n_src):
            out[p, idx[p, q]] = v[p, q]
