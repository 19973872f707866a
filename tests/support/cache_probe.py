"""Run poolkit calls in this (fresh) process and compare each with the slow NumPy oracle.

    python tests/support/cache_probe.py CASE [CASE ...]

A case is ``op:dtype`` (see CASES).  Prints one JSON line: for every case whether it matched the
oracle, and how many kernels this process compiled (poolkit logs each compile; a kernel found in
numba's on-disk cache is not compiled).  Used by test_compile_cache.py, which runs it in many fresh
processes sharing one NUMBA_CACHE_DIR, as users do.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for ``support``

import poolkit  # noqa: E402
from poolkit._kernels import sync  # noqa: E402

from support import oracle as R  # noqa: E402
from support import oracle_fixed as RF  # noqa: E402


def _data(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    x = rng.integers(-20, 21, shape).astype(dtype)  # exact in every dtype, with ties
    if np.dtype(dtype).kind == "f":
        x = (x / 4).astype(dtype)
    return x


def _max(shape, k, s, p, axes):
    def case(dtype):
        x = _data(dtype, shape)
        return poolkit.max_pool(x, k, s, p, axes=axes), R.ref_max_pool(x, k, s, p, 1, False, axes)[0]
    return case


def _avg(shape, k, s, p, axes):
    def case(dtype):
        x = _data(dtype, shape)
        return poolkit.avg_pool(x, k, s, p, axes=axes), R.ref_avg_pool(x, k, s, p, 1, False, axes)
    return case


def _max_large(nan, k=(3, 3), s=2, p=1, shape=(4, 16, 40, 40)):
    """A max large enough for the threaded path, where float maxima run the fastmax twin first;
    with a NaN, the exact variant takes over from the first row whose windows hold it.  (Integer
    maxima of more than 2**16 elements in and out run the plane twin, uint8 2x2 windows the
    byte-pair kernel.)"""
    def case(dtype):
        x = _data(dtype, shape)
        if nan:
            x[1, 5, 17, 3] = np.nan
        return poolkit.max_pool(x, k, s, p), R.ref_max_pool(x, k, s, p, 1, False, (2, 3))[0]
    return case


def _max_indices(dtype, nan=False, axes=(2, 3)):
    """3x3 s2 p1 windows run an index twin first (channels first or last: ``axes``); with a NaN,
    max_indices makes the rows from the first that reads it on."""
    x = _data(dtype, (2, 3, 6, 7))
    if nan:
        x[1, 1, 2, 3] = np.nan
    out, idx = poolkit.max_pool(x, (3, 3), 2, 1, axes=axes, return_indices=True)
    ref, ref_idx = R.ref_max_pool(x, (3, 3), 2, 1, 1, False, axes)
    return (out, idx), (ref, ref_idx)


def _max_backward(dtype):
    x = _data(dtype, (2, 3, 6, 7))
    g = _data("float64", (2, 3, 3, 4), seed=1)
    return (poolkit.max_pool_backward(g, x, (3, 3), 2, 1),
            R.ref_max_pool_backward(g, x, (3, 3), 2, 1, 1, False, (2, 3)))


def _avg_backward(dtype):
    x = _data(dtype, (2, 3, 6, 7))
    g = _data("float64", (2, 3, 7, 8), seed=1)
    return (poolkit.avg_pool_backward(g, x, (2, 2), 1, 1, count_include_pad=False),
            R.ref_avg_pool_backward(g, x, (2, 2), 1, 1, 1, False, (2, 3), count_include_pad=False))


def _lp(dtype):
    x = _data(dtype, (2, 3, 6, 7))
    return poolkit.lp_pool(x, 3, (2, 3), 2), R.ref_lp_pool(x, 3, (2, 3), 2, 0, 1, False, (2, 3))


def _unpool(dtype):
    x = _data(dtype, (2, 3, 6, 6))
    v, i = poolkit.max_pool(x, (2, 2), return_indices=True)
    return poolkit.max_unpool(v, i, (6, 6)), R.ref_max_unpool(v, i, (6, 6))


def _masked(mode):
    def case(dtype):
        x = _data(dtype, (4, 6, 3))
        lengths = np.array([6, 2, 0, 4])
        mask = np.arange(6)[None, :] < lengths[:, None]
        out = poolkit.masked_pool(x, lengths=lengths, mode=mode)
        return out, RF.ref_masked_pool(x, mask, mode, 1, 0.0).astype(out.dtype)
    return case


def _adaptive(kind):
    def case(dtype):
        x = _data(dtype, (2, 3, 7, 9))
        if kind == "max":
            return poolkit.adaptive_max_pool(x, (3, 4)), RF.ref_adaptive_max(x, (3, 4), (2, 3))[0]
        return poolkit.adaptive_avg_pool(x, (3, 4)), RF.ref_adaptive_avg(x, (3, 4), (2, 3))
    return case


def _acc32(kind):
    """A float32 average summed in float32 (acc_dtype): the same kernels as the default's, with
    a float32 scratch buffer, so numba caches them under their own argument types."""
    def case(dtype):
        x = _data(dtype, (2, 3, 9, 9))
        if kind == "global":
            return poolkit.global_avg_pool(x, acc_dtype="float32"), x.astype(np.float64).mean(axis=(2, 3))
        return (poolkit.avg_pool(x, (3, 3), 2, 1, acc_dtype="float32"),
                R.ref_avg_pool(x, (3, 3), 2, 1, 1, False, (2, 3)))
    return case


def _global_large(dtype):
    """A global average large enough for the team's native path (poolkit._engine._native_sums),
    where the helpers run axis.follow_sums."""
    x = _data(dtype, (24, 7, 7, 512))
    return poolkit.global_avg_pool(x, axes=(1, 2)), x.astype(np.float64).mean(axis=(1, 2))


def _roi_pool(dtype):
    x = _data(dtype, (2, 3, 8, 9))
    rois = np.array([[0, 1, 1, 6, 5], [1, 0, 2, 8, 7]], dtype=np.float64)
    return poolkit.roi_pool(x, rois, (2, 3)), RF.ref_roi_pool(x, rois, (2, 3), 1.0)[0].astype(x.dtype)


def _roi_align(dtype):
    x = _data(dtype, (2, 3, 8, 9))
    rois = np.array([[1, 1, 6, 5], [0, 2, 8, 7]], dtype=np.float64)
    b = np.array([0, 1])
    return (poolkit.roi_align(x, rois, b, (2, 3), sampling_ratio=2),
            RF.ref_roi_align(x, rois, b, (2, 3), 1.0, 2, "avg", True))


CASES = {
    "max": _max((2, 3, 6, 7), (2, 2), None, 0, (2, 3)),
    "avg": _avg((2, 3, 6, 7), (2, 2), None, 0, (2, 3)),
    "max3": _max((2, 3, 9, 9), (3, 3), 2, 1, (2, 3)),
    "avg3": _avg((2, 3, 9, 9), (3, 3), 2, 1, (2, 3)),
    "max_nhwc": _max((2, 9, 9, 3), (3, 3), 2, 1, (1, 2)),
    "avg_nhwc": _avg((2, 9, 9, 3), (3, 3), 2, 1, (1, 2)),
    "max_wide": _max((1, 2, 20, 20), (9, 9), 1, 4, (2, 3)),
    "max_large": _max_large(False),
    "max_large_nan": _max_large(True),
    "max_large_int": _max_large(False, shape=(4, 16, 64, 64)),
    "max_pairs_large": _max_large(False, (2, 2), 2, 0, (4, 16, 64, 64)),
    "avg_wide": _avg((1, 2, 20, 20), (9, 9), 1, 4, (2, 3)),
    "max_1d": _max((2, 3, 33), (4,), 4, 0, (2,)),
    "max_axes": _max((5, 3, 6), (2, 3), 1, 0, (0, 2)),
    "avg_axes": _avg((5, 3, 6), (2, 3), 1, 0, (0, 2)),
    "max_indices": _max_indices,
    "max_indices_nan": lambda dtype: _max_indices(dtype, nan=True),
    "max_indices_nhwc": lambda dtype: _max_indices(dtype, axes=(1, 2)),
    "max_indices_nhwc_nan": lambda dtype: _max_indices(dtype, nan=True, axes=(1, 2)),
    "max_backward": _max_backward,
    "avg_backward": _avg_backward,
    "lp": _lp,
    "unpool": _unpool,
    "masked_max": _masked("max"),
    "masked_min": _masked("min"),
    "masked_mean": _masked("mean"),
    "adaptive_max": _adaptive("max"),
    "adaptive_avg": _adaptive("avg"),
    "roi_pool": _roi_pool,
    "roi_align": _roi_align,
    "avg_acc32": _acc32("pool"),
    "global_acc32": _acc32("global"),
    "global_large": _global_large,
}


def _same(got, want) -> bool:
    if isinstance(got, tuple):
        return all(_same(g, w) for g, w in zip(got, want))
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False
    if got.dtype.kind == "f" or want.dtype.kind == "f":
        tol = 1e-3 if got.dtype == np.float16 else (1e-5 if got.dtype == np.float32 else 1e-12)
        return bool(np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol, equal_nan=True))
    return bool(np.array_equal(got, want))


class _Count(logging.Handler):
    def __init__(self):
        super().__init__()
        self.compiled: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("compiling"):
            self.compiled.append(message)


def main(names):
    # The thread team compiles sync.wait_mark only when a join outlasts its watch, a matter of
    # timing: a later process could need it where no process before it did (the likely cause of
    # the one compile a CI run of the shared-cache test counted on 2026-12-07, which did not say
    # which kernel; the probe now lists them).  Loaded, or compiled, here first, so that what the
    # cache holds after a probe does not depend on its timing.
    sync.wait_mark(np.zeros(1, np.int64), 0, 1, -1)
    counter = _Count()
    logging.getLogger("poolkit").addHandler(counter)
    logging.getLogger("poolkit").setLevel(logging.INFO)
    results = {}
    for name in names:
        op, dtype = name.split(":")
        got, want = CASES[op](dtype)
        results[name] = _same(got, want)
    print(json.dumps({"results": results, "compiles": len(counter.compiled), "compiled": counter.compiled}))


if __name__ == "__main__":
    main(sys.argv[1:])
