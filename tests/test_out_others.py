"""The ``out=`` argument of the other forwards: ``min_pool``, ``lp_pool``, ``global_max_pool``,
``global_avg_pool``, ``global_lp_pool``, ``adaptive_max_pool`` and ``adaptive_avg_pool`` (the
four ops of ``test_out.py`` are tested there, with the helpers used here).

Every expected value is the same call without ``out`` (itself checked against the oracles in
``test_min_mode.py``, ``test_pooling.py`` and ``test_fixed.py``), bit for bit; hand cases and the
oracles pin the values too.  Also: layouts and dtypes, strided, byte-swapped and subclassed ``out``,
``out`` overlapping the input, and every error, which names ``out`` and leaves it unwritten.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_min_mode import ref_min_pool
from test_out import (
    _bad_outs,
    _Tagged,
    assert_bit_identical,
    check_out_call,
    check_out_dtype,
    dirty,
    input_of,
    left_unchanged,
)

import poolkit
from poolkit import adaptive

from support import oracle as R
from support import oracle_fixed as RF
from support.data import X44

DTYPES = (np.float32, np.float64, np.float16, np.int32, np.uint8)

# the adaptive cases, max and average alike
ADAPTIVE = [
    ("14_to_7", (2, 3, 14, 14), (7,), {}),
    ("uneven_keep_w", (2, 3, 13, 17), ((5, None),), {}),
    ("nhwc", (2, 13, 11, 4), ((4, 3),), {"axes": (1, 2)}),
    ("1d", (3, 4, 17), (5,), {}),
    ("large", (4, 16, 64, 64), (7,), {}),
]

# op -> [(id, input shape, positional arguments after x, keyword arguments)]
CASES = {
    "min_pool": [
        ("2x2", (1, 1, 6, 6), ((2, 2),), {}),
        ("3x3_s2_p1_ceil", (2, 3, 7, 9), ((3, 3), 2, 1), {"ceil_mode": True}),
        ("nhwc", (2, 9, 8, 5), ((3, 3), 2, 1), {"axes": (1, 2)}),
        ("1d_dilated", (3, 4, 17), ((3,), 2, 1), {"dilation": 2}),
        ("axes_apart", (4, 5, 6, 7), ((2, 3),), {"axes": (0, 2)}),
        ("empty_batch", (0, 3, 6, 6), ((2, 2),), {}),
        ("large", (2, 8, 64, 64), ((3, 3), 2, 1), {}),
    ],
    "lp_pool": [
        ("p2_2x2", (1, 1, 6, 6), (2, (2, 2)), {}),
        ("p3_3x3_s2_p1", (2, 3, 7, 9), (3, (3, 3), 2, 1), {}),
        ("p1_nhwc", (2, 9, 8, 5), (1, (2, 2)), {"axes": (1, 2)}),
        ("p2_large", (2, 8, 64, 64), (2, (2, 2)), {}),
    ],
    "global_max_pool": [
        ("nchw", (2, 3, 7, 9), (), {}),
        ("nhwc_keepdims", (2, 7, 9, 3), (), {"axes": (1, 2), "keepdims": True}),
        ("3d", (2, 3, 4, 5, 6), (), {}),
        ("large", (4, 16, 32, 32), (), {}),
    ],
    "global_avg_pool": [
        ("nchw", (2, 3, 7, 9), (), {}),
        ("nhwc_keepdims", (2, 7, 9, 3), (), {"axes": (1, 2), "keepdims": True}),
        ("axis_0", (5, 2, 3), (), {"axes": 0}),
        ("large", (4, 16, 32, 32), (), {}),
    ],
    "global_lp_pool": [
        ("p2_nchw", (2, 3, 7, 9), (2,), {}),
        ("p3_keepdims", (2, 3, 5, 4), (3,), {"keepdims": True}),
    ],
    "adaptive_max_pool": ADAPTIVE,
    "adaptive_avg_pool": ADAPTIVE,
}
OPS = tuple(CASES)
ALL = [(op, *case) for op in OPS for case in CASES[op]]
ALL_IDS = [f"{op}-{case[0]}" for op in OPS for case in CASES[op]]
WITH_INDICES = ("min_pool", "adaptive_max_pool")


def result_dtype(op: str, x_dtype) -> np.dtype:
    """The documented result dtype: min and max keep x's, the others x's float dtype or float64."""
    dt = np.dtype(x_dtype).newbyteorder("=")
    return dt if "max" in op or "min" in op or dt.kind == "f" else np.dtype(np.float64)


def make_call(op: str, x: np.ndarray, args: tuple, kw: dict):
    func = getattr(poolkit, op)
    return lambda **extra: func(x, *args, **kw, **extra)


# ---------------------------------------------------------------------------------------------
# hand cases and the oracles
# ---------------------------------------------------------------------------------------------


def test_hand_cases_into_buffers():
    buf = np.full((2, 2), 255, np.uint8)
    assert poolkit.min_pool(X44.astype(np.uint8), (2, 2), out=buf) is buf
    np.testing.assert_array_equal(buf, [[1, 1], [1, 1]])  # X44's 2x2 minima, by hand
    x = np.array([[[[3.0, -4], [0, 0]], [[1, 2], [3, 4]]]])  # (1, 2, 2, 2)
    g = np.full((1, 2), np.nan)
    assert poolkit.global_avg_pool(x, out=g) is g
    np.testing.assert_array_equal(g, [[-0.25, 2.5]])
    assert poolkit.global_max_pool(x, out=g) is g
    np.testing.assert_array_equal(g, [[3, 4]])
    assert poolkit.global_lp_pool(x, 2, out=g) is g
    np.testing.assert_allclose(g, [[5, np.sqrt(30)]], rtol=1e-15)
    lp = np.full((1, 1), np.nan)
    assert poolkit.lp_pool(np.array([[3.0, -4]]), 2, (1, 2), out=lp) is lp
    np.testing.assert_array_equal(lp, [[5]])
    a = np.full((1, 1, 2), np.nan)
    assert poolkit.adaptive_avg_pool(np.array([[[1.0, 5, 2, 0, 3]]]), 2, out=a) is a
    np.testing.assert_allclose(a, [[[8 / 3, 5 / 3]]], rtol=1e-15)  # bins [0, 3) and [2, 5)
    m = np.full((1, 1, 3), -1)
    values, idx = poolkit.adaptive_max_pool(np.array([[[1, 5, 2, 0, 3]]]), 3, return_indices=True, out=m)
    assert values is m
    np.testing.assert_array_equal(m, [[[5, 5, 3]]])
    np.testing.assert_array_equal(idx, [[[1, 1, 4]]])


def test_match_the_oracles():
    rng = np.random.default_rng(40)
    x = rng.standard_normal((2, 3, 9, 11))
    pads = poolkit.resolve_padding(x.shape, (3, 3), 2, 1)
    geometry = ((3, 3), (2, 2), pads, (1, 1), False, (2, 3))
    y = dirty((2, 3, 5, 6), np.float64)
    np.testing.assert_array_equal(poolkit.min_pool(x, (3, 3), 2, 1, out=y), ref_min_pool(x, *geometry)[0])
    np.testing.assert_allclose(poolkit.lp_pool(x, 3, (3, 3), 2, 1, out=y), R.ref_lp_pool(x, 3, *geometry),
                               rtol=1e-13)
    a = dirty((2, 3, 4, 5), np.float64)
    np.testing.assert_array_equal(poolkit.adaptive_max_pool(x, (4, 5), out=a),
                                  RF.ref_adaptive_max(x, (4, 5), (2, 3))[0])
    np.testing.assert_allclose(poolkit.adaptive_avg_pool(x, (4, 5), out=a), RF.ref_adaptive_avg(x, (4, 5), (2, 3)),
                               rtol=1e-13)
    g = dirty((2, 3), np.float64)
    np.testing.assert_array_equal(poolkit.global_max_pool(x, out=g), x.max(axis=(2, 3)))
    np.testing.assert_allclose(poolkit.global_avg_pool(x, out=g), x.mean(axis=(2, 3)), rtol=1e-13)
    np.testing.assert_allclose(poolkit.global_lp_pool(x, 2, out=g), np.sqrt((x * x).sum(axis=(2, 3))), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# out= gives the call's result, bit for bit
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op, name, shape, args, kw", ALL, ids=ALL_IDS)
def test_same_as_without_out(op, name, shape, args, kw, dtype):
    x = input_of(dtype, shape)
    call = make_call(op, x, args, kw)
    plain = call()
    assert plain.dtype == result_dtype(op, dtype)
    check_out_call(call, (x,), plain)
    if op in WITH_INDICES:
        call = make_call(op, x, args, {**kw, "return_indices": True})
        check_out_call(call, (x,), call())


@pytest.mark.parametrize("op", OPS)
def test_odd_inputs(op):
    """Non-contiguous, byte-swapped and bool inputs: the result is still the call's."""
    name, shape, args, kw = CASES[op][0]
    x = input_of(np.float64, shape, seed=41)
    big = input_of(np.float64, tuple(2 * n for n in shape), seed=41)
    inputs = [big[(slice(None, None, 2),) * len(shape)], x.astype(">f4"), x > 0, (np.nan_to_num(x) * 100).astype(">i2")]
    for x in inputs:
        call = make_call(op, x, args, kw)
        check_out_call(call, (x,), call())


@pytest.mark.parametrize("op", OPS)
def test_strided_swapped_and_subclassed_out(op):
    name, shape, args, kw = CASES[op][1]
    x = input_of(np.float32, shape, seed=42)
    call = make_call(op, x, args, kw)
    want = call()
    big = np.full(tuple(2 * n + 1 for n in want.shape), -7.0, np.float32)
    view = big[(slice(1, None, 2),) * want.ndim]
    assert call(out=view) is view
    assert_bit_identical(view, want)
    rest = np.ones(big.shape, bool)
    rest[(slice(1, None, 2),) * want.ndim] = False
    assert (big[rest] == -7.0).all()
    swapped = dirty(want.shape, np.dtype(np.float32).newbyteorder(">"))
    tagged = dirty(want.shape, np.float32).view(_Tagged)
    for out in (np.empty(want.shape[::-1], np.float32).T, np.empty(want.shape, np.float32)[::-1], swapped, tagged):
        assert call(out=out) is out
        assert_bit_identical(np.asarray(out), want)


# ---------------------------------------------------------------------------------------------
# out overlapping the input: computed apart, then copied in
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", (np.float32, np.int32, np.uint8), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", ((1, 1, 6, 6), (2, 8, 64, 64)), ids=("small", "large"))
def test_min_pool_out_is_x(shape, dtype):
    x0 = input_of(dtype, shape, seed=43)
    for args in (((1, 1),), ((3, 3), 1, 1)):  # every window reads cells other windows overwrite
        x = x0.copy()
        want = poolkit.min_pool(x0, *args)
        assert poolkit.min_pool(x, *args, out=x) is x
        assert_bit_identical(x, want)


@pytest.mark.parametrize("op, args, kw, corner", [
    ("global_max_pool", (), {"keepdims": True}, (slice(None), slice(None), slice(0, 1), slice(0, 1))),
    ("global_avg_pool", (), {"keepdims": True}, (slice(None), slice(None), slice(2, 3), slice(4, 5))),
    ("global_lp_pool", (2,), {"keepdims": True}, (slice(None), slice(None), slice(0, 1), slice(0, 1))),
    ("adaptive_max_pool", (4,), {}, (slice(None), slice(None), slice(0, 4), slice(1, 5))),
    ("adaptive_avg_pool", (4,), {}, (slice(None), slice(None), slice(3, 7), slice(0, 4))),
    ("lp_pool", (2, (2, 2)), {}, (slice(None), slice(None), slice(0, 4), slice(0, 4))),
])
def test_out_is_a_part_of_x(op, args, kw, corner):
    """out is a view of x's own buffer: read before it is written."""
    x0 = np.random.default_rng(44).standard_normal((2, 3, 8, 8))
    want = getattr(poolkit, op)(x0, *args, **kw)
    x = x0.copy()
    out = x[corner]
    assert out.shape == want.shape
    assert getattr(poolkit, op)(x, *args, **kw, out=out) is out
    assert_bit_identical(out, want)


def test_global_pooling_writes_straight_into_out(monkeypatch):
    """global and adaptive pooling hand ``out`` (viewed with the pooled axes kept as 1) to the
    engine, which writes it: no copy; an ``out`` overlapping x is copied in."""
    delivered = []

    def deliver(result, direct, out):
        delivered.append(result is direct and np.shares_memory(result, out))
        return real(result, direct, out)

    real = adaptive._deliver
    monkeypatch.setattr(adaptive, "_deliver", deliver)
    x = input_of(np.float32, (4, 16, 32, 32), seed=45)
    for op, args in (("global_max_pool", ()), ("global_avg_pool", ()), ("adaptive_max_pool", (7,)),
                     ("adaptive_avg_pool", (7,))):
        want = getattr(poolkit, op)(x, *args)
        out = dirty(want.shape, np.float32)
        assert getattr(poolkit, op)(x, *args, out=out) is out
        assert_bit_identical(out, want)
    assert delivered == [True] * 4
    x = x.copy()
    poolkit.global_avg_pool(x, keepdims=True, out=x[:, :, :1, :1])
    assert delivered[-1] is False


# ---------------------------------------------------------------------------------------------
# errors: each names out, and leaves out (and the input) as it was
# ---------------------------------------------------------------------------------------------


# a (2, 3, 8, 8) float32 input: each call gives a (2, 3, 4, 4) float32 result
ERROR_CALLS = {
    "min_pool": ((2, 2),),
    "lp_pool": (2, (2, 2)),
    "adaptive_max_pool": (4,),
    "adaptive_avg_pool": (4,),
}


@pytest.mark.parametrize("op", ERROR_CALLS)
def test_bad_out(op):
    x = input_of(np.float32, (2, 3, 8, 8), seed=46)
    call = make_call(op, x, ERROR_CALLS[op], {})
    for out, exc, match in _bad_outs(call().shape):
        before = np.array(out, copy=True)
        with left_unchanged((x,)), pytest.raises(exc, match=match):
            call(out=out)
        np.testing.assert_array_equal(np.asarray(out), before)


@pytest.mark.parametrize("op, args", [("global_max_pool", ()), ("global_avg_pool", ()), ("global_lp_pool", (2,))])
def test_bad_out_global(op, args):
    x = input_of(np.float32, (2, 3, 8, 8), seed=47)
    call = make_call(op, x, args, {})
    cases = [
        ([[0.0]], TypeError, "out must be a numpy.ndarray, got list"),
        (np.zeros((2, 3, 1, 1), np.float32), ValueError,
         r"out must have the result's shape \(2, 3\), got shape \(2, 3, 1, 1\)"),  # keepdims is False
        (np.zeros((3, 2), np.float32), ValueError, r"out must have the result's shape \(2, 3\), got shape \(3, 2\)"),
        (np.zeros((2, 3), np.float64), TypeError, r"out must have the result's dtype float32 \(no casting\)"),
    ]
    frozen = np.zeros((2, 3), np.float32)
    frozen.flags.writeable = False
    cases.append((frozen, ValueError, "out must be writeable"))
    for out, exc, match in cases:
        before = np.array(out, copy=True)
        with left_unchanged((x,)), pytest.raises(exc, match=match):
            call(out=out)
        np.testing.assert_array_equal(np.asarray(out), before)
    kept = np.zeros((2, 3, 1, 1), np.float32)
    assert getattr(poolkit, op)(x, *args, keepdims=True, out=kept) is kept


@pytest.mark.parametrize("op, x_dtype, want", [
    ("min_pool", np.int16, "int16"),
    ("lp_pool", np.uint8, "float64"),
    ("global_max_pool", np.bool_, "bool"),
    ("global_avg_pool", np.int32, "float64"),
    ("global_lp_pool", np.float16, "float16"),
    ("adaptive_max_pool", np.uint8, "uint8"),
    ("adaptive_avg_pool", np.float16, "float16"),
])
def test_out_dtype_must_be_the_results(op, x_dtype, want):
    x = input_of(x_dtype, (1, 2, 6, 6), seed=48)
    args = {"min_pool": ((2, 2),), "lp_pool": (2, (2, 2)), "global_lp_pool": (2,)}.get(op, (3,) if "adaptive" in op
                                                                                      else ())
    check_out_dtype(make_call(op, x, args, {}), want, np.float32 if want != "float32" else np.float64)


def test_arguments_are_checked_before_out():
    x = np.zeros((2, 3, 8, 8))
    with pytest.raises(ValueError, match="kernel_size"):
        poolkit.min_pool(x, (9, 9), out=[1])
    with pytest.raises(ValueError, match="p must"):
        poolkit.lp_pool(x, -1, (2, 2), out=[1])
    with pytest.raises(TypeError, match="keepdims"):
        poolkit.global_avg_pool(x, keepdims=2, out=[1])
    with pytest.raises(ValueError, match="output_size"):
        poolkit.adaptive_avg_pool(x, 0, out=[1])


@pytest.mark.parametrize("op", OPS)
def test_dask_input_with_out(op):
    da = pytest.importorskip("dask.array")
    name, shape, args, kw = CASES[op][0]
    x = da.from_array(np.arange(float(np.prod(shape))).reshape(shape), chunks=3)
    want = make_call(op, x, args, kw)()
    out = np.full(want.shape, -1.0)
    with pytest.raises(TypeError, match=r"out must be None for a Dask array input \(its result is lazy\), "
                                        r"got ndarray"):
        make_call(op, x, args, kw)(out=out)
    assert (out == -1).all()
