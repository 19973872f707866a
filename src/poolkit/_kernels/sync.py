"""The kernels of :mod:`poolkit._engine`'s helper threads: waiting for a flag to change without
holding the GIL and without sleeping (:func:`spin`), the atomic flag updates that end a call (the
report in :func:`spin`, :func:`wait_mark`), and the pieces of a call whose helpers take their part
without Python (:func:`claim`, :func:`at`; see :func:`poolkit._kernels.axis.follow_sums`).

A thread woken from a lock on this project's 2-core virtual machine starts about 20 us later (the
idle core has to be woken first); the whole global average pooling of a (32, 512, 7, 7) float32
array takes 68 us on one core.  So the helpers, and the calling thread waiting for them, first
watch a flag for a short while -- as OpenMP's threads do -- and only then block on a lock.

A flag is read with an atomic acquire load, which the compiler may not hoist out of the loop,
and the loop pauses between reads (x86 ``pause``: it tells the core this is a spin, saving power
and the sibling hyper-thread's time), yielding the CPU now and then.
"""

import platform
import sys

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._loops import kernel, njit

#: the x86 ``pause`` exists only there; elsewhere the loop just reads
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
#: ``sched_getcpu`` and the affinity calls are Linux's (glibc, musl); elsewhere the CPU is unknown
#: (-1) and a helper does not move
_LINUX = sys.platform.startswith("linux")


def _slot(context, builder, signature, args):
    """The address of ``flags[i]``, the first two arguments of the intrinsics below."""
    ary = context.make_array(signature.args[0])(context, builder, args[0])
    return builder.gep(ary.data, [args[1]])


@intrinsic
def _load_acquire(typingctx, flags, i):
    """flags[i] of an int64 array, read atomically with acquire ordering."""
    sig = types.int64(flags, i)

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_slot(context, builder, signature, args), "acquire", 8)

    return sig, codegen


@intrinsic
def _swap(typingctx, flags, i, value):
    """Store ``value`` into flags[i] of an int64 array atomically (acq_rel) and return the value
    it replaced."""
    sig = types.int64(flags, i, value)

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("xchg", _slot(context, builder, signature, args), args[2], "acq_rel")

    return sig, codegen


@intrinsic
def _compare_swap(typingctx, flags, i, old, new):
    """Store ``new`` into flags[i] of an int64 array if it holds ``old``, atomically (acq_rel);
    return whether it did."""
    sig = types.boolean(flags, i, old, new)

    def codegen(context, builder, signature, args):
        pair = builder.cmpxchg(_slot(context, builder, signature, args), args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return sig, codegen


@intrinsic
def claim(typingctx, flags, i):
    """Add 1 to flags[i] of an int64 array atomically (acq_rel) and return the value before: each
    thread that claims the next chunk of a call this way gets a chunk of its own."""
    sig = types.int64(flags, i)

    def codegen(context, builder, signature, args):
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", _slot(context, builder, signature, args), one, "acq_rel")

    return sig, codegen


@intrinsic
def at(typingctx, like, address, shape):
    """A C-contiguous array of the type of ``like`` (its dtype and dimensions) over the memory at
    ``address``, of ``shape`` (a tuple of ints): how a helper reads the arrays of a call it learnt
    of without Python.  It owns nothing; the call's thread keeps the memory alive until the helper
    has reported its part done."""
    if not (isinstance(like, types.Array) and like.layout == "C" and like.mutable
            and isinstance(shape, types.UniTuple) and shape.count == like.ndim):
        return None
    sig = like(like, address, shape)

    def codegen(context, builder, signature, args):
        aryty = signature.return_type
        ary = context.make_array(aryty)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(aryty.dtype)))
        shapes = cgutils.unpack_tuple(builder, args[2])
        strides, step = [], itemsize
        for extent in reversed(shapes):
            strides.insert(0, step)
            step = builder.mul(step, extent)
        context.populate_array(ary, data=builder.inttoptr(args[1], ary.data.type), shape=shapes, strides=strides,
                               itemsize=itemsize, meminfo=None)
        return ary._getvalue()

    return sig, codegen


@intrinsic
def _pause(typingctx):
    """The x86 ``pause`` instruction (nothing on other machines)."""

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _yield(typingctx):
    """``sched_yield()``: let another runnable thread of this CPU run first (the thread stays
    runnable and continues when the CPU is free).  A plain libc call, resolved when the kernel is
    loaded."""

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def cpu(typingctx):
    """The CPU the calling thread runs on (libc's ``sched_getcpu``; -1 where it fails, and off
    Linux), an int64."""

    def codegen(context, builder, signature, args):
        if not _LINUX:
            return ir.Constant(ir.IntType(64), -1)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_getcpu")
        return builder.sext(builder.call(fn, []), ir.IntType(64))

    return types.int64(), codegen


def _affinity_codegen(name):
    """The code of a call of libc's ``name`` (``sched_getaffinity`` or ``sched_setaffinity``) for
    the calling thread with the CPU mask held in a uint64 array; libc's result (0 on success; -1
    off Linux, which has no such call)."""

    def codegen(context, builder, signature, args):
        if not _LINUX:
            return ir.Constant(ir.IntType(64), -1)
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        size = builder.mul(ary.nitems, ir.Constant(ir.IntType(64), 8))
        data = builder.bitcast(ary.data, ir.IntType(8).as_pointer())
        return builder.sext(builder.call(fn, [ir.Constant(ir.IntType(32), 0), size, data]), ir.IntType(64))

    return codegen


@intrinsic
def _get_affinity(typingctx, mask):
    """``sched_getaffinity`` of the calling thread into the uint64 array ``mask``."""
    return types.int64(mask), _affinity_codegen("sched_getaffinity")


@intrinsic
def _set_affinity(typingctx, mask):
    """``sched_setaffinity`` of the calling thread to the uint64 array ``mask``."""
    return types.int64(mask), _affinity_codegen("sched_setaffinity")


@njit(inline="always")
def move_off(here, masks):
    """Move the calling thread off CPU ``here`` to another CPU it may run on, then give it back the
    CPUs it had (as :func:`poolkit._engine._move_off` does, without Python): ``masks`` is a (2, n)
    uint64 scratch array, the thread's mask and the mask without ``here``.  Nothing when ``here``
    is its only CPU or the masks cannot be read or set."""
    if here < 0 or here >= 64 * masks.shape[1] or _get_affinity(masks[0]) != 0:
        return
    word, bit = here // 64, np.uint64(1) << np.uint64(here % 64)
    others = False
    for w in range(masks.shape[1]):
        masks[1, w] = masks[0, w] & ~bit if w == word else masks[0, w]
        others |= masks[1, w] != 0
    if others and _set_affinity(masks[1]) == 0:
        _set_affinity(masks[0])


@njit(inline="always")
def watch(flags, i, old, rounds, every):
    """:func:`spin`'s watch: ``flags[i]`` once it differs from ``old``, or after ``rounds`` reads."""
    for r in range(rounds):
        v = _load_acquire(flags, i)
        if v != old:
            return v
        if r % every == every - 1:
            _yield()
        else:
            _pause()
    return _load_acquire(flags, i)


@njit(inline="always")
def pause(rounds):
    """``rounds`` x86 pauses (the settling pause of :func:`spin`)."""
    for _ in range(rounds):
        _pause()


@njit(inline="always")
def report_done(flags, i, value):
    """Store ``value`` into flags[i] atomically; whether it replaced a caller's (negative) mark."""
    return _swap(flags, i, value) < 0


@kernel
def spin(flags, i, old, rounds, settle, every, report, value):
    """Wait, without the GIL, until ``flags[i] != old`` or ``rounds`` reads have passed; return
    ``flags[i]`` (so ``old`` means the wait timed out).

    With ``report >= 0`` (a helper ending its part of a call) it first stores ``value`` into
    ``flags[report]`` atomically, and returns -1 at once if that replaced a negative value: the
    caller had marked the flag (:func:`wait_mark`) and sleeps on its lock, which the helper must
    release.  The store is made here, without the GIL, so a caller that sees it can take the GIL
    at once.  Stored from Python, it came before the helper's last lines of Python, and a caller
    asking for the GIL meanwhile slept until the helper released it (measured: 10-80 us added to
    a 0.15 ms global average on two threads).

    A change is returned only ``settle`` pauses after it is seen: the thread that changed the flag
    holds the GIL until it reaches its own kernel, and a thread asking for the GIL meanwhile is put
    to sleep, which costs it the 20-30 us of a wake-up (measured: a helper started its work 29 us
    into a call without the settling pause, 2.7 us with 1 us of it).

    Every ``every``-th round yields the CPU (``sched_yield``) instead of pausing: a thread woken
    onto the CPU of the thread it waits for would otherwise spin there while that thread waits
    for the CPU (measured in BENCHMARKS.md, "Waking from idle")."""
    if report >= 0 and report_done(flags, report, value):
        return -1
    v = watch(flags, i, old, rounds, every)
    if v != old:
        pause(settle)
    return v


@kernel
def wait_mark(flags, i, old, mark):
    """The caller's decision to sleep: store the (negative) ``mark`` into ``flags[i]`` if it still
    holds ``old`` (the helper has not finished); return whether it did, and so must sleep until
    the helper's report (:func:`spin` with ``report``) finds the mark and releases the caller's
    lock.  Called only when a wait outlasts its watching, so compiled only then."""
    return _compare_swap(flags, i, old, mark)
