"""The engine between the public functions and the kernels: kernel inputs and dtype rules, the
helper threads that run kernel chunks, the compile notices, and the reductions and scatters every op
is built from.

Public functions validate their arguments and build a plan (:mod:`poolkit._geometry`); the
functions here pick the kernel variant a plan needs (only that one is compiled), allocate outputs
and scratch, and run the kernel over chunks of its work.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable

import numba
import numpy as np
from numba.core import event as _numba_event
from numpy.typing import DTypeLike

from . import _geometry as geo
from . import _kernels as K
from . import _validate as V
from ._results import result_array

__all__ = ["get_num_threads", "set_num_threads"]

logger = logging.getLogger("poolkit")
logger.addHandler(logging.NullHandler())

# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------

#: The dtype of window sums unless the caller asks for float32 sums (``acc_dtype``).
F64 = np.dtype(np.float64)
#: Calls touching fewer elements than this run in the calling thread only: handing chunks to the
#: pool costs more than the work itself.  On the Intel Xeon VM, timed as the benchmark suite times
#: (medians, one thread against two): (4, 8, 56, 56) float32, 125 440 elements, 3x3 s2 max 0.041
#: against 0.056 ms and a channels-last 2x2 average 0.045 against 0.062 ms; at 250 880 elements
#: 1.08-1.11 x; a 3x3 s1 average of 200 704 elements 0.138 against 0.111 ms (it does more per
#: element).  Two threads pay once each chunk outlasts the helper's start (a settling pause, then
#: its Python, 20-25 us).
SERIAL_BELOW = 1 << 17
#: Calls touching fewer elements than this split their work into one chunk per thread, larger
#: ones into 4 per thread (taken in turn, so that a slow core does not hold up the call).  Each
#: chunk returns to Python for the next, and two threads asking for the GIL at once cost the
#: loser a 20-30 us wake-up: in a call of under a millisecond that is the whole gain of a chunk.
FEW_CHUNKS_BELOW = 1 << 22
#: Global sums of inputs smaller than this run in the calling thread: a global sum does little per
#: element, so waking the helper costs about what the second core saves.  Larger ones run on the
#: team as native calls, the helpers taking their chunks without Python (:func:`_native_sums`).
#: On the Intel Xeon VM, (n, 7, 7, 512) float32 timed as the benchmark suite times (medians, one
#: thread against two, two runs): n = 32 (3.2 MB) 0.086-0.104 against 0.13-0.15 ms; n = 16 (1.6
#: MB) 0.035-0.058 against 0.043-0.048 ms; n = 8 (0.8 MB) 0.026-0.036 against 0.019-0.022 ms.
#: Global maxima stay on the pool whatever their size: one thread measured slower for them (0.28
#: against 0.20 ms in cache).
WHOLE_SERIAL_BYTES = 1 << 21

#: Outputs of this many bytes or more that the pool's threads fill (the backward passes, which
#: write a gradient the size of the input) are first touched by the calling thread, once per 4 KiB
#: page: page faults taken by two threads at once made a 2x2 max backward take 10-18 ms instead of
#: 5-7 ms in stretches of a run on this machine; faulted by one thread it took a steady 7 ms.
PREFAULT_BYTES = 1 << 23

_team_lock = threading.Lock()
_n_threads: int | None = None
_local = threading.local()


#: How long a helper keeps watching for the next call after finishing one, and how long the
#: calling thread watches for its helpers to finish, before either blocks on a lock (which costs
#: about 20 us to wake from here).  Back-to-back calls, as a network's layers make, find the
#: helpers awake; a helper idle for longer sleeps and costs no CPU.
SPIN_IDLE_S = 200e-6
SPIN_DONE_S = 2e-3
#: How long a helper that saw a call published waits before it asks for the GIL (see
#: :func:`poolkit._kernels.sync.spin`): longer than the Python the calling thread runs between
#: publishing and releasing the GIL in its first kernel.  That Python runs with cold caches right
#: after the previous call's kernel: on the Intel Xeon VM, a (32, 7, 7, 512) global average on two
#: threads back to back took a median 169-174 us with 2 us, 150-161 with 5, 101-126 with 10 and
#: 88-119 with 14-20 (a helper asking too early sleeps until the GIL is free, 20-70 us here); see
#: "Waking from idle" in BENCHMARKS.md.
SETTLE_S = 10e-6
#: How often a spinning thread gives up its CPU (``sched_yield``) instead of pausing: a spinner
#: that shares a CPU with the thread it waits for would otherwise hold it until the scheduler's
#: time slice ends (see "Waking from idle" in BENCHMARKS.md).
YIELD_EVERY_S = 20e-6


def _cpu_reader() -> Callable[[], int] | None:
    """libc's ``sched_getcpu`` (the CPU the calling thread runs on), or None where there is none.

    Called through ``PyDLL``, which keeps the GIL: a ``CDLL`` function releases it and takes it
    back, and a helper doing that as it starts its part of a call lost the GIL to the caller and
    slept 20-70 us for it (measured on a (4, 7, 7, 512) global average on two threads)."""
    try:
        getcpu = ctypes.PyDLL(None).sched_getcpu
    except (OSError, AttributeError, TypeError):
        return None
    getcpu.restype, getcpu.argtypes = ctypes.c_int, []
    return getcpu if getcpu() >= 0 else None


def _move_off(cpu: int) -> None:
    """Move the calling thread off ``cpu`` to another CPU it may run on, then give it back the CPUs
    it had: its affinity is narrowed only for the move.  Nothing when ``cpu`` is its only one, or
    where the affinity cannot be set."""
    try:
        allowed = os.sched_getaffinity(0)
        others = allowed - {cpu}
        if others:
            os.sched_setaffinity(0, others)
            os.sched_setaffinity(0, allowed)
    except (AttributeError, OSError):
        pass


def _keep_off(tid: int, cpu: int, last: tuple[int, frozenset] | None) -> tuple[int, frozenset] | None:
    """Narrow the affinity of thread ``tid`` (a helper) to its CPUs without ``cpu`` (a caller's),
    giving back first the CPU that ``last`` (what the previous call returned for it: the CPU taken
    away and the mask set) took away, unless the thread's affinity was changed since.  Returns what
    to pass as ``last`` next time: None when nothing was taken away -- ``cpu`` is not among its CPUs,
    or is its only one (its affinity is then left as it was, or given back) -- or where the affinity
    cannot be read or set (not Linux)."""
    try:
        now = os.sched_getaffinity(tid)
        base = now | {last[0]} if last is not None and now == last[1] else now
        others = base - {cpu}
        target = others or base
        if target != now:
            os.sched_setaffinity(tid, target)
        return (cpu, frozenset(target)) if others and cpu in base else None
    except (AttributeError, OSError):
        return None


class _Team:
    """``helpers`` daemon threads that join the calling thread on one call at a time.

    A call publishes its task under the GIL and bumps ``flags[0]``, the generation; helper ``i``
    runs the task and then stores the generation into ``flags[1 + i]``.  Both sides first watch
    the flag they wait for in :func:`poolkit._kernels.sync.spin` (no GIL held, no sleep), then
    block on a lock of their own: ``go[i]`` for helper ``i``, ``done[i]`` for the caller.  A
    helper's decision to block and the caller's wake-up are both taken under ``guard``.  The
    caller's decision to block is an atomic mark on the helper's flag
    (:func:`poolkit._kernels.sync.wait_mark`), which the helper's atomic store of its generation
    (the ``report`` of :func:`poolkit._kernels.sync.spin`) either finds, and then releases
    ``done[i]``, or overwrites first, and then the mark fails: no wake-up is lost either way.

    The helper stores its flag in that kernel, without the GIL, and goes on watching for the next
    call in it.  Stored from Python, the flag came before the helper's last lines of Python, and a
    caller that saw it and asked for the GIL meanwhile slept until the helper released it: 10-80
    us added to a (32, 7, 7, 512) global average of 0.15 ms on two threads on the Intel Xeon VM.
    Except in native calls (below), the helpers still take the GIL to start their part, after the
    settling pause (SETTLE_S).

    Measured on this project's 2-core machine: a round trip through the spinning flags took 2.3
    us, through locks 12 us, through a ``ThreadPoolExecutor``'s submit and result 52 us -- as
    long as a whole global average pooling of a (32, 512, 7, 7) float32 array on one core.

    A native call (:meth:`run` with ``native``; the global sums of :func:`_native_sums`) is taken
    by the helpers without Python: the caller writes the call into a mailbox (``box``: the arrays'
    addresses, shapes, a chunk counter and the call's kind) before it publishes the generation,
    and a helper watching in :func:`poolkit._kernels.axis.follow_sums` claims chunks, reports and
    watches for the next call, all in that kernel; a call of another kind it returns to Python.
    No GIL passes between the threads of such calls: back to back, a (32, 7, 7, 512) float32
    global average took a median 54-58 us on two threads this way, 124 us on one.

    A call that finds the team busy with another thread's call is not queued: :func:`run` does its
    work in the calling thread, so concurrent callers each keep a core.

    A helper woken from its lock on this project's virtual machine is often placed on the CPU of
    the thread that woke it, the other CPU staying idle, and the two then share one CPU for the
    whole call (see "Waking from idle" in BENCHMARKS.md).  So a helper that starts a call on the
    caller's CPU moves itself to another of its allowed CPUs (:func:`_move_off`; its affinity is
    narrowed for the move only).  Measured, a channels-last 2x2 average of (32, 56, 56, 128)
    float32 timed as the benchmark suite does (after idle and a call of torch's, an untimed call,
    then the timed one; 30 calls, two runs): 1.87-1.89 ms without the move, 1.45 ms with it; 1.0-1.2
    ms back to back.

    Any wake-up by the caller may place a helper there: its lock, and the GIL, which a helper
    waits for at the start of its part and after each chunk.  A helper placed there waits for
    the caller's kernel to be preempted (2-4 ms) before it can move.  So the caller also keeps the
    helpers off its CPU (:func:`_keep_off`: their affinity without it) from its first call made
    there until a call comes from another CPU, which gets it back first.  Measured on a 3x3x3 max
    of (2, 16, 64, 64, 64) float32, the first two calls after four of onnxruntime's and idle
    (medians of 30): 3.62 and 3.13 ms, and 3.92 and 3.61 ms, without it; 2.46 and 2.19 ms, and
    2.41 and 2.13 ms, with it; 1.5-1.7 ms back to back.
    """

    def __init__(self, helpers: int):
        self.busy = threading.Lock()  # held by the call in progress
        self.guard = threading.Lock()  # orders each decision to block against the wake-up
        self.broken = False  # a wait was interrupted: helpers may still run, the team is not reused
        self.closed = False
        self.task = None
        self.errors: list[BaseException] = []
        self.flags = np.zeros(1 + helpers, np.int64)
        # the mailbox of a call whose helpers run without Python (see run's `native`)
        self.box = np.zeros(K.axis.BOX_SIZE, np.int64)
        self.boxf = self.box.view(np.float64)
        self.native: tuple | None = None  # the helpers' kernel and its arguments, for such a call
        self.keep: tuple = ()  # that call's mailbox arguments (its arrays), alive until its helpers have reported
        self.masks = np.zeros((helpers, 2, 16), np.uint64)  # each helper's CPU masks (1024 CPUs), for moves
        self.sleeping = [False] * helpers  # helper i blocks on go[i]
        self.go = [threading.Lock() for _ in range(helpers)]
        self.done = [threading.Lock() for _ in range(helpers)]
        for lock in self.go + self.done:
            lock.acquire()
        self.rounds_idle, self.rounds_done, self.settle, self.every = self._calibrate()
        self.getcpu = _cpu_reader()
        self.caller_cpu = -1  # the CPU the call in progress was made from
        self.off = -1  # the CPU the helpers are kept off (see _keep_off), -1 for none yet
        self.narrowed: list[tuple[int, frozenset] | None] = [None] * helpers  # _keep_off's, per helper
        threads = [threading.Thread(target=self._serve, args=(i,), name=f"poolkit-{i}", daemon=True)
                   for i in range(helpers)]
        for t in threads:
            t.start()  # returns once the thread runs: its native_id is set
        self.tids = [t.native_id or 0 for t in threads]  # the helpers' thread ids (0: unknown)

    def _calibrate(self) -> tuple[int, int, int, int]:
        """The spin rounds of SPIN_IDLE_S, SPIN_DONE_S, SETTLE_S and YIELD_EVERY_S on this machine."""
        probe, n = np.zeros(1, np.int64), 20_000
        K.sync.spin(probe, 0, 0, 1, 0, 1 << 62, -1, 0)
        t = time.perf_counter()
        K.sync.spin(probe, 0, 0, n, 0, 1 << 62, -1, 0)
        per_round = max(time.perf_counter() - t, 1e-6) / n
        idle, done, settle, every = (max(int(s / per_round), 1) for s in (SPIN_IDLE_S, SPIN_DONE_S, SETTLE_S,
                                                                          YIELD_EVERY_S))
        return idle, done, settle, every

    def _serve(self, i: int) -> None:
        _local.worker = True
        seen = 0
        g = K.sync.spin(self.flags, 0, seen, self.rounds_idle, self.settle, self.every, -1, 0)
        while True:
            if g == seen:  # no call came while watching: sleep, unless one comes now
                with self.guard:
                    sleep = self.sleeping[i] = int(self.flags[0]) == seen
                if sleep:
                    self.go[i].acquire()  # the caller clears sleeping[i] and releases go[i]
                g = int(self.flags[0])
            if self.task is None:  # woken with no call: close() dismissed the team
                return
            if self.getcpu is not None and self.getcpu() == self.caller_cpu:
                _move_off(self.caller_cpu)
            if self.native is not None:  # run it, and the like calls after it, without Python
                seen, g = self._follow(i, seen, *self.native)
                continue
            seen = g
            try:
                self.task()
            except BaseException as e:  # handed to the caller, who raises it
                self.errors.append(e)
            # report generation g done, then watch for the next call; all without the GIL
            g = K.sync.spin(self.flags, 0, seen, self.rounds_idle, self.settle, self.every, 1 + i, seen)
            if g < 0:  # the caller gave up watching and sleeps on done[i]
                self.done[i].release()
                g = K.sync.spin(self.flags, 0, seen, self.rounds_idle, self.settle, self.every, -1, 0)

    def _follow(self, i: int, seen: int, kern, args: tuple) -> tuple[int, int]:
        """Helper ``i``'s part of the native call after generation ``seen``, and of every like call
        that follows while it watches (``kern``, e.g. :func:`poolkit._kernels.axis.follow_sums`):
        (the last generation it ran, the next one, which is Python's, or equal to it when the
        watch timed out)."""
        while True:
            seen, g = kern(self.flags, i, seen, self.rounds_idle, self.settle, self.every, self.masks[i], self.box,
                           self.boxf, *args)
            if g >= 0:
                return seen, g
            self.done[i].release()  # its report found the caller's mark: the caller sleeps on done[i]

    def _start(self, post: tuple | None = None) -> int:
        """Fill the mailbox (``post``'s kernel, see :meth:`run`, or kind 0: a call whose helpers run
        Python), bump the generation and wake the sleeping helpers; the new generation."""
        with self.guard:
            if post is None:
                self.box[K.axis.BOX_KIND] = 0
            else:
                post[0](self.box, self.boxf, *post[1], self.caller_cpu)
            g = int(self.flags[0]) + 1
            # an atomic store (spin's report), after the mailbox's: a helper that sees g sees the mailbox
            K.sync.spin(self.flags, 0, g, 0, 0, 1, 0, g)
            for i, sleeping in enumerate(self.sleeping):
                if sleeping:
                    self.sleeping[i] = False
                    self.go[i].release()
        return g

    def _join(self, g: int) -> None:
        """Wait until every helper has finished generation ``g``."""
        for i in range(len(self.go)):
            # no settling pause: the helper stores its flag without the GIL (spin's report)
            if K.sync.spin(self.flags, 1 + i, g - 1, self.rounds_done, 0, self.every, -1, 0) == g:
                continue
            if K.sync.wait_mark(self.flags, 1 + i, g - 1, -g):  # else it finished meanwhile
                self.done[i].acquire()

    def run(self, task, native: tuple | None = None, post: tuple | None = None) -> bool:
        """``task()`` in the calling thread and in every helper at once; False, with nothing run,
        when the team is busy with another call.

        A native call (``native`` = (kernel, arguments): e.g.
        :func:`poolkit._kernels.axis.follow_sums` and its templates) is run by the helpers without
        Python: ``post`` = (kernel, arguments), e.g. :func:`poolkit._kernels.axis.post_sums`, writes
        the call into the mailbox (``kernel(box, boxf, *arguments, caller's CPU)``), and the
        helpers' kernel reads it there and the arrays at its addresses, which ``arguments`` hold
        alive until every helper has reported (for ever if the wait for them is interrupted).
        ``task`` is then the calling thread's part."""
        if not self.busy.acquire(blocking=False):
            return False
        self.task, self.errors, self.native, self.keep = task, [], native, () if post is None else post[1]
        self.caller_cpu = self.getcpu() if self.getcpu is not None else -1
        if self.caller_cpu != self.off and self.caller_cpu >= 0:
            for i, tid in enumerate(self.tids):
                if tid:
                    self.narrowed[i] = _keep_off(tid, self.caller_cpu, self.narrowed[i])
            self.off = self.caller_cpu
        g = self._start(post)
        try:
            task()
        finally:
            try:
                self._join(g)
            except BaseException:  # e.g. KeyboardInterrupt while waiting: keep `busy`, never reuse
                self.broken = True
                raise
            self.task, self.native, self.keep = None, None, ()
            with self.guard:  # a close() during the call left the dismissal to it
                closing = self.closed
                if not closing:
                    self.busy.release()
            if closing:
                self._start()
        if self.errors:
            raise self.errors[0]
        return True

    def close(self) -> None:
        """Let the helpers exit now, or once the call in progress is over (without waiting for
        it: a call may run for minutes, or never end if its thread is stuck)."""
        with self.guard:
            self.closed = True
            idle = self.busy.acquire(blocking=False)  # else the call in progress dismisses them
        if idle:
            self._start()


_team: _Team | None = None


def get_num_threads() -> int:
    """The number of threads poolkit's kernels use for one call.

    Returns
    -------
    n : int
        By default ``numba.config.NUMBA_NUM_THREADS`` (the ``NUMBA_NUM_THREADS`` environment
        variable, else the number of CPUs); see :func:`set_num_threads`.

    Examples
    --------
    >>> import poolkit
    >>> poolkit.get_num_threads() >= 1
    True
    """
    return _n_threads if _n_threads is not None else max(int(numba.config.NUMBA_NUM_THREADS), 1)  # type: ignore[attr-defined]


def set_num_threads(n: int) -> None:
    """Set the number of threads poolkit's kernels use for one call (1 runs every call in the
    calling thread).

    poolkit runs its compiled kernels on ``n - 1`` helper threads of its own (kernels release the
    GIL), not on numba's threading layer, so calls from many Python threads at once are safe
    whatever numba threading layer is installed.  The helpers join one call at a time; a call
    made while they are busy with another thread's call runs in its own thread.  On Linux the
    helpers' CPU affinity leaves out the CPU of the thread that last called (the other CPUs it had
    stay allowed), so that a helper and its caller never share one CPU.  Setting a new count lets
    the old helpers exit once the call in progress, if any, is over.

    Parameters
    ----------
    n : int
        Number of threads, >= 1.

    Examples
    --------
    >>> import poolkit
    >>> before = poolkit.get_num_threads()
    >>> poolkit.set_num_threads(1)
    >>> poolkit.get_num_threads()
    1
    >>> poolkit.set_num_threads(before)
    """
    global _n_threads, _team
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    with _team_lock:
        _n_threads = int(n)
        old, _team = _team, None
    if old is not None:
        old.close()


def _get_team(n_threads: int) -> _Team:
    global _team
    with _team_lock:
        if _team is None or _team.broken:  # set_num_threads drops the team of the old count
            _team = _Team(n_threads - 1)
        return _team


def _forget_team():  # in a forked child the team's threads do not exist
    global _team
    _team = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_team)


def _threads_for(total: int, cost: int) -> int:
    """The threads a call of ``total`` chunks' worth of work touching ``cost`` elements runs on: 1
    for calls under SERIAL_BELOW elements and calls made from a helper thread."""
    n_threads = get_num_threads()
    if n_threads == 1 or total < 2 or cost < SERIAL_BELOW or getattr(_local, "worker", False):
        return 1
    return n_threads


def _chunks(total: int, cost: int, n_threads: int) -> int:
    """How many chunks a call runs on ``n_threads`` threads (see :func:`run`)."""
    return min(total, n_threads if cost < FEW_CHUNKS_BELOW else 4 * n_threads)


def run(body, total: int, cost: int) -> list:
    """Call ``body(t0, t1)`` on chunks covering ``[0, total)`` and return their results in order.

    Calls touching fewer than SERIAL_BELOW elements (``cost``), and calls made from a helper
    thread, run in the calling thread in one chunk.  Others are split into one chunk per thread,
    or up to 4 per thread from FEW_CHUNKS_BELOW elements on, taken in turn by the calling thread
    and the ``threads - 1`` helpers of the team, so that a slow core does not hold up the call;
    when the team is busy with another thread's call, the calling thread takes every chunk itself.
    ``body`` calls a ``nogil`` kernel.
    """
    n_threads = _threads_for(total, cost)
    if n_threads == 1:
        return [body(0, total)]
    n = _chunks(total, cost, n_threads)
    bounds = [total * c // n for c in range(n + 1)]
    results: list = [None] * n
    counter = itertools.count()  # next() on it is atomic: each chunk is taken once

    def worker():
        for c in counter:
            if c >= n:
                return
            results[c] = body(bounds[c], bounds[c + 1])

    if not _get_team(n_threads).run(worker):
        worker()
    return results


# --------------------------------------------------------------------------------------------
# compile notices
# --------------------------------------------------------------------------------------------


class _CompileNotice(_numba_event.Listener):
    """Logs (INFO, logger "poolkit") when a kernel is compiled rather than loaded from numba's
    on-disk cache: the first use of a kernel and dtype on this machine takes a few seconds."""

    def __init__(self):
        self.depth = 0

    @staticmethod
    def _ours(event) -> bool:
        """Whether the compiled function is a poolkit kernel.  Every function numba compiles in
        the process passes here, so nothing about it is assumed: one made by ``exec`` without a
        ``__name__`` has ``__module__`` None."""
        data = event.data if isinstance(event.data, dict) else {}
        func = getattr(data.get("dispatcher"), "py_func", None)
        module = getattr(func, "__module__", None)
        return isinstance(module, str) and module.startswith("poolkit._kernels")

    def on_start(self, event):
        if self._ours(event):
            disp = event.data["dispatcher"]
            if self.depth == 0:
                args = event.data["args"]
                dtype = getattr(args[0], "dtype", args[0]) if args else ""
                logger.info("compiling the %s kernel for %s (first use on this machine; cached for later runs)",
                            disp.py_func.__name__, dtype)
            self.depth += 1

    def on_end(self, event):
        if self._ours(event):
            self.depth -= 1


_numba_event.register("numba:compile", _CompileNotice())


# --------------------------------------------------------------------------------------------
# kernel inputs and dtype rules
# --------------------------------------------------------------------------------------------


def native(dtype) -> np.dtype:
    """``dtype`` in the machine's byte order (results are native whatever the input's order)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


_AS_IS = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                          np.uint16, np.uint32, np.uint64))


#: float16 conversions of fewer elements than this use NumPy's astype; from it on, the vectorised
#: kernels of :mod:`poolkit._kernels.half`.  NumPy converts float16 one element at a time (1.5-2.5 ns
#: each), the kernels at 0.2-0.3 ns after a call costing about 2 us: they break even near 2048.
HALF_KERNEL_FROM = 1 << 11

_HALF_SOURCES = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


def _widen_half(x: np.ndarray) -> np.ndarray:
    """float16 ``x`` (either byte order, any layout) as a C-contiguous float32 array, exactly."""
    if x.size < HALF_KERNEL_FROM:
        return np.ascontiguousarray(x, dtype=np.float32)
    x = np.ascontiguousarray(x, dtype=np.float16)  # no copy when already native and C-contiguous
    out = new_result(x.shape, np.float32)
    src, dst = x.reshape(-1).view(np.uint16), out.reshape(-1).view(np.uint32)
    run(lambda t0, t1: K.half.widen(src, dst, t0, t1), src.size, 2 * src.size)
    return out


def _to_half(a: np.ndarray) -> np.ndarray | None:
    """``a.astype(np.float16)``, bit for bit and in the same layout, for a native float32 or float64
    ``a`` that is C- or Fortran-contiguous and not small; None for any other ``a``."""
    if a.dtype not in _HALF_SOURCES or a.size < HALF_KERNEL_FROM:
        return None
    fortran = not a.flags.c_contiguous
    if fortran and not a.flags.f_contiguous:
        return None
    src = (a.T if fortran else a).reshape(-1)
    out = new_result((src.size,), np.float16)
    dst = out.view(np.uint16)
    kern = K.half.narrow if a.dtype == np.float32 else K.half.double_to_half
    run(lambda t0, t1: kern(src, dst, t0, t1), src.size, 2 * src.size)
    return out.reshape(a.T.shape).T if fortran else out.reshape(a.shape)


def kernel_input(x: np.ndarray) -> np.ndarray:
    """A C-contiguous, native-order array the kernels read directly: bools as uint8, float16 (of
    either byte order) as float32 (numba has no float16 arithmetic; the conversion is exact, and max
    results convert back exactly), other dtypes as they are, byte-swapped when not native."""
    if x.dtype in _AS_IS and x.flags.c_contiguous:
        return x
    if x.dtype == np.bool_:
        return np.ascontiguousarray(x).view(np.uint8)
    if x.dtype.kind == "f" and x.dtype.itemsize == 2:
        return _widen_half(x)
    return np.ascontiguousarray(x, dtype=native(x.dtype))


def takes(out: np.ndarray, shape: tuple[int, ...], dtype: DTypeLike) -> bool:
    """Whether a kernel can write a result of ``shape`` and ``dtype`` (native: a kernel's) straight
    into ``out`` (a caller's ``out=``, already checked not to overlap the inputs): exactly that shape
    and dtype, C-contiguous, aligned and writeable -- the array type the kernel is compiled for."""
    return (out.shape == tuple(shape) and out.dtype == dtype and out.flags.c_contiguous and out.flags.aligned
            and out.flags.writeable)


def new_result(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` for a result; a large one over reused memory when some is free
    (:func:`poolkit._results.result_array`)."""
    return result_array(shape, dtype)[0]


def into(out: np.ndarray | None, shape: tuple[int, ...], dtype: DTypeLike,
         make: Callable[..., np.ndarray] = new_result) -> np.ndarray:
    """Where a kernel writes its result: ``out`` when it :func:`takes` it, else ``make(shape, dtype)``
    (:func:`new_result` or :func:`fresh`).  The engine's functions return the array they wrote; when that
    is not ``out``, the caller copies it in.  Kernels write every element of their result (the
    scatter kernels zero each plane first), so a dirty ``out`` is fine."""
    return out if out is not None and takes(out, shape, dtype) else make(shape, dtype)


def fresh(shape, dtype) -> np.ndarray:
    """:func:`new_result` for a kernel to fill from the pool's threads: a large one on new memory
    has its pages faulted in by the calling thread first (see PREFAULT_BYTES)."""
    out, reused = result_array(shape, dtype)
    if not reused and out.nbytes >= PREFAULT_BYTES and get_num_threads() > 1:
        K.scatter.touch_pages(out.reshape(-1).view(np.uint8), 4096)
    return out


def kernel_dtype(dtype) -> np.dtype:
    """The dtype the kernels write for a requested result dtype: numba has no float16 arithmetic,
    so float16 results are computed in float32 and rounded once at the end."""
    dtype = native(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


_FLOAT_DTYPES: dict = {}


def float_dtype(dtype) -> np.dtype:
    """Result dtype of average and Lp pooling, and of every gradient: floats keep theirs (in native
    byte order), everything else becomes float64."""
    found = _FLOAT_DTYPES.get(dtype)
    if found is None:
        nat = native(dtype)
        found = _FLOAT_DTYPES[dtype] = nat if nat.kind == "f" else np.dtype(np.float64)
    return found


def narrow(a: np.ndarray, dtype) -> np.ndarray:
    """A float result as ``dtype`` (native); a value beyond its range rounds to inf, silently, as
    every float operation does."""
    dtype = native(dtype)
    if dtype == np.float16:
        half = _to_half(a)
        if half is not None:
            return half
    with np.errstate(over="ignore"):
        return a.astype(dtype, copy=False)


def from_kernel(out: np.ndarray, dtype) -> np.ndarray:
    """A kernel's result (from kernel_input's dtype) as ``dtype``, native."""
    if out.dtype == dtype:
        return out
    dtype = native(dtype)
    if dtype == np.bool_:
        return out.view(np.bool_)
    if dtype == np.float16:
        return narrow(out, dtype)
    return out.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------
# the reductions every op is built from
# --------------------------------------------------------------------------------------------

_NO_INDICES = np.zeros((1, 1, 1), dtype=np.int64)
_NO_ROWS = np.zeros(0, dtype=np.int64)  # sum_adjoint's cover when no input row lies in two windows


def _empty(shape) -> bool:
    return 0 in shape


def _check_memory(shape, itemsize: int, plan: geo.Plan) -> None:
    """Before allocating a result of ``shape``: does it, with the plan's window tables, fit?
    (Checked once per plan and item size: plans are memoised.)"""
    key = ("memory", shape, itemsize)
    if key not in plan.memo:
        geo.check_memory(shape, itemsize, sum(ap.out_size for ap in plan.axis_plans))
        plan.memo[key] = True


def view3(shape, axis):
    """(outer, length, inner) of a C-contiguous array of ``shape`` seen around ``axis``."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def pooled_scales(plan: geo.Plan):
    """Flat-index weight of each pooled axis: row-major over the pooled axes (ascending)."""
    scales, acc = [], 1
    for ap in reversed(plan.axis_plans):
        scales.append(acc)
        acc *= ap.in_size
    return scales[::-1]


def _whole(plan: geo.Plan) -> tuple[int, int, int] | None:
    """(outer, length, inner) when every window covers its whole axis, unpadded, and the pooled
    axes are adjacent: global pooling, which reduces one run per (outer, inner)."""
    if "whole" not in plan.memo:
        plan.memo["whole"] = _whole_of(plan)
    return plan.memo["whole"]


def _whole_of(plan: geo.Plan) -> tuple[int, int, int] | None:
    if plan.axes[-1] - plan.axes[0] != len(plan.axes) - 1:
        return None
    for ap in plan.axis_plans:
        if not (ap.out_size == 1 and ap.table is None and not ap.adaptive and ap.pad_before == ap.pad_after == 0
                and ap.dilation == 1 and ap.kernel == ap.in_size):
            return None
    shape = plan.in_shape
    return (math.prod(shape[:plan.axes[0]]), math.prod(shape[plan.axes[0]:plan.axes[-1] + 1]),
            math.prod(shape[plan.axes[-1] + 1:]))


def _reduce_whole(kern, x: np.ndarray, shape3, out: np.ndarray, *args, serial_below: int = 0) -> None:
    """``kern(x3, out2, *args, t0, t1)`` over the (outer, length, inner) view ``shape3`` of a global
    pooling: in the calling thread when ``x`` has fewer than ``serial_below`` bytes, else on the
    pool.  A dtype in ``args`` stands for a scratch row of ``inner`` entries of it, per chunk."""
    x3, o2 = x.reshape(shape3), out.reshape(shape3[0], shape3[2])

    def body(t0: int, t1: int) -> None:
        kern(x3, o2, *[np.empty(shape3[2], a) if isinstance(a, np.dtype) else a for a in args], t0, t1)

    if x.nbytes < serial_below:
        body(0, shape3[0])
    elif not (kern is K.axis.sum_whole and _native_sums(x3, o2, *args)):
        run(body, shape3[0], x.size)


_NO_MASKS = np.zeros((2, 16), np.uint64)  # follow_sums' masks for the calling thread, which never moves
#: (input, output, scratch dtypes) -> the templates of follow_sums and the call's kind (>= 1)
_SUM_KINDS: dict[tuple[np.dtype, np.dtype, np.dtype], tuple] = {}


def sum_kind(x_dtype: np.dtype, out_dtype: np.dtype, acc: np.dtype) -> tuple:
    """The last four arguments of :func:`poolkit._kernels.axis.follow_sums` for global sums of
    ``x_dtype`` into ``out_dtype`` in ``acc``: its templates (empty arrays of those dtypes) and the
    kind of such calls (a number of their own, from 1)."""
    key = (x_dtype, out_dtype, acc)
    found = _SUM_KINDS.get(key)
    if found is None:
        found = _SUM_KINDS[key] = (np.empty((0, 0, 0), x_dtype), np.empty((0, 0), out_dtype), np.empty(0, acc),
                                   len(_SUM_KINDS) + 1)
    return found


def _native_sums(x3: np.ndarray, o2: np.ndarray, divisor: float, acc: np.dtype) -> bool:
    """Global sums (:func:`poolkit._kernels.axis.sum_whole`) of the (outer, length, inner) view
    ``x3`` into ``o2`` on the team, its helpers taking their chunks in
    :func:`poolkit._kernels.axis.follow_sums` (no GIL passes between the threads); False, with
    nothing run, when the call runs on one thread (see :func:`run`) or ``x3`` is not aligned.  The
    calling thread takes every chunk when the team is busy with another thread's call.

    Measured: see "Global averages without the GIL" in BENCHMARKS.md."""
    outer, _, inner = x3.shape
    n_threads = _threads_for(outer, x3.size)
    if n_threads == 1 or not x3.flags.aligned:
        return False
    found = sum_kind(x3.dtype, o2.dtype, acc)
    scratch = np.empty((n_threads, inner), acc)
    team = _get_team(n_threads)

    def mine() -> None:
        K.axis.follow_sums(team.flags, -1, 0, 0, 0, 1, _NO_MASKS, team.box, team.boxf, *found)

    post = (K.axis.post_sums, (x3, o2, scratch, _chunks(outer, x3.size, n_threads), divisor, found[3]))
    if not team.run(mine, (K.axis.follow_sums, found), post):
        K.axis.sum_whole(x3, o2, divisor, scratch[0], 0, outer)
    return True


def _fused_kernel(f, op: str):
    """(kernel, work size) of the fused forward of ``op`` ("max" or "sum") for the view ``f``,
    chosen once per plan: the variant, or the written-out plane kernel that makes its bits
    (:func:`poolkit._kernels.sliding.plane`)."""
    memo = f.kernels
    if op not in memo:
        name = K.sliding.variant(f, op)
        size = K.sliding.work_size(name, f.in4, f.out4, f.params)
        memo[op] = getattr(K.sliding, K.sliding.plane(f, op) or name), size
    return memo[op]


def _twin_kernel(f, key: tuple, pick: Callable[[], str | None]):
    """The kernel of :mod:`poolkit._kernels.sliding` named by ``pick()`` (or None), chosen once
    per view ``f`` and ``key``."""
    memo = f.kernels
    if key not in memo:
        name = pick()
        memo[key] = None if name is None else getattr(K.sliding, name)
    return memo[key]


def _fastmax(f, op: str, dtype: np.dtype):
    """The fastmax twin of the fused forward of ``op`` for the view ``f`` and the kernel dtype
    ``dtype``, or None: only maxima whose variant has one (see :func:`_fused_rows` and
    :func:`poolkit._kernels.sliding.twin`)."""
    if op != "max" or dtype.kind not in "fiu":
        return None
    return _twin_kernel(f, ("twin", dtype.kind, dtype.itemsize),
                        lambda: K.sliding.twin(f, dtype.itemsize, dtype.kind))


def _fused_rows(f, op: str, dtype: np.dtype, first_of: Callable | None = None):
    """(``rows(x4, divs, out4, work, t0, t1)``, work size): the fused forward of ``op`` over the
    output rows ``t0 <= t < t1``.  For the maxima of a ``dtype`` whose variant has a fastmax twin
    (:mod:`poolkit._kernels.sliding`), the twin runs first, combining without max2's NaN rules,
    and the exact variant makes the rest of the rows from the first whose windows may hold a NaN:
    the same bits, and the exact kernel compiles only once a NaN is seen (for integers, never).
    ``first_of(kernel)`` gives what to call for the kernel that runs first (the prepared calls: its
    compiled entry point); the exact kernel after a twin is always called through its dispatcher."""
    kern, size = _fused_kernel(f, op)
    fast = _fastmax(f, op, dtype)
    tables, params = f.tables, f.params
    first = kern if fast is None else fast
    if first_of is not None:
        first = first_of(first)
    if fast is None:
        return (lambda x4, divs, o4, work, t0, t1: first(x4, tables, params, divs, o4, work, t0, t1)), size

    def rows(x4, divs, o4, work, t0, t1):
        t = first(x4, tables, params, divs, o4, work, t0, t1)
        if t < t1:
            kern(x4, tables, params, divs, o4, work, t, t1)

    return rows, size


def _fused_forward(src: np.ndarray, f, op: str, divs, out: np.ndarray, acc: np.dtype = F64,
                   rows_of: tuple | None = None) -> None:
    """The fused forward kernel of ``op`` ("max" or "sum", summed in ``acc``) over all output rows
    of ``out``; ``rows_of``: :func:`_fused_rows`'s pair when the caller made it already."""
    body, size = _fused_rows(f, op, src.dtype) if rows_of is None else rows_of
    work_dtype = acc if op == "sum" else src.dtype
    x4, o4 = src.reshape(f.in4), out.reshape(f.out4)
    rows = f.out4[0] * f.out4[1] * f.out4[2]
    cost = src.size + out.size
    if cost < SERIAL_BELOW:  # the common small call, without the closure
        body(x4, divs, o4, np.empty(size, work_dtype), 0, rows)
        return
    run(lambda t0, t1: body(x4, divs, o4, np.empty(size, work_dtype), t0, t1), rows, cost)


#: float16 inputs of the fused kernels are widened, pooled and narrowed in blocks of about this
#: many input elements, rather than in three passes over whole arrays: 512 KB as float32, which
#: stays in the core's cache (1 << 16 and 1 << 18 measured the same; 1 << 14 was twice as slow on
#: small planes, a block costing three kernel calls).  (Blocks of a plane's rows for planes larger
#: than this were measured and not kept: channels-last (32, 56, 56, 128) 2x2 and (32, 112, 112, 64)
#: 3x3 averages took 2.34 and 6.09 ms against 2.19 and 5.56 ms in whole planes, one thread.)
HALF_BLOCK = 1 << 17


def _half_blocks(x: np.ndarray, f, op: str) -> bool:
    """Whether a float16 ``x`` goes through :func:`_fused_half` for ``op`` ("max" or "sum"):
    native, C-contiguous, not small, and either pooled straight from float16 (:func:`_half_pairs`,
    :func:`_half_direct`: those kernels share output rows between the threads) or with planes
    enough to share between the threads (blocks of whole planes; one big plane keeps the three
    passes, which split inside the plane)."""
    return (x.dtype == np.float16 and x.dtype.isnative and x.flags.c_contiguous and x.size >= HALF_KERNEL_FROM
            and (f.in4[0] >= 4 * get_num_threads() or _half_pairs(f) or _half_direct(f, op) is not None))


def _tiles2(p) -> bool:
    """Whether the windows of axis plan ``p`` are 2 taps at stride 2 from 0, every one whole."""
    n = p.out_size
    return (p.kernel == 2 and p.stride == 2 and p.dilation == 1 and n > 0
            and np.array_equal(p.starts, np.arange(0, 2 * n, 2)) and bool((p.counts == 2).all()))


def _half_pairs(f) -> bool:
    """Whether the float16 pooling of view ``f`` goes straight through the 2x2 kernels of
    :mod:`poolkit._kernels.half` (F16C only): 2-D windows of 2x2 at stride 2, all whole."""
    return K.half.F16C and f.in4[1] == 1 and _tiles2(f.ph) and _tiles2(f.pw)


def _fused_half_pairs(x: np.ndarray, f, op: str, divs, out: np.ndarray) -> np.ndarray:
    """:func:`_fused_half` for :func:`_half_pairs` views, into ``out`` (float16, C-contiguous):
    the same bits in one pass, no float32 block (the kernels read float16 and write float16)."""
    src, dst = x.reshape(-1).view(np.uint16), out.reshape(-1).view(np.uint16)
    n_d, n_h = f.out4[1], f.out4[2]
    scale = float(divs[0] * divs[n_d] * divs[n_d + n_h])  # every window whole: one divisor
    height, row_len, out_row, inner = f.in4[2], f.in4[3], f.out4[3], f.inner
    if inner == 1:
        cf = K.half.pairs_sum_half_cf if op == "sum" else K.half.pairs_max_half_cf
        body = lambda t0, t1: cf(src, dst, height, row_len, n_h, out_row, scale, t0, t1)  # noqa: E731
    else:
        cl = K.half.pairs_sum_half_cl if op == "sum" else K.half.pairs_max_half_cl
        body = lambda t0, t1: cl(src, dst, height, row_len, n_h, out_row, inner, scale, t0, t1)  # noqa: E731
    run(body, f.in4[0] * n_h, x.size + out.size)
    return out


def _half_plane(f, op: str):
    """The float16 plane kernel of :mod:`poolkit._kernels.half` for view ``f`` and ``op`` (F16C
    only), or None: 3-wide stride-2 windows of at most 3 rows over 2-D planes, whose float32
    kernel is a plane kernel (:func:`poolkit._kernels.sliding.plane`; for maxima the plane twin,
    chosen by the float16 plane's bytes)."""
    memo = f.kernels
    key = ("half plane", op)
    if key not in memo:
        if not K.half.F16C:
            memo[key] = None
        elif op == "max":
            memo[key] = K.half.plane_max_half_k3s2 if K.sliding.twin(f, 2) == "fastmax_plane_k3s2" else None
        else:
            memo[key] = K.half.plane_sum_half_k3s2 if K.sliding.plane(f, op) == "sum_plane_k3s2" else None
    return memo[key]


def _half_cl(f, op: str):
    """The kernel that pools channels-last view ``f`` straight from float16, or None:
    :func:`poolkit._kernels.half.sum_cl_half` for sums (F16C only) whose float32 kernel adds each
    window's taps rows first, then taps (``sum_inner``, ``sum_inner2``, ``sum_inner3``: the order
    that kernel keeps); :func:`poolkit._kernels.half.max_cl_half` for maxima of 3x3 windows at
    stride 2 over 2-D planes (``max_inner3``, the columns it shares; other channels-last maxima
    keep the keys of whole blocks, :func:`_half_key_blocks`)."""
    memo = f.kernels
    key = ("half cl", op)
    if key not in memo:
        name, p = K.sliding.variant(f, op), f.params
        if op == "sum":
            ok = K.half.F16C and f.inner > 1 and name in ("sum_inner", "sum_inner2", "sum_inner3")
        else:
            ok = name == "max_inner3" and p[K.sliding.P_STRIDE_W] == 2 and p[K.sliding.P_DW] == 1
        memo[key] = (K.half.sum_cl_half if op == "sum" else K.half.max_cl_half) if ok else None
    return memo[key]


def _half_direct(f, op: str):
    """The kernel that pools view ``f`` straight from float16, output rows at a time, or None:
    :func:`_half_plane`'s or :func:`_half_cl`'s."""
    return _half_plane(f, op) or _half_cl(f, op)


def _half_key_blocks(f, src: np.ndarray, dst: np.ndarray, per: int, blocks):
    """``body(p0, p1)`` of :func:`_fused_half` for maxima: the planes ``p0 <= p < p1`` of the
    float16 bits ``src`` in blocks of ``per``, each made int16 keys
    (:func:`poolkit._kernels.half.half_keys`), pooled by the int16 kernels (integer compares, 16 to
    a vector, no NaN rules) and made bits again into ``dst``: the bits of the float32 path, whose
    maxima are the keys' maxima.  A block holding a NaN or a -0.0, where the keys' order is not
    max2's, is made by ``blocks`` (the float32 path) instead.  Two threads, against the float32
    blocks (interleaved, three rounds): channels-last (32, 112, 112, 64) 3x3 s2 p1 6.6-7.2 ->
    3.5-4.4 ms, (2, 16, 64, 64, 64) 3x3x3 s2 p1 3.6-3.7 -> 1.9-2.1 ms.  (Channels first, the 3x3
    windows keep the plane kernel read as float16, :func:`_half_plane`: as keys, 5.6-7.7 against
    6.3-8.3 ms, the int16 plane twin's taps at stride 2 being slow to gather.  Channels last, the
    3x3 stride-2 windows now make their keys as they read them, :func:`_half_cl`.)"""
    pool, size = _fused_rows(f, "max", np.dtype(np.int16))
    plane_in, plane_out = math.prod(f.in4[1:]), math.prod(f.out4[1:])
    rows_per_plane = f.out4[1] * f.out4[2]
    divs = f.divisors(None, None)

    def body(p0: int, p1: int) -> None:
        most = min(per, p1 - p0)
        keys = np.empty((most,) + tuple(f.in4[1:]), np.int16)
        pooled = np.empty((most,) + tuple(f.out4[1:]), np.int16)
        work = np.empty(size, np.int16)
        key_bits, pooled_bits = keys.reshape(-1).view(np.uint16), pooled.reshape(-1).view(np.uint16)
        for b0 in range(p0, p1, per):
            n = min(per, p1 - b0)
            if K.half.half_keys(src[b0 * plane_in:(b0 + n) * plane_in], key_bits, 0, n * plane_in):
                blocks(b0, b0 + n)
                continue
            pool(keys[:n], divs, pooled[:n], work, 0, n * rows_per_plane)
            K.half.half_keys(pooled_bits, dst[b0 * plane_out:(b0 + n) * plane_out], 0, n * plane_out)

    return body


def _fused_half(x: np.ndarray, f, op: str, divs, out_shape, out: np.ndarray | None = None) -> np.ndarray:
    """The fused forward of ``op`` on a float16 ``x``, as float16: each block of planes is widened
    to float32 exactly, pooled by the float32 kernel into float32 and rounded to float16 (as
    :func:`narrow` rounds), while it is in cache -- the same operations, element for element, as
    widening the whole array, pooling it and narrowing the result, so the same bits.  Tiled 2x2
    windows skip the float32 block (:func:`_half_pairs`), and so do the windows of the plane
    kernels (:func:`_half_plane`), channels-last sums and 3x3 s2 maxima (:func:`_half_cl`) and the
    other maxima, pooled as int16 keys (:func:`_half_key_blocks`).  The direct kernels share output
    rows between the threads, so that one image, or one big plane, splits too (blocks share whole
    planes).  A direct kernel's maximum stops at a row whose windows hold a NaN (or, read as keys, a
    -0.0): the rest of that plane's rows in the chunk go through the float32 path, and the kernel
    goes on from the next plane.  The result is written into ``out`` when it :func:`takes` it.
    (Before the rows were shared, fewer than four planes a thread took the three passes: two
    threads, float16 (1, 112, 112, 64) 3x3 s2 p1 max and average 0.246 and 0.263 ms, now 0.070
    and 0.129; (1, 1, 2048, 2048) average 1.27 -> 0.72 ms.)"""
    out = into(out, out_shape, np.float16)
    if _half_pairs(f):
        return _fused_half_pairs(x, f, op, divs, out)
    pool, size = _fused_rows(f, op, np.dtype(np.float32))
    work_dtype = np.float64 if op == "sum" else np.float32
    plane_in, plane_out = math.prod(f.in4[1:]), math.prod(f.out4[1:])
    rows_per_plane = f.out4[1] * f.out4[2]
    per = max(1, HALF_BLOCK // plane_in)
    src = x.reshape(-1).view(np.uint16)
    dst = out.reshape(-1).view(np.uint16)

    def blocks(p0: int, p1: int) -> None:
        wide = np.empty((min(per, p1 - p0),) + tuple(f.in4[1:]), np.float32)
        pooled = np.empty((wide.shape[0],) + tuple(f.out4[1:]), np.float32)
        work = np.empty(size, work_dtype)
        wide_bits, pooled_flat = wide.reshape(-1).view(np.uint32), pooled.reshape(-1)
        for b0 in range(p0, p1, per):
            n = min(per, p1 - b0)
            K.half.widen(src[b0 * plane_in:(b0 + n) * plane_in], wide_bits, 0, n * plane_in)
            pool(wide[:n], divs, pooled[:n], work, 0, n * rows_per_plane)
            K.half.narrow(pooled_flat, dst[b0 * plane_out:(b0 + n) * plane_out], 0, n * plane_out)

    direct = _half_direct(f, op)
    if direct is None:
        run(blocks if op == "sum" else _half_key_blocks(f, src, dst, per, blocks), f.in4[0], x.size + out.size)
        return out
    src4, dst4 = src.reshape(f.in4), dst.reshape(f.out4)
    out_len = f.out4[3]

    def rows(t0: int, t1: int) -> None:  # output rows t0 <= t < t1 of one plane, by the float32 path
        p = t0 // rows_per_plane
        r0, r1 = t0 - p * rows_per_plane, t1 - p * rows_per_plane
        wide = np.empty((1,) + tuple(f.in4[1:]), np.float32)
        pooled = np.empty((1,) + tuple(f.out4[1:]), np.float32)
        K.half.widen(src[p * plane_in:(p + 1) * plane_in], wide.reshape(-1).view(np.uint32), 0, plane_in)
        pool(wide, divs, pooled, np.empty(size, work_dtype), r0, r1)
        K.half.narrow(pooled.reshape(-1)[r0 * out_len:], dst[t0 * out_len:t1 * out_len], 0, (t1 - t0) * out_len)

    def body(t0: int, t1: int) -> None:
        work = np.empty(size, work_dtype)
        while t0 < t1:
            t = direct(src4, f.tables, f.params, divs, dst4, work, t0, t1)
            if t is None or t >= t1:
                return
            # a maximum stopped at row t, in a plane holding a NaN (or a -0.0: max_cl_half): the rest
            # of the plane's rows in this chunk by the float32 path, then the kernel again
            t0 = min(t1, (t // rows_per_plane + 1) * rows_per_plane)
            rows(t, t0)

    run(body, f.in4[0] * rows_per_plane, x.size + out.size)
    return out


_UNSET = object()


def _prepared_call(plan: geo.Plan, key: tuple):
    """The prepared forwards of a fused call (``key``: op, input dtype, and for sums the divisor
    rule and the sums' dtype), or None: everything but the allocations and the kernel calls
    decided once per plan -- a layer applied batch after batch pays the kernel's dispatch and
    little else.  A pair:
    ``call(x)``, which returns a new result, and ``into_out(x, out)``, which writes into a caller's
    ``out`` when the kernel :func:`takes` it (else into a new result) and returns what it wrote.

    A small call (under SERIAL_BELOW elements) runs its kernel in the calling thread; a larger one
    runs it on the pool (:func:`run`) as :func:`_fused_forward` does, its chunks calling the
    kernel's compiled entry point.  The Python around a large call runs with cold caches (its
    kernel has just streamed the input through them) and costs tens of microseconds there: see
    "Prepared large calls" in BENCHMARKS.md.  Only a kept plan (:func:`poolkit._geometry.kept_plan`)
    is prepared: preparing one made for a single call would cost that call more than it saves."""
    memo = plan.memo
    prepared = memo.get(key, _UNSET)  # one lookup: hashing a dtype is a good part of a tiny call
    if prepared is not _UNSET:
        return prepared
    if "kept" not in memo:  # a plan made for this call alone: preparing would cost, not save
        return None
    prepared = None
    op, dtype = key[0], key[1]
    n_out = math.prod(plan.out_shape)
    total = math.prod(plan.in_shape) + n_out
    small = total < SERIAL_BELOW
    if (n_out > 0 and dtype in _AS_IS and not (op == "sum" and float_dtype(dtype) == np.float16)
            and _whole(plan) is None):
        if not small:  # before the window tables, as the general path checks
            _check_memory(plan.out_shape, 8 if op == "sum" else dtype.itemsize, plan)
        f = plan.fused
        if f is not None:
            prepared = (_prepared_small if small else _prepared_large)(plan, f, key)
    memo[key] = prepared
    return prepared


#: Empty C-contiguous 4-D and 1-D arrays of each kernel dtype: what the prepared calls type their
#: kernels' entry points by (numba types an array by its dtype, dimensions and layout, not its
#: size), rather than arrays of the call's sizes made for the purpose.
_TEMPLATE4 = {t: np.empty((0, 0, 0, 0), t) for t in _AS_IS}
_TEMPLATE1 = {t: np.empty(0, t) for t in _AS_IS}


def _fused_types(f, key: tuple) -> tuple:
    """(result dtype, work dtype, divisors) of the fused forward of ``key`` (see _prepared_call)."""
    op, dtype = key[0], key[1]
    if op == "sum":
        return kernel_dtype(float_dtype(dtype)), key[4], f.divisors(key[2], key[3])
    return dtype, dtype, f.divisors(None, None)


def _prepared_small(plan: geo.Plan, f, key: tuple) -> tuple:
    """_prepared_call's pair for a call of under SERIAL_BELOW elements."""
    kern, size = _fused_kernel(f, key[0])
    in4, out4, tables, params = f.in4, f.out4, f.tables, f.params
    odt, wdt, divs = _fused_types(f, key)
    rows, shape = out4[0] * out4[1] * out4[2], plan.out_shape
    # a kernel needing no work buffer (size 0: it reads only the dtype) gets one empty array,
    # made here: nothing is ever written to it, so every call and thread may share it
    spare = np.empty(0, wdt) if size == 0 else None

    entry = _entry_point(kern, (_TEMPLATE4[key[1]], tables, params, divs, _TEMPLATE4[odt], _TEMPLATE1[wdt], 0,
                                rows))
    empty = np.empty
    if tuple(in4) == plan.in_shape and tuple(out4) == shape:  # a 4-D call: no reshape (0.3 us each)
        def call(x: np.ndarray) -> np.ndarray:
            out = empty(shape, odt)
            entry(x, tables, params, divs, out, empty(size, wdt) if spare is None else spare, 0, rows)
            return out
    else:
        def call(x: np.ndarray) -> np.ndarray:
            out = empty(out4, odt)
            entry(x.reshape(in4), tables, params, divs, out, empty(size, wdt) if spare is None else spare, 0,
                  rows)
            return out.reshape(shape)

    def into_out(x: np.ndarray, out: np.ndarray) -> np.ndarray:
        dst = into(out, shape, odt)
        work = np.empty(size, wdt) if spare is None else spare
        kern(x.reshape(in4), tables, params, divs, dst.reshape(out4), work, 0, rows)
        return dst

    return call, into_out


def _prepared_large(plan: geo.Plan, f, key: tuple) -> tuple:
    """_prepared_call's pair for a call of SERIAL_BELOW elements or more: :func:`_fused_forward` on
    the pool, the new result's first kernel called through its compiled entry point."""
    op, dtype = key[0], key[1]
    odt, wdt, divs = _fused_types(f, key)
    rows, shape = f.out4[0] * f.out4[1] * f.out4[2], plan.out_shape
    types = (_TEMPLATE4[dtype], f.tables, f.params, divs, _TEMPLATE4[odt], _TEMPLATE1[wdt], 0, rows)
    rows_of = _fused_rows(f, op, dtype, lambda kern: _entry_point(kern, types))

    def call(x: np.ndarray) -> np.ndarray:
        out = new_result(shape, odt)
        _fused_forward(x, f, op, divs, out, wdt, rows_of)
        return out

    def into_out(x: np.ndarray, out: np.ndarray) -> np.ndarray:
        dst = into(out, shape, odt)
        _fused_forward(x, f, op, divs, dst, wdt)  # the work dtype: the sums' for sums, unused for maxima
        return dst

    return call, into_out


def _entry_point(kern, args: tuple):
    """The compiled entry point of the numba kernel ``kern`` for the types of ``args`` (compiled or
    loaded from the cache now, as a first call would), or ``kern`` itself when there is none (a
    plain function under ``NUMBA_DISABLE_JIT``).

    The dispatcher finds the types of a call's arguments on every call; the entry point skips that
    (a tiny call's kernel: 0.25 -> 0.15 us), so it must only get arguments of exactly those types:
    the prepared calls check the input's dtype, shape, C order and alignment first (see
    :data:`C_ALIGNED`).  A read-only input is typed apart by numba but unboxed the same way; the
    kernels only read it."""
    typeof = getattr(kern, "typeof_pyval", None)
    if typeof is None:
        return kern
    return kern.compile(tuple(typeof(a) for a in args))


#: ``ndarray.flags.num`` bits of a C-contiguous, aligned array (NPY_ARRAY_C_CONTIGUOUS |
#: NPY_ARRAY_ALIGNED): the arrays the kernel entry points of the prepared calls take.
C_ALIGNED = 0x0001 | 0x0100


def prepared_call(plan: geo.Plan, op: str, x: np.ndarray, count_include_pad=None, divisor_override=None,
               acc: np.dtype = F64):
    """The prepared forwards ``(call, into_out)`` (see _prepared_call) that max_reduce (op "max") or
    pool_sums (op "sum", result in float_dtype(x.dtype), sums in ``acc``) use for ``x`` under
    ``plan``, or None when they use none."""
    if x.flags.num & C_ALIGNED != C_ALIGNED:
        return None
    if op == "max":
        return _prepared_call(plan, ("max", x.dtype))
    return None if count_include_pad is None else _prepared_call(plan, ("sum", x.dtype, count_include_pad,
                                                                      divisor_override, acc))


def whole_call(plan: geo.Plan, op: str, x: np.ndarray, shape: tuple[int, ...], acc: np.dtype = F64):
    """The prepared global pooling of ``x`` under ``plan`` (op "max", or "sum": the means, summed
    in ``acc``), returning a new result of ``shape`` (the plan's output, its kept axes dropped or
    not), or None when the call takes another path (not global, an empty result, or an input the
    kernels do not read as it is).  Decided once per plan, key and shape: a global pooling layer
    applied batch after batch pays the allocation and the kernel, not the validation and planning
    (measured: a (32, 512, 7, 7) float32 global average 147 -> 127 us NCHW and 128 -> 74-80 us
    NHWC with this; a (1, 1, 6, 6) one 15.8 -> 2.9 us)."""
    if not x.flags.c_contiguous or x.dtype not in _AS_IS:
        return None
    memo, key = plan.memo, ("whole", op, x.dtype, acc, shape)
    prepared = memo.get(key, _UNSET)
    if prepared is not _UNSET:
        return prepared
    prepared = None
    whole = _whole(plan)
    if whole is not None and not _empty(plan.out_shape):
        if op == "max":
            def prepared(x: np.ndarray) -> np.ndarray:
                out = np.empty(shape, x.dtype)
                _reduce_whole(K.axis.max_whole, x, whole, out)
                return out
        else:
            odt, divisor = float_dtype(x.dtype), float(whole[1])

            def prepared(x: np.ndarray) -> np.ndarray:
                out = np.empty(shape, odt)
                _reduce_whole(K.axis.sum_whole, x, whole, out, divisor, acc, serial_below=WHOLE_SERIAL_BYTES)
                return out
    memo[key] = prepared
    return prepared


def _run_prepared(prepared, x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """The result of the prepared forwards of :func:`prepared_call`: new, or written into ``out``."""
    call, into_out = prepared
    return call(x) if out is None else into_out(x, out)


def max_reduce(x: np.ndarray, plan: geo.Plan, return_indices: bool = False, out: np.ndarray | None = None):
    """Window maxima (dtype of x, native) and, if asked, int64 flat indices over the pooled axes.
    The maxima are written into ``out`` when a kernel :func:`takes` it (see :func:`into`)."""
    if not return_indices:
        prepared = prepared_call(plan, "max", x)
        if prepared is not None:
            return _run_prepared(prepared, x, out), None
    if _empty(plan.out_shape):  # nothing to compute: no window table is built
        return (np.empty(plan.out_shape, native(x.dtype)),
                np.empty(plan.out_shape, np.int64) if return_indices else None)
    if not return_indices and plan.fused is not None and _half_blocks(x, plan.fused, "max") and _whole(plan) is None:
        _check_memory(plan.out_shape, 4, plan)
        return _fused_half(x, plan.fused, "max", plan.fused.divisors(None, None), plan.out_shape, out), None
    cur = kernel_input(x)
    _check_memory(plan.out_shape, cur.dtype.itemsize + (8 if return_indices else 0), plan)
    whole = None if return_indices else _whole(plan)
    if whole is not None:
        out = into(out, plan.out_shape, cur.dtype)
        _reduce_whole(K.axis.max_whole, cur, whole, out)
        return from_kernel(out, x.dtype), None
    f = plan.fused
    if f is not None:
        out = into(out, plan.out_shape, cur.dtype)
        idx = new_result(plan.out_shape, np.int64) if return_indices else None
        if out.size:
            if idx is not None:
                _max_indices(cur.reshape(f.in4), f, out.reshape(f.out4), idx.reshape(f.out4))
            else:
                _fused_forward(cur, f, "max", f.divisors(None, None), out)
        cur = out
    else:
        cur, idx = _max_separable(cur, plan, return_indices)
    return from_kernel(cur, x.dtype), idx


def _max_indices(src: np.ndarray, f, dst: np.ndarray, ix: np.ndarray) -> None:
    """The fused maxima with indices of ``src`` (viewed as ``f.in4``) into ``dst`` and ``ix``:
    the index twin first where the view has one (:func:`poolkit._kernels.sliding.index_twin`),
    max_indices for the rest of each chunk from the row the twin stops at (the first whose plane,
    or channels last whose window rows, hold a NaN)."""
    kern, size = K.sliding.max_indices, K.sliding.index_work_size(f.in4, f.out4)
    fast = _twin_kernel(f, ("index twin", src.dtype.itemsize), lambda: K.sliding.index_twin(f, src.dtype.itemsize))

    def body(t0: int, t1: int) -> None:
        t = t0 if fast is None else fast(src, f.tables, f.params, dst, ix, t0, t1)
        if t < t1:
            kern(src, f.tables, f.params, dst, ix, np.empty(size, src.dtype), np.empty(size, np.int64), t, t1)

    run(body, f.out4[0] * f.out4[1] * f.out4[2], src.size + 2 * dst.size)


def _max_separable(cur: np.ndarray, plan: geo.Plan, return_indices: bool):
    """The general path: one pooled axis at a time, the last first (any axes, any count)."""
    idx = None
    scales = pooled_scales(plan)
    for a, ap, scale in reversed(list(zip(plan.axes, plan.axis_plans, scales))):
        outer, length, inner = view3(cur.shape, a)
        new_shape = cur.shape[:a] + (ap.out_size,) + cur.shape[a + 1:]
        out = new_result(new_shape, cur.dtype)
        src = cur.reshape(outer, length, inner)
        dst = out.reshape(outer, ap.out_size, inner)
        total = outer * ap.out_size
        if return_indices:
            idx_out = new_result(new_shape, np.int64)
            idx_in = _NO_INDICES if idx is None else idx.reshape(outer, length, inner)
            has_in = idx is not None
            ix = idx_out.reshape(outer, ap.out_size, inner)
            if out.size:
                run(lambda t0, t1: K.axis.max_axis_indices(src, idx_in, has_in, ap.starts, ap.counts, ap.dilation,
                                                       scale, dst, ix, t0, t1),
                    total, cur.size + out.size)
            idx = idx_out
        elif out.size:
            run(lambda t0, t1: K.axis.max_axis(src, ap.starts, ap.counts, ap.dilation, dst, t0, t1),
                total, cur.size + out.size)
        cur = out
    return cur, idx


def pool_sums(x: np.ndarray, plan: geo.Plan, out_dtype, count_include_pad=None, divisor_override=None,
              out: np.ndarray | None = None, acc: np.dtype = F64):
    """Window sums divided by the average divisor (raw sums when count_include_pad is None),
    accumulated in ``acc`` (float64; float32 for a float32 ``x`` when the caller asks) and returned
    as ``out_dtype``; written into ``out`` when a kernel :func:`takes` it (see :func:`into`)."""
    if out_dtype is float_dtype(x.dtype):
        prepared = prepared_call(plan, "sum", x, count_include_pad, divisor_override, acc)
        if prepared is not None:
            return _run_prepared(prepared, x, out)
    if _empty(plan.out_shape):
        return np.empty(plan.out_shape, native(out_dtype))
    _check_memory(plan.out_shape, 8, plan)
    whole = _whole(plan)
    f = plan.fused
    if whole is None and f is not None and native(out_dtype) == np.float16 and _half_blocks(x, f, "sum"):
        return _fused_half(x, f, "sum", f.divisors(count_include_pad, divisor_override), plan.out_shape, out)
    x = kernel_input(x)
    if whole is not None:  # global pooling: the division and the output dtype in the same pass
        out = into(out, plan.out_shape, np.float64 if native(out_dtype) == np.float16 else native(out_dtype))
        divisor = 1.0 if count_include_pad is None else float(whole[1] if divisor_override is None
                                                              else divisor_override)
        _reduce_whole(K.axis.sum_whole, x, whole, out, divisor, acc, serial_below=WHOLE_SERIAL_BYTES)
        return narrow(out, out_dtype)
    if f is not None:
        out = into(out, plan.out_shape, kernel_dtype(out_dtype))
        if out.size:
            _fused_forward(x, f, "sum", f.divisors(count_include_pad, divisor_override), out, acc)
        return narrow(out, out_dtype)
    sums = _sum_separable(x, plan, acc)
    if count_include_pad is not None:
        divide(sums, plan, count_include_pad, divisor_override)
    return narrow(sums, out_dtype)


def sum_reduce(x: np.ndarray, plan: geo.Plan) -> np.ndarray:
    """Sum over each window's valid taps, in float64."""
    return pool_sums(x, plan, np.float64)


def _sum_separable(cur: np.ndarray, plan: geo.Plan, acc: np.dtype = F64) -> np.ndarray:
    for a, ap in reversed(list(zip(plan.axes, plan.axis_plans))):
        outer, length, inner = view3(cur.shape, a)
        out = new_result(cur.shape[:a] + (ap.out_size,) + cur.shape[a + 1:], acc)
        if out.size:
            src, dst = cur.reshape(outer, length, inner), out.reshape(outer, ap.out_size, inner)
            run(lambda t0, t1: K.axis.sum_axis(src, ap.starts, ap.counts, ap.dilation, dst, t0, t1),
                outer * ap.out_size, cur.size + out.size)
        cur = out
    return cur


def spread(g: np.ndarray, plan: geo.Plan, out_dtype, count_include_pad=None, divisor_override=None,
           out: np.ndarray | None = None):
    """The adjoint of :func:`pool_sums`: each g / divisor spread over its window's taps; written
    into ``out`` when the kernel :func:`takes` it (see :func:`into`)."""
    if _empty(plan.in_shape) or _empty(plan.out_shape):
        return np.zeros(plan.in_shape, native(out_dtype))
    _check_memory(plan.in_shape, 8, plan)
    f = plan.fused
    if f is not None:
        g = np.ascontiguousarray(g, dtype=np.float64 if g.dtype.kind != "f" or g.dtype == np.float16
                                 else native(g.dtype))
        out = into(out, plan.in_shape, kernel_dtype(out_dtype), fresh)
        if out.size:
            g4, o4 = g.reshape(f.out4), out.reshape(f.in4)
            divs = f.divisors(count_include_pad, divisor_override)
            size = K.sliding.adjoint_work_size(f.in4, f.out4, f.params)
            cover = _NO_ROWS if f.params[K.sliding.P_ROWS_DISJOINT] else f.row_windows()
            run(lambda o0, o1: K.sliding.sum_adjoint(g4, f.tables, f.params, divs, cover, o4, np.empty(size), o0,
                                                     o1),
                f.in4[0], g.size + out.size)
        return narrow(out, out_dtype)
    if count_include_pad is not None:
        g = divide(np.array(g, dtype=np.float64), plan, count_include_pad, divisor_override)
    return narrow(_sum_separable_adjoint(g, plan), out_dtype)


def sum_adjoint(g: np.ndarray, plan: geo.Plan) -> np.ndarray:
    """The transpose of :func:`sum_reduce`: spread each value over its window's taps (float64)."""
    return spread(g, plan, np.float64)


def _sum_separable_adjoint(g: np.ndarray, plan: geo.Plan) -> np.ndarray:
    cur = np.ascontiguousarray(g, dtype=np.float64)
    for a, ap in zip(plan.axes, plan.axis_plans):
        outer, _, inner = view3(cur.shape, a)
        out = new_result(cur.shape[:a] + (ap.in_size,) + cur.shape[a + 1:], np.float64)
        if out.size:
            src, dst = cur.reshape(outer, ap.out_size, inner), out.reshape(outer, ap.in_size, inner)
            run(lambda o0, o1: K.axis.sum_axis_adjoint(src, ap.starts, ap.counts, ap.dilation, dst, o0, o1),
                outer, cur.size + out.size)
        cur = out
    return cur


def scatter(values: np.ndarray, idx: np.ndarray, axes, out_shape, dtype, add: bool,
            out: np.ndarray | None = None) -> np.ndarray:
    """Write ``values`` at flat ``idx`` over the pooled ``axes`` of a zero array of ``out_shape``:
    added (``add``, the max backward) or set, the later duplicate winning (unpooling).

    Adjacent pooled axes are addressed in place through an (outer, positions, inner) view, into
    ``out`` when the kernel :func:`takes` it (the kernel zeroes each plane before it writes, so a
    reused ``out`` is fine); other layouts move the pooled axes last first, into a new array.
    """
    axes = tuple(axes)
    adjacent = axes[-1] - axes[0] == len(axes) - 1
    if adjacent:
        perm = list(range(len(out_shape)))
    else:
        perm = [a for a in range(len(out_shape)) if a not in axes] + list(axes)
        axes = tuple(range(len(out_shape) - len(axes), len(out_shape)))
        out = None
    moved_in = tuple(values.shape[a] for a in perm)
    moved_out = tuple(out_shape[a] for a in perm)
    outer = math.prod(moved_in[:axes[0]])
    inner = math.prod(moved_in[axes[-1] + 1:])
    n_src = math.prod(moved_in[axes[0]:axes[-1] + 1])
    n_dst = math.prod(moved_out[axes[0]:axes[-1] + 1])
    work_dtype = kernel_dtype(dtype)
    out = into(out, moved_out, work_dtype, fresh)
    if out.size:
        with np.errstate(over="ignore"):  # a float64 gradient beyond float32's range rounds to inf
            v = np.ascontiguousarray(values.transpose(perm), dtype=work_dtype).reshape(outer, n_src, inner)
        i = np.ascontiguousarray(idx.transpose(perm), dtype=np.int64).reshape(outer, n_src, inner)
        o3 = out.reshape(outer, n_dst, inner)
        kern = K.scatter.scatter_add if add else K.scatter.scatter_set
        if sum(run(lambda o0, o1: kern(v, i, o3, o0, o1), outer, v.size + out.size)):
            raise ValueError(f"indices must lie in [0, {n_dst}) (flat positions over the pooled axes), "
                             f"got values in [{idx.min()}, {idx.max()}]")
    result = narrow(out, dtype)
    return result if adjacent else result.transpose(np.argsort(perm))


def max_scatter(g: np.ndarray, idx: np.ndarray, plan: geo.Plan, dtype=np.float64,
                out: np.ndarray | None = None) -> np.ndarray:
    """Max backward: add each ``g`` at its flat index; shape ``plan.in_shape`` (into ``out`` when
    :func:`scatter` can write there)."""
    return scatter(g, idx, plan.axes, plan.in_shape, dtype, True, out)


def max_backward(grad_output, x: np.ndarray, plan: geo.Plan, indices=None, out: np.ndarray | None = None
                 ) -> np.ndarray:
    """The gradient of a max pooling of ``x`` with ``plan``: ``grad_output`` (checked) added at
    each window's maximum -- the forward's ``indices`` if given (checked), else found again.
    Written into ``out`` when :func:`scatter` can write there."""
    g = V.check_shape_of("grad_output", grad_output, plan.out_shape)
    idx = max_reduce(x, plan, True)[1] if indices is None else V.check_indices(indices, plan.out_shape)
    return max_scatter(g, idx, plan, float_dtype(x.dtype), out)


def divide(a: np.ndarray, plan: geo.Plan, count_include_pad: bool, divisor_override) -> np.ndarray:
    """``a`` (float64, of the output's shape) divided in place by the average-pooling divisor, one
    pooled axis at a time: the divisor is a product of per-axis counts and is never materialised
    (for a pyramid level of 2**20 x 2**20 bins that product would be 8 TiB)."""
    if divisor_override is not None:
        a /= float(divisor_override)
        return a
    for ax, ap in zip(plan.axes, plan.axis_plans):
        shape = [1] * a.ndim
        shape[ax] = ap.out_size
        a /= (ap.pad_counts if count_include_pad else ap.counts).astype(np.float64).reshape(shape)
    return a
