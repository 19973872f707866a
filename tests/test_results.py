"""Large results over reused memory (:mod:`poolkit._results`): a freed result's memory goes to the
next result of its size, never to two live arrays at once, and a result made over memory that
held other values is still exactly the oracle's.

The threshold (32 MiB) is lowered to a few KiB here, so that small inputs take the same path.
Every expected value comes from the NumPy oracle (``support.oracle``) or from a reshape max.
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import poolkit
from poolkit import _engine as E
from poolkit import _results

from support import oracle as R

X = np.random.default_rng(5).standard_normal((4, 8, 64, 66)).astype(np.float32)  # the threaded fused path
G = np.random.default_rng(6).standard_normal((4, 8, 32, 33)).astype(np.float32)
ARGS = ((3, 3), (2, 2), (1, 1))  # 64x66 -> 32x33


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    """Results of 4 KiB or more over reused memory, with an empty free list before and after."""
    monkeypatch.setattr(_results, "RECYCLE_FROM", 4096)
    before = poolkit.get_result_cache()
    poolkit.set_result_cache(0)  # drops whatever earlier tests left
    poolkit.set_result_cache(1 << 30)
    yield
    poolkit.set_result_cache(0)
    poolkit.set_result_cache(before)


def _leased(a: np.ndarray) -> bool:
    """Whether ``a`` is over a buffer the reuse keeps (its base, a uint8 array, is one of them)."""
    return any(a.base is b for b in _results._buffers)


def _free_bytes() -> tuple[int, int]:
    """(bytes, count) of the kept buffers no array refers to."""
    with _results._lock:
        free = _results._free()
        return sum(_results._buffers[i].nbytes for i in free), len(free)


def _max_ref(x):
    return R.ref_max_pool(x, ARGS[0], ARGS[1], ARGS[2], 1, False, (-2, -1))[0]


def test_a_freed_result_gives_its_memory_to_the_next_one():
    a = poolkit.max_pool(X, *ARGS)
    assert _leased(a) and a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    at = a.ctypes.data
    a[...] = np.nan  # whatever the memory holds, the next result overwrites every element
    del a
    b = poolkit.max_pool(X[::-1].copy(), *ARGS)
    assert b.ctypes.data == at
    np.testing.assert_array_equal(b, _max_ref(X[::-1]))


def test_live_results_never_share_memory():
    xs = [X + i for i in range(6)]
    results = [poolkit.max_pool(x, *ARGS) for x in xs]
    for i, r in enumerate(results):
        for s in results[i + 1:]:
            assert not np.shares_memory(r, s)
    for x, r in zip(xs, results):
        np.testing.assert_array_equal(r, _max_ref(x))


def test_a_view_keeps_the_memory_of_its_result():
    a = poolkit.max_pool(X, *ARGS)
    view = a[1:3, ::2]
    want = view.copy()
    del a
    b = poolkit.max_pool(-X, *ARGS)
    assert not np.shares_memory(view, b)
    np.testing.assert_array_equal(view, want)
    del view
    gc.collect()
    c = poolkit.max_pool(X, *ARGS)  # the view is gone: its memory is free again
    assert not np.shares_memory(b, c)
    np.testing.assert_array_equal(c, _max_ref(X))


def test_any_reference_to_the_memory_keeps_it():
    """The result's base held on its own, a memoryview of the result, or a reference cycle holding
    the result: its memory is not handed out until those are gone."""
    a = poolkit.max_pool(X, *ARGS)
    base, at = a.base, a.ctypes.data
    del a
    b = poolkit.max_pool(-X, *ARGS)
    assert b.ctypes.data != at
    del base
    c = poolkit.max_pool(X, *ARGS)  # only now is that memory free
    assert c.ctypes.data == at
    np.testing.assert_array_equal(c, _max_ref(X))
    view = memoryview(c)
    del c
    d = poolkit.max_pool(X + 1, *ARGS)
    assert d.ctypes.data != at
    del view
    cycle = [poolkit.max_pool(X, *ARGS)]
    cycle.append(cycle)
    held = cycle[0].ctypes.data
    del cycle
    gc.disable()
    try:
        e = poolkit.max_pool(X - 1, *ARGS)
        assert e.ctypes.data != held
    finally:
        gc.enable()
    gc.collect()
    f = poolkit.max_pool(X - 2, *ARGS)
    assert f.ctypes.data == held
    np.testing.assert_array_equal(e, _max_ref(X - 1))
    np.testing.assert_array_equal(f, _max_ref(X - 2))


def _dirty_then(call):
    """``call()`` twice, the first result filled with garbage and dropped before the second."""
    first = call()
    for a in first if isinstance(first, tuple) else (first,):
        a[...] = 77 if a.dtype.kind in "iu" else np.nan
    del first, a
    return call()


def test_every_op_overwrites_reused_memory():
    axes = (-2, -1)
    got = _dirty_then(lambda: poolkit.avg_pool(X, *ARGS))
    np.testing.assert_allclose(got, R.ref_avg_pool(X, *ARGS, 1, False, axes), rtol=1e-6, atol=1e-7)
    got, idx = _dirty_then(lambda: poolkit.max_pool(X, *ARGS, return_indices=True))
    want, want_idx = R.ref_max_pool(X, *ARGS, 1, False, axes)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(idx, want_idx)
    got = _dirty_then(lambda: poolkit.max_pool_backward(G, X, *ARGS))
    np.testing.assert_allclose(got, R.ref_max_pool_backward(G, X, *ARGS, 1, False, axes), rtol=1e-6, atol=1e-6)
    got = _dirty_then(lambda: poolkit.avg_pool_backward(G, X, *ARGS))
    np.testing.assert_allclose(got, R.ref_avg_pool_backward(G, X, *ARGS, 1, False, axes), rtol=1e-6, atol=1e-7)
    # the general path (pooled axes not adjacent: one axis at a time, each step a new result)
    got = _dirty_then(lambda: poolkit.max_pool(X, (3, 2), 2, axes=(1, 3)))
    np.testing.assert_array_equal(got, R.ref_max_pool(X, (3, 2), 2, 0, 1, False, (1, 3))[0])
    got = _dirty_then(lambda: poolkit.avg_pool(X, (3, 2), 2, axes=(1, 3)))
    np.testing.assert_allclose(got, R.ref_avg_pool(X, (3, 2), 2, 0, 1, False, (1, 3)), rtol=1e-6, atol=1e-7)
    # float16 (widened and narrowed through new arrays) and 1-D
    h = X.astype(np.float16)
    got = _dirty_then(lambda: poolkit.max_pool(h, *ARGS))
    np.testing.assert_array_equal(got, _max_ref(h))
    line = X.reshape(32, -1)
    got = _dirty_then(lambda: poolkit.max_pool(line, (4,), 4))
    np.testing.assert_array_equal(got, line.reshape(32, -1, 4).max(axis=-1))


def test_sizes_must_match_exactly():
    a = poolkit.max_pool(X, *ARGS)
    at = a.ctypes.data
    del a
    b = poolkit.max_pool(X[:, :7], *ARGS)  # 7/8 of the size: new memory
    assert b.ctypes.data != at and _leased(b)
    np.testing.assert_array_equal(b, _max_ref(X[:, :7]))


def test_the_limit_holds_and_zero_turns_reuse_off():
    size = poolkit.max_pool(X, *ARGS).nbytes
    poolkit.set_result_cache(2 * size)
    results = [poolkit.max_pool(X, *ARGS) for _ in range(5)]
    del results
    assert _free_bytes() == (5 * size, 5)  # free, and kept until a new buffer is made
    keep = E.new_result((1, 1024), np.float64)  # a new buffer: the free ones beyond the limit go
    assert _leased(keep) and _free_bytes() == (2 * size, 2)
    poolkit.set_result_cache(0)
    assert _free_bytes() == (0, 0) and not _results._buffers
    a = poolkit.max_pool(X, *ARGS)
    assert not _leased(a)
    np.testing.assert_array_equal(a, _max_ref(X))


def test_beyond_the_limit_the_memory_lent_longest_ago_goes_first():
    size = poolkit.max_pool(X, *ARGS).nbytes
    poolkit.set_result_cache(size)
    a = poolkit.max_pool(X, *ARGS)
    b = poolkit.max_pool(X, *ARGS)
    first = a.ctypes.data
    del a
    c = poolkit.max_pool(X, *ARGS)  # takes a's memory: lent after b's now
    assert c.ctypes.data == first
    del b, c
    keep = E.new_result((1, 1024), np.float64)  # a new buffer: b's memory goes, c's stays
    assert _leased(keep) and _free_bytes() == (size, 1)
    d = poolkit.max_pool(-X, *ARGS)
    assert d.ctypes.data == first
    np.testing.assert_array_equal(d, _max_ref(-X))


@pytest.mark.parametrize("value, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                          (None, TypeError), ("1024", TypeError)])
def test_set_result_cache_rejects_bad_values(value, error):
    before = poolkit.get_result_cache()
    with pytest.raises(error, match=r"nbytes .*got " + repr(value).replace("(", r"\(")):
        poolkit.set_result_cache(value)
    assert poolkit.get_result_cache() == before


def test_many_threads_keep_their_results_apart():
    """Calls from 8 threads, each keeping its last 3 results alive while it makes more: every result
    equals the oracle, and no two live results share memory."""
    xs = [X * (i + 1) for i in range(8)]
    wants = [_max_ref(x) for x in xs]
    live: list = []
    lock = threading.Lock()

    def worker(i):
        mine = []
        for n in range(25):
            r = poolkit.max_pool(xs[(i + n) % 8], *ARGS)
            np.testing.assert_array_equal(r, wants[(i + n) % 8])
            with lock:
                for other in live:
                    assert not np.shares_memory(other, r)
                live.append(r)
            mine.append(r)
            if len(mine) > 3:
                old = mine.pop(0)
                with lock:
                    live[:] = [r for r in live if r is not old]
                del old
        return True

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(worker, range(8)))
