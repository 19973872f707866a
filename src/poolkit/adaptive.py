"""Pooling to a fixed size, whatever the input's size: global, adaptive, spatial pyramid and
fractional max pooling, each with its ``*_backward(grad_output, x, ...)`` twin (the same arguments
as the forward; it returns the gradient of ``sum(grad_output * op(x))`` with the shape of ``x``,
dtype of ``x`` for float inputs, float64 otherwise).

Inputs are channels-first ``(N, C, *spatial)`` unless ``axes`` says otherwise.  Every one of these
is a window table (:mod:`poolkit._geometry`: adaptive bins, fractional intervals) run through the
engine's reductions; arguments are validated here.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from . import _engine as E
from . import _geometry as geo
from . import _validate as V
from ._docs import fill
from ._validate import ArrayLike, Axes, Sizes
from .pooling import (
    _check_acc,
    _check_out,
    _deliver,
    _is_dask,
    _lazy,
    _no_lazy_out,
    _remember,
    _repeated,
    avg_pool,
    avg_pool_backward,
    lp_pool,
    lp_pool_backward,
    max_pool_backward,
)

#: Adaptive output sizes: an int for every axis, or one per axis (None keeps the axis).
OutputSizes = int | Sequence[int | None]

__all__ = [
    "global_max_pool",
    "global_avg_pool",
    "global_lp_pool",
    "adaptive_max_pool",
    "adaptive_avg_pool",
    "spatial_pyramid_pool",
    "fractional_max_pool",
    "global_max_pool_backward",
    "global_avg_pool_backward",
    "global_lp_pool_backward",
    "adaptive_max_pool_backward",
    "adaptive_avg_pool_backward",
    "spatial_pyramid_pool_backward",
    "fractional_max_pool_backward",
]

# --------------------------------------------------------------------------------------------
# axes and sizes
# --------------------------------------------------------------------------------------------


def _channels_first_axes(ndim, what) -> tuple[int, ...]:
    if ndim < 3:
        raise ValueError(
            f"{what} pools the axes after (N, C) by default, but x has only {ndim} dimensions; "
            "pass axes= to say which axes to pool"
        )
    return tuple(range(2, ndim))


def _sorted_axes(axes) -> tuple[int, ...]:
    return tuple(sorted(axes))


def _whole_axes(ndim, axes, what) -> tuple[int, ...]:
    """The pooled axes of a global or pyramid call (each pools whole axes), ascending: ``axes``, or
    by default every axis after (N, C)."""
    if axes is None:
        return _channels_first_axes(ndim, what)
    return _sorted_axes(geo.normalize_axes(ndim, axes, None, "axes"))


def _check_nonempty_axes(shape, axes) -> None:
    for a in axes:
        if shape[a] == 0:
            raise ValueError(f"axis {a} has size 0: there is nothing to pool")

# --------------------------------------------------------------------------------------------
# global pooling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Global:
    """A validated global pooling call: the input, its pooled axes (ascending) and their sizes,
    the shape with those axes kept as 1 and the output's shape."""

    x: np.ndarray
    axes: tuple[int, ...]
    sizes: tuple[int, ...]
    kept: tuple[int, ...]
    out_shape: tuple[int, ...]

    def grad(self, grad_output) -> np.ndarray:
        """The output's gradient, checked, with the pooled axes kept as size 1."""
        return V.check_shape_of("grad_output", grad_output, self.out_shape).reshape(self.kept)


def _global_setup(x, axes, keepdims) -> _Global:
    x = V.check_array(x)
    ax = _whole_axes(x.ndim, axes, "global pooling")
    keepdims = V.check_bool("keepdims", keepdims)
    _check_nonempty_axes(x.shape, ax)
    sizes = tuple(x.shape[a] for a in ax)
    kept = list(x.shape)
    for a in ax:
        kept[a] = 1
    out_shape = tuple(kept) if keepdims else tuple(s for i, s in enumerate(x.shape) if i not in ax)
    return _Global(x, ax, sizes, tuple(kept), out_shape)


def _global_into(s: _Global, dtype: np.dtype, out: np.ndarray | None, compute) -> np.ndarray:
    """The result of a global pooling call ``s``: ``compute(into)`` pools ``s.x`` over ``s.axes``
    with the pooled axes kept as 1, writing into ``into`` when it is an array; it lands in the
    caller's ``out`` (checked for ``s.out_shape`` and ``dtype``) when given -- through a view of
    ``out`` with the kept axes (inserting axes of size 1 never takes a copy), or copied in when
    ``out`` overlaps x."""
    if out is None:
        return compute(None).reshape(s.out_shape)
    direct = _check_out(out, s.out_shape, dtype, s.x)
    if direct is None:
        return _deliver(compute(None).reshape(s.out_shape), None, out)
    kept = direct.reshape(s.kept)
    _deliver(compute(kept), kept, kept)  # copied in when the engine wrote a new array instead
    return out


@fill
def global_max_pool(x: ArrayLike, axes: Axes = None, keepdims: bool = False, *,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Global max pooling: the maximum over all positions of the pooled axes.

    Parameters
    ----------
{X_SPATIAL}
{GLOBAL}
{OUT}
        Its shape is that of the result (the pooled axes removed, or kept as 1 with ``keepdims``);
        its dtype that of ``x``.  Not for a Dask ``x`` (its result is lazy).

    Returns
    -------
    out : ndarray
        ``(N, C)`` for channels-first input (the pooled axes removed, or kept with size 1 when
        ``keepdims``); dtype of ``x``.  NaN propagates.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(2 * 3 * 4).reshape(2, 3, 2, 2)
    >>> poolkit.global_max_pool(x)
    array([[ 3,  7, 11],
           [15, 19, 23]])
    >>> poolkit.global_max_pool(x, keepdims=True).shape
    (2, 3, 1, 1)
    """
    args = (axes, keepdims, out)  # a call with ``out`` never repeats one (see max_pool)
    call = _repeated("global_max", x, args)
    if call is not None:
        return call(x)
    if _is_dask(x):
        lazy = _lazy().global_max_pool(x, axes, keepdims)
        _no_lazy_out(out)
        return lazy
    s = _global_setup(x, axes, keepdims)
    plan = geo.make_plan(s.x.shape, s.sizes, axes=s.axes)
    res = _global_into(s, E.native(s.x.dtype), out, lambda into: E.max_reduce(s.x, plan, False, into)[0])
    _remember("global_max", s.x, args, lambda: E.whole_call(plan, "max", s.x, s.out_shape))
    return res


@fill
def global_avg_pool(x: ArrayLike, axes: Axes = None, keepdims: bool = False, *,
                    out: np.ndarray | None = None, acc_dtype: DTypeLike = "float64") -> np.ndarray:
    """Global average pooling: the mean over all positions of the pooled axes.

    Parameters
    ----------
{X_SPATIAL}
{GLOBAL}
{OUT}
        Its shape is that of the result (the pooled axes removed, or kept as 1 with ``keepdims``);
        its dtype that of a float ``x``, float64 for integer and
        bool inputs.  Not for a Dask ``x`` (its result is lazy).
{ACC_DTYPE}

    Returns
    -------
    out : ndarray
        ``(N, C)`` for channels-first input (or with size-1 pooled axes when ``keepdims``).
        Float inputs keep their dtype (accumulated in float64 unless ``acc_dtype`` says
        otherwise); integers and bools give float64.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(2 * 3 * 4).reshape(2, 3, 2, 2)
    >>> poolkit.global_avg_pool(x)
    array([[ 1.5,  5.5,  9.5],
           [13.5, 17.5, 21.5]])

    Channels-last ``(N, H, W, C)`` input names its spatial axes:

    >>> poolkit.global_avg_pool(np.ones((8, 7, 7, 512)), axes=(1, 2)).shape
    (8, 512)
    """
    args = (axes, keepdims, out, acc_dtype)  # a call with ``out`` never repeats one (see max_pool)
    call = _repeated("global_avg", x, args)
    if call is not None:
        return call(x)
    if _is_dask(x):
        lazy = _lazy().global_avg_pool(x, axes, keepdims)
        _check_acc(acc_dtype, None)
        _no_lazy_out(out)
        return lazy
    s = _global_setup(x, axes, keepdims)
    acc = _check_acc(acc_dtype, s.x.dtype)
    res = _global_into(s, E.float_dtype(s.x.dtype), out,
                       lambda into: avg_pool(s.x, s.sizes, axes=s.axes, out=into, acc_dtype=acc_dtype))
    _remember("global_avg", s.x, args,
              lambda: E.whole_call(geo.make_plan(s.x.shape, s.sizes, axes=s.axes), "sum", s.x, s.out_shape, acc))
    return res


@fill
def global_lp_pool(x: ArrayLike, p: float, axes: Axes = None, keepdims: bool = False, *,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Global Lp pooling: ``(sum |x|**p) ** (1/p)`` over all positions of the pooled axes.

    Parameters
    ----------
{X_SPATIAL}
    p : float
        The norm's order, finite and > 0 (ONNX ``GlobalLpPool``).
{GLOBAL}
{OUT}
        Its shape is that of the result (the pooled axes removed, or kept as 1 with ``keepdims``);
        its dtype that of a float ``x``, float64 for integer and
        bool inputs.  Not for a Dask ``x`` (its result is lazy).

    Returns
    -------
    out : ndarray
        ``(N, C)`` for channels-first input (or with size-1 pooled axes when ``keepdims``);
        float inputs keep their dtype, integers and bools give float64.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[[[3., -4.], [0., 0.]]]])
    >>> poolkit.global_lp_pool(x, 2)
    array([[5.]])
    >>> poolkit.global_lp_pool(x, 1)
    array([[7.]])
    """
    if _is_dask(x):
        lazy = _lazy().global_lp_pool(x, p, axes, keepdims)
        _no_lazy_out(out)
        return lazy
    p = V.check_p(p)
    s = _global_setup(x, axes, keepdims)
    return _global_into(s, E.float_dtype(s.x.dtype), out, lambda into: lp_pool(s.x, p, s.sizes, axes=s.axes, out=into))


@fill
def global_max_pool_backward(grad_output: ArrayLike, x: ArrayLike, axes: Axes = None,
                             keepdims: bool = False) -> np.ndarray:
    """Gradient of :func:`global_max_pool`: each output's gradient goes to the first maximum.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to ``global_max_pool(x, axes, keepdims)``, of its shape.
    x : ndarray
        The forward input.
{GLOBAL}

    Returns
    -------
    grad_x : ndarray
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.  Ties send the whole
        gradient to the first maximum in row-major order (a NaN wins over every number).

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[[[1., 5.], [5., 2.]]]])
    >>> poolkit.global_max_pool_backward(np.array([[10.]]), x)
    array([[[[ 0., 10.],
             [ 0.,  0.]]]])
    """
    s = _global_setup(x, axes, keepdims)
    return max_pool_backward(s.grad(grad_output), s.x, s.sizes, axes=s.axes)


@fill
def global_avg_pool_backward(grad_output: ArrayLike, x: ArrayLike, axes: Axes = None,
                             keepdims: bool = False) -> np.ndarray:
    """Gradient of :func:`global_avg_pool`: each output's gradient spread evenly over its plane.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to ``global_avg_pool(x, axes, keepdims)``, of its shape.
    x : ndarray
        The forward input (only its shape and dtype are used).
{GLOBAL}

    Returns
    -------
    grad_x : ndarray
        ``grad_output / (number of pooled positions)`` broadcast over the pooled axes; shape of
        ``x``, dtype of ``x`` for float inputs, float64 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> poolkit.global_avg_pool_backward(np.array([[4.]]), np.zeros((1, 1, 2, 2)))
    array([[[[1., 1.],
             [1., 1.]]]])
    """
    s = _global_setup(x, axes, keepdims)
    return avg_pool_backward(s.grad(grad_output), s.x, s.sizes, axes=s.axes)


@fill
def global_lp_pool_backward(grad_output: ArrayLike, x: ArrayLike, p: float, axes: Axes = None,
                            keepdims: bool = False) -> np.ndarray:
    """Gradient of :func:`global_lp_pool`.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to ``global_lp_pool(x, p, axes, keepdims)``, of its shape.
    x : ndarray
        The forward input.
    p : float
        As in :func:`global_lp_pool`.
{GLOBAL}

    Returns
    -------
    grad_x : ndarray
        ``sign(x) * |x|**(p-1) * grad_output * y**(1-p)`` with ``y`` the forward output (zero
        where ``y`` is 0); shape of ``x``, dtype of ``x`` for float inputs, float64 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[[[3., -4.]]]])
    >>> poolkit.global_lp_pool_backward(np.array([[1.]]), x, 2)
    array([[[[ 0.6, -0.8]]]])
    """
    p = V.check_p(p)
    s = _global_setup(x, axes, keepdims)
    return lp_pool_backward(s.grad(grad_output), s.x, p, s.sizes, axes=s.axes)

# --------------------------------------------------------------------------------------------
# adaptive pooling
# --------------------------------------------------------------------------------------------


def _sequence(name, value):
    """``value`` as a tuple, or None when it is a scalar (int or real)."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or a sequence, got {value!r}")
    if isinstance(value, numbers.Number) or isinstance(value, np.generic):
        return None
    try:
        return tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a number or a sequence, got {value!r}") from None


def _pooled_axes(ndim, axes, n, what, op):
    """Pooled axes (given order): ``axes``; else the last ``n``; else (n None) all after (N, C)."""
    if n == 0:
        raise ValueError(f"{what} must name at least one axis, got an empty sequence")
    if axes is None and n is None:
        return _channels_first_axes(ndim, op)
    return geo.normalize_axes(ndim, axes, n, what)


def _adaptive_sizes(output_size, n_axes):
    items = _sequence("output_size", output_size)
    if items is None:
        items = (output_size,) * n_axes
    if len(items) != n_axes:
        raise ValueError(f"output_size must have one value per pooled axis ({n_axes}), got {output_size!r}")
    sizes = []
    for v in items:
        if v is None:
            sizes.append(None)
        elif V.is_int(v):
            if v < 1:
                raise ValueError(f"output_size must be >= 1 on every axis (or None), got {output_size!r}")
            sizes.append(operator.index(v))
        else:
            raise TypeError(f"output_size must be an int, None, or a sequence of them, got {output_size!r}")
    return sizes


def _adaptive_plan(shape, output_size, axes) -> geo.Plan:
    """The plan of adaptive pooling; a None size keeps that axis (one-cell windows)."""
    items = _sequence("output_size", output_size)
    ax = _pooled_axes(len(shape), axes, None if items is None else len(items), "output_size", "adaptive pooling")
    sizes = _adaptive_sizes(output_size, len(ax))
    _check_nonempty_axes(shape, ax)
    sizes = [shape[a] if s is None else s for a, s in zip(ax, sizes)]
    # memoised once validated (ints only in the key): a layer applied batch after batch reuses it
    key = ("adaptive", tuple(int(n) for n in shape), tuple(int(a) for a in ax), tuple(int(s) for s in sizes))
    return geo.kept_plan(key, lambda: geo.Plan.of(shape, ax, [geo.adaptive_plan(shape[a], s)
                                                              for a, s in zip(ax, sizes)]))


@fill
def adaptive_max_pool(x: ArrayLike, output_size: OutputSizes, *, axes: Axes = None, return_indices: bool = False,
                      out: np.ndarray | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive max pooling: max pooling to a fixed output size, whatever the input size.

    Parameters
    ----------
{X_SPATIAL}
{ADAPTIVE_PARAMS}
{RETURN_INDICES}
{OUT}
        Its shape is that of the result; its dtype that of ``x``.  It receives the maxima (the
        indices are a new array).  Not for a Dask ``x`` (its result is lazy).

    Returns
    -------
{MAX_RESULT}
    indices : ndarray of int64, optional
        Flat index of each maximum over the pooled axes (including those kept by ``None``),
        row-major in ascending axis order -- PyTorch's ``adaptive_max_pool*d`` indices.

    Notes
    -----
{ADAPTIVE_NOTES}

    Ties go to the first maximum in row-major order; NaN propagates and its index is the first
    NaN of the window (PyTorch's CPU kernels point at the last of several).

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[[1, 5, 2, 0, 3]]])
    >>> poolkit.adaptive_max_pool(x, 3)
    array([[[5, 5, 3]]])
    >>> poolkit.adaptive_max_pool(x, 3, return_indices=True)[1]
    array([[[1, 1, 4]]])
    >>> poolkit.adaptive_max_pool(np.zeros((2, 64, 13, 17)), (7, None)).shape
    (2, 64, 7, 17)
    """
    if _is_dask(x):
        lazy = _lazy().adaptive_max_pool(x, output_size, axes=axes, return_indices=return_indices)
        _no_lazy_out(out)
        return lazy
    x = V.check_array(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    ret = V.check_bool("return_indices", return_indices)
    direct = None if out is None else _check_out(out, plan.out_shape, E.native(x.dtype), x)
    res, idx = E.max_reduce(x, plan, ret, direct)
    if out is not None:
        res = _deliver(res, direct, out)
    return (res, idx) if ret else res


@fill
def adaptive_avg_pool(x: ArrayLike, output_size: OutputSizes, *, axes: Axes = None,
                      out: np.ndarray | None = None, acc_dtype: DTypeLike = "float64") -> np.ndarray:
    """Adaptive average pooling: average pooling to a fixed output size, whatever the input size.

    Parameters
    ----------
{X_SPATIAL}
{ADAPTIVE_PARAMS}
{OUT}
        Its shape is that of the result; its dtype that of a float ``x``, float64 for integer and
        bool inputs.  Not for a Dask ``x`` (its result is lazy).
{ACC_DTYPE}

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis resized to its output size.  Float inputs keep their dtype
        (accumulated in float64 unless ``acc_dtype`` says otherwise); integers and bools give
        float64.

    Notes
    -----
{ADAPTIVE_NOTES}

    Each output is the mean of its window.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[[1, 5, 2, 0, 3]]])
    >>> poolkit.adaptive_avg_pool(x, 2)
    array([[[2.66666667, 1.66666667]]])
    >>> poolkit.adaptive_avg_pool(np.ones((1, 3, 224, 200)), (7, 7)).shape
    (1, 3, 7, 7)
    """
    if _is_dask(x):
        lazy = _lazy().adaptive_avg_pool(x, output_size, axes=axes)
        _check_acc(acc_dtype, None)
        _no_lazy_out(out)
        return lazy
    x = V.check_array(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    acc = _check_acc(acc_dtype, x.dtype)
    dtype = E.float_dtype(x.dtype)
    if out is None:
        return E.pool_sums(x, plan, dtype, False, None, None, acc)
    direct = _check_out(out, plan.out_shape, dtype, x)
    return _deliver(E.pool_sums(x, plan, dtype, False, None, direct, acc), direct, out)


@fill
def adaptive_max_pool_backward(grad_output: ArrayLike, x: ArrayLike, output_size: OutputSizes, *, axes: Axes = None,
                               indices: ArrayLike | None = None) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool`: each output's gradient goes to its window's maximum.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to ``adaptive_max_pool(x, output_size, axes=axes)``, of its shape.
    x : ndarray
        The forward input.
{ADAPTIVE_PARAMS}
    indices : ndarray of int, optional
        The forward's indices (``return_indices=True``), to skip recomputing them; checked for
        shape and range.

    Returns
    -------
    grad_x : ndarray
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.  Where windows
        overlap, the gradients of all windows sharing a maximum add up.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[[1., 5, 2, 0, 3]]])
    >>> poolkit.adaptive_max_pool_backward(np.array([[[1., 2, 3]]]), x, 3)
    array([[[0., 3., 0., 0., 3.]]])
    """
    x = V.check_array(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    return E.max_backward(grad_output, x, plan, indices)


@fill
def adaptive_avg_pool_backward(grad_output: ArrayLike, x: ArrayLike, output_size: OutputSizes, *,
                               axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool`: each output's gradient spread evenly over its window.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to ``adaptive_avg_pool(x, output_size, axes=axes)``, of its shape.
    x : ndarray
        The forward input (only its shape and dtype are used).
{ADAPTIVE_PARAMS}

    Returns
    -------
    grad_x : ndarray
        Each input cell receives ``grad_output / window_size`` from every window holding it.
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> poolkit.adaptive_avg_pool_backward(np.array([[[3., 6.]]]), np.zeros((1, 1, 5)), 2)
    array([[[1., 1., 3., 2., 2.]]])
    """
    x = V.check_array(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    g = V.check_shape_of("grad_output", grad_output, plan.out_shape)
    return E.spread(g, plan, E.float_dtype(x.dtype), False)

# --------------------------------------------------------------------------------------------
# spatial pyramid pooling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pyramid:
    """A validated spatial pyramid call: the input, the mode, one adaptive plan per level and the
    width of each level's part of the output vector."""

    x: np.ndarray
    mode: str
    plans: list
    widths: list


def _spp_setup(x, levels, mode, axes) -> _Pyramid:
    x = V.check_array(x)
    mode = V.check_choice("mode", mode, ("max", "avg"))
    items = _sequence("levels", levels)
    if items is None:
        items = (levels,)
    if not items:
        raise ValueError("levels must hold at least one level, got an empty sequence")
    for v in items:
        if not V.is_int(v):
            raise TypeError(f"levels must be positive ints, got {levels!r}")
        if v < 1:
            raise ValueError(f"levels must be >= 1, got {levels!r}")
    lv = tuple(operator.index(v) for v in items)
    ax = _whole_axes(x.ndim, axes, "spatial_pyramid_pool")
    if 0 in ax:
        raise ValueError(f"axes must not include axis 0, the batch axis, got {axes!r}")
    plans = [_adaptive_plan(x.shape, level, ax) for level in lv]
    widths = [math.prod(p.out_shape[1:]) for p in plans]
    return _Pyramid(x, mode, plans, widths)


def spatial_pyramid_pool(x: ArrayLike, levels: Sizes = (1, 2, 4), *, mode: str = "max",
                         axes: Axes = None) -> np.ndarray:
    """Spatial pyramid pooling (He et al., 2014): a fixed-length vector from any input size.

    Parameters
    ----------
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype; axis 0 is the batch axis.
    levels : int or sequence of int, optional
        Pyramid levels: level ``l`` pools every pooled axis into ``l`` adaptive bins.
    mode : {"max", "avg"}, optional
        Adaptive max or average pooling.
    axes : int or sequence of int, optional
        The pooled axes; by default every axis after the first two.  Axis 0 cannot be pooled.

    Returns
    -------
    out : (N, F) ndarray
        ``F = C * sum(l ** d for l in levels)`` for ``d`` pooled axes (in general the product
        of the other non-batch axes times ``sum(l ** d)``), the same for every input size.  For
        each sample, the levels are concatenated in the order given, each level being the
        adaptive pooling of ``x`` to ``l`` bins per pooled axis flattened row-major over all
        axes but the first -- ``(C, l, l)`` for NCHW input, ``(l, l, C)`` for NHWC.  Dtype of
        ``x`` for max, the float rule of :func:`adaptive_avg_pool` for avg.

    Notes
    -----
    Level ``l`` equals ``adaptive_max_pool(x, l, axes=axes).reshape(N, -1)`` (or avg), with
    PyTorch's adaptive bins ``floor(i * In / l) <= j < ceil((i + 1) * In / l)``; a level larger
    than an axis repeats its cells.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolkit.spatial_pyramid_pool(x, (1, 2))
    array([[15.,  5.,  7., 13., 15.]])
    >>> [poolkit.spatial_pyramid_pool(np.ones((2, 256, s, s))).shape for s in (13, 10, 7)]
    [(2, 5376), (2, 5376), (2, 5376)]
    """
    s = _spp_setup(x, levels, mode, axes)
    x, n = s.x, s.x.shape[0]
    parts = []
    for plan, w in zip(s.plans, s.widths):
        if s.mode == "max":
            out = E.max_reduce(x, plan)[0]
        else:
            out = E.pool_sums(x, plan, E.float_dtype(x.dtype), False)
        parts.append(out.reshape(n, w))
    return np.concatenate(parts, axis=1)


def spatial_pyramid_pool_backward(grad_output: ArrayLike, x: ArrayLike, levels: Sizes = (1, 2, 4), *,
                                  mode: str = "max", axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`spatial_pyramid_pool`: the sum of each level's adaptive pooling gradient.

    Parameters
    ----------
    grad_output : (N, F) ndarray
        Gradient with respect to ``spatial_pyramid_pool(x, levels, mode=mode, axes=axes)``.
    x : ndarray
        The forward input.
    levels, mode, axes
        As in :func:`spatial_pyramid_pool`.

    Returns
    -------
    grad_x : ndarray
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolkit.spatial_pyramid_pool_backward(np.ones((1, 5)), x, (1, 2))
    array([[[[0., 0., 0., 0.],
             [0., 1., 0., 1.],
             [0., 0., 0., 0.],
             [0., 1., 0., 2.]]]])
    """
    s = _spp_setup(x, levels, mode, axes)
    x, mode = s.x, s.mode
    g = V.check_shape_of("grad_output", grad_output, (x.shape[0], sum(s.widths)))
    total = np.zeros(x.shape, dtype=np.float64)
    offset = 0
    for plan, w in zip(s.plans, s.widths):
        gl = g[:, offset:offset + w].reshape(plan.out_shape)
        offset += w
        part = (E.max_scatter(gl, E.max_reduce(x, plan, True)[1], plan, np.float64) if mode == "max"
                else E.spread(gl, plan, np.float64, False))
        with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in any sum
            total += part
    return E.narrow(total, E.float_dtype(x.dtype))

# --------------------------------------------------------------------------------------------
# fractional max pooling
# --------------------------------------------------------------------------------------------


def _sample_dtype(dtype) -> np.dtype:
    """PyTorch draws and uses the samples in the input's float type; we do the same."""
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)


@dataclass(frozen=True)
class _Fractional:
    """A validated fractional pooling call: the input, the pooled axes (in the order given) with
    their kernel and output sizes, the batch (non-pooled) axes, and the stride-1 plan whose windows
    the fractional ones are picked from."""

    x: np.ndarray
    axes: tuple[int, ...]
    kernel: tuple[int, ...]
    outs: tuple[int, ...]
    batch_axes: tuple[int, ...]

    @property
    def plan(self) -> geo.Plan:
        return geo.make_plan(self.x.shape, self.kernel, 1, 0, 1, False, self.axes)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return geo.resized(self.x.shape, self.axes, self.outs)


def _fractional_setup(x, kernel_size, output_size, output_ratio, axes) -> _Fractional:
    x = V.check_array(x)
    lens = {}
    for name, value in (("kernel_size", kernel_size), ("output_size", output_size), ("output_ratio", output_ratio)):
        if value is not None:
            seq = _sequence(name, value)
            if seq is not None:
                lens[name] = len(seq)
    n = next(iter(lens.values()), None)
    what = next(iter(lens), "kernel_size")
    ax = _pooled_axes(x.ndim, axes, n, what, "fractional_max_pool")
    d = len(ax)
    k = geo.positive_tuple("kernel_size", kernel_size, d)
    if (output_size is None) == (output_ratio is None):
        raise ValueError("fractional_max_pool needs exactly one of output_size and output_ratio")
    ins = tuple(x.shape[a] for a in ax)
    if output_size is not None:
        outs = geo.positive_tuple("output_size", output_size, d)
    else:
        ratios = _sequence("output_ratio", output_ratio)
        ratios = (output_ratio,) * d if ratios is None else ratios
        if len(ratios) != d:
            raise ValueError(f"output_ratio must have one value per pooled axis ({d}), got {output_ratio!r}")
        ratios = tuple(V.check_real("output_ratio", r) for r in ratios)
        if not all(0 < r < 1 for r in ratios):
            raise ValueError(f"output_ratio must lie in (0, 1), got {output_ratio!r}")
        outs = tuple(int(L * r) for L, r in zip(ins, ratios))
        if min(outs) < 1:
            raise ValueError(f"output_ratio={output_ratio!r} gives an empty output for input sizes {ins}")
    for a, L, kk, o in zip(ax, ins, k, outs):
        if o + kk - 1 > L:
            raise ValueError(
                f"fractional_max_pool: output_size {o} with kernel_size {kk} needs at least {o + kk - 1} "
                f"input positions on axis {a}, got {L}"
            )
    return _Fractional(x, ax, k, outs, tuple(i for i in range(x.ndim) if i not in ax))


def _fractional_samples(x, ax, batch_axes, random_samples, rng):
    d = len(ax)
    batch_shape = tuple(x.shape[i] for i in batch_axes)
    dtype = _sample_dtype(x.dtype)
    want = batch_shape + (d,)
    if random_samples is not None:
        u = np.asarray(random_samples)
        if u.dtype.kind not in "fiu":
            raise TypeError(f"random_samples must be a real array, got dtype {u.dtype}")
        if u.shape != want and not (len(batch_shape) == 1 and u.shape == (1,) + want):
            raise ValueError(f"random_samples must have shape {want} (the non-pooled axes of x, then one "
                             f"sample per pooled axis), got {u.shape}")
        u = u.reshape(want).astype(dtype)
        if u.size and not (np.all(u >= 0) and np.all(u <= 1)):
            raise ValueError("random_samples must lie in [0, 1] (NaN is not allowed)")
    else:
        if rng is None:
            rng = np.random.default_rng()
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {rng!r}")
        draw = np.float64 if dtype == np.float64 else np.float32
        u = rng.random(want, dtype=draw).astype(dtype)
    return u.reshape(-1, d), dtype


def _fractional_forward(f: _Fractional, random_samples, rng) -> tuple[np.ndarray, np.ndarray]:
    """(out, indices) of a fractional max pooling."""
    x, ax, k, outs, batch_axes = f.x, f.axes, f.kernel, f.outs, f.batch_axes
    d = len(ax)
    u, dtype = _fractional_samples(x, ax, batch_axes, random_samples, rng)
    n_planes = u.shape[0]
    # PyTorch's order: with two pooled axes sample 0 drives the last one (W) and sample 1 the first
    # (H) -- FractionalMaxPool2d; otherwise sample j drives pooled axis j (FractionalMaxPool3d).
    sample_of = [1, 0] if d == 2 else list(range(d))
    starts = {}
    for j, a in enumerate(ax):
        st = geo.fractional_starts(u[:, sample_of[j]], x.shape[a], outs[j], k[j], dtype)
        if st.size and (st.min() < 0 or st.max() > x.shape[a] - k[j]):
            raise ValueError(
                f"the fractional intervals of axis {a} fall outside the input in {dtype} arithmetic; "
                "pass a float32 or float64 input"
            )
        starts[a] = st
    # every window of a fractional pooling is a stride-1 window: pool with stride 1 once, then pick
    # each plane's windows out of the result
    plan = f.plan
    vals, idx = E.max_reduce(x, plan, True)
    perm = list(batch_axes) + list(plan.axes)
    slide = tuple(vals.shape[a] for a in plan.axes)
    vals = vals.transpose(perm).reshape((n_planes,) + slide)
    idx = idx.transpose(perm).reshape((n_planes,) + slide)
    nd = len(plan.axes)
    parts = [np.arange(n_planes).reshape((n_planes,) + (1,) * nd)]
    for j, a in enumerate(plan.axes):
        shape = [n_planes] + [1] * nd
        shape[1 + j] = -1
        parts.append(starts[a].reshape(shape))
    sel = tuple(parts)
    out_sizes = tuple(starts[a].shape[1] for a in plan.axes)
    batch_shape = tuple(x.shape[i] for i in batch_axes)
    inv = np.argsort(perm)
    out = vals[sel].reshape(batch_shape + out_sizes).transpose(inv)
    out_idx = idx[sel].reshape(batch_shape + out_sizes).transpose(inv)
    return np.ascontiguousarray(out), np.ascontiguousarray(out_idx)


@fill
def fractional_max_pool(x: ArrayLike, kernel_size: Sizes, output_size: Sizes | None = None,
                        output_ratio: float | Sequence[float] | None = None, *, axes: Axes = None,
                        random_samples: ArrayLike | None = None, rng: np.random.Generator | None = None,
                        return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fractional max pooling (Graham, 2014): pseudo-random overlapping windows, any reduction ratio.

    Parameters
    ----------
{X_SPATIAL}
{FRACTIONAL}
{RETURN_INDICES}

    Returns
    -------
{MAX_RESULT}
    indices : ndarray of int64, optional
        Flat index of each maximum over the pooled axes, row-major in ascending axis order
        (PyTorch's indices).

    Notes
    -----
    Exactly one of ``output_size`` and ``output_ratio`` is required.  Along an axis of input
    size ``In``, window ``i`` of plane ``p`` covers ``[start_i, start_i + kernel_size)`` with
    PyTorch's rule (``FractionalMaxPool2d.cpp``, ``generate_intervals``)::

        alpha = (In - kernel_size) / (Out - 1)
        start_i = int((i + u) * alpha) - int(u * alpha)    for i < Out - 1
        start_{Out-1} = In - kernel_size

    with ``u`` the plane's sample for that axis, all in the samples' float type, so that given
    the same ``random_samples`` the output and indices equal PyTorch's.  Ties go to the first
    maximum in row-major order; NaN propagates and its index is the first NaN (PyTorch's
    fractional kernels point at the last NaN of a window holding several).

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(25.).reshape(1, 1, 5, 5)
    >>> u = np.array([[[0.5, 0.5]]])
    >>> poolkit.fractional_max_pool(x, 2, (3, 3), random_samples=u)
    array([[[[ 6.,  8.,  9.],
             [16., 18., 19.],
             [21., 23., 24.]]]])
    >>> out = poolkit.fractional_max_pool(np.ones((8, 16, 32, 32)), 2, output_ratio=0.7,
    ...                                   rng=np.random.default_rng(0))
    >>> out.shape
    (8, 16, 22, 22)
    """
    ret = V.check_bool("return_indices", return_indices)
    out, idx = _fractional_forward(_fractional_setup(x, kernel_size, output_size, output_ratio, axes),
                                   random_samples, rng)
    return (out, idx) if ret else out


@fill
def fractional_max_pool_backward(grad_output: ArrayLike, x: ArrayLike, kernel_size: Sizes,
                                 output_size: Sizes | None = None,
                                 output_ratio: float | Sequence[float] | None = None, *, axes: Axes = None,
                                 random_samples: ArrayLike | None = None, rng: np.random.Generator | None = None,
                                 indices: ArrayLike | None = None) -> np.ndarray:
    """Gradient of :func:`fractional_max_pool`: each output's gradient goes to its window's maximum.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to the forward output, of its shape.
    x : ndarray
        The forward input.
{FRACTIONAL}
    indices : ndarray of int, optional
        The forward's indices (``return_indices=True``).  The windows are random, so the backward
        needs the forward's ``indices``, its ``random_samples``, or an ``rng`` in the state the
        forward's was in.

    Returns
    -------
    grad_x : ndarray
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.  Overlapping windows
        sharing a maximum add their gradients.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(25.).reshape(1, 1, 5, 5)
    >>> u = np.array([[[0.5, 0.5]]])
    >>> poolkit.fractional_max_pool_backward(np.ones((1, 1, 3, 3)), x, 2, (3, 3), random_samples=u)
    array([[[[0., 0., 0., 0., 0.],
             [0., 1., 1., 0., 1.],
             [0., 1., 1., 0., 1.],
             [0., 0., 0., 0., 0.],
             [0., 1., 1., 0., 1.]]]])
    """
    f = _fractional_setup(x, kernel_size, output_size, output_ratio, axes)
    if indices is None:
        if random_samples is None and rng is None:
            raise ValueError(
                "fractional_max_pool_backward needs the forward's indices, its random_samples, or an rng in "
                "the forward's state: the windows are random"
            )
        idx = _fractional_forward(f, random_samples, rng)[1]
    else:
        idx = V.check_indices(indices, f.out_shape)
    g = V.check_shape_of("grad_output", grad_output, f.out_shape)
    return E.max_scatter(g, idx, f.plan, E.float_dtype(f.x.dtype))
