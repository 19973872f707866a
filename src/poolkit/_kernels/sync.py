"""The one kernel of :mod:`poolkit._engine`'s helper threads: waiting for a flag to change without
holding the GIL and without sleeping.

A thread woken from a lock on this project's 2-core virtual machine starts about 20 us later (the
idle core has to be woken first); the whole global average pooling of a (32, 512, 7, 7) float32
array takes 68 us on one core.  So the helpers, and the calling thread waiting for them, first
watch a flag for a short while -- as OpenMP's threads do -- and only then block on a lock.

The flag is read with an atomic acquire load, which the compiler may not hoist out of the loop,
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


@intrinsic
def _load_acquire(typingctx, flags, i):
    """flags[i] of an int64 array, read atomically with acquire ordering."""
    sig = types.int64(flags, i)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.load_atomic(builder.gep(ary.data, [args[1]]), "acquire", 8)

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
def spin(flags, i, old, rounds, settle, every):
    """Wait, without the GIL, until ``flags[i] != old`` or ``rounds`` reads have passed; return
    ``flags[i]`` (so ``old`` means the wait timed out).

    A change is returned only ``settle`` pauses after it is seen: the thread that changed the flag
    holds the GIL until it reaches its own kernel, and a thread asking for the GIL meanwhile is put
    to sleep, which costs it the 20-30 us of a wake-up (measured: a helper started its work 29 us
    into a call without the settling pause, 2.7 us with 1 us of it).

    Every ``every``-th round yields the CPU (``sched_yield``) instead of pausing: a thread woken
    onto the CPU of the thread it waits for would otherwise spin there while that thread waits
    for the CPU (measured in BENCHMARKS.md, "Waking from idle")."""
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
