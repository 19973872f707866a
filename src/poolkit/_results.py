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
over memory held by a :class:`_Lease`: the array's ``base``.  When the last array over that memory
is gone, the lease's ``__del__`` hands the memory back, and the next result of exactly that many
bytes takes it, its pages already mapped -- as onnxruntime's arena and PyTorch's CUDA caching
allocator keep theirs.  Free memory is kept up to :func:`get_result_cache` bytes in all (least
recently freed dropped first); :func:`set_result_cache` changes that, 0 turning the reuse off.

Memory is never handed out twice: a lease is dropped only when no array refers to it (CPython
frees it the moment its count falls to 0; in a reference cycle, when the cycle is collected), and
its memory is then no one's.
"""

from __future__ import annotations

import collections
import os
import threading

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["get_result_cache", "set_result_cache"]

#: Results of at least this many bytes (4 MiB) are made over reusable memory: calls that write
#: them take 0.1 ms or more, so the 2 us that a result over a lease costs is 2% at most.
RECYCLE_FROM = 1 << 22

#: The default most bytes of freed results kept for reuse.
DEFAULT_CACHE_BYTES = 1 << 30

_limit = DEFAULT_CACHE_BYTES
_lock = threading.Lock()
#: Buffers (uint8 arrays) handed back by a lease's __del__, not yet filed.  __del__ may run
#: inside :func:`result_array` itself (a garbage collection set off by an allocation, in the thread
#: holding the lock), so it only appends here (atomic) and never takes the lock.
_returned: collections.deque = collections.deque()
#: Filed free buffers, least recently freed first: id -> buffer; and their total size.
_free: dict[int, np.ndarray] = {}
_free_bytes = 0


class _Lease:
    """The ``base`` of a result made over reusable memory: exposes ``buffer`` through the array
    interface, and hands it back when the last array over it is gone."""

    __slots__ = ("buffer", "__array_interface__")

    def __init__(self, buffer: np.ndarray, shape: tuple[int, ...], dtype: np.dtype):
        self.buffer = buffer
        self.__array_interface__ = {"shape": shape, "typestr": dtype.str, "data": (buffer.ctypes.data, False),
                                    "version": 3}

    def __del__(self):
        returned = _returned  # None once the interpreter is tearing this module down
        if returned is not None:
            returned.append(self.buffer)


def _file_returned() -> None:
    """Move the handed-back buffers into ``_free`` and drop the oldest beyond the limit (lock held)."""
    global _free_bytes
    while _returned:
        buf = _returned.popleft()
        if _limit and buf.nbytes <= _limit and id(buf) not in _free:
            _free[id(buf)] = buf
            _free_bytes += buf.nbytes
    while _free_bytes > _limit and _free:
        _free_bytes -= _free.pop(next(iter(_free))).nbytes


def _take(nbytes: int) -> np.ndarray | None:
    """A free buffer of exactly ``nbytes`` (the most recently freed), or None."""
    global _free_bytes
    with _lock:
        _file_returned()
        for key in reversed(_free):
            if _free[key].nbytes == nbytes:
                _free_bytes -= nbytes
                return _free.pop(key)
    return None


def result_array(shape: tuple[int, ...], dtype: DTypeLike) -> tuple[np.ndarray, bool]:
    """``(np.empty(shape, dtype), reused)``: a large result (RECYCLE_FROM bytes or more, and the
    reuse on) over memory a freed result held when one of exactly its size is free (``reused``
    True: its pages are mapped), else over new memory that is kept for reuse once freed."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes < RECYCLE_FROM or not _limit or dtype.hasobject:
        return np.empty(shape, dtype), False
    buf = _take(nbytes)
    reused = buf is not None
    if buf is None:
        buf = np.empty(nbytes, np.uint8)
    return np.asarray(_Lease(buf, tuple(shape), dtype)), reused


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

    A result of 4 MiB or more is made over memory that poolkit takes back when the last array
    over it is gone (the array's ``base`` is the holder of that memory), and the next result of
    exactly that many bytes reuses it: its pages are mapped already, where new memory would have
    each page faulted in and zeroed by the operating system on its first write, which costs as much
    as a pooling pass (see BENCHMARKS.md).  A layer called batch after batch then pays for its
    result's memory once.  Freed memory is kept up to ``nbytes`` in all, the least recently freed
    dropped first; results stay ordinary writeable, C-contiguous NumPy arrays.

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
        _file_returned()


def _new_lock() -> None:  # a forked child: the lock may have been held by a thread that is not there
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock)
