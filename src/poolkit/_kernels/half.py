"""float16 conversions by bit manipulation: numba has no float16 type, but it reads and writes the
bits of a float16 array through its ``uint16`` view.  NumPy's own casts from and to float16 run
one element at a time (1.5-2.5 ns each); these loops are branch-free, so LLVM vectorises them (0.2-0.3
ns an element, about the time of reading and writing the bytes).

Every result is bit-identical to NumPy's ``astype`` (NumPy's ``npy_halfbits_to_floatbits``,
``npy_floatbits_to_halfbits`` and ``npy_doublebits_to_halfbits``):

* float16 -> float32 is exact: a NaN keeps its sign and payload (shifted; a signalling NaN stays
  signalling);
* float32 -> float16 and float64 -> float16 round once, to nearest even (float64 is never rounded
  through float32: that would round twice), overflow to inf, round small values to subnormals or
  to a signed zero; a NaN keeps its sign and the top 10 bits of its payload, and one whose kept
  payload would be 0 (which would read as inf) becomes payload 1.

Normal results are rounded with integer arithmetic on the bits.  Subnormal results use the float
unit's own round-to-nearest-even: adding ``M`` to ``|v| < 2**-14``, where ``M``'s unit in the last
place is 2**-24 (``M = 0.5`` in float32, ``2**28`` in float64), rounds ``|v|`` to a multiple of
2**-24 exactly once; subtracting ``M`` back is exact.  No intermediate is subnormal, and a subnormal
operand rounds to zero whether or not it is flushed, so flush-to-zero modes cannot change a result.

Where the CPU has the F16C instructions (most x86-64 CPUs since 2012-2013; numba's target
features say), float16 <-> float32 run through them instead: LLVM's ``fpext`` and
``fptrunc`` between ``half`` and ``float`` become ``vcvtph2ps`` and ``vcvtps2ph``, which convert 16
elements an instruction, rounding to nearest even as the bit manipulation does.  The hardware
differs from NumPy on one input class only, signalling NaNs, which it quiets (sets the top payload
bit) and whose kept payload it may not lift to 1; so a chunk of elements that holds a signalling
NaN is converted again by the bit manipulation (:func:`half_to_single_f16c`,
:func:`single_to_half_f16c`).  float64 -> float16
has no x86 instruction short of AVX512-FP16 and keeps the bit manipulation.  The engine calls
:func:`widen` and :func:`narrow`, which pick the variant.

Each conversion kernel converts the flat range ``[t0, t1)`` of its arguments (both 1-D and
C-contiguous); :mod:`poolkit._engine` splits the range over its threads.

The last sections hold the F16C-only kernels of tiled 2x2 windows, of 3-wide stride-2 windows
over 2-D planes and of channels-last window sums, which read and write float16 bits directly
(``pairs_{max,sum}_half_{cf,cl}``, ``plane_{max,sum}_half_k3s2``, ``sum_cl_half``: no float32 copy
of the input).
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import config
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

from ._loops import add2, better, kernel, max_num, pair_at, prefetch
from ._runs import half_pair_max, max_rows3, max_taps3
from .sliding import (
    P_DD,
    P_DH,
    P_DW,
    P_HI_W,
    P_INNER,
    P_KW,
    P_LO_W,
    P_STRIDE_W,
    _any_nan,
    _divisor_views,
    _emit_max,
    _emit_sum,
    _next_row,
    _no_nan,
    _no_row,
    _plane_k3s2,
    _row_coords,
    _tables,
)


def _has_f16c() -> bool:
    """Whether the code numba compiles may use F16C: numba's target features (its CPU_FEATURES
    setting, else the host's) include it."""
    chosen = getattr(config, "CPU_FEATURES", None)  # set by NUMBA_CPU_FEATURES (absent from the stubs)
    features = chosen if chosen is not None else get_host_cpu_features()
    return "+f16c" in features.split(",")


#: Whether :func:`widen` and :func:`narrow` use the F16C instructions.
F16C = _has_f16c()


@njit(inline="always")
def _special_to_single(em):
    """The float32 bits, sign apart, of the float16 inf or NaN whose exponent and mantissa bits are
    ``em`` (uint32): exponent 31 -> 255, the payload shifted (a signalling NaN stays signalling)."""
    return (em << np.uint32(13)) | np.uint32(0x7F800000)


@njit(inline="always")
def _nan_to_half(a):
    """The float16 bits, sign apart, of the float32 NaN whose bits without the sign are ``a``
    (uint32): its top 10 payload bits, at least 1 (a kept payload of 0 would read as inf)."""
    return np.uint32(0x7C00) | max((a & np.uint32(0x007FFFFF)) >> np.uint32(13), np.uint32(1))


@njit(inline="always")
def _half_to_single_bits(h):
    """The float32 bits of the float16 bits h (uint32 in, uint32 out)."""
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    em = h & np.uint32(0x7FFF)  # exponent and mantissa
    normal = (em << np.uint32(13)) + np.uint32(112 << 23)  # rebias the exponent: 127 - 15 = 112
    special = _special_to_single(em)  # inf and NaN
    # zero and subnormals: em * 2**-24, exactly (em < 2**10; the product is a normal float32)
    sub = np.float32(np.float32(np.int32(em)) * np.float32(2.0 ** -24)).view(np.uint32)
    bits = special if em >= np.uint32(0x7C00) else (normal if em >= np.uint32(0x0400) else sub)
    return bits | sign


@njit(inline="always")
def _single_to_half_bits(v):
    """The float16 bits (as uint32) of the float32 v, rounded to nearest even."""
    u = np.float32(v).view(np.uint32)
    sign = (u >> np.uint32(16)) & np.uint32(0x8000)
    a = u & np.uint32(0x7FFFFFFF)
    nan = _nan_to_half(a)
    # normal results (|v| >= 2**-14): rebias, round off 13 bits to even; a carry moves the
    # exponent up, to inf (0x7c00) at the top; the minimum maps larger values and inf to inf
    odd = (a >> np.uint32(13)) & np.uint32(1)
    normal = min((a - np.uint32(112 << 23) + np.uint32(0x0FFF) + odd) >> np.uint32(13), np.uint32(0x7C00))
    # subnormal results (|v| < 2**-14): the float addition rounds |v| to a multiple of 2**-24
    small = a < np.uint32(0x38800000)
    f = np.uint32(a if small else np.uint32(0)).view(np.float32)
    half = np.float32(0.5)
    sub = np.uint32(np.int32(((f + half) - half) * np.float32(2.0 ** 24)))
    bits = nan if a > np.uint32(0x7F800000) else (sub if small else normal)
    return bits | sign


@njit(inline="always")
def _double_to_half_bits(v):
    """The float16 bits (as uint32) of the float64 v, rounded to nearest even directly."""
    u = np.float64(v).view(np.uint64)
    sign = np.uint32((u >> np.uint64(48)) & np.uint64(0x8000))
    a = u & np.uint64(0x7FFFFFFFFFFFFFFF)
    nan = np.uint32(0x7C00) | max(np.uint32((a & np.uint64(0x000FFFFFFFFFFFFF)) >> np.uint64(42)), np.uint32(1))
    # normal results: rebias (1023 - 15 = 1008), round off 42 bits to even; values from 2**-14
    # to inf give at most 2**21 after the shift, so the minimum runs in uint32
    odd = (a >> np.uint64(42)) & np.uint64(1)
    rounded = (a - np.uint64(1008 << 52) + np.uint64((1 << 41) - 1) + odd) >> np.uint64(42)
    normal = min(np.uint32(rounded), np.uint32(0x7C00))
    small = a < np.uint64(0x3F10000000000000)  # 2**-14
    f = np.uint64(a if small else np.uint64(0)).view(np.float64)
    magic = np.float64(2.0 ** 28)
    sub = np.uint32(np.int32(((f + magic) - magic) * np.float64(2.0 ** 24)))
    bits = nan if a > np.uint64(0x7FF0000000000000) else (sub if small else normal)
    return bits | sign


@kernel
def half_to_single(src, dst, t0, t1):
    """dst[i] = float32 bits of the float16 bits src[i] (src uint16, dst uint32), i in [t0, t1)."""
    for i in range(np.uint64(t0), np.uint64(t1)):
        dst[i] = _half_to_single_bits(np.uint32(src[i]))


@kernel
def single_to_half(src, dst, t0, t1):
    """dst[i] = float16 bits of the float32 src[i] (dst uint16), rounded to nearest even."""
    for i in range(np.uint64(t0), np.uint64(t1)):
        dst[i] = np.uint16(_single_to_half_bits(src[i]))


@kernel
def double_to_half(src, dst, t0, t1):
    """dst[i] = float16 bits of the float64 src[i] (dst uint16), rounded to nearest even once."""
    for i in range(np.uint64(t0), np.uint64(t1)):
        dst[i] = np.uint16(_double_to_half_bits(src[i]))


@intrinsic
def _fpext_half(typingctx, h):
    """The float32 bits of the float16 bits ``h`` (uint16 -> uint32), by LLVM's ``fpext``."""
    def codegen(context, builder, signature, args):
        wide = builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
        return builder.bitcast(wide, ir.IntType(32))

    return types.uint32(types.uint16), codegen


@intrinsic
def _fptrunc_half(typingctx, v):
    """The float16 bits (uint16) of the float32 ``v``, by LLVM's ``fptrunc`` (nearest even)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(types.float32), codegen


#: The F16C widening asks for its source this many elements (8 KiB) ahead of its reads, in chunks
#: of :data:`_CHUNK`: the pooling calls widen a block from memory into cache, and on the family-26
#: AMD EPYC the hardware prefetcher alone left that read at 0.4 of the speed of a copy (25.7 M
#: float16 widened into a block in cache: 5.90 ms, 2.29-2.38 ms prefetching; see BENCHMARKS.md).
_AHEAD = 4096
_CHUNK = 512


# The F16C conversions run in chunks of _CHUNK elements: each chunk is converted by the hardware
# alone while a running minimum finds whether it holds a signalling NaN -- ``em - first`` (the
# float16's exponent and fraction bits, or the float32's, less the first signalling NaN's), which
# wraps around below it, is small exactly for the signalling NaNs -- and only a chunk that does is
# converted again, by the bit manipulation (before, every vector blended the bit manipulation's
# result into its NaN lanes).  A minimum vectorises where an or of compares did not: on the
# family-25 AMD EPYC (AVX2), one thread, 2**17 elements in cache, the widening took 0.36 ns an
# element with the blend everywhere and 0.26 with an or, 0.12 with the minimum -- the time of the
# bare ``vcvtph2ps`` loop (0.11); the narrowing 0.37 -> 0.10 (bare 0.10).  Quiet NaNs (NumPy's nan
# among them) need no blend: the hardware converts them as NumPy does.


@kernel
def half_to_single_f16c(src, dst, t0, t1):
    """:func:`half_to_single` by ``vcvtph2ps`` (only where :data:`F16C`), signalling NaNs by the bits."""
    i, end = np.uint64(t0), np.uint64(t1)
    while i < end:
        stop = min(i + np.uint64(_CHUNK), end)
        for z in range(i, stop, np.uint64(32)):  # 32 float16: one 64-byte line
            prefetch(src, z + np.uint64(_AHEAD))
        low = np.uint16(0xFFFF)
        for j in range(i, stop):
            h = src[j]
            dst[j] = _fpext_half(h)
            low = min(low, np.uint16((h & np.uint16(0x7FFF)) - np.uint16(0x7C01)))  # 0x7C01-0x7DFF: signalling
        if low < np.uint16(0x01FF):
            for j in range(i, stop):
                dst[j] = _half_to_single_bits(np.uint32(src[j]))
        i = stop


@kernel
def single_to_half_f16c(src, dst, t0, t1):
    """:func:`single_to_half` by ``vcvtps2ph`` (only where :data:`F16C`), signalling NaNs by the bits."""
    i, end = np.uint64(t0), np.uint64(t1)
    while i < end:
        stop = min(i + np.uint64(_CHUNK), end)
        low = np.uint32(0xFFFFFFFF)
        for j in range(i, stop):
            v = np.float32(src[j])
            dst[j] = _fptrunc_half(v)
            a = v.view(np.uint32) & np.uint32(0x7FFFFFFF)
            low = min(low, np.uint32(a - np.uint32(0x7F800001)))  # 0x7F800001-0x7FBFFFFF: signalling
        if low < np.uint32(0x003FFFFF):
            for j in range(i, stop):
                dst[j] = np.uint16(_single_to_half_bits(src[j]))
        i = stop


def widen(src, dst, t0: int, t1: int) -> None:
    """The float16 -> float32 conversion the engine calls: :func:`half_to_single_f16c` where
    :data:`F16C`, else :func:`half_to_single` (the same arguments and bits).  (A function, not an
    alias: every cached kernel has one name, see tests/test_compile_cache.py.)"""
    (half_to_single_f16c if F16C else half_to_single)(src, dst, t0, t1)


def narrow(src, dst, t0: int, t1: int) -> None:
    """The float32 -> float16 conversion the engine calls: :func:`single_to_half_f16c` where
    :data:`F16C`, else :func:`single_to_half`."""
    (single_to_half_f16c if F16C else single_to_half)(src, dst, t0, t1)


# --------------------------------------------------------------------------------------------
# float16 bits as int16 keys: maxima by integer compares
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _flip(s):
    """The key map of :func:`half_keys` on int16 ``s``: the 15 bits after the sign flipped where
    the sign is set (float16 bits to their key, and, being its own inverse, a key back to its
    bits)."""
    return np.int16(s ^ np.int16(np.int16(s >> np.int16(15)) & np.int16(0x7FFF)))


@kernel
def half_keys(src, dst, t0, t1):
    """dst[i] = the key of the float16 bits src[i] for t0 <= i < t1 (both flat uint16): the bits
    of a number with the sign clear, the other 15 bits flipped where the sign is set.  Read as
    int16, keys order as the values do: +0.0 is 0, -0.0 is -1, a larger magnitude of either sign
    lies further from them, and infinities lie beyond every finite value -- so the maximum of
    keys is the key of max_num's maximum, and the map is its own inverse (applied to the pooled
    keys it gives back the winner's own bits).  Two cases break that: a NaN's key lies beyond
    the infinities (max2 ranks a NaN above everything, whatever its sign), and +0.0 and -0.0 are
    two keys where max_num keeps the first of the tied zeros.  Returns whether one of the elements
    is a NaN or -0.0 (a running maximum of the magnitudes and a running minimum of the bits with
    the sign flipped, which vectorise; an or of compares did not).  Every step is written in 16
    bits (the sign spread by an arithmetic shift): 0.065 ns an element in cache, one thread,
    against 0.37 with the same steps in uint32."""
    big, low = np.uint16(0), np.uint16(0xFFFF)
    for i in range(np.uint64(t0), np.uint64(t1)):
        h = src[i]
        big = max(big, np.uint16(h & np.uint16(0x7FFF)))
        low = min(low, np.uint16(h ^ np.uint16(0x8000)))
        dst[i] = np.uint16(_flip(np.int16(h)))
    return (big > np.uint16(0x7C00)) | (low == np.uint16(0))


# --------------------------------------------------------------------------------------------
# 2x2 stride-2 windows read straight from float16 (F16C only)
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _value(h):
    """The float32 value of the float16 bits ``h`` by ``vcvtph2ps``: exact, but a signalling NaN
    comes back quiet -- used where only the value counts (compares, float64 sums)."""
    return np.uint32(_fpext_half(h)).view(np.float32)


@njit(inline="always")
def _first_max(hb, vb, hv, vv):
    """(bits, value) of the maximum so far (hb, vb) combined with a later tap (hv, vv): the rules of
    :func:`poolkit._kernels._loops.max2` on the values, keeping the winner's own float16 bits."""
    take = better(vv, vb)
    return (hv if take else hb), (vv if take else vb)


@njit(inline="always")
def _ahead(src, s, n):
    """Prefetch the lines of ``src[s + _AHEAD : s + _AHEAD + n]`` (float16 bits): the pair
    kernels read their input once, in order, so this is the part they read a little later."""
    for z in range(np.uint64(0), np.uint64(n), np.uint64(32)):
        prefetch(src, np.uint64(s) + np.uint64(_AHEAD) + z)


#: Adding ``_SPLIT`` = 3 * 2**16 to the float32 value of a finite float16 (a multiple of 2**-24,
#: at most 65504 < 2**16 in magnitude) gives a float32 between 2**17 and 2**18, whose spacing is
#: 2**-6: the addition rounds the value to a multiple of 2**-6, and subtracting ``_SPLIT`` back is
#: exact (Sterbenz: the two are within a factor of 2).  See :func:`_split`.
_SPLIT = np.float32(3 * 2 ** 16)


@njit(inline="always")
def _split(v):
    """(hi, lo) with ``v = hi + lo`` exactly for the float32 value ``v`` of a finite float16: ``hi``
    a multiple of 2**-6, ``lo`` a multiple of 2**-24 of at most 2**-7 in magnitude (so exact in
    float32: 17 bits).  Four hi add exactly in float32, in any order (multiples of 2**-6 below
    2**18: 24 bits), and so do four lo (multiples of 2**-24 below 2**-5: 19 bits); the float32 sum
    of the two sums is then the exact sum rounded once -- what rounding the exact float64 sum to
    float32 gives (but for its sign at zero: see :func:`_quad`).  An infinite or NaN ``v`` makes
    ``lo`` NaN."""
    hi = (v + _SPLIT) - _SPLIT
    return hi, v - hi


@njit(inline="always")
def _quad(a, b, e, f):
    """The exact sum of the values of four float16 bits, rounded once to float32 (:func:`_split`);
    NaN when a tap is infinite or NaN.  A -0.0 tap splits into +0.0 and -0.0, so the sum of four
    -0.0 would come out +0.0 where the float64 sum is -0.0; when the hi sum is zero, the lo sum
    alone is the exact sum, sign of zero included (it is -0.0 exactly when every tap is)."""
    ha, la = _split(_value(a))
    hb, lb = _split(_value(b))
    he, le = _split(_value(e))
    hf, lf = _split(_value(f))
    hi, lo = (ha + hb) + (he + hf), (la + lb) + (le + lf)
    return lo if hi == 0 else hi + lo


@njit(inline="always")
def _power_of_two(scale):
    """Whether the float64 ``scale`` is 2**k for -100 <= k <= 0: then the float32 product of a
    float32 sum of four float16 values and ``scale`` is exact (no float32 underflow or overflow),
    and equal to the float64 product rounded to float32."""
    bits = np.float64(scale).view(np.uint64)  # by the bits: frexp is a call, and rows can be short
    exponent = bits >> np.uint64(52)  # the sign bit clear, the exponent of 2**0 is 1023
    return ((bits & np.uint64(0xFFFFFFFFFFFFF)) == 0) & (exponent >= 923) & (exponent <= 1023)


@njit(inline="always")
def _cl_sums_split(src, dst, r0, r1, d, n_out, c, s32):
    """Channels last, one output row of pair sums times the power of two ``s32`` (float32) in
    float32 by :func:`_quad`: the bits of :func:`_cl_sums`, unless a tap is infinite or NaN
    (returned: the row is then made again by :func:`_cl_sums`).  (Channels first, the same
    arithmetic was slower than the float64 sums: two threads, (32, 128, 56, 56), 1.66-1.80 ->
    2.09-2.85 ms; its rows of 28 outputs ran mostly in the scalar remainder loop.  The loop has
    the shape of :func:`_cl_max_fast`'s; one walker for both, taking the window as a function
    that returns its bits and flag, made the maxima slower: 1.14-1.44 -> 1.48-1.63 ms.)"""
    two = np.uint64(2)
    bad = False
    for q in range(n_out):
        s0, s1, e0 = r0 + two * q * c, r1 + two * q * c, d + q * c
        _ahead(src, s0, two * c)
        _ahead(src, s1, two * c)
        for i in range(c):
            v = _quad(src[s0 + i], src[s0 + c + i], src[s1 + i], src[s1 + c + i])
            dst[e0 + i] = _fptrunc_half(v * s32)
            bad |= v != v
    return bad


@njit(inline="always")
def _cl_sums_any(src, dst, r0, r1, d, n_out, c, scale):
    """Channels last, one output row of pair sums: in float32 by :func:`_cl_sums_split` when
    ``scale`` is a power of two, else (or when a tap is infinite or NaN) in float64."""
    if not _power_of_two(scale) or _cl_sums_split(src, dst, r0, r1, d, n_out, c, np.float32(scale)):
        _cl_sums(src, dst, r0, r1, d, n_out, c, scale)


@njit(inline="always")
def _cf_sums(src, dst, r0, r1, d, n_out, c, scale):
    """Channels first, one output row of pair sums: the two rows at each tap, then the taps (as
    _pairs_row of :mod:`poolkit._kernels.sliding`), in float64.  (``c`` is 1: every row function
    takes the same arguments.)"""
    one, two = np.uint64(1), np.uint64(2)
    _ahead(src, r0, two * (r1 - r0))
    for q in range(n_out):
        a, b, e, f = src[r0 + two * q], src[r0 + two * q + one], src[r1 + two * q], src[r1 + two * q + one]
        v = (np.float64(_value(a)) + _value(e)) + (np.float64(_value(b)) + _value(f))
        dst[d + q] = _fptrunc_half(np.float32(v * scale))


@njit(inline="always")
def _cf_max_exact(src, dst, r0, r1, d, n_out):
    """Channels first, one output row of pair maxima by the NaN rules, in _cf_sums' order."""
    one, two = np.uint64(1), np.uint64(2)
    for q in range(n_out):
        a, b, e, f = src[r0 + two * q], src[r0 + two * q + one], src[r1 + two * q], src[r1 + two * q + one]
        h0, v0 = _first_max(np.uint32(a), _value(a), np.uint32(e), _value(e))
        h1, v1 = _first_max(np.uint32(b), _value(b), np.uint32(f), _value(f))
        dst[d + q] = np.uint16(_first_max(h0, v0, h1, v1)[0])


@njit(inline="always")
def _cf_max_fast(src, dst, r0, r1, d, n_out):
    """Channels first, one output row of pair maxima of the values alone (:func:`max_num`,
    ``maxps``'s rule) rounded back -- the same bits while no tap is NaN (a value rounds back to its
    own float16, -0.0 included); returns whether a tap was NaN (the row is then made again).
    Each window row's two taps are one 4-byte load (:func:`~poolkit._kernels._loops.pair_at`):
    LLVM left the loop of 2-byte loads at stride 2 scalar on an AVX2 CPU (AMD EPYC family 25, one
    thread, (32, 128, 56, 56): 11.4 ms, 4.6 ms with the pairs; the sums, vectorised either way,
    were slower with them, 3.0 against 4.2 ms)."""
    two, low, high = np.uint64(2), np.uint32(0xFFFF), np.uint32(16)
    nan = False
    for q in range(n_out):
        w0, w1 = pair_at(src, r0 + two * q), pair_at(src, r1 + two * q)
        va, vb = _value(np.uint16(w0 & low)), _value(np.uint16(w0 >> high))
        ve, vf = _value(np.uint16(w1 & low)), _value(np.uint16(w1 >> high))
        dst[d + q] = _fptrunc_half(max_num(max_num(va, ve), max_num(vb, vf)))
        nan |= (va != va) | (vb != vb) | (ve != ve) | (vf != vf)
    return nan


@njit(inline="always")
def _cf_max(src, dst, r0, r1, d, n_out, c, scale):
    """Channels first, one output row of pair maxima: the fast rule, 16 or 8 outputs at a time as
    LLVM vectors (:data:`~poolkit._kernels._runs.half_pair_max`; rows of fewer than 8 by
    :func:`_cf_max_fast`), then the NaN rules if a tap was NaN."""
    _ahead(src, r0, np.uint64(2) * (r1 - r0))
    if half_pair_max(src, r0, r1, r1, dst, d, np.uint64(n_out), scale, np.float32):
        return
    if _cf_max_fast(src, dst, r0, r1, d, n_out):
        _cf_max_exact(src, dst, r0, r1, d, n_out)


@njit(inline="always")
def _cl_sums(src, dst, r0, r1, d, n_out, c, scale):
    """Channels last (``c`` channels), one output row of pair sums: row by row, tap by tap (as
    _feed_pairs of :mod:`poolkit._kernels.sliding`), in float64."""
    two = np.uint64(2)
    for q in range(n_out):
        s0, s1, e0 = r0 + two * q * c, r1 + two * q * c, d + q * c
        _ahead(src, s0, two * c)
        _ahead(src, s1, two * c)
        for i in range(c):
            a, b, e, f = src[s0 + i], src[s0 + c + i], src[s1 + i], src[s1 + c + i]
            v = ((np.float64(_value(a)) + _value(b)) + _value(e)) + _value(f)
            dst[e0 + i] = _fptrunc_half(np.float32(v * scale))


@njit(inline="always")
def _cl_max_exact(src, dst, r0, r1, d, n_out, c):
    """Channels last, one output row of pair maxima by the NaN rules, in _cl_sums' order."""
    two = np.uint64(2)
    for q in range(n_out):
        s0, s1, e0 = r0 + two * q * c, r1 + two * q * c, d + q * c
        for i in range(c):
            a, b, e, f = src[s0 + i], src[s0 + c + i], src[s1 + i], src[s1 + c + i]
            h, w = _first_max(np.uint32(a), _value(a), np.uint32(b), _value(b))
            h, w = _first_max(h, w, np.uint32(e), _value(e))
            dst[e0 + i] = np.uint16(_first_max(h, w, np.uint32(f), _value(f))[0])


@njit(inline="always")
def _cl_max_fast(src, dst, r0, r1, d, n_out, c):
    """Channels last, _cf_max_fast's values-only maxima in _cl_sums' order; returns whether a tap
    was NaN."""
    two = np.uint64(2)
    nan = False
    for q in range(n_out):
        s0, s1, e0 = r0 + two * q * c, r1 + two * q * c, d + q * c
        _ahead(src, s0, two * c)
        _ahead(src, s1, two * c)
        for i in range(c):
            va, vb, ve, vf = _value(src[s0 + i]), _value(src[s0 + c + i]), _value(src[s1 + i]), _value(src[s1 + c + i])
            dst[e0 + i] = _fptrunc_half(max_num(max_num(max_num(va, vb), ve), vf))
            nan |= (va != va) | (vb != vb) | (ve != ve) | (vf != vf)
    return nan


@njit(inline="always")
def _cl_max(src, dst, r0, r1, d, n_out, c, scale):
    """Channels last, one output row of pair maxima: the fast rule, then the NaN rules if a tap
    was NaN."""
    if _cl_max_fast(src, dst, r0, r1, d, n_out, c):
        _cl_max_exact(src, dst, r0, r1, d, n_out, c)


@njit(inline="always")
def _pairs(src, dst, height, row_len, out_h, out_row, inner, scale, t0, t1, row):
    """Output rows t0 <= t < t1 (t = plane * out_h + oh) of 2x2 windows, each made by ``row``
    (one of the row functions above) from its two input rows."""
    rl, c = np.uint64(row_len), np.uint64(inner)
    n = np.uint64(out_row // inner)
    for t in range(np.uint64(t0), np.uint64(t1)):
        r0 = (t // np.uint64(out_h)) * np.uint64(height) * rl + np.uint64(2) * (t % np.uint64(out_h)) * rl
        row(src, dst, r0, r0 + rl, t * np.uint64(out_row), n, c, scale)


# The 2x2 stride-2 kernels of float16 bits: one per op and layout, so that a first call compiles
# one row loop (a kernel holding both layouts took 4.9 s to compile, first call included, against
# 1.7 s for the float32 block path it replaces).  Each takes output rows t0 <= t < t1
# (t = plane * out_h + oh) of planes of ``height`` input rows of ``row_len`` float16 bits
# (``src``, flat uint16) into planes of ``out_h`` rows of ``out_row`` (``dst``, flat uint16),
# 2x2 windows at stride 2, every one whole, combined in the order of the float32 kernels of its
# layout -- the bits of widening, pooling in float32 and rounding back, without the float32 copy.
# Maxima keep the winner's own bits (NaN payloads included): the values' fast rule first, and a
# row made again by the NaN rules only when it holds a NaN (as the float32 fastmax kernels do).
# Sums add the four values in float64 -- exactly: four float16 fit in a float64's 53 bits -- times
# ``scale`` (the product of the reciprocal divisors), rounded to float32, then to float16, as the
# float32 path does; NaNs are quiet from the first float64 operation on in both, so the hardware
# conversions give the same bits -- but for the sign and payload of a NaN sum whose window holds
# several NaNs (which NaN an addition keeps is left open, as in :func:`sum_cl_half`).  When
# ``scale`` is a power of two (every whole 2x2 window without ``divisor_override``), the exact sum
# is rounded to float32 by float32 arithmetic alone (:func:`_quad`) and scaled exactly -- the same
# bits without the float64 conversions, which were the rows' cost (channels last (32, 56, 56, 128):
# the kernel alone on one thread 2.48-2.99 -> 1.88-2.33 ms, the call on two threads 1.36-1.70 ->
# 1.15-1.42 ms, interleaved; after the sign-of-zero rule of :func:`_quad`, 1.95-2.07 -> 1.54-1.75
# ms in a slower state of the machine); a row with an infinity or a NaN is made again in float64.  ``scale``
# is unused by the maxima (one signature for all).


@kernel
def pairs_max_half_cf(src, dst, height, row_len, out_h, out_row, scale, t0, t1):
    """Maxima, channels first (W is the last axis)."""
    _pairs(src, dst, height, row_len, out_h, out_row, 1, scale, t0, t1, _cf_max)


@kernel
def pairs_sum_half_cf(src, dst, height, row_len, out_h, out_row, scale, t0, t1):
    """Sums times ``scale``, channels first."""
    _pairs(src, dst, height, row_len, out_h, out_row, 1, scale, t0, t1, _cf_sums)


@kernel
def pairs_max_half_cl(src, dst, height, row_len, out_h, out_row, inner, scale, t0, t1):
    """Maxima, channels last (``inner`` elements per W position)."""
    _pairs(src, dst, height, row_len, out_h, out_row, inner, scale, t0, t1, _cl_max)


@kernel
def pairs_sum_half_cl(src, dst, height, row_len, out_h, out_row, inner, scale, t0, t1):
    """Sums times ``scale``, channels last."""
    _pairs(src, dst, height, row_len, out_h, out_row, inner, scale, t0, t1, _cl_sums_any)


# --------------------------------------------------------------------------------------------
# 3-wide stride-2 windows over 2-D planes, read straight from float16 (F16C only)
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _load_half(xf, i):
    """The float32 value of the float16 bits ``xf[i]`` (:func:`_value`): the plane kernels' load."""
    return _value(xf[i])


@njit(inline="always")
def _store_half(of, i, v):
    """``of[i]`` = the float16 bits of ``v`` rounded to float32, then to float16 (as the float32
    path's result is rounded, then narrowed): the plane kernels' store."""
    of[i] = _fptrunc_half(np.float32(v))


@njit(inline="always")
def _nan_at_half(xf, i):
    """Whether the float16 bits ``xf[i]`` are a NaN's (exponent all ones, fraction not 0)."""
    return (np.uint32(xf[i]) & np.uint32(0x7FFF)) > np.uint32(0x7C00)


# The plane kernels of :mod:`poolkit._kernels.sliding` (fastmax_plane_k3s2, sum_plane_k3s2) over
# float16 bits: ``x`` and ``out`` are uint16 views, ``work`` float32 (maxima) or float64 (sums),
# the other arguments the float32 kernels'.  The values are widened as they are read and each
# result rounded as it is written -- the bits of widening the planes, pooling them in float32 and
# rounding back (:func:`poolkit._engine._fused_half`), without the float32 copies.  Maxima combine
# the values by max_num and return the first row of the first plane that holds a NaN (the engine
# makes the rest by the float32 path; a maximum rounds back to its own float16 bits, -0.0
# included); sums are float64 from the first operand on (exact: nine float16 fit in 53 bits), so
# a signalling NaN quieted by ``vcvtph2ps`` gives the bits of the float32 path, whose first float64
# operation quiets it.


@kernel
def plane_max_half_k3s2(x, tables, params, divs, out, work, t0, t1):
    """Maxima, up to the first row of the first plane holding a NaN (returned; else t1)."""
    return _plane_k3s2(x, tables, params, divs, out, work, t0, t1, 0, max_num, _any_nan, _emit_max, _load_half,
                       _store_half, _nan_at_half, max_rows3, max_taps3)


@kernel
def plane_sum_half_k3s2(x, tables, params, divs, out, work, t0, t1):
    """Sums times the reciprocal divisors."""
    _plane_k3s2(x, tables, params, divs, out, work, t0, t1, 0, add2, _no_nan, _emit_sum, _load_half, _store_half,
                _nan_at_half, _no_row, _no_row)


# --------------------------------------------------------------------------------------------
# channels-last window sums, read straight from float16 (F16C only)
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _cl_window(xf, work, b0, rs, n_rows, tap, n_taps, n_inner, first):
    """work[i] (+)= the sum, in float64, of the taps ``xf[b0 + r * rs + j * tap + i]`` for
    r < n_rows, j < n_taps (float16 bits), rows in order, then taps -- the order of the float32
    channels-last kernels -- for i < n_inner; when ``first``, the first tap is converted to
    float64 into work, else every tap is added to work."""
    for r in range(np.uint64(n_rows)):
        for j in range(np.uint64(n_taps)):
            p = b0 + r * rs + j * tap
            if first:
                for i in range(n_inner):
                    work[i] = np.float64(_value(xf[p + i]))
            else:
                for i in range(n_inner):
                    work[i] = work[i] + _value(xf[p + i])
            first = False


@njit(inline="always")
def _column(xf, s, rs, i):
    """The float64 sum of ``xf[s + i]``, ``xf[s + rs + i]`` and ``xf[s + 2 * rs + i]`` (float16 bits:
    one tap of a window's three rows), in that order."""
    return (np.float64(_value(xf[s + i])) + _value(xf[s + rs + i])) + _value(xf[s + rs + rs + i])


@njit(inline="always")
def _nines_in_order(xf, of, s, e, m, rs, tap, step, n_inner, scale, div_w, lo):
    """Full 3x3 windows q < m of one output row, from ``xf[s + q * step]`` (three rows ``rs`` apart,
    taps ``tap`` apart) into ``of[e + q * n_inner]``: the nine taps of each run of the inner axis
    added rows first, then taps, times ``scale * div_w[lo + q]``."""
    two = tap + tap
    for q in range(m):
        s0 = s + q * step
        s1, s2, d = s0 + rs, s0 + rs + rs, e + q * n_inner
        f = scale * div_w[lo + q]
        for i in range(n_inner):
            v = (np.float64(_value(xf[s0 + i])) + _value(xf[s0 + tap + i])) + _value(xf[s0 + two + i])
            v = ((v + _value(xf[s1 + i])) + _value(xf[s1 + tap + i])) + _value(xf[s1 + two + i])
            v = ((v + _value(xf[s2 + i])) + _value(xf[s2 + tap + i])) + _value(xf[s2 + two + i])
            _store_half(of, d + i, v * f)


@njit(inline="always")
def _nines_by_columns(xf, of, work, s, e, m, rs, n_inner, scale, div_w, lo):
    """:func:`_nines_in_order` for windows of 3 taps at stride 2 (``tap`` = n_inner,
    ``step`` = 2 * n_inner), which share their edge columns: each window adds its three column
    sums (:func:`_column`), the first being the one its left neighbour added last (kept in
    ``work``), so each column is summed once -- six taps read per window, not nine.

    The same numbers as :func:`_nines_in_order`: the sum of at most nine float16 values is exact in
    float64 in any order (each is a multiple of 2**-24 below 2**16, so every partial sum is a
    multiple of 2**-24 below 2**20: 44 bits), an exact sum is -0.0 only when every term is -0.0,
    and infinities of one sign give that infinity in any order (of both signs, or with a NaN: a
    NaN in any order).  (Prefetching each window's next lines, as the pair kernels do, made it
    slower: one thread, (32, 112, 112, 64), 1.08 ns an output with, 1.01-1.03 without.)"""
    two = n_inner + n_inner
    for i in range(n_inner):
        work[i] = _column(xf, s, rs, i)
    for q in range(m):
        b = s + q * two
        d = e + q * n_inner
        f = scale * div_w[lo + q]
        for i in range(n_inner):
            c1 = _column(xf, b + n_inner, rs, i)
            c2 = _column(xf, b + two, rs, i)
            v = (work[i] + c1) + c2
            work[i] = c2
            _store_half(of, d + i, v * f)


@njit(inline="always")
def _cl_views(x, out, params):
    """What the channels-last kernels over float16 bits (:func:`sum_cl_half`, :func:`max_cl_half`)
    take from their arguments: (flat ``x``, flat ``out``, inner, H, the row length, the output's,
    the plane length, the step from one tap to the next along W, from one window to the next, from
    one window row to the next along H and along D, the full windows along W (lo, hi), whether
    they are 3 taps wide, whether also at stride 2 without dilation: the shared columns)."""
    n_inner = np.uint64(params[P_INNER])
    height, row_len = x.shape[2], x.shape[3]
    lo, hi = params[P_LO_W], params[P_HI_W]
    nine = params[P_KW] == 3 and hi > lo
    return (x.reshape(x.size), out.reshape(out.size), n_inner, height, row_len, np.uint64(out.shape[3]),
            x.shape[1] * height * row_len, np.uint64(params[P_DW]) * n_inner, np.uint64(params[P_STRIDE_W]) * n_inner,
            np.uint64(params[P_DH] * row_len), np.uint64(params[P_DD] * height * row_len), lo, hi, nine,
            nine and params[P_STRIDE_W] == 2 and params[P_DW] == 1)


@kernel
def sum_cl_half(x, tables, params, divs, out, work, t0, t1):
    """Output rows t0 <= t < t1 of window sums times the reciprocal divisors, windows in runs of the
    inner axis (channels last: ``inner`` > 1), from float16 bits (``x``, ``out``: uint16 views;
    ``work``: float64, at least ``inner`` long; the other arguments the float32 kernels').

    Each window's taps are added in float64 as the float32 kernels (``sum_inner``, ``sum_inner2``,
    ``sum_inner3`` of :mod:`poolkit._kernels.sliding`) add them -- exactly: a float16 is a multiple
    of 2**-24 below 2**16, so sums of up to 2**13 of them fit in float64's 53 bits -- times the
    same product of reciprocal divisors (D's times H's, times W's), rounded to float32 and then to
    float16: the bits of widening the input, pooling it in float32 and narrowing the result,
    without the float32 copies.  One thing may differ: the sign and payload of a NaN sum whose
    window holds several NaNs (or a NaN and infinities of both signs).  IEEE 754 leaves open which
    NaN an addition keeps, and LLVM orders an addition's operands as it likes: the float32 kernels,
    as compiled here, keep the first NaN; this kernel may keep another.  A window with one NaN
    gives that NaN, quieted, in both.

    The full 3x3 windows of rows of three add a run of the inner axis at a time in registers -- by
    shared column sums at stride 2 (:func:`_nines_by_columns`) -- and every other window (clipped
    by padding, other sizes, 3-D) is summed in ``work``, rows in order, then taps."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    div_d, div_h, div_w = _divisor_views(divs, params)
    xf, of, n_inner, height, row_len, out_len, plane_len, tap, step, rs, rd, lo, hi, nine, shared = _cl_views(
        x, out, params)
    o, od, oh = _row_coords(t0, n_od, n_oh)
    for t in range(t0, t1):
        scale = div_d[od] * div_h[oh]
        nines = nine and ch[oh] == 3 and cd[od] == 1
        r0 = np.uint64(o * plane_len + (sd[od] * height + sh[oh]) * row_len)
        e0 = np.uint64(t) * out_len
        for ow in range(n_ow):
            if nines and lo <= ow < hi:
                continue  # below
            s0 = r0 + np.uint64(sw[ow]) * n_inner
            for jd in range(cd[od]):  # the rows of one D slice are rs apart, the slices rd
                _cl_window(xf, work, s0 + np.uint64(jd) * rd, rs, ch[oh], tap, cw[ow], n_inner, jd == 0)
            f = scale * div_w[ow]
            e = e0 + np.uint64(ow) * n_inner
            for i in range(n_inner):
                _store_half(of, e + i, work[i] * f)
        if nines:
            s, e, m = r0 + np.uint64(sw[lo]) * n_inner, e0 + np.uint64(lo) * n_inner, np.uint64(hi - lo)
            if shared:
                _nines_by_columns(xf, of, work, s, e, m, rs, n_inner, scale, div_w, lo)
            else:
                _nines_in_order(xf, of, s, e, m, rs, tap, step, n_inner, scale, div_w, lo)
        o, od, oh = _next_row(o, od, oh, n_od, n_oh)


# --------------------------------------------------------------------------------------------
# channels-last maxima as int16 keys, read straight from float16
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _key_of(h, big, low):
    """(the int16 key of the float16 bits ``h``, as :func:`half_keys` makes it; ``big`` and ``low``
    with ``h`` taken in: half_keys' running maximum of the magnitudes and minimum of the bits with
    the sign flipped, which tell a NaN or a -0.0)."""
    return (_flip(np.int16(h)), max(big, np.uint16(h & np.uint16(0x7FFF))),
            min(low, np.uint16(h ^ np.uint16(0x8000))))


@njit(inline="always")
def _bits_of(k):
    """The float16 bits (uint16) of the int16 key ``k``: the key map is its own inverse."""
    return np.uint16(_flip(k))


@njit(inline="always")
def _cl_window_keys(xf, keys, b0, rs, n_rows, tap, n_taps, n_inner, first, big, low):
    """keys[i] (max)= the keys of the taps ``xf[b0 + r * rs + j * tap + i]`` for r < n_rows,
    j < n_taps (float16 bits), i < n_inner; when ``first``, the first tap's keys are stored.
    Returns ``big`` and ``low`` with the taps taken in (:func:`_key_of`)."""
    for r in range(np.uint64(n_rows)):
        for j in range(np.uint64(n_taps)):
            p = b0 + r * rs + j * tap
            for i in range(n_inner):
                k, big, low = _key_of(xf[p + i], big, low)
                keys[i] = k if first else max(keys[i], k)
            first = False
    return big, low


@njit(inline="always")
def _key_column(xf, s, rs, i, big, low):
    """(the largest key of ``xf[s + i]``, ``xf[s + rs + i]`` and ``xf[s + 2 * rs + i]``: one tap of
    a window's three rows, ``big``, ``low``), as :func:`_key_of`."""
    a, big, low = _key_of(xf[s + i], big, low)
    b, big, low = _key_of(xf[s + rs + i], big, low)
    c, big, low = _key_of(xf[s + rs + rs + i], big, low)
    return max(max(a, b), c), big, low


@kernel
def max_cl_half(x, tables, params, divs, out, work, t0, t1):
    """Output rows t0 <= t < t1 of window maxima, windows in runs of the inner axis (channels last:
    ``inner`` > 1), from float16 bits (``x``, ``out``: uint16 views; ``work``: float32, at least
    ``inner`` long; the other arguments the float32 kernels').

    Each tap is made an int16 key as it is read (:func:`half_keys`' map), the keys are combined by
    integer maxima (32 to an AVX-512 vector) and the winner's key is mapped back: the bits of the
    float32 path's maximum, narrowed back, for a window without a NaN or a -0.0 (see half_keys).
    The kernel keeps half_keys' check of every tap it reads and returns the first output row whose
    windows held either (t1 when none did), for the engine to make that row's plane by the float32
    path.  Full 3x3 windows at stride 2 take the maximum of each column of three taps once and
    share it with the next window, as :func:`sum_cl_half` shares its column sums; the windows the
    padding or ceil mode clips are reduced in ``work``'s keys, tap by tap (as other sizes and 3-D
    windows would be: the engine sends this kernel 3x3 stride-2 windows only, see
    :func:`poolkit._engine._half_cl`).
    Against the keys of whole blocks (:func:`poolkit._engine._half_key_blocks`: the keys made and
    stored, pooled by the int16 kernel, mapped back), (32, 112, 112, 64) 3x3 s2 p1 on two threads:
    3.89 -> 1.59-1.72 ms back to back, 5.05-5.29 -> 3.57-4.09 ms in the suite's timing (the second
    call after idle); a cold first call 2.13-2.22 -> 1.69-1.71 s."""
    sd, cd, sh, ch, sw, cw = _tables(tables, params)
    n_od, n_oh, n_ow = sd.shape[0], sh.shape[0], sw.shape[0]
    xf, of, n_inner, height, row_len, out_len, plane_len, tap, step, rs, rd, lo, hi, nine, shared = _cl_views(
        x, out, params)
    keys = work.view(np.int16)
    big, low = np.uint16(0), np.uint16(0xFFFF)
    o, od, oh = _row_coords(t0, n_od, n_oh)
    for t in range(t0, t1):
        columns = shared and ch[oh] == 3 and cd[od] == 1
        r0 = np.uint64(o * plane_len + (sd[od] * height + sh[oh]) * row_len)
        e0 = np.uint64(t) * out_len
        for ow in range(n_ow):
            if columns and lo <= ow < hi:
                continue  # below
            s0 = r0 + np.uint64(sw[ow]) * n_inner
            for jd in range(cd[od]):  # the rows of one D slice are rs apart, the slices rd
                big, low = _cl_window_keys(xf, keys, s0 + np.uint64(jd) * rd, rs, ch[oh], tap, cw[ow], n_inner,
                                           jd == 0, big, low)
            e = e0 + np.uint64(ow) * n_inner
            for i in range(n_inner):
                of[e + i] = _bits_of(keys[i])
        if columns:  # each window's columns: the last one's last, and two more
            s, e = r0 + np.uint64(sw[lo]) * n_inner, e0 + np.uint64(lo) * n_inner
            for i in range(n_inner):
                keys[i], big, low = _key_column(xf, s, rs, i, big, low)
            for q in range(np.uint64(hi - lo)):
                b = s + q * step
                d = e + q * n_inner
                for i in range(n_inner):
                    c1, big, low = _key_column(xf, b + n_inner, rs, i, big, low)
                    c2, big, low = _key_column(xf, b + step, rs, i, big, low)
                    of[d + i] = _bits_of(max(max(keys[i], c1), c2))
                    keys[i] = c2
        if (big > np.uint16(0x7C00)) | (low == np.uint16(0)):  # a NaN or a -0.0 among its taps
            return t
        o, od, oh = _next_row(o, od, oh, n_od, n_oh)
    return t1
