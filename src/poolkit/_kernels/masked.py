"""Kernels of masked sequence pooling over the time axis of ``(N, T, inner)``: each row ``n``
reduces the steps ``t`` with ``mask[n, t]``.  Rows ``n0 <= n < n1`` per call (a chunk); the
feature axis is the contiguous inner loop."""

from numba import njit

from ._loops import better, kernel, lower


@njit(inline="always")
def _extreme(x, mask, out, arg, n0, n1, wins):
    """out[n, i] = the extreme of x[n, t, i] over the valid steps t, arg = that t: the first extreme
    in time order wins (``wins(v, b)``: v replaces b).  Rows without a valid step keep arg = -1
    and leave out untouched."""
    n_time, n_inner = x.shape[1], x.shape[2]
    for n in range(n0, n1):
        first = True
        for s in range(n_time):
            if mask[n, s] == 0:
                continue
            for i in range(n_inner):
                v = x[n, s, i]
                if first or wins(v, out[n, i]):
                    out[n, i] = v
                    arg[n, i] = s
            first = False


@kernel
def masked_max(x, mask, out, arg, n0, n1):
    """The maximum over the valid steps (NaN beats every number, the first NaN wins)."""
    _extreme(x, mask, out, arg, n0, n1, better)


@kernel
def masked_min(x, mask, out, arg, n0, n1):
    """The minimum over the valid steps (NaN beats every number, the first NaN wins)."""
    _extreme(x, mask, out, arg, n0, n1, lower)


@kernel
def masked_sum(x, mask, out, n0, n1):
    """out[n, i] = sum of x[n, t, i] over the valid steps, accumulated in out (float64)."""
    n_time, n_inner = x.shape[1], x.shape[2]
    for n in range(n0, n1):
        for i in range(n_inner):
            out[n, i] = 0.0
        for s in range(n_time):
            if mask[n, s] != 0:
                for i in range(n_inner):
                    out[n, i] += x[n, s, i]
