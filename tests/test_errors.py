"""Bad input gets a ValueError or TypeError naming the argument -- never a crash, a hang, a huge
allocation or a write outside an array (numba kernels do not bounds-check)."""

from __future__ import annotations

import numpy as np
import pytest

import poolkit

X = np.arange(16.0).reshape(4, 4)


def _forward_ops():
    return {
        "max_pool": lambda x, *a, **k: poolkit.max_pool(x, *a, **k),
        "avg_pool": lambda x, *a, **k: poolkit.avg_pool(x, *a, **k),
        "lp_pool": lambda x, *a, **k: poolkit.lp_pool(x, 2, *a, **k),
        "output_shape": lambda x, *a, **k: poolkit.output_shape(np.shape(x), *a, **k),
        "resolve_padding": lambda x, *a, **k: poolkit.resolve_padding(np.shape(x), *a, **k),
    }


def _backward_ops():
    return {
        "max_pool_backward": lambda g, x, *a, **k: poolkit.max_pool_backward(g, x, *a, **k),
        "avg_pool_backward": lambda g, x, *a, **k: poolkit.avg_pool_backward(g, x, *a, **k),
        "lp_pool_backward": lambda g, x, *a, **k: poolkit.lp_pool_backward(g, x, 2, *a, **k),
    }


FORWARD = list(_forward_ops())
BACKWARD = list(_backward_ops())


def _fwd(name):
    return _forward_ops()[name]


def _bwd(name):
    op = _backward_ops()[name]
    # a correctly shaped grad_output for the (2, 2) default geometry, so that only the argument
    # under test is wrong (shape errors are tested separately)
    return lambda x, *a, **k: op(np.ones((2, 2)), x, *a, **k)


ALL = [(n, _fwd) for n in FORWARD] + [(n, _bwd) for n in BACKWARD]
ALL_IDS = FORWARD + BACKWARD


def _op(entry):
    name, getter = entry
    return getter(name)


# ---------------------------------------------------------------------------------------------
# kernel, stride, dilation, padding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("kernel", [(0, 2), (2, 0), (-1, 2), (2, -3)])
def test_kernel_below_one(entry, kernel):
    with pytest.raises(ValueError, match="kernel_size"):
        _op(entry)(X, kernel)


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("stride", [0, (1, 0), (-2, 2)])
def test_stride_below_one(entry, stride):
    with pytest.raises(ValueError, match="stride"):
        _op(entry)(X, (2, 2), stride)


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("dilation", [0, (1, 0), (-1, 1)])
def test_dilation_below_one(entry, dilation):
    with pytest.raises(ValueError, match="dilation"):
        _op(entry)(X, (2, 2), dilation=dilation)


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("padding", [-1, (0, -1), ((0, 0), (-1, 0)), ((0, -2), (0, 0)), [[0, 0], [0, -1]]])
def test_negative_padding(entry, padding):
    with pytest.raises(ValueError, match="padding"):
        _op(entry)(X, (2, 2), padding=padding)


def test_error_message_shows_the_value():
    with pytest.raises(ValueError, match=r"kernel_size.*\(0, 2\)"):
        poolkit.max_pool(X, (0, 2))
    with pytest.raises(ValueError, match=r"stride.*-2"):
        poolkit.avg_pool(X, (2, 2), (1, -2))
    with pytest.raises(ValueError, match=r"padding.*-1"):
        poolkit.max_pool(X, (2, 2), padding=-1)


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("padding", ["full", "causal", "", "same_upper ", "samelower"])
def test_unknown_padding_string(entry, padding):
    with pytest.raises(ValueError, match="padding"):
        _op(entry)(X, (2, 2), padding=padding)


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "lp_pool", "output_shape"])
@pytest.mark.parametrize(
    "kernel, padding, dilation",
    [
        ((5, 2), 0, 1),  # 5 > 4
        ((2, 7), 1, 1),  # 7 > 4 + 1 + 1
        ((3, 2), 0, (2, 1)),  # effective 5 > 4
        ((2, 2), ((0, 0), (0, 0)), (4, 1)),  # effective 5 > 4
    ],
)
def test_kernel_larger_than_padded_input(name, kernel, padding, dilation):
    with pytest.raises(ValueError, match="kernel_size"):
        _fwd(name)(X, kernel, 1, padding, dilation=dilation)


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "lp_pool", "output_shape"])
@pytest.mark.parametrize(
    "shape, kernel, stride, padding, dilation, ceil_mode",
    [
        ((1,), (2,), 1, 1, 2, False),  # taps at -1 and 1 only: the single cell is stepped over
        ((3,), (2,), 1, 2, 1, False),  # window 0 covers -2, -1
        ((3,), (2,), 1, ((0, 2),), 1, False),  # the last window covers 3, 4
        ((4,), (2,), 2, ((0, 3),), 1, False),  # window 2 covers 4, 5
        ((4, 4), (2, 3), 1, ((0, 0), (3, 0)), 1, False),  # window 0 on axis 1 covers -3..-1
        ((5,), (2,), 2, ((0, 4),), 1, False),  # window 3 covers 6, 7
    ],
)
def test_window_wholly_in_padding(name, shape, kernel, stride, padding, dilation, ceil_mode):
    x = np.ones(shape)
    with pytest.raises(ValueError, match="padding"):
        _fwd(name)(x, kernel, stride, padding, dilation=dilation, ceil_mode=ceil_mode)


@pytest.mark.parametrize("name", BACKWARD)
def test_window_wholly_in_padding_backward(name):
    x = np.ones((3,))
    with pytest.raises(ValueError, match="padding"):
        _backward_ops()[name](np.ones(4), x, (2,), 1, 2)


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
def test_zero_length_pooled_axis(entry):
    with pytest.raises(ValueError):
        _op(entry)(np.ones((0, 4)), (2, 2))


# ---------------------------------------------------------------------------------------------
# axes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("axes", [(0, 2), (2, 1), (-3, 0), (0, 100)])
def test_axes_out_of_range(entry, axes):
    with pytest.raises(ValueError, match="axes"):
        _op(entry)(X, (2, 2), axes=axes)


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("axes", [(1, 1), (0, -2), (-1, 1)])
def test_axes_repeated(entry, axes):
    with pytest.raises(ValueError, match="axes"):
        _op(entry)(X, (2, 2), axes=axes)


@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
def test_int_kernel_without_axes(entry):
    with pytest.raises(ValueError, match="axes"):
        _op(entry)(X, 2)


@pytest.mark.parametrize("name", FORWARD)
def test_kernel_and_axes_disagree_in_length(name):
    with pytest.raises(ValueError):
        _fwd(name)(np.ones((2, 4, 4)), (2, 2), axes=(0, 1, 2))
    with pytest.raises(ValueError):
        _fwd(name)(np.ones((2, 4, 4)), (2, 2), (1, 1, 1))
    with pytest.raises(ValueError):
        _fwd(name)(np.ones((2, 4, 4)), (2, 2), 1, (1, 1, 1))


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "lp_pool", "output_shape"])
def test_more_kernel_values_than_dimensions(name):
    with pytest.raises(ValueError):
        _fwd(name)(np.ones((4, 4)), (2, 2, 2))


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "lp_pool"])
@pytest.mark.parametrize("kernel", [(2.0, 2), (2, "2"), "22"])
def test_non_integer_kernel(name, kernel):
    with pytest.raises(TypeError, match="kernel_size"):
        _fwd(name)(X, kernel)


# ---------------------------------------------------------------------------------------------
# grad_output
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("gshape", [(2,), (2, 3), (3, 2), (1, 2, 2), (4, 4), (2, 2, 1), ()])
def test_wrong_grad_output_shape(name, gshape):
    op = _backward_ops()[name]
    with pytest.raises(ValueError, match="grad_output"):
        op(np.ones(gshape), X, (2, 2))


@pytest.mark.parametrize("name", BACKWARD)
def test_grad_output_of_the_right_size_but_wrong_layout(name):
    x = np.ones((2, 3, 4, 6))
    op = _backward_ops()[name]
    with pytest.raises(ValueError, match="grad_output"):
        op(np.ones((2, 3, 3, 2)), x, (2, 2))  # (2, 3, 2, 3) expected


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("g", [np.array([["a", "b"], ["c", "d"]]), np.ones((2, 2), dtype=object),
                               np.ones((2, 2), dtype=complex)])
def test_non_numeric_grad_output(name, g):
    op = _backward_ops()[name]
    with pytest.raises(TypeError, match="grad_output"):
        op(g, X, (2, 2))


# ---------------------------------------------------------------------------------------------
# indices (max_pool_backward and max_unpool)
# ---------------------------------------------------------------------------------------------


def test_max_pool_backward_indices_wrong_shape():
    g = np.ones((2, 2))
    for idx in (np.zeros((2,), np.int64), np.zeros((2, 3), np.int64), np.zeros((1, 2, 2), np.int64)):
        with pytest.raises(ValueError, match="indices"):
            poolkit.max_pool_backward(g, X, (2, 2), indices=idx)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.bool_, object, complex, "U1"])
def test_max_pool_backward_indices_wrong_dtype(dtype):
    g = np.ones((2, 2))
    idx = np.zeros((2, 2), dtype=dtype)
    with pytest.raises(TypeError, match="indices"):
        poolkit.max_pool_backward(g, X, (2, 2), indices=idx)


@pytest.mark.parametrize("bad", [-1, 16, 17, 10**6, -(2**62), 2**62])
def test_max_pool_backward_indices_out_of_range(bad):
    g = np.ones((2, 3, 2, 2))
    x = np.ones((2, 3, 4, 4))
    idx = np.zeros((2, 3, 2, 2), dtype=np.int64)
    idx[1, 2, 1, 0] = bad
    with pytest.raises(ValueError, match="indices"):
        poolkit.max_pool_backward(g, x, (2, 2), indices=idx)


def test_max_pool_backward_indices_out_of_range_small_dtypes():
    g = np.ones((2, 2))
    for idx in (np.full((2, 2), 200, np.uint8), np.full((2, 2), -3, np.int8), np.full((2, 2), 2**40, np.uint64)):
        with pytest.raises(ValueError, match="indices"):
            poolkit.max_pool_backward(g, X, (2, 2), indices=idx)


def test_max_unpool_indices_out_of_range():
    vals = np.ones((2, 2, 2))
    for bad in (-1, 16, 2**40):
        idx = np.zeros((2, 2, 2), np.int64)
        idx[1, 1, 1] = bad
        with pytest.raises(ValueError, match="indices"):
            poolkit.max_unpool(vals, idx, (4, 4))
    # in range for a 5x5 output, out of range for 4x4
    idx = np.full((2, 2, 2), 20, np.int64)
    assert poolkit.max_unpool(vals, idx, (5, 5)).sum() == 2  # one 1 per plane, overwritten
    with pytest.raises(ValueError, match="indices"):
        poolkit.max_unpool(vals, idx, (4, 4))


def test_max_unpool_indices_wrong_shape_and_dtype():
    vals = np.ones((2, 2))
    with pytest.raises(ValueError, match="indices"):
        poolkit.max_unpool(vals, np.zeros((2, 3), np.int64), (4, 4))
    with pytest.raises(ValueError, match="indices"):
        poolkit.max_unpool(vals, np.zeros((1, 2, 2), np.int64), (4, 4))
    for dtype in (np.float64, np.bool_, object):
        with pytest.raises(TypeError, match="indices"):
            poolkit.max_unpool(vals, np.zeros((2, 2), dtype), (4, 4))


def test_max_unpool_bad_output_size_and_axes():
    vals = np.ones((3, 2, 2))
    idx = np.zeros((3, 2, 2), np.int64)
    with pytest.raises(ValueError, match="output_size"):
        poolkit.max_unpool(vals, idx, (4, 0))
    with pytest.raises(ValueError, match="output_size"):
        poolkit.max_unpool(vals, idx, (4, -4))
    with pytest.raises(ValueError):
        poolkit.max_unpool(vals, idx, (4, 4, 4, 4))  # more pooled axes than dimensions
    with pytest.raises(ValueError, match="axes"):
        poolkit.max_unpool(vals, idx, (4, 4), axes=(1, 1))
    with pytest.raises(ValueError, match="axes"):
        poolkit.max_unpool(vals, idx, (4, 4), axes=(1, 3))
    with pytest.raises(ValueError, match="output_size|axes"):
        poolkit.max_unpool(vals, idx, (4, 4), axes=(1, 2, 0))


def test_max_unpool_absurd_output_size():
    vals = np.ones((2, 2))
    idx = np.zeros((2, 2), np.int64)
    with pytest.raises(ValueError):
        poolkit.max_unpool(vals, idx, (10**12, 10**12))


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------

BAD_ARRAYS = {
    "object": np.array([[1, 2], [3, 4]], dtype=object),
    "str": np.array([["a", "b"], ["c", "d"]]),
    "bytes": np.array([[b"a", b"b"], [b"c", b"d"]]),
    "complex": np.ones((2, 2), dtype=complex),
    "datetime": np.array([["2020-01-01"] * 2] * 2, dtype="datetime64[D]"),
    "structured": np.zeros((2, 2), dtype=[("a", "f8"), ("b", "i4")]),
}


@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "lp_pool"])
def test_non_numeric_input(kind, name):
    with pytest.raises(TypeError, match="dtype"):
        _fwd(name)(BAD_ARRAYS[kind], (2, 2))


@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
@pytest.mark.parametrize("name", BACKWARD)
def test_non_numeric_input_backward(kind, name):
    with pytest.raises(TypeError, match="dtype"):
        _backward_ops()[name](np.ones((1, 1)), BAD_ARRAYS[kind], (2, 2))


@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
def test_non_numeric_values_for_unpool(kind):
    with pytest.raises(TypeError, match="dtype"):
        poolkit.max_unpool(BAD_ARRAYS[kind], np.zeros((2, 2), np.int64), (4, 4))


def test_python_lists_are_accepted_but_not_strings():
    np.testing.assert_array_equal(poolkit.max_pool([[1, 2], [3, 4]], (2, 2)), [[4]])
    with pytest.raises(TypeError):
        poolkit.max_pool("abcd", (2,))


# ---------------------------------------------------------------------------------------------
# absurd sizes: fail at once with ValueError (no giant allocation, no hang)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORWARD)
def test_absurd_kernel(name):
    with pytest.raises(ValueError):
        _fwd(name)(X, (10**12, 2))
    with pytest.raises(ValueError):
        _fwd(name)(X, 10**12, axes=(0, 1))


GEOMETRY_OPS = ["max_pool", "avg_pool", "lp_pool", "output_shape"]


@pytest.mark.parametrize("name", GEOMETRY_OPS)
@pytest.mark.parametrize("stride", [None, 1, 2])
def test_absurd_padding(name, stride):
    with pytest.raises(ValueError):
        _fwd(name)(X, (2, 2), stride, 10**12)


@pytest.mark.parametrize("name", GEOMETRY_OPS)
@pytest.mark.parametrize("padding", [((10**12, 0), (0, 0)), ((0, 10**12), (0, 0)), ((0, 0), (10**12, 10**12))])
def test_absurd_one_sided_padding(name, padding):
    with pytest.raises(ValueError):
        _fwd(name)(X, (2, 2), None, padding)


@pytest.mark.parametrize("name", FORWARD)
def test_absurd_dilation(name):
    with pytest.raises(ValueError):
        _fwd(name)(X, (2, 2), dilation=10**12)


@pytest.mark.parametrize("name", BACKWARD)
def test_absurd_sizes_backward(name):
    op = _backward_ops()[name]
    with pytest.raises(ValueError):
        op(np.ones((2, 2)), X, (10**12, 2))
    with pytest.raises(ValueError):
        op(np.ones((2, 2)), X, (2, 2), None, 10**12)


def test_absurd_output_shape_of_a_huge_input_is_an_error_not_an_allocation():
    # asking for the shape of a gigantic padded output must not allocate per-window tables
    with pytest.raises(ValueError):
        poolkit.output_shape((4, 4), (2, 2), 1, 10**12)


# ---------------------------------------------------------------------------------------------
# Lp order, average options
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0, 0.0, -1, -0.5, -np.inf])
def test_lp_pool_order_must_be_positive(p):
    with pytest.raises(ValueError, match=r"\bp\b"):
        poolkit.lp_pool(X, p, (2, 2))
    with pytest.raises(ValueError, match=r"\bp\b"):
        poolkit.lp_pool_backward(np.ones((2, 2)), X, p, (2, 2))


def test_lp_pool_order_nan_is_rejected():
    with pytest.raises(ValueError, match=r"\bp\b"):
        poolkit.lp_pool(X, float("nan"), (2, 2))


def test_lp_pool_order_must_be_a_number():
    with pytest.raises(TypeError, match=r"\bp\b"):
        poolkit.lp_pool(X, "2", (2, 2))


def test_divisor_override_zero():
    with pytest.raises(ValueError, match="divisor_override"):
        poolkit.avg_pool(X, (2, 2), divisor_override=0)
    with pytest.raises(ValueError, match="divisor_override"):
        poolkit.avg_pool_backward(np.ones((2, 2)), X, (2, 2), divisor_override=0)


def test_zero_dimensional_input():
    with pytest.raises(ValueError):
        poolkit.max_pool(np.float64(3.0), (1,))


def test_indices_out_of_range_found_by_the_parallel_scatter():
    """Large calls use the multi-threaded scatter, which counts bad indices across its chunks."""
    x = np.zeros((8, 4, 64, 64))
    g = np.ones((8, 4, 32, 32))
    _, idx = poolkit.max_pool(x, (2, 2), axes=(2, 3), return_indices=True)
    for bad in (-1, 64 * 64):
        wrong = idx.copy()
        wrong[7, 3, 31, 31] = bad  # the last plane: another chunk than the first
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 4096\)"):
            poolkit.max_pool_backward(g, x, (2, 2), axes=(2, 3), indices=wrong)
        with pytest.raises(ValueError, match="indices"):
            poolkit.max_unpool(g, wrong, (64, 64), axes=(2, 3))
    assert poolkit.max_pool_backward(g, x, (2, 2), axes=(2, 3), indices=idx).sum() == g.sum()
