"""Multiscale images the way microscopy stores them: ``poolkit pyramid`` and :func:`pyramid`.

An image (``.npy``, TIFF, PNG/JPEG, a Zarr array or an OME-Zarr image) becomes an OME-Zarr 0.5
image (Zarr v3): level 0 is the input, level ``l`` its reduction (mean, max, min or mode) over
blocks of ``factor**l`` cells of every spatial axis, computed lazily with :mod:`poolkit.dask` and
run on a Dask ``distributed`` cluster (a ``LocalCluster`` by default).

Every level is the reduction of level 0 over the blocks it covers, computed so:

* max and min are associative: level ``l`` is level ``l - 1`` pooled by ``factor`` (exact);
* mean carries float64 block *sums* from level to level (``sum`` is associative and exact for
  integer inputs below 2**53) and divides each level's sums by the number of level-0 cells of its
  block -- never an average of averages, so an edge pixel is the mean of its real cells;
* mode is not associative: level ``l`` is the mode of level 0 over blocks of ``factor**l``.

Edges: the last, partial block of an axis is reduced over its real cells only (ceil mode, padding
never counted), so no edge is darkened or stretched.  Integer and bool means are rounded to the
nearest value, ties to even (``numpy.rint``).

All levels come from one task graph, so level 0 is read once.  The graph's results are written
chunk by chunk (Zarr writes each chunk file atomically); a worker that dies is replaced and its
tasks rerun, which writes the same bytes.  The group's ``poolkit`` attribute records the levels
already complete: a rerun of an interrupted run with the same arguments resumes, leaving those
levels untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["pyramid", "PyramidResult", "add_pyramid", "METHODS", "open_image"]

#: The reductions a pyramid can use.
METHODS = ("mean", "max", "min", "mode")

_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
_DASK_HINT = "pip install 'poolkit[dask]'  (dask[array], distributed, zarr>=3, tifffile)"


class MissingDask(ImportError):
    """Dask, distributed or zarr is not installed (the ``dask`` extra)."""


def _require() -> None:
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as exc:
        raise MissingDask(f"needs {exc.name} ({_DASK_HINT})") from None


@dataclass(frozen=True)
class PyramidResult:
    """What :func:`pyramid` wrote: the output path, the shape of each level, the number of tasks
    of the graph, the levels this run computed (a resumed run skips finished ones), and the wall
    time in seconds."""

    path: str
    shapes: tuple[tuple[int, ...], ...]
    axes: str
    tasks: int
    computed: tuple[int, ...]
    seconds: float


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


class _FileArray:
    """A ``.npy`` or uncompressed TIFF file seen as an array that reads only the slices asked for
    (memory-mapped on each read: small to pickle, so a task carries a path, not the data)."""

    def __init__(self, path: str, kind: str):
        self.path, self.kind = path, kind
        a = self._open()
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def _open(self) -> np.ndarray:
        if self.kind == "npy":
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        import tifffile

        return tifffile.memmap(self.path, mode="r")

    def __getitem__(self, key) -> np.ndarray:
        return np.array(self._open()[key])


@dataclass(frozen=True)
class _Image:
    """An opened input: the lazy array, its axes (None: not known), and from OME-Zarr the level-0
    scale, translation and units per axis."""

    data: Any
    axes: str | None
    scale: tuple[float, ...] | None = None
    translation: tuple[float, ...] | None = None
    units: tuple[str | None, ...] | None = None
    name: str = "image"
    #: the directory of the Zarr array behind ``data`` (a Zarr or OME-Zarr input), else None
    array_path: str | None = None


def _ome_attrs(group) -> dict | None:
    attrs = dict(group.attrs)
    if "ome" in attrs and "multiscales" in attrs["ome"]:
        return attrs["ome"]
    if "multiscales" in attrs:
        return attrs
    return None


def open_image(path: str, chunks: Any = None) -> _Image:
    """Open an image lazily: ``.npy``, TIFF, PNG/JPEG, a Zarr array, or an OME-Zarr image (its
    level 0, with its axes, scale, translation and units).

    Parameters
    ----------
    path : str
        The file or Zarr directory.
    chunks : int or tuple, optional
        Dask chunks for inputs that have none of their own (``.npy``, TIFF, PNG/JPEG); a Zarr
        input keeps its own chunks.

    Returns
    -------
    image : _Image
        ``.data`` is a ``dask.array.Array``; nothing is read but the header.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from poolkit.pyramid import open_image
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(path, np.arange(12, dtype=np.uint8).reshape(3, 4))
    >>> img = open_image(path, chunks=2)
    >>> img.data.shape, img.data.chunks, img.axes
    ((3, 4), ((2, 1), (2, 2)), None)
    """
    _require()
    import dask.array as da
    import zarr

    p = Path(path)
    if not p.exists():
        raise OSError(f"cannot read {path!r}: no such file or directory")
    low = p.name.lower()
    auto = "auto" if chunks is None else chunks
    try:
        if p.is_dir():
            node = zarr.open(str(p), mode="r")
            if isinstance(node, zarr.Array):
                return _Image(da.from_zarr(node), None, name=p.stem, array_path=str(p))
            ome = _ome_attrs(node)
            if ome is None:
                raise ValueError("a Zarr group without OME 'multiscales' metadata; give the path of an array in it")
            ms = ome["multiscales"][0]
            ds = ms["datasets"][0]
            arr = node[ds["path"]]
            axes = "".join(a["name"] if isinstance(a, dict) else a for a in ms["axes"])
            scale = translation = None
            for t in ds.get("coordinateTransformations", []):
                if t.get("type") == "scale":
                    scale = tuple(float(v) for v in t["scale"])
                elif t.get("type") == "translation":
                    translation = tuple(float(v) for v in t["translation"])
            units = tuple(a.get("unit") if isinstance(a, dict) else None for a in ms["axes"])
            return _Image(da.from_zarr(arr), axes, scale, translation, units, name=ms.get("name") or p.stem,
                          array_path=str(p / ds["path"]))
        if low.endswith(".npy"):
            fa = _FileArray(str(p), "npy")
            return _Image(da.from_array(fa, chunks=auto, meta=np.empty((0,) * fa.ndim, fa.dtype)), None, name=p.stem)
        if low.endswith((".tif", ".tiff")):
            import tifffile

            try:
                fa = _FileArray(str(p), "tiff")
                data = da.from_array(fa, chunks=auto, meta=np.empty((0,) * fa.ndim, fa.dtype))
            except ValueError:  # compressed or tiled: read whole
                data = da.from_array(tifffile.imread(str(p)), chunks=auto)
            return _Image(data, None, name=p.stem)
        if low.endswith((".png", ".jpg", ".jpeg")):
            from PIL import Image

            with Image.open(str(p)) as im:
                a = np.asarray(im)
            return _Image(da.from_array(a, chunks=auto), "yxc" if a.ndim == 3 else None, name=p.stem)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OSError(f"cannot read {path!r}: {' '.join(str(exc).split())}") from None
    except Exception as exc:  # a reader's own error type (zarr, tifffile, PIL)
        raise OSError(f"cannot read {path!r}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    raise OSError(f"cannot read {path!r}: not a .npy, TIFF, PNG/JPEG, Zarr array or OME-Zarr image")


# --------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------


def _parse_factor(factor: int | Sequence[int] | str) -> tuple[int, ...]:
    if isinstance(factor, str):
        try:
            vals = tuple(int(v) for v in factor.replace("x", ",").split(","))
        except ValueError:
            raise ValueError(f"factor must be an int like 2 or ints like 1,2,2, got {factor!r}") from None
    elif isinstance(factor, (int, np.integer)) and not isinstance(factor, bool):
        vals = (int(factor),)
    else:
        try:
            vals = tuple(factor)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(f"factor must be an int like 2 or ints like 1,2,2, got {factor!r}") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            raise ValueError(f"factor must be an int like 2 or ints like 1,2,2, got {factor!r}")
    if not vals or any(v < 1 for v in vals):
        raise ValueError(f"factor must be >= 1 on every axis, got {factor!r}")
    return tuple(int(v) for v in vals)


def _check_axes(axes: str | None, known: str | None, shape: tuple[int, ...]) -> str:
    """The input's axis names (letters of tczyx), checked against the data."""
    if axes is None:
        if known is not None:
            axes = known
        elif len(shape) in _DEFAULT_AXES:
            axes = _DEFAULT_AXES[len(shape)]
        else:
            raise ValueError(f"the input has {len(shape)} dimensions (shape {shape}); say which they are with axes "
                             "(letters of tczyx)")
    axes = axes.lower()
    if len(axes) != len(shape):
        raise ValueError(f"axes {axes!r} names {len(axes)} axes but the input has {len(shape)} (shape {shape})")
    if any(a not in _AXIS_TYPES for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"axes must be distinct letters of tczyx, got {axes!r}")
    if not any(_AXIS_TYPES[a] == "space" for a in axes):
        raise ValueError(f"axes {axes!r} has no spatial axis (z, y or x) to pool")
    if sum(_AXIS_TYPES[a] == "space" for a in axes) < 2:
        raise ValueError(f"OME-Zarr images have 2 or 3 spatial axes, got axes {axes!r}")
    return axes


def _canonical(axes: str) -> list[int]:
    """The order OME-Zarr wants: time, channel, then the spatial axes in the order given."""
    rank = {"t": 0, "c": 1}
    return sorted(range(len(axes)), key=lambda i: (rank.get(axes[i], 2), i))


def _levels_for(shape: tuple[int, ...], spatial: list[int], factors: tuple[int, ...], levels: int | None,
                min_size: int | None, chunk: tuple[int, ...]) -> int:
    if levels is not None:
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
            raise ValueError(f"levels must be an int >= 1 (level 0 included), got {levels!r}")
        return int(levels)
    if all(f == 1 for f in factors):
        raise ValueError("a factor of 1 on every axis never shrinks the image: give levels, or a factor > 1")
    if min_size is None:
        limit = [chunk[a] for a in spatial]
    else:
        if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
            raise ValueError(f"min_size must be an int >= 1, got {min_size!r}")
        limit = [int(min_size)] * len(spatial)
    n = 1
    sizes = [shape[a] for a in spatial]
    while any(s > lim and f > 1 for s, lim, f in zip(sizes, limit, factors)):
        sizes = [-(-s // f) for s, f in zip(sizes, factors)]
        n += 1
    return n


# --------------------------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------------------------


def _finish_mean(sums: np.ndarray, F: tuple[int, ...], L0: tuple[int, ...], pooled: tuple[int, ...], dtype: Any,
                 block_info: Any = None) -> np.ndarray:
    """Level values from float64 block sums: each sum divided by the number of level-0 cells of its
    block (``min(F, L0 - i * F)`` along each pooled axis), rounded to nearest (ties to even) for
    integer and bool outputs."""
    loc = block_info[0]["array-location"]
    counts = []  # one factor per pooled axis, shaped to broadcast along it: exact integers
    for a, f, size in zip(pooled, F, L0):
        pos = np.arange(loc[a][0], loc[a][1], dtype=np.int64)
        shape = [1] * sums.ndim
        shape[a] = pos.size
        counts.append(np.minimum(f, size - pos * f).astype(np.float64).reshape(shape))
    dtype = np.dtype(dtype)
    out = np.empty(sums.shape, dtype)
    if out.size == 0:
        return out
    # slabs of about 0.5 MB of float64 along axis 0: a worker holds its tasks' blocks, not
    # full-size float64 temporaries of them
    step = max(1, (1 << 16) // max(1, sums[0].size))
    buf = np.empty((min(step, len(sums)),) + sums.shape[1:])
    for i in range(0, len(sums), step):
        count = np.ones((1,) * sums.ndim)
        for c in counts:
            count = count * (c[i:i + step] if c.shape[0] > 1 else c)
        part = sums[i:i + step]
        mean = np.divide(part, count, out=buf[:len(part)])
        if dtype.kind in "biu":
            np.rint(mean, out=mean)
        with np.errstate(over="ignore"):
            out[i:i + step] = mean
    return out


def _levels_graph(level0: Any, method: str, pooled: tuple[int, ...], factors: tuple[int, ...], n_levels: int,
                  chunks: tuple[int, ...], start: dict[int, Any]) -> dict[int, Any]:
    """The lazy arrays of levels 1 .. n_levels - 1 (each rechunked to the output chunks).

    ``start`` may hold finished levels (read back) from which max/min chains continue."""
    import dask.array as da

    from . import _geometry as geo
    from . import dask as lazy
    from .pooling import max_pool, min_pool, mode_pool

    out: dict[int, Any] = {}
    L0 = tuple(level0.shape[a] for a in pooled)

    def target(shape):
        return tuple(min(c, s) for c, s in zip(chunks, shape))

    op: Any
    if method in ("max", "min"):
        op = max_pool if method == "max" else min_pool
        cur = level0
        for lev in range(1, n_levels):
            if lev - 1 in start:
                cur = start[lev - 1]
            y = op(cur, factors, ceil_mode=True, axes=pooled)
            out[lev] = cur = y.rechunk(target(y.shape))
    elif method == "mode":
        op = mode_pool
        for lev in range(1, n_levels):
            F = tuple(f**lev for f in factors)
            y = op(level0, F, ceil_mode=True, axes=pooled)
            out[lev] = y.rechunk(target(y.shape))
    else:
        f64 = np.dtype(np.float64)
        sums = level0
        for lev in range(1, n_levels):
            plan = geo.make_plan(sums.shape, factors, ceil_mode=True, axes=pooled)
            s = lazy.pool_blocks(sums, plan, _sum_block, f64, "pyramid_sums")
            sums = s.rechunk(_sum_chunks(target(s.shape), pooled, level0.dtype))
            F = tuple(f**lev for f in factors)
            mean = da.map_blocks(_finish_mean, sums, F, L0, pooled, level0.dtype, dtype=level0.dtype,
                                 meta=np.empty((0,) * level0.ndim, level0.dtype))
            out[lev] = mean.rechunk(target(s.shape))
    return out


def _sum_chunks(chunks: tuple[int, ...], pooled: tuple[int, ...], dtype: Any) -> tuple[int, ...]:
    """The chunks of a mean level's float64 sums: the level's output ``chunks``, halved along the
    pooled axes (the largest first) until a chunk of sums takes no more bytes than a chunk of the
    output (of ``dtype``).

    A task then holds float64 blocks no larger than the output's own (the sums of a 128**3 uint16
    chunk would take 16 MB, four times the chunk), and the finished blocks are joined into the
    output's chunks in its own dtype."""
    c = list(chunks)
    budget = np.dtype(dtype).itemsize * int(np.prod(chunks))
    while 8 * int(np.prod(c)) > budget:
        a = max(pooled, key=lambda i: c[i])
        if c[a] == 1:
            break
        c[a] = -(-c[a] // 2)
    return tuple(c)


def _sum_block(block: np.ndarray, plan: Any, los: tuple) -> np.ndarray:
    """Raw float64 window sums of one block (the mean pyramid's carried sums)."""
    from . import _engine as E

    return E.pool_sums(block, plan, np.float64, None)


# --------------------------------------------------------------------------------------------
# OME-Zarr metadata
# --------------------------------------------------------------------------------------------


def _multiscales(axes: str, n_levels: int, pooled: tuple[int, ...], factors: tuple[int, ...], scale0, trans0,
                 units, method: str, name: str, params: dict) -> dict:
    from . import __version__

    ax = []
    for i, a in enumerate(axes):
        entry: dict[str, Any] = {"name": a, "type": _AXIS_TYPES[a]}
        unit = units[i] if units is not None else None
        if _AXIS_TYPES[a] == "space":
            entry["unit"] = unit or "micrometer"
        elif _AXIS_TYPES[a] == "time":
            entry["unit"] = unit or "second"
        ax.append(entry)
    datasets = []
    for lev in range(n_levels):
        scale, trans = list(scale0), list(trans0)
        for p, f in zip(pooled, factors):
            F = f**lev
            scale[p] = scale0[p] * F
            trans[p] = trans0[p] + (F - 1) * scale0[p] / 2  # a block's centre: between its source pixels
        datasets.append({"path": str(lev), "coordinateTransformations": [
            {"type": "scale", "scale": scale}, {"type": "translation", "translation": trans}]})
    return {"version": "0.5", "multiscales": [{
        "name": name, "axes": ax, "datasets": datasets, "type": method,
        "metadata": {"description": f"block {method} over factor**level cells of each spatial axis; the last "
                                    "partial block over its real cells only",
                     "method": "poolkit.pyramid", "version": __version__, "kwargs": params}}]}


# --------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------


#: seconds between progress reports (the scheduler's feed sleeps this long between them)
_BAR_INTERVAL = 0.2


def _watch(futures: list, client: Any, progress: Callable[[int, int], None]) -> threading.Thread:
    """Report (tasks done, total) of ``futures``' whole graph from the scheduler's progress plugin,
    in a thread, until they finish."""
    from distributed.diagnostics.progressbar import TextProgressBar

    class _Bar(TextProgressBar):
        def _draw_bar(self, remaining, all, **kwargs):
            progress(all - remaining, all)

        def _draw_stop(self, **kwargs):
            pass

    def run():
        try:
            _Bar(futures, scheduler=client.scheduler.address, interval=f"{_BAR_INTERVAL}s", complete=True)
        except Exception:  # the bar is a courtesy: never let it fail the run
            pass

    t = threading.Thread(target=run, name="poolkit-pyramid-progress", daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------------------------
# the function
# --------------------------------------------------------------------------------------------


def pyramid(input: str, output: str, *, method: str = "mean", factor: int | Sequence[int] | str = 2,
            levels: int | None = None, min_size: int | None = None, axes: str | None = None,
            chunks: int | Sequence[int] | None = None, scheduler: str | Any | None = None, workers: int | None = None,
            memory_limit: str | int | None = None, overwrite: bool = False,
            progress: Callable[[int, int], None] | None = None) -> PyramidResult:
    """Write a multiscale OME-Zarr 0.5 image of ``input``: level 0 and its block reductions.

    Parameters
    ----------
    input : str
        ``.npy``, TIFF, PNG/JPEG, a Zarr array, or an OME-Zarr image (its level 0 is used).
    output : str
        The OME-Zarr directory to write (Zarr v3).
    method : {"mean", "max", "min", "mode"}, optional
        The block reduction.  ``mode`` (most frequent value, ties to the smallest) is for label
        images.
    factor : int, sequence of int, or str, optional
        Downscaling per level: one value for every spatial axis, or one per spatial axis
        (``"1,2,2"`` keeps z).  Non-spatial axes (``t``, ``c``) are never pooled.
    levels : int, optional
        The number of levels written, level 0 included.
    min_size : int, optional
        Instead of ``levels``: add levels until no spatial axis that shrinks is larger than
        this.  By default, until each spatial axis fits in one chunk.
    axes : str, optional
        The input's axes as letters of ``tczyx`` (``"zyx"``, ``"cyx"``...).  Default: from the
        OME-Zarr metadata, else ``yx``, ``zyx``, ``czyx``, ``tczyx`` by dimension (``yxc`` for
        a colour PNG/JPEG).  Written in OME-Zarr's order (t, c, then space).
    chunks : int or sequence of int, optional
        Output chunk size of each spatial axis (t and c chunks are 1).  Default: the input's
        own spatial chunks for a Zarr input, else 256 (3-D) or 1024 (2-D).
    scheduler : str or distributed.Client, optional
        The address of a running Dask scheduler, or a client.  Default: a ``LocalCluster``
        started for the run (``workers`` processes of one thread, ``memory_limit`` each).
    workers : int, optional
        Local cluster only: the number of worker processes (default: the number of CPUs).
    memory_limit : str or int, optional
        Local cluster only: each worker's memory limit (``"2GB"``; default: Dask's share of the
        machine's memory).
    overwrite : bool, optional
        Replace ``output`` if it exists.  Without it an existing output is an error -- unless it
        is an unfinished pyramid of the same input and arguments, which is resumed.
    progress : callable, optional
        Called as ``progress(done, total)`` with the graph's tasks as they finish.

    Returns
    -------
    result : PyramidResult
        Path, level shapes (in the output's axis order), axes, task count, the levels computed
        by this call, wall time.

    Notes
    -----
    Level ``l`` equals the reduction of level 0 over blocks of ``factor**l`` cells (the last,
    partial block over its real cells): max and min chain from level to level, mean carries
    float64 sums and divides once per level, mode is computed from level 0.  Integer means are
    rounded to nearest, ties to even.  Each level's ``scale`` is ``factor**l`` times level 0's,
    and its ``translation`` puts a pixel at the centre of its block (``(factor**l - 1) / 2``
    level-0 pixels in).

    Examples
    --------
    >>> import numpy as np, tempfile, os, zarr
    >>> import poolkit
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "img.npy"), np.arange(36, dtype=np.uint16).reshape(6, 6))
    >>> r = poolkit.pyramid(os.path.join(d, "img.npy"), os.path.join(d, "img.zarr"), levels=3,
    ...                     workers=1, memory_limit="1GB")
    >>> r.shapes
    ((6, 6), (3, 3), (2, 2))
    >>> zarr.open_group(os.path.join(d, "img.zarr"))["2"][:]  # means 10.5, 13.5 / 28.5, 31.5, to even
    array([[10, 14],
           [28, 32]], dtype=uint16)
    """
    _require()
    import dask.array as da
    import zarr

    t_start = time.monotonic()
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    method = method.lower()
    if levels is not None and min_size is not None:
        raise ValueError("give levels or min_size, not both")
    if scheduler is not None and (workers is not None or memory_limit is not None):
        raise ValueError("workers and memory_limit set up the local cluster; with a scheduler they do not apply")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    factors_in = _parse_factor(factor)
    out_path = Path(output)

    img = open_image(input)
    src = img.data
    names = _check_axes(axes, img.axes, src.shape)
    order = _canonical(names)
    axes_out = "".join(names[i] for i in order)
    level0 = src.transpose(order) if order != list(range(src.ndim)) else src
    pooled = tuple(i for i, a in enumerate(axes_out) if _AXIS_TYPES[a] == "space")
    if len(factors_in) == 1:
        factors = factors_in * len(pooled)
    elif len(factors_in) == len(pooled):
        factors = factors_in
    else:
        raise ValueError(f"factor needs 1 or {len(pooled)} values (one per spatial axis of {axes_out!r}), "
                         f"got {factor!r}")
    if chunks is None:
        own = img.axes is not None or Path(input).is_dir()
        default = 256 if len(pooled) == 3 else 1024
        spatial_chunks = [max(level0.chunks[a]) if own else default for a in pooled]
    else:
        cl = (chunks,) if isinstance(chunks, int) else tuple(chunks)
        if len(cl) == 1:
            cl = cl * len(pooled)
        if len(cl) != len(pooled) or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in cl):
            raise ValueError(f"chunks must be an int >= 1, or one per spatial axis ({len(pooled)}), got {chunks!r}")
        spatial_chunks = list(cl)
    out_chunks = [1] * level0.ndim
    for a, c in zip(pooled, spatial_chunks):
        out_chunks[a] = min(c, level0.shape[a])
    out_chunks_t = tuple(out_chunks)
    n_levels = _levels_for(level0.shape, list(pooled), factors, levels, min_size, out_chunks_t)

    ndim = level0.ndim
    scale0 = [1.0] * ndim
    trans0 = [0.0] * ndim
    units = None
    if img.scale is not None:
        scale0 = [img.scale[i] for i in order]
    if img.translation is not None:
        trans0 = [img.translation[i] for i in order]
    if img.units is not None:
        units = tuple(img.units[i] for i in order)
    params = {"input": os.path.abspath(input), "method": method, "factor": list(factors), "levels": n_levels,
              "axes": axes_out, "chunks": list(out_chunks_t), "shape": list(level0.shape), "dtype": str(level0.dtype)}

    # the output: new, replaced, or an unfinished run of the same job resumed
    done: list[int] = []
    if out_path.exists():
        previous = _previous_run(out_path)
        if overwrite:
            shutil.rmtree(out_path) if out_path.is_dir() else out_path.unlink()
        elif previous is not None and previous.get("params") == params and not previous.get("complete"):
            done = sorted(int(v) for v in previous.get("levels_done", []))
        else:
            raise OSError(f"output {str(output)!r} exists (pass overwrite=True / --overwrite to replace it)")
    shapes = [tuple(level0.shape)]
    for lev in range(1, n_levels):
        shapes.append(tuple(-(-s // f**lev) if a in pooled else s
                            for a, s in enumerate(level0.shape)
                            for f in [factors[pooled.index(a)] if a in pooled else 1]))
    copied: tuple[int, ...] = ()
    if not done:
        root: Any = zarr.open_group(str(out_path), mode="w", zarr_format=3)
        root.attrs["ome"] = _multiscales(axes_out, n_levels, pooled, factors, scale0, trans0, units, method, img.name,
                                         params)
        root.attrs["poolkit"] = {"params": params, "levels_done": [], "complete": False}
        raw = _raw_copy_source(img, order, out_chunks_t)
        for lev, shape in enumerate(shapes):
            if lev == 0 and raw is not None:
                continue
            root.create_array(str(lev), shape=shape, chunks=tuple(min(c, s) for c, s in zip(out_chunks_t, shape)),
                              dtype=level0.dtype, fill_value=0, dimension_names=list(axes_out))
        if raw is not None:  # level 0 is the input: its encoded chunks copied as they are
            _copy_array(raw, out_path / "0", list(axes_out))
            done, copied = [0], (0,)
            root.attrs["poolkit"] = {"params": params, "levels_done": [0], "complete": False}
    root = zarr.open_group(str(out_path), mode="r+", zarr_format=3)

    # the graph: level 0 (the input, in output chunks), then every level not yet written
    start: dict[int, Any] = {}
    for lev in done:
        start[lev] = da.from_zarr(root[str(lev)])
    arrays = _levels_graph(start.get(0, level0), method, pooled, factors, n_levels, out_chunks_t,
                           {k: v for k, v in start.items() if k > 0})
    if 0 not in done:  # level 0 in the output's chunks (no rechunk when the input's already are)
        same = level0.chunks == da.core.normalize_chunks(out_chunks_t, level0.shape)
        arrays[0] = level0 if same else level0.rechunk(out_chunks_t)
    todo = sorted(lev for lev in arrays if lev not in done)
    # da.store, not da.to_zarr (which rechunks to "auto" chunks): every level's blocks are its Zarr
    # chunks, so each task writes whole chunks and no two tasks share one
    stores = {lev: da.store(arrays[lev], root[str(lev)], lock=False, compute=False) for lev in todo}
    from .dask import task_count

    # the graph's tasks: the levels' arrays, and one store task per chunk written
    n_tasks = task_count(*(arrays[lev] for lev in todo)) + sum(arrays[lev].npartitions for lev in todo)

    client, cluster = _client(scheduler, workers, memory_limit)
    try:
        from distributed import as_completed

        futures = client.compute([stores[lev] for lev in todo])
        by_future = dict(zip((f.key for f in futures), todo))
        watcher = _watch(futures, client, progress) if progress is not None else None
        for fut in as_completed(futures, loop=client.loop):
            fut.result()
            done.append(by_future[fut.key])
            root.attrs["poolkit"] = {"params": params, "levels_done": sorted(done), "complete": False}
        if watcher is not None:
            watcher.join(timeout=5)
            # the scheduler's feed notices the bar's closed stream on its next beat: closing the
            # cluster before that logs a spurious error
            time.sleep(2 * _BAR_INTERVAL)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    root.attrs["poolkit"] = {"params": params, "levels_done": list(range(n_levels)), "complete": True}
    return PyramidResult(str(out_path), tuple(shapes), axes_out, n_tasks, copied + tuple(todo),
                         time.monotonic() - t_start)


def _raw_copy_source(img: _Image, order: list[int], chunks: tuple[int, ...]) -> Path | None:
    """The input's Zarr array directory when level 0 can be its chunk files copied byte for byte:
    a Zarr v3 array on a file system, unsharded, on a regular grid of exactly the output's chunks,
    with its axes already in the output's order."""
    if img.array_path is None or order != sorted(order):
        return None
    path = Path(img.array_path)
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    codecs = meta.get("codecs") or [{}]
    if (meta.get("zarr_format") != 3 or meta.get("node_type") != "array"
            or meta.get("chunk_grid", {}).get("name") != "regular"
            or any(c.get("name") == "sharding_indexed" for c in codecs)
            or tuple(meta["chunk_grid"]["configuration"]["chunk_shape"]) != tuple(chunks)
            or tuple(meta.get("shape", ())) != tuple(img.data.shape)):
        return None
    return path


def _copy_array(src: Path, dst: Path, dimension_names: list[str]) -> None:
    """Copy a Zarr v3 array directory: its chunk files as they are (threads: the work is I/O),
    then its metadata with the output's dimension names and no attributes."""
    from concurrent.futures import ThreadPoolExecutor

    files = [f for f in src.rglob("*") if f.is_file() and f.relative_to(src).parts != ("zarr.json",)]
    for d in {(dst / f.relative_to(src)).parent for f in files} | {dst}:
        d.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda f: shutil.copyfile(f, dst / f.relative_to(src)), files))
    meta = json.loads((src / "zarr.json").read_text())
    meta["dimension_names"] = dimension_names
    meta["attributes"] = {}
    (dst / "zarr.json").write_text(json.dumps(meta, indent=2))


def _previous_run(path: Path) -> dict | None:
    try:
        import zarr

        got: Any = dict(zarr.open_group(str(path), mode="r").attrs).get("poolkit")
        return got if isinstance(got, dict) else None
    except Exception:
        return None


def _client(scheduler: Any, workers: int | None, memory_limit: Any) -> tuple[Any, Any]:
    """(client, the cluster started for the run or None)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if isinstance(scheduler, Client):
            return Client(scheduler.scheduler.address, set_as_default=False), None
        try:
            return Client(scheduler, timeout="10s", set_as_default=False), None
        except (OSError, TimeoutError) as exc:
            raise OSError(f"cannot reach the Dask scheduler at {scheduler!r} ({' '.join(str(exc).split())})") from None
    n = workers or os.cpu_count() or 1
    env = {"NUMBA_NUM_THREADS": "1"}  # one kernel thread per single-threaded worker: no oversubscription
    if os.environ.get("NUMBA_CACHE_DIR"):
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    with warnings.catch_warnings():  # the scheduler's HTTP endpoint takes another port if 8787 is busy
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               memory_limit=memory_limit if memory_limit is not None else "auto",
                               dashboard_address=None, env=env, silence_logs=40)
    return Client(cluster, set_as_default=False), cluster


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------

_PYRAMID_HELP = """\
Write a multiscale OME-Zarr 0.5 image (Zarr v3) of INPUT: level 0 and its block reductions over
factor**level cells of each spatial axis (mean, max, min, or mode for label images), computed on a
Dask distributed cluster -- a local one by default, or --scheduler ADDRESS.  INPUT: .npy, TIFF,
PNG/JPEG, a Zarr array, or an OME-Zarr image (level 0).  Needs the dask extra:
pip install 'poolkit[dask]'."""

_PYRAMID_EPILOG = """\
examples:
  poolkit pyramid volume.tif volume.zarr --factor 1,2,2 --levels 4
  poolkit pyramid labels.npy labels.zarr --method mode --axes zyx
  poolkit pyramid big.zarr big-ms.zarr --workers 2 --memory-limit 2GB
  poolkit pyramid big.zarr big-ms.zarr --scheduler tcp://10.0.0.5:8786"""


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an int, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {v}")
        return v

    parse.__name__ = name
    return parse


def add_pyramid(sub: Any) -> argparse.ArgumentParser:
    """Add the ``pyramid`` subcommand to ``poolkit``'s subparsers (the conventions of
    :mod:`poolkit.cli`: sets ``run(args) -> int``; bad input raises ValueError/OSError, one line
    and exit status 2)."""
    from .cli import _Formatter

    p = sub.add_parser("pyramid", help="multiscale OME-Zarr images (mean, max, min, mode) on a Dask cluster",
                       description=_PYRAMID_HELP, epilog=_PYRAMID_EPILOG, formatter_class=_Formatter)
    p.add_argument("input", metavar="INPUT", help=".npy, TIFF, PNG/JPEG, Zarr array or OME-Zarr image")
    p.add_argument("output", metavar="OUTPUT.zarr", help="the OME-Zarr directory to write")
    p.add_argument("--method", choices=METHODS, default="mean", help="block reduction (default: mean)")
    p.add_argument("--factor", default="2", metavar="F", help="per level: 2, or one per spatial axis like 1,2,2")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--levels", type=_positive_int("--levels"), metavar="N", help="levels written, level 0 included")
    g.add_argument("--min-size", type=_positive_int("--min-size"), metavar="S",
                   help="add levels until every shrinking spatial axis is <= S (default: one chunk)")
    p.add_argument("--axes", metavar="AXES", help="the input's axes, letters of tczyx (default: from the input)")
    p.add_argument("--chunks", metavar="C", help="output chunk size per spatial axis: 256 or 64,256,256")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=_positive_int("--workers"), metavar="N",
                   help="local cluster: worker processes (default: the number of CPUs)")
    p.add_argument("--memory-limit", metavar="SIZE", help="local cluster: memory limit per worker, e.g. 2GB")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(run=_run_pyramid)
    return p


def _run_pyramid(args: argparse.Namespace) -> int:
    from .cli import _ProgressBar

    try:
        _require()
    except MissingDask as exc:
        print(f"{args.prog}: {exc}", file=sys.stderr)
        return 1
    chunks: Any = None
    if args.chunks is not None:
        try:
            chunks = tuple(int(v) for v in args.chunks.replace("x", ",").split(","))
        except ValueError:
            raise ValueError(f"--chunks must be an int like 256 or ints like 64,256,256, got {args.chunks!r}") from None
    bar = _ProgressBar("pyramid")
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= (0.5 if bar.tty else 2.0):
            last[0] = now
            bar.update(done, total, "tasks")

    try:
        r = pyramid(args.input, args.output, method=args.method, factor=args.factor, levels=args.levels,
                    min_size=args.min_size, axes=args.axes, chunks=chunks, scheduler=args.scheduler,
                    workers=args.workers, memory_limit=args.memory_limit, overwrite=args.overwrite,
                    progress=progress)
    finally:
        bar.close()
    sizes = ", ".join("x".join(map(str, s)) for s in r.shapes)
    print(f"wrote {Path(r.path).resolve()}: {len(r.shapes)} levels ({r.axes}: {sizes}), {args.method}, "
          f"{r.tasks} tasks, {r.seconds:.1f} s")
    return 0
