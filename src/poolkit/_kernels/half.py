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

Each kernel converts the flat range ``[t0, t1)`` of its arguments (both 1-D and C-contiguous);
:mod:`poolkit._engine` splits the range over its threads.
"""

import numpy as np
from numba import njit

from ._loops import kernel


@njit(inline="always")
def _half_to_single_bits(h):
    """The float32 bits of the float16 bits h (uint32 in, uint32 out)."""
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    em = h & np.uint32(0x7FFF)  # exponent and mantissa
    normal = (em << np.uint32(13)) + np.uint32(112 << 23)  # rebias the exponent: 127 - 15 = 112
    special = (em << np.uint32(13)) | np.uint32(0x7F800000)  # inf and NaN: exponent 31 -> 255
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
    # NaN: the top 10 payload bits, at least 1
    nan = np.uint32(0x7C00) | max((a & np.uint32(0x007FFFFF)) >> np.uint32(13), np.uint32(1))
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
