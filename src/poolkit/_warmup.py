"""Compile poolkit's kernels ahead of time (for Docker images, classrooms and CI caches).

numba compiles a kernel the first time a call needs it for a dtype -- a second or two each -- and
keeps the machine code in its on-disk cache (``NUMBA_CACHE_DIR``, by default next to the package),
so later processes load it in milliseconds.  :func:`warmup` makes those first calls now: one small
call per kernel variant and dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import numpy as np

from . import _engine as E
from . import _geometry as geo
from . import masked, pooling, roi
from ._kernels import axis, half, sync
from ._validate import Padding

__all__ = ["warmup"]

#: The dtypes ``poolkit warmup`` compiles by default.
WARMUP_DTYPES = ("float32", "float64")

#: One geometry per forward kernel variant of :mod:`poolkit._kernels.sliding`: ``(shape, kernel,
#: stride, padding, axes)`` of a call that selects it (the tests check that each does).
VARIANT_GEOMETRY: dict[str, tuple[tuple[int, ...], tuple[int, ...], int, Padding, tuple[int, ...]]] = {
    "edges": ((1, 2, 9, 3), (3, 4), 1, 1, (2, 3)),
    "pairs_s2": ((1, 2, 9, 11), (2, 2), 2, 0, (2, 3)),
    "pairs_s1": ((1, 2, 9, 11), (2, 2), 1, 0, (2, 3)),
    "small_k2s2": ((1, 2, 9, 11), (2, 2), 2, 1, (2, 3)),
    "small_k3s2": ((1, 2, 9, 11), (3, 3), 2, 1, (2, 3)),
    "small_k2s1": ((1, 2, 9, 11), (2, 2), 1, 1, (2, 3)),
    "small_k3s1": ((1, 2, 9, 11), (3, 3), 1, 1, (2, 3)),
    "small_k4s4": ((1, 2, 9, 17), (2, 4), 4, ((0, 0), (1, 2)), (2, 3)),
    "line_k2s2": ((1, 2, 11), (2,), 2, 1, (2,)),
    "line_k3s2": ((1, 2, 11), (3,), 2, 1, (2,)),
    "line_k2s1": ((1, 2, 11), (2,), 1, 1, (2,)),
    "line_k3s1": ((1, 2, 11), (3,), 1, 1, (2,)),
    "line_k4s4": ((1, 2, 17), (4,), 4, ((1, 2),), (2,)),
    "taps1": ((1, 9, 11, 2), (2, 3), 1, 0, (1, 2)),
    "taps2": ((1, 2, 9, 12), (2, 4), 2, 1, (2, 3)),
    "taps4": ((1, 2, 9, 17), (1, 5), 4, ((0, 0), (2, 2)), (2, 3)),
    "taps": ((1, 2, 9, 17), (3, 3), 3, 1, (2, 3)),
    "inner": ((1, 9, 11, 2), (3, 2), 2, 1, (1, 2)),
    "inner2": ((1, 9, 11, 3), (2, 2), 2, 1, (1, 2)),
    "inner3": ((1, 9, 11, 3), (3, 3), 2, 1, (1, 2)),
    "doubled": ((1, 2, 9, 23), (1, 9), 1, (0, 4), (2, 3)),
    "blocks": ((1, 23, 9, 2), (9, 3), 1, (4, 1), (1, 2)),
    "wide": ((1, 2, 23, 23), (9, 9), 1, 4, (2, 3)),
}


#: Geometries that reach a variant's second kernel, the engine picking one by the window and plane
#: (see :func:`poolkit._kernels.sliding.twin` and :func:`~poolkit._kernels.sliding.plane`): 3x3 s2
#: windows over 2-D planes run ``fastmax_plane_k3s2`` (small planes) and ``sum_plane_k3s2``
#: (VARIANT_GEOMETRY's), windows 4 rows high ``fastmax_small_k3s2`` and ``sum_small_k3s2``, 3x3x3
#: s2 windows ``fastmax_volume_k3s2`` and ``sum_volume_k3s2``.
TWIN_GEOMETRY: dict[str, tuple[tuple[int, ...], tuple[int, ...], int, Padding, tuple[int, ...]]] = {
    "small_k3s2 rows": ((1, 2, 9, 11), (4, 3), 2, 1, (2, 3)),
    "small_k3s2 volume": ((1, 2, 5, 9, 11), (3, 3, 3), 2, 1, (2, 3, 4)),
}


def _fused(kind: str) -> geo.FusedView:
    """The fused view of the call of geometry ``kind`` (VARIANT_GEOMETRY's or TWIN_GEOMETRY's)."""
    shape, k, s, p, axes = VARIANT_GEOMETRY[kind] if kind in VARIANT_GEOMETRY else TWIN_GEOMETRY[kind]
    f = geo.make_plan(shape, k, s, p, 1, False, axes).fused
    assert f is not None  # every geometry is a fused one (tests/test_kernels.py selects each)
    return f


def _twin(kind: str, dtype: np.dtype) -> Callable[[], object] | None:
    """A call of the fastmax twin of the max variant ``kind`` (None if it has none for ``dtype``):
    large maxima run the twin first (the exact variant takes over at a NaN), while the warm-up's
    small calls run the exact variant alone.  float16 is pooled in float32, and a non-native byte
    order in the native one."""
    if dtype.kind not in "fiu" or dtype.itemsize > 8:
        return None
    f = _fused(kind)
    half = dtype.kind == "f" and dtype.itemsize == 2
    dt = np.dtype(np.float32) if half else dtype.newbyteorder("=")  # as the engine converts
    twin = E._fastmax(f, "max", dt)
    if twin is None:
        return None
    size = E._fused_kernel(f, "max")[1]
    return partial(twin, np.zeros(f.in4, dt), f.tables, f.params, f.divisors(None, None), np.empty(f.out4, dt),
                   np.empty(size, dt), 0, int(np.prod(f.out4[:3])))


def _max_jobs(kind: str, dtype: np.dtype, label: str = "") -> list[tuple[str, Callable[[], object]]]:
    """The maximum of geometry ``kind`` for ``dtype`` (VARIANT_GEOMETRY's: a small call, which
    runs the exact variant) and its fastmax twin, if it has one."""
    jobs: list[tuple[str, Callable[[], object]]] = []
    if kind in VARIANT_GEOMETRY:
        shape, k, s, p, axes = VARIANT_GEOMETRY[kind]
        jobs.append((f"max_{kind}{label}", partial(pooling.max_pool, np.ones(shape, dtype), k, s, p, axes=axes)))
    twin = _twin(kind, dtype)
    if twin is not None:
        jobs.append((f"fastmax_{kind}{label}", twin))
    return jobs


def _sum_kernel(kind: str) -> str:
    """The name of the sum kernel the engine runs for the average of geometry ``kind``: its
    variant's, or the plane kernel it runs instead (:func:`poolkit._engine._fused_kernel`)."""
    return E._fused_kernel(_fused(kind), "sum")[0].__name__


def _half_direct_jobs(f16c: bool) -> list[tuple[str, Callable[[], object]]]:
    """Calls of the kernels that pool float16 bits directly, with the engine's argument types: with
    ``f16c`` the plane kernels (3x3 s2 windows over 2-D planes) and the channels-last sums, which
    need F16C; without, the channels-last 3x3 s2 maxima (integer keys)."""
    jobs: list[tuple[str, Callable[[], object]]] = []
    kernels = ([("small_k3s2", "half_plane_max", half.plane_max_half_k3s2, "max", np.float32),
                ("small_k3s2", "half_plane_sum", half.plane_sum_half_k3s2, "sum", np.float64),
                ("inner3", "half_sum_cl", half.sum_cl_half, "sum", np.float64)] if f16c else
               [("inner3", "half_max_cl", half.max_cl_half, "max", np.float32)])
    for kind, label, kern, op, dt in kernels:
        f = _fused(kind)
        x4, o4, rows = np.zeros(f.in4, np.uint16), np.zeros(f.out4, np.uint16), int(np.prod(f.out4[:3]))
        divs = f.divisors(True, None) if op == "sum" else f.divisors(None, None)
        work = np.empty(E._fused_kernel(f, op)[1], dt)
        jobs.append((label, partial(kern, x4, f.tables, f.params, divs, o4, work, 0, rows)))
    return jobs


def _jobs(dtype: np.dtype) -> list[tuple[str, Callable[[], object]]]:
    """(label, call) pairs that, between them, compile every kernel for ``dtype``."""
    x = np.ones((2, 3, 8, 9), dtype)
    g = np.ones((2, 3, 4, 5), E.float_dtype(dtype))
    lengths = np.array([3, 1])
    jobs: list[tuple[str, Callable[[], object]]] = []
    for kind, (shape, k, s, p, axes) in VARIANT_GEOMETRY.items():
        jobs += _max_jobs(kind, dtype)
        if dtype != np.bool_:
            jobs.append((_sum_kernel(kind), partial(pooling.avg_pool, np.ones(shape, dtype), k, s, p, axes=axes)))
    for kind, (shape, k, s, p, axes) in TWIN_GEOMETRY.items():
        jobs += _max_jobs(kind, dtype)
        if dtype != np.bool_:
            jobs.append((_sum_kernel(kind), partial(pooling.avg_pool, np.ones(shape, dtype), k, s, p, axes=axes)))
    v, i = pooling.max_pool(np.ones((2, 3, 8, 9), np.float64), (2, 2), return_indices=True)  # the indices only
    jobs += [
        ("index_plane_k3s2", partial(pooling.max_pool, x, (3, 3), 2, 1, return_indices=True)),
        ("index_cl_k3s2", partial(pooling.max_pool, x, (3, 3), 2, 1, axes=(1, 2), return_indices=True)),
        ("max_indices", partial(pooling.max_pool, x, (3, 3), 1, 1, return_indices=True)),  # stride 1: no twin
        ("scatter_add", partial(pooling.max_pool_backward, g, x, (3, 3), 2, 1)),
        ("scatter_set", partial(pooling.max_unpool, v.astype(dtype), i, (8, 9))),
        ("max_axis", partial(pooling.max_pool, x, (2, 2), axes=(1, 3))),
        ("max_axis_indices", partial(pooling.max_pool, x, (2, 2), axes=(1, 3), return_indices=True)),
        ("masked_max", partial(masked.masked_pool, x[:, :, 0], lengths=lengths, mode="max")),
        ("masked_min", partial(masked.masked_pool, x[:, :, 0], lengths=lengths, mode="min")),
        ("roi_pool", partial(roi.roi_pool, x, np.array([[0, 0, 0, 5, 5.0]]), 2)),
        # the helper threads' wait, which only a call large enough to be split compiles, and the
        # caller's mark before it sleeps, which only a wait of over SPIN_DONE_S compiles
        ("spin", partial(sync.spin, np.zeros(1, np.int64), 0, 0, 1, 0, 1, -1, 0)),
        ("wait_mark", partial(sync.wait_mark, np.zeros(1, np.int64), 0, 1, -1)),
    ]
    if dtype != np.bool_:
        # the helpers' part of large global averages (their watch too), and the calling thread's:
        # one chunk-less call, with the argument types of the engine's (poolkit._engine._native_sums)
        box = np.zeros(axis.BOX_SIZE, np.int64)
        kernel_dt = E.kernel_input(np.zeros(1, dtype)).dtype
        out_dt = np.dtype(np.float64) if dtype.kind == "f" and dtype.itemsize == 2 else E.float_dtype(dtype)
        jobs += [
            ("follow_sums", partial(axis.follow_sums, np.zeros(2, np.int64), -1, 0, 0, 0, 1, E._NO_MASKS, box,
                                    box.view(np.float64), *E.sum_kind(kernel_dt, out_dt, E.F64))),
            ("post_sums", partial(axis.post_sums, box, box.view(np.float64), np.zeros((1, 1, 1), kernel_dt),
                                  np.zeros((1, 1), out_dt), np.zeros((2, 1)), 1, 1.0, 1, -1)),
            ("sum_adjoint", partial(pooling.avg_pool_backward, g, x, (3, 3), 2, 1)),
            ("sum_axis", partial(pooling.avg_pool, x, (2, 2), axes=(1, 3))),
            ("sum_axis_adjoint", partial(pooling.avg_pool_backward, np.ones((2, 1, 8, 4), g.dtype), x, (2, 2),
                                         axes=(1, 3))),
            ("masked_sum", partial(masked.masked_pool, x[:, :, 0], lengths=lengths, mode="mean")),
            ("roi_align", partial(roi.roi_align, x, np.array([[0, 0, 5, 5.0]]), np.array([0]), 2)),
            ("roi_align_backward", partial(roi.roi_align_backward, np.ones((1, 3, 2, 2), g.dtype), x,
                                           np.array([[0, 0, 5, 5.0]]), np.array([0]), 2)),
            # Lp pooling sums |x|**p in float64 whatever x's dtype: the float64 sums of its windows
            ("lp_pool", partial(pooling.lp_pool, x, 2.0, (3, 3), 2, 1)),
        ]
    if dtype.kind == "f" and dtype.itemsize == 2:
        # large float16 calls: the conversions to and from float32, and the 2x2 kernels that read
        # float16 directly (with the engine's argument types)
        bits, wide = np.zeros(1, np.uint16), np.zeros(1, np.uint32)
        jobs += [("half_widen", partial(half.widen, bits, wide, 0, 1)),
                 ("half_narrow", partial(half.narrow, wide.view(np.float32), bits, 0, 1)),
                 ("half_keys", partial(half.half_keys, bits, bits.copy(), 0, 1))]
        # the maxima of large float16 calls, pooled as int16 keys (poolkit._engine._half_key_blocks)
        for kind in list(VARIANT_GEOMETRY) + list(TWIN_GEOMETRY):
            jobs += _max_jobs(kind, np.dtype(np.int16), " (int16 keys)")
        if half.F16C:
            src, dst = np.zeros(4, np.uint16), np.zeros(1, np.uint16)
            jobs += [("half_pairs_max_cf", partial(half.pairs_max_half_cf, src, dst, 2, 2, 1, 1, 0.25, 0, 1)),
                     ("half_pairs_sum_cf", partial(half.pairs_sum_half_cf, src, dst, 2, 2, 1, 1, 0.25, 0, 1)),
                     ("half_pairs_max_cl", partial(half.pairs_max_half_cl, src, dst, 2, 2, 1, 1, 1, 0.25, 0, 1)),
                     ("half_pairs_sum_cl", partial(half.pairs_sum_half_cl, src, dst, 2, 2, 1, 1, 1, 0.25, 0, 1))]
            jobs += _half_direct_jobs(True)
        jobs += _half_direct_jobs(False)
    return jobs


def warmup(dtypes: Iterable = WARMUP_DTYPES, *, progress: Callable[[int, int, str], None] | None = None) -> int:
    """Compile (or load from numba's on-disk cache) every poolkit kernel for ``dtypes``.

    Parameters
    ----------
    dtypes : iterable of dtype-like, optional
        The input dtypes to prepare, e.g. ``("float32", "uint8")``; float16 uses the float32
        kernels (and adds its conversions, its 2x2 kernels and the int16 maxima of its keys) and
        bool the uint8 ones.  Default: float32 and float64.
    progress : callable, optional
        Called as ``progress(done, total, label)`` before each step (label: kernel and dtype) and
        once at the end with ``done == total``.

    Returns
    -------
    n : int
        The number of warm-up calls made.

    Notes
    -----
    The first run compiles: about 1-4 s per kernel and dtype on a 2-core machine (about a minute
    per dtype).  Later runs, and every later process, load the kernels from the cache in
    milliseconds.  Set ``NUMBA_CACHE_DIR`` to keep the cache somewhere else (a Docker layer, a
    shared classroom disk).

    Examples
    --------
    >>> import poolkit
    >>> poolkit.warmup(["int8"]) > 30
    True
    """
    kinds = []
    for d in dtypes:
        try:
            dt = np.dtype(d)
        except TypeError:
            raise TypeError(f"dtypes must be NumPy dtypes such as 'float32', got {d!r}") from None
        if dt.kind not in "biuf" or dt == np.longdouble and dt.itemsize > 8:
            raise TypeError(f"dtypes must be bool, integer or float dtypes poolkit computes, got {d!r}")
        kinds.append(dt)
    steps = [(f"{label} {dt}", call) for dt in kinds for label, call in _jobs(dt)]
    for i, (label, call) in enumerate(steps):
        if progress is not None:
            progress(i, len(steps), label)
        call()
    if progress is not None:
        progress(len(steps), len(steps), "done")
    return len(steps)
