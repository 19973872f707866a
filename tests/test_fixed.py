"""The fixed-length family (issue 3) against hand-computed cases, the slow oracle in
``reference_fixed.py``, finite differences, and its error cases.  PyTorch and onnxruntime
comparisons live in test_fixed_torch.py and test_roi_onnx.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit
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
    masked_pool,
    masked_pool_backward,
    roi_align,
    roi_align_backward,
    roi_pool,
    roi_pool_backward,
    spatial_pyramid_pool,
    spatial_pyramid_pool_backward,
)

import reference_fixed as ref

def distinct(shape, rng, scale=0.1):
    """Values spaced at least ``scale`` apart (no near ties: max gradients are well defined)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * scale


def fd_grad(f, x, g, eps=1e-6):
    """Central differences of ``sum(g * f(x))`` with respect to every element of ``x``."""
    out = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        xp = x.copy()
        xm = x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        out[idx] = (np.sum(g * f(xp)) - np.sum(g * f(xm))) / (2 * eps)
    return out


def check_fd(forward, backward, x, rtol=1e-6, atol=1e-7):
    y = forward(x)
    g = np.random.default_rng(5).standard_normal(np.shape(y))
    got = backward(g, x)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, fd_grad(forward, x, g), rtol=rtol, atol=atol)


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
    rout, ridx = ref.ref_adaptive_max(x, sizes, ax)
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_allclose(adaptive_avg_pool(x, osize, axes=axes), ref.ref_adaptive_avg(x, sizes, ax),
                               rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize, axes=axes),
                               ref.ref_adaptive_max_backward(g, x, sizes, ax), rtol=1e-13)
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize, axes=axes, indices=idx),
                               ref.ref_adaptive_max_backward(g, x, sizes, ax), rtol=1e-13)
    np.testing.assert_allclose(adaptive_avg_pool_backward(g, x, osize, axes=axes),
                               ref.ref_adaptive_avg_backward(g, x, sizes, ax), rtol=1e-12, atol=1e-15)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.data())
def test_adaptive_hypothesis(spatial, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    outs = [data.draw(st.one_of(st.none(), st.integers(1, 7))) for _ in spatial]
    dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int32]))
    x = (rng.standard_normal((2, 2) + tuple(spatial)) * 4).astype(dtype)
    ax = tuple(range(2, 2 + len(spatial)))
    out, idx = adaptive_max_pool(x, outs, return_indices=True)
    rout, ridx = ref.ref_adaptive_max(x, outs, ax)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(idx, ridx)
    avg = adaptive_avg_pool(x, outs)
    assert avg.dtype == (np.float64 if dtype == np.int32 else dtype)
    tol = dict(rtol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(avg, ref.ref_adaptive_avg(x, outs, ax), **tol)


def test_adaptive_axes_order(rng):
    x = rng.standard_normal((2, 3, 5, 7))
    # output_size follows the order of axes
    np.testing.assert_array_equal(adaptive_max_pool(x, (2, 4), axes=(3, 2)), adaptive_max_pool(x, (4, 2), axes=(2, 3)))
    np.testing.assert_array_equal(adaptive_max_pool(x, (4, 2), axes=(-2, -1)), adaptive_max_pool(x, (4, 2)))
    # an int output_size pools every axis after (N, C)
    np.testing.assert_array_equal(adaptive_max_pool(x, 2), adaptive_max_pool(x, (2, 2)))


def test_adaptive_dtypes_and_odd_arrays(rng):
    x = rng.integers(-50, 50, (2, 3, 6, 5)).astype(np.int8)
    np.testing.assert_array_equal(adaptive_max_pool(x, 2), ref.ref_adaptive_max(x, [2, 2], (2, 3))[0])
    b = rng.random((1, 2, 5, 5)) > 0.7
    np.testing.assert_array_equal(adaptive_max_pool(b, 3), ref.ref_adaptive_max(b, [3, 3], (2, 3))[0])
    h = rng.standard_normal((1, 2, 5, 4)).astype(np.float16)
    assert adaptive_avg_pool(h, 3).dtype == np.float16
    np.testing.assert_allclose(adaptive_avg_pool(h, 3), ref.ref_adaptive_avg(h, [3, 3], (2, 3)), rtol=1e-3)
    # non-contiguous, negative strides, empty batch; the input is not modified
    y = rng.standard_normal((3, 2, 9, 8))[:, :, ::-2, 1::2]
    y0 = y.copy()
    np.testing.assert_array_equal(adaptive_max_pool(y, (2, 3)), ref.ref_adaptive_max(y, [2, 3], (2, 3))[0])
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
    np.testing.assert_allclose(out, ref.ref_spp(x, levels, mode, (2, 3)), rtol=1e-12, atol=1e-14)


def test_spp_layouts_and_dims(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = spatial_pyramid_pool(nhwc, (1, 2), axes=(1, 2))
    # per level, flattened (l, l, C) for NHWC
    lvl2 = ref.ref_adaptive_max(x, [2, 2], (2, 3))[0].transpose(0, 2, 3, 1).reshape(2, -1)
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
# masked pooling
# ---------------------------------------------------------------------------------------------


def test_masked_hand_computed():
    x = np.array([[1.0, 4.0, 2.0], [3.0, 9.0, 9.0], [7.0, 7.0, 7.0]])
    lengths = np.array([3, 1, 0])
    np.testing.assert_array_equal(masked_pool(x, lengths=lengths), [4, 3, 0])
    np.testing.assert_array_equal(masked_pool(x, lengths=lengths, mode="min", fill=-1), [1, 3, -1])
    np.testing.assert_array_equal(masked_pool(x, lengths=lengths, mode="sum"), [7, 3, 0])
    np.testing.assert_allclose(masked_pool(x, lengths=lengths, mode="mean", fill=5), [7 / 3, 3, 5])
    mask = np.array([[False, True, True], [True, False, True], [False, False, False]])
    np.testing.assert_array_equal(masked_pool(x, mask, mode="sum"), [6, 12, 0])
    # gradients: zero at masked steps and for the empty row
    g = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(masked_pool_backward(g, x, mask), [[0, 1, 0], [0, 0, 2], [0, 0, 0]])
    np.testing.assert_array_equal(masked_pool_backward(g, x, mask, mode="mean"),
                                  [[0, 0.5, 0.5], [1, 0, 1], [0, 0, 0]])


def _mask_from(lengths, t):
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


@pytest.mark.parametrize("mode", ["max", "mean", "sum", "min"])
@pytest.mark.parametrize("axis", [1, 2, -1])
def test_masked_matches_per_row_slicing(mode, axis, rng):
    shape = (4, 6, 5) if axis == 1 else (4, 3, 6)
    x = rng.standard_normal(shape)
    t = x.shape[axis]
    lengths = np.array([t, 2, 0, 1])
    mask = _mask_from(lengths, t)
    mask[0, 1] = False  # not a prefix
    # padding holds garbage (NaN, inf), which must never leak
    xm = np.moveaxis(x, axis, 1).copy()
    xm[~mask] = np.nan
    xm[2] = np.inf
    x = np.moveaxis(xm, 1, axis)
    ax = axis % x.ndim
    expected = ref.ref_masked_pool(x, mask, mode, ax, -3.0)
    got = masked_pool(x, mask, mode=mode, axis=axis, fill=-3.0)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    np.testing.assert_allclose(masked_pool(x, lengths=np.array([t, 2, 0, 1]), mode=mode, axis=axis, fill=-3.0),
                               ref.ref_masked_pool(x, _mask_from(lengths, t), mode, ax, -3.0), rtol=1e-13)
    g = rng.standard_normal(got.shape)
    gx = masked_pool_backward(g, x, mask, mode=mode, axis=axis, fill=-3.0)
    np.testing.assert_allclose(gx, ref.ref_masked_pool_backward(g, x, mask, mode, ax), rtol=1e-13)
    assert np.all(np.moveaxis(gx, axis, 1)[~mask] == 0)


def test_masked_dtypes_and_nan():
    x = np.array([[3, 1, 3, 5], [2, 2, 9, 9]], dtype=np.int16)
    out = masked_pool(x, lengths=np.array([3, 0]))
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [3, 0])
    assert masked_pool(x, lengths=np.array([3, 2]), mode="mean").dtype == np.float64
    f32 = x.astype(np.float32)
    assert masked_pool(f32, lengths=np.array([3, 2]), mode="mean").dtype == np.float32
    h = x.astype(np.float16)
    np.testing.assert_array_equal(masked_pool(h, lengths=np.array([3, 2]), mode="min"), [1, 2])
    b = np.array([[False, True, False], [False, False, True]])
    np.testing.assert_array_equal(masked_pool(b, lengths=np.array([1, 2])), [False, False])
    # first maximum gets the gradient; NaN in a valid step propagates and takes it
    np.testing.assert_array_equal(masked_pool_backward(np.array([1.0, 1.0]), f32, lengths=np.array([3, 2])),
                                  [[1, 0, 0, 0], [1, 0, 0, 0]])
    y = np.array([[1.0, np.nan, 5.0, np.nan]])
    assert np.isnan(masked_pool(y, lengths=np.array([4]))[0])
    np.testing.assert_array_equal(masked_pool_backward(np.array([1.0]), y, lengths=np.array([4])), [[0, 1, 0, 0]])
    # integer (attention) masks are accepted; zero-size batch works
    np.testing.assert_array_equal(masked_pool(f32, np.array([[1, 0, 0, 0], [0, 0, 0, 1]]), mode="sum"), [3, 9])
    assert masked_pool(np.zeros((0, 5, 3)), lengths=np.zeros(0, dtype=int)).shape == (0, 3)


@pytest.mark.parametrize("mode", ["max", "mean", "sum", "min"])
def test_masked_fd(mode, rng):
    x = distinct((3, 4, 2), rng)
    mask = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 1, 1]], dtype=bool)
    check_fd(lambda v: masked_pool(v, mask, mode=mode), lambda g, v: masked_pool_backward(g, v, mask, mode=mode), x)


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
    assert ref.ref_fractional_starts(0.5, 5, 3, 2, np.float64) == [0, 2, 3]


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
    rout, ridx = ref.ref_fractional_max(x, kernel, osize, u.astype(dtype), ax, dtype)
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
# ROI pooling and ROI align
# ---------------------------------------------------------------------------------------------

ROIS5 = np.array([
    [0, 1.0, 1.0, 4.0, 3.0],
    [1, 0.0, 0.0, 7.0, 5.0],
    [1, 2.6, 3.4, 2.6, 3.4],      # rounds to a 1x1 region
    [0, 5.0, 4.0, 2.0, 1.0],      # malformed: forced to 1x1
    [0, -3.0, -2.0, 1.5, 2.5],    # partly outside
    [1, 6.0, 4.0, 12.0, 9.0],     # partly outside: empty bins
])


def test_roi_pool_hand_computed():
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    np.testing.assert_array_equal(roi_pool(x, np.array([[0, 1, 1, 4, 3]]), (2, 2)), [[[[14, 16], [20, 22]]]])
    # spatial_scale 0.5 and rounding half away from zero: (3, 3, 5, 5) * 0.5 -> (2, 2, 3, 3)
    np.testing.assert_array_equal(roi_pool(x, np.array([[0, 3, 3, 5, 5]]), 1, 0.5), [[[[21]]]])
    # a region off the map gives empty bins, which are 0
    np.testing.assert_array_equal(roi_pool(-x - 1, np.array([[0, 4, 4, 9, 9]]), 2), [[[[-29, 0], [0, 0]]]])


@pytest.mark.parametrize("pooled,scale", [((2, 2), 1.0), ((3, 2), 0.5), ((4, 5), 1.0), ((1, 1), 0.25)])
def test_roi_pool_matches_oracle(pooled, scale, rng):
    x = rng.standard_normal((2, 3, 6, 8))
    out = roi_pool(x, ROIS5, pooled, scale)
    rout, _ = ref.ref_roi_pool(x, ROIS5, pooled, scale)
    np.testing.assert_array_equal(out, rout)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(roi_pool_backward(g, x, ROIS5, pooled, scale),
                               ref.ref_roi_pool_backward(g, x, ROIS5, pooled, scale), rtol=1e-13)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(roi_pool(x32, ROIS5.astype(np.float32), pooled, scale),
                                  ref.ref_roi_pool(x32, ROIS5, pooled, scale, np.float32)[0].astype(np.float32))


def test_roi_pool_fd(rng):
    x = distinct((2, 2, 6, 7), rng)
    check_fd(lambda v: roi_pool(v, ROIS5, (2, 3), 1.0), lambda g, v: roi_pool_backward(g, v, ROIS5, (2, 3), 1.0), x)


ROIS4 = np.array([
    [0.3, 1.2, 6.1, 5.4],
    [-2.0, -1.0, 3.0, 2.0],
    [1.0, 1.0, 1.0, 1.0],      # empty when aligned
    [4.0, 4.0, 2.0, 1.0],      # negative size
    [0.0, 0.0, 30.0, 20.0],    # larger than the map
    [5.5, 3.25, 8.75, 6.5],
])
BATCH4 = np.array([0, 1, 1, 0, 1, 0])


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio,pooled,scale", [(0, (3, 4), 0.5), (2, (2, 2), 1.0), (1, (1, 3), 0.25)])
def test_roi_align_matches_oracle(mode, aligned, sampling_ratio, pooled, scale, rng):
    x = rng.standard_normal((2, 3, 7, 9))
    out = roi_align(x, ROIS4, BATCH4, pooled, scale, sampling_ratio, mode, aligned)
    np.testing.assert_allclose(out, ref.ref_roi_align(x, ROIS4, BATCH4, pooled, scale, sampling_ratio, mode, aligned),
                               rtol=1e-12, atol=1e-14)


def test_roi_align_hand_computed():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    b = np.array([0])
    # aligned: corners (0, 0, 4, 4) - 0.5 -> bins of 2, grid 2: samples at 0, 1 and 2, 3 -> means
    np.testing.assert_allclose(roi_align(x, np.array([[0.0, 0.0, 4.0, 4.0]]), b, 2), [[[[2.5, 4.5], [10.5, 12.5]]]])
    # not aligned, one sample at (1, 1): x[1, 1]
    np.testing.assert_allclose(roi_align(x, np.array([[0.0, 0.0, 2.0, 2.0]]), b, 1, sampling_ratio=1, aligned=False),
                               [[[[5.0]]]])
    # ONNX max: the maximum of the weighted corners -- sample (0.5, 0.5) gives max(0.25 * 0, 1, 4, 5) / 4
    np.testing.assert_allclose(roi_align(x, np.array([[0.0, 0.0, 2.0, 2.0]]), b, 1, sampling_ratio=1, mode="max"),
                               [[[[1.25]]]])
    # an empty aligned roi and a roi far off the map give 0
    np.testing.assert_array_equal(roi_align(x, np.array([[1.0, 1.0, 1.0, 1.0], [50, 50, 60, 60]]), np.array([0, 0]), 2),
                                  np.zeros((2, 1, 2, 2)))
    assert roi_align(x.astype(np.float32), np.array([[0.0, 0.0, 4.0, 4.0]]), b, 2).dtype == np.float32
    assert roi_align(x.astype(int), np.array([[0.0, 0.0, 4.0, 4.0]]), b, 2).dtype == np.float64


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_fd(mode, aligned, rng):
    x = distinct((2, 2, 5, 6), rng) + 0.013
    rois = ROIS4[[0, 1, 3, 5]]
    b = np.array([0, 1, 1, 0])
    check_fd(lambda v: roi_align(v, rois, b, (2, 3), 1.0, 2, mode, aligned),
             lambda g, v: roi_align_backward(g, v, rois, b, (2, 3), 1.0, 2, mode, aligned), x, atol=1e-6)


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
    (lambda: masked_pool(np.zeros((2, 4))), ValueError, "mask"),
    (lambda: masked_pool(np.zeros((2, 4)), np.ones((2, 4), bool), lengths=np.array([1, 2])), ValueError, "both"),
    (lambda: masked_pool(np.zeros((2, 4)), np.ones((2, 3), bool)), ValueError, "mask"),
    (lambda: masked_pool(np.zeros((2, 4)), np.ones((2, 4)) * 0.5), TypeError, "mask"),
    (lambda: masked_pool(np.zeros((2, 4)), np.full((2, 4), 2)), ValueError, "mask"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1, 5])), ValueError, "lengths"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1, -1])), ValueError, "lengths"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1, 2, 3])), ValueError, "lengths"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1.0, 2.0])), TypeError, "lengths"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1, 2]), mode="median"), ValueError, "mode"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1, 2]), axis=0), ValueError, "axis"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1, 2]), axis=2), ValueError, "axis"),
    (lambda: masked_pool(np.zeros(4), lengths=np.array([1])), ValueError, "shape"),
    (lambda: masked_pool(np.zeros((2, 4), int), lengths=np.array([1, 2]), fill=np.nan), ValueError, "fill"),
    (lambda: masked_pool(np.zeros((2, 4)), lengths=np.array([1, 2]), fill="x"), TypeError, "fill"),
    (lambda: masked_pool_backward(np.zeros(3), np.zeros((2, 4)), lengths=np.array([1, 2])), ValueError, "grad_output"),
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
    (lambda: roi_pool(np.zeros((3, 6, 6)), ROIS5, 2), ValueError, "N, C, H, W"),
    (lambda: roi_pool(X4, ROIS5[:, :4], 2), ValueError, "rois"),
    (lambda: roi_pool(X4, np.array([[2, 0, 0, 1, 1]]), 2), ValueError, "batch index"),
    (lambda: roi_pool(X4, np.array([[-1, 0, 0, 1, 1]]), 2), ValueError, "batch index"),
    (lambda: roi_pool(X4, np.array([[0.5, 0, 0, 1, 1]]), 2), ValueError, "batch index"),
    (lambda: roi_pool(X4, np.array([[0, 0, np.nan, 1, 1]]), 2), ValueError, "finite"),
    (lambda: roi_pool(X4, np.array([[0, 0, 0, 1e12, 1]]), 2), ValueError, "2\\*\\*31"),
    (lambda: roi_pool(X4, ROIS5, (2, 0)), ValueError, "output_size"),
    (lambda: roi_pool(X4, ROIS5, 2, spatial_scale=0), ValueError, "spatial_scale"),
    (lambda: roi_pool(X4, ROIS5.astype(str), 2), TypeError, "rois"),
    (lambda: roi_pool_backward(np.zeros((6, 3, 2, 3)), X4, ROIS5, 2), ValueError, "grad_output"),
    (lambda: roi_align(X4, ROIS4, BATCH4[:3], 2), ValueError, "batch_indices"),
    (lambda: roi_align(X4, ROIS4, BATCH4 + 2, 2), ValueError, "batch_indices"),
    (lambda: roi_align(X4, ROIS4, BATCH4.astype(float), 2), TypeError, "batch_indices"),
    (lambda: roi_align(X4, ROIS5, BATCH4, 2), ValueError, "rois"),
    (lambda: roi_align(X4, ROIS4, BATCH4, 2, sampling_ratio=-1), ValueError, "sampling_ratio"),
    (lambda: roi_align(X4, ROIS4, BATCH4, 2, sampling_ratio=1.5), TypeError, "sampling_ratio"),
    (lambda: roi_align(X4, ROIS4, BATCH4, 2, mode="sum"), ValueError, "mode"),
    (lambda: roi_align(X4, ROIS4, BATCH4, 2, aligned="yes"), TypeError, "aligned"),
    (lambda: roi_align(X4, ROIS4, BATCH4, 0), ValueError, "output_size"),
    (lambda: roi_align(X4, np.array([[0, 0, 1e9, 1e9]]), np.array([0]), 1), ValueError, "bilinear samples"),
    (lambda: roi_align(np.zeros((1, 1, 0, 4)), ROIS4[:1], BATCH4[:1], 1), ValueError, "spatial"),
    (lambda: roi_align_backward(np.zeros((6, 3, 2, 1)), X4, ROIS4, BATCH4, 2), ValueError, "grad_output"),
]


@pytest.mark.parametrize("call,exc,match", ERRORS)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_public_api():
    for name in ("global_max_pool", "adaptive_max_pool", "spatial_pyramid_pool", "masked_pool",
                 "fractional_max_pool", "roi_pool", "roi_align"):
        assert name in poolkit.__all__ and name + "_backward" in poolkit.__all__
        assert getattr(poolkit, name).__doc__ and ">>>" in getattr(poolkit, name).__doc__
