"""Global, adaptive, spatial pyramid and fractional max pooling (issue 3): hand-computed cases,
the slow oracle in ``support/oracle_fixed.py``, finite differences, and their errors.  PyTorch
comparisons live in ``peers/test_torch.py``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolkit import (
    adaptive_avg_pool,
    adaptive_avg_pool_backward,
    adaptive_max_pool,
    adaptive_max_pool_backward,
    fractional_max_pool,
    fractional_max_pool_backward,
    global_avg_pool,
    global_avg_pool_backward,
    global_lp_pool,
    global_lp_pool_backward,
    global_max_pool,
    global_max_pool_backward,
    spatial_pyramid_pool,
    spatial_pyramid_pool_backward,
)

from support import oracle_fixed as RF
from support.data import distinct
from support.finite_differences import check_fd

# ---------------------------------------------------------------------------------------------
# global pooling
# ---------------------------------------------------------------------------------------------


def test_global_hand_computed():
    x = np.array([[[[1, 3], [2, 9]], [[-1, -5], [0, -2]]]])  # (1, 2, 2, 2)
    np.testing.assert_array_equal(global_max_pool(x), [[9, 0]])
    np.testing.assert_array_equal(global_avg_pool(x), [[3.75, -2.0]])
    np.testing.assert_allclose(global_lp_pool(x, 2), [[np.sqrt(95), np.sqrt(30)]])
    assert global_max_pool(x, keepdims=True).shape == (1, 2, 1, 1)
    assert global_max_pool(x).dtype == x.dtype
    assert global_avg_pool(x).dtype == np.float64
    assert global_avg_pool(x.astype(np.float32)).dtype == np.float32


def test_global_axes_and_layouts(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    np.testing.assert_array_equal(global_max_pool(x), x.max(axis=(2, 3)))
    np.testing.assert_allclose(global_avg_pool(x), x.mean(axis=(2, 3)))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(global_avg_pool(nhwc, axes=(1, 2)), x.mean(axis=(2, 3)))
    np.testing.assert_array_equal(global_max_pool(x, axes=-1), x.max(axis=-1))
    np.testing.assert_allclose(global_lp_pool(x, 3, axes=(1, 3), keepdims=True),
                               (np.abs(x) ** 3).sum(axis=(1, 3), keepdims=True) ** (1 / 3))
    # NaN propagates
    y = x.copy()
    y[1, 2, 3, 4] = np.nan
    assert np.isnan(global_max_pool(y)[1, 2]) and not np.isnan(global_max_pool(y)[1, 1])


def _global_oracle(x, axes, keepdims, op):
    """Global max, or mean in float64 rounded to the result's dtype: NumPy over the pooled axes."""
    if op == "max":
        return x.max(axis=axes, keepdims=keepdims)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    return x.astype(np.float64).mean(axis=axes, keepdims=keepdims).astype(dtype)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_repeated_global_calls_follow_their_arguments(rng, op):
    """A repeated global call with the very same immutable arguments takes the prepared call
    (pooling._repeated, _engine.whole_call); each change below -- values, shape, dtype, layout,
    axes, keepdims, out, acc_dtype, an int input -- must still give the oracle's result, shape and
    dtype, and the input is never modified."""
    pool = global_max_pool if op == "max" else global_avg_pool

    def check(x, axes=None, keepdims=False, **kw):
        before = np.array(x, copy=True)
        got = pool(x, axes, keepdims, **kw)
        ax = tuple(range(2, np.ndim(x))) if axes is None else axes
        want = _global_oracle(np.asarray(x), ax, keepdims, op)
        assert got.shape == want.shape and got.dtype == want.dtype
        if op == "max":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=2e-7 if got.dtype == np.float32 else 1e-15)
        np.testing.assert_array_equal(np.asarray(x), before)
        return got

    x = rng.standard_normal((4, 8, 7, 7)).astype(np.float32)
    firsts = [check(x) for _ in range(3)]  # the same objects each time: the prepared call's case
    assert firsts[1] is not firsts[2] and not np.shares_memory(firsts[1], firsts[2])
    y = rng.standard_normal(x.shape).astype(np.float32)  # other values, same shape
    check(y)
    check(y[:, :, :5])  # another shape (and a view that is not contiguous)
    check(np.ascontiguousarray(y[:3]))  # another batch
    check(y.astype(np.float64))  # another dtype
    check(np.asfortranarray(y))  # another layout, same shape and dtype
    check((y * 100).astype(np.int32))  # an integer input: the mean in float64
    nhwc = np.ascontiguousarray(y.transpose(0, 2, 3, 1))
    for _ in range(2):
        check(nhwc, (1, 2))
        check(nhwc, (1, 2), True)
    check(y, (2, 3), True)
    check(y, -1)
    buf = np.full((4, 8), np.nan, np.float32)  # with out: written there, never remembered
    for _ in range(2):
        assert pool(y, out=buf) is buf
        np.testing.assert_array_equal(buf, check(y))
    if op == "avg":
        for _ in range(2):
            got = pool(y, acc_dtype="float32")  # 49 float32 additions of values below 6 in size
            np.testing.assert_allclose(got, _global_oracle(y, (2, 3), False, op), rtol=1e-6, atol=49 * 6 * 2**-24)
        check(y)  # back to float64 sums
    big = rng.standard_normal((64, 64, 32, 32)).astype(np.float32)  # 16 MiB: global maxima and
    for _ in range(2):  # sums of this size run on the thread pool
        check(big)


def test_global_backward_hand_computed():
    x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])
    np.testing.assert_array_equal(global_max_pool_backward(np.array([[2.0]]), x), [[[[0, 2], [0, 0]]]])
    np.testing.assert_array_equal(global_avg_pool_backward(np.array([[2.0]]), x), np.full((1, 1, 2, 2), 0.5))


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_fd(keepdims, rng):
    x = distinct((2, 3, 3, 2), rng)
    check_fd(lambda v: global_max_pool(v, keepdims=keepdims),
             lambda g, v: global_max_pool_backward(g, v, keepdims=keepdims), x)
    check_fd(lambda v: global_avg_pool(v, axes=(1, 3), keepdims=keepdims),
             lambda g, v: global_avg_pool_backward(g, v, axes=(1, 3), keepdims=keepdims), x)
    check_fd(lambda v: global_lp_pool(v, 3, keepdims=keepdims),
             lambda g, v: global_lp_pool_backward(g, v, 3, keepdims=keepdims), x + 0.05, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# adaptive pooling
# ---------------------------------------------------------------------------------------------


def test_adaptive_hand_computed(rng):
    x = np.array([[[1, 5, 2, 0, 3]]])
    # In=5, Out=3: bins [0, 2), [1, 4), [3, 5)
    np.testing.assert_array_equal(adaptive_max_pool(x, 3), [[[5, 5, 3]]])
    out, idx = adaptive_max_pool(x, 3, return_indices=True)
    np.testing.assert_array_equal(idx, [[[1, 1, 4]]])
    # Out=2: bins [0, 3), [2, 5)
    np.testing.assert_allclose(adaptive_avg_pool(x, 2), [[[8 / 3, 5 / 3]]])
    # In < Out repeats cells: In=2, Out=3: bins [0,1), [0,2), [1,2)
    np.testing.assert_array_equal(adaptive_max_pool(np.array([[[4, 7]]]), 3), [[[4, 7, 7]]])
    np.testing.assert_allclose(adaptive_avg_pool(np.array([[[4, 7]]]), 3), [[[4, 5.5, 7]]])
    # In == Out is the identity
    z = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(adaptive_max_pool(z, (4, 5)), z)
    np.testing.assert_allclose(adaptive_avg_pool(z, (4, 5)), z)
    # backward of the overlapping bins: 5 is the max of bins 0 and 1
    np.testing.assert_array_equal(adaptive_max_pool_backward(np.array([[[1.0, 2, 3]]]), x.astype(float), 3),
                                  [[[0, 3, 0, 0, 3]]])


CASES = [
    # (shape, output_size, axes) -- 1, 2, 3 pooled axes; In smaller, equal, not a multiple
    ((2, 3, 7), 3, None),
    ((2, 3, 4), 6, None),
    ((1, 2, 5, 7), (3, 2), None),
    ((1, 2, 5, 7), (None, 3), None),
    ((2, 6, 5, 3), (2, 4), (1, 2)),          # channels-last
    ((1, 2, 3, 5, 4), (2, 2, 3), None),
    ((1, 1, 4, 3, 5), (4, None, 2), None),
    ((6, 5), (4,), None),
    ((1, 2, 40, 33), (3, 5), None),          # wide windows
    ((2, 31, 3), (4,), (1,)),
]


@pytest.mark.parametrize("shape,osize,axes", CASES)
def test_adaptive_matches_oracle(shape, osize, axes, rng):
    x = rng.standard_normal(shape)
    nd = len(shape)
    if axes is None:
        n = 1 if isinstance(osize, int) else len(osize)
        ax = tuple(range(nd - n, nd)) if not isinstance(osize, int) else tuple(range(2, nd))
    else:
        ax = tuple(sorted(axes))
    sizes = [osize] * len(ax) if isinstance(osize, int) else list(osize)
    if axes is not None:  # sizes follow the given axes order
        sizes = [dict(zip(axes, sizes))[a] for a in ax]
    out, idx = adaptive_max_pool(x, osize, axes=axes, return_indices=True)
    rout, ridx = RF.ref_adaptive_max(x, sizes, ax)
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_allclose(adaptive_avg_pool(x, osize, axes=axes), RF.ref_adaptive_avg(x, sizes, ax),
                               rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize, axes=axes),
                               RF.ref_adaptive_max_backward(g, x, sizes, ax), rtol=1e-13)
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize, axes=axes, indices=idx),
                               RF.ref_adaptive_max_backward(g, x, sizes, ax), rtol=1e-13)
    np.testing.assert_allclose(adaptive_avg_pool_backward(g, x, osize, axes=axes),
                               RF.ref_adaptive_avg_backward(g, x, sizes, ax), rtol=1e-12, atol=1e-15)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.data())
def test_adaptive_hypothesis(spatial, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    outs = [data.draw(st.one_of(st.none(), st.integers(1, 7))) for _ in spatial]
    dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int32]))
    x = (rng.standard_normal((2, 2) + tuple(spatial)) * 4).astype(dtype)
    ax = tuple(range(2, 2 + len(spatial)))
    out, idx = adaptive_max_pool(x, outs, return_indices=True)
    rout, ridx = RF.ref_adaptive_max(x, outs, ax)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(idx, ridx)
    avg = adaptive_avg_pool(x, outs)
    assert avg.dtype == (np.float64 if dtype == np.int32 else dtype)
    tol = dict(rtol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(avg, RF.ref_adaptive_avg(x, outs, ax), **tol)


def test_adaptive_axes_order(rng):
    x = rng.standard_normal((2, 3, 5, 7))
    # output_size follows the order of axes
    np.testing.assert_array_equal(adaptive_max_pool(x, (2, 4), axes=(3, 2)), adaptive_max_pool(x, (4, 2), axes=(2, 3)))
    np.testing.assert_array_equal(adaptive_max_pool(x, (4, 2), axes=(-2, -1)), adaptive_max_pool(x, (4, 2)))
    # an int output_size pools every axis after (N, C)
    np.testing.assert_array_equal(adaptive_max_pool(x, 2), adaptive_max_pool(x, (2, 2)))


def test_adaptive_dtypes_and_odd_arrays(rng):
    x = rng.integers(-50, 50, (2, 3, 6, 5)).astype(np.int8)
    np.testing.assert_array_equal(adaptive_max_pool(x, 2), RF.ref_adaptive_max(x, [2, 2], (2, 3))[0])
    b = rng.random((1, 2, 5, 5)) > 0.7
    np.testing.assert_array_equal(adaptive_max_pool(b, 3), RF.ref_adaptive_max(b, [3, 3], (2, 3))[0])
    h = rng.standard_normal((1, 2, 5, 4)).astype(np.float16)
    assert adaptive_avg_pool(h, 3).dtype == np.float16
    np.testing.assert_allclose(adaptive_avg_pool(h, 3), RF.ref_adaptive_avg(h, [3, 3], (2, 3)), rtol=1e-3)
    # non-contiguous, negative strides, empty batch; the input is not modified
    y = rng.standard_normal((3, 2, 9, 8))[:, :, ::-2, 1::2]
    y0 = y.copy()
    np.testing.assert_array_equal(adaptive_max_pool(y, (2, 3)), RF.ref_adaptive_max(y, [2, 3], (2, 3))[0])
    np.testing.assert_array_equal(y, y0)
    assert adaptive_avg_pool(np.zeros((0, 3, 5, 5)), 2).shape == (0, 3, 2, 2)


@pytest.mark.parametrize("osize", [(2, 3), (3, None), (5, 4)])
def test_adaptive_fd(osize, rng):
    x = distinct((2, 2, 4, 3), rng)
    check_fd(lambda v: adaptive_max_pool(v, osize), lambda g, v: adaptive_max_pool_backward(g, v, osize), x)
    check_fd(lambda v: adaptive_avg_pool(v, osize), lambda g, v: adaptive_avg_pool_backward(g, v, osize), x)


# ---------------------------------------------------------------------------------------------
# spatial pyramid pooling
# ---------------------------------------------------------------------------------------------


def test_spp_hand_computed():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(spatial_pyramid_pool(x, (1, 2)), [[15, 5, 7, 13, 15]])
    np.testing.assert_array_equal(spatial_pyramid_pool(x, (1, 2), mode="avg"), [[7.5, 2.5, 4.5, 10.5, 12.5]])


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("hw", [(13, 13), (7, 10), (4, 4), (3, 2), (1, 1)])
def test_spp_fixed_length_and_oracle(mode, hw, rng):
    levels = (1, 2, 4)
    x = rng.standard_normal((2, 3) + hw)
    out = spatial_pyramid_pool(x, levels, mode=mode)
    assert out.shape == (2, 3 * (1 + 4 + 16))
    np.testing.assert_allclose(out, RF.ref_spp(x, levels, mode, (2, 3)), rtol=1e-12, atol=1e-14)


def test_spp_layouts_and_dims(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = spatial_pyramid_pool(nhwc, (1, 2), axes=(1, 2))
    # per level, flattened (l, l, C) for NHWC
    lvl2 = RF.ref_adaptive_max(x, [2, 2], (2, 3))[0].transpose(0, 2, 3, 1).reshape(2, -1)
    np.testing.assert_array_equal(out[:, 3:], lvl2)
    v = rng.standard_normal((2, 2, 5, 4, 3))
    assert spatial_pyramid_pool(v, (1, 2, 3)).shape == (2, 2 * (1 + 8 + 27))
    s = rng.standard_normal((2, 4, 9))
    assert spatial_pyramid_pool(s, (1, 2, 4)).shape == (2, 4 * 7)
    assert spatial_pyramid_pool(s, 3).shape == (2, 12)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_spp_fd(mode, rng):
    x = distinct((2, 2, 5, 3), rng)
    check_fd(lambda v: spatial_pyramid_pool(v, (1, 2, 3), mode=mode),
             lambda g, v: spatial_pyramid_pool_backward(g, v, (1, 2, 3), mode=mode), x)


# ---------------------------------------------------------------------------------------------
# fractional max pooling
# ---------------------------------------------------------------------------------------------


def test_fractional_hand_computed():
    # In=5, Out=3, k=2, u=0.5: alpha = 1.5, starts int(0.75)-0=0, int(2.25)-0=2, last 3
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    u = np.array([[[0.5, 0.5]]])
    out, idx = fractional_max_pool(x, 2, (3, 3), random_samples=u, return_indices=True)
    np.testing.assert_array_equal(out, [[[[6, 8, 9], [16, 18, 19], [21, 23, 24]]]])
    np.testing.assert_array_equal(idx, out.astype(np.int64))
    assert RF.ref_fractional_starts(0.5, 5, 3, 2, np.float64) == [0, 2, 3]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("shape,kernel,osize", [
    ((2, 3, 11, 9), (2, 3), (5, 4)),
    ((1, 2, 7, 8, 9), (2, 2, 3), (3, 5, 4)),
    ((3, 2, 17), (3,), (9,)),
])
def test_fractional_matches_oracle(dtype, shape, kernel, osize, rng):
    x = distinct(shape, rng, scale=1.0).astype(dtype)
    d = len(kernel)
    u = rng.random(shape[:2] + (d,))
    out, idx = fractional_max_pool(x, kernel, osize, random_samples=u, return_indices=True)
    ax = tuple(range(2, 2 + d))
    rout, ridx = RF.ref_fractional_max(x, kernel, osize, u.astype(dtype), ax, dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(idx, ridx)


def test_fractional_rng_ratio_and_layout(rng):
    x = rng.standard_normal((2, 3, 10, 12))
    a = fractional_max_pool(x, 2, output_ratio=0.5, rng=np.random.default_rng(7))
    b = fractional_max_pool(x, 2, output_ratio=0.5, rng=np.random.default_rng(7))
    assert a.shape == (2, 3, 5, 6)
    np.testing.assert_array_equal(a, b)
    # the same draws, given explicitly
    u = np.random.default_rng(7).random((2, 3, 2))
    np.testing.assert_array_equal(a, fractional_max_pool(x, 2, (5, 6), random_samples=u))
    # channels-last: the samples follow the non-pooled axes (N, C)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(fractional_max_pool(nhwc, (2, 2), (5, 6), axes=(1, 2), random_samples=u),
                                  a.transpose(0, 2, 3, 1))
    # an unbatched (C, H, W) input takes (1, C, 2) samples, as PyTorch
    np.testing.assert_array_equal(fractional_max_pool(x[0], (2, 2), (5, 6), random_samples=u[:1]), a[0])
    # output_size 1 and the identity (Out = In - k + 1)
    assert fractional_max_pool(x, 3, 1, random_samples=u).shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(fractional_max_pool(x, 1, (10, 12), random_samples=u), x)


def test_fractional_fd(rng):
    x = distinct((2, 2, 7, 6), rng)
    u = rng.random((2, 2, 2))
    f = lambda v: fractional_max_pool(v, (2, 2), (4, 3), random_samples=u)  # noqa: E731
    check_fd(f, lambda g, v: fractional_max_pool_backward(g, v, (2, 2), (4, 3), random_samples=u), x)
    out, idx = fractional_max_pool(x, (2, 2), (4, 3), random_samples=u, return_indices=True)
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(fractional_max_pool_backward(g, x, (2, 2), (4, 3), indices=idx),
                                  fractional_max_pool_backward(g, x, (2, 2), (4, 3), random_samples=u))


# ---------------------------------------------------------------------------------------------
# errors: ValueError / TypeError naming the argument and value, before any kernel runs
# ---------------------------------------------------------------------------------------------


X4 = np.zeros((2, 3, 6, 6))


ERRORS = [
    (lambda: global_max_pool(np.zeros((3, 4))), ValueError, "axes"),
    (lambda: global_avg_pool(X4, axes=(2, 2)), ValueError, "repeat"),
    (lambda: global_avg_pool(X4, axes=5), ValueError, "out of range"),
    (lambda: global_max_pool(X4, keepdims=1), TypeError, "keepdims"),
    (lambda: global_lp_pool(X4, 0), ValueError, "p must"),
    (lambda: global_max_pool(np.zeros((2, 3, 0, 4))), ValueError, "size 0"),
    (lambda: global_max_pool(np.array(["a", "b"], dtype=object)), TypeError, "dtype"),
    (lambda: global_max_pool_backward(np.zeros((2, 4)), X4), ValueError, "grad_output"),
    (lambda: adaptive_max_pool(X4, 0), ValueError, "output_size"),
    (lambda: adaptive_max_pool(X4, (2, -1)), ValueError, "output_size"),
    (lambda: adaptive_max_pool(X4, 2.5), TypeError, "output_size"),
    (lambda: adaptive_avg_pool(X4, (2, 2, 2, 2, 2)), ValueError, "output_size"),
    (lambda: adaptive_avg_pool(X4, ()), ValueError, "output_size"),
    (lambda: adaptive_avg_pool(X4, (2, 2), axes=(1,)), ValueError, "axes"),
    (lambda: adaptive_avg_pool(np.zeros((1, 2, 0, 3)), 2), ValueError, "size 0"),
    (lambda: adaptive_avg_pool(X4, 10**13), ValueError, "elements"),
    (lambda: adaptive_max_pool_backward(np.zeros((2, 3, 3, 3)), X4, 2), ValueError, "grad_output"),
    (lambda: adaptive_max_pool_backward(np.zeros((2, 3, 2, 2)), X4, 2, indices=np.full((2, 3, 2, 2), 36)),
     ValueError, "indices"),
    (lambda: adaptive_max_pool_backward(np.zeros((2, 3, 2, 2)), X4, 2, indices=np.zeros((2, 3, 2, 2))),
     TypeError, "indices"),
    (lambda: spatial_pyramid_pool(X4, (1, 0)), ValueError, "levels"),
    (lambda: spatial_pyramid_pool(X4, ()), ValueError, "levels"),
    (lambda: spatial_pyramid_pool(X4, (1, 2.0)), TypeError, "levels"),
    (lambda: spatial_pyramid_pool(X4, mode="min"), ValueError, "mode"),
    (lambda: spatial_pyramid_pool(X4, axes=(0, 2)), ValueError, "batch"),
    (lambda: spatial_pyramid_pool_backward(np.zeros((2, 5)), X4), ValueError, "grad_output"),
    (lambda: fractional_max_pool(X4, 2), ValueError, "output_size"),
    (lambda: fractional_max_pool(X4, 2, 3, 0.5), ValueError, "exactly one"),
    (lambda: fractional_max_pool(X4, 2, 6), ValueError, "kernel_size"),
    (lambda: fractional_max_pool(X4, 0, 3), ValueError, "kernel_size"),
    (lambda: fractional_max_pool(X4, 2, 0), ValueError, "output_size"),
    (lambda: fractional_max_pool(X4, 2, output_ratio=1.5), ValueError, "output_ratio"),
    (lambda: fractional_max_pool(X4, 2, output_ratio=0.1), ValueError, "output_ratio"),
    (lambda: fractional_max_pool(X4, 2, 3, random_samples=np.full((2, 3, 2), 1.5)), ValueError, "random_samples"),
    (lambda: fractional_max_pool(X4, 2, 3, random_samples=np.full((2, 3, 2), np.nan)), ValueError, "random_samples"),
    (lambda: fractional_max_pool(X4, 2, 3, random_samples=np.zeros((2, 2))), ValueError, "random_samples"),
    (lambda: fractional_max_pool(X4, 2, 3, rng=7), TypeError, "rng"),
    (lambda: fractional_max_pool(X4, (2, 2), (3, 3, 3)), ValueError, "output_size"),
    (lambda: fractional_max_pool_backward(np.zeros((2, 3, 3, 3)), X4, 2, 3), ValueError, "random_samples"),
    (lambda: fractional_max_pool_backward(np.zeros((2, 3, 3, 3)), X4, 2, 3, indices=np.full((2, 3, 3, 3), -1)),
     ValueError, "indices"),
]


@pytest.mark.parametrize("call,exc,match", ERRORS)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
