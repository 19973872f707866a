"""The kernels of :mod:`poolkit._engine`'s helper threads: waiting for a flag to change without
holding the GIL and without sleeping (:func:`spin`), and the atomic flag updates that end a call
(the report in :func:`spin`, :func:`wait_mark`).

A thread woken from a lock on this project's 2-core virtual machine starts about 20 us later (the
idle core has to be woken first); the whole global average pooling of a (32, 512, 7, 7) float32
array takes 68 us on one core.  So the helpers, and the calling thread waiting for them, first
watch a flag for a short while -- as OpenMP's threads do -- and only then block on a lock.

A flag is read with an atomic acquire load, which the compiler may not hoist out of the loop,
and the loop pauses between reads (x86 ``pause``: it tells the core this is a spin, saving power
and the sibling hyper-thread's time), yielding the CPU now and then.
"""

import platform

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._loops import kernel

#: the x86 ``pause`` exists only there; elsewhere the loop just reads
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


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
    if report >= 0 and _swap(flags, report, value) < 0:
        return -1
    for r in range(rounds):
        v = _load_acquire(flags, i)
        if v != old:
            for _ in range(settle):
                _pause()
            return v
        if r % every == every - 1:
            _yield()
        else:
            _pause()
    return _load_acquire(flags, i)


@kernel
def wait_mark(flags, i, old, mark):
    """The caller's decision to sleep: store the (negative) ``mark`` into ``flags[i]`` if it still
    holds ``old`` (the helper has not finished); return whether it did, and so must sleep until
    the helper's report (:func:`spin` with ``report``) finds the mark and releases the caller's
    lock.  Called only when a wait outlasts its watching, so compiled only then."""
    return _compare_swap(flags, i, old, mark)
