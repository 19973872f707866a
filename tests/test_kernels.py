"""The compiled kernels: the fused 2-D/3-D kernels (direct, tap-major and van Herk / Gil-Werman
paths) against the general separable path and against the NumPy oracle, on windows wide enough to
reach every fast path; every forward variant, selected by its geometry, against the oracle; the
multi-threaded scatter's index check.  The public functions' own cases live in ``test_pooling.py``."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit
from poolkit import _engine as E
from poolkit import _geometry as geo
from poolkit import _kernels as K
from poolkit import _warmup
from poolkit._kernels import _loops as loops
from poolkit._kernels import sliding

from support import oracle as R


def _general_max(x, plan, return_indices=False):
    cur = E.kernel_input(x)
    out, idx = E._max_separable(cur, plan, return_indices)
    return out.astype(x.dtype), idx


def _general_avg(x, plan, count_include_pad=True, divisor_override=None):
    sums = E._sum_separable(E.kernel_input(x), plan)
    return E.divide(sums, plan, count_include_pad, divisor_override)


def _window_view_max(x, k, s, pads):
    """Independent check for 2-D NCHW max: pad with -inf and take strided window views."""
    xp = np.pad(x.astype(np.float64), [(0, 0)] * (x.ndim - 2) + list(pads), constant_values=-np.inf)
    v = np.lib.stride_tricks.sliding_window_view(xp, k, axis=(-2, -1))[..., :: s[0], :: s[1], :, :]
    return v.max(axis=(-2, -1))


geometries = st.tuples(
    st.integers(1, 40), st.integers(1, 40),      # H, W
    st.integers(1, 16), st.integers(1, 16),      # kh, kw
    st.integers(1, 3), st.integers(1, 3),        # sh, sw
    st.integers(1, 2), st.integers(1, 2),        # dh, dw
    st.booleans(), st.sampled_from(["sym", "same", "valid"]),
)


def _plan_or_none(shape, k, s, pad, d, ceil, axes):
    try:
        return geo.make_plan(shape, k, s, pad, d, ceil, axes)
    except ValueError:
        return None


@settings(max_examples=150, deadline=None)
@given(geometries, st.sampled_from(["nchw", "nhwc", "plain"]), st.integers(0, 2**31 - 1))
def test_fused_matches_general_path(g, layout, seed):
    H, W, kh, kw, sh, sw, dh, dw, ceil, padkind = g
    rng = np.random.default_rng(seed)
    if padkind == "sym":
        pad = ((dh * (kh - 1) + 1) // 2, (dw * (kw - 1) + 1) // 2)
    else:
        pad = padkind
    shape, axes = {"nchw": ((2, 3, H, W), (2, 3)), "nhwc": ((2, H, W, 3), (1, 2)), "plain": ((H, W), (0, 1))}[layout]
    plan = _plan_or_none(shape, (kh, kw), (sh, sw), pad, (dh, dw), ceil, axes)
    if plan is None:
        return
    x = rng.integers(-4, 5, shape).astype(np.float32)  # small integers: many ties
    x[rng.random(shape) < 0.02] = np.nan
    out, idx = poolkit.max_pool(x, (kh, kw), (sh, sw), pad, dilation=(dh, dw), ceil_mode=ceil, axes=axes,
                                return_indices=True)
    ref, ref_idx = _general_max(x, plan, True)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(poolkit.max_pool(x, (kh, kw), (sh, sw), pad, dilation=(dh, dw),
                                                   ceil_mode=ceil, axes=axes), ref)
    xf = np.nan_to_num(x).astype(np.float64)
    for cip in (True, False):
        got = poolkit.avg_pool(xf, (kh, kw), (sh, sw), pad, dilation=(dh, dw), ceil_mode=ceil,
                               count_include_pad=cip, axes=axes)
        np.testing.assert_allclose(got, _general_avg(xf, plan, cip), rtol=1e-12, atol=1e-12)
    gout = rng.standard_normal(out.shape)
    got = poolkit.avg_pool_backward(gout, xf, (kh, kw), (sh, sw), pad, dilation=(dh, dw), ceil_mode=ceil,
                                    axes=axes)
    want = E._sum_separable_adjoint(E.divide(gout.copy(), plan, True, None), plan)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [5, 9, 13, 31])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_wide_windows_stride_one(k, dtype):
    """van Herk along H (and along W for k >= 12) against an independent window-view maximum."""
    rng = np.random.default_rng(k)
    x = rng.integers(-100, 100, (2, 3, 47, 53)).astype(dtype)
    pad = k // 2
    got = poolkit.max_pool(x, (k, k), 1, pad)
    np.testing.assert_array_equal(got, _window_view_max(x, (k, k), (1, 1), [(pad, pad), (pad, pad)]).astype(dtype))
    avg = poolkit.avg_pool(x, (k, k), 1, pad, count_include_pad=False)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    ones = np.pad(np.ones(x.shape[-2:]), pad)
    v = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(-2, -1)).sum(axis=(-2, -1))
    n = np.lib.stride_tricks.sliding_window_view(ones, (k, k)).sum(axis=(-2, -1))
    np.testing.assert_allclose(avg, (v / n).astype(avg.dtype), rtol=2e-6 if dtype == np.float32 else 1e-12)


def test_wide_windows_nan_and_ties():
    x = np.zeros((1, 1, 30, 30), np.float32)
    x[0, 0, 7, 11] = np.nan
    x[0, 0, 20, 3] = 5
    x[0, 0, 20, 4] = 5
    out = poolkit.max_pool(x, (13, 13), 1, 6)
    ref = _window_view_max(np.where(np.isnan(x), np.inf, x), (13, 13), (1, 1), [(6, 6), (6, 6)])
    np.testing.assert_array_equal(np.isnan(out), np.isinf(ref))
    np.testing.assert_array_equal(out[~np.isnan(out)], ref[~np.isinf(ref)])


DOUBLED_CASES = {  # (shape, kernel, stride, padding, dilation, ceil_mode, axes): windows doubled along W
    "1-D, padded": ((3, 2, 29), (9,), (1,), 4, 1, False, (2,)),
    "1-D, dilated": ((3, 2, 31), (9,), (1,), 5, 2, False, (2,)),
    "1-D, dilated 3, ceil mode": ((2, 3, 40), (8,), (2,), 4, 3, True, (2,)),
    "1-D, asymmetric padding": ((2, 2, 23), (11,), (1,), ((3, 5),), 1, False, (2,)),
    "2-D one row high": ((2, 2, 3, 37), (1, 13), (1, 1), (0, 6), 1, False, (2, 3)),
    "2-D van Herk and doubled (wide)": ((2, 2, 30, 33), (9, 9), (1, 1), 4, 1, False, (2, 3)),
    "2-D wide, ceil mode": ((1, 3, 26, 27), (9, 9), (1, 2), (4, 4), 1, True, (2, 3)),
    "channels-last, stride 1": ((2, 3, 29, 4), (1, 9), (1, 1), (0, 4), (1, 2), False, (1, 2)),
    "channels-last wide": ((2, 21, 25, 3), (9, 9), (1, 1), 4, 1, False, (1, 2)),
    "dilation 4, wide padding": ((2, 2, 21), (5,), (1,), 7, 4, False, (2,)),
}


def _pad_pairs(padding, n):
    """(before, after) per axis from an int or a tuple of ints and pairs."""
    if isinstance(padding, int):
        return [(padding, padding)] * n
    return [p if isinstance(p, tuple) else (p, p) for p in padding]


@pytest.mark.parametrize("case", list(DOUBLED_CASES), ids=list(DOUBLED_CASES))
def test_doubled_windows_clipped_by_padding(case):
    """The doubled column strategy pads the row buffer so that the windows clipped by the padding
    (or ceil mode) are full windows of the padded row: maxima with copies of the window's own
    first or last tap, sums with -0.0.  Against the oracle, bit for bit where the kernels reduce a
    window in the oracle's order (one row per window: NaN payloads and the sign of tied zeros
    included), with large values at the row's ends (a copy of a tap outside a window shows)."""
    shape, k, s, padding, d, ceil, axes = DOUBLED_CASES[case]
    pads = _pad_pairs(padding, len(k))
    plan = geo.make_plan(shape, k, s, padding, d, ceil, axes)
    f = plan.fused
    assert sliding.variant(f, "max") in ("max_doubled", "max_wide")
    assert f.params[sliding.P_LO_W] > 0 and f.params[sliding.P_HI_W] < f.params[sliding.P_OW]  # clipped windows
    assert f.params[sliding.P_PAD_W] == pads[-1][0]
    rng = np.random.default_rng(len(case))
    x = rng.integers(-50, 50, shape).astype(np.float32)
    w = axes[-1]
    ends = [slice(None)] * len(shape)
    for sl in (slice(0, 2), slice(-2, None)):  # the row's ends hold its largest and smallest values
        ends[w] = sl
        x[tuple(ends)] = rng.choice([1e6, -1e6], x[tuple(ends)].shape)
    one_row = all(kk == 1 for kk in k[:-1])
    if one_row:
        nan = rng.random(shape) < 0.03  # NaNs of many payloads: the first in a window wins
        x.view(np.uint32)[nan] = np.uint32(0x7FC00000) | rng.integers(1, 1 << 20, int(nan.sum()), dtype=np.uint32)
        x[rng.random(shape) < 0.1] = -0.0
        x[rng.random(shape) < 0.1] = 0.0
    for dtype in (np.float32, np.float64, np.int16):
        xd = x.astype(dtype) if dtype != np.int16 else np.nan_to_num(x, nan=7).clip(-30000, 30000).astype(dtype)
        got = poolkit.max_pool(xd, k, s, padding, dilation=d, ceil_mode=ceil, axes=axes)
        ref, _ = R.ref_max_pool(xd, k, s, pads, d, ceil, axes)
        if one_row:
            np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8),
                                          np.ascontiguousarray(ref).view(np.uint8))
        else:
            np.testing.assert_array_equal(got, ref)
    xf = np.nan_to_num(x, nan=3.0).astype(np.float64)
    if d == 1 or (isinstance(d, tuple) and set(d) == {1}):
        for cip in (True, False):
            got = poolkit.avg_pool(xf, k, s, padding, ceil_mode=ceil, count_include_pad=cip, axes=axes)
            np.testing.assert_allclose(got, R.ref_avg_pool(xf, k, s, pads, 1, ceil, axes, count_include_pad=cip),
                                       rtol=1e-12, atol=1e-9)
        zeros = np.full(shape, -0.0)
        got = poolkit.avg_pool(zeros, k, s, padding, ceil_mode=ceil, count_include_pad=False, axes=axes)
        assert np.signbit(got).all(), "a window of -0.0 padded with +0.0 would sum to +0.0"


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 9), st.integers(1, 12), st.integers(1, 12)),
       st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
       st.integers(1, 3), st.booleans(), st.integers(0, 2**31 - 1))
def test_fused_3d_matches_general_path(dims, k, s, channels_last, seed):
    rng = np.random.default_rng(seed)
    shape, axes = ((2,) + dims + (3,), (1, 2, 3)) if channels_last else ((2, 3) + dims, (2, 3, 4))
    plan = _plan_or_none(shape, k, s, "same", 1, False, axes)
    if plan is None:
        return
    x = rng.integers(-3, 4, shape).astype(np.float64)
    out, idx = poolkit.max_pool(x, k, s, "same", axes=axes, return_indices=True)
    ref, ref_idx = _general_max(x, plan, True)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(poolkit.avg_pool(x, k, s, "same", axes=axes), _general_avg(x, plan), rtol=1e-12)


@pytest.mark.parametrize("kw,sw", [(2, 2), (3, 2), (2, 1), (3, 1), (4, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.bool_])
def test_one_pass_small_windows(kw, sw, dtype):
    """The literal one-pass loops for 2 or 3 taps at stride 1 or 2, or 4 at stride 4, along W (NCHW
    rows), and the two-row pass of unpadded 2x2 windows, against the general path: edge windows on
    both sides, ties, NaN first and last in a window, odd widths."""
    rng = np.random.default_rng(kw * 10 + sw)
    shape = (2, 3, 7, 29)
    if dtype == np.bool_:
        x = rng.random(shape) < 0.5
    else:
        x = rng.integers(0, 4, shape).astype(dtype)  # many ties
    if dtype in (np.float32, np.float64):
        x[0, 0, :, 0] = np.nan   # first tap of the first window
        x[0, 1, 2, 5] = np.nan
        x[1, 2, 3, 6] = np.nan   # two NaN in one window: the first wins
    for pad in ((kw // 2, kw // 2) if kw < 4 else (0, 2), 0, "same"):  # (rows, columns) padding
        plan = geo.make_plan(shape, (2, kw), (1, sw), pad, 1, False, (2, 3))
        # unpadded 2x2 windows are all full: the two-row pass (pairs) makes those
        expected = f"pairs_s{sw}" if kw == 2 and pad == 0 else f"small_k{kw}s{sw}"
        assert sliding.variant(plan.fused, "max") == f"max_{expected}"
        out, idx = poolkit.max_pool(x, (2, kw), (1, sw), pad, axes=(2, 3), return_indices=True)
        ref, ref_idx = _general_max(x, plan, True)
        assert out.dtype == x.dtype
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(poolkit.max_pool(x, (2, kw), (1, sw), pad, axes=(2, 3)), ref)
        if dtype != np.bool_:
            xf = np.nan_to_num(x.astype(np.float64))
            got = poolkit.avg_pool(xf, (2, kw), (1, sw), pad, axes=(2, 3))
            np.testing.assert_allclose(got, _general_avg(xf, plan), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("k, s", [(2, 2), (3, 2), (2, 1), (3, 1), (4, 4)])
@pytest.mark.parametrize("pad", [0, 1])
def test_one_row_sums_read_in_place_with_the_buffered_bits(k, s, pad):
    """1-D averages (the line variants) read their windows from the input in place; each is still
    summed in float64 in tap order, as the row buffer's small variant sums it: the same bits as that
    kernel run on the same arguments, and (unpadded) as that float64 sum written out, with
    magnitudes so far apart that any other order of additions would show."""
    rng = np.random.default_rng(10 * k + s + pad)
    mags = np.array([1e20, 1.0, 1e-10, 3.0, 7e7])
    x = (rng.choice(mags, size=(3, 4, 41)) * rng.choice([-1.0, 1.0], size=(3, 4, 41))).astype(np.float32)
    plan = geo.make_plan(x.shape, (k,), s, pad, 1, False, (2,))
    f = plan.fused
    assert sliding.variant(f, "sum") == f"sum_line_k{k}s{s}"
    got = poolkit.avg_pool(x, (k,), s, pad)
    buffered = np.empty(f.out4, np.float32)
    buffered_name = f"sum_small_k{k}s{s}"
    work = np.empty(sliding.work_size(buffered_name, f.in4, f.out4, f.params), np.float64)
    getattr(sliding, buffered_name)(x.reshape(f.in4), f.tables, f.params, f.divisors(True, None), buffered,
                                            work, 0, math.prod(f.out4[:3]))
    np.testing.assert_array_equal(got, buffered.reshape(got.shape))
    if pad == 0:
        xd = x.astype(np.float64)
        n = got.shape[-1]
        acc = xd[..., 0:s * (n - 1) + 1:s]
        for j in range(1, k):
            acc = acc + xd[..., j:j + s * (n - 1) + 1:s]
        np.testing.assert_array_equal(got, (acc * (1.0 / k)).astype(np.float32))


# rows of 1 to 17 outputs: the plain loop (under 4), one or more 4-output vectors (4-7), 8-output
# vectors ending on an overlapping one; H odd finds the rows plane by plane
TWO_BY_TWO_SHAPES = [(4, 6, 14, 14), (2, 3, 8, 56), (3, 2, 6, 9), (2, 3, 7, 10), (2, 3, 4, 2), (2, 3, 4, 6),
                     (2, 3, 4, 16), (2, 3, 4, 18), (2, 3, 4, 32), (2, 3, 4, 34), (2, 3, 5, 30)]


@pytest.mark.parametrize("acc", ["float64", "float32"])
@pytest.mark.parametrize("shape", TWO_BY_TWO_SHAPES)
def test_two_by_two_windows_sum_rows_first_then_taps(shape, acc):
    """2x2 windows are read straight from their two input rows (no row buffer); each float32
    average is still summed in ``acc`` as the buffered path sums it -- the two rows at each tap,
    then the taps -- and scaled once in float64: the same bits, checked against that order
    written out.  At stride 2 rows of 4 outputs or more are made as LLVM vectors
    (``_runs.pair_sums``: 8 a call, or two calls of 4 for rows of 4 to 7)."""
    rng = np.random.default_rng(sum(shape))
    # magnitudes so far apart that float64 rounds a sum of them: the order of additions shows
    x = rng.choice(np.array([1e20, -1e20, 1.0, -3.0, 1e-10, 3e-38], np.float32), shape)
    w = x.astype(acc)
    for stride in (2, 1):
        h_out, w_out = (shape[2] - 2) // stride + 1, (shape[3] - 2) // stride + 1
        col = w[..., 0:stride * (h_out - 1) + 1:stride, :] + w[..., 1:stride * (h_out - 1) + 2:stride, :]  # rows
        taps = col[..., 0:stride * (w_out - 1) + 1:stride] + col[..., 1:stride * (w_out - 1) + 2:stride]
        ref = (taps.astype(np.float64) * 0.25).astype(np.float32)
        got = poolkit.avg_pool(x, (2, 2), stride, axes=(2, 3), acc_dtype=acc)
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("k", [2, 3])
def test_channels_last_sums_go_straight_into_the_output_with_the_row_bits(k):
    """Channels-last 2x2 and 3x3 averages scale their full windows' float64 sums straight into the
    output: each window still summed row by row, tap by tap, and scaled by (1 * 1/k) * 1/k, as the
    float64 row they replaced did -- checked bit for bit against that order written out, on
    magnitudes so far apart that float64 rounds their sums."""
    rng = np.random.default_rng(k)
    shape = (2, 4 * k + 1, 3 * k + 2, 5)
    x = rng.choice(np.array([1e20, -1e20, 1.0, -3.0, 1e-10], np.float32), shape)
    plan = geo.make_plan(shape, (k, k), k, 0, 1, False, (1, 2))
    assert sliding.variant(plan.fused, "sum") == f"sum_inner{k}"
    w = x.astype(np.float64)
    h_out, w_out = (shape[1] - k) // k + 1, (shape[2] - k) // k + 1
    acc = np.zeros((shape[0], h_out, w_out, shape[3]))
    first = True
    for r in range(k):  # rows, then taps, in order
        for j in range(k):
            tap = w[:, r:r + k * (h_out - 1) + 1:k, j:j + k * (w_out - 1) + 1:k, :]
            acc = tap.copy() if first else acc + tap
            first = False
    ref = (acc * ((1.0 * (1.0 / k)) * (1.0 / k))).astype(np.float32)
    got = poolkit.avg_pool(x, (k, k), k, axes=(1, 2))
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("op", ["max", "sum"])
@pytest.mark.parametrize("shape", [(3, 5, 14, 14), (3, 5, 15, 14), (2, 3, 6, 9)])
def test_two_by_two_stride_two_rows_in_any_chunks(op, shape):
    """The 2x2 stride-2 kernel run over chunks of output rows that start and end anywhere, as the
    threads split a call, against the oracle.  When the windows tile each plane's rows (H even)
    output row t reads its input rows from t * 2 * W on; with H odd the plane's last row is in no
    window and the rows are found plane by plane."""
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-3, 4, shape).astype(np.float32)
    x[rng.random(shape) < 0.05] = np.nan
    plan = geo.make_plan(shape, (2, 2), 2, 0, 1, False, (2, 3))
    f = plan.fused
    name = sliding.variant(f, op)
    assert name == f"{op}_pairs_s2"
    kern = getattr(sliding, name)
    rows = math.prod(f.out4[:3])
    out = np.full(f.out4, -7.0, np.float32)
    divs = f.divisors(True, None) if op == "sum" else f.divisors(None, None)
    work = np.empty(0, np.float64 if op == "sum" else np.float32)
    bounds = [0, 1, 4, 5, 11, rows - 3, rows]
    for t0, t1 in zip(bounds[:-1], bounds[1:]):
        kern(x.reshape(f.in4), f.tables, f.params, divs, out, work, t0, t1)
    got = out.reshape(plan.out_shape)
    if op == "max":
        ref, _ = R.ref_max_pool(x, (2, 2), (2, 2), [(0, 0), (0, 0)], 1, False, (2, 3))
    else:
        ref = R.ref_avg_pool(x.astype(np.float64), (2, 2), (2, 2), [(0, 0), (0, 0)], 1, False, (2, 3),
                             count_include_pad=True).astype(np.float32)
    np.testing.assert_array_equal(got, ref)


VARIANT_GEOMETRY = {kind: ((2, 3) + shape[2:] if axes[0] == 2 else (2,) + shape[1:3] + (3,), k, s, p, axes)
                    for kind, (shape, k, s, p, axes) in _warmup.VARIANT_GEOMETRY.items()}


def _forward_kernels():
    from poolkit._kernels import sliding
    others = ("max_indices", "max2", "max_num", "sum_adjoint")
    return sorted(n for n in dir(sliding) if n.split("_")[0] in ("max", "sum") and n not in others
                  and hasattr(getattr(sliding, n), "py_func"))


def test_every_forward_variant_has_a_geometry():
    """Every forward kernel is a variant a warm-up geometry selects, or the plane kernel the engine
    runs for one instead (the volume kernel for the warm-up's 3-D geometry)."""
    names = {f"max_{kind}" for kind in VARIANT_GEOMETRY} | {f"sum_{kind}" for kind in VARIANT_GEOMETRY}
    for shape, k, s, pad, axes in [*VARIANT_GEOMETRY.values(), *_warmup.TWIN_GEOMETRY.values()]:
        f = geo.make_plan(shape, k, s, pad, 1, False, axes).fused
        names |= {sliding.plane(f, op) for op in ("max", "sum")} - {None}
    assert sorted(names) == _forward_kernels()


@pytest.mark.parametrize("kind", sorted(VARIANT_GEOMETRY))
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_forward_variant_matches_oracle(kind, dtype):
    """Each variant, selected by its geometry, against the slow NumPy oracle: max (NaN, ties, edges)
    and average (both divisor rules)."""
    from poolkit._kernels import sliding
    shape, k, s, pad, axes = VARIANT_GEOMETRY[kind]
    plan = geo.make_plan(shape, k, s, pad, 1, False, axes)
    assert sliding.variant(plan.fused, "max") == f"max_{kind}"
    assert sliding.variant(plan.fused, "sum") == f"sum_{kind}"
    rng = np.random.default_rng(len(kind))
    x = rng.integers(0, 6, shape).astype(dtype)  # many ties
    if dtype == np.float32:
        x[rng.random(shape) < 0.03] = np.nan
    pads = [tuple(p) for p in plan.pads]
    out, idx = poolkit.max_pool(x, k, s, pad, axes=axes, return_indices=True)
    ref, ref_idx = R.ref_max_pool(x, k, s, pads, 1, False, axes)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(poolkit.max_pool(x, k, s, pad, axes=axes), ref)
    np.testing.assert_array_equal(idx, ref_idx)
    xf = np.nan_to_num(x.astype(np.float64))
    for cip in (True, False):
        np.testing.assert_allclose(poolkit.avg_pool(xf, k, s, pad, axes=axes, count_include_pad=cip),
                                   R.ref_avg_pool(xf, k, s, pads, 1, False, axes, count_include_pad=cip),
                                   rtol=1e-12)


#: (shape, kernel, stride, padding, axes) of calls whose max variant has a fastmax twin: the
#: warm-up's geometries, and 3-D and dilated windows, whose rows are not adjacent input rows.
FASTMAX_GEOMETRY = {
    **{kind: VARIANT_GEOMETRY[kind] for kind in ("small_k3s2", "small_k3s1", "pairs_s1", "taps1", "taps2",
                                                 "taps4", "taps", "inner", "inner3")},
    "small_k3s2 3-D": ((2, 2, 5, 6, 7), (3, 3, 3), 2, 1, (2, 3, 4)),
    # the plane twin (VARIANT_GEOMETRY's small_k3s2) with rows dilated, and with windows of 1 and
    # 2 rows; the row twin for windows 4 rows high and for planes beyond PLANE_SCAN_BYTES
    # (test_fastmax_plane_limit)
    "small_k3s2 dilated rows": ((2, 2, 11, 9), (3, 3), 2, 1, (2, 3), (2, 1)),
    "small_k3s2 two rows": ((2, 2, 9, 9), (2, 3), 2, 1, (2, 3)),
    # rows long enough for the plane twin's vectors (float32 rows and taps 8 at a time, the last
    # overlapping; 4 at a time, twice, for rows of 4 to 7: rows of 6, taps of 6)
    "small_k3s2 wide rows": ((2, 2, 9, 70), (3, 3), 2, 1, (2, 3)),
    "small_k3s2 rows of 6": ((2, 2, 7, 6), (3, 3), 2, 1, (2, 3)),
    "small_k3s2 taps of 6": ((2, 2, 7, 14), (3, 3), 2, 1, (2, 3)),
    "small_k3s2 3-D wide rows": ((2, 2, 5, 6, 40), (3, 3, 3), 2, 1, (2, 3, 4)),
    "small_k3s2 4 rows": _warmup.TWIN_GEOMETRY["small_k3s2 rows"],
    "taps dilated": ((2, 2, 11, 9), (3, 3), 3, 1, (2, 3), (2, 1)),
    "wide": ((1, 2, 14, 16), (9, 9), 1, 4, (2, 3)),
    "wide, dilated along W": ((1, 2, 14, 20), (9, 5), 1, 4, (2, 3), (1, 2)),
}


def _fastmax_case(name):
    shape, k, s, pad, axes, *dil = FASTMAX_GEOMETRY[name]
    dilation = dil[0] if dil else 1
    plan = geo.make_plan(shape, k, s, pad, dilation, False, axes)
    return shape, k, s, pad, axes, dilation, plan


def test_every_fastmax_twin_has_a_geometry():
    twins = sorted(n for n in dir(sliding) if n.startswith("fastmax_"))
    covered = set()
    for name in FASTMAX_GEOMETRY:
        *_, plan = _fastmax_case(name)
        twin = sliding.twin(plan.fused, 4)
        assert twin is not None and hasattr(sliding, twin), name
        covered.add(twin)
    assert sorted(covered) == twins


def test_fastmax_plane_limit():
    """The plane twin serves 3x3 s2 windows over planes of at most PLANE_SCAN_BYTES, the volume
    twin such windows at most 3 deep over those planes; larger planes, deeper windows and windows
    of 4 rows take the row twin."""
    def twin(shape, k=(3, 3), itemsize=4, axes=(2, 3)):
        return sliding.twin(geo.make_plan(shape, k, 2, 1, 1, False, axes).fused, itemsize)

    side = int((sliding.PLANE_SCAN_BYTES // 4) ** 0.5)
    assert twin((2, 3, side, side)) == "fastmax_plane_k3s2"
    assert twin((2, 3, side + 1, side)) == "fastmax_small_k3s2"
    assert twin((2, 3, side, side), itemsize=8) == "fastmax_small_k3s2"
    assert twin((2, 3, 4, 9, 9), (3, 3, 3), axes=(2, 3, 4)) == "fastmax_volume_k3s2"
    assert twin((2, 3, 4, side + 1, side), (3, 3, 3), axes=(2, 3, 4)) == "fastmax_small_k3s2"
    assert twin((2, 3, 9, 9, 9), (4, 3, 3), axes=(2, 3, 4)) == "fastmax_small_k3s2"
    assert twin((2, 3, 9, 9), (4, 3)) == "fastmax_small_k3s2"


@pytest.mark.parametrize("name", sorted(FASTMAX_GEOMETRY))
def test_fastmax_twins_hand_over_at_the_first_nan_row(name):
    """A fastmax twin combines without max2's NaN rules and stops before the first output row whose
    windows' input rows may hold a NaN.  With one NaN (a distinctive payload) in each input row in
    turn, among many ties: the call gives the oracle's bits, the twin alone stops at a row no later
    than the first one that reads the NaN, and every row it made is the exact variant's; without a
    NaN it makes every row, bit for bit the exact variant's."""
    shape, k, s, pad, axes, dilation, plan = _fastmax_case(name)
    f = plan.fused
    exact = getattr(sliding, sliding.variant(f, "max"))
    fast = getattr(sliding, sliding.twin(f, 4))
    rng = np.random.default_rng(len(name))
    x = rng.integers(-3, 3, shape).astype(np.float32)
    x[x == 0] = rng.choice(np.array([0.0, -0.0], np.float32), size=int((x == 0).sum()))  # tied signed zeros
    rows = math.prod(f.out4[:3])
    pads = [tuple(p) for p in plan.pads]

    def both(xs):
        a, b = np.full(f.out4, 7, np.float32), np.full(f.out4, 7, np.float32)
        work = np.empty(sliding.work_size(exact.__name__, f.in4, f.out4, f.params), np.float32)
        exact(xs.reshape(f.in4), f.tables, f.params, f.divisors(None, None), a, work, 0, rows)
        t = fast(xs.reshape(f.in4), f.tables, f.params, f.divisors(None, None), b, work, 0, rows)
        return a.reshape(rows, -1), b.reshape(rows, -1), t

    a, b, t = both(x)
    if fast is sliding.fastmax_volume_k3s2:  # it also hands over at a -0.0 (x holds some)
        assert t < rows
        np.testing.assert_array_equal(a[:t].view(np.uint32), b[:t].view(np.uint32))
        a, b, t = both(x + np.float32(0))  # every zero +0.0
    assert t == rows
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    nan = np.array(0x7FC0_1234, np.uint32).view(np.float32)
    ref_clean = R.ref_max_pool(x, k, s, pads, dilation, False, axes)[0]
    in_rows = x.reshape(-1, x.shape[-1]).shape[0]
    for r in range(in_rows):
        xn = x.copy()
        xn.reshape(in_rows, -1)[r, rng.integers(x.shape[-1])] = nan
        got = poolkit.max_pool(xn, k, s, pad, dilation=dilation, axes=axes)
        ref = R.ref_max_pool(xn, k, s, pads, dilation, False, axes)[0]
        np.testing.assert_array_equal(got, ref)  # (the oracle's ties of signed zeros go row-major)
        np.testing.assert_array_equal(got[np.isnan(got)].view(np.uint32), ref[np.isnan(ref)].view(np.uint32))
        a, b, t = both(xn)
        first_changed = np.flatnonzero(np.isnan(a).any(axis=1))
        if first_changed.size:  # (a NaN in a row no window reads may stop the twin, or not)
            assert t <= first_changed[0]
        np.testing.assert_array_equal(a[:t].view(np.uint32), b[:t].view(np.uint32))
        assert (ref_clean.reshape(rows, -1)[:t] == b[:t]).all()


VOLUMES = [((2, 3, 9, 10, 11), 3, 2, 1), ((3, 2, 8, 9, 13), (2, 3, 3), (2, 1, 2), (0, 1, 1)),
           ((2, 2, 7, 7, 9), (3, 2, 3), 2, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, s, pad", VOLUMES)
def test_fastmax_volume_signed_zeros(shape, k, s, pad, dtype):
    """The volume twin reorders each window's taps (slices first), which changes a maximum's bits
    only where the taps hold a NaN or both zeros, so it hands over at a -0.0 too: values of -3..0
    with zeros of both signs, so that many windows' maximum is a tie of 0.0 and -0.0, give the exact
    variant's bits through the call; without -0.0 the twin alone makes every row, the same bits;
    and it hands over at one NaN of either sign and the smallest payload (its check reads bits)."""
    plan = geo.make_plan(shape, k, s, pad, 1, False, (2, 3, 4))
    f = plan.fused
    size = np.dtype(dtype).itemsize
    assert sliding.twin(f, size) == "fastmax_volume_k3s2" and sliding.variant(f, "max") == "max_small_k3s2"
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 1, shape).astype(dtype)
    x[x == 0] = rng.choice(np.array([0.0, -0.0], dtype), size=int((x == 0).sum()))
    rows = math.prod(f.out4[:3])
    work = np.empty(sliding.work_size("max_small_k3s2", f.in4, f.out4, f.params), dtype)
    bits = {4: np.uint32, 8: np.uint64}[size]

    def run(kern, xs):
        out = np.full(f.out4, 7, dtype)
        t = kern(xs.reshape(f.in4), f.tables, f.params, f.divisors(None, None), out, work, 0, rows)
        return out.reshape(-1).view(bits), t

    exact = run(sliding.max_small_k3s2, x)[0]
    zeros = exact[(exact << bits(1)) == 0]
    assert zeros.size > 10 and (zeros == 0).any() and (zeros != 0).any()  # ties of both signs won
    got = poolkit.max_pool(x, k, s, pad, axes=(2, 3, 4))
    np.testing.assert_array_equal(got.reshape(-1).view(bits), exact)
    clean = x + dtype(0)  # every zero +0.0
    fast, t = run(sliding.fastmax_volume_k3s2, clean)
    assert t == rows
    np.testing.assert_array_equal(fast, run(sliding.max_small_k3s2, clean)[0])
    inf = np.array(np.inf, dtype).view(bits)
    nans = np.array([inf + bits(1), inf + bits(1) | ~(~bits(0) >> bits(1))], bits).view(dtype)  # payload 1, +-
    per_row = exact.size // rows
    for d in range(shape[2]):  # the specials in each D slice of the first volume in turn (each tap's role)
        for special in ("NaN", "-NaN", "-0.0"):
            xs = clean.copy()
            plane = xs[0, 0, d]
            if special == "-0.0":
                plane[plane == 0] = -0.0
            else:
                plane.reshape(-1)[rng.integers(plane.size)] = nans[int(special == "-NaN")]
            want = run(sliding.max_small_k3s2, xs)[0]
            fast, t = run(sliding.fastmax_volume_k3s2, xs)
            assert t < rows  # handed over, and every row made before is the exact variant's
            np.testing.assert_array_equal(fast[:t * per_row], want[:t * per_row])
            got = poolkit.max_pool(xs, k, s, pad, axes=(2, 3, 4))
            np.testing.assert_array_equal(got.reshape(-1).view(bits), want)


def test_integer_twins_are_chosen_by_kind():
    """Integers have no NaN, so their maxima take the plane and volume twins (the same results in
    another order of work), uint8 2x2 stride-2 windows the byte-pair kernel, and no other twin:
    int8 and uint16 keep max_pairs_s2, and float32's row twins are not an integer's."""
    def twin(shape, k, s, pad, itemsize, kind, axes=(2, 3)):
        return sliding.twin(geo.make_plan(shape, k, s, pad, 1, False, axes).fused, itemsize, kind)

    pairs = ((2, 3, 8, 10), (2, 2), 2, 0)
    assert twin(*pairs, 1, "u") == "bytemax_pairs_s2"
    assert twin(*pairs, 1, "i") is None and twin(*pairs, 2, "u") is None and twin(*pairs, 4, "f") is None
    assert twin((2, 3, 9, 9), (3, 3), 2, 1, 1, "u") == twin((2, 3, 9, 9), (3, 3), 2, 1, 8, "i") == "fastmax_plane_k3s2"
    assert twin((2, 3, 4, 9, 9), (3, 3, 3), 2, 1, 2, "i", (2, 3, 4)) == "fastmax_volume_k3s2"
    assert twin((2, 3, 9, 9), (4, 3), 2, 1, 4, "f") == "fastmax_small_k3s2"
    assert twin((2, 3, 9, 9), (4, 3), 2, 1, 4, "i") is None


def test_warmup_twins_take_the_dtype_they_prepare():
    """The warm-up calls each twin with the dtype the engine will give it: integers their own (the
    int16 keys of float16 maxima included), float16 float32; float16's warm-up adds the int16
    maxima and twins of its keys."""
    for dtype, kernel_dtype in [(np.int16, np.int16), (np.uint8, np.uint8), (np.float16, np.float32),
                                (np.dtype(">i4"), np.int32)]:
        call = _warmup._twin("small_k3s2", np.dtype(dtype))
        assert call is not None and call.args[0].dtype == kernel_dtype
    labels = [label for label, _ in _warmup._jobs(np.dtype(np.float16))]
    assert "half_keys" in labels
    assert {"max_small_k3s2 (int16 keys)", "fastmax_small_k3s2 (int16 keys)",
            "fastmax_small_k3s2 volume (int16 keys)"} <= set(labels)


# Integer maxima through the integer twins (byte pairs, plane, volume) and the exact variants they
# hand nothing to: the oracle's values for every integer dtype, from its lowest to its highest value
# (ties everywhere: the values are drawn from a few), on two threads with chunks of many rows.
INT_MAXIMA = [
    ((16, 24, 40, 38), (2, 2), 2, 0, False),      # byte pairs, windows tiling the rows: 16-byte vectors
    ((16, 24, 40, 60), (2, 2), 2, 0, False),      # rows of 30: 16-byte vectors, the last overlapping
    ((16, 24, 40, 24), (2, 2), 2, 0, False),      # rows of 12: 8-byte vectors
    ((16, 24, 40, 14), (2, 2), 2, 0, False),      # rows of 7: pairs loaded as 16-bit integers
    ((16, 24, 41, 39), (2, 2), 2, 0, False),      # odd sizes: the last row and column dropped
    ((16, 24, 41, 39), (2, 2), 2, 0, True),       # ceil mode: partial windows, the exact variant
    ((16, 24, 40, 38), (3, 3), 2, 1, False),      # the plane twin
    ((16, 24, 12, 70), (3, 3), 2, 1, False),      # the plane twin, rows of 70: its rows and taps as vectors
    ((4, 6, 9, 20, 22), (3, 3, 3), 2, 1, False),  # the volume twin
]


@pytest.mark.parametrize("shape, k, s, pad, ceil", INT_MAXIMA)
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32, np.int64, np.uint64])
def test_integer_maxima_through_their_twins(shape, k, s, pad, ceil, dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(len(shape) + np.dtype(dtype).itemsize)
    values = np.array([info.min, info.min + 1, 0, 1, 7, info.max - 1, info.max], dtype)
    x = values[rng.integers(0, values.size, shape)]
    axes = tuple(range(len(shape) - len(k), len(shape)))
    before = poolkit.get_num_threads()
    poolkit.set_num_threads(2)
    try:
        got = poolkit.max_pool(x, k, s, pad, ceil_mode=ceil, axes=axes)
    finally:
        poolkit.set_num_threads(before)
    pads = [tuple(p) for p in geo.make_plan(shape, k, s, pad, 1, ceil, axes).pads]
    want = R.ref_max_pool(x, k, s, pads, 1, ceil, axes)[0]
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_plane_kernel_selection():
    """sum_plane_k3s2 serves the sums of 2-D windows 3 wide at stride 2 and at most 3 rows high,
    inner 1, whatever the plane's size, sum_volume_k3s2 those of such 3-D windows at most 3 deep
    over planes of at most 32768 float64 sums; deeper windows, larger planes, windows of 4 rows,
    channels-last windows and maxima keep their variant."""
    def plane(shape, k=(3, 3), axes=(2, 3), op="sum"):
        return sliding.plane(geo.make_plan(shape, k, 2, 1, 1, False, axes).fused, op)

    assert plane((2, 3, 9, 9)) == plane((1, 1, 700, 700)) == plane((2, 3, 9, 9), (2, 3)) == "sum_plane_k3s2"
    assert plane((2, 3, 9, 9), op="max") is None
    assert plane((2, 3, 9, 9), (4, 3)) is None
    assert plane((2, 3, 9, 9), (3, 2)) is None
    volume = (3, 3, 3), (2, 3, 4)
    assert plane((2, 3, 4, 9, 9), *volume) == plane((1, 1, 2, 128, 256), *volume) == "sum_volume_k3s2"
    assert plane((2, 3, 4, 9, 9), (2, 2, 3), (2, 3, 4)) == "sum_volume_k3s2"
    assert plane((1, 1, 2, 129, 256), *volume) is None  # 33024 sums: 258 KiB
    assert plane((2, 3, 9, 9, 9), (4, 3, 3), (2, 3, 4)) is None
    assert plane((2, 3, 4, 9, 9), *volume, op="max") is None
    assert plane((2, 9, 9, 3), axes=(1, 2)) is None


@settings(max_examples=160, deadline=None)
@given(st.integers(0, 7), st.integers(1, 30), st.integers(1, 30), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 1), st.integers(0, 1), st.integers(0, 1), st.integers(1, 2), st.integers(1, 2),
       st.booleans(), st.sampled_from([(True, None), (False, None), (True, 5)]),
       st.sampled_from([np.float32, np.float64, np.int16]), st.sampled_from([np.float64, np.float32]),
       st.integers(0, 2**31 - 1))
def test_plane_sums_are_the_variants_bits(D, H, W, kd, kh, sd, pd, ph, pw, dd, dh, ceil, divisor, dtype, acc, seed):
    """sum_plane_k3s2 (2-D planes, D = 0 here) and sum_volume_k3s2 (D slices) write the bits of
    sum_small_k3s2, the variant they stand in for, over chunks of output rows split anywhere (in a
    slab's rows too): values spread over 60 binades (float sums that depend on the order of their
    additions), windows 1-3 deep at stride 1 or 2, dilated and padded along D, both divisor rules
    and an override, float64 and float32 sums."""
    shape = (2, 3, D, H, W) if D else (2, 3, H, W)
    k, pads, dil = ((kd, kh, 3), [(pd, pd), (ph, ph), (pw, pw)], (dd, dh, 1)) if D else ((kh, 3), [(ph, ph), (pw, pw)],
                                                                                      (dh, 1))
    try:
        plan = geo.make_plan(shape, k, (sd, 2, 2) if D else 2, pads, dil, ceil, (2, 3, 4) if D else (2, 3))
    except ValueError:
        return
    f = plan.fused
    name = None if f is None else sliding.plane(f, "sum")
    if name is None:
        return
    assert name == ("sum_volume_k3s2" if f.in4[1] > 1 else "sum_plane_k3s2")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-30, 30, shape))
    x = (x * 1000).astype(dtype) if dtype == np.int16 else x.astype(dtype)
    divs = f.divisors(*divisor)
    rows = math.prod(f.out4[:3])
    size = sliding.work_size("sum_small_k3s2", f.in4, f.out4, f.params)
    out_dtype = np.float64 if dtype == np.int16 else dtype
    want, got = np.full(f.out4, 7, out_dtype), np.full(f.out4, -7, out_dtype)
    sliding.sum_small_k3s2(x.reshape(f.in4), f.tables, f.params, divs, want, np.empty(size, acc), 0, rows)
    cut = int(rng.integers(0, rows + 1))
    for t0, t1 in ((0, cut), (cut, rows)):
        getattr(sliding, name)(x.reshape(f.in4), f.tables, f.params, divs, got, np.empty(size, acc), t0, t1)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_plane_sums_by_hand():
    """A 3x3 s2 p1 average of a 5x5 plane counted by hand (count_include_pad: every window / 9;
    without it, by the taps inside), through the public call, which runs sum_plane_k3s2."""
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    assert sliding.plane(geo.make_plan(x.shape, (3, 3), 2, 1, 1, False, (2, 3)).fused, "sum") == "sum_plane_k3s2"
    # windows: rows {0,1} / {1,2,3} / {3,4} by columns {0,1} / {1,2,3} / {3,4}
    sums = np.array([[0 + 1 + 5 + 6, 1 + 2 + 3 + 6 + 7 + 8, 3 + 4 + 8 + 9],
                     [5 + 6 + 10 + 11 + 15 + 16, 6 + 7 + 8 + 11 + 12 + 13 + 16 + 17 + 18, 8 + 9 + 13 + 14 + 18 + 19],
                     [15 + 16 + 20 + 21, 16 + 17 + 18 + 21 + 22 + 23, 18 + 19 + 23 + 24]], np.float64)
    counts = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    np.testing.assert_array_equal(poolkit.avg_pool(x, (3, 3), 2, 1)[0, 0], (sums / 9).astype(np.float32))
    np.testing.assert_array_equal(poolkit.avg_pool(x, (3, 3), 2, 1, count_include_pad=False)[0, 0],
                                  (sums / counts).astype(np.float32))


def test_volume_sums_by_hand():
    """A 3x3x3 s2 p1 average of a (3, 3, 5) volume with the windows written out by hand, through
    the public call, which runs sum_volume_k3s2: along D and H the windows hold {0, 1} and {1, 2},
    along W {0, 1}, {1, 2, 3} and {3, 4}; the divisor is 27 (count_include_pad) or the cells."""
    x = np.arange(45, dtype=np.float32).reshape(1, 1, 3, 3, 5)
    assert sliding.plane(geo.make_plan(x.shape, (3, 3, 3), 2, 1, 1, False, (2, 3, 4)).fused, "sum") == "sum_volume_k3s2"
    dh, w = [slice(0, 2), slice(1, 3)], [slice(0, 2), slice(1, 4), slice(3, 5)]
    sums = np.array([[[x[0, 0, a, b, c].astype(np.float64).sum() for c in w] for b in dh] for a in dh])
    cells = np.array([[[2 * 2 * (c.stop - c.start) for c in w] for _ in dh] for _ in dh])
    assert sums[0, 0, 0] == 0 + 1 + 5 + 6 + 15 + 16 + 20 + 21 and cells[1, 1, 1] == 12
    np.testing.assert_array_equal(poolkit.avg_pool(x, (3, 3, 3), 2, 1)[0, 0], (sums / 27).astype(np.float32))
    np.testing.assert_array_equal(poolkit.avg_pool(x, (3, 3, 3), 2, 1, count_include_pad=False)[0, 0],
                                  (sums / cells).astype(np.float32))


def test_fastmax_hands_over_inside_threaded_chunks():
    """A call split over threads: each chunk's twin stops at its own first NaN row and the exact
    variant finishes that chunk; the result is the exact variant's over the whole array, bit for
    bit, wherever the NaN falls."""
    x = np.random.default_rng(5).standard_normal((4, 16, 40, 40)).astype(np.float32)
    plan = geo.make_plan(x.shape, (3, 3), 2, 1, 1, False, (2, 3))
    f = plan.fused
    exact = getattr(sliding, sliding.variant(f, "max"))
    assert sliding.twin(f, 4) == "fastmax_plane_k3s2"
    before = E.get_num_threads()
    E.set_num_threads(2)
    try:
        for plane, row in ((0, 0), (13, 20), (37, 39), (63, 17)):
            xn = x.copy()
            xn.reshape(64, 40, 40)[plane, row, 3] = np.nan
            want = np.empty(f.out4, np.float32)
            work = np.empty(sliding.work_size(exact.__name__, f.in4, f.out4, f.params), np.float32)
            exact(xn.reshape(f.in4), f.tables, f.params, f.divisors(None, None), want, work, 0, math.prod(f.out4[:3]))
            got = poolkit.max_pool(xn, (3, 3), 2, 1)
            np.testing.assert_array_equal(got.view(np.uint32), want.reshape(got.shape).view(np.uint32))
            # windows start at 2 * o - 1 and take 3: an odd row or column below 39 lies in two
            assert np.isnan(got).sum() == (2 if row % 2 == 1 and row < 39 else 1) * 2  # (column 3: two)
    finally:
        E.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# the multi-threaded scatter (max_pool_backward, max_unpool on large inputs)
# ---------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("length", [1, 7, 15, 16, 17, 49, 200])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.bool_])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_whole_axis_reductions(length, dtype, layout):
    """Global pooling's own kernels (one run per plane, eight lanes) against plain NumPy: maxima
    exactly, NaN anywhere in a run giving the run's first NaN, sums to float64 rounding."""
    rng = np.random.default_rng(length)
    x = rng.integers(0, 50, (3, 5, length)).astype(dtype) if dtype != np.bool_ else rng.random((3, 5, length)) < 0.3
    if np.dtype(dtype).kind == "f":
        x[0, 1, length // 2] = np.nan
        x[2, 4, -1] = np.float64(np.nan).astype(dtype)
        x[1, 2, 0] = -np.inf
    if layout == "nhwc":
        x = np.ascontiguousarray(x.transpose(0, 2, 1))  # (N, L, C): the pooled axis is 1
        axes, red = (1,), 1
    else:
        axes, red = (2,), 2
    got = poolkit.global_max_pool(x, axes=axes)
    np.testing.assert_array_equal(got, x.max(axis=red))
    assert got.dtype == x.dtype
    if dtype != np.bool_:
        xf = x.astype(np.float64)
        want = np.apply_along_axis(lambda r: np.nan if np.isnan(r).any() else math.fsum(r) / r.size, red, xf)
        avg = poolkit.global_avg_pool(x, axes=axes)
        np.testing.assert_allclose(avg, want.astype(avg.dtype), rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("length", [7, 8, 9, 15, 16, 17, 24, 31, 49, 64, 65])
def test_channels_first_float32_means_in_four_run_vectors(length):
    """The four-runs-at-once vector sums of float32 runs in float64 (``_runs.sum_runs4``): every
    run length around the 8-lane vector (whole vectors only, and every count of leftover
    elements), chunks starting anywhere, runs left over after the last block of four.  The values
    are multiples of 1/64 below 2**12, so every float64 sum is exact and each mean is the exact
    mean rounded once: equal bits, whatever the order of the additions."""
    rng = np.random.default_rng(length)
    runs = 23
    x = (rng.integers(-(1 << 18), 1 << 18, (runs, length, 1)) / 64).astype(np.float32)
    x[3, length // 2, 0] = np.nan  # a NaN in the first block of four
    x[9, 0, 0] = np.inf
    x[10, length - 1, 0] = -np.inf  # the run's last element: the overlapping load's new lane
    x[17, :, 0] = 0.0
    fsums = np.array([math.fsum(r) if np.isfinite(r).all() else r.sum() for r in x[:, :, 0].astype(np.float64)])
    exact = fsums / length
    for odt in (np.float32, np.float64):  # float64: a float16 input's means before narrowing
        want = exact.astype(odt)
        for t0, t1 in [(0, runs), (1, runs), (2, 7), (5, 5), (19, 23)]:
            out = np.full((runs, 1), -7.0, odt)
            K.axis.sum_whole(x, out, float(length), np.empty(1, np.float64), t0, t1)
            np.testing.assert_array_equal(out[t0:t1, 0], want[t0:t1])
            assert (out[:t0] == -7.0).all() and (out[t1:] == -7.0).all(), "wrote outside its chunk"
    sums = np.empty((runs, 1), np.float32)  # divisor 1.0: the sums themselves
    K.axis.sum_whole(x, sums, 1.0, np.empty(1, np.float64), 0, runs)
    np.testing.assert_array_equal(sums[:, 0], fsums.astype(np.float32))


@pytest.mark.parametrize("channels", [3, 63, 64, 100, 128, 200])
@pytest.mark.parametrize("rows", [1, 2, 4, 49])
def test_channels_last_float32_means_add_rows_in_order(channels, rows):
    """Channels-last global means of float32 in float64 (64 channels at a time in registers,
    ``_runs.sum_columns64``, the rest through the row buffer): each channel's rows added in row
    order starting from the first row, so bit for bit the sequential float64 sum -- here written
    out as whole-row NumPy additions -- divided once and rounded once.  A channel of -0.0 keeps
    its sign (the first row starts the sum, not +0.0), NaN and inf propagate."""
    rng = np.random.default_rng(channels * 100 + rows)
    x = rng.standard_normal((3, rows, channels)).astype(np.float32) * np.float32(1e3)
    x[1, :, 0] = -0.0
    x[2, rows - 1, channels - 1] = np.nan
    x[0, 0, channels // 2] = np.inf
    seq = x[:, 0].astype(np.float64)
    for r in range(1, rows):
        seq = seq + x[:, r]
    want = (seq / rows).astype(np.float32)
    got = poolkit.global_avg_pool(x, axes=(1,))
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[1, 0]), "the mean of -0.0 lost its sign"


def test_row_windows_by_hand():
    """Which windows hold each input row (the overlapping adjoint's gather): H = 5 with 3x3 s2 p1
    windows over rows [0, 1], [1, 3], [3, 4]; with a D axis of 3 and 2x2 s1 windows over D too."""
    f = geo.make_plan((2, 5, 4), (3, 3), 2, 1, 1, False, (1, 2)).fused
    np.testing.assert_array_equal(f.row_windows(), [0, 1, 3, 4, 6, 7] + [0, 0, 1, 1, 1, 2, 2])
    f = geo.make_plan((1, 3, 2, 4), (2, 2, 2), 1, 0, 1, False, (1, 2, 3)).fused  # OD = 2, OH = 1
    # rows d * 2 + h: (0, 0), (0, 1) in window od 0; (1, 0), (1, 1) in od 0 and 1; (2, *) in od 1
    np.testing.assert_array_equal(f.row_windows(), [0, 1, 2, 4, 6, 7, 8] + [0, 0, 0, 1, 0, 1, 1, 1])


@pytest.mark.parametrize("k, pad", [((3, 3), 1), ((3, 3), 0), ((2, 3), 1), ((3, 2), 1), ((2, 2), 0), ((5, 3), 1),
                                    ((3, 1), 0)])
@pytest.mark.parametrize("width", [9, 10])
def test_avg_backward_stride_two_against_the_oracle(k, pad, width):
    """The adjoint's stride-2 spreads (full windows of 1-3 taps in one pass over pairs) and its
    gather of overlapping rows (rows held by 1, 2 or 3 windows), NCHW and NHWC, against the oracle."""
    rng = np.random.default_rng(width + 10 * k[0] + k[1])
    for shape, axes in (((2, 3, 11, width), (2, 3)), ((2, 11, width, 3), (1, 2))):
        x = rng.standard_normal(shape)
        out_shape = poolkit.avg_pool(x, k, 2, pad, axes=axes).shape
        g = rng.standard_normal(out_shape)
        for cip in (True, False):
            got = poolkit.avg_pool_backward(g, x, k, 2, pad, axes=axes, count_include_pad=cip)
            want = R.ref_avg_pool_backward(g, x, k, 2, [(pad, pad)] * 2, 1, False, axes, cip)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
            got32 = poolkit.avg_pool_backward(g.astype(np.float32), x.astype(np.float32), k, 2, pad, axes=axes,
                                              count_include_pad=cip)
            np.testing.assert_allclose(got32, want, rtol=2e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# maxima combined into the row that holds them (_loops.rmw)
# --------------------------------------------------------------------------------------------

def _special_pairs(dtype, nans=True):
    """Every ordered pair (b, v) of zeros of both signs, infinities, numbers and (``nans``) NaNs of
    two payloads and both signs, repeated with an offset so that the loops' vector and remainder
    parts both see each pair."""
    if dtype == np.float32:
        nan = np.array([0x7FC0_0001, 0xFFC0_0002], np.uint32).view(np.float32)
    else:
        nan = np.array([0x7FF8_0000_0000_0001, 0xFFF8_0000_0000_0002], np.uint64).view(np.float64)
    vals = np.array([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf], dtype)
    if nans:
        vals = np.concatenate([vals, nan])
    b, v = (a.ravel() for a in np.meshgrid(vals, vals, indexing="ij"))
    return np.concatenate([b, b[3:], b[:3]]), np.concatenate([v, v[3:], v[:3]])


def _max2_by_hand(b, v):
    """max2's rule element by element, in Python: v replaces b when it is greater, or when it is
    the first NaN (b is a number); otherwise b, its own bits."""
    out = b.copy()
    for i in range(b.size):
        bi, vi = float(b[i]), float(v[i])
        if vi > bi or (math.isnan(vi) and not math.isnan(bi)):
            out[i] = v[i]
    return out


def _in_place_kernels():
    from numba import njit

    @njit(cache=False)
    def acc_max2(dst, src):
        loops.vacc(dst, 0, src, 0, dst.size, 1, loops.max2)

    @njit(cache=False)
    def put_max2(dst, src):
        loops.vput(dst, 0, src, 0, dst.size, 1, False, loops.max2)

    @njit(cache=False)
    def acc_max_num(dst, src):
        loops.vacc(dst, 0, src, 0, dst.size, 1, loops.max_num)

    return acc_max2, put_max2, acc_max_num


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_maxima_keep_max2s_bits(dtype):
    """vacc and vput store a row's maxima back into it through _loops.rmw (llvm.maxnum on x86):
    for every pair of zeros, infinities, numbers and NaN payloads, the bits of max2's rule -- the
    first of tied zeros, the first NaN -- and max_num's on numbers."""
    acc_max2, put_max2, acc_max_num = _in_place_kernels()
    b, v = _special_pairs(dtype)
    want = _max2_by_hand(b, v).view(f"u{b.itemsize}")
    for kern in (acc_max2, put_max2):
        dst = b.copy()
        kern(dst, v)
        np.testing.assert_array_equal(dst.view(want.dtype), want)
    b, v = _special_pairs(dtype, nans=False)
    dst = b.copy()
    acc_max_num(dst, v)
    np.testing.assert_array_equal(dst.view(want.dtype), _max2_by_hand(b, v).view(want.dtype))


@pytest.mark.skipif(not loops.RMW_MAXNUM, reason="the maxnum stores are for x86 only")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_maxima_store_without_masks(dtype):
    """On x86 the in-place maxima compile to plain vector stores: LLVM 22 makes a masked store
    (``vmaskmovps``, microcode on AMD's cores, 5x slower here) of ``dst[q] = v if v > dst[q] else
    dst[q]``, and _loops.rmw is there to keep it from doing so."""
    import llvmlite.binding as llvm

    b, v = _special_pairs(dtype)
    avx = bool(llvm.get_host_cpu_features().get("avx"))
    for kern in _in_place_kernels():
        kern(b.copy(), v)
        asm = "\n".join(kern.inspect_asm().values())
        assert not MASKED_STORE.search(asm), kern.__name__
        assert "ymm" in asm or not avx, kern.__name__  # (vectorised, where the CPU has AVX)


#: A masked vector store in x86 assembly (AT&T order, the memory operand last): AVX's
#: ``vmaskmovps`` / ``vpmaskmovq`` into memory, or an AVX-512 move from a vector register into
#: memory under a mask register (``vmovups %ymm1, (%rax) {%k1}``).  AVX's masked loads
#: (``vpmaskmovq (%rdx), %ymm10, %ymm11``: max_indices reads a column's flat row only where the
#: tap does not win) are not stores: the pattern matched them too, and failed on the AVX2 EPYC.
MASKED_STORE = re.compile(r"maskmov\w*\s+%[xy]mm\d+, %[xy]mm\d+, [-\w]*\("
                          r"|vmov\w*\s+%[xyz]mm\d+, [-\w]*\([^)]*\)\s*\{%k")


def test_masked_store_pattern():
    """The pattern finds the masked stores of both instruction sets and nothing else (not AVX's
    masked loads)."""
    for line in ("vmaskmovps\t%ymm1, %ymm2, (%rdi)", "vpmaskmovq\t%ymm3, %ymm0, 32(%rsi,%rax,8)",
                 "vmovups\t%xmm3, -16(%r15,%rdi,4) {%k2}", "vmovdqu64\t%zmm1, (%rsi) {%k1}"):
        assert MASKED_STORE.search(line), line
    for line in ("vmovups\t%ymm1, (%rdi)", "vmovaps\t%xmm6, %xmm4 {%k2}", "vmovdqu64\t(%r15,%rdx,8), %ymm3 {%k2} {z}",
                 "vblendvps\t%ymm1, %ymm2, %ymm3, %ymm4", "vpmaskmovq\t(%rdx,%rax,8), %ymm10, %ymm11",
                 "vmaskmovps\t-32(%rdi), %ymm2, %ymm3"):
        assert not MASKED_STORE.search(line), line


@pytest.mark.skipif(not loops.RMW_MAXNUM, reason="the masked-store pattern is x86 assembly")
@pytest.mark.parametrize("case", [0, 3, 8])
def test_max_indices_store_without_masks(case):
    """max_indices' passes compile vectorised and without masked stores (a form of the row pass
    that selected between a row of its buffer and an input row, and stored the maxima into the
    other half, made two complementary masked stores per vector)."""
    import llvmlite.binding as llvm
    from numba import njit

    shape, axes, k, s, pad, d, ceil = INDEX_CASES[case]
    f = geo.make_plan(shape, k, s, pad, d, ceil, axes).fused
    kern = njit(nogil=True, _nrt=False)(sliding.max_indices.py_func)  # not cached: its asm can be read
    size = sliding.index_work_size(f.in4, f.out4)
    kern(np.ones(f.in4, np.float32), f.tables, f.params, np.empty(f.out4, np.float32), np.empty(f.out4, np.int64),
         np.empty(size, np.float32), np.empty(size, np.int64), 0, math.prod(f.out4[:3]))
    asm = "\n".join(kern.inspect_asm().values())
    assert not MASKED_STORE.search(asm), case
    assert "ymm" in asm or not llvm.get_host_cpu_features().get("avx"), case


# max_indices run directly over chunks of output rows that start and end anywhere (as the threads
# split a call), against the oracle, for windows along 1-3 axes, channels first and last.
# Rows of 70+ columns reach the vector loops and their remainders; windows of 1 to 5 taps along W
# take the first column pass alone or add one or two passes (each into the other half, the last
# into out), windows of 1 to 9 input rows the first row pass alone or up to three more.
INDEX_CASES = [
    # (shape, axes, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 9, 71), (2, 3), (3, 3), (2, 2), 1, 1, False),
    ((2, 3, 9, 70), (2, 3), (2, 2), (2, 2), 0, 1, True),
    ((2, 3, 11, 75), (2, 3), (5, 4), (2, 2), (2, 1), 1, True),
    ((2, 3, 9, 73), (2, 3), (3, 3), (1, 1), 1, 1, False),
    ((2, 3, 9, 73), (2, 3), (4, 5), (1, 1), 2, (1, 2), False),
    ((2, 3, 9, 73), (2, 3), (1, 1), (1, 1), 0, 1, False),
    ((2, 9, 37, 13), (1, 2), (3, 3), (2, 2), 1, 1, False),    # channels last: runs of C
    ((2, 9, 37, 19), (1, 2), (2, 5), (3, 3), 1, 1, True),
    ((2, 3, 9, 80), (2, 3), (3, 5), (3, 3), 2, 1, False),
    ((2, 3, 9, 80), (2, 3), (2, 3), (1, 4), (1, 1), (2, 2), True),
    ((2, 3, 5, 6, 71), (2, 3, 4), (3, 2, 3), (2, 2, 2), 1, 1, False),   # rows of D and H
    ((2, 3, 5, 7, 72), (2, 3, 4), (3, 3, 3), (2, 2, 2), 1, 1, False),   # nine rows: four row passes
    ((2, 5, 6, 71, 3), (1, 2, 3), (2, 3, 3), (1, 2, 2), (1, 1, 1), 1, True),
    ((2, 3, 200), (2,), (4,), (4,), 1, 1, False),                 # one row per window
    ((2, 3, 201), (2,), (3,), (2,), 1, 1, True),
]


def _index_input(shape, dtype, seed):
    """Values from a few (ties everywhere); for floats also -0.0 beside 0.0, +-inf and NaNs of two
    payloads and both signs."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        vals = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf], dtype)
        x = vals[rng.integers(0, vals.size, shape)]
        nans = np.array([0x7FF8_0000_0000_0001, 0xFFF8_0000_0000_0002], np.uint64).view(np.float64)
        where = rng.random(shape) < 0.03
        x[where] = nans.astype(dtype)[rng.integers(0, 2, int(where.sum()))]
        return x
    info = np.iinfo(dtype)
    return rng.choice(np.array([info.min, info.min + 1, 0, 1, info.max], dtype), shape)


def _pads(pad, n):
    """Symmetric padding per axis from an int or a tuple of ints."""
    return (pad,) * n if isinstance(pad, int) else pad


@pytest.mark.parametrize("case", range(len(INDEX_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_max_indices_matches_oracle(case, dtype):
    shape, axes, k, s, pad, d, ceil = INDEX_CASES[case]
    x = _index_input(shape, dtype, case)
    plan = geo.make_plan(shape, k, s, pad, d, ceil, axes)
    f = plan.fused
    kern = sliding.max_indices
    size = sliding.index_work_size(f.in4, f.out4)
    out, idx = np.full(f.out4, 7, dtype), np.full(f.out4, -5, np.int64)
    rows = math.prod(f.out4[:3])
    bounds = [0, 1, 2, 5, rows // 2, rows - 1, rows]
    for t0, t1 in zip(bounds[:-1], bounds[1:]):
        kern(np.ascontiguousarray(x).reshape(f.in4), f.tables, f.params, out, idx, np.empty(size, dtype),
             np.empty(size, np.int64), t0, t1)
    ref, ref_idx = R.ref_max_pool(x, k, s, [(p, p) for p in _pads(pad, len(k))], d, ceil, axes)
    bits = f"u{x.itemsize}"
    np.testing.assert_array_equal(out.reshape(ref.shape).view(bits), ref.view(bits))  # NaN payloads, zero signs
    np.testing.assert_array_equal(idx.reshape(ref.shape), ref_idx)
    got, got_idx = poolkit.max_pool(x, k, s, pad, dilation=d, ceil_mode=ceil, axes=axes, return_indices=True)
    np.testing.assert_array_equal(got.view(bits), ref.view(bits))
    np.testing.assert_array_equal(got_idx, ref_idx)


# ---------------------------------------------------------------------------------------------
# the index twin (max_pool with return_indices: index_plane_k3s2 before max_indices)
# ---------------------------------------------------------------------------------------------


def test_index_twin_selection():
    """index_plane_k3s2 serves the maxima with indices of 2-D windows 3 wide at stride 2 and at
    most 3 rows high, inner 1, over planes of at most PLANE_SCAN_BYTES, index_cl_k3s2 such
    windows channels-last (inner > 1) over planes of any size; other windows, larger planes of
    inner 1 and 3-D windows have no twin."""
    def twin(shape, k=(3, 3), s=2, itemsize=4, axes=(2, 3), dilation=1):
        return sliding.index_twin(geo.make_plan(shape, k, s, 1, dilation, False, axes).fused, itemsize)

    side = int((sliding.PLANE_SCAN_BYTES // 4) ** 0.5)
    assert twin((2, 3, 9, 9)) == twin((2, 3, side, side)) == twin((2, 3, 9, 9), (2, 3)) == "index_plane_k3s2"
    assert twin((2, 3, 9, 9), dilation=(2, 1)) == "index_plane_k3s2"
    assert twin((2, 3, side + 1, side)) is None
    assert twin((2, 3, side, side), itemsize=8) is None
    assert twin((2, 3, 9, 9), (4, 3)) is None
    assert twin((2, 3, 9, 9), (3, 2)) is None
    assert twin((2, 3, 9, 9), (3, 3), 1) is None
    assert twin((2, 3, 9, 9), dilation=(1, 2)) is None
    assert twin((2, 3, 4, 9, 9), (3, 3, 3), axes=(2, 3, 4)) is None
    assert twin((2, 9, 9, 3), axes=(1, 2)) == twin((2, 900, 900, 3), (2, 3), axes=(1, 2)) == "index_cl_k3s2"
    assert twin((2, 9, 9, 3), (3, 3), 1, axes=(1, 2)) is None
    assert twin((2, 9, 9, 3), (4, 3), axes=(1, 2)) is None
    assert twin((2, 9, 9, 3), axes=(1, 2), dilation=(1, 2)) is None
    assert twin((2, 4, 9, 9, 3), (3, 3, 3), axes=(1, 2, 3)) is None


def _index_pair(kernel, f, xs, t0, t1, vals, idx):
    """Run max_indices (``kernel`` None) or the twin over output rows [t0, t1) into vals and idx."""
    if kernel is None:
        size = sliding.index_work_size(f.in4, f.out4)
        sliding.max_indices(xs.reshape(f.in4), f.tables, f.params, vals, idx, np.empty(size, xs.dtype),
                            np.empty(size, np.int64), t0, t1)
        return t1
    return kernel(xs.reshape(f.in4), f.tables, f.params, vals, idx, t0, t1)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 24), st.integers(1, 40), st.integers(0, 5), st.integers(1, 3), st.integers(0, 1),
       st.integers(0, 1), st.integers(1, 2), st.booleans(),
       st.sampled_from([np.float32, np.float64, np.int16, np.uint8]), st.integers(0, 2**31 - 1))
def test_index_twin_is_max_indices(H, W, C, kh, ph, pw, dh, ceil, dtype, seed):
    """Without a NaN the twins write max_indices' values and indices, bit for bit, over chunks of
    output rows split anywhere: channels first (C = 0) or last with C channels, values drawn from
    a few (ties in every window), zeros of both signs, clipped windows at every edge, window rows
    dilated."""
    shape, axes = ((3, 2, H, W), (2, 3)) if C == 0 else ((3, H, W, C), (1, 2))
    try:
        plan = geo.make_plan(shape, (kh, 3), 2, [(ph, ph), (pw, pw)], (dh, 1), ceil, axes)
    except ValueError:
        return
    f = plan.fused
    name = None if f is None else sliding.index_twin(f, np.dtype(dtype).itemsize)
    if name is None:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, shape).astype(dtype)
    if dtype in (np.float32, np.float64):
        x[x == 0] = rng.choice(np.array([0.0, -0.0], dtype), size=int((x == 0).sum()))
        x[x == 3] = -np.inf
    rows = math.prod(f.out4[:3])
    want_v, want_i = np.full(f.out4, 7, dtype), np.full(f.out4, -7, np.int64)
    _index_pair(None, f, x, 0, rows, want_v, want_i)
    got_v, got_i = np.full(f.out4, 5, dtype), np.full(f.out4, -5, np.int64)
    cut = int(rng.integers(0, rows + 1))
    for t0, t1 in ((0, cut), (cut, rows)):
        assert _index_pair(getattr(sliding, name), f, x, t0, t1, got_v, got_i) == t1
    np.testing.assert_array_equal(got_v.view(np.uint8), want_v.view(np.uint8))
    np.testing.assert_array_equal(got_i, want_i)


def _hands_over(name, f, xn, axes, first_row):
    """The index twin ``name`` over all of ``xn`` stops at ``first_row``, every row it made before is
    max_indices', and the public call (two threads) gives the oracle's values, NaN payloads
    included, and indices."""
    rows, per_row = math.prod(f.out4[:3]), f.out4[3]
    vals, idx = np.full(f.out4, 9, np.float32), np.full(f.out4, -9, np.int64)
    t = _index_pair(getattr(sliding, name), f, xn, 0, rows, vals, idx)
    assert t == first_row
    want_v, want_i = np.empty(f.out4, np.float32), np.empty(f.out4, np.int64)
    _index_pair(None, f, xn, 0, rows, want_v, want_i)
    np.testing.assert_array_equal(vals.reshape(-1)[:t * per_row].view(np.uint32),
                                  want_v.reshape(-1)[:t * per_row].view(np.uint32))
    np.testing.assert_array_equal(idx.reshape(-1)[:t * per_row], want_i.reshape(-1)[:t * per_row])
    before = poolkit.get_num_threads()
    poolkit.set_num_threads(2)
    try:
        got, got_i = poolkit.max_pool(xn, (3, 3), 2, 1, axes=axes, return_indices=True)
    finally:
        poolkit.set_num_threads(before)
    ref, ref_i = R.ref_max_pool(xn, (3, 3), (2, 2), [(1, 1), (1, 1)], 1, False, axes)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
    np.testing.assert_array_equal(got_i, ref_i)


def test_index_cl_twin_hands_over_at_the_first_nan_row():
    """Channels last, the twin stops at the first output row whose window rows hold a NaN (in
    each input row in turn, at a channel of its own, a payload of its own)."""
    x = np.random.default_rng(4).integers(-2, 2, (2, 7, 6, 5)).astype(np.float32)
    f = geo.make_plan(x.shape, (3, 3), 2, 1, 1, False, (1, 2)).fused
    assert sliding.index_twin(f, 4) == "index_cl_k3s2"
    nan = np.array([0x7FC04321], np.uint32).view(np.float32)[0]
    for n, h in [(0, 0), (0, 3), (0, 6), (1, 0), (1, 4)]:
        xn = x.copy()
        xn[n, h, h % 6, h % 5] = nan
        # output row oh reads input rows 2oh-1 .. 2oh+1
        _hands_over("index_cl_k3s2", f, xn, (1, 2), n * f.out4[2] + h // 2)


def test_index_twin_hands_over_at_the_first_nan_plane():
    """Channels first, the twin stops at the first output row of the first plane holding a NaN
    (a payload of its own, in each position of a plane in turn)."""
    x = np.random.default_rng(3).integers(-2, 2, (2, 3, 7, 8)).astype(np.float32)
    f = geo.make_plan(x.shape, (3, 3), 2, 1, 1, False, (2, 3)).fused
    nan = np.array([0x7FC01234], np.uint32).view(np.float32)[0]
    for plane in (0, 4):
        for pos in range(7 * 8):
            xn = x.copy()
            xn.reshape(6, 56)[plane, pos] = nan
            _hands_over("index_plane_k3s2", f, xn, (2, 3), plane * f.out4[2])


def test_index_twin_by_hand():
    """A 3x3 s2 p1 max with indices of a 5x5 plane worked by hand, through the public call (which
    runs the twin): ties go to the first maximum in row-major order, -0.0 against 0.0 included."""
    x = np.array([[0, 5, 1, 5, 2],
                  [5, 0, 5, 0, 5],
                  [1, 5, 9, 0, -0.0],
                  [0, 0, 0, 0, 0],
                  [-0.0, 0, 0, 0, -0.0]], np.float32).reshape(1, 1, 5, 5)
    assert sliding.index_twin(geo.make_plan(x.shape, (3, 3), 2, 1, 1, False, (2, 3)).fused, 4) == "index_plane_k3s2"
    vals, idx = poolkit.max_pool(x, (3, 3), 2, 1, return_indices=True)
    # windows: rows {0,1} / {1,2,3} / {3,4} by columns {0,1} / {1,2,3} / {3,4}
    np.testing.assert_array_equal(vals[0, 0], [[5, 5, 5], [5, 9, 5], [0, 0, 0]])
    np.testing.assert_array_equal(idx[0, 0], [[1, 1, 3],  # 5 at (0,1) first; (0,1); (0,3) before (1,4)
                                              [5, 12, 9],  # (1,0) first; the 9; (1,4)
                                              [15, 16, 18]])  # 0 at (3,0); (3,1); (3,3)
    assert not np.signbit(vals[0, 0, 2]).any()  # the 0.0 of row 3 comes first in each bottom window
    x[0, 0, 3] = -0.0  # now the bottom windows' first zeros are -0.0 at (3, *), except column 0's
    x[0, 0, 3, 0] = 0.0
    x[0, 0, 3, 1] = -0.0
    vals, idx = poolkit.max_pool(x, (3, 3), 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0, 2], [15, 16, 18])
    assert list(np.signbit(vals[0, 0, 2])) == [False, True, True]
