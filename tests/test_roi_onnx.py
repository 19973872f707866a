"""roi_align and roi_pool against onnxruntime: tiny ONNX models (RoiAlign opset 16, MaxRoiPool)
built with onnx.helper and run on the CPU provider."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from poolkit import roi_align, roi_pool  # noqa: E402

ort.set_default_logger_severity(3)  # RoiAlign max mode logs a warning on every session


def _run(node, inputs, types):
    vis = [helper.make_tensor_value_info(name, t, None) for name, t in zip(inputs, types)]
    out_type = types[0]
    graph = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info("Y", out_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)[0]


def ort_roi_align(x, rois, batch, pooled, scale, sampling_ratio, mode, aligned):
    node = helper.make_node(
        "RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode=mode,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
        output_height=pooled[0], output_width=pooled[1], sampling_ratio=sampling_ratio, spatial_scale=scale)
    t = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    return _run(node, {"X": x, "rois": rois.astype(x.dtype), "batch_indices": batch.astype(np.int64)},
                [t, t, TensorProto.INT64])


def ort_max_roi_pool(x, rois, pooled, scale):
    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=list(pooled), spatial_scale=scale)
    return _run(node, {"X": x, "rois": rois.astype(np.float32)}, [TensorProto.FLOAT, TensorProto.FLOAT])


ROIS4 = np.array([
    [0.3, 1.2, 6.1, 5.4],
    [-2.0, -1.0, 3.0, 2.0],
    [1.0, 1.0, 1.0, 1.0],
    [4.0, 4.0, 2.0, 1.0],
    [0.0, 0.0, 30.0, 20.0],
    [5.5, 3.25, 8.75, 6.5],
    [7.9, 0.1, 8.6, 6.9],
])
BATCH4 = np.array([0, 1, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio,pooled,scale", [(0, (3, 4), 0.5), (2, (2, 2), 1.0), (1, (5, 3), 0.25),
                                                         (3, (1, 1), 1.0), (0, (7, 7), 1.0)])
def test_roi_align_matches_onnxruntime(dtype, mode, aligned, sampling_ratio, pooled, scale, rng):
    x = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    expected = ort_roi_align(x, ROIS4, BATCH4, pooled, scale, sampling_ratio, mode, aligned)
    got = roi_align(x, ROIS4.astype(dtype), BATCH4, pooled, scale, sampling_ratio, mode, aligned)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_roi_align_random_rois_match_onnxruntime(rng):
    for trial in range(12):
        n, c, h, w = 2, 2, int(rng.integers(1, 12)), int(rng.integers(1, 12))
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        k = int(rng.integers(1, 6))
        corners = rng.uniform(-4, 20, (k, 4))
        # ONNX Runtime fails (SafeInt overflow) on some negative-size rois: keep x1 <= x2, y1 <= y2
        corners = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]),
                                  np.maximum(corners[:, :2], corners[:, 2:])], axis=1)
        if trial % 2:
            corners = np.round(corners * 4) / 4  # on and between pixel centres
        batch = rng.integers(0, n, k)
        pooled = tuple(int(v) for v in rng.integers(1, 5, 2))
        scale = float(rng.choice([1.0, 0.5, 0.25, 0.0625]))
        sr = int(rng.integers(0, 4))
        for mode in ("avg", "max"):
            for aligned in (True, False):
                expected = ort_roi_align(x, corners.astype(np.float32), batch, pooled, scale, sr, mode, aligned)
                got = roi_align(x, corners.astype(np.float32), batch, pooled, scale, sr, mode, aligned)
                np.testing.assert_array_equal(got, expected, err_msg=f"{trial} {mode} {aligned}")


ROIS5 = np.array([
    [0, 1.0, 1.0, 4.0, 3.0],
    [1, 0.0, 0.0, 7.0, 5.0],
    [1, 2.6, 3.4, 2.6, 3.4],
    [0, 5.0, 4.0, 2.0, 1.0],
    [0, -3.0, -2.0, 1.5, 2.5],
    [1, 6.0, 4.0, 12.0, 9.0],
    [0, 0.5, 1.5, 6.5, 4.5],      # .5 rounds away from zero
])


@pytest.mark.parametrize("pooled,scale", [((2, 2), 1.0), ((3, 2), 0.5), ((4, 5), 1.0), ((1, 1), 0.25), ((6, 6), 1.0),
                                          ((3, 3), 0.3)])
def test_roi_pool_matches_onnxruntime(pooled, scale, rng):
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    expected = ort_max_roi_pool(x, ROIS5, pooled, scale)
    got = roi_pool(x, ROIS5.astype(np.float32), pooled, scale)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_roi_pool_random_rois_match_onnxruntime(rng):
    for _ in range(10):
        h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        x = rng.standard_normal((2, 2, h, w)).astype(np.float32)
        k = int(rng.integers(1, 6))
        rois = np.concatenate([rng.integers(0, 2, (k, 1)), rng.uniform(-3, 14, (k, 4))], axis=1).astype(np.float32)
        pooled = tuple(int(v) for v in rng.integers(1, 5, 2))
        scale = float(rng.choice([1.0, 0.5, 0.25]))
        np.testing.assert_array_equal(roi_pool(x, rois, pooled, scale), ort_max_roi_pool(x, rois, pooled, scale))


def test_roi_pool_all_negative_bins_match_onnxruntime():
    # the maximum of an all-negative bin is that maximum (older ONNX Runtime releases started it at
    # FLT_MIN, the smallest positive float, and returned 1.2e-38)
    x = -np.arange(1.0, 17.0, dtype=np.float32).reshape(1, 1, 4, 4)
    rois = np.array([[0, 0, 0, 1, 1], [0, 2, 2, 3, 3]], dtype=np.float32)
    expected = ort_max_roi_pool(x, rois, (1, 1), 1.0)
    np.testing.assert_array_equal(expected.ravel(), [-1.0, -11.0])
    np.testing.assert_array_equal(roi_pool(x, rois, (1, 1)), expected)
