"""``acc_dtype="float32"``: the averages of a float32 input summed in float32 (``avg_pool``,
``global_avg_pool``, ``adaptive_avg_pool``), on every path of the engine.

The default sums in float64, so it is the float64 oracle's mean rounded once; float32 sums round as
they go, in an order the kernel picks, so they are checked against the oracle with the error bound
of any float32 summation order (``k`` terms: ``k * eps * sum |x|``), and a hand case shows that
float32 sums are really used (their rounding is visible) on each path.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_out import assert_bit_identical, dirty

import poolkit

from support import oracle as R
from support import oracle_fixed as RF

EPS32 = float(np.finfo(np.float32).eps)

# (id, shape, kernel, stride, padding, axes): the prepared small call, the fused kernels (serial and
# on the helper threads, channels-first and channels-last, 1-D to 3-D), the separable path
GEOMS = [
    ("tiny", (1, 1, 6, 6), (2, 2), None, 0, None),
    ("3x3_s2_p1", (2, 3, 9, 11), (3, 3), 2, 1, None),
    ("nhwc", (2, 9, 11, 5), (3, 3), 2, 1, (1, 2)),
    ("1d_k4", (3, 4, 40), (4,), None, 0, None),
    ("3d", (2, 2, 6, 7, 8), (2, 2, 2), None, 0, None),
    ("wide_9x9", (1, 2, 23, 23), (9, 9), 1, 4, None),
    ("axes_apart", (4, 5, 6, 7), (2, 3), None, 0, (0, 2)),
    ("large", (2, 8, 64, 64), (3, 3), 2, 1, None),
    ("large_nhwc", (4, 32, 32, 16), (2, 2), None, 0, (1, 2)),
]


def _oracle_args(shape, k, s, p, axes):
    n = len(k)
    axes = tuple(range(len(shape) - n, len(shape))) if axes is None else axes
    stride = k if s is None else (s,) * n
    return (k, stride, poolkit.resolve_padding(shape, k, s, p, axes=axes), (1,) * n, False, axes)


def _bound(x_abs_windows_sum, k):
    """Any order of k float32 additions, then a division and a rounding: within this of the exact
    mean (``x_abs_windows_sum`` is the window mean of |x|, as the oracle computes it)."""
    return (k + 2) * EPS32 * x_abs_windows_sum + 1e-45


@pytest.mark.parametrize("name, shape, k, s, p, axes", GEOMS, ids=[g[0] for g in GEOMS])
def test_avg_pool_float32_sums_against_the_oracle(name, shape, k, s, p, axes):
    x = np.random.default_rng(50).standard_normal(shape).astype(np.float32)
    oracle = _oracle_args(shape, k, s, p, axes)
    ref = R.ref_avg_pool(x.astype(np.float64), *oracle)
    abs_mean = R.ref_avg_pool(np.abs(x.astype(np.float64)), *oracle)
    got = poolkit.avg_pool(x, k, s, p, axes=axes, acc_dtype="float32")
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert (np.abs(got - ref) <= _bound(abs_mean, int(np.prod(k)))).all()
    # the default is the float64 mean rounded once
    np.testing.assert_array_equal(poolkit.avg_pool(x, k, s, p, axes=axes), ref.astype(np.float32))


@pytest.mark.parametrize("shape, axes", [((2, 3, 7, 7), None), ((2, 7, 7, 3), (1, 2)), ((32, 512, 7, 7), None),
                                         ((4, 5, 6), 0)], ids=["nchw", "nhwc", "large", "axis_0"])
def test_global_avg_pool_float32_sums(shape, axes):
    x = np.random.default_rng(51).standard_normal(shape).astype(np.float32)
    ax = tuple(range(2, len(shape))) if axes is None else ((axes,) if isinstance(axes, int) else axes)
    ref = x.astype(np.float64).mean(axis=ax)
    got = poolkit.global_avg_pool(x, axes=axes, acc_dtype="float32")
    assert got.dtype == np.float32
    n = int(np.prod([shape[a] for a in ax]))
    assert (np.abs(got - ref) <= _bound(np.abs(x.astype(np.float64)).mean(axis=ax), n)).all()
    np.testing.assert_array_equal(poolkit.global_avg_pool(x, axes=axes), ref.astype(np.float32))


@pytest.mark.parametrize("shape, size", [((2, 3, 14, 14), 7), ((2, 3, 13, 17), (5, 4)), ((4, 16, 64, 64), 7)])
def test_adaptive_avg_pool_float32_sums(shape, size):
    x = np.random.default_rng(52).standard_normal(shape).astype(np.float32)
    sizes = (size, size) if isinstance(size, int) else size
    ref = RF.ref_adaptive_avg(x, sizes, (2, 3))
    abs_mean = RF.ref_adaptive_avg(np.abs(x), sizes, (2, 3))
    got = poolkit.adaptive_avg_pool(x, size, acc_dtype="float32")
    longest = max(-(-n // o) + 1 for n, o in zip(shape[2:], sizes)) ** 2
    assert got.dtype == np.float32
    assert (np.abs(got - ref) <= _bound(abs_mean, longest)).all()


# 2**24 + 1 + 1 + 1: float32 cannot hold 2**24 + 1, so every order of float32 additions loses some
# of the ones (the mean comes out as 4194304, 4194304.5 or 4194305); in float64 the sum is exact and
# the mean, 4194304.75, is a float32 number.
ROUNDS = np.array([2.0**24, 1, 1, 1], np.float32)
EXACT_MEAN = 4194304.75


@pytest.mark.parametrize("name, call", [
    ("small", lambda x, **k: poolkit.avg_pool(np.tile(x, (1, 1, 6, 1)), (1, 4), **k)),
    ("fused", lambda x, **k: poolkit.avg_pool(np.tile(x, (2, 3, 9, 5)), (1, 4), **k)),
    ("fused_large", lambda x, **k: poolkit.avg_pool(np.tile(x, (4, 8, 64, 16)), (2, 4), (1, 4), **k)),
    ("nhwc", lambda x, **k: poolkit.avg_pool(np.tile(x[:, None], (1, 5)), (4,), axes=(0,), **k)),
    ("separable", lambda x, **k: poolkit.avg_pool(np.tile(x, (3, 2, 1, 1)).transpose(3, 1, 0, 2), (4, 1),
                                                  axes=(0, 2), **k)),
    ("global", lambda x, **k: poolkit.global_avg_pool(np.tile(x, (2, 3, 1)), axes=2, **k)),
    ("global_nhwc", lambda x, **k: poolkit.global_avg_pool(np.tile(x[:, None], (1, 5)), axes=0, **k)),
    ("adaptive", lambda x, **k: poolkit.adaptive_avg_pool(np.tile(x, (2, 3, 1)), 1, **k)),
])
def test_float32_sums_are_really_float32(name, call):
    x = ROUNDS.reshape(1, 1, 1, 4) if name in ("small", "fused", "fused_large") else \
        ROUNDS.reshape(1, 4) if name == "separable" else ROUNDS
    exact = call(x)
    assert (exact == EXACT_MEAN).all()
    rounded = call(x, acc_dtype="float32")
    assert rounded.dtype == np.float32
    assert ((rounded == 4194304.0) | (rounded == 4194304.5) | (rounded == 4194305.0)).all()
    assert not (rounded == EXACT_MEAN).any()


def test_float32_sums_of_exact_values_are_exact():
    """Small integers sum exactly in float32: the same result, bit for bit, as the default."""
    x = np.random.default_rng(53).integers(-50, 50, (2, 3, 16, 16)).astype(np.float32)
    for call in (lambda **k: poolkit.avg_pool(x, (2, 2), **k), lambda **k: poolkit.avg_pool(x, (3, 3), 2, 1, **k),
                 lambda **k: poolkit.global_avg_pool(x, **k), lambda **k: poolkit.adaptive_avg_pool(x, 4, **k)):
        assert_bit_identical(call(acc_dtype=np.float32), call())


def test_with_out_and_repeated_small_calls():
    """acc_dtype with out=, and the remembered small call: each call gets its own sums."""
    x = np.tile(ROUNDS.reshape(1, 1, 1, 4), (1, 1, 6, 1))
    want32 = poolkit.avg_pool(x, (1, 4), acc_dtype="float32")
    for _ in range(3):
        assert (poolkit.avg_pool(x, (1, 4)) == EXACT_MEAN).all()
        assert_bit_identical(poolkit.avg_pool(x, (1, 4), acc_dtype="float32"), want32)
        assert_bit_identical(poolkit.avg_pool(x, (1, 4), acc_dtype=np.float32), want32)
    buf = dirty(want32.shape, np.float32)
    assert poolkit.avg_pool(x, (1, 4), acc_dtype="float32", out=buf) is buf
    assert_bit_identical(buf, want32)
    g = dirty((1, 1), np.float32)
    xs = np.tile(ROUNDS, (1, 1, 1))
    assert poolkit.global_avg_pool(xs, axes=2, out=g, acc_dtype="float32") is g
    assert_bit_identical(g, poolkit.global_avg_pool(xs, axes=2, acc_dtype="float32"))


def test_with_out_and_repeated_large_calls():
    """The same on a call large enough for the helper threads (the remembered large call, and
    out=, which takes the general path's chunks): float32 sums where asked, float64 otherwise."""
    x = np.tile(ROUNDS.reshape(1, 1, 1, 4), (2, 8, 96, 24))  # 147 456 elements
    want32 = poolkit.avg_pool(x, (1, 4), acc_dtype="float32")
    assert not (want32 == EXACT_MEAN).any()  # the float32 rounding shows
    for _ in range(3):
        assert (poolkit.avg_pool(x, (1, 4)) == EXACT_MEAN).all()
        assert_bit_identical(poolkit.avg_pool(x, (1, 4), acc_dtype="float32"), want32)
        buf = dirty(want32.shape, np.float32)
        assert poolkit.avg_pool(x, (1, 4), acc_dtype="float32", out=buf) is buf
        assert_bit_identical(buf, want32)
        buf = dirty(want32.shape, np.float32)
        assert poolkit.avg_pool(x, (1, 4), out=buf) is buf
        assert (buf == EXACT_MEAN).all()


@pytest.mark.parametrize("acc, x_dtype, match", [
    ("float16", np.float32, "acc_dtype must be 'float64' or 'float32', got 'float16'"),
    (np.int32, np.float32, "acc_dtype must be 'float64' or 'float32', got <class 'numpy.int32'>"),
    ("f8x", np.float32, "acc_dtype must be 'float64' or 'float32', got 'f8x'"),
    (">f4", np.float32, "acc_dtype must be 'float64' or 'float32', got '>f4'"),
    (3, np.float32, "acc_dtype must be 'float64' or 'float32', got 3"),
    ("float32", np.float64, "acc_dtype='float32' needs a float32 x, got x of dtype float64"),
    ("float32", np.float16, "acc_dtype='float32' needs a float32 x, got x of dtype float16"),
    ("float32", np.int32, "acc_dtype='float32' needs a float32 x, got x of dtype int32"),
])
def test_bad_acc_dtype(acc, x_dtype, match):
    x = np.ones((1, 2, 4, 4), x_dtype)
    for call in (lambda: poolkit.avg_pool(x, (2, 2), acc_dtype=acc),
                 lambda: poolkit.global_avg_pool(x, acc_dtype=acc),
                 lambda: poolkit.adaptive_avg_pool(x, 2, acc_dtype=acc)):
        with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_float64_spelled_any_way():
    x = np.random.default_rng(54).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = poolkit.avg_pool(x, (2, 2))
    for acc in ("float64", "f8", np.float64, np.dtype(np.float64), float):
        assert_bit_identical(poolkit.avg_pool(x, (2, 2), acc_dtype=acc), want)


def test_dask_input():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.ones((1, 2, 8, 8), np.float32), chunks=4)
    for call in (lambda **k: poolkit.avg_pool(x, (2, 2), **k), lambda **k: poolkit.global_avg_pool(x, **k),
                 lambda **k: poolkit.adaptive_avg_pool(x, 2, **k)):
        with pytest.raises(ValueError, match="acc_dtype='float32' is for NumPy inputs; a Dask input's sums are "
                                             "float64"):
            call(acc_dtype="float32")
        assert call(acc_dtype="float64").compute().dtype == np.float32
