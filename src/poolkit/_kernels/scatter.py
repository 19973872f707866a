"""Scatter kernels: the max backward (add each gradient at its index) and unpooling (place each
value at its index), over an ``(outer, positions, inner)`` view with the pooled axes flattened."""

import numpy as np
from numba import njit

from ._loops import add2, kernel, put2, vzero


@njit(inline="always")
def _scatter(src, ix, out, o0, o1, comb):
    """For planes o0 <= o < o1: zero out[o], then out[o, ix[o, q, i], i] = comb(that, src[o, q, i]).
    Indices outside [0, positions) are skipped and counted; the count is returned (the caller
    raises)."""
    n_pos, n_inner = out.shape[1], out.shape[2]
    n_src = src.shape[1]
    sf = src.reshape(src.size)
    xf = ix.reshape(ix.size)
    of = out.reshape(out.size)
    limit = np.uint64(n_pos)
    ni = np.uint64(n_inner)
    bad = 0
    for o in range(o0, o1):
        plane = np.uint64(o * n_pos * n_inner)
        vzero(of, plane, n_pos * n_inner)
        base = np.uint64(o * n_src * n_inner)
        if n_inner == 1:  # channels-first: one loop, not an inner loop of length 1 per index
            for k in range(base, base + np.uint64(n_src)):
                p = np.uint64(xf[k])  # negative indices wrap to huge values
                if p >= limit:
                    bad += 1
                else:
                    of[plane + p] = comb(of[plane + p], sf[k])
            continue
        for q in range(np.uint64(n_src)):
            for i in range(ni):
                k = base + q * ni + i
                p = np.uint64(xf[k])
                if p >= limit:
                    bad += 1
                else:
                    d = plane + p * ni + i
                    of[d] = comb(of[d], sf[k])
    return bad


@kernel
def scatter_add(g, idx, out, o0, o1):
    """out[o, idx[o, q, i], i] += g[o, q, i] on zeroed planes; returns the out-of-range count."""
    return _scatter(g, idx, out, o0, o1, add2)


@kernel
def scatter_set(v, idx, out, o0, o1):
    """out[o, idx[o, q, i], i] = v[o, q, i] on zeroed planes (the later duplicate wins); returns the
    out-of-range count."""
    return _scatter(v, idx, out, o0, o1, put2)


@kernel
def touch_pages(buf, step):
    """Write a zero byte every ``step`` bytes of ``buf`` (uint8): its pages are faulted in by the
    calling thread, before the pool's threads write it."""
    for k in range(0, buf.size, step):
        buf[k] = 0
