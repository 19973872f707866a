"""The argument checks every public function uses: each bad value becomes a ``TypeError`` (wrong
kind) or ``ValueError`` (wrong value) whose message names the argument and shows the value.

Nothing here computes; :mod:`poolkit._geometry` validates window geometry.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: Sizes along the pooled axes: one int for every axis, or one per axis (kernel_size, stride...).
Sizes = int | Sequence[int]
#: Padding: an int, one per axis, a (before, after) pair per axis, or "valid" / "same" / "same_lower".
Padding = int | Sequence[int] | Sequence[Sequence[int]] | str
#: The pooled axes: one, several, or None for the default.
Axes = int | Sequence[int] | None

__all__ = ["ArrayLike", "Sizes", "Padding", "Axes", "is_int", "check_array", "check_bool", "check_choice",
           "check_real", "check_p", "check_shape_of", "check_indices"]


def is_int(v: Any) -> bool:
    """True for Python and NumPy integers, False for bools (which are ints to Python)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


_PLAIN = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                                          np.uint8, np.uint16, np.uint32, np.uint64, np.bool_))


def check_array(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as an ndarray of a real numeric or bool dtype with at least one dimension."""
    if type(x) is np.ndarray and x.dtype in _PLAIN and x.ndim:  # the common case, at once
        return x
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"{name} must have a real numeric or bool dtype, got dtype {arr.dtype}"
            + (" (pool the real and imaginary parts separately)" if kind == "c" else "")
        )
    if kind == "f" and arr.dtype.itemsize > 8:
        raise TypeError(f"{name} has dtype {arr.dtype} (long double): poolkit computes in float16, float32 and "
                        "float64; convert it with .astype(np.float64)")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a 0-d array")
    return arr


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """A case-insensitive choice among ``allowed`` (lower-case), returned in lower case."""
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value.lower()


def check_real(name: str, value: Any, *, positive: bool = False, hint: str = "") -> float:
    """``value`` as a finite Python float (``positive``: also > 0).  Ints too large for a float are
    a ValueError like any other out-of-range value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or (positive and not v > 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value!r}{hint}")
    return v


def check_p(p: Any, name: str = "p") -> float:
    """The order of an Lp norm: finite and > 0."""
    return check_real(name, p, positive=True, hint=" (for p=inf use max_pool(np.abs(x)))")


def check_shape_of(name: str, value: Any, shape) -> np.ndarray:
    """``value`` as an array (checked as by check_array) of exactly ``shape``: a gradient must have
    its forward output's shape."""
    g = check_array(value, name)
    if g.shape != tuple(shape):
        raise ValueError(f"{name} must have the forward output's shape {tuple(shape)}, got {g.shape}")
    return g


def check_indices(indices: Any, shape, name: str = "indices") -> np.ndarray:
    """``indices`` as int64 of ``shape``.  Their range is checked by the scatter kernel that uses
    them (one pass instead of a separate min and max)."""
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got dtype {idx.dtype}")
    if idx.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {idx.shape}")
    if idx.dtype.kind == "u" and idx.dtype.itemsize == 8 and idx.size and idx.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must lie in the input's flat positions, got {idx.max()}")
    return idx.astype(np.int64, copy=False)
