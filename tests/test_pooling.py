"""Sliding-window pooling -- ``max_pool``, ``avg_pool``, ``lp_pool``, their backwards, ``max_unpool``,
``output_shape`` and ``resolve_padding`` (issue 2): the worked examples, hand-computed cases, the
slow NumPy oracle over the whole parameter space (1 to 4 pooled axes, every padding form, ceil mode,
dilation, any axes), finite-difference gradients, layouts, dtypes and odd arrays, and the errors.

Every expected value comes from hand computation, from ``support/oracle.py`` (the slow oracle,
itself checked against torch in ``peers/test_torch.py``) or from plain NumPy -- never from poolkit.
Comparisons with PyTorch, TensorFlow and ONNX Runtime live in ``peers/``; the fused kernels against
the general path in ``test_kernels.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import poolkit
from poolkit import _engine as E
from poolkit import pooling

from support import oracle as R
from support.data import X44, random_input, values_of
from support.finite_differences import fd_grad

# ---------------------------------------------------------------------------------------------
# the worked examples of the issue, exact
# ---------------------------------------------------------------------------------------------


def test_issue_example_max_2x2_stride_2():
    out = poolkit.max_pool(X44, (2, 2), 2)
    np.testing.assert_array_equal(out, [[9, 2], [6, 3]])
    assert out.dtype == X44.dtype


def test_issue_example_max_indices():
    out, idx = poolkit.max_pool(X44, (2, 2), return_indices=True)
    np.testing.assert_array_equal(out, [[9, 2], [6, 3]])
    # 9 at (1,1) -> 5; 2 at (0,2) -> 2; 6 at (3,1) -> 13; 3 at (2,3) -> 11
    np.testing.assert_array_equal(idx, [[5, 2], [13, 11]])
    assert idx.dtype == np.int64


def test_issue_example_avg_2x2_stride_2():
    out = poolkit.avg_pool(X44, (2, 2), 2)
    np.testing.assert_array_equal(out, [[3.75, 1.25], [4.0, 2.0]])
    assert out.dtype == np.float64


def test_issue_example_max_backward():
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    got = poolkit.max_pool_backward(g, X44.astype(np.float64), (2, 2), 2)
    want = np.array([[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 4], [0, 3, 0, 0]], dtype=np.float64)
    np.testing.assert_array_equal(got, want)
    assert got.shape == X44.shape and got.dtype == np.float64


def test_issue_example_3x3_stride_1():
    x = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(poolkit.max_pool(x, (2, 2), 1), [[5, 6], [8, 9]])


def test_issue_example_20x20_with_10x10_windows():
    x = np.random.default_rng(1).standard_normal((20, 20))
    out = poolkit.max_pool(x, (10, 10))
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, x.reshape(2, 10, 2, 10).max(axis=(1, 3)))
    np.testing.assert_allclose(poolkit.avg_pool(x, (10, 10)), x.reshape(2, 10, 2, 10).mean(axis=(1, 3)),
                               rtol=1e-13, atol=1e-15)


def test_issue_example_26x26x32_hwc_pooled_2x2():
    x = np.random.default_rng(2).standard_normal((26, 26, 32)).astype(np.float32)
    out = poolkit.max_pool(x, (2, 2), axes=(0, 1))
    assert out.shape == (13, 13, 32) and out.dtype == np.float32
    np.testing.assert_array_equal(out, x.reshape(13, 2, 13, 2, 32).max(axis=(1, 3)))
    assert poolkit.output_shape((26, 26, 32), (2, 2), axes=(0, 1)) == (13, 13, 32)


# ---------------------------------------------------------------------------------------------
# small hand-computed cases
# ---------------------------------------------------------------------------------------------


def test_ceil_mode_1d():
    x = np.arange(5.0)  # 0 1 2 3 4
    assert poolkit.max_pool(x, (2,), 2).tolist() == [1, 3]
    assert poolkit.max_pool(x, (2,), 2, ceil_mode=True).tolist() == [1, 3, 4]
    # the last window holds one input cell and no padding: divisor 1
    assert poolkit.avg_pool(x, (2,), 2, ceil_mode=True).tolist() == [0.5, 2.5, 4.0]
    assert poolkit.output_shape((5,), (2,), 2, ceil_mode=True) == (3,)


def test_ceil_mode_drops_window_starting_in_right_padding():
    # L=5, k=2, s=2, pad 1: ceil((5+2-1-1)/2)+1 = 4, but window 3 would start at 6-1=5 >= L: dropped
    assert poolkit.output_shape((5,), (2,), 2, 1, ceil_mode=True) == (3,)
    x = np.array([1.0, 2, 3, 4, 5])
    assert poolkit.max_pool(x, (2,), 2, 1, ceil_mode=True).tolist() == [1, 3, 5]
    # and without padding the ceil window starting at 4 (inside the input) is kept
    assert poolkit.output_shape((5,), (2,), 2, 0, ceil_mode=True) == (3,)


def test_ceil_mode_avg_divisor_counts_padding_not_overhang():
    # L=4, k=3, s=2, pad 1, ceil: windows [-1,0,1], [1,2,3], [3,4,5]; padded extent is [-1, 5)
    x = np.array([1.0, 2, 3, 4])
    assert poolkit.output_shape((4,), (3,), 2, 1, ceil_mode=True) == (3,)
    out = poolkit.avg_pool(x, (3,), 2, 1, ceil_mode=True)
    np.testing.assert_allclose(out, [(1 + 2) / 3, (2 + 3 + 4) / 3, 4 / 2], rtol=1e-15)
    out = poolkit.avg_pool(x, (3,), 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(out, [(1 + 2) / 2, (2 + 3 + 4) / 3, 4 / 1], rtol=1e-15)


def test_padding_never_wins_with_negative_inputs():
    x = -np.array([[1.0, 2.0], [3.0, 4.0]])
    out, idx = poolkit.max_pool(x, (2, 2), 1, 1, return_indices=True)
    np.testing.assert_array_equal(out, [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]])
    np.testing.assert_array_equal(idx, [[0, 0, 1], [0, 0, 1], [2, 2, 3]])


def test_padding_never_wins_against_minus_inf_and_int_minimum():
    x = np.array([-np.inf, -np.inf])
    out, idx = poolkit.max_pool(x, (2,), 1, 1, return_indices=True)
    np.testing.assert_array_equal(out, [-np.inf, -np.inf, -np.inf])
    np.testing.assert_array_equal(idx, [0, 0, 1])
    for dt in (np.int8, np.int64):
        lo = np.iinfo(dt).min
        x = np.array([lo, lo], dtype=dt)
        out, idx = poolkit.max_pool(x, (2,), 1, 1, return_indices=True)
        assert out.dtype == dt
        np.testing.assert_array_equal(out, [lo, lo, lo])
        np.testing.assert_array_equal(idx, [0, 0, 1])


def test_dilation_1d():
    x = np.array([3.0, 1, 4, 1, 5, 9, 2, 6])
    out, idx = poolkit.max_pool(x, (2,), 1, dilation=2, return_indices=True)
    np.testing.assert_array_equal(out, [4, 1, 5, 9, 5, 9])
    np.testing.assert_array_equal(idx, [2, 1, 4, 5, 4, 5])  # window 1 is a tie 1 vs 1: first wins
    np.testing.assert_allclose(poolkit.avg_pool(x, (2,), 1, dilation=2), [3.5, 1, 4.5, 5, 3.5, 7.5])
    np.testing.assert_allclose(poolkit.lp_pool(x, 2, (2,), 1, dilation=2),
                               np.sqrt([9 + 16, 1 + 1, 16 + 25, 1 + 81, 25 + 4, 81 + 36]))


def test_dilation_2d_with_padding():
    x = np.arange(25.0).reshape(5, 5)
    # kernel 2x2 dilation 2 stride 3 pad 1: window starts -1, 2 on each axis; taps {-1, 1}, {2, 4}
    out, idx = poolkit.max_pool(x, (2, 2), 3, 1, dilation=2, return_indices=True)
    np.testing.assert_array_equal(out, [[6, 9], [21, 24]])
    np.testing.assert_array_equal(idx, [[6, 9], [21, 24]])
    avg = poolkit.avg_pool(x, (2, 2), 3, 1, dilation=2)  # taps at -1 are padding: divisor 4
    np.testing.assert_allclose(avg, [[6 / 4, (7 + 9) / 4], [(11 + 21) / 4, (12 + 14 + 22 + 24) / 4]])
    avg = poolkit.avg_pool(x, (2, 2), 3, 1, dilation=2, count_include_pad=False)
    np.testing.assert_allclose(avg, [[6, (7 + 9) / 2], [(11 + 21) / 2, (12 + 14 + 22 + 24) / 4]])


def test_count_include_pad_false_and_true():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    got = poolkit.avg_pool(x, (2, 2), 1, 1, count_include_pad=False)
    np.testing.assert_allclose(got, [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]])
    got = poolkit.avg_pool(x, (2, 2), 1, 1)
    np.testing.assert_allclose(got, [[0.25, 0.75, 0.5], [1, 2.5, 1.5], [0.75, 1.75, 1]])


def test_divisor_override():
    x = np.ones((4, 4))
    np.testing.assert_allclose(poolkit.avg_pool(x, (2, 2), divisor_override=3), np.full((2, 2), 4 / 3))
    # with padding 1: windows hold 1, 2, 1 / 2, 4, 2 / 1, 2, 1 cells, all divided by 5
    got = poolkit.avg_pool(x, (2, 2), 2, 1, divisor_override=5)
    np.testing.assert_allclose(got, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 5)
    # divisor_override wins over count_include_pad
    got = poolkit.avg_pool(x, (2, 2), 2, 1, divisor_override=5, count_include_pad=False)
    np.testing.assert_allclose(got, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 5)
    g = np.ones((3, 3))
    gx = poolkit.avg_pool_backward(g, x, (2, 2), 2, 1, divisor_override=5)
    np.testing.assert_allclose(gx, np.full((4, 4), 1 / 5))


@pytest.mark.parametrize(
    "shape, k, s, d, same, same_lower",
    [
        ((5,), (2,), 2, 1, ((0, 1),), ((1, 0),)),
        ((7, 7), (3, 3), 2, 1, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
        ((6,), (3,), 1, 2, ((2, 2),), ((2, 2),)),
        ((5,), (4,), 1, 1, ((1, 2),), ((2, 1),)),
        ((4,), (1,), 3, 1, ((0, 0),), ((0, 0),)),  # total would be negative: 0
        ((8, 3), (3, 2), (3, 1), 1, ((0, 1), (0, 1)), ((1, 0), (1, 0))),
    ],
)
def test_resolve_padding_same_by_hand(shape, k, s, d, same, same_lower):
    assert poolkit.resolve_padding(shape, k, s, "same", dilation=d) == same
    assert poolkit.resolve_padding(shape, k, s, "same_lower", dilation=d) == same_lower
    assert poolkit.resolve_padding(shape, k, s, "valid", dilation=d) == ((0, 0),) * len(k)
    # SAME gives ceil(L / s) outputs
    s_t = (s,) * len(k) if isinstance(s, int) else s
    want = tuple(-(-L // st_) for L, st_ in zip(shape, s_t))
    assert poolkit.output_shape(shape, k, s, "same", dilation=d) == want
    assert poolkit.output_shape(shape, k, s, "same_lower", dilation=d) == want


def test_resolve_padding_explicit_forms():
    assert poolkit.resolve_padding((9, 9), (3, 3), 1, 1) == ((1, 1), (1, 1))
    assert poolkit.resolve_padding((9, 9), (3, 3), 1, (1, 2)) == ((1, 1), (2, 2))
    assert poolkit.resolve_padding((9, 9), (3, 3), 1, ((0, 1), (2, 1))) == ((0, 1), (2, 1))
    # the pairs follow the order of axes
    assert poolkit.resolve_padding((9, 8, 7), (3, 3), 1, ((0, 1), (2, 1)), axes=(2, 0)) == ((0, 1), (2, 1))
    assert poolkit.resolve_padding((9, 5), (1, 4), 1, "same", axes=(0, 1)) == ((0, 0), (1, 2))
    assert poolkit.resolve_padding((9, 5), (4, 1), 1, "same", axes=(1, 0)) == ((1, 2), (0, 0))


def test_same_padding_pooling_1d():
    x = np.array([1.0, 5, 2, 4, 3])
    assert poolkit.max_pool(x, (2,), 2, "same").tolist() == [5, 4, 3]  # pads (0, 1)
    assert poolkit.max_pool(x, (2,), 2, "same_lower").tolist() == [1, 5, 4]  # pads (1, 0)
    assert poolkit.max_pool(x, (2,), 2, "valid").tolist() == [5, 4]
    np.testing.assert_allclose(poolkit.avg_pool(x, (2,), 2, "same"), [3, 3, 1.5])
    np.testing.assert_allclose(poolkit.avg_pool(x, (2,), 2, "same", count_include_pad=False), [3, 3, 3])


def test_ties_go_to_first_in_row_major_order():
    x = np.full((2, 2), 7.0)
    out, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert out.tolist() == [[7.0]] and idx.tolist() == [[0]]
    out, idx = poolkit.max_pool(np.array([[1.0, 3], [3, 1]]), (2, 2), return_indices=True)
    assert idx.tolist() == [[1]]
    out, idx = poolkit.max_pool(np.array([[1.0, 2], [3, 3]]), (2, 2), return_indices=True)
    assert idx.tolist() == [[2]]
    # a 3-D window: the maximum 5 at (0,1,1) and (1,0,0); row-major first is (0,1,1) -> 3
    x = np.array([[[0, 0], [0, 5]], [[5, 0], [0, 0]]], dtype=np.int32)
    out, idx = poolkit.max_pool(x, (2, 2, 2), return_indices=True)
    assert out.tolist() == [[[5]]] and idx.tolist() == [[[3]]]
    # the tie must also decide the backward
    g = poolkit.max_pool_backward(np.ones((1, 1, 1)), x.astype(np.float64), (2, 2, 2))
    assert g.ravel().tolist() == [0, 0, 0, 1, 0, 0, 0, 0]


def test_ties_in_a_column_window():
    # pooled (2, 2) window over rows 0..1 and cols 0..1: the maximum in row 1 col 0 and row 0 col 1
    x = np.array([[0.0, 4.0], [4.0, 0.0]])
    _, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert idx.tolist() == [[1]]
    x = np.array([[4.0, 0.0], [0.0, 4.0]])
    _, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert idx.tolist() == [[0]]


def test_nan_propagates_and_index_points_at_first_nan():
    nan = np.nan
    x = np.array([[1.0, nan], [nan, 2.0]])
    out, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert np.isnan(out[0, 0]) and idx.tolist() == [[1]]
    x = np.array([[nan, 5.0], [1.0, 2.0]])
    out, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert np.isnan(out[0, 0]) and idx.tolist() == [[0]]
    x = np.array([[9.0, 5.0], [1.0, nan]])
    out, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert np.isnan(out[0, 0]) and idx.tolist() == [[3]]
    x = np.array([[np.inf, 5.0], [nan, nan]])
    out, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert np.isnan(out[0, 0]) and idx.tolist() == [[2]]
    # 1-D, overlapping windows, float32, with padding
    x = np.array([1.0, nan, 3.0, 4.0], dtype=np.float32)
    out, idx = poolkit.max_pool(x, (2,), 1, 1, return_indices=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1, nan, nan, 4, 4])
    np.testing.assert_array_equal(idx, [0, 1, 1, 3, 3])
    # the gradient goes to the NaN
    g = poolkit.max_pool_backward(np.ones((1, 1)), np.array([[9.0, 5.0], [nan, nan]]), (2, 2))
    assert g.tolist() == [[0, 0], [1, 0]]
    # average and Lp propagate NaN too
    assert np.isnan(poolkit.avg_pool(np.array([1.0, nan]), (2,))[0])
    assert np.isnan(poolkit.lp_pool(np.array([1.0, nan]), 2, (2,))[0])


def test_lp_pool_by_hand():
    x = np.array([[3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(poolkit.lp_pool(x, 2, (2, 2)), [[5.0]])
    np.testing.assert_allclose(poolkit.lp_pool(x, 1, (2, 2)), [[7.0]])
    np.testing.assert_allclose(poolkit.lp_pool(x, 3, (2, 2)), [[(27 + 64) ** (1 / 3)]])
    # padding counts as zeros: the same sum wherever the pad is
    y = np.array([3.0, -4.0])
    np.testing.assert_allclose(poolkit.lp_pool(y, 2, (2,), 1, 1), [3, 5, 4])
    # gradient: sign(x) |x|^(p-1) y^(1-p)
    g = poolkit.lp_pool_backward(np.ones((1, 1)), x, 2, (2, 2))
    np.testing.assert_allclose(g, [[3 / 5, -4 / 5], [0, 0]])


def test_lp_pool_backward_is_zero_where_output_is_zero():
    x = np.array([0.0, 0.0, 1.0, -2.0])
    for p in (1, 1.5, 2, 3):
        g = poolkit.lp_pool_backward(np.ones(2), x, p, (2,))
        assert np.all(np.isfinite(g)), p
        np.testing.assert_allclose(g[:2], [0, 0])
        np.testing.assert_allclose(g, R.ref_lp_pool_backward(np.ones(2), x, p, (2,), None, 0, 1, False, (0,)))


def test_negative_inputs_with_padding_avg_and_lp():
    x = -np.arange(1.0, 7.0).reshape(2, 3)
    got = poolkit.avg_pool(x, (2, 2), 1, 1)
    np.testing.assert_allclose(got, R.ref_avg_pool(x, (2, 2), 1, 1, 1, False, (0, 1)))
    np.testing.assert_allclose(got[0], [-1 / 4, -3 / 4, -5 / 4, -3 / 4])
    got = poolkit.lp_pool(x, 2, (2, 2), 1, 1)
    np.testing.assert_allclose(got[0], [1, np.sqrt(5), np.sqrt(13), 3])


def test_int_bool_and_float16_by_hand():
    xi = np.array([[1, 3, 2, 1], [2, 9, 1, 1]], dtype=np.int16)
    out = poolkit.max_pool(xi, (2, 2))
    assert out.dtype == np.int16 and out.tolist() == [[9, 2]]
    avg = poolkit.avg_pool(xi, (2, 2))
    assert avg.dtype == np.float64 and avg.tolist() == [[3.75, 1.25]]
    xb = np.array([[False, False, True, False], [False, False, False, False]])
    out = poolkit.max_pool(xb, (2, 2))
    assert out.dtype == np.bool_ and out.tolist() == [[False, True]]
    out, idx = poolkit.max_pool(xb, (2, 2), return_indices=True)
    assert idx.tolist() == [[0, 2]]
    avg = poolkit.avg_pool(xb, (2, 2))
    assert avg.dtype == np.float64 and avg.tolist() == [[0.0, 0.25]]
    xh = np.array([[0.5, 0.25], [1.5, -2.0]], dtype=np.float16)
    out = poolkit.max_pool(xh, (2, 2))
    assert out.dtype == np.float16 and out.tolist() == [[1.5]]
    avg = poolkit.avg_pool(xh, (2, 2))
    assert avg.dtype == np.float16 and avg.tolist() == [[0.0625]]
    xu = np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)
    out = poolkit.max_pool(xu, (2,), 1)
    assert out.dtype == np.uint64 and out.tolist() == [2**64 - 1, 2**63]
    x64 = np.array([2**62 + 1, 2**62], dtype=np.int64)  # not representable in float64: exact compare
    out, idx = poolkit.max_pool(x64, (2,), return_indices=True)
    assert out.tolist() == [2**62 + 1] and idx.tolist() == [0]


def test_max_unpool_by_hand():
    vals = np.array([[9.0, 2.0], [6.0, 3.0]])
    idx = np.array([[5, 2], [13, 11]])
    out = poolkit.max_unpool(vals, idx, (4, 4))
    want = np.zeros((4, 4))
    want[1, 1], want[0, 2], want[3, 1], want[2, 3] = 9, 2, 6, 3
    np.testing.assert_array_equal(out, want)
    # batch axes, and an output_size larger than the pooled input (PyTorch allows any size)
    out = poolkit.max_unpool(vals[None], idx[None], (4, 5))
    assert out.shape == (1, 4, 5)
    assert out[0].ravel()[[5, 2, 13, 11]].tolist() == [9, 2, 6, 3] and out.sum() == 20
    # NHWC: pooled axes (0, 1), last axis is batch-like
    vals3 = np.stack([vals, -vals], axis=-1)
    idx3 = np.stack([idx, idx[::-1]], axis=-1)
    out = poolkit.max_unpool(vals3, idx3, (4, 4), axes=(0, 1))
    assert out.shape == (4, 4, 2)
    np.testing.assert_array_equal(out[..., 0], want)
    np.testing.assert_array_equal(out, R.ref_max_unpool(vals3, idx3, (4, 4), (0, 1)))


# ---------------------------------------------------------------------------------------------
# the oracle over the parameter space
# ---------------------------------------------------------------------------------------------


PAD_FORMS = ("int", "per_axis", "pairs", "valid", "same", "same_lower")


@st.composite
def geometries(draw, max_axes=4, pad_forms=PAD_FORMS):
    """A valid pooling geometry: every output size >= 1 and every window holds an input cell.

    Returns a dict with ``shape``, the oracle's explicit ``axes`` and the API arguments ``kw``
    (kernel_size, stride, padding, dilation, ceil_mode, axes) in one of their accepted forms.
    """
    n = draw(st.integers(1, max_axes))
    max_len = {1: 10, 2: 7, 3: 4, 4: 3}[n]
    kmax = {1: 4, 2: 3, 3: 2, 4: 2}[n]
    nb = draw(st.integers(0, 2 if n <= 2 else 1))
    ndim = n + nb
    explicit_axes = draw(st.booleans())
    if explicit_axes:
        perm = draw(st.permutations(range(ndim)))
        pooled = list(perm[:n])
        neg = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        api_axes = tuple(a - ndim if ng else a for a, ng in zip(pooled, neg))
    else:
        pooled = list(range(nb, ndim))
        api_axes = None
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    L, k, s, d = [], [], [], []
    for a in pooled:
        shape[a] = draw(st.integers(1, max_len))
        L.append(shape[a])
        d.append(draw(st.integers(1, 3)))
        k.append(draw(st.integers(1, kmax)))
        s.append(draw(st.integers(1, 3)))
    form = draw(st.sampled_from(pad_forms))
    reach = [(ki - 1) * di for ki, di in zip(k, d)]
    if form == "int":
        padding = draw(st.integers(0, min(reach)))
    elif form == "per_axis":
        padding = tuple(draw(st.integers(0, r)) for r in reach)
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, r)), draw(st.integers(0, r))) for r in reach)
        if draw(st.booleans()):
            padding = [list(pr) for pr in padding]
    else:
        padding = form
    ceil_mode = draw(st.booleans())
    axes = tuple(pooled)
    assume(R.ref_windows_ok(tuple(shape), k, s, padding, d, ceil_mode, axes))
    # the API forms: ints broadcast over explicit axes; stride None means stride = kernel
    kernel_arg = tuple(k)
    if api_axes is not None and len(set(k)) == 1 and draw(st.booleans()):
        kernel_arg = k[0]
    if s == k and draw(st.booleans()):
        stride_arg = None
    elif len(set(s)) == 1 and draw(st.booleans()):
        stride_arg = s[0]
    else:
        stride_arg = tuple(s)
    dil_arg = d[0] if len(set(d)) == 1 and draw(st.booleans()) else tuple(d)
    kw = dict(kernel_size=kernel_arg, stride=stride_arg, padding=padding, dilation=dil_arg,
              ceil_mode=ceil_mode, axes=api_axes)
    return dict(shape=tuple(shape), axes=axes, k=tuple(k), s=tuple(s), d=tuple(d), padding=padding,
                ceil_mode=ceil_mode, kw=kw)


def _oracle_args(geo):
    return geo["k"], geo["s"], geo["padding"], geo["d"], geo["ceil_mode"], geo["axes"]


def _api(geo):
    kw = dict(geo["kw"])
    k = kw.pop("kernel_size")
    s = kw.pop("stride")
    p = kw.pop("padding")
    return (k, s, p), kw


@settings(max_examples=80)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["normal", "ties", "nan"]))
def test_max_pool_matches_oracle(geo, seed, kind):
    x, _ = random_input(seed, geo["shape"], kind)
    want, want_idx = R.ref_max_pool(x, *_oracle_args(geo))
    args, kw = _api(geo)
    out, idx = poolkit.max_pool(x, *args, **kw, return_indices=True)
    assert out.shape == want.shape and idx.shape == want.shape
    assert out.dtype == x.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(poolkit.max_pool(x, *args, **kw), want)
    assert poolkit.output_shape(x.shape, *args, **kw) == want.shape


@settings(max_examples=60)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["normal", "ties"]))
def test_max_pool_backward_matches_oracle(geo, seed, kind):
    x, rng = random_input(seed, geo["shape"], kind)
    want_out, want_idx = R.ref_max_pool(x, *_oracle_args(geo))
    g = rng.standard_normal(want_out.shape)
    want = R.ref_max_pool_backward(g, x, *_oracle_args(geo))
    args, kw = _api(geo)
    got = poolkit.max_pool_backward(g, x, *args, **kw)
    assert got.shape == x.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    got = poolkit.max_pool_backward(g, x, *args, **kw, indices=want_idx)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


@settings(max_examples=80)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), cip=st.booleans(),
       dov=st.sampled_from([None, None, 1, 2, 5]))
def test_avg_pool_matches_oracle(geo, seed, cip, dov):
    x, rng = random_input(seed, geo["shape"])
    want = R.ref_avg_pool(x, *_oracle_args(geo), cip, dov)
    args, kw = _api(geo)
    out = poolkit.avg_pool(x, *args, **kw, count_include_pad=cip, divisor_override=dov)
    assert out.shape == want.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-13)
    g = rng.standard_normal(want.shape)
    want_g = R.ref_avg_pool_backward(g, x, *_oracle_args(geo), cip, dov)
    got_g = poolkit.avg_pool_backward(g, x, *args, **kw, count_include_pad=cip, divisor_override=dov)
    assert got_g.shape == x.shape and got_g.dtype == np.float64
    np.testing.assert_allclose(got_g, want_g, rtol=1e-12, atol=1e-13)


@settings(max_examples=60)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), p=st.sampled_from([1, 2, 3, 1.5, 0.5, 4.0]))
def test_lp_pool_matches_oracle(geo, seed, p):
    rng = np.random.default_rng(seed)
    # signed input bounded away from 0 (the gradient of |x|^p is singular there for p < 1)
    x = rng.uniform(0.2, 2.0, size=geo["shape"]) * rng.choice([-1.0, 1.0], size=geo["shape"])
    want = R.ref_lp_pool(x, p, *_oracle_args(geo))
    args, kw = _api(geo)
    out = poolkit.lp_pool(x, p, *args, **kw)
    assert out.shape == want.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-13)
    g = rng.standard_normal(want.shape)
    want_g = R.ref_lp_pool_backward(g, x, p, *_oracle_args(geo))
    got_g = poolkit.lp_pool_backward(g, x, p, *args, **kw)
    assert got_g.shape == x.shape and got_g.dtype == np.float64
    np.testing.assert_allclose(got_g, want_g, rtol=1e-10, atol=1e-12)


@settings(max_examples=50)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1))
def test_max_unpool_matches_oracle(geo, seed):
    x, _ = random_input(seed, geo["shape"])
    vals, idx = R.ref_max_pool(x, *_oracle_args(geo))
    # output_size follows the order of axes; with axes=None the pooled axes are the last ones
    out_size = tuple(geo["shape"][a] for a in geo["axes"])
    want = R.ref_max_unpool(vals, idx, out_size, geo["axes"])
    api_axes = geo["kw"]["axes"]
    got = poolkit.max_unpool(vals, idx, out_size, axes=api_axes)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_array_equal(got, want)
    # every winner is back in its place, every other cell is zero
    mask = want != 0
    np.testing.assert_array_equal(got[mask], x[mask])


@settings(max_examples=80)
@given(geo=geometries())
def test_output_shape_and_resolve_padding_match_oracle(geo):
    shape = geo["shape"]
    args, kw = _api(geo)
    assert poolkit.output_shape(shape, *args, **kw) == R.ref_output_shape(shape, *_oracle_args(geo))
    want = R.ref_resolve_padding(shape, geo["k"], geo["s"], geo["padding"], geo["d"], geo["axes"])
    got = poolkit.resolve_padding(shape, *args, **kw)
    assert isinstance(got, tuple) and all(isinstance(pr, tuple) and len(pr) == 2 for pr in got)
    assert tuple(tuple(int(v) for v in pr) for pr in got) == want


# ---------------------------------------------------------------------------------------------
# finite differences (float64)
# ---------------------------------------------------------------------------------------------


FD_CASES = [
    dict(shape=(2, 7, 6), k=(3, 2), s=(2, 1), p=((1, 0), (1, 1)), d=1, ceil=True),
    dict(shape=(9,), k=(3,), s=(2,), p=1, d=2, ceil=False),
    dict(shape=(5, 4, 2), k=(2, 3), s=(2, 1), p=((1, 1), (1, 2)), d=(1, 1), ceil=True, axes=(0, 1)),
    dict(shape=(3, 3, 4), k=(2, 2, 2), s=1, p="same", d=1, ceil=False),
]


def _fd_kwargs(c):
    return dict(dilation=c["d"], ceil_mode=c["ceil"], axes=c.get("axes"))


@pytest.mark.parametrize("case", FD_CASES)
@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_backward_finite_differences(case, cip):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(case["shape"])
    kw = _fd_kwargs(case)
    f = lambda z: poolkit.avg_pool(z, case["k"], case["s"], case["p"], count_include_pad=cip, **kw)  # noqa: E731
    g = rng.standard_normal(f(x).shape)
    got = poolkit.avg_pool_backward(g, x, case["k"], case["s"], case["p"], count_include_pad=cip, **kw)
    np.testing.assert_allclose(got, fd_grad(f, x, g), rtol=1e-6, atol=1e-8)


def test_large_backward_outputs_are_faulted_in_first_and_equal(monkeypatch):
    """Gradients of PREFAULT_BYTES or more are touched page by page in the calling thread before
    the pool's threads write them; the values are those of the same call without it."""
    from poolkit import _engine as E
    from poolkit import _kernels as K

    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 16, 256, 256)).astype(np.float32)  # 8.4 MB
    assert x.nbytes >= E.PREFAULT_BYTES
    y, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    calls = {
        "max": lambda: poolkit.max_pool_backward(g, x, (2, 2), indices=idx),
        "avg": lambda: poolkit.avg_pool_backward(g, x, (2, 2)),
        "unpool": lambda: poolkit.max_unpool(y, idx, x.shape[2:]),
    }
    touched = []
    real = K.scatter.touch_pages
    monkeypatch.setattr(K.scatter, "touch_pages", lambda buf, step: (touched.append(buf.size), real(buf, step)))
    before = poolkit.get_num_threads()
    poolkit.set_num_threads(2)
    try:
        got = {k: f() for k, f in calls.items()}
        assert touched == [x.nbytes] * 3
        monkeypatch.setattr(E, "PREFAULT_BYTES", 1 << 62)
        for k, f in calls.items():
            np.testing.assert_array_equal(got[k], f())
    finally:
        poolkit.set_num_threads(before)
    assert len(touched) == 3


# Windows that share no input row: the adjoint writes each row once, in order where it can, and
# zeroes only the rows no window holds.  Hand-picked geometries around that order: a 3-D case whose
# D windows span several H windows (rows come out of order), gaps between windows (stride >
# kernel), a dilated case, and channels-last.
DISJOINT_CASES = [
    dict(shape=(2, 3, 7, 6, 2), k=(3, 2, 2), s=(4, 2, 4), p=((0, 1), (1, 0), (1, 0)), ceil=True, axes=None),
    dict(shape=(2, 3, 9, 8), k=(2, 2), s=(3, 3), p=0, ceil=False, axes=None),
    dict(shape=(1, 2, 6, 5, 4), k=(2, 1, 2), s=(3, 1, 2), p=0, ceil=True, axes=None),
    dict(shape=(2, 11, 9), k=(2, 3), s=(5, 3), p=((1, 0), (0, 0)), ceil=False, axes=None),
    dict(shape=(2, 10, 9, 3), k=(2, 2), s=(4, 3), p=0, ceil=True, axes=(1, 2)),
]


@pytest.mark.parametrize("case", DISJOINT_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_backward_disjoint_windows(case, dtype):
    rng = np.random.default_rng(9)
    axes = case["axes"] or tuple(range(len(case["shape"]) - len(case["k"]), len(case["shape"])))
    x = np.zeros(case["shape"], dtype)
    args = (case["k"], case["s"], case["p"])
    out_shape = poolkit.output_shape(x.shape, *args, ceil_mode=case["ceil"], axes=axes)
    g = rng.standard_normal(out_shape).astype(dtype)
    for cip in (True, False):
        got = poolkit.avg_pool_backward(g, x, *args, ceil_mode=case["ceil"], axes=axes, count_include_pad=cip)
        want = R.ref_avg_pool_backward(g, x, *args, 1, case["ceil"], axes, cip)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-13, atol=0)


@pytest.mark.parametrize("case", FD_CASES)
@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
def test_lp_pool_backward_finite_differences(case, p):
    rng = np.random.default_rng(6)
    x = rng.uniform(0.5, 2.0, case["shape"]) * rng.choice([-1.0, 1.0], case["shape"])
    kw = _fd_kwargs(case)
    f = lambda z: poolkit.lp_pool(z, p, case["k"], case["s"], case["p"], **kw)  # noqa: E731
    g = rng.standard_normal(f(x).shape)
    got = poolkit.lp_pool_backward(g, x, p, case["k"], case["s"], case["p"], **kw)
    np.testing.assert_allclose(got, fd_grad(f, x, g), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", FD_CASES)
def test_max_pool_backward_finite_differences(case):
    rng = np.random.default_rng(7)
    n = int(np.prod(case["shape"]))
    x = (rng.permutation(n) * 0.01).reshape(case["shape"])  # distinct values, 100x apart from h
    kw = _fd_kwargs(case)
    f = lambda z: poolkit.max_pool(z, case["k"], case["s"], case["p"], **kw)  # noqa: E731
    g = rng.standard_normal(f(x).shape)
    got = poolkit.max_pool_backward(g, x, case["k"], case["s"], case["p"], **kw)
    np.testing.assert_allclose(got, fd_grad(f, x, g), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# layouts and axes order
# ---------------------------------------------------------------------------------------------


LAYOUT_CASES = [
    dict(k=(2, 2), s=None, p=0, d=1, ceil=False),
    dict(k=(3, 3), s=(2, 2), p=1, d=1, ceil=True),
    dict(k=(3, 2), s=(1, 2), p=((1, 0), (0, 1)), d=(2, 1), ceil=False),
    dict(k=(2, 3), s=2, p="same", d=1, ceil=False),
]


@pytest.mark.parametrize("c", LAYOUT_CASES)
def test_nchw_and_nhwc_agree(c):
    rng = np.random.default_rng(8)
    x = rng.integers(-4, 5, size=(2, 3, 9, 8)).astype(np.float64)  # ties included
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    kw = dict(dilation=c["d"], ceil_mode=c["ceil"])
    a, ia = poolkit.max_pool(x, c["k"], c["s"], c["p"], **kw, return_indices=True)
    b, ib = poolkit.max_pool(xh, c["k"], c["s"], c["p"], **kw, axes=(1, 2), return_indices=True)
    np.testing.assert_array_equal(b, a.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(ib, ia.transpose(0, 2, 3, 1))
    want, want_i = R.ref_max_pool(x, c["k"], c["s"], c["p"], c["d"], c["ceil"], (2, 3))
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(ia, want_i)
    for op in (poolkit.avg_pool, lambda z, *a_, **k_: poolkit.lp_pool(z, 2, *a_, **k_)):
        a = op(x, c["k"], c["s"], c["p"], **kw)
        b = op(xh, c["k"], c["s"], c["p"], **kw, axes=(1, 2))
        np.testing.assert_allclose(b, a.transpose(0, 2, 3, 1), rtol=1e-13, atol=1e-14)
    g = rng.standard_normal(a.shape)
    gh = np.ascontiguousarray(g.transpose(0, 2, 3, 1))
    for bw in (poolkit.max_pool_backward, poolkit.avg_pool_backward):
        ga = bw(g, x, c["k"], c["s"], c["p"], **kw)
        gb = bw(gh, xh, c["k"], c["s"], c["p"], **kw, axes=(1, 2))
        np.testing.assert_allclose(gb, ga.transpose(0, 2, 3, 1), rtol=1e-13, atol=1e-14)
    ua = poolkit.max_unpool(*poolkit.max_pool(x, c["k"], c["s"], c["p"], **kw, return_indices=True), (9, 8))
    ub = poolkit.max_unpool(*poolkit.max_pool(xh, c["k"], c["s"], c["p"], **kw, axes=(1, 2), return_indices=True),
                            (9, 8), axes=(1, 2))
    np.testing.assert_array_equal(ub, ua.transpose(0, 2, 3, 1))


def test_reversed_axes_order_follows_axes_for_arguments():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 7, 9))
    # axes=(2, 1): kernel 3 on axis 2, kernel 2 on axis 1
    a, ia = poolkit.max_pool(x, (3, 2), (2, 1), ((1, 1), (0, 1)), axes=(2, 1), return_indices=True)
    b, ib = poolkit.max_pool(x, (2, 3), (1, 2), ((0, 1), (1, 1)), axes=(1, 2), return_indices=True)
    want, want_i = R.ref_max_pool(x, (2, 3), (1, 2), ((0, 1), (1, 1)), 1, False, (1, 2))
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(b, want)
    # indices are row-major over (axis 1, axis 2) whatever the order of axes
    np.testing.assert_array_equal(ia, want_i)
    np.testing.assert_array_equal(ib, want_i)
    assert poolkit.output_shape(x.shape, (3, 2), (2, 1), ((1, 1), (0, 1)), axes=(2, 1)) == want.shape
    assert poolkit.resolve_padding(x.shape, (3, 2), (2, 1), "same", axes=(2, 1)) == \
        R.ref_resolve_padding(x.shape, (3, 2), (2, 1), "same", 1, (2, 1))
    un = poolkit.max_unpool(a, ia, (9, 7), axes=(2, 1))
    np.testing.assert_array_equal(un, R.ref_max_unpool(want, want_i, (7, 9), (1, 2)))
    g = rng.standard_normal(want.shape)
    np.testing.assert_allclose(
        poolkit.avg_pool_backward(g, x, (3, 2), (2, 1), ((1, 1), (0, 1)), axes=(2, 1)),
        R.ref_avg_pool_backward(g, x, (2, 3), (1, 2), ((0, 1), (1, 1)), 1, False, (1, 2)), rtol=1e-13)


def test_int_kernel_broadcasts_over_axes():
    x = np.arange(2 * 6 * 6 * 3, dtype=np.float64).reshape(2, 6, 6, 3)
    a = poolkit.max_pool(x, 2, axes=(1, 2))
    want, _ = R.ref_max_pool(x, (2, 2), (2, 2), 0, 1, False, (1, 2))
    np.testing.assert_array_equal(a, want)
    a = poolkit.avg_pool(x, 3, 1, 1, axes=(-3, -2))
    np.testing.assert_allclose(a, R.ref_avg_pool(x, (3, 3), 1, 1, 1, False, (1, 2)), rtol=1e-13)


def test_default_axes_are_the_last_ones():
    x = np.random.default_rng(10).standard_normal((3, 4, 5, 6))
    for k in [(2,), (2, 2), (2, 2, 2), (2, 2, 2, 2)]:
        axes = tuple(range(4 - len(k), 4))
        want, _ = R.ref_max_pool(x, k, None, 0, 1, False, axes)
        np.testing.assert_array_equal(poolkit.max_pool(x, k), want)
        np.testing.assert_array_equal(poolkit.max_pool(x, k, axes=axes), want)


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
FLOAT_DTYPES = [np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES + [np.bool_])
def test_max_pool_keeps_dtype(dtype):
    rng = np.random.default_rng(11)
    x = values_of(dtype, (2, 7, 6), rng)
    out, idx = poolkit.max_pool(x, (3, 2), 2, 1, return_indices=True, ceil_mode=True)
    want, want_i = R.ref_max_pool(x, (3, 2), 2, 1, 1, True, (1, 2))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_i)
    un = poolkit.max_unpool(out, idx, (7, 6))
    assert un.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(un, R.ref_max_unpool(want, want_i, (7, 6)))


@pytest.mark.parametrize("dtype", INT_DTYPES + [np.bool_])
def test_avg_and_lp_pool_return_float64_for_integers(dtype):
    rng = np.random.default_rng(12)
    x = values_of(dtype, (2, 6, 5), rng)
    out = poolkit.avg_pool(x, (2, 2), 1, 1, ceil_mode=True)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, R.ref_avg_pool(x, (2, 2), 1, 1, 1, True, (1, 2)), rtol=1e-14)
    out = poolkit.lp_pool(x, 2, (2, 2), 1, 1)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, R.ref_lp_pool(x, 2, (2, 2), 1, 1, 1, False, (1, 2)), rtol=1e-13)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_dtypes_are_kept_and_precise(dtype):
    eps = np.finfo(dtype).eps
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 9, 10)).astype(dtype)
    x64 = x.astype(np.float64)
    for args in [((3, 3), 2, 1), ((2, 4), (1, 3), "same")]:
        out = poolkit.avg_pool(x, *args)
        assert out.dtype == np.dtype(dtype)
        want = R.ref_avg_pool(x64, args[0], args[1], args[2], 1, False, (1, 2))
        np.testing.assert_allclose(out.astype(np.float64), want, rtol=2 * eps, atol=2 * eps)
        out = poolkit.lp_pool(x, 3, *args)
        assert out.dtype == np.dtype(dtype)
        want = R.ref_lp_pool(x64, 3, args[0], args[1], args[2], 1, False, (1, 2))
        np.testing.assert_allclose(out.astype(np.float64), want, rtol=4 * eps, atol=2 * eps)
        g = rng.standard_normal(out.shape).astype(dtype)
        for bw, ref in [(poolkit.avg_pool_backward, R.ref_avg_pool_backward),
                        (poolkit.max_pool_backward, R.ref_max_pool_backward)]:
            got = bw(g, x, *args)
            assert got.dtype == np.dtype(dtype) and got.shape == x.shape
            want = ref(g.astype(np.float64), x64, args[0], args[1], args[2], 1, False, (1, 2))
            np.testing.assert_allclose(got.astype(np.float64), want, rtol=4 * eps, atol=4 * eps)
        got = poolkit.lp_pool_backward(g, x, 3, *args)
        assert got.dtype == np.dtype(dtype) and got.shape == x.shape


def test_float32_avg_accumulates_precisely_over_large_windows():
    # 4096 taps of values near 1e4: a float32 running sum would be off by far more than an ulp
    rng = np.random.default_rng(14)
    x = (1e4 + rng.random((128, 128))).astype(np.float32)
    out = poolkit.avg_pool(x, (64, 64))
    want = x.astype(np.float64).reshape(2, 64, 2, 64).mean(axis=(1, 3))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=np.finfo(np.float32).eps, atol=0)
    # overlapping windows (a running-sum implementation must not drift either)
    x1 = (1e4 + rng.random(5000)).astype(np.float32)
    out = poolkit.avg_pool(x1, (100,), 1)
    want = np.lib.stride_tricks.sliding_window_view(x1.astype(np.float64), 100).mean(axis=-1)
    np.testing.assert_allclose(out, want, rtol=np.finfo(np.float32).eps, atol=0)


def test_float16_sums_do_not_overflow():
    x = np.full((32, 32), 1000, dtype=np.float16)  # a 16x16 window sums to 256000 > float16 max
    out = poolkit.avg_pool(x, (16, 16))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, np.full((2, 2), 1000, dtype=np.float16))
    y = np.full((4, 4), 100, dtype=np.float16)  # sum of squares 160000 > float16 max, result 400
    out = poolkit.lp_pool(y, 2, (4, 4))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, np.full((1, 1), 400, dtype=np.float16))


def test_float16_avg_matches_float64_reference():
    rng = np.random.default_rng(15)
    x = (rng.standard_normal((3, 20, 20)) * 30).astype(np.float16)
    out = poolkit.avg_pool(x, (5, 5), 1, 2, count_include_pad=False)
    want = R.ref_avg_pool(x.astype(np.float64), (5, 5), 1, 2, 1, False, (1, 2), False)
    np.testing.assert_allclose(out.astype(np.float64), want, rtol=np.finfo(np.float16).eps,
                               atol=np.finfo(np.float16).tiny)


# ---------------------------------------------------------------------------------------------
# odd arrays, side effects
# ---------------------------------------------------------------------------------------------


def _all_ops(x, k, s, p, **kw):
    """Every op on x (a float array), with its oracle result."""
    axes = tuple(range(x.ndim - len(k), x.ndim))
    out, idx = poolkit.max_pool(x, k, s, p, **kw, return_indices=True)
    wo, wi = R.ref_max_pool(x, k, s, p, 1, False, axes)
    yield out, wo
    yield idx, wi
    yield poolkit.avg_pool(x, k, s, p, **kw), R.ref_avg_pool(x, k, s, p, 1, False, axes)
    yield poolkit.lp_pool(x, 2, k, s, p, **kw), R.ref_lp_pool(x, 2, k, s, p, 1, False, axes)
    g = np.arange(wo.size, dtype=np.float64).reshape(wo.shape) - 3.5
    yield poolkit.max_pool_backward(g, x, k, s, p, **kw), R.ref_max_pool_backward(g, x, k, s, p, 1, False, axes)
    yield poolkit.avg_pool_backward(g, x, k, s, p, **kw), R.ref_avg_pool_backward(g, x, k, s, p, 1, False, axes)
    yield (poolkit.lp_pool_backward(g, x, 2, k, s, p, **kw),
           R.ref_lp_pool_backward(g, x, 2, k, s, p, 1, False, axes))
    yield poolkit.max_unpool(wo, wi, [x.shape[a] for a in axes]), R.ref_max_unpool(wo, wi, [x.shape[a] for a in axes])


def _views():
    base = np.random.default_rng(16).standard_normal((4, 9, 12))
    return {
        "strided": base[:, ::2, 1::2],
        "reversed": base[:, ::-1],
        "reversed_both": base[::-1, ::-1, ::-1],
        "transposed": base.transpose(2, 1, 0)[:5],
        "fortran": np.asfortranarray(base),
        "broadcast": np.broadcast_to(base[:1], (3, 9, 12)),
        "unaligned_like": base[1:, 1:, 1:],
    }


@pytest.mark.parametrize("name", list(_views()))
def test_any_array_layout_works(name):
    x = _views()[name]
    for got, want in _all_ops(x, (3, 2), (2, 1), 1):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_negative_strides_on_the_pooled_axis_and_channels_last():
    base = np.random.default_rng(17).standard_normal((7, 8, 3))
    x = base[::-1, :, ::-1]
    out, idx = poolkit.max_pool(x, (2, 3), (2, 2), 1, axes=(0, 1), return_indices=True)
    want, want_i = R.ref_max_pool(x, (2, 3), (2, 2), 1, 1, False, (0, 1))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_i)


def test_zero_size_batch():
    x = np.zeros((0, 3, 6, 6))
    out, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    assert out.shape == (0, 3, 3, 3) and idx.shape == (0, 3, 3, 3) and idx.dtype == np.int64
    assert poolkit.avg_pool(x, (3, 3), 1, 1).shape == (0, 3, 6, 6)
    assert poolkit.lp_pool(x, 2, (2, 2)).shape == (0, 3, 3, 3)
    g = np.zeros((0, 3, 3, 3))
    for bw in (poolkit.max_pool_backward, poolkit.avg_pool_backward):
        gx = bw(g, x, (2, 2))
        assert gx.shape == x.shape and gx.dtype == np.float64
    assert poolkit.lp_pool_backward(g, x, 2, (2, 2)).shape == x.shape
    assert poolkit.max_unpool(out, idx, (6, 6)).shape == x.shape
    xh = np.zeros((5, 6, 0))  # channels-last with no channels
    assert poolkit.max_pool(xh, (2, 2), axes=(0, 1)).shape == (2, 3, 0)


def test_inputs_are_never_modified():
    rng = np.random.default_rng(18)
    x = rng.standard_normal((2, 7, 6))
    x[0, 0, 0] = np.nan
    x.flags.writeable = False  # any write attempt fails loudly
    kw = dict(dilation=(1, 2), ceil_mode=True)
    keep = x.copy()
    out, idx = poolkit.max_pool(x, (3, 2), 2, 1, **kw, return_indices=True)
    g = rng.standard_normal(out.shape)
    g.flags.writeable = False
    idx.flags.writeable = False
    gkeep, ikeep = g.copy(), idx.copy()
    poolkit.avg_pool(x, (3, 2), 2, 1, **kw)
    poolkit.lp_pool(x, 2, (3, 2), 2, 1, **kw)
    poolkit.max_pool_backward(g, x, (3, 2), 2, 1, **kw)
    poolkit.max_pool_backward(g, x, (3, 2), 2, 1, **kw, indices=idx)
    poolkit.avg_pool_backward(g, x, (3, 2), 2, 1, **kw)
    poolkit.lp_pool_backward(g, x, 2, (3, 2), 2, 1, **kw)
    vals = np.ascontiguousarray(out)
    vals.flags.writeable = False
    poolkit.max_unpool(vals, idx, (7, 6))
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(g, gkeep)
    np.testing.assert_array_equal(idx, ikeep)


def test_inputs_are_never_modified_writeable_arrays():
    rng = np.random.default_rng(19)
    for dtype in (np.float32, np.int16):
        x = values_of(dtype, (3, 8, 8), rng)
        keep = x.copy()
        poolkit.max_pool(x, (2, 2), 1, 1, return_indices=True)
        poolkit.avg_pool(x, (2, 2), 1, 1)
        poolkit.lp_pool(x, 3, (2, 2), 1, 1)
        np.testing.assert_array_equal(x, keep)


def test_result_does_not_alias_the_input():
    x = np.arange(12.0).reshape(3, 4)
    for out in (poolkit.max_pool(x, (1, 1)), poolkit.avg_pool(x, (1, 1)), poolkit.lp_pool(x, 1, (1, 1))):
        np.testing.assert_array_equal(np.abs(out), x)
        assert not np.shares_memory(out, x)
    g = np.ones((3, 4))
    assert not np.shares_memory(poolkit.avg_pool_backward(g, x, (1, 1)), g)
    assert not np.shares_memory(poolkit.max_pool_backward(g, x, (1, 1)), g)


def test_max_backward_with_given_indices_equals_without():
    rng = np.random.default_rng(20)
    x = rng.integers(-2, 3, size=(2, 3, 8, 7)).astype(np.float64)
    for k, s, p, d, cm in [((2, 2), None, 0, 1, False), ((3, 3), 2, 1, 1, True), ((2, 3), 1, 1, (2, 1), False)]:
        out, idx = poolkit.max_pool(x, k, s, p, dilation=d, ceil_mode=cm, return_indices=True)
        g = rng.standard_normal(out.shape)
        a = poolkit.max_pool_backward(g, x, k, s, p, dilation=d, ceil_mode=cm)
        b = poolkit.max_pool_backward(g, x, k, s, p, dilation=d, ceil_mode=cm, indices=idx)
        np.testing.assert_array_equal(a, b)
        axes = (2, 3)
        np.testing.assert_allclose(a, R.ref_max_pool_backward(g, x, k, s, p, d, cm, axes), rtol=1e-14)


def test_max_backward_accumulates_over_overlapping_windows():
    x = np.array([0.0, 9.0, 0.0, 0.0])
    g = np.array([1.0, 10.0, 100.0])
    got = poolkit.max_pool_backward(g, x, (2,), 1)  # 9 wins windows 0 and 1; window 2 ties -> index 2
    np.testing.assert_array_equal(got, [0, 11, 100, 0])
    got = poolkit.avg_pool_backward(g, x, (2,), 1)
    np.testing.assert_allclose(got, [0.5, 5.5, 55, 50])


# A repeated small call skips validation and planning when it passes the very same immutable
# argument objects (pooling._repeated): each case below repeats a call, then changes one thing that
# the shortcut must notice -- a list mutated in place, an equal value of another type, another
# shape, dtype or memory layout.


def _ref_2x2(x, op="max", count_include_pad=True):
    pads, axes = ((0, 0), (0, 0)), (x.ndim - 2, x.ndim - 1)
    if op == "max":
        return R.ref_max_pool(x, (2, 2), (2, 2), pads, (1, 1), False, axes)[0]
    return R.ref_avg_pool(x, (2, 2), (2, 2), pads, (1, 1), False, axes, count_include_pad)


def test_repeated_small_calls_follow_their_arguments():
    rng = np.random.default_rng(31)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    k = (2, 2)
    for _ in range(3):  # the same tuple object every time: the shortcut's case
        np.testing.assert_array_equal(poolkit.max_pool(x, k, 2), _ref_2x2(x))
        np.testing.assert_allclose(poolkit.avg_pool(x, k, 2), _ref_2x2(x, "avg"), rtol=1e-6)
    y = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)  # other values, same shape
    np.testing.assert_array_equal(poolkit.max_pool(y, k, 2), _ref_2x2(y))
    z = y[:, :, :4, :4].copy()  # another shape
    np.testing.assert_array_equal(poolkit.max_pool(z, k, 2), _ref_2x2(z))
    w = y.astype(np.float64)  # another dtype
    assert poolkit.max_pool(w, k, 2).dtype == np.float64
    np.testing.assert_array_equal(poolkit.max_pool(w, k, 2), _ref_2x2(w))
    t = np.asfortranarray(y)  # another layout, same shape and dtype
    np.testing.assert_array_equal(poolkit.max_pool(t, k, 2), _ref_2x2(y))
    np.testing.assert_allclose(poolkit.avg_pool(y, k, 2, count_include_pad=False), _ref_2x2(y, "avg", False),
                               rtol=1e-6)
    for v in ([[0.0] * 6] * 6, y.tolist()):  # lists of the same shape are arrays too
        np.testing.assert_array_equal(poolkit.max_pool(v, k, 2), _ref_2x2(np.asarray(v)))


def test_repeated_small_calls_revalidate_what_may_have_changed():
    x = np.arange(36, dtype=np.float32).reshape(6, 6)
    k = [2, 2]  # a list can change between calls: never remembered
    poolkit.max_pool(x, k, 2)
    k[0] = 3
    np.testing.assert_array_equal(poolkit.max_pool(x, k, 2), [[13, 15, 17], [25, 27, 29]])  # 3x2 windows
    k2 = (2, 2)
    poolkit.max_pool(x, k2, 2)
    poolkit.avg_pool(x, k2, 2)
    with pytest.raises(TypeError, match="kernel_size"):  # equal to 2, but not an int
        poolkit.max_pool(x, (2.0, 2), 2)
    with pytest.raises(TypeError, match="stride"):
        poolkit.avg_pool(x, k2, 2.0)
    with pytest.raises(TypeError, match="count_include_pad"):  # True == 1
        poolkit.avg_pool(x, k2, 2, count_include_pad=1)
    with pytest.raises(TypeError, match="ceil_mode"):
        poolkit.max_pool(x, k2, 2, ceil_mode=0)


def test_repeated_small_calls_on_read_only_and_unaligned_inputs():
    """A remembered small call runs its kernel's compiled entry point, typed for aligned, writeable
    C arrays.  A read-only input of the same shape and dtype is only read, and gets the oracle's
    result; an unaligned one (float32 at an odd address) is sent down the general path, with the
    oracle's result too, and the aligned input's repeats still follow their values after it."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    k = (2, 2)
    for _ in range(2):
        poolkit.max_pool(x, k, 2)
        poolkit.avg_pool(x, k, 2)
    ro = rng.standard_normal(x.shape).astype(np.float32)
    ro.flags.writeable = False
    raw = np.zeros(x.nbytes + 1, np.uint8)
    un = np.frombuffer(raw.data, np.float32, count=x.size, offset=1).reshape(x.shape)
    un[...] = rng.standard_normal(x.shape)
    assert not un.flags.aligned and un.flags.c_contiguous
    for v in (ro, un, x):
        for _ in range(2):
            np.testing.assert_array_equal(poolkit.max_pool(v, k, 2), _ref_2x2(v))
            np.testing.assert_allclose(poolkit.avg_pool(v, k, 2), _ref_2x2(v, "avg"), rtol=1e-6)
    assert not ro.flags.writeable


def test_repeated_large_calls_run_on_the_pool_and_follow_their_values():
    """A call too large for the calling thread alone (SERIAL_BELOW elements and more) is remembered
    as well: its repeats skip validation and planning and run their chunks on the pool through the
    kernels' compiled entry points (for maxima the NaN-free twin first, the exact kernel from the
    first row whose windows may hold a NaN).  Each repeat gets the oracle's result: new values,
    NaNs that appear in a later call, a read-only input, an unaligned one (sent down the general
    path), integers, and a result the caller has dropped and whose memory the next one reuses."""
    rng = np.random.default_rng(47)
    shape, k = (2, 8, 96, 96), (2, 2)
    assert math.prod(shape) >= E.SERIAL_BELOW
    x = rng.standard_normal(shape).astype(np.float32)
    for _ in range(2):
        np.testing.assert_array_equal(poolkit.max_pool(x, k, 2), _ref_2x2(x))
        assert pooling._LAST["max"][1] == shape  # remembered
        np.testing.assert_allclose(poolkit.avg_pool(x, k, 2), _ref_2x2(x, "avg"), rtol=1e-6)
        assert pooling._LAST["avg"][1] == shape
    y = rng.standard_normal(shape).astype(np.float32)
    y[1, 7, 90:, :3] = np.nan  # in the last rows only: the twin hands those rows to the exact kernel
    y[0, 3, 10, 11] = -np.inf
    np.testing.assert_array_equal(poolkit.max_pool(y, k, 2), _ref_2x2(y))
    np.testing.assert_allclose(poolkit.avg_pool(y, k, 2), _ref_2x2(y, "avg"), rtol=1e-6)
    ro = rng.standard_normal(shape).astype(np.float32)
    ro.flags.writeable = False
    raw = np.zeros(x.nbytes + 1, np.uint8)
    un = np.frombuffer(raw.data, np.float32, count=x.size, offset=1).reshape(shape)
    un[...] = rng.standard_normal(shape)
    ints = rng.integers(-1000, 1000, shape).astype(np.int32)
    for v in (ro, un, x, ints, x):
        for _ in range(2):
            got = poolkit.max_pool(v, k, 2)
            assert got.dtype == v.dtype
            np.testing.assert_array_equal(got, _ref_2x2(v))
            got[...] = 7  # dirty memory for the next result to overwrite
            del got
            np.testing.assert_allclose(poolkit.avg_pool(v, k, 2), _ref_2x2(v, "avg"), rtol=1e-6)
    assert not ro.flags.writeable
    # 3x3 s2 p1 windows, whose maxima have a NaN-free twin: NaNs in a later call's last rows
    pads = ((1, 1), (1, 1))
    for v in (x, y, x):
        for _ in range(2):
            want = R.ref_max_pool(v, (3, 3), (2, 2), pads, (1, 1), False, (2, 3))[0]
            np.testing.assert_array_equal(poolkit.max_pool(v, (3, 3), 2, 1), want)


def test_only_kept_plans_are_prepared():
    """A plan made for one call only (a Dask block's) is not prepared: preparing costs more than a
    single call saves (a (32, 512, 14, 14) adaptive average to 7x7, whose plan was made anew for
    every call, took 0.68 ms prepared every time against 0.49-0.51 ms).  The plans of make_plan and
    of adaptive pooling are kept, and prepared once; every path gives the oracle's result."""
    from poolkit import _geometry as geo
    from poolkit import adaptive

    shape = (2, 8, 96, 96)
    x = np.random.default_rng(48).standard_normal(shape).astype(np.float32)
    kept = geo.make_plan(shape, (2, 2), axes=(2, 3))
    once = geo.Plan.of(shape, kept.axes, list(kept.axis_plans))
    assert kept.memo["kept"] and "kept" not in once.memo
    assert E.prepared_call(once, "max", x) is None and E.prepared_call(once, "sum", x, True) is None
    assert E.prepared_call(kept, "max", x) is not None
    np.testing.assert_array_equal(E.max_reduce(x, once)[0], _ref_2x2(x))
    a = adaptive._adaptive_plan(shape, 48, None)
    assert a is adaptive._adaptive_plan(shape, (48, 48), None) and a.memo["kept"]
    for _ in range(2):
        np.testing.assert_allclose(poolkit.adaptive_avg_pool(x, 48), _ref_2x2(x, "avg"), rtol=1e-6)
        np.testing.assert_array_equal(poolkit.adaptive_max_pool(x, 48), _ref_2x2(x))


_BASE = dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False, axes=(1, 2))


@pytest.mark.parametrize("op, change", [
    ("max", dict(kernel_size=(3, 2))), ("max", dict(stride=(1, 2))), ("max", dict(padding=(1, 0))),
    ("max", dict(dilation=(2, 1))), ("max", dict(ceil_mode=True)), ("max", dict(axes=(0, 2))),
    ("max", dict(return_indices=True)),
    ("avg", dict(kernel_size=(3, 2))), ("avg", dict(stride=(1, 2))), ("avg", dict(padding=(1, 0))),
    ("avg", dict(dilation=(2, 1))), ("avg", dict(ceil_mode=True)), ("avg", dict(axes=(0, 2))),
    ("avg", dict(padding=(1, 1), count_include_pad=False)), ("avg", dict(divisor_override=3)),
    ("avg", dict(acc_dtype="float32")),
])
def test_a_repeat_with_any_one_argument_changed_is_computed_afresh(op, change):
    """A small call made twice (so remembered), then with one argument changed to another valid
    value: the result is the oracle's for the changed arguments, not the remembered call's."""
    x = np.random.default_rng(8).standard_normal((3, 7, 7)).astype(np.float32)
    x[0, :2, :2] = [[2.0**24, 1], [1, 0]]  # mean 4194304.5; summed in float32, 2**24 + 1 rounds to 2**24
    f = poolkit.max_pool if op == "max" else poolkit.avg_pool
    for _ in range(2):
        f(x, **_BASE)
    kw = {**_BASE, **change}
    got = f(x, **kw)
    pads = tuple((p, p) for p in kw["padding"])
    geo = (kw["kernel_size"], kw["stride"], pads, kw["dilation"], kw["ceil_mode"], kw["axes"])
    if op == "max":
        want, idx = R.ref_max_pool(x, *geo)
        if kw.get("return_indices"):
            np.testing.assert_array_equal(got[1], idx)
            got = got[0]
        np.testing.assert_array_equal(got, want)
    else:
        want = R.ref_avg_pool(x, *geo, kw.get("count_include_pad", True), kw.get("divisor_override"))
        if kw.get("acc_dtype") == "float32":
            assert (want[0, 0, 0], got[0, 0, 0]) == (4194304.5, 4194304.0)
            got[0, 0, 0] = want[0, 0, 0]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # float32 sums: a few eps of |x| ~ 3


def test_integer_input_gradients_are_float():
    x = np.array([[1, 3], [2, 0]], dtype=np.int32)
    g = poolkit.max_pool_backward(np.array([[2.0]]), x, (2, 2))
    assert g.shape == x.shape and g.dtype.kind == "f"
    np.testing.assert_array_equal(g, [[0, 2], [0, 0]])
    g = poolkit.avg_pool_backward(np.array([[2.0]]), x, (2, 2))
    assert g.shape == x.shape and g.dtype.kind == "f"
    np.testing.assert_allclose(g, np.full((2, 2), 0.5))


# ---------------------------------------------------------------------------------------------
# errors: a ValueError or TypeError naming the argument -- never a crash, a hang, a huge
# allocation or a write outside an array (numba kernels do not bounds-check)
# ---------------------------------------------------------------------------------------------


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
# errors: kernel, stride, dilation, padding
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
# errors: axes
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
# errors: grad_output
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
# errors: indices (max_pool_backward and max_unpool); the multi-threaded scatter's own check
# is in test_kernels.py
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
# errors: dtypes
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
# errors: absurd sizes fail at once with ValueError (no giant allocation, no hang)
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
# errors: Lp order, average options, 0-d input
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
