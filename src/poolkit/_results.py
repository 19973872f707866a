"""The memory of large results, kept for the next result of the same size.

A large array from ``np.empty`` is often memory the operating system maps fresh for the call, and
the first write to each of its pages is a page fault in which the kernel zeroes that page.  glibc
serves every request of 32 MiB or more with its own ``mmap`` and unmaps it on ``free``; smaller
ones come from its heap, whose free pages it keeps or returns depending on what else the process
allocates.  For a pooling call that writes a large result once, those faults cost as much as the
pooling: a 1-D max by 4 of (8, 64, 65536) float32 took 7.0 ms with a new 32 MiB result and 3.6 ms
written into an ``out=`` array, a 3x3 max backward of (32, 64, 112, 112) 10.5 against 5.0 ms; a
2x2 max of (32, 128, 56, 56), 12.8 MB, 2.07 against 1.19 ms in a process that also ran PyTorch
and onnxruntime (BENCHMARKS.md).

A network calls the same layer batch after batch, and each result is dropped before the next
call of that layer makes one of the same size.  So a result of RECYCLE_FROM bytes or more is made
over a buffer (a uint8 array: the result's ``base``) that this module keeps, and the next result
of exactly that many bytes takes a buffer no array refers to any more, its pages already mapped --
as onnxruntime's arena and PyTorch's CUDA caching allocator keep theirs.  Free buffers are kept up
to :func:`get_result_cache` bytes in all (those lent longest ago dropped first);
:func:`set_result_cache` changes that, 0 turning the reuse off.

A buffer is free when its reference count is back to what this module's own reference gives.
Every array over a buffer refers to it: the result, and every view of the result, whose ``base``
NumPy sets to the buffer itself (the array that owns the memory).  So a buffer with a live array
over it is never handed out again; one is taken, and its result made, under the module's lock.
(Until 2026-12-07 a result's base was a holder whose ``__del__`` gave the buffer back, exposed
through the array interface: 57 us to make with cold caches against 26 us now, right before
a pooling kernel, on the Intel Xeon VM; see "Prepared large calls" in BENCHMARKS.md.)
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["get_result_cache", "set_result_cache"]

#: Results of at least this many bytes (4 MiB) are made over reusable memory: calls that write
#: them take 0.1 ms or more, so the microsecond a reused buffer costs is 1% at most.
RECYCLE_FROM = 1 << 22

#: The default most bytes of free buffers kept for reuse.
DEFAULT_CACHE_BYTES = 1 << 30

_limit = DEFAULT_CACHE_BYTES
_lock = threading.Lock()
#: Every buffer made for results and kept (lent or free), the least recently lent first.
_buffers: list[np.ndarray] = []


def _refs(buffers: list[np.ndarray], i: int) -> int:
    """The reference count of ``buffers[i]``, as read here (see _ALONE)."""
    return sys.getrefcount(buffers[i])


#: :func:`_refs` of a buffer no array refers to: only the list's reference (and the call's own).
_ALONE = _refs([np.empty(1, np.uint8)], 0)


def _free() -> list[int]:
    """The indices in ``_buffers`` of the free buffers (lock held)."""
    return [i for i in range(len(_buffers)) if _refs(_buffers, i) == _ALONE]


def _trim() -> None:
    """Drop free buffers beyond the limit, the least recently lent first (lock held); with the
    limit at 0, forget every buffer (those still lent are then freed as any array is)."""
    if not _limit:
        _buffers.clear()
        return
    free = _free()
    extra = sum(_buffers[i].nbytes for i in free) - _limit
    gone = set()
    for i in free:
        if extra <= 0:
            break
        gone.add(i)
        extra -= _buffers[i].nbytes
    if gone:
        _buffers[:] = [b for i, b in enumerate(_buffers) if i not in gone]


def result_array(shape: tuple[int, ...], dtype: DTypeLike) -> tuple[np.ndarray, bool]:
    """``(np.empty(shape, dtype), reused)``: a large result (RECYCLE_FROM bytes or more, and the
    reuse on) over a free buffer of exactly its size when there is one, the most recently lent
    (``reused`` True: its pages are mapped), else over a new buffer that is kept for reuse once
    free."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes < RECYCLE_FROM or not _limit or dtype.hasobject:
        return np.empty(shape, dtype), False
    with _lock:
        for i in range(len(_buffers) - 1, -1, -1):
            if _buffers[i].nbytes == nbytes and _refs(_buffers, i) == _ALONE:
                buf = _buffers.pop(i)
                _buffers.append(buf)
                return np.ndarray(shape, dtype, buf), True
        buf = np.empty(nbytes, np.uint8)
        _buffers.append(buf)
        _trim()
        return np.ndarray(shape, dtype, buf), False


def get_result_cache() -> int:
    """The most bytes of freed large results poolkit keeps to reuse for new results.

    Returns
    -------
    nbytes : int
        1 GiB (``2**30``) by default; 0 when the reuse is off.  See :func:`set_result_cache`.

    Examples
    --------
    >>> import poolkit
    >>> poolkit.get_result_cache() >= 0
    True
    """
    return _limit


def set_result_cache(nbytes: int) -> None:
    """Set the most bytes of freed large results poolkit keeps to reuse (0: keep none).

    A result of 4 MiB or more is made over memory that poolkit keeps (the array's ``base``, a uint8
    array), and once no array refers to that memory any more, the next result of exactly that many
    bytes reuses it: its pages are mapped already, where new memory would have each page faulted in
    and zeroed by the operating system on its first write, which costs as much as a pooling pass
    (see BENCHMARKS.md).  A layer called batch after batch then pays for its result's memory once.
    Free memory is kept up to ``nbytes`` in all, that lent longest ago dropped first; results stay
    ordinary writeable, C-contiguous NumPy arrays.

    Parameters
    ----------
    nbytes : int
        The limit in bytes, >= 0.  Lowering it drops free memory beyond the new limit now.

    Examples
    --------
    >>> import poolkit
    >>> before = poolkit.get_result_cache()
    >>> poolkit.set_result_cache(0)        # every result gets new memory
    >>> poolkit.get_result_cache()
    0
    >>> poolkit.set_result_cache(before)
    """
    global _limit
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, (int, np.integer)):
        raise TypeError(f"nbytes must be an int, got {nbytes!r}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes!r}")
    with _lock:
        _limit = int(nbytes)
        _trim()


def _new_lock() -> None:  # a forked child: the lock may have been held by a thread that is not there
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock)
