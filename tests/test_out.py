"""The ``out=`` argument of ``max_pool``, ``avg_pool``, ``max_pool_backward`` and
``avg_pool_backward`` (NumPy's ``out=``): the result lands in ``out``, which is returned.

Every expected value is the same call without ``out`` (itself checked against the oracle in
``test_pooling.py``), bit for bit; a few hand cases and oracle comparisons pin the values too.  Also:
reused dirty buffers, every layout and path of the engine, ``out`` overlapping the inputs, strided
and byte-swapped ``out``, the engine writing straight into ``out`` on its fast paths, and every
error, which names ``out``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pooling import _api, geometries

import poolkit
from poolkit import _engine as E
from poolkit import _geometry as G

from support import oracle as R
from support.data import X44, values_of

OPS = ("max_pool", "avg_pool", "max_pool_backward", "avg_pool_backward")
DTYPES = (np.float32, np.float64, np.float16, np.int32, np.uint8)

# (id, input shape, positional pooling arguments, keyword arguments)
GEOMS = [
    ("small_2x2", (1, 1, 6, 6), ((2, 2),), {}),  # the prepared small call
    ("small_3x3_s2_p1", (1, 1, 6, 6), ((3, 3), 2, 1), {}),
    ("ceil_mode", (2, 3, 7, 9), ((3, 3), 2, 1), {"ceil_mode": True}),
    ("dilation", (2, 3, 9, 8), ((2, 3), 1, (1, 2)), {"dilation": 2}),
    ("same", (2, 3, 7, 6), ((3, 2), 2, "same"), {}),
    ("nhwc", (2, 9, 8, 5), ((2, 2),), {"axes": (1, 2)}),
    ("nhwc_3x3_s2_p1", (2, 9, 8, 5), ((3, 3), 2, 1), {"axes": (1, 2)}),
    ("1d", (3, 4, 17), ((3,), 2, 1), {}),
    ("3d", (2, 2, 6, 7, 8), ((2, 2, 2),), {}),
    ("3d_s2_p1_ceil", (1, 2, 7, 7, 7), ((3, 3, 3), 2, 1), {"ceil_mode": True}),
    ("axes_apart", (4, 5, 6, 7), ((2, 3),), {"axes": (0, 2)}),  # the separable path
    ("4_axes", (3, 4, 5, 6), ((2, 2, 2, 3),), {}),
    ("global", (2, 3, 7, 9), ((7, 9),), {}),
    ("global_nhwc", (2, 7, 9, 3), ((7, 9),), {"axes": (1, 2)}),
    ("empty_batch", (0, 3, 6, 6), ((2, 2),), {}),
    # >= 2**16 elements: the helper threads
    ("large_2x2", (2, 8, 64, 64), ((2, 2),), {}),
    ("large_3x3_s2_p1", (2, 8, 64, 64), ((3, 3), 2, 1), {}),
    ("large_nhwc", (4, 32, 32, 16), ((3, 3), 2, 1), {"axes": (1, 2)}),
    ("large_global", (4, 16, 32, 32), ((32, 32),), {}),
    ("large_1d", (8, 16, 1024), ((4,), 3), {}),
]
GEOM_IDS = [g[0] for g in GEOMS]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def result_dtype(op: str, x_dtype) -> np.dtype:
    """The documented result dtype: max keeps x's, everything else is x's float dtype or float64."""
    dt = np.dtype(x_dtype).newbyteorder("=")
    return dt if op == "max_pool" or dt.kind == "f" else np.dtype(np.float64)


def make_call(op: str, x: np.ndarray, args: tuple, kw: dict, rng) -> tuple[Callable, tuple]:
    """(call, read): ``call(**extra)`` runs ``op`` on ``x`` (with a gradient drawn from ``rng`` for
    the backwards), ``read`` are the arrays it reads (to check that they are left unchanged)."""
    func = getattr(poolkit, op)
    if op in ("max_pool", "avg_pool"):
        return (lambda **extra: func(x, *args, **kw, **extra)), (x,)
    geometry = {k: v for k, v in kw.items() if k in ("dilation", "ceil_mode", "axes")}
    g = rng.standard_normal(poolkit.output_shape(x.shape, *args, **geometry)).astype(result_dtype(op, x.dtype))
    g.flags.writeable = False
    return (lambda **extra: func(g, x, *args, **kw, **extra)), (x, g)


def _plan(shape, kernel_size, stride=None, padding=0, **kw) -> G.Plan:
    """The engine's plan for a pooling call's arguments."""
    return G.make_plan(shape, kernel_size, stride, padding, kw.get("dilation", 1), kw.get("ceil_mode", False),
                       kw.get("axes"))


def dirty(shape, dtype, fill: int = 0) -> np.ndarray:
    """A buffer holding garbage: NaN, inf and huge values for floats, arbitrary bits otherwise."""
    buf = np.empty(shape, dtype)
    raw = buf.reshape(-1).view(np.uint8)
    raw[:] = np.random.default_rng(fill).integers(0, 256, raw.size, dtype=np.uint8)
    if buf.dtype.kind == "f" and buf.size:
        buf.reshape(-1)[::3] = np.nan
    return buf


def assert_bit_identical(got: np.ndarray, want: np.ndarray) -> None:
    """Same shape, same dtype up to byte order, same values (NaN where NaN) and the same bits."""
    native = want.dtype.newbyteorder("=")
    assert got.shape == want.shape and got.dtype.newbyteorder("=") == native
    assert np.array_equal(got, want, equal_nan=native.kind == "f")
    assert np.ascontiguousarray(got, native).tobytes() == np.ascontiguousarray(want, native).tobytes()


@contextlib.contextmanager
def left_unchanged(arrays: tuple) -> Iterator[None]:
    """The ``arrays`` (a call's inputs) are bit for bit the same after the block."""
    keep = [a.copy() for a in arrays]
    yield
    for a, k in zip(arrays, keep):
        assert_bit_identical(a, k)


def input_of(dtype, shape, seed: int = 0) -> np.ndarray:
    """A read-only input over the dtype's range (floats: halves, so with ties, and some NaN)."""
    x = values_of(dtype, shape, np.random.default_rng(seed))
    if x.dtype.kind == "f":
        x = np.round(x * 2) / 2
        x.reshape(-1)[::11] = np.nan
    x.flags.writeable = False
    return x


def check_out_call(call: Callable, read: tuple, plain, fill: int = 0):
    """``call(out=buf)`` into a dirty buffer, twice: the result is ``buf`` itself, bit-identical to
    ``plain`` (the call without out), and the inputs are unchanged."""
    want = plain[0] if isinstance(plain, tuple) else plain
    buf = dirty(want.shape, want.dtype, fill)
    for attempt in range(2):
        with left_unchanged(read):
            got = call(out=buf)
        if isinstance(plain, tuple):
            assert isinstance(got, tuple) and len(got) == 2 and got[0] is buf
            assert_bit_identical(got[1], plain[1])
        else:
            assert got is buf
        assert_bit_identical(buf, want)
        buf[...] = dirty(want.shape, want.dtype, fill + attempt + 1)  # dirty again, differently


# ---------------------------------------------------------------------------------------------
# the hand example, and the oracle
# ---------------------------------------------------------------------------------------------


def test_issue_example_into_buffers():
    buf = np.full((2, 2), -1)
    assert poolkit.max_pool(X44, (2, 2), 2, out=buf) is buf
    np.testing.assert_array_equal(buf, [[9, 2], [6, 3]])
    avg = np.full((2, 2), np.nan)
    assert poolkit.avg_pool(X44, (2, 2), 2, out=avg) is avg
    np.testing.assert_array_equal(avg, [[3.75, 1.25], [4.0, 2.0]])
    grad = np.full((4, 4), np.nan)
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert poolkit.max_pool_backward(g, X44.astype(np.float64), (2, 2), 2, out=grad) is grad
    np.testing.assert_array_equal(grad, [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 4], [0, 3, 0, 0]])
    assert poolkit.avg_pool_backward(g, X44, (2, 2), 2, out=grad) is grad
    np.testing.assert_array_equal(grad, np.kron(g / 4, np.ones((2, 2))))


@pytest.mark.parametrize("name, shape, args, kw", [g for g in GEOMS if not g[0].startswith("large")],
                         ids=[i for i in GEOM_IDS if not i.startswith("large")])
def test_matches_the_oracle(name, shape, args, kw):
    k = args[0]
    n = len(k)
    s = args[1] if len(args) > 1 else k
    oracle = (k, (s,) * n if isinstance(s, int) else s, poolkit.resolve_padding(shape, *args, **kw),
              (kw.get("dilation", 1),) * n, kw.get("ceil_mode", False),
              kw.get("axes", tuple(range(len(shape) - n, len(shape)))))
    plan = _plan(shape, *args, **kw)
    x = np.random.default_rng(3).standard_normal(shape)
    y = dirty(plan.out_shape, np.float64)
    np.testing.assert_array_equal(poolkit.max_pool(x, *args, **kw, out=y), R.ref_max_pool(x, *oracle)[0])
    np.testing.assert_allclose(poolkit.avg_pool(x, *args, **kw, out=y), R.ref_avg_pool(x, *oracle),
                               rtol=1e-13, atol=1e-14)
    g = np.random.default_rng(4).standard_normal(plan.out_shape)
    gx = dirty(shape, np.float64)
    np.testing.assert_allclose(poolkit.max_pool_backward(g, x, *args, **kw, out=gx),
                               R.ref_max_pool_backward(g, x, *oracle), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(poolkit.avg_pool_backward(g, x, *args, **kw, out=gx),
                               R.ref_avg_pool_backward(g, x, *oracle), rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# out= gives the call's result, bit for bit, over every path, layout and dtype
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, shape, args, kw", GEOMS, ids=GEOM_IDS)
@pytest.mark.parametrize("op", OPS)
def test_same_as_without_out(op, name, shape, args, kw, dtype):
    x = input_of(dtype, shape)
    call, read = make_call(op, x, args, kw, np.random.default_rng(1))
    plain = call()
    assert plain.dtype == result_dtype(op, dtype)
    check_out_call(call, read, plain)


@pytest.mark.parametrize("dtype", (np.float64, np.float16, np.int32, np.bool_), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, shape, args, kw", GEOMS, ids=GEOM_IDS)
def test_max_pool_with_indices(name, shape, args, kw, dtype):
    x = input_of(dtype, shape, seed=5)
    call, read = make_call("max_pool", x, args, {**kw, "return_indices": True}, None)
    check_out_call(call, read, call())


@pytest.mark.parametrize("name, shape, args, kw", GEOMS, ids=GEOM_IDS)
@pytest.mark.parametrize("op", ("max_pool_backward", "avg_pool_backward"))
def test_backward_options(op, name, shape, args, kw):
    """The backwards with their other arguments: given indices, count_include_pad, divisor_override."""
    x = input_of(np.float32, shape, seed=6)
    if op == "max_pool_backward":
        extra = {"indices": poolkit.max_pool(x, *args, **kw, return_indices=True)[1]}
        extra["indices"].flags.writeable = False
    else:
        extra = {"count_include_pad": False, "divisor_override": None}
    call, read = make_call(op, x, args, {**kw, **extra}, np.random.default_rng(7))
    check_out_call(call, read, call())
    if op == "avg_pool_backward":
        call, read = make_call(op, x, args, {**kw, "divisor_override": 3}, np.random.default_rng(8))
        check_out_call(call, read, call())


@pytest.mark.parametrize("name, shape, args, kw", GEOMS, ids=GEOM_IDS)
@pytest.mark.parametrize("cip", (True, False))
def test_avg_pool_options(name, shape, args, kw, cip):
    x = input_of(np.float64, shape, seed=9)
    for dov in (None, 5):
        call, read = make_call("avg_pool", x, args, {**kw, "count_include_pad": cip, "divisor_override": dov}, None)
        check_out_call(call, read, call())


@pytest.mark.parametrize("op", OPS)
def test_odd_inputs(op):
    """Non-contiguous, byte-swapped and bool inputs: the result is still the call's."""
    base = input_of(np.float64, (2, 3, 12, 14), seed=10)
    inputs = [base[:, :, ::2, 1::2], base.astype(">f4"), base.transpose(0, 1, 3, 2), base > 0,
              (np.nan_to_num(base) * 100).astype(">i2")]
    for x in inputs:
        call, read = make_call(op, x, ((2, 2), 1, 1), {}, np.random.default_rng(11))
        check_out_call(call, read, call())


def test_repeated_small_calls_with_and_without_out():
    """The prepared small call (remembered for calls without out) and calls with out in turn: each
    gives its own right result, and a call with out is never remembered."""
    x = input_of(np.float32, (1, 1, 6, 6), seed=12)
    want_max, want_avg = poolkit.max_pool(x, (2, 2)), poolkit.avg_pool(x, (2, 2))
    bufs = dirty((1, 1, 3, 3), np.float32), dirty((1, 1, 3, 3), np.float32, 1)
    for _ in range(3):
        for buf in bufs:
            assert poolkit.max_pool(x, (2, 2)) is not buf
            assert poolkit.max_pool(x, (2, 2), out=buf) is buf
            assert_bit_identical(buf, want_max)
            assert poolkit.avg_pool(x, (2, 2), out=buf) is buf
            assert_bit_identical(buf, want_avg)
            fresh = poolkit.avg_pool(x, (2, 2))
            assert fresh is not buf and not np.shares_memory(fresh, buf)
            assert_bit_identical(fresh, want_avg)


# ---------------------------------------------------------------------------------------------
# where the engine writes: straight into out on its main paths
# ---------------------------------------------------------------------------------------------


# (id, shape, pooling arguments): the prepared small call, the fused kernels (serial and threaded),
# global pooling
DIRECT = [
    ("small", (1, 1, 6, 6), ((2, 2),)),
    ("small_5d", (1, 2, 4, 4, 4), ((2, 2, 2),)),
    ("fused", (2, 3, 12, 14), ((3, 3), 2, 1)),
    ("fused_large", (2, 8, 64, 64), ((3, 3), 2, 1)),
    ("global", (2, 3, 7, 9), ((7, 9), 1, 0)),
    ("global_large", (4, 16, 32, 32), ((32, 32), 1, 0)),
]


@pytest.mark.parametrize("dtype", (np.float32, np.float64, np.int32, np.uint8), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, shape, args", DIRECT, ids=[d[0] for d in DIRECT])
def test_engine_writes_straight_into_out(name, shape, args, dtype):
    x = np.ascontiguousarray(input_of(dtype, shape, seed=13))
    plan = _plan(shape, *args)
    out = dirty(plan.out_shape, dtype)
    assert E.max_reduce(x, plan, False, out)[0] is out
    assert_bit_identical(out, E.max_reduce(x, plan)[0])
    if plan.fused is not None and E._whole(plan) is None:  # the indices come from the fused kernel too
        got, idx = E.max_reduce(x, plan, True, out)
        assert got is out
        assert_bit_identical(idx, E.max_reduce(x, plan, True)[1])
    fdt = E.float_dtype(x.dtype)
    sums = dirty(plan.out_shape, fdt)
    assert E.pool_sums(x, plan, fdt, True, None, sums) is sums
    assert_bit_identical(sums, E.pool_sums(x, plan, fdt, True, None))
    g = np.random.default_rng(14).standard_normal(plan.out_shape).astype(fdt)
    grad = dirty(shape, fdt)
    assert E.spread(g, plan, fdt, True, None, grad) is grad
    assert_bit_identical(grad, E.spread(g, plan, fdt, True, None))
    assert E.max_backward(g, x, plan, None, grad) is grad
    assert_bit_identical(grad, E.max_backward(g, x, plan))


@pytest.mark.parametrize("name, shape, args", DIRECT, ids=[d[0] for d in DIRECT])
def test_public_functions_hand_out_to_the_engine(monkeypatch, name, shape, args):
    """On those paths the four functions copy nothing: the engine's result is ``out`` itself; and
    an ``out`` overlapping an input is not handed over (the result is copied in)."""
    from poolkit import pooling

    direct = []

    def deliver(result, target, out):
        direct.append(result is target is out)
        return real(result, target, out)

    real = pooling._deliver
    monkeypatch.setattr(pooling, "_deliver", deliver)
    x = input_of(np.float32, shape, seed=32)
    for op in OPS:
        call, _ = make_call(op, x, args, {}, np.random.default_rng(33))
        call(out=np.empty(call().shape, np.float32))
    poolkit.max_pool(x, *args, return_indices=True, out=np.empty(poolkit.output_shape(shape, *args), np.float32))
    assert direct == [True] * 5
    x = x.copy()
    poolkit.max_pool(x, (1,) * len(args[0]), out=x)
    assert direct[-1] is False


def test_engine_copies_where_it_cannot_write_directly():
    """Elsewhere (a float16 result, a strided or byte-swapped out, the separable path) the engine
    returns a new array, which the public function copies into out."""
    x = np.random.default_rng(15).standard_normal((2, 3, 12, 14))
    plan = _plan(x.shape, (3, 3), 2, 1)
    for out in (np.empty((2, 3, 6, 14))[..., ::2], np.empty(plan.out_shape, ">f8")):
        assert out.shape == plan.out_shape
        assert E.max_reduce(x, plan, False, out)[0] is not out
        assert E.pool_sums(x, plan, np.float64, True, None, out) is not out
    half = np.empty(plan.out_shape, np.float16)
    assert E.max_reduce(x.astype(np.float16), plan, False, half)[0] is not half
    apart = _plan(x.shape, (2, 3), axes=(0, 2))
    out = np.empty(apart.out_shape)
    assert E.max_reduce(x, apart, False, out)[0] is not out
    grad = np.empty(x.shape)
    assert E.max_backward(np.ones(apart.out_shape), x, apart, None, grad) is not grad


# ---------------------------------------------------------------------------------------------
# strided, byte-swapped and subclassed out
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape, args, kw", [g for g in GEOMS if g[0] in
                                                   ("small_2x2", "ceil_mode", "nhwc", "global", "large_2x2")],
                         ids=["small_2x2", "ceil_mode", "nhwc", "global", "large_2x2"])
@pytest.mark.parametrize("op", OPS)
def test_strided_out_is_a_view_of_a_bigger_array(op, name, shape, args, kw):
    x = input_of(np.float32, shape, seed=16)
    call, read = make_call(op, x, args, kw, np.random.default_rng(17))
    want = call()
    big = np.full(tuple(2 * n + 1 for n in want.shape), -7.0, np.float32)
    view = big[(slice(1, None, 2),) * want.ndim]
    assert view.shape == want.shape and not view.flags.c_contiguous
    assert call(out=view) is view
    assert_bit_identical(view, want)
    rest = np.ones(big.shape, bool)
    rest[(slice(1, None, 2),) * want.ndim] = False
    assert (big[rest] == -7.0).all()
    # reversed and transposed views too
    for out in (np.empty(want.shape[::-1], np.float32).T, np.empty(want.shape, np.float32)[::-1]):
        assert call(out=out) is out
        assert_bit_identical(out, want)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("order", (">", "<"))
def test_out_of_either_byte_order(op, order):
    """A byte-swapped out of the result's dtype is accepted and holds the right values (a copy)."""
    x = input_of(np.float64, (2, 3, 8, 8), seed=18)
    call, read = make_call(op, x, ((3, 3), 2, 1), {}, np.random.default_rng(19))
    want = call()
    out = dirty(want.shape, np.dtype(np.float64).newbyteorder(order))
    assert call(out=out) is out
    assert out.dtype.byteorder in (order, "=") and out.dtype == np.dtype(np.float64).newbyteorder(order)
    assert_bit_identical(out, want)


class _Tagged(np.ndarray):
    """An ndarray subclass, as a caller's own buffer type may be."""


@pytest.mark.parametrize("op", OPS)
def test_out_of_an_ndarray_subclass(op):
    x = input_of(np.float32, (1, 2, 6, 6), seed=20)
    call, _ = make_call(op, x, ((2, 2),), {}, np.random.default_rng(21))
    want = call()
    out = dirty(want.shape, np.float32).view(_Tagged)
    assert call(out=out) is out
    assert_bit_identical(np.asarray(out), want)


# ---------------------------------------------------------------------------------------------
# out overlapping the inputs: computed apart, then copied
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", (np.float32, np.float64, np.int32), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", ((1, 1, 6, 6), (2, 8, 64, 64)), ids=("small", "large"))
def test_out_is_x(shape, dtype):
    """``max_pool(x, (1, 1), out=x)``: x is its own result; and with stride 1 and padding, where every
    window reads cells another window's result would overwrite."""
    x0 = values_of(dtype, shape, np.random.default_rng(22))
    x = x0.copy()
    assert poolkit.max_pool(x, (1, 1), out=x) is x
    assert_bit_identical(x, x0)
    want = poolkit.max_pool(x0, (3, 3), 1, 1)
    assert poolkit.max_pool(x, (3, 3), 1, 1, out=x) is x
    assert_bit_identical(x, want)
    if dtype != np.int32:
        x = x0.copy()
        want = poolkit.avg_pool(x0, (3, 3), 1, 1)
        assert poolkit.avg_pool(x, (3, 3), 1, 1, out=x) is x
        assert_bit_identical(x, want)


@pytest.mark.parametrize("shift", (0, 1, 5))
def test_out_overlapping_a_view_of_x(shift):
    """out and x are overlapping windows of one buffer."""
    base = np.random.default_rng(23).standard_normal(200)
    x = base[:144].reshape(1, 1, 12, 12)
    want_max, want_avg = poolkit.max_pool(x.copy(), (2, 2)), poolkit.avg_pool(x.copy(), (2, 2), 1)
    out = base[shift:shift + 36].reshape(want_max.shape)
    assert poolkit.max_pool(x, (2, 2), out=out) is out
    assert_bit_identical(out, want_max)
    base = np.random.default_rng(23).standard_normal(200)
    x = base[:144].reshape(1, 1, 12, 12)
    out = base[shift:shift + 121].reshape(want_avg.shape)
    assert poolkit.avg_pool(x, (2, 2), 1, out=out) is out
    assert_bit_identical(out, want_avg)


@pytest.mark.parametrize("shape, args", [((1, 1, 6, 6), ((1, 1),)), ((2, 8, 64, 64), ((1, 1),)),
                                         ((2, 3, 8, 8), ((2, 2), 1, 0))], ids=("small", "large", "2x2_s1"))
def test_out_is_grad_output(shape, args):
    """The backwards writing over their own grad_output (same shape with 1x1 windows; with larger
    windows, grad_output is a view of out's buffer)."""
    rng = np.random.default_rng(24)
    x = rng.standard_normal(shape)
    y_shape = poolkit.output_shape(shape, *args)
    for op in ("max_pool_backward", "avg_pool_backward"):
        buf = rng.standard_normal(int(np.prod(shape)) + 8)
        g = buf[3:3 + int(np.prod(y_shape))].reshape(y_shape)
        want = getattr(poolkit, op)(g.copy(), x, *args)
        out = buf[:x.size].reshape(shape)
        assert getattr(poolkit, op)(g, x, *args, out=out) is out
        assert_bit_identical(out, want)


def test_out_shares_bytes_with_indices():
    """An out whose bytes are the forward's indices (a float64 view of the int64 array)."""
    rng = np.random.default_rng(25)
    x = rng.standard_normal((2, 3, 6, 6))
    _, idx = poolkit.max_pool(x, (1, 1), return_indices=True)
    g = rng.standard_normal(x.shape)
    want = poolkit.max_pool_backward(g, x, (1, 1), indices=idx.copy())
    out = idx.view(np.float64)
    assert poolkit.max_pool_backward(g, x, (1, 1), indices=idx, out=out) is out
    assert_bit_identical(out, want)


@pytest.mark.parametrize("op", ("max_pool_backward", "avg_pool_backward"))
def test_backward_out_is_x(op):
    """The backward writing over its forward input x (read first, or only for its shape)."""
    x0 = input_of(np.float64, (2, 3, 8, 8), seed=26)
    x = x0.copy()
    g = np.random.default_rng(27).standard_normal((2, 3, 4, 4))
    want = getattr(poolkit, op)(g, x0, (3, 3), 2, 1)
    assert getattr(poolkit, op)(g, x, (3, 3), 2, 1, out=x) is x
    assert_bit_identical(x, want)


# ---------------------------------------------------------------------------------------------
# errors: each names out, and leaves out (and the inputs) as they were
# ---------------------------------------------------------------------------------------------


def _read_only(shape, dtype):
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


# (out, exception, message): for a (2, 3, 8, 8) float32 input pooled (2, 2): forward (2, 3, 4, 4),
# backward (2, 3, 8, 8), both float32
def _bad_outs(shape):
    return [
        ([[0.0]], TypeError, "out must be a numpy.ndarray, got list"),
        (3.0, TypeError, "out must be a numpy.ndarray, got float"),
        (np.float32(0), TypeError, "out must be a numpy.ndarray, got float32"),
        (np.ma.zeros(shape, np.float32), TypeError, "out must be a numpy.ndarray, got a numpy.ma.MaskedArray"),
        (_read_only(shape, np.float32), ValueError, r"out must be writeable, got a read-only array of shape"),
        (np.zeros(shape[:-1], np.float32), ValueError,
         rf"out must have the result's shape \({', '.join(map(str, shape))}\), got shape \(2, 3, {shape[2]}\)"),
        (np.zeros(shape + (1,), np.float32), ValueError, r"out must have the result's shape .*, got shape"),
        (np.zeros(shape, np.float64), TypeError, r"out must have the result's dtype float32 \(no casting\), got "
                                                 r"dtype float64"),
        (np.zeros(shape, np.float16), TypeError, "got dtype float16"),
        (np.zeros(shape, np.int32), TypeError, "got dtype int32"),
        (np.zeros(shape, ">f8"), TypeError, r"got dtype >f8"),
        (np.zeros(shape, np.complex64), TypeError, "got dtype complex64"),
    ]


@pytest.mark.parametrize("op", OPS)
def test_bad_out(op):
    x = input_of(np.float32, (2, 3, 8, 8), seed=28)
    call, read = make_call(op, x, ((2, 2),), {}, np.random.default_rng(29))
    shape = call().shape
    for out, exc, match in _bad_outs(shape):
        before = np.array(out, copy=True)
        with left_unchanged(read), pytest.raises(exc, match=match):
            call(out=out)
        np.testing.assert_array_equal(np.asarray(out), before)  # not written


@pytest.mark.parametrize("op, x_dtype, out_dtype, want", [
    ("max_pool", np.int32, np.float64, "int32"),
    ("max_pool", np.uint8, np.int64, "uint8"),
    ("max_pool", np.bool_, np.uint8, "bool"),
    ("max_pool", np.float16, np.float32, "float16"),
    ("avg_pool", np.int32, np.int32, "float64"),
    ("avg_pool", np.uint8, np.float32, "float64"),
    ("avg_pool", np.float16, np.float32, "float16"),
    ("avg_pool", np.float32, np.float64, "float32"),
    ("max_pool_backward", np.int32, np.int32, "float64"),
    ("max_pool_backward", np.float16, np.float64, "float16"),
    ("avg_pool_backward", np.uint8, np.float32, "float64"),
    ("avg_pool_backward", np.float32, np.float64, "float32"),
])
def test_out_dtype_must_be_the_results(op, x_dtype, out_dtype, want):
    x = input_of(x_dtype, (1, 2, 6, 6), seed=30)
    call, _ = make_call(op, x, ((2, 2),), {}, np.random.default_rng(31))
    check_out_dtype(call, want, out_dtype)


def check_out_dtype(call: Callable, want: str, wrong) -> None:
    """``call(out=)`` refuses an out of dtype ``wrong``, naming the result's dtype ``want``, and
    takes one of dtype ``want``."""
    shape = call().shape
    with pytest.raises(TypeError, match=rf"out must have the result's dtype {want} \(no casting\), got dtype "
                                        rf"{np.dtype(wrong).name}"):
        call(out=np.zeros(shape, wrong))
    ok = np.zeros(shape, want)
    assert call(out=ok) is ok


def test_arguments_are_checked_before_out():
    x = np.zeros((2, 3, 8, 8))
    with pytest.raises(ValueError, match="kernel_size"):
        poolkit.max_pool(x, (9, 9), out=[1])
    with pytest.raises(ValueError, match="kernel_size"):
        poolkit.avg_pool(x, (9, 9), out=[1])
    with pytest.raises(TypeError, match="count_include_pad"):
        poolkit.avg_pool(x, (2, 2), count_include_pad=1, out=[1])
    with pytest.raises(ValueError, match="grad_output"):
        poolkit.max_pool_backward(np.zeros((2, 3, 3, 3)), x, (2, 2), out=[1])
    with pytest.raises(ValueError, match="indices must have shape"):
        poolkit.max_pool_backward(np.zeros((2, 3, 4, 4)), x, (2, 2), indices=np.zeros((1,), int), out=[1])
    with pytest.raises(TypeError, match="grad_output must have a real numeric"):
        poolkit.avg_pool_backward(np.zeros((2, 3, 4, 4), complex), x, (2, 2), out=[1])
    with pytest.raises(TypeError, match="x must have a real numeric"):
        poolkit.max_pool(x.astype(complex), (2, 2), out=np.zeros((2, 3, 4, 4)))


def test_indices_out_of_range_with_out():
    """Indices are range-checked by the scatter kernel: the error is the one without out."""
    x = np.zeros((1, 1, 4, 4))
    g = np.ones((1, 1, 2, 2))
    bad = np.full((1, 1, 2, 2), 16)
    with pytest.raises(ValueError, match="indices must lie in"):
        poolkit.max_pool_backward(g, x, (2, 2), indices=bad, out=np.empty((1, 1, 4, 4)))


@pytest.mark.parametrize("op", ("max_pool", "avg_pool"))
def test_dask_input_with_out(op):
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.arange(64.0).reshape(1, 1, 8, 8), chunks=4)
    out = np.full((1, 1, 4, 4), -1.0)
    with pytest.raises(TypeError, match=r"out must be None for a Dask array input \(its result is lazy\), "
                                        r"got ndarray"):
        getattr(poolkit, op)(x, (2, 2), out=out)
    assert (out == -1).all()
    with pytest.raises(ValueError, match="kernel_size"):  # the arguments first
        getattr(poolkit, op)(x, (9, 9), out=out)
    assert getattr(poolkit, op)(x, (2, 2), out=None).shape == (1, 1, 4, 4)  # out=None is no out


# ---------------------------------------------------------------------------------------------
# the whole parameter space
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, derandomize=True)
@given(geo=geometries(max_axes=3), op=st.sampled_from(OPS), dtype=st.sampled_from(DTYPES + (np.bool_,)),
       layout=st.sampled_from(["contiguous", "strided", "swapped"]), seed=st.integers(0, 2**32 - 1),
       batch=st.sampled_from([1, 1, 64]))
def test_out_matches_no_out_everywhere(geo, op, dtype, layout, seed, batch):
    args, kw = _api(geo)
    shape = geo["shape"]
    if batch > 1:  # large enough for the helper threads: a new leading batch axis
        shape = (batch * 1024 // max(int(np.prod(shape)), 1) + 1,) + shape
        if kw["axes"] is not None:
            kw["axes"] = tuple(a + 1 if a >= 0 else a for a in kw["axes"])
    x = input_of(dtype, shape, seed=seed % 1000)
    call, read = make_call(op, x, args, kw, np.random.default_rng(seed))
    want = call()
    if layout == "contiguous":
        out = dirty(want.shape, want.dtype)
    elif layout == "strided":
        out = dirty(tuple(2 * n for n in want.shape), want.dtype)[(slice(None, None, 2),) * want.ndim]
    else:
        out = dirty(want.shape, want.dtype.newbyteorder(">" if want.dtype.isnative else "<"))
    with left_unchanged(read):
        assert call(out=out) is out
    assert_bit_identical(out, want)
