"""``min_pool``, ``min_pool_backward`` and ``mode_pool`` (NumPy inputs): hand cases, slow oracles
written here from the definitions (Python loops over every window tap, sharing the geometry of
``support/oracle.py`` and no code with poolkit), Hypothesis over the whole parameter space, dtypes,
and errors.  The Dask versions are in ``test_dask.py``."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pooling import _api, _oracle_args, geometries

import poolkit

from support import oracle as R
from support.data import random_input, values_of

# ---------------------------------------------------------------------------------------------
# the oracles
# ---------------------------------------------------------------------------------------------


def _windows(x, kernel, stride, pads, dilation, ceil_mode, axes):
    """Yield (batch position, output position, [(value, flat index)] of the window's valid taps in
    row-major window order), plus the output geometry, from the oracle's own geometry."""
    xt, sax, dest, geo = R._setup(x, kernel, stride, pads, dilation, ceil_mode, axes)
    xb, bshape = R._batch_view(xt, len(geo))
    outs = tuple(g["o"] for g in geo)

    def gen():
        for b in range(xb.shape[0]):
            for opos in itertools.product(*[range(o) for o in outs]):
                taps = [(xb[(b,) + pos], R._flat(pos, geo)) for pos, inside, _ in R._taps(geo, opos) if inside]
                yield b, opos, taps

    return gen(), xb.shape[0], bshape, outs, sax, dest


def ref_min_pool(x, kernel, stride, pads, dilation, ceil_mode, axes):
    """(out, indices): the first minimum of every window's valid taps; a NaN beats everything and
    the first NaN is reported."""
    x = np.asarray(x)
    gen, nb, bshape, outs, sax, dest = _windows(x, kernel, stride, pads, dilation, ceil_mode, axes)
    out = np.zeros((nb,) + outs, dtype=x.dtype)
    idx = np.zeros((nb,) + outs, dtype=np.int64)
    for b, opos, taps in gen:
        best, best_i = taps[0]
        for v, i in taps[1:]:
            if best != best:  # NaN already found
                break
            if v != v or v < best:
                best, best_i = v, i
        out[(b,) + opos] = best
        idx[(b,) + opos] = best_i
    return (R._finish(out.reshape(bshape + outs), sax, dest), R._finish(idx.reshape(bshape + outs), sax, dest))


def ref_mode_pool(x, kernel, stride, pads, dilation, ceil_mode, axes):
    """The most frequent valid tap of every window, by ``==`` (-0.0 == 0.0; all NaNs one value);
    ties to the smallest value, NaN ranking after every number; a zero reported as +0."""
    x = np.asarray(x)
    gen, nb, bshape, outs, sax, dest = _windows(x, kernel, stride, pads, dilation, ceil_mode, axes)
    out = np.zeros((nb,) + outs, dtype=x.dtype)
    for b, opos, taps in gen:
        values = [v for v, _ in taps]
        groups: list[list] = []  # [representative, count]
        for v in values:
            for g in groups:
                if g[0] == v or (g[0] != g[0] and v != v):
                    g[1] += 1
                    break
            else:
                groups.append([v, 1])
        top = max(g[1] for g in groups)
        cands = [g[0] for g in groups if g[1] == top]
        numbers = [c for c in cands if c == c]
        best = min(numbers) if numbers else cands[0]
        out[(b,) + opos] = best + 0 if best == 0 else best  # -0.0 + 0 is +0.0
    return R._finish(out.reshape(bshape + outs), sax, dest)


def ref_min_pool_backward(g, x, kernel, stride, pads, dilation, ceil_mode, axes):
    """Each output's gradient added to its window's first minimum (float64 sums)."""
    x = np.asarray(x)
    _, idx = ref_min_pool(x, kernel, stride, pads, dilation, ceil_mode, axes)
    nd = x.ndim
    ax = sorted(a % nd for a in axes)
    batch = [a for a in range(nd) if a not in ax]
    xt = np.moveaxis(x, ax, list(range(nd - len(ax), nd)))
    gt = np.moveaxis(np.asarray(g, dtype=np.float64), ax, list(range(nd - len(ax), nd)))
    it = np.moveaxis(idx, ax, list(range(nd - len(ax), nd)))
    grad = np.zeros(xt.shape, np.float64)
    nbatch = len(batch)
    plane = xt.shape[nbatch:]
    for bpos in itertools.product(*[range(s) for s in xt.shape[:nbatch]]):
        for opos in itertools.product(*[range(s) for s in gt.shape[nbatch:]]):
            pos = np.unravel_index(int(it[bpos + opos]), plane)
            grad[bpos + tuple(int(p) for p in pos)] += gt[bpos + opos]
    grad = np.moveaxis(grad, list(range(nd - len(ax), nd)), ax)
    return grad.astype(x.dtype) if x.dtype.kind == "f" else grad


# ---------------------------------------------------------------------------------------------
# hand cases
# ---------------------------------------------------------------------------------------------

X44 = np.array([[1, 3, 2, 1],
                [2, 9, 1, 1],
                [1, 4, 2, 3],
                [5, 6, 0, 2]])


def test_min_pool_hand_case():
    out, idx = poolkit.min_pool(X44, (2, 2), return_indices=True)
    np.testing.assert_array_equal(out, [[1, 1], [1, 0]])
    # ties: the first minimum in row-major window order (1 at flat 0 and 1 at 3, 6, 7)
    np.testing.assert_array_equal(idx, [[0, 3], [8, 14]])


def test_min_pool_ties_go_to_the_first():
    x = np.array([[4., 2, 2, 7],
                  [2, 5, 2, 2]])
    out, idx = poolkit.min_pool(x, (2, 2), return_indices=True)
    np.testing.assert_array_equal(out, [[2., 2]])
    np.testing.assert_array_equal(idx, [[1, 2]])


def test_min_pool_nan_propagates_and_points_at_the_first_nan():
    x = np.array([[1.0, np.nan, -5.0, np.nan],
                  [np.nan, -9.0, 0.0, 1.0]])
    out, idx = poolkit.min_pool(x, (2, 2), return_indices=True)
    assert np.isnan(out).all()
    np.testing.assert_array_equal(idx, [[1, 3]])
    out1, idx1 = poolkit.min_pool(np.array([3.0, -1.0, np.nan, np.nan, 2.0]), (2,), return_indices=True)
    np.testing.assert_array_equal(out1, [-1.0, np.nan])
    np.testing.assert_array_equal(idx1, [1, 2])


def test_min_pool_padding_never_wins():
    # all values positive: a zero pad would win a min if padding counted
    x = np.array([5, 7, 6, 9, 8], dtype=np.uint8)
    out, idx = poolkit.min_pool(x, (3,), (2,), 1, return_indices=True)
    np.testing.assert_array_equal(out, [5, 6, 8])
    np.testing.assert_array_equal(idx, [0, 2, 4])
    # negative values with padding, ceil mode: the partial last window is over real cells
    y = np.array([-3.0, -1.0, -2.0, -8.0, -4.0])
    np.testing.assert_array_equal(poolkit.min_pool(y, (2,), ceil_mode=True), [-3.0, -8.0, -4.0])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
                                   np.uint64, np.float16, np.float32, np.float64, np.bool_])
def test_min_pool_dtype_extremes(dtype, rng):
    x = values_of(dtype, (3, 7, 6), rng)
    if np.dtype(dtype).kind in "iu":  # both extremes present, and the min next to the max
        info = np.iinfo(dtype)
        x[0, 0, :2] = [info.max, info.min]
    want, want_idx = ref_min_pool(x, (2, 3), (2, 2), 1, 1, True, (1, 2))
    out, idx = poolkit.min_pool(x, (2, 3), (2, 2), 1, ceil_mode=True, return_indices=True)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    if np.dtype(dtype).kind in "iu":
        assert out[0, 0, 0] == np.iinfo(dtype).min


def test_min_pool_of_minus_zero_is_bit_exact():
    x = np.array([0.0, -0.0, -0.0, 0.0])
    out, idx = poolkit.min_pool(x, (2,), return_indices=True)
    # -0.0 == 0.0: the first of the tied minima, with its own sign bit
    np.testing.assert_array_equal(np.signbit(out), [False, True])
    np.testing.assert_array_equal(idx, [0, 2])


def test_min_pool_backward_hand_case():
    x = np.array([[1., 3, 2, 1],
                  [2, 9, 1, 0]])
    g = poolkit.min_pool_backward(np.array([[10., 20]]), x, (2, 2))
    np.testing.assert_array_equal(g, [[10, 0, 0, 0], [0, 0, 0, 20]])
    # overlapping windows sharing one minimum add up; indices from the forward give the same
    x1 = np.array([4., 1, 5, 6])
    g1 = poolkit.min_pool_backward(np.array([1., 2, 4]), x1, (2,), 1)
    np.testing.assert_array_equal(g1, [0, 3, 4, 0])
    _, idx = poolkit.min_pool(x1, (2,), 1, return_indices=True)
    np.testing.assert_array_equal(poolkit.min_pool_backward(np.array([1., 2, 4]), x1, (2,), 1, indices=idx), g1)


def test_min_pool_backward_integer_input_gives_float64():
    x = np.array([3, 1, 2, 2], dtype=np.int16)
    g = poolkit.min_pool_backward(np.array([1.0, 1.0]), x, (2,))
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [0, 1, 1, 0])


def test_mode_pool_hand_cases():
    labels = np.array([[1, 1, 2, 3],
                       [4, 1, 3, 2],
                       [0, 0, 5, 5],
                       [7, 7, 5, 6]])
    # windows: {1,1,4,1} -> 1; {2,3,3,2} tie -> 2; {0,0,7,7} tie -> 0; {5,5,5,6} -> 5
    np.testing.assert_array_equal(poolkit.mode_pool(labels, (2, 2)), [[1, 2], [0, 5]])
    # all different: the smallest
    np.testing.assert_array_equal(poolkit.mode_pool(np.array([9, 4, 7]), (3,)), [4])


def test_mode_pool_padding_never_counts():
    # windows {3, 5}, {3, 5, 5, 6}, {5, 6, 6, 7}, {6, 7}: with the two zero pads counted, 0 would
    # be the mode of both edge windows
    x = np.array([3, 5, 5, 6, 6, 7], dtype=np.uint8)
    np.testing.assert_array_equal(poolkit.mode_pool(x, (4,), 2, 2), [3, 5, 6, 6])
    # ceil mode: the last partial window over its real cells
    np.testing.assert_array_equal(poolkit.mode_pool(np.array([3, 3, 3, 1, 1, 1, 9]), (3,), ceil_mode=True), [3, 1, 9])


def test_mode_pool_floats_minus_zero_and_nan():
    x = np.array([-0.0, 0.0, 1.0, 1.0, np.nan, np.nan, np.nan, 2.0, np.nan, np.nan, 3.0, 3.0])
    out = poolkit.mode_pool(x, (4,))
    # {-0, 0, 1, 1}: tie 0 (two of them) vs 1 -> 0, reported +0.0; {nan x3, 2} -> nan; {nan, nan, 3, 3} -> 3
    assert out[0] == 0 and not np.signbit(out[0])
    assert np.isnan(out[1])
    assert out[2] == 3.0


def test_mode_pool_bool_and_large_windows(rng):
    b = np.array([[True, False, False], [True, True, False]])
    np.testing.assert_array_equal(poolkit.mode_pool(b, (2, 3)), [[False]])  # 3 vs 3: False < True
    # more than 16 taps (the heapsort path), a clear winner
    x = rng.integers(0, 1000, (5, 5)).astype(np.int32)
    x.flat[[0, 3, 7, 12, 18, 24]] = 42
    assert poolkit.mode_pool(x, (5, 5))[0, 0] == 42


# ---------------------------------------------------------------------------------------------
# the oracles over the whole parameter space
# ---------------------------------------------------------------------------------------------


@settings(max_examples=70)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["normal", "ties", "nan"]))
def test_min_pool_matches_oracle(geo, seed, kind):
    x, _ = random_input(seed, geo["shape"], kind)
    want, want_idx = ref_min_pool(x, *_oracle_args(geo))
    args, kw = _api(geo)
    out, idx = poolkit.min_pool(x, *args, **kw, return_indices=True)
    assert out.dtype == x.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(poolkit.min_pool(x, *args, **kw), want)


@settings(max_examples=50)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.int8, np.uint16, np.int64]))
def test_min_pool_integers_match_oracle(geo, seed, dtype):
    rng = np.random.default_rng(seed)
    x = values_of(dtype, geo["shape"], rng)
    want, want_idx = ref_min_pool(x, *_oracle_args(geo))
    args, kw = _api(geo)
    out, idx = poolkit.min_pool(x, *args, **kw, return_indices=True)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)


@settings(max_examples=40)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["normal", "ties"]),
       with_indices=st.booleans())
def test_min_pool_backward_matches_oracle(geo, seed, kind, with_indices):
    x, rng = random_input(seed, geo["shape"], kind)
    args, kw = _api(geo)
    out, idx = poolkit.min_pool(x, *args, **kw, return_indices=True)
    g = rng.standard_normal(out.shape)
    want = ref_min_pool_backward(g, x, *_oracle_args(geo))
    got = poolkit.min_pool_backward(g, x, *args, **kw, indices=idx if with_indices else None)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=70)
@given(geo=geometries(), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.int32, np.uint8, np.int64, np.bool_, np.float64]),
       nan=st.booleans())
def test_mode_pool_matches_oracle(geo, seed, dtype, nan):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, geo["shape"]).astype(dtype)  # few values: many ties
    if np.dtype(dtype).kind == "f":
        x[rng.random(geo["shape"]) < 0.1] = -0.0
        if nan:
            x[rng.random(geo["shape"]) < 0.3] = np.nan
    want = ref_mode_pool(x, *_oracle_args(geo))
    args, kw = _api(geo)
    out = poolkit.mode_pool(x, *args, **kw)
    assert out.dtype == x.dtype and out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_array_equal(np.signbit(out), np.signbit(want))


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(4, 7), levels=st.integers(2, 40))
def test_mode_pool_large_windows_match_oracle(seed, k, levels):
    # windows of 16 to 49 taps: the heapsort path
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (2, 9, 10)).astype(np.int16)
    want = ref_mode_pool(x, (k, k), (2, 3), 0, 1, True, (1, 2))
    np.testing.assert_array_equal(poolkit.mode_pool(x, (k, k), (2, 3), ceil_mode=True), want)


# ---------------------------------------------------------------------------------------------
# errors, namespace
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [poolkit.min_pool, poolkit.mode_pool])
def test_bad_arguments_name_themselves(fn):
    x = np.zeros((4, 4))
    with pytest.raises(ValueError, match="kernel_size"):
        fn(x, (0, 2))
    with pytest.raises(ValueError, match="stride"):
        fn(x, (2, 2), 0)
    with pytest.raises((ValueError, TypeError), match="x"):
        fn(np.array(["a", "b"]), (1,))


def test_min_pool_backward_checks_indices():
    x = np.array([3.0, 1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="indices"):
        poolkit.min_pool_backward(np.ones(2), x, (2,), indices=np.array([0, 9]))


def test_import_poolkit_never_imports_dask():
    code = ("import sys, numpy as np, poolkit; poolkit.min_pool(np.ones((2, 2)), (2, 2)); "
            "bad = [m for m in ('dask', 'distributed', 'zarr', 'tifffile') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_exported():
    for name in ("min_pool", "min_pool_backward", "mode_pool"):
        assert name in poolkit.__all__ and callable(getattr(poolkit, name))
