"""ONNX as the peer: ``poolkit.compat.onnx`` against the ONNX backend conformance cases and
ONNX Runtime, and poolkit's own ``roi_align`` and ``roi_pool`` against ONNX Runtime (RoiAlign
opset 16, MaxRoiPool).

Expected values come from the ONNX node test suite (``onnx.backend.test.loader``) or from
onnxruntime, never from poolkit.
"""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest

from support.data import BATCH4, ROIS4, ROIS5

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

from poolkit import roi_align, roi_pool  # noqa: E402
from poolkit.compat.onnx import OPERATORS, run  # noqa: E402

# ---------------------------------------------------------------------------------------------
# the ONNX backend conformance cases
# ---------------------------------------------------------------------------------------------


POOL_OPS = set(OPERATORS)


def _load_cases():
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np_err = np.seterr(all="ignore")
        try:
            cases = load_model_tests(kind="node")
        finally:
            np.seterr(**np_err)
    found = []
    for case in cases:
        model = case.model
        if model is None:  # a release that ships the cases as files
            model = onnx.load(os.path.join(case.model_dir, "model.onnx"))
        nodes = list(model.graph.node)
        if len(nodes) == 1 and nodes[0].op_type in POOL_OPS:
            found.append((case, model))
    return found


def _data_sets(case, model):
    if case.data_sets is not None:
        return [(list(i), list(o)) for i, o in case.data_sets]
    sets = []
    for d in sorted(glob.glob(os.path.join(case.model_dir, "test_data_set_*"))):
        def read(prefix):
            arrays = []
            for f in sorted(glob.glob(os.path.join(d, f"{prefix}_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3])):
                t = onnx.TensorProto()
                with open(f, "rb") as fh:
                    t.ParseFromString(fh.read())
                arrays.append(numpy_helper.to_array(t))
            return arrays
        sets.append((read("input"), read("output")))
    return sets


CASES = _load_cases()


def test_conformance_case_count():
    # 56 pooling cases in onnx 1.23 (no MaxRoiPool or GlobalLpPool case exists in the suite).
    ops = {m.graph.node[0].op_type for _, m in CASES}
    assert len(CASES) >= 56, len(CASES)
    assert {"MaxPool", "AveragePool", "LpPool", "GlobalMaxPool", "GlobalAveragePool", "MaxUnpool",
            "RoiAlign"} <= ops


@pytest.mark.parametrize("case,model", CASES, ids=[c.name for c, _ in CASES])
def test_conformance(case, model):
    node = model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    sets = _data_sets(case, model)
    assert sets
    for inputs, expected in sets:
        outputs = run(node.op_type, inputs, num_outputs=len(node.output), **attrs)
        assert len(outputs) >= len(expected)
        for got, want in zip(outputs, expected):
            assert got.dtype == want.dtype, (got.dtype, want.dtype)
            assert got.shape == want.shape, (got.shape, want.shape)
            if want.dtype.kind in "iub":
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


# ---------------------------------------------------------------------------------------------
# poolkit.compat.onnx against onnxruntime, beyond the conformance cases
# ---------------------------------------------------------------------------------------------


ort = pytest.importorskip("onnxruntime")
ort.set_default_logger_severity(3)  # RoiAlign max mode logs a warning on every session


def _ort(op_type, inputs, n_outputs=1, opset=22, **attrs):
    names = [f"in{i}" for i in range(len(inputs))]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a in zip(names, inputs)]
    out_info = [helper.make_empty_tensor_value_info(o) for o in outs]
    graph = helper.make_graph([node], "g", ins, out_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, inputs)))


RNG = np.random.default_rng(1234)


def _geometries():
    out = []
    for n in (1, 2, 3):
        for _ in range(6 if n < 3 else 3):
            k = [int(v) for v in RNG.integers(1, 4, n)]
            s = [int(v) for v in RNG.integers(1, 3, n)]
            d = [int(v) for v in RNG.integers(1, 3, n)]
            pads = [int(RNG.integers(0, kk)) for kk in k] * 2
            shape = [2, 3] + [int(v) for v in RNG.integers(5, 9, n)]
            out.append((shape, dict(kernel_shape=k, strides=s, dilations=d, pads=pads,
                                    ceil_mode=int(RNG.integers(0, 2)))))
    out.append(([1, 2, 7, 6], dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad=b"SAME_UPPER")))
    out.append(([1, 2, 7, 6], dict(kernel_shape=[3, 2], strides=[2, 3], auto_pad=b"SAME_LOWER")))
    out.append(([1, 2, 7, 6], dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad=b"VALID")))
    return out


GEOMS = _geometries()


@pytest.mark.parametrize("shape,attrs", GEOMS)
def test_maxpool_vs_onnxruntime(shape, attrs):
    x = RNG.standard_normal(shape).astype(np.float32)
    want_y, want_i = _ort("MaxPool", [x], 2, **attrs)
    got_y, got_i = run("MaxPool", [x], **attrs)
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_i, want_i)
    if len(shape) == 4 and "auto_pad" not in attrs and attrs["dilations"] == [1, 1]:
        want_y, want_i = _ort("MaxPool", [x], 2, storage_order=1, **attrs)
        got_y, got_i = run("MaxPool", [x], storage_order=1, **attrs)
        np.testing.assert_array_equal(got_i, want_i)


@pytest.mark.parametrize("shape,attrs", GEOMS)
@pytest.mark.parametrize("cip", [0, 1])
def test_averagepool_vs_onnxruntime(shape, attrs, cip):
    x = RNG.standard_normal(shape).astype(np.float32)
    (want,) = _ort("AveragePool", [x], count_include_pad=cip, **attrs)
    (got,) = run("AveragePool", [x], count_include_pad=cip, **attrs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,attrs", [g for g in GEOMS if g[1].get("ceil_mode", 0) == 0])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lppool_vs_onnxruntime(shape, attrs, p):
    x = RNG.standard_normal(shape).astype(np.float32)
    (want,) = _ort("LpPool", [x], p=p, **attrs)
    (got,) = run("LpPool", [x], p=p, **attrs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 2, 4, 3), (2, 1, 3, 2, 4)])
def test_global_vs_onnxruntime(op, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    attrs = {"p": 3} if op == "GlobalLpPool" else {}
    # onnxruntime registers GlobalLpPool only up to opset 2
    (want,) = _ort(op, [x], opset=2 if op == "GlobalLpPool" else 22, **attrs)
    (got,) = run(op, [x], **attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_maxunpool_roundtrip_vs_onnxruntime():
    x = RNG.standard_normal((2, 3, 6, 8)).astype(np.float32)
    y, i = _ort("MaxPool", [x], 2, kernel_shape=[2, 2], strides=[2, 2])
    (want,) = _ort("MaxUnpool", [y, i], kernel_shape=[2, 2], strides=[2, 2])
    (got,) = run("MaxUnpool", [y, i], kernel_shape=[2, 2], strides=[2, 2])
    np.testing.assert_array_equal(got, want)


def test_maxunpool_output_shape_follows_the_specification():
    # onnxruntime reads I as positions in output_shape; the spec's reference and conformance case
    # read them in the inferred shape and pad at the end -- the spec wins.
    x = np.array([[[[5, 6], [7, 8]]]], dtype=np.float32)
    i = np.array([[[[5, 7], [13, 15]]]], dtype=np.int64)
    (got,) = run("MaxUnpool", [x, i, np.array([1, 1, 5, 5])], kernel_shape=[2, 2], strides=[2, 2])
    want = np.zeros((1, 1, 5, 5), np.float32)
    want[0, 0, 1, 1], want[0, 0, 1, 3], want[0, 0, 3, 1], want[0, 0, 3, 3] = 5, 6, 7, 8
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="inferred"):
        run("MaxUnpool", [x, i + 10], kernel_shape=[2, 2], strides=[2, 2])


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_maxroipool_vs_onnxruntime(scale):
    x = RNG.standard_normal((2, 3, 12, 10)).astype(np.float32)
    rois = np.array([[0, 1, 1, 8, 9], [1, 0, 2, 5, 11], [0, 3.4, 2.6, 9.5, 7.2], [1, 6, 6, 6, 6]], np.float32)
    # onnxruntime registers MaxRoiPool only at opset 1
    (want,) = _ort("MaxRoiPool", [x, rois], opset=1, pooled_shape=[3, 2], spatial_scale=scale)
    (got,) = run("MaxRoiPool", [x, rois], pooled_shape=[3, 2], spatial_scale=scale)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("ctm", [b"half_pixel", b"output_half_pixel"])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roialign_avg_vs_onnxruntime(ctm, ratio):
    # onnxruntime implements RoiAlign up to opset 16 (the opset 22 cases are checked above)
    x = RNG.standard_normal((2, 3, 10, 9)).astype(np.float32)
    rois = np.array([[0, 0, 7, 8], [1.5, 2.2, 6.1, 5.3], [-1, -1, 3, 4], [2, 3, 2.5, 3.5]], np.float32)
    bi = np.array([0, 1, 1, 0], np.int64)
    attrs = dict(coordinate_transformation_mode=ctm, output_height=3, output_width=4, sampling_ratio=ratio,
                 spatial_scale=0.75)
    (want,) = _ort("RoiAlign", [x, rois, bi], opset=16, **attrs)
    (got,) = run("RoiAlign", [x, rois, bi], **attrs)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_errors():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="unsupported operator"):
        run("Conv", [x])
    with pytest.raises(ValueError, match="no attribute"):
        run("MaxPool", [x], kernel_shape=[2, 2], count_include_pad=1)
    with pytest.raises(ValueError, match="kernel_shape is required"):
        run("AveragePool", [x])
    with pytest.raises(ValueError, match="kernel_shape must have 2 values"):
        run("MaxPool", [x], kernel_shape=[2])
    with pytest.raises(ValueError, match="auto_pad"):
        run("MaxPool", [x], kernel_shape=[2, 2], auto_pad="SAME")
    with pytest.raises(ValueError, match="storage_order"):
        run("MaxPool", [x], kernel_shape=[2, 2], storage_order=2)


# ---------------------------------------------------------------------------------------------
# poolkit.roi_align and poolkit.roi_pool against onnxruntime
# ---------------------------------------------------------------------------------------------


def ort_roi_align(x, rois, batch, pooled, scale, sampling_ratio, mode, aligned):
    (y,) = _ort("RoiAlign", [x, rois.astype(x.dtype), batch.astype(np.int64)], opset=16, mode=mode,
                coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
                output_height=pooled[0], output_width=pooled[1], sampling_ratio=sampling_ratio, spatial_scale=scale)
    return y


def ort_max_roi_pool(x, rois, pooled, scale):
    (y,) = _ort("MaxRoiPool", [x, rois.astype(np.float32)], opset=16, pooled_shape=list(pooled), spatial_scale=scale)
    return y


# the shared ROI sets (support/data.py), one more roi each
ROIS4_ORT = np.vstack([ROIS4, [[7.9, 0.1, 8.6, 6.9]]])
BATCH4_ORT = np.append(BATCH4, 1)
ROIS5_ORT = np.vstack([ROIS5, [[0, 0.5, 1.5, 6.5, 4.5]]])  # .5 rounds away from zero


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio,pooled,scale", [(0, (3, 4), 0.5), (2, (2, 2), 1.0), (1, (5, 3), 0.25),
                                                         (3, (1, 1), 1.0), (0, (7, 7), 1.0)])
def test_roi_align_matches_onnxruntime(dtype, mode, aligned, sampling_ratio, pooled, scale, rng):
    x = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    expected = ort_roi_align(x, ROIS4_ORT, BATCH4_ORT, pooled, scale, sampling_ratio, mode, aligned)
    got = roi_align(x, ROIS4_ORT.astype(dtype), BATCH4_ORT, pooled, scale, sampling_ratio, mode, aligned)
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


@pytest.mark.parametrize("pooled,scale", [((2, 2), 1.0), ((3, 2), 0.5), ((4, 5), 1.0), ((1, 1), 0.25), ((6, 6), 1.0),
                                          ((3, 3), 0.3)])
def test_roi_pool_matches_onnxruntime(pooled, scale, rng):
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    expected = ort_max_roi_pool(x, ROIS5_ORT, pooled, scale)
    got = roi_pool(x, ROIS5_ORT.astype(np.float32), pooled, scale)
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
