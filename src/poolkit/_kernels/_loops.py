"""Vector helpers every kernel family inlines: reduce, copy, spread and zero runs of a flat array.

The reduction is an argument: ``comb`` is :func:`max2` (PyTorch's max rules), :func:`max_num`
(the same for operands known not to be NaN), :func:`add2` (sums) or :func:`put2` (the later value
wins).  numba specialises a kernel on the function it is given, so
each named kernel compiles exactly its own reduction and nothing else.  (An ``is_sum`` flag pruned
after inlining cost far more: numba inlines both modes' code before it prunes one, and the first
call of one op took 50 s to compile instead of 2.)

All helpers are ``inline="always"``: numba pastes them into the kernel that calls them, so no helper
is a separately compiled, or separately cached, function.

Hot loops run over zero-based unsigned indices: numba adds a negative-index wraparound check to
every signed index it cannot prove non-negative, and that check stops LLVM from vectorising the loop
(measured: 6 ns -> 0.6 ns per element for a 3-tap max).  Rows are addressed as (flat array, offset),
never as array views, and the kernels run compiled without reference counting (``_nrt=False``):
every view numba makes costs an atomic increment and decrement of the array's reference count,
which took a third of the time of a 2x2 max pool (measured with perf).

No fastmath flag is used anywhere, so NaN comparisons stay exact.
"""

import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload


def kernel(func=None, *, reassociate: bool = False):
    """The decorator of every kernel that runs without reference counting: compiled on first use
    for each argument type, cached on disk under its own name, releasing the GIL, and built with
    ``_nrt=False`` (see above), so that it cannot allocate -- its caller passes every buffer.

    ``reassociate=True`` lets LLVM reorder the kernel's float additions (fastmath ``reassoc``
    alone: NaN, inf, signed zeros and division keep IEEE semantics), so that a float64 running sum
    vectorises; the sum is still float64, added in an order the compiler picks."""
    if func is None:
        return lambda f: kernel(f, reassociate=reassociate)
    fastmath: set[str] | bool = {"reassoc"} if reassociate else False
    # _nrt is a private numba option, absent from numba's type stubs
    return njit(cache=True, nogil=True, _nrt=False, fastmath=fastmath)(func)  # type: ignore[call-overload]


@njit(inline="always")
def better(v, b):
    """True when v replaces the current maximum b: strictly greater, or the first NaN."""
    return (v > b) | ((v != v) & (b == b))  # no short-circuit: the loops stay branch-free


@njit(inline="always")
def max2(b, v):
    """The maximum so far b combined with a later tap v: the first maximum wins, NaN beats every
    number and the first NaN wins."""
    return v if (v > b) | ((v != v) & (b == b)) else b  # better(v, b), written out: one inline fewer


@njit(inline="always")
def max_num(b, v):
    """max2 for operands that are not NaN (the same result there: the first maximum wins), in one
    instruction (x86 ``maxps``) instead of max2's three compares and a blend.  The fastmax kernels
    of :mod:`poolkit._kernels.sliding` combine with it and stop before the first output row whose
    windows' input rows hold a NaN (``_window_nan``), leaving the rest to the exact variant."""
    return v if v > b else b


@njit(inline="always")
def lower(v, b):
    """True when v replaces the current minimum b: strictly smaller, or the first NaN."""
    return (v < b) | ((v != v) & (b == b))


#: Whether the loops that combine a row into itself (:func:`vacc`, :func:`vput`) store maxima of
#: floats through ``llvm.maxnum`` (:func:`rmw`).  LLVM 22 (numba 0.68's; "[DAG] Combine store + vselect
#: to masked_store", llvm-project#145176) turns ``dst[q] = v if v > dst[q] else dst[q]``, vectorised,
#: into a masked store of ``v`` (x86 ``vmaskmovps``), which AMD's Zen cores run as microcode: an
#: in-place float32 max over a row of 248 took 120-140 ns on this project's AMD EPYC, against 20-27
#: ns through maxnum and 21-23 ns for the same max into another row.  On x86, ``maxnum(b, v)``
#: compiles to ``maxps(v, b)`` (v where v > b, else b: the first of tied zeros) and a blend for a
#: NaN ``b``; other CPUs' maxnum may prefer +0.0 to -0.0, so they keep the plain select.
RMW_MAXNUM = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _same_float(b, v) -> bool:
    """Whether the numba types ``b`` and ``v`` are both float32 or both float64: the operands
    :func:`rmw`'s maxnum forms take."""
    return b in (types.float32, types.float64) and b == v


def _maxnum_call(builder, b, v):
    """The call ``llvm.maxnum(b, v)`` (float32 or float64 operands)."""
    t = b.type
    name = "llvm.maxnum.f32" if t == ir.FloatType() else "llvm.maxnum.f64"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t]), name)
    return builder.call(fn, [b, v])


@intrinsic
def _maxnum(typingctx, b, v):
    """``llvm.maxnum(b, v)`` of two floats of one type: on x86 ``maxps(v, b)`` and a blend where
    ``b`` is NaN (there the result is ``v``)."""
    if not _same_float(b, v):
        return None

    def codegen(context, builder, signature, args):
        return _maxnum_call(builder, *args)

    return b(b, v), codegen


@intrinsic
def _max2_rmw(typingctx, b, v):
    """max2(b, v) of two floats of one type without a select that keeps ``b`` (see RMW_MAXNUM):
    both numbers, ``maxnum(b, v)`` (the first of tied maxima); else the NaN, ``b``'s first."""
    if not _same_float(b, v):
        return None

    def codegen(context, builder, signature, args):
        bv, vv = args
        b_nan = builder.fcmp_unordered("uno", bv, bv)
        any_nan = builder.fcmp_unordered("uno", bv, vv)
        return builder.select(any_nan, builder.select(b_nan, bv, vv), _maxnum_call(builder, bv, vv))

    return b(b, v), codegen


def rmw(comb, b, v):
    """``comb(b, v)`` for a loop that stores it back where ``b`` was read (see RMW_MAXNUM): for
    float32 and float64 maxima on x86, max_num as :func:`_maxnum` and max2 as :func:`_max2_rmw`,
    the same bits; anything else as ``comb`` itself.

    An overload compiled as a function of its own (LLVM inlines it, and the loops vectorise):
    typing it once per signature rather than inlining it in numba at every use, which made first
    calls 12-20% slower (9x9 max and channels-last 3x3 max, cold, farm-bench).  The kernels that
    call it stay cacheable: ``comb`` reaches it as a type, not as a function pointer."""
    return comb(b, v)


@overload(rmw)
def _rmw(comb, b, v):
    which = getattr(comb, "dispatcher", None)
    if RMW_MAXNUM and _same_float(b, v):
        if which is max_num:
            return lambda comb, b, v: _maxnum(b, v)
        if which is max2:
            return lambda comb, b, v: _max2_rmw(b, v)
    return lambda comb, b, v: comb(b, v)


@njit(inline="always")
def add2(b, v):
    return b + v


@njit(inline="always")
def put2(b, v):
    """The later value wins (unpooling: the last duplicate index is kept)."""
    return v


@njit(inline="always")
def vcopy(dst, d0, src, s0, n, stride):
    """dst[d0 + q] = src[s0 + q * stride] for q < n."""
    d, s, st = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    for q in range(np.uint64(n)):
        dst[d + q] = src[s + q * st]


@njit(inline="always")
def vacc(dst, d0, src, s0, n, stride, comb):
    """dst[d0 + q] = comb(dst[d0 + q], src[s0 + q * stride]) for q < n."""
    d, s, st = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    for q in range(np.uint64(n)):
        dst[d + q] = rmw(comb, dst[d + q], src[s + q * st])


@njit(inline="always")
def vput(dst, d0, src, s0, n, stride, first, comb):
    """vcopy for a window's first tap, vacc for the others (written out: numba runs its front end
    once per inlined call, so nested helpers cost compile time)."""
    d, s, st = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    if first:
        for q in range(np.uint64(n)):
            dst[d + q] = src[s + q * st]
    else:
        for q in range(np.uint64(n)):
            dst[d + q] = rmw(comb, dst[d + q], src[s + q * st])


@njit(inline="always")
def vpair(dst, d0, a, a0, b, b0, n, comb):
    """dst[d0 + q] = comb(a[a0 + q], b[b0 + q]) for q < n (a holds the earlier taps)."""
    d, ua, ub = np.uint64(d0), np.uint64(a0), np.uint64(b0)
    for q in range(np.uint64(n)):
        dst[d + q] = comb(a[ua + q], b[ub + q])


@njit(inline="always")
def vspread(dst, d0, src, s0, n, stride):
    """dst[d0 + q * stride] += src[s0 + q] for q < n."""
    d, s, st = np.uint64(d0), np.uint64(s0), np.uint64(stride)
    for q in range(np.uint64(n)):
        dst[d + q * st] += src[s + q]


@njit(inline="always")
def vzero(dst, d0, n):
    d = np.uint64(d0)
    for q in range(np.uint64(n)):
        dst[d + q] = 0


#: How far ahead of its reads a window loop asks for the input (bytes): the hardware prefetcher
#: of the family-26 AMD EPYC let a one-thread channels-last 2x2 average wait on memory (2.8 ms for
#: (32, 56, 56, 128) float32 against 0.9 ms in cache); asking 2 KiB ahead took it to 1.8 ms (4 KiB
#: 1.9, 8 KiB 2.3).
AHEAD_BYTES = 2048


@intrinsic
def prefetch(typingctx, arr, i):
    """Ask for the cache line of ``arr[i]`` (a flat array; ``i`` uint64) to be read into the caches
    (``llvm.prefetch``: x86 ``prefetcht0``).  A hint only: it never faults, so ``i`` may lie past
    the end of the array."""
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        byte = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        at = builder.bitcast(builder.gep(a.data, [args[1]]), byte)
        builder.call(fn, [at, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])  # read, keep, data
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def pair_at(typingctx, arr, i):
    """The unsigned integer elements ``arr[i]`` and ``arr[i + 1]`` (a flat array of uint8 or uint16;
    ``i`` uint64) as one integer of twice their width, ``arr[i]`` in the low half (x86 is
    little-endian): one load, aligned to the element.  LLVM leaves loops that read every other
    narrow element scalar on an AVX2 CPU; the pair kernels load each window row's two taps this way
    instead (see :mod:`poolkit._kernels.half` and :func:`poolkit._kernels.sliding.bytemax_pairs_s2`)."""
    bits = arr.dtype.bitwidth
    if not isinstance(arr.dtype, types.Integer) or arr.dtype.signed or bits not in (8, 16):
        return None
    wide = types.uint16 if bits == 8 else types.uint32

    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        load = builder.load(builder.bitcast(builder.gep(a.data, [args[1]]), ir.IntType(2 * bits).as_pointer()))
        load.align = bits // 8
        return load

    return wide(arr, i), codegen


@njit(inline="always")
def prefetch_ahead(xf, s0, n):
    """Prefetch the cache lines of ``xf[s0 + a : s0 + a + n]``, ``a`` being AHEAD_BYTES of
    elements: the part of a stream a loop will read a little later."""
    line = np.uint64(max(64 // xf.itemsize, 1))
    s = np.uint64(s0) + np.uint64(AHEAD_BYTES // xf.itemsize)
    for z in range(np.uint64(0), np.uint64(n), line):
        prefetch(xf, s + z)


# --------------------------------------------------------------------------------------------
# NaN and -0.0 found by the bits: integer maxima and minima, which vectorise
# --------------------------------------------------------------------------------------------


@intrinsic
def _float_bits(typingctx, v):
    """The bits of the float ``v`` as an unsigned integer of its width (a bitcast)."""
    if not isinstance(v, types.Float) or v.bitwidth not in (32, 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(v.bitwidth))

    return (types.uint32 if v.bitwidth == 32 else types.uint64)(v), codegen


def unruly_start(v):
    """(big, low): the start of :func:`unruly_take`'s running maximum and minimum, for values of
    ``v``'s type."""


def unruly_take(a, b, e, big, low):
    """(big, low) with the floats ``a``, ``b``, ``e`` taken in: the running maximum of their
    magnitudes' bits, above infinity's after a NaN, and the running minimum of their bits with the
    sign flipped, 0 after a -0.0 (:func:`unruly_seen` tells).  Other types: unchanged.

    The kernels used to or together compares (``v != v``, ``v == 0 and signbit(v)``): on AVX-512
    those land in mask registers, whose ors run on one port, and a 3-D max spent 30% of its time
    there (two threads, (2, 16, 64, 64, 64) float32 3x3x3 s2 p1: 1.49-1.70 ms, 1.21-1.35 with no
    check at all, 1.46-1.53 by these integer maxima and minima, in vector registers)."""


def unruly_seen(big, low):
    """Whether :func:`unruly_take` took a NaN or a -0.0."""


@overload(unruly_start)
def _unruly_start(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        return lambda v: (np.uint32(0), np.uint32(0xFFFFFFFF))
    if isinstance(v, types.Float) and v.bitwidth == 64:
        return lambda v: (np.uint64(0), np.uint64(0xFFFFFFFFFFFFFFFF))
    return lambda v: (np.uint8(0), np.uint8(1))


@overload(unruly_take)
def _unruly_take(a, b, e, big, low):
    if not (isinstance(a, types.Float) and a.bitwidth in (32, 64)):
        return lambda a, b, e, big, low: (big, low)
    u = np.uint32 if a.bitwidth == 32 else np.uint64  # every step kept in the float's width
    m, s = u(2 ** (a.bitwidth - 1) - 1), u(2 ** (a.bitwidth - 1))  # the magnitude bits, the sign bit

    def take(a, b, e, big, low):
        ua, ub, ue = _float_bits(a), _float_bits(b), _float_bits(e)
        top = max(max(u(ua & m), u(ub & m)), u(ue & m))
        bottom = min(min(u(ua ^ s), u(ub ^ s)), u(ue ^ s))
        return max(big, top), min(low, bottom)
    return take


@overload(unruly_seen)
def _unruly_seen(big, low):
    if big == types.uint32:
        return lambda big, low: (big > np.uint32(0x7F800000)) | (low == np.uint32(0))
    if big == types.uint64:
        return lambda big, low: (big > np.uint64(0x7FF0000000000000)) | (low == np.uint64(0))
    return lambda big, low: False
