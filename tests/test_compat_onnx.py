"""poolkit.compat.onnx against the ONNX backend conformance cases and onnxruntime.

Expected values come from the ONNX node test suite (``onnx.backend.test.loader``) or from
onnxruntime, never from poolkit.
"""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

from poolkit.compat.onnx import OPERATORS, run  # noqa: E402

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


# --------------------------------------------------------------------------------------------
# differential tests against onnxruntime, beyond the conformance cases
# --------------------------------------------------------------------------------------------

ort = pytest.importorskip("onnxruntime")


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
