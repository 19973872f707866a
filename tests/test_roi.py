"""ROI pooling and ROI align (``roi_pool``, ``roi_align``, issue 3): hand-computed cases, the slow
oracle in ``support/oracle_fixed.py``, finite differences, and their errors.  The comparisons with
ONNX Runtime live in ``peers/test_onnx.py``."""

from __future__ import annotations

import numpy as np
import pytest

from poolkit import roi_align, roi_align_backward, roi_pool, roi_pool_backward

from support import oracle_fixed as RF
from support.data import BATCH4, ROIS4, ROIS5, distinct
from support.finite_differences import check_fd

# ---------------------------------------------------------------------------------------------
# ROI pooling (torchvision roi_pool, ONNX MaxRoiPool)
# ---------------------------------------------------------------------------------------------


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
    rout, _ = RF.ref_roi_pool(x, ROIS5, pooled, scale)
    np.testing.assert_array_equal(out, rout)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(roi_pool_backward(g, x, ROIS5, pooled, scale),
                               RF.ref_roi_pool_backward(g, x, ROIS5, pooled, scale), rtol=1e-13)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(roi_pool(x32, ROIS5.astype(np.float32), pooled, scale),
                                  RF.ref_roi_pool(x32, ROIS5, pooled, scale, np.float32)[0].astype(np.float32))


def test_roi_pool_fd(rng):
    x = distinct((2, 2, 6, 7), rng)
    check_fd(lambda v: roi_pool(v, ROIS5, (2, 3), 1.0), lambda g, v: roi_pool_backward(g, v, ROIS5, (2, 3), 1.0), x)


# ---------------------------------------------------------------------------------------------
# ROI align (ONNX RoiAlign)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio,pooled,scale", [(0, (3, 4), 0.5), (2, (2, 2), 1.0), (1, (1, 3), 0.25)])
def test_roi_align_matches_oracle(mode, aligned, sampling_ratio, pooled, scale, rng):
    x = rng.standard_normal((2, 3, 7, 9))
    out = roi_align(x, ROIS4, BATCH4, pooled, scale, sampling_ratio, mode, aligned)
    np.testing.assert_allclose(out, RF.ref_roi_align(x, ROIS4, BATCH4, pooled, scale, sampling_ratio, mode, aligned),
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
