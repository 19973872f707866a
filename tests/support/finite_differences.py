"""Finite-difference gradients: every backward function is checked against these (float64)."""

from __future__ import annotations

import numpy as np


def fd_grad(f, x, g, h=1e-6):
    """Central differences of ``sum(g * f(x))`` with respect to every element of ``x``."""
    out = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        xp = x.copy()
        xm = x.copy()
        xp[idx] += h
        xm[idx] -= h
        out[idx] = (np.sum(g * f(xp)) - np.sum(g * f(xm))) / (2 * h)
    return out


def check_fd(forward, backward, x, rtol=1e-6, atol=1e-7):
    """``backward(g, x)`` has x's shape and dtype and equals the finite differences of ``forward``."""
    y = forward(x)
    g = np.random.default_rng(5).standard_normal(np.shape(y))
    got = backward(g, x)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, fd_grad(forward, x, g), rtol=rtol, atol=atol)
