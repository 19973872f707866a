"""PyTorch's ``torch.nn.functional`` pooling, on NumPy arrays.

Every function here has the name, the arguments, the defaults and the shape rules of its
``torch.nn.functional`` twin, takes and returns NumPy arrays, and is a thin translation onto the
poolkit core.  Inputs are channels-first, ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; the
pooled axes are the last 1, 2 or 3.

PyTorch's own validation is kept, as :class:`ValueError` with PyTorch's message ("pad should be at
most half of effective kernel size, ...", "Given input size: ... Output size is too small", ...),
so that a model that runs here also runs in PyTorch and the other way round.

Where PyTorch has a quirk, it is reproduced:

* ``lp_pool*d`` is PyTorch's formula, not the textbook norm: ``s = avg_pool(x**p) * prod(kernel)``
  then ``(sign(s) * relu(|s|)) ** (1/p)``.  So it is *signed* (odd ``p`` with a negative window sum
  gives NaN, ``p=1`` returns the plain signed sum) and in ``ceil_mode`` a partial window is scaled
  up to the full kernel (``sum * prod(kernel) / valid_count``).  ``norm_type=inf`` is max pooling of
  ``|x|``.  For the padding-free ``(sum |x|**p)**(1/p)`` of ONNX use :func:`poolkit.lp_pool`.
* ``avg_pool*d`` on integer input returns integers, the window mean truncated towards zero (what
  PyTorch does for int64).
* Padding is limited to half the kernel (``pad <= kernel_size // 2`` on every axis).
* Max pooling indices of a window holding NaN point at its *last* NaN (the core points at the
  first); a dilated window whose taps all miss the input gives the lowest value and PyTorch's
  out-of-range index instead of an error.
* ``avg_pool3d`` (and so ``lp_pool3d``) also insists that the input is at least the kernel size,
  padding or not; ``fractional_max_pool3d`` needs ``output + kernel - 1 < input`` (2-D: ``<=``).

Beyond PyTorch: every real dtype works everywhere (PyTorch refuses, for example, integer adaptive
pooling), ``fractional_max_pool*d`` accepts a plain number as ``output_ratio`` (as its docs say), and
bad indices given to ``max_unpool*d`` are a ValueError instead of PyTorch's RuntimeError.

Examples
--------
>>> import numpy as np
>>> from poolkit.compat import torch as F
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> F.max_pool2d(x, 2)
array([[[[ 5.,  7.],
         [13., 15.]]]], dtype=float32)
>>> F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
array([[[[ 2.5,  4. ],
         [ 8.5, 10. ]]]], dtype=float32)
>>> F.max_pool2d(x, 2, padding=2)
Traceback (most recent call last):
  ...
ValueError: max_pool2d: pad should be at most half of effective kernel size, but got pad=2, kernel_size=2 and dilation=1
"""

from __future__ import annotations

import math
import numbers

import numpy as np

import poolkit

from .. import _geometry as geo
from .. import _validate as V

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "fractional_max_pool2d", "fractional_max_pool3d",
]

_WORDS = {1: "one", 2: "two", 3: "three"}
_DIM_NAMES = {1: ("W",), 2: ("H", "W"), 3: ("T", "H", "W")}


# --------------------------------------------------------------------------------------------
# argument handling, as aten does it
# --------------------------------------------------------------------------------------------


def _ints(fname: str, argname: str, value, n: int, *, allow_none: bool = False, verb: str = "either be"):
    """``value`` as a tuple of ``n`` ints: an int or a 1-sequence broadcasts (``_pair``/``_triple``)."""
    if allow_none and (value is None or (isinstance(value, (tuple, list)) and len(value) == 0)):
        return None
    if V.is_int(value):
        return (int(value),) * n
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (tuple, list)) and all(V.is_int(v) for v in value):
        if len(value) == n:
            return tuple(int(v) for v in value)
        if len(value) == 1:
            return (int(value[0]),) * n
    extra = "omitted, " if allow_none else ""
    what = (f"an int, list of ints or tuple of ints of size {n}" if n == 1
            else f"a single int, or a tuple of {_WORDS[n]} ints")
    if n == 1:
        raise ValueError(f"{fname}() {argname} must be {extra}{what} but got {value!r}")
    raise ValueError(f"{fname}: {argname} must {verb} {extra}{what}")


def _input(fname: str, input, n: int) -> np.ndarray:
    """The input as an array of rank ``n+1`` (unbatched) or ``n+2`` whose non-batch sizes are > 0."""
    x = V.check_array(input, f"{fname}: input")
    if x.ndim not in (n + 1, n + 2) or any(s == 0 for s in x.shape[x.ndim - n - 1:]):
        raise ValueError(
            f"{fname}: Expected {n + 1}D or {n + 2}D (batch mode) tensor with optional 0 dim batch size "
            f"for input, but got: {list(x.shape)}"
        )
    return x


def _pool_geometry(fname, x, n, kernel_size, stride, padding, dilation, ceil_mode, check_input_size=False):
    """Validate a sliding-window call exactly where PyTorch does; return (k, s, p, d)."""
    k = _ints(fname, "kernel_size", kernel_size, n)
    s = _ints(fname, "stride", stride, n, allow_none=True)
    s = k if s is None else s
    p = _ints(fname, "padding", padding, n)
    d = _ints(fname, "dilation", dilation, n, verb="be either")
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{fname}: ceil_mode must be a bool, got {ceil_mode!r}")
    for name, values in (("kernel_size", k), ("stride", s), ("padding", p), ("dilation", d)):
        if any(abs(v) > geo.MAX_GEOMETRY for v in values):  # aten's int64 arithmetic would overflow
            raise ValueError(f"{fname}: {name} must be at most 2**62, got {values}")
    # pooling_output_shape (aten Pool.h), axis by axis
    for ki, si, pi, di in zip(k, s, p, d):
        if si == 0:
            raise ValueError(f"{fname}: stride should not be zero")
        if pi < 0:
            raise ValueError(f"{fname}: pad must be non-negative, but got pad: {pi}")
        if pi > _half((ki - 1) * di + 1):
            raise ValueError(
                f"{fname}: pad should be at most half of effective kernel size, but got pad={pi}, "
                f"kernel_size={ki} and dilation={di}"
            )
    names = _DIM_NAMES[n]
    # pool2d_shape_check / pool3d_shape_check
    if any(v <= 0 for v in k):
        raise ValueError(f"{fname}: kernel size should be greater than zero, but got "
                         + " ".join(f"k{a}: {v}" for a, v in zip(names, k)))
    if any(v <= 0 for v in s):
        raise ValueError(f"{fname}: stride should be greater than zero, but got "
                         + " ".join(f"d{a}: {v}" for a, v in zip(names, s)))
    if any(v <= 0 for v in d):
        raise ValueError(f"{fname}: dilation should be greater than zero, but got "
                         + " ".join(f"dilation{a}: {v}" for a, v in zip(names, d)))
    if check_input_size and any(x.shape[x.ndim - n + i] < k[i] for i in range(n)):  # avg_pool3d only
        raise ValueError(
            f"{fname}: input image ({' '.join(f'{a}: {v}' for a, v in zip(names, x.shape[x.ndim - n:]))}) smaller "
            f"than kernel size ({' '.join(f'k{a}: {v}' for a, v in zip(names, k))})"
        )
    if any(pi > _half(ki) for ki, pi in zip(k, p)):
        raise ValueError(
            f"{fname}: pad should be smaller than or equal to half of kernel size, but got "
            + ", ".join(f"pad{a} = {v}" for a, v in zip(names, p)) + ", "
            + ", ".join(f"k{a} = {v}" for a, v in zip(names, k))
        )
    out = [geo.output_size(x.shape[x.ndim - n + i], k[i], s[i], d[i], p[i], p[i], bool(ceil_mode)) for i in range(n)]
    if any(o < 1 for o in out):
        planes = x.shape[x.ndim - n - 1]
        raise ValueError(
            f"{fname}: Given input size: ({'x'.join(str(v) for v in (planes, *x.shape[x.ndim - n:]))}). "
            f"Calculated output size: ({'x'.join(str(v) for v in (planes, *out))}). Output size is too small"
        )
    return k, s, p, d


def _half(v: int) -> int:
    """C++'s ``v / 2`` (truncation towards zero)."""
    return v // 2 if v >= 0 else -((-v) // 2)


# --------------------------------------------------------------------------------------------
# max / avg / lp pooling
# --------------------------------------------------------------------------------------------


def _lowest(dtype):
    if dtype.kind == "f":
        return dtype.type(-np.inf)
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _torch_max(x, n, k, s, p, d, ceil_mode, return_indices):
    """Max pooling exactly as aten's CPU kernel, including its two quirks:

    * a NaN wins and so does every later NaN: the index points at the *last* NaN of the window;
    * with dilation a window can miss the input altogether (its taps jump over it): PyTorch returns
      the dtype's lowest value (-inf for floats) and, as index, the first tap at or after 0 on each
      axis -- which may lie outside the input.
    """
    spatial = x.shape[x.ndim - n:]
    firsts, empty = [], False  # per axis: each window's first tap >= 0; does some window miss the input?
    for size, ki, si, pi, di in zip(spatial, k, s, p, d):
        start = np.arange(geo.output_size(size, ki, si, di, pi, pi, ceil_mode), dtype=np.int64) * si - pi
        first = np.where(start < 0, start + (-start + di - 1) // di * di, start)
        firsts.append(first)
        empty = empty or bool(((first >= size) | (first > start + (ki - 1) * di)).any())
    if not empty:
        res = poolkit.max_pool(x, k, s, p, dilation=d, ceil_mode=ceil_mode, return_indices=return_indices)
        vals, idx = res if return_indices else (res, None)
    else:
        # Pad the start explicitly with the lowest value, so that every window has a cell.
        fill = _lowest(x.dtype)
        xp = np.pad(x, [(0, 0)] * (x.ndim - n) + [(pi, 0) for pi in p], constant_values=fill)
        vals, idxp = poolkit.max_pool(xp, k, s, [(0, pi) for pi in p], dilation=d, ceil_mode=ceil_mode,
                                      return_indices=True)
        idx = None
        if return_indices:
            coords = np.unravel_index(idxp, xp.shape[xp.ndim - n:])
            idx = np.ravel_multi_index(tuple(c - pi for c, pi in zip(coords, p)), spatial, mode="wrap")
            grids = np.meshgrid(*firsts, indexing="ij")
            torch_first = np.zeros(grids[0].shape, dtype=np.int64)
            for g, scale in zip(grids, np.cumprod((1,) + spatial[:0:-1])[::-1]):
                torch_first += g * int(scale)
            # where nothing beat the initial lowest value, PyTorch keeps its first-tap index
            idx = np.where(vals == fill, torch_first, idx)
    if return_indices:
        idx = _last_nan(x, n, vals, idx, lambda pos: _torch_max(pos, n, k, s, p, d, ceil_mode, False))
    return (vals, idx) if return_indices else vals


def _last_nan(x, n, vals, idx, pool_positions):
    """PyTorch's max kernels take every NaN they meet (``val > max || isnan(val)``), so the index
    of a NaN window points at its last NaN; ``pool_positions`` max-pools an int64 array like x."""
    if x.dtype.kind != "f":
        return idx
    nans = np.isnan(x)
    if not nans.any():
        return idx
    spatial = x.shape[x.ndim - n:]
    positions = np.where(nans, np.arange(math.prod(spatial), dtype=np.int64).reshape(spatial), -1)
    return np.where(np.isnan(vals), pool_positions(positions), idx)


def _max_pool(n, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    fname = f"max_pool{n}d"
    x = _input(fname, input, n)
    k, s, p, d = _pool_geometry(fname, x, n, kernel_size, stride, padding, dilation, ceil_mode)
    return _torch_max(x, n, k, s, p, d, bool(ceil_mode), bool(return_indices))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool1d``: ``(N, C, L)`` or ``(C, L)`` input.

    Returns the pooled array, and with ``return_indices=True`` also the int64 index of each maximum
    within its ``L`` axis (what ``max_unpool1d`` takes).

    >>> import numpy as np
    >>> from poolkit.compat.torch import max_pool1d
    >>> max_pool1d(np.array([[1., 5, 2, 4, 3]]), 2, return_indices=True)
    (array([[5., 4.]]), array([[1, 3]]))
    """
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool2d``: ``(N, C, H, W)`` or ``(C, H, W)`` input.

    Indices (``return_indices=True``) are int64 flat positions ``h * W + w`` within each plane.
    Padded cells never win; ties go to the first maximum in row-major order; NaN propagates.
    """
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool3d``: ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input.

    Indices are int64 flat positions ``(d * H + h) * W + w`` within each plane.
    """
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(n, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    fname = f"avg_pool{n}d"
    x = _input(fname, input, n)
    k, s, p, _ = _pool_geometry(fname, x, n, kernel_size, stride, padding, 1, ceil_mode, check_input_size=n == 3)
    if divisor_override is not None:
        if not V.is_int(divisor_override):
            raise TypeError(f"{fname}: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{fname}: divisor must be not zero")
    out = poolkit.avg_pool(x, k, s, p, ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                           divisor_override=None if divisor_override is None else int(divisor_override))
    if x.dtype.kind in "iu":  # PyTorch's integer average: the quotient truncated towards zero
        with np.errstate(invalid="ignore"):  # window sums beyond 2**63 (PyTorch wraps them around)
            out = np.trunc(out).astype(x.dtype.newbyteorder("="))
    return out


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """``torch.nn.functional.avg_pool1d``: ``(N, C, L)`` or ``(C, L)`` input.

    With ``count_include_pad`` (the default) the divisor counts the zero padding, but in
    ``ceil_mode`` never the overhang of the last window past the padding.

    >>> import numpy as np
    >>> from poolkit.compat.torch import avg_pool1d
    >>> avg_pool1d(np.array([[1., 2, 3, 4, 5]]), 2, ceil_mode=True)
    array([[1.5, 3.5, 5. ]])
    """
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """``torch.nn.functional.avg_pool2d``: ``(N, C, H, W)`` or ``(C, H, W)`` input.

    ``divisor_override`` replaces the divisor of every window.  Integer input gives the truncated
    integer mean, as PyTorch.
    """
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """``torch.nn.functional.avg_pool3d``: ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input."""
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def _lp_pool(n, input, norm_type, kernel_size, stride, ceil_mode):
    fname = f"lp_pool{n}d"
    x = _input(fname, input, n)
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"{fname}: norm_type must be a number, got {norm_type!r}")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    try:
        p = float(norm_type)
    except OverflowError:  # PyTorch's float() raises OverflowError
        raise ValueError(f"{fname}: norm_type must be a float (or +-inf), got {norm_type!r}") from None
    if p == 0:  # PyTorch divides by it (ZeroDivisionError)
        raise ValueError(f"{fname}: norm_type must not be 0, got {norm_type!r}")
    if p == math.inf:
        return _max_pool(n, np.abs(x), kernel_size, stride, 0, 1, ceil_mode, False)
    if p == -math.inf:
        return -_max_pool(n, -np.abs(x), kernel_size, stride, 0, 1, ceil_mode, False)
    k = _ints(fname, "kernel_size", kernel_size, n)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        powered = np.power(x, x.dtype.type(p))
        out = _avg_pool(n, powered, kernel_size, stride, 0, ceil_mode, True, None)
        # PyTorch: (sign(out) * relu(|out|)).mul(prod(kernel)).pow(1 / p)
        out = (np.sign(out) * np.maximum(np.abs(out), 0)) * out.dtype.type(math.prod(k))
        return np.power(out, out.dtype.type(1.0 / p))


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """``torch.nn.functional.lp_pool1d``: PyTorch's power-average pooling.

    ``(sign(s) * relu(|s|)) ** (1/p)`` with ``s = avg_pool1d(x**p, kernel_size, stride, 0,
    ceil_mode) * kernel_size``: a partial ``ceil_mode`` window is scaled to the full kernel, and the
    result is signed (NaN for a negative window sum when ``1/p`` is not an integer).  Integer
    input is computed in float64.

    >>> import numpy as np
    >>> from poolkit.compat.torch import lp_pool1d
    >>> lp_pool1d(np.array([[3., 4, 6]]), 2, 2, ceil_mode=True)
    array([[5.        , 8.48528137]])
    """
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """``torch.nn.functional.lp_pool2d``: as :func:`lp_pool1d`, scaled by ``kH * kW``."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """``torch.nn.functional.lp_pool3d``: as :func:`lp_pool1d`, scaled by ``kT * kH * kW``."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


# --------------------------------------------------------------------------------------------
# adaptive pooling
# --------------------------------------------------------------------------------------------


def _adaptive_sizes(fname, x, n, output_size):
    if n == 1:
        if V.is_int(output_size):
            sizes = (int(output_size),)
        elif isinstance(output_size, (tuple, list)) and len(output_size) == 1:
            sizes = tuple(output_size)
        else:
            raise ValueError(f"{fname}: output_size must be an int or a tuple of one int, got {output_size!r}")
    elif V.is_int(output_size):
        sizes = (int(output_size),) * n
    elif isinstance(output_size, (tuple, list)) and len(output_size) in (1, n):
        sizes = tuple(output_size) * (n if len(output_size) == 1 else 1)
    else:
        raise ValueError(f"{fname}: output_size must be an int or a tuple of {_WORDS[n]} ints (None keeps the "
                         f"input's size), got {output_size!r}")
    # PyTorch's _list_with_default: None keeps the input's size
    sizes = tuple(x.shape[x.ndim - n + i] if v is None else v for i, v in enumerate(sizes))
    for v in sizes:
        if not V.is_int(v):
            raise TypeError(f"{fname}: output_size must contain ints or None, got {output_size!r}")
        if v < 0:
            raise ValueError(f"{fname}: output_size must be non-negative, got {output_size!r}")
    return tuple(int(v) for v in sizes)


def _adaptive_input(fname, input, n):
    x = V.check_array(input, f"{fname}: input")
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(f"{fname}(): Expected {n + 1}D or {n + 2}D tensor, but got: {list(x.shape)}")
    for a in range(x.ndim - n - 1, x.ndim):
        if x.shape[a] == 0:
            raise ValueError(
                f"{fname}(): Expected input to have non-zero size for non-batch dimensions, but input has sizes "
                f"{list(x.shape)} with dimension {a} being empty"
            )
    return x


def _adaptive_max(n, input, output_size, return_indices):
    fname = f"adaptive_max_pool{n}d"
    x = _adaptive_input(fname, input, n)
    sizes = _adaptive_sizes(fname, x, n, output_size)
    if 0 in sizes:  # PyTorch returns an empty result
        shape = x.shape[:x.ndim - n] + sizes
        empty = np.empty(shape, dtype=x.dtype)
        return (empty, np.empty(shape, dtype=np.int64)) if return_indices else empty
    if not return_indices:
        return poolkit.adaptive_max_pool(x, sizes)
    vals, idx = poolkit.adaptive_max_pool(x, sizes, return_indices=True)
    return vals, _last_nan(x, n, vals, idx, lambda pos: poolkit.adaptive_max_pool(pos, sizes))


def _adaptive_avg(n, input, output_size):
    fname = f"adaptive_avg_pool{n}d"
    x = _adaptive_input(fname, input, n)
    sizes = _adaptive_sizes(fname, x, n, output_size)
    if 0 in sizes:
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
        return np.empty(x.shape[:x.ndim - n] + sizes, dtype=dtype)
    return poolkit.adaptive_avg_pool(x, sizes)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """``torch.nn.functional.adaptive_max_pool1d``: bins ``[floor(i*L/out), ceil((i+1)*L/out))``.

    >>> import numpy as np
    >>> from poolkit.compat.torch import adaptive_max_pool1d
    >>> adaptive_max_pool1d(np.array([[1., 5, 2, 4, 3]]), 3)
    array([[5., 5., 4.]])
    """
    return _adaptive_max(1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """``torch.nn.functional.adaptive_max_pool2d``; ``None`` in ``output_size`` keeps that size."""
    return _adaptive_max(2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """``torch.nn.functional.adaptive_max_pool3d``; ``None`` in ``output_size`` keeps that size."""
    return _adaptive_max(3, input, output_size, return_indices)


def adaptive_avg_pool1d(input, output_size):
    """``torch.nn.functional.adaptive_avg_pool1d``."""
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """``torch.nn.functional.adaptive_avg_pool2d``; ``None`` in ``output_size`` keeps that size."""
    return _adaptive_avg(2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    """``torch.nn.functional.adaptive_avg_pool3d``; ``None`` in ``output_size`` keeps that size."""
    return _adaptive_avg(3, input, output_size)


# --------------------------------------------------------------------------------------------
# unpooling
# --------------------------------------------------------------------------------------------


def _max_unpool(n, input, indices, kernel_size, stride, padding, output_size):
    fname = f"max_unpool{n}d"
    x = np.asarray(input)
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(f"{fname}: Expected {n + 1}D or {n + 2}D (batch mode) tensor for input, "
                         f"but got: {list(x.shape)}")
    k = _ints(fname, "kernel_size", kernel_size, n)
    s = _ints(fname, "stride", stride, n, allow_none=True)
    s = k if s is None else s
    p = _ints(fname, "padding", padding, n)
    # torch.nn.functional._unpool_output_size
    default = [(x.shape[x.ndim - n + i] - 1) * s[i] + k[i] - 2 * p[i] for i in range(n)]
    if output_size is None:
        sizes = default
    else:
        sizes = list(output_size.tolist() if isinstance(output_size, np.ndarray) else output_size)
        if len(sizes) == n + 2:
            sizes = sizes[2:]
        if len(sizes) != n:
            raise ValueError(
                "output_size should be a sequence containing "
                f"{n} or {n + 2} elements, but it has a length of '{len(sizes)}'"
            )
        for i in range(n):
            lo, hi = default[i] - s[i], default[i] + s[i]
            if not lo < sizes[i] < hi:
                raise ValueError(f'invalid output_size "{output_size}" (dim {i} must be between {lo} and {hi})')
    for i, v in enumerate(sizes):
        if v < 0:
            raise ValueError(f"max_unpooling: output_size must contain non-negative spatial dimensions, "
                             f"but got output_size[{i}]={v}")
    sizes = tuple(int(v) for v in sizes)
    if 0 in sizes:
        return np.zeros(x.shape[:x.ndim - n] + sizes, dtype=x.dtype)
    return poolkit.max_unpool(x, indices, sizes)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """``torch.nn.functional.max_unpool1d``: each value back at its index, zeros elsewhere.

    The default output length is ``(L - 1) * stride + kernel_size - 2 * padding``; ``output_size``
    (``n`` or ``n + 2`` values) must lie strictly within one stride of it.

    >>> import numpy as np
    >>> from poolkit.compat.torch import max_pool1d, max_unpool1d
    >>> v, i = max_pool1d(np.array([[1., 5, 2, 4, 3]]), 2, return_indices=True)
    >>> max_unpool1d(v, i, 2, output_size=[5])
    array([[0., 5., 0., 4., 0.]])
    """
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """``torch.nn.functional.max_unpool2d``; indices are flat ``h * W_out + w`` within each plane."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """``torch.nn.functional.max_unpool3d``; indices are flat within each output plane."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


# --------------------------------------------------------------------------------------------
# fractional max pooling
# --------------------------------------------------------------------------------------------


def _fractional(n, input, kernel_size, output_size, output_ratio, return_indices, _random_samples):
    fname = f"fractional_max_pool{n}d"
    x = np.asarray(input)
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(f"{fname}(): Expected {n + 1}D or {n + 2}D tensor, but got: {list(x.shape)}")
    if output_size is None and output_ratio is None:
        raise ValueError(f"{fname} requires specifying either an output_size or an output_ratio")
    k = _ints(fname, "kernel_size", kernel_size, n)
    spatial = x.shape[x.ndim - n:]
    if output_size is None:
        if isinstance(output_ratio, numbers.Real):
            ratio = (V.check_real(f"{fname}: output_ratio", output_ratio),) * n
        else:
            ratio = tuple(V.check_real(f"{fname}: output_ratio", r) for r in output_ratio)
            if len(ratio) == 1:
                ratio = ratio * n
            if len(ratio) != n:
                raise ValueError(f"{fname} requires output_ratio to either be a single number or a tuple of {n}")
        sizes = tuple(int(spatial[i] * ratio[i]) for i in range(n))
    else:
        sizes = _ints(fname, "output_size", output_size, n)
    names = {2: ("height", "width"), 3: ("time", "height", "width")}[n]
    for i in range(n):
        if k[i] <= 0:
            raise ValueError(f"{fname}(): kernel_size must be greater than zero, but got {k}")
        if sizes[i] <= 0:
            raise ValueError(f"{fname}(): output_size must be greater than zero, but got {sizes}")
        # aten: 2-D needs output + pool - 1 <= input, 3-D (fractional_max_pool3d_out) needs < input
        if sizes[i] + k[i] - 1 > spatial[i] - (1 if n == 3 else 0):
            where = f"{fname}_out()" if n == 3 else f"{fname}()"
            raise ValueError(f"{where}: pool {names[i]} {k[i]} too large relative to input {names[i]} {spatial[i]}")
    batched = x.ndim == n + 2
    xb = x if batched else x[None]
    if _random_samples is None:  # PyTorch: torch.rand(N, C, n) in the input's dtype
        dtype = xb.dtype if xb.dtype.kind == "f" else np.float32
        samples = np.random.default_rng().random((xb.shape[0], xb.shape[1], n)).astype(dtype)
    else:
        samples = np.asarray(_random_samples)
        if samples.shape != (xb.shape[0], xb.shape[1], n):
            raise ValueError(
                f"{fname}(): _random_samples must have shape ({xb.shape[0]}, {xb.shape[1]}, {n}) "
                f"(batch, channels, {n}), got {samples.shape}"
            )
    if return_indices:
        vals, idx = poolkit.fractional_max_pool(xb, k, sizes, random_samples=samples, return_indices=True)
        idx = _last_nan(xb, n, vals, idx,
                        lambda pos: poolkit.fractional_max_pool(pos, k, sizes, random_samples=samples))
        res = (vals, idx)
    else:
        res = poolkit.fractional_max_pool(xb, k, sizes, random_samples=samples)
    if batched:
        return res
    return (res[0][0], res[1][0]) if return_indices else res[0]


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """``torch.nn.functional.fractional_max_pool2d`` (Graham, 2014), PyTorch's interval rule.

    Given the same ``_random_samples`` (shape ``(N, C, 2)``, values in [0, 1); ``(1, C, 2)`` for
    unbatched input) the output and indices equal PyTorch's.  Without them, fresh samples are drawn.
    ``output_ratio`` gives ``output_size = int(input_size * ratio)``.

    >>> import numpy as np
    >>> from poolkit.compat.torch import fractional_max_pool2d
    >>> x = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> fractional_max_pool2d(x, 2, output_size=2, _random_samples=np.full((1, 1, 2), 0.5))
    array([[[[ 6.,  9.],
             [21., 24.]]]])
    """
    return _fractional(2, input, kernel_size, output_size, output_ratio, return_indices, _random_samples)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """``torch.nn.functional.fractional_max_pool3d``; ``_random_samples`` has shape ``(N, C, 3)``."""
    return _fractional(3, input, kernel_size, output_size, output_ratio, return_indices, _random_samples)
