"""Lazy pooling of Dask arrays (``poolkit.dask``): every op equals its NumPy result for every
chunking -- bit for bit for max, min, mode and indices, to float rounding for sums -- the graphs
stay small (a bounded number of tasks per input chunk, compared with ``dask.array.coarsen``), and
nothing is computed until asked.  Expected values come from the NumPy ops, themselves checked
against the oracles in ``test_pooling.py``, ``test_adaptive.py`` and ``test_min_mode.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pooling import _api, geometries

import poolkit

from support.data import random_input

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from poolkit.dask import task_count  # noqa: E402


def _compute(y):
    return tuple(v.compute(scheduler="sync") for v in y) if isinstance(y, tuple) else y.compute(scheduler="sync")


@st.composite
def chunkings(draw, shape):
    """Dask chunks for ``shape``: per axis, random cut points (chunks of 1 included)."""
    out = []
    for n in shape:
        cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=min(n - 1, 4)))) if n > 1 else []
        edges = [0, *cuts, n]
        out.append(tuple(b - a for a, b in zip(edges[:-1], edges[1:])))
    return tuple(out)


def _lazy(x, chunks):
    return da.from_array(x, chunks=chunks)


def _assert_same(got, want, exact=True):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w, exact)
        return
    assert isinstance(got, da.Array)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    v = got.compute(scheduler="sync")
    assert v.shape == want.shape and v.dtype == want.dtype
    if exact:
        np.testing.assert_array_equal(v, want)
        if want.dtype.kind == "f":
            np.testing.assert_array_equal(np.signbit(v), np.signbit(want))
    else:
        np.testing.assert_allclose(v, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# hand cases
# ---------------------------------------------------------------------------------------------


def test_chunks_smaller_than_the_window_and_stride_past_a_chunk():
    x = np.arange(20.0)[::-1].copy()
    d = _lazy(x, 3)
    # windows of 5 over chunks of 3; stride 7 jumps over whole chunks
    y = poolkit.max_pool(d, (5,), 7, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y[0].compute(), [19, 12, 5])
    np.testing.assert_array_equal(y[1].compute(), [0, 7, 14])
    # a stride larger than the chunks gives fewer output blocks, never an empty one
    assert all(c > 0 for c in y[0].chunks[0])
    np.testing.assert_array_equal(poolkit.avg_pool(d, (2,), 9).compute(), [18.5, 9.5, 0.5])


def test_return_indices_are_global_flat_indices():
    x = np.zeros((6, 8))
    x[4, 7] = 5.0
    x[1, 2] = -5.0
    d = _lazy(x, (2, 3))
    _, imax = poolkit.max_pool(d, (3, 4), return_indices=True)
    _, imin = poolkit.min_pool(d, (3, 4), return_indices=True)
    assert imax.compute()[1, 1] == 4 * 8 + 7
    assert imin.compute()[0, 0] == 1 * 8 + 2


def test_nothing_is_computed_until_asked():
    def boom(block):
        raise RuntimeError("computed")

    d = da.map_blocks(boom, da.zeros((8, 8), chunks=4), dtype=np.float64)
    ys = [poolkit.max_pool(d, (2, 2)), poolkit.min_pool(d, (3, 3), 2, 1, return_indices=True)[1],
          poolkit.avg_pool(d, (2, 2)), poolkit.lp_pool(d, 2, (2, 2)), poolkit.mode_pool(d, (2, 2)),
          poolkit.global_max_pool(d, axes=(0, 1)), poolkit.global_avg_pool(d, axes=(0, 1)),
          poolkit.global_lp_pool(d, 2, axes=(0, 1)), poolkit.adaptive_max_pool(d, (3, 3), axes=(0, 1)),
          poolkit.adaptive_avg_pool(d, (3, 3), axes=(0, 1))]
    assert all(isinstance(y, da.Array) for y in ys)
    with pytest.raises(RuntimeError, match="computed"):
        ys[0].compute(scheduler="sync")


def test_unknown_chunk_sizes_and_bad_arguments():
    d = da.from_array(np.arange(10.0), chunks=3)
    unknown = d[d > 2]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        poolkit.max_pool(unknown, (2,))
    with pytest.raises(ValueError, match="kernel_size"):
        poolkit.max_pool(d, (0,))
    with pytest.raises(ValueError, match="stride"):
        poolkit.mode_pool(d, (2,), 0)
    with pytest.raises(ValueError, match="p"):
        poolkit.lp_pool(d, -1, (2,))
    with pytest.raises((TypeError, ValueError), match="x"):
        poolkit.max_pool(da.from_array(np.array(["a", "b"])), (1,))


# ---------------------------------------------------------------------------------------------
# every op, every chunking (Hypothesis)
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(data=st.data(), geo=geometries(max_axes=3), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["normal", "ties", "nan"]))
def test_max_and_min_equal_numpy_for_every_chunking(data, geo, seed, kind):
    x, _ = random_input(seed, geo["shape"], kind)
    d = _lazy(x, data.draw(chunkings(geo["shape"])))
    args, kw = _api(geo)
    for fn in (poolkit.max_pool, poolkit.min_pool):
        _assert_same(fn(d, *args, **kw, return_indices=True), fn(x, *args, **kw, return_indices=True))
        _assert_same(fn(d, *args, **kw), fn(x, *args, **kw))


@settings(max_examples=40)
@given(data=st.data(), geo=geometries(max_axes=3), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.int16, np.uint8, np.bool_, np.float32]))
def test_max_min_integer_dtypes_equal_numpy(data, geo, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 200, geo["shape"]).astype(dtype)
    d = _lazy(x, data.draw(chunkings(geo["shape"])))
    args, kw = _api(geo)
    _assert_same(poolkit.min_pool(d, *args, **kw, return_indices=True),
                 poolkit.min_pool(x, *args, **kw, return_indices=True))
    _assert_same(poolkit.max_pool(d, *args, **kw), poolkit.max_pool(x, *args, **kw))


@settings(max_examples=60)
@given(data=st.data(), geo=geometries(max_axes=3), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.int32, np.uint8, np.bool_, np.float64]), nan=st.booleans())
def test_mode_equals_numpy_for_every_chunking(data, geo, seed, dtype, nan):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, geo["shape"]).astype(dtype)
    if nan and np.dtype(dtype).kind == "f":
        x[rng.random(geo["shape"]) < 0.3] = np.nan
    d = _lazy(x, data.draw(chunkings(geo["shape"])))
    args, kw = _api(geo)
    _assert_same(poolkit.mode_pool(d, *args, **kw), poolkit.mode_pool(x, *args, **kw))


@settings(max_examples=60)
@given(data=st.data(), geo=geometries(max_axes=3), seed=st.integers(0, 2**32 - 1), cip=st.booleans(),
       dov=st.sampled_from([None, None, 3]), p=st.sampled_from([1, 2, 1.5]),
       dtype=st.sampled_from([np.float64, np.float32, np.uint16]))
def test_sums_equal_numpy_for_every_chunking(data, geo, seed, cip, dov, p, dtype):
    x, _ = random_input(seed, geo["shape"], "normal")
    x = (np.abs(x) * 100).astype(dtype) if np.dtype(dtype).kind == "u" else x.astype(dtype)
    d = _lazy(x, data.draw(chunkings(geo["shape"])))
    args, kw = _api(geo)
    want = poolkit.avg_pool(x, *args, **kw, count_include_pad=cip, divisor_override=dov)
    got = poolkit.avg_pool(d, *args, **kw, count_include_pad=cip, divisor_override=dov)
    tol = 1e-12 if want.dtype == np.float64 else 1e-5
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.compute(scheduler="sync"), want, rtol=tol, atol=tol)
    want = poolkit.lp_pool(x, p, *args, **kw)
    got = poolkit.lp_pool(d, p, *args, **kw)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.compute(scheduler="sync"), want, rtol=tol, atol=tol)


def _shape_and_axes(draw, max_ndim, max_side):
    """A shape and a sorted, non-empty set of its axes."""
    ndim = draw(st.integers(1, max_ndim))
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(ndim))
    n = draw(st.integers(1, ndim))
    return shape, tuple(sorted(draw(st.permutations(range(ndim)))[:n]))


@st.composite
def global_cases(draw):
    shape, axes = _shape_and_axes(draw, 4, 6)
    return shape, axes, draw(chunkings(shape)), draw(st.booleans())


@settings(max_examples=60)
@given(case=global_cases(), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["normal", "ties", "nan"]),
       p=st.sampled_from([1, 2, 3.5]))
def test_global_pooling_equals_numpy(case, seed, kind, p):
    shape, axes, chunks, keep = case
    x, _ = random_input(seed, shape, kind)
    d = _lazy(x, chunks)
    _assert_same(poolkit.global_max_pool(d, axes=axes, keepdims=keep), poolkit.global_max_pool(x, axes, keep))
    if kind != "nan":
        _assert_same(poolkit.global_avg_pool(d, axes, keep), poolkit.global_avg_pool(x, axes, keep), exact=False)
        _assert_same(poolkit.global_lp_pool(d, p, axes, keep), poolkit.global_lp_pool(x, p, axes, keep),
                     exact=False)


def test_global_max_ties_and_nan_resolved_as_in_memory():
    x = np.array([[1.0, 3.0, 3.0], [3.0, np.nan, np.nan], [0.0, 3.0, 2.0]])
    for chunks in [1, 2, (2, 1), (1, (2, 1))]:
        d = _lazy(x, chunks)
        np.testing.assert_array_equal(poolkit.global_max_pool(d, axes=(0, 1)).compute(), np.nan)
        np.testing.assert_array_equal(poolkit.global_max_pool(d, axes=(1,)).compute(), [3.0, np.nan, 3.0])
    # integer global max of an int8 array with its extreme values
    y = np.array([[-128, 127, 5], [127, -1, 0]], dtype=np.int8)
    np.testing.assert_array_equal(poolkit.global_max_pool(_lazy(y, 1), axes=(0, 1)).compute(), 127)


@st.composite
def adaptive_cases(draw):
    shape, axes = _shape_and_axes(draw, 3, 9)
    out = tuple(draw(st.integers(1, shape[a] + 2)) for a in axes)
    return shape, axes, out, draw(chunkings(shape))


@settings(max_examples=60)
@given(case=adaptive_cases(), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["normal", "ties", "nan"]))
def test_adaptive_pooling_equals_numpy(case, seed, kind):
    shape, axes, out, chunks = case
    x, _ = random_input(seed, shape, kind)
    d = _lazy(x, chunks)
    _assert_same(poolkit.adaptive_max_pool(d, out, axes=axes, return_indices=True),
                 poolkit.adaptive_max_pool(x, out, axes=axes, return_indices=True))
    _assert_same(poolkit.adaptive_avg_pool(d, out, axes=axes), poolkit.adaptive_avg_pool(x, out, axes=axes),
                 exact=False)


# ---------------------------------------------------------------------------------------------
# graph size
# ---------------------------------------------------------------------------------------------


def _n_chunks(d):
    return math.prod(len(c) for c in d.chunks)


@settings(max_examples=60)
@given(data=st.data(), ndim=st.integers(1, 3), seed=st.integers(0, 10))
def test_tasks_per_input_chunk_are_bounded(data, ndim, seed):
    """When no window spans more than a chunk (d*(k-1)+1 <= smallest chunk), each output block
    reads at most 2 chunks per pooled axis: at most 1 + (2**n - 1) tasks per input chunk (the block
    and its halo slices), whatever the stride, padding and ceil mode -- and never a rechunk."""
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    dil = tuple(data.draw(st.integers(1, 2)) for _ in range(ndim))
    s = tuple(data.draw(st.integers(1, 4)) for _ in range(ndim))
    span = [dd * (kk - 1) + 1 for kk, dd in zip(k, dil)]
    shape = tuple(data.draw(st.integers(sp, 40)) for sp in span)
    chunks = tuple(data.draw(st.integers(sp, max(sp, n))) for sp, n in zip(span, shape))
    pads = tuple(data.draw(st.integers(0, (kk - 1) * dd // 2)) for kk, dd in zip(k, dil))
    d = da.zeros(shape, chunks=chunks)
    for y in (poolkit.max_pool(d, k, s, pads, dilation=dil, ceil_mode=True),
              poolkit.avg_pool(d, k, s, pads, dilation=dil), poolkit.mode_pool(d, k, s, pads, dilation=dil)):
        own = task_count(y) - task_count(d)
        assert own <= _n_chunks(d) * 2**ndim, (own, _n_chunks(d))
        assert not any("rechunk" in str(k) for k in dict(y.__dask_graph__()))


@pytest.mark.parametrize("shape, chunks, factor", [((4096, 4096), 512, 2), ((256, 512, 512), 64, 2),
                                                   ((256, 512, 512), (32, 128, 128), 4)])
def test_pyramid_step_is_one_task_per_chunk_like_coarsen(shape, chunks, factor):
    d = da.zeros(shape, chunks=chunks, dtype=np.uint16)
    k = (factor,) * len(shape)
    ours = task_count(poolkit.avg_pool(d, k)) - task_count(d)
    coarse = task_count(da.coarsen(np.mean, d, dict.fromkeys(range(len(shape)), factor))) - task_count(d)
    assert ours == _n_chunks(d) == coarse
    assert task_count(poolkit.max_pool(d, k)) - task_count(d) == _n_chunks(d)


def test_chunks_that_do_not_divide_the_factor_need_no_rechunk():
    # coarsen needs chunks divisible by the factor (it rechunks or refuses); blocks do not
    d = da.zeros((1000, 1000), chunks=333, dtype=np.uint16)
    x = np.arange(10**6, dtype=np.uint16).reshape(1000, 1000)
    dx = _lazy(x, 333)
    y = poolkit.avg_pool(dx, (2, 2), ceil_mode=True)
    np.testing.assert_allclose(y.compute(scheduler="sync"), poolkit.avg_pool(x, (2, 2), ceil_mode=True))
    own = task_count(poolkit.avg_pool(d, (2, 2), ceil_mode=True)) - task_count(d)
    assert own <= 4 * _n_chunks(d)
