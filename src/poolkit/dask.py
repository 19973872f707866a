"""Lazy pooling of Dask arrays: the same plan as in memory, one block of output positions at a time.

``poolkit.max_pool(x, ...)`` and the other public ops hand a ``dask.array.Array`` over to this
module (telling it by its type's module, so ``import poolkit`` never imports dask); the result is
a Dask array, and nothing is computed until it is asked for.  Dask is an optional dependency: the
``dask`` extra.

How a graph is made (:func:`pool_blocks`):

* Along each pooled axis the plan's window table (:func:`poolkit._geometry.make_plan`) is cut into
  blocks of consecutive output positions: output ``i`` belongs to the input chunk that holds the
  first valid tap of its window (a running maximum, so blocks stay contiguous with dilation).  A
  chunk holding no window start gives no block, so a stride larger than the chunks gives fewer
  blocks, never empty ones.  Batch axes keep the input's chunks.
* :func:`poolkit._geometry.block_plan` gives each block its input range ``[lo, hi)`` -- the halo
  is exactly what its windows read -- and the plan of those windows over that range alone, with
  the same taps and divisors.  So every block is the in-memory op applied to its own input, and
  the result equals the NumPy result for every chunking by construction: bit for bit for
  max/min/mode and indices (the same taps in the same order), to float rounding for sums (a
  kernel may add in another order).
* One task per output block.  It takes the input chunks its range meets: its home chunk whole
  (sliced inside the task) and, for the halo, only the part it needs of each other chunk (one
  ``getitem`` task per partial neighbour, so a worker receives the halo rather than a whole
  chunk).  Blocks never need the input rechunked.  When the windows tile the chunks (a pooling
  pyramid with chunks that are multiples of the factor) every block reads one chunk: one task per
  input chunk, like ``dask.array.coarsen`` but without its requirement that the chunks divide.

Global pooling is a tree: one partial result per input chunk (a window per chunk, through the same
blocks), then one task per batch block combines them -- maxima by value with ties to the smaller
flat index, so that the result is the first maximum in row-major order as in memory; sums added;
Lp norms combined as the Lp norm of the chunks' norms.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from . import _engine as E
from . import _geometry as geo
from . import _validate as V
from ._validate import Axes, Padding, Sizes

# The lazy ops below (max_pool, ... adaptive_avg_pool) are reached through poolkit's public functions,
# which hand them a Dask input; they are documented there.  What this module offers of its own:
__all__ = ["pool_blocks", "task_count"]


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def check_lazy(x: Any, name: str = "x") -> da.Array:
    """``x`` as a Dask array of a real numeric or bool dtype, at least 1-D, with known chunk sizes
    (checked without computing anything)."""
    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array, got {type(x).__name__}")
    V.check_array(np.empty((1,) * max(x.ndim, 1), dtype=x.dtype), name)
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a 0-d array")
    if any(math.isnan(c) for cs in x.chunks for c in cs):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
    return x


def task_count(*arrays: da.Array) -> int:
    """The number of tasks in the graph of ``arrays`` (shared tasks counted once).

    Parameters
    ----------
    *arrays : dask.array.Array
        Lazy results.

    Returns
    -------
    n : int
        Tasks, input chunks included (the graph as it is built, before any optimisation).

    Examples
    --------
    >>> import dask.array as da
    >>> import poolkit
    >>> from poolkit.dask import task_count
    >>> x = da.zeros((8, 8), chunks=4)
    >>> task_count(x), task_count(poolkit.max_pool(x, (2, 2)))
    (4, 8)
    """
    keys: set = set()
    for a in arrays:
        keys.update(dict(a.__dask_graph__()).keys())
    return len(keys)


# --------------------------------------------------------------------------------------------
# blocks of output positions
# --------------------------------------------------------------------------------------------


def _axis_blocks(ap: geo.AxisPlan, bounds: np.ndarray) -> list[tuple[int, int, int, int, geo.AxisPlan]]:
    """``(i0, i1, lo, hi, plan)`` of each block of output positions along one pooled axis: the
    outputs whose window's first valid tap (running maximum) lies in one input chunk."""
    first = np.maximum.accumulate(ap.starts)
    home = np.searchsorted(bounds, first, side="right") - 1
    cuts = np.flatnonzero(np.diff(home)) + 1
    edges = [0, *cuts.tolist(), ap.out_size]
    out = []
    for i0, i1 in zip(edges[:-1], edges[1:]):
        lo, hi, sub = geo.block_plan(ap, i0, i1)
        out.append((i0, i1, lo, hi, sub))
    return out


def _pieces(bounds: np.ndarray, lo: int, hi: int) -> list[tuple[int, slice, bool]]:
    """(chunk, slice inside the chunk, whole chunk?) of every input chunk that ``[lo, hi)`` meets."""
    c0 = int(np.searchsorted(bounds, lo, side="right")) - 1
    c1 = int(np.searchsorted(bounds, hi - 1, side="right")) - 1
    out = []
    for c in range(c0, c1 + 1):
        a, b = max(lo, int(bounds[c])), min(hi, int(bounds[c + 1]))
        whole = a == bounds[c] and b == bounds[c + 1]
        out.append((c, slice(a - int(bounds[c]), b - int(bounds[c])), whole))
    return out


def _assemble(parts: list, slices: list, ndim: int) -> np.ndarray:
    """The block's input from its pieces (nested lists, one level per axis), each sliced."""

    def cut(p, s, depth):
        if depth == ndim:
            return p[s] if s is not None else p
        return [cut(pp, ss, depth + 1) for pp, ss in zip(p, s)]

    cut_parts = cut(parts, slices, 0)
    flat = cut_parts
    for _ in range(ndim):
        if len(flat) != 1:
            break
        flat = flat[0]
    else:
        return flat
    return np.block(cut_parts)


def _run_block(func: Callable, parts: list, slices: list, ndim: int, axes: tuple[int, ...], aps: tuple,
               los: tuple) -> Any:
    """One task: assemble the block's input and apply ``func(block, plan, los)`` (``los``: where the
    block's input starts along each pooled axis)."""
    block = _assemble(parts, slices, ndim)
    return func(block, geo.Plan.of(block.shape, axes, list(aps)), los)


def pool_blocks(x: da.Array, plan: geo.Plan, func: Callable[..., Any], dtype: Any, name: str,
                outputs: int = 1) -> Any:
    """Apply a block function of the in-memory engine to every block of output positions of ``plan``.

    Parameters
    ----------
    x : dask.array.Array
        Input, of shape ``plan.in_shape``.
    plan : poolkit._geometry.Plan
        The plan of the whole call.
    func : callable
        ``func(block, block_plan, los) -> ndarray`` (or a tuple of ``outputs`` arrays): the
        in-memory op on one block's input with that block's plan; ``los`` says where the block's
        input starts along each pooled axis (for global indices).
    dtype : dtype or sequence of dtype
        Result dtype (one per output).
    name : str
        The graph layer's name prefix.
    outputs : int, optional
        How many arrays ``func`` returns.

    Returns
    -------
    out : dask.array.Array, or tuple of them
        Of shape ``plan.out_shape``, one chunk per block.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from poolkit import _engine as E, _geometry as geo
    >>> from poolkit.dask import pool_blocks
    >>> x = da.arange(10, chunks=3)
    >>> plan = geo.make_plan(x.shape, (3,), 2)
    >>> y = pool_blocks(x, plan, lambda b, p, los: E.max_reduce(b, p)[0], x.dtype, "max")
    >>> y.chunks, y.compute()
    (((2, 1, 1),), array([2, 4, 6, 8]))
    """
    nd = x.ndim
    bounds = [np.cumsum((0,) + tuple(int(c) for c in cs)) for cs in x.chunks]
    by_axis: list[list[Any]] = []
    pooled = dict(zip(plan.axes, plan.axis_plans))
    for a in range(nd):
        if a in pooled:
            by_axis.append(_axis_blocks(pooled[a], bounds[a]))
        else:
            b = bounds[a]
            by_axis.append([(int(b[c]), int(b[c + 1]), int(b[c]), int(b[c + 1]), None) for c in range(len(b) - 1)])
    chunks = tuple(tuple(i1 - i0 for i0, i1, _, _, _ in blocks) for blocks in by_axis)
    token = tokenize(x.name, plan.in_shape, plan.axes, [(ap.in_size, ap.out_size, ap.kernel, ap.stride, ap.dilation,
                                                        ap.pad_before, ap.pad_after, ap.adaptive, ap.starts.tobytes(),
                                                        ap.counts.tobytes()) for ap in plan.axis_plans], name, func)
    out_name = f"{name}-{token}"
    halo_name = f"{name}-halo-{token}"
    dsk: dict = {}
    for idx in itertools.product(*(range(len(blocks)) for blocks in by_axis)):
        blocks = [by_axis[a][i] for a, i in enumerate(idx)]
        pieces = [_pieces(bounds[a], blk[2], blk[3]) for a, blk in enumerate(blocks)]
        home = tuple(p[0][0] for p in pieces)

        def nest(depth, chosen):
            if depth == nd:
                cs = tuple(c for c, _, _ in chosen)
                sl = tuple(s for _, s, _ in chosen)
                key = (x.name, *cs)
                if all(w for _, _, w in chosen):
                    return key, None
                if cs == home:
                    return key, sl
                hk = (halo_name, *idx, *cs)
                dsk[hk] = (operator.getitem, key, sl)
                return hk, None
            got = [nest(depth + 1, chosen + [p]) for p in pieces[depth]]
            return [g[0] for g in got], [g[1] for g in got]

        parts, slices = nest(0, [])
        aps = tuple(blk[4] for blk in blocks if blk[4] is not None)
        los = tuple(blk[2] for blk in blocks if blk[4] is not None)
        dsk[(out_name, *idx)] = (_run_block, func, parts, slices, nd, plan.axes, aps, los)
    deps: list[Any] = [x]
    if outputs == 1:
        graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=deps)
        return da.Array(graph, out_name, chunks, meta=np.empty((0,) * nd, dtype=dtype))
    dtypes = list(dtype)
    graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=deps)
    pair = da.Array(graph, out_name, chunks, meta=np.empty((0,) * nd, dtype=dtypes[0]))
    results = []
    for k in range(outputs):
        kname = f"{name}-{k}-{token}"
        kd: dict[Any, Any] = {(kname, *i): (operator.getitem, (out_name, *i), k)
              for i in itertools.product(*(range(len(c)) for c in chunks))}
        g = HighLevelGraph.from_collections(kname, kd, dependencies=[pair])  # type: ignore[list-item]
        results.append(da.Array(g, kname, chunks, meta=np.empty((0,) * nd, dtype=dtypes[k])))
    return tuple(results)


# --------------------------------------------------------------------------------------------
# block functions (module level: picklable, one identity each)
# --------------------------------------------------------------------------------------------


def _global_flat(idx: np.ndarray, plan: geo.Plan, los: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """Flat indices over a block's pooled axes (local sizes ``plan``) made global: each local
    coordinate shifted by the block's ``lo`` and raveled with the whole input's sizes."""
    rem = idx.copy()
    out = np.zeros_like(idx)
    scale = 1
    for ap, lo, size in reversed(list(zip(plan.axis_plans, los, sizes))):
        c = rem % ap.in_size
        rem //= ap.in_size
        out += (c + lo) * scale
        scale *= size
    return out


def _block_max(block: np.ndarray, plan: geo.Plan, los: tuple, reverse: bool, ret: bool,
               sizes: tuple) -> Any:
    """Max (or, ``reverse``, min) pooling of one block; with ``ret``, (values, global indices)."""
    from .pooling import _reversed_order

    out, idx = E.max_reduce(_reversed_order(block) if reverse else block, plan, ret)
    if reverse:
        out = _reversed_order(out)
    if not ret:
        return out
    return out, _global_flat(idx, plan, los, sizes)


def _block_sums(block: np.ndarray, plan: geo.Plan, los: tuple, out_dtype: Any, cip: bool | None,
                div: int | None) -> np.ndarray:
    return E.pool_sums(block, plan, out_dtype, cip, div)


def _block_lp(block: np.ndarray, plan: geo.Plan, los: tuple, p: float, out_dtype: Any) -> np.ndarray:
    """Lp norms of one block, in ``out_dtype`` (float64 for the partial norms of global pooling)."""
    from .pooling import _lp_norms, _unscaled

    ys, _, scale = _lp_norms(block, p, plan)
    return E.narrow(_unscaled(ys, scale), out_dtype)


def _block_mode(block: np.ndarray, plan: geo.Plan, los: tuple) -> np.ndarray:
    from .pooling import _mode_reduce

    return _mode_reduce(block, plan)


# --------------------------------------------------------------------------------------------
# the lazy ops (called by the public functions for a Dask input: same arguments, same checks)
# --------------------------------------------------------------------------------------------


def _sizes(plan: geo.Plan) -> tuple[int, ...]:
    return tuple(ap.in_size for ap in plan.axis_plans)


def _maxlike(x: Any, plan: geo.Plan, ret: bool, reverse: bool, name: str) -> Any:
    func = functools.partial(_block_max, reverse=reverse, ret=ret, sizes=_sizes(plan))
    dtype = E.native(x.dtype)
    if ret:
        return pool_blocks(x, plan, func, (dtype, np.dtype(np.int64)), name, outputs=2)
    return pool_blocks(x, plan, func, dtype, name)


def max_pool(x: Any, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *, dilation: Sizes = 1,
             ceil_mode: bool = False, axes: Axes = None, return_indices: bool = False) -> Any:
    """:func:`poolkit.max_pool` of a Dask array, lazily (same arguments; indices are global flat
    indices, as for NumPy)."""
    x = check_lazy(x)
    plan = geo.make_plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    return _maxlike(x, plan, bool(return_indices), False, "max_pool")


def min_pool(x: Any, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *, dilation: Sizes = 1,
             ceil_mode: bool = False, axes: Axes = None, return_indices: bool = False) -> Any:
    """:func:`poolkit.min_pool` of a Dask array, lazily."""
    x = check_lazy(x)
    ret = V.check_bool("return_indices", return_indices)
    plan = geo.make_plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    return _maxlike(x, plan, ret, True, "min_pool")


def avg_pool(x: Any, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *, dilation: Sizes = 1,
             ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None,
             axes: Axes = None) -> Any:
    """:func:`poolkit.avg_pool` of a Dask array, lazily."""
    from .pooling import _check_avg_options

    x = check_lazy(x)
    _check_avg_options(count_include_pad, divisor_override)
    plan = geo.make_plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    dtype = E.float_dtype(x.dtype)
    func = functools.partial(_block_sums, out_dtype=dtype, cip=bool(count_include_pad), div=divisor_override)
    return pool_blocks(x, plan, func, dtype, "avg_pool")


def lp_pool(x: Any, p: float, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *,
            dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None) -> Any:
    """:func:`poolkit.lp_pool` of a Dask array, lazily."""
    x = check_lazy(x)
    p = V.check_p(p)
    plan = geo.make_plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    dtype = E.float_dtype(x.dtype)
    return pool_blocks(x, plan, functools.partial(_block_lp, p=p, out_dtype=dtype), dtype, "lp_pool")


def mode_pool(x: Any, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *, dilation: Sizes = 1,
              ceil_mode: bool = False, axes: Axes = None) -> Any:
    """:func:`poolkit.mode_pool` of a Dask array, lazily."""
    x = check_lazy(x)
    plan = geo.make_plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    return pool_blocks(x, plan, _block_mode, E.native(x.dtype), "mode_pool")


def adaptive_max_pool(x: Any, output_size: Any, *, axes: Axes = None, return_indices: bool = False) -> Any:
    """:func:`poolkit.adaptive_max_pool` of a Dask array, lazily.  A bin larger than the chunks
    makes its block read every chunk the bin covers."""
    from .adaptive import _adaptive_plan

    x = check_lazy(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    ret = V.check_bool("return_indices", return_indices)
    return _maxlike(x, plan, ret, False, "adaptive_max_pool")


def adaptive_avg_pool(x: Any, output_size: Any, *, axes: Axes = None) -> Any:
    """:func:`poolkit.adaptive_avg_pool` of a Dask array, lazily."""
    from .adaptive import _adaptive_plan

    x = check_lazy(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    dtype = E.float_dtype(x.dtype)
    return pool_blocks(x, plan, functools.partial(_block_sums, out_dtype=dtype, cip=False, div=None), dtype,
                       "adaptive_avg_pool")


# --------------------------------------------------------------------------------------------
# global pooling: one partial per chunk, then one combining task per batch block
# --------------------------------------------------------------------------------------------


def _global_setup(x: Any, axes: Axes, keepdims: bool) -> tuple[Any, tuple[int, ...], bool, geo.Plan]:
    """(x, pooled axes ascending, keepdims, the plan of one window per input chunk)."""
    from .adaptive import _channels_first_axes, _check_nonempty_axes, _sorted_axes

    x = check_lazy(x)
    if axes is None:
        ax = _channels_first_axes(x.ndim, "global pooling")
    else:
        ax = _sorted_axes(geo.normalize_axes(x.ndim, axes, None, "axes"))
    keep = V.check_bool("keepdims", keepdims)
    _check_nonempty_axes(x.shape, ax)
    aps = []
    for a in ax:
        sizes = np.array(x.chunks[a], dtype=np.int64)
        aps.append(geo.table_plan(x.shape[a], np.cumsum(sizes) - sizes, sizes))
    return x, ax, keep, geo.Plan.of(x.shape, ax, aps)


def _flat_last(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``a`` with ``axes`` moved last and flattened into one."""
    n = len(axes)
    moved = np.moveaxis(a, axes, tuple(range(a.ndim - n, a.ndim)))
    return np.ascontiguousarray(moved).reshape(moved.shape[:a.ndim - n] + (-1,))


def _kept(a: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """A combined result (batch axes, then one) back in ``shape`` with ``axes`` of size 1."""
    kept = tuple(1 if i in axes else s for i, s in enumerate(shape))
    return a.reshape(kept)


def _combine_max(v: np.ndarray, i: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The first maximum (by global flat index) of per-chunk maxima: partials in index order, then
    the engine's max (first maximum wins, first NaN wins)."""
    vm, im = _flat_last(v, axes), _flat_last(i, axes)
    vs = np.take_along_axis(vm, np.argsort(im, axis=-1, kind="stable"), -1)
    best = E.max_reduce(vs, geo.make_plan(vs.shape, (vs.shape[-1],), axes=(vs.ndim - 1,)))[0]
    return _kept(best, v.shape, axes)


def _combine_sum(s: np.ndarray, axes: tuple[int, ...], count: int, out_dtype: Any) -> np.ndarray:
    total = s.sum(axis=axes, keepdims=True)
    return E.narrow(total / count, out_dtype)


def _combine_lp(n: np.ndarray, axes: tuple[int, ...], p: float, out_dtype: Any) -> np.ndarray:
    from .pooling import _lp_norms, _unscaled

    nm = _flat_last(n, axes)
    ys, _, scale = _lp_norms(nm, p, geo.make_plan(nm.shape, (nm.shape[-1],), axes=(nm.ndim - 1,)))
    return E.narrow(_kept(_unscaled(ys, scale), n.shape, axes), out_dtype)


def _finish_global(parts: list, combine: Callable, x: Any, ax: tuple[int, ...], keep: bool, dtype: Any) -> Any:
    whole = [p.rechunk({a: -1 for a in ax}) for p in parts]
    chunks = tuple((1,) if a in ax else c for a, c in enumerate(whole[0].chunks))
    out = da.map_blocks(combine, *whole, chunks=chunks, dtype=dtype, meta=np.empty((0,) * x.ndim, dtype=dtype))
    return out if keep else out.squeeze(axis=ax)


def global_max_pool(x: Any, axes: Axes = None, keepdims: bool = False) -> Any:
    """:func:`poolkit.global_max_pool` of a Dask array, lazily (a tree: bit for bit, ties and NaN
    resolved by flat index as in memory)."""
    x, ax, keep, plan = _global_setup(x, axes, keepdims)
    v, i = _maxlike(x, plan, True, False, "global_max_pool")
    dtype = E.native(x.dtype)
    return _finish_global([v, i], functools.partial(_combine_max, axes=ax), x, ax, keep, dtype)


def global_avg_pool(x: Any, axes: Axes = None, keepdims: bool = False) -> Any:
    """:func:`poolkit.global_avg_pool` of a Dask array, lazily (float64 partial sums per chunk)."""
    x, ax, keep, plan = _global_setup(x, axes, keepdims)
    f64 = np.dtype(np.float64)
    sums = pool_blocks(x, plan, functools.partial(_block_sums, out_dtype=f64, cip=None, div=None), f64,
                       "global_avg_pool")
    dtype = E.float_dtype(x.dtype)
    count = math.prod(x.shape[a] for a in ax)
    return _finish_global([sums], functools.partial(_combine_sum, axes=ax, count=count, out_dtype=dtype), x, ax,
                          keep, dtype)


def global_lp_pool(x: Any, p: float, axes: Axes = None, keepdims: bool = False) -> Any:
    """:func:`poolkit.global_lp_pool` of a Dask array, lazily (the Lp norm of the chunks' norms)."""
    p = V.check_p(p)
    x, ax, keep, plan = _global_setup(x, axes, keepdims)
    f64 = np.dtype(np.float64)
    norms = pool_blocks(x, plan, functools.partial(_block_lp, p=p, out_dtype=f64), f64, "global_lp_pool")
    dtype = E.float_dtype(x.dtype)
    return _finish_global([norms], functools.partial(_combine_lp, axes=ax, p=p, out_dtype=dtype), x, ax, keep,
                          dtype)
