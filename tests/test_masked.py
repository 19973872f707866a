"""Masked pooling over sequences of different lengths (``masked_pool``, issue 3): hand-computed
cases, per-row slicing (``support/oracle_fixed.py``), dtypes and NaN, finite differences, and its
errors."""

from __future__ import annotations

import numpy as np
import pytest

from poolkit import masked_pool, masked_pool_backward

from support import oracle_fixed as RF
from support.data import distinct
from support.finite_differences import check_fd


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
    expected = RF.ref_masked_pool(x, mask, mode, ax, -3.0)
    got = masked_pool(x, mask, mode=mode, axis=axis, fill=-3.0)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    np.testing.assert_allclose(masked_pool(x, lengths=np.array([t, 2, 0, 1]), mode=mode, axis=axis, fill=-3.0),
                               RF.ref_masked_pool(x, _mask_from(lengths, t), mode, ax, -3.0), rtol=1e-13)
    g = rng.standard_normal(got.shape)
    gx = masked_pool_backward(g, x, mask, mode=mode, axis=axis, fill=-3.0)
    np.testing.assert_allclose(gx, RF.ref_masked_pool_backward(g, x, mask, mode, ax), rtol=1e-13)
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
# errors: ValueError / TypeError naming the argument and value, before any kernel runs
# ---------------------------------------------------------------------------------------------


ERRORS = [
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
]


@pytest.mark.parametrize("call,exc,match", ERRORS)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
