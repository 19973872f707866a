"""The fixed-length family: pooling that turns inputs of any size into outputs of a fixed size.

Global, adaptive, spatial pyramid, masked (padded sequences), fractional and ROI pooling, each
with its ``*_backward(grad_output, x, ...)`` twin: the same arguments as the forward, returning the
gradient of ``sum(grad_output * op(x))`` with the shape of ``x`` (dtype of ``x`` for float
inputs, float64 otherwise).

Inputs are channels-first ``(N, C, *spatial)`` unless ``axes`` says otherwise.  Global, adaptive,
spatial pyramid and fractional pooling are window tables (:mod:`poolkit._geometry`) run through the
engine's kernels; masked and ROI pooling have their own kernels in :mod:`poolkit._kernels`.
Every argument is validated here, before any kernel runs.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from . import _engine as E
from . import _geometry as geo
from . import _kernels as K
from . import _validate as V
from .pooling import (
    lp_pool,
    lp_pool_backward,
    max_pool,
    max_pool_backward,
    avg_pool,
    avg_pool_backward,
)

__all__ = [
    "global_max_pool",
    "global_avg_pool",
    "global_lp_pool",
    "adaptive_max_pool",
    "adaptive_avg_pool",
    "spatial_pyramid_pool",
    "masked_pool",
    "fractional_max_pool",
    "roi_pool",
    "roi_align",
    "global_max_pool_backward",
    "global_avg_pool_backward",
    "global_lp_pool_backward",
    "adaptive_max_pool_backward",
    "adaptive_avg_pool_backward",
    "spatial_pyramid_pool_backward",
    "masked_pool_backward",
    "fractional_max_pool_backward",
    "roi_pool_backward",
    "roi_align_backward",
]

#: Most bilinear samples ROI align takes along one axis of one bin (``sampling_ratio=0`` takes
#: ``ceil(roi_size / output_size)``); a larger grid means absurd ROI coordinates.
MAX_SAMPLING_GRID = 2**16
#: Most bilinear samples ROI align takes for one roi (all its bins): the cost of a roi is bounded
#: (about 0.5 s for the largest).
MAX_ROI_SAMPLES = 2**24
#: ROI coordinates (after ``spatial_scale``) must lie within this magnitude.
MAX_ROI_COORD = 2.0**31


# --------------------------------------------------------------------------------------------
# small validation helpers
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


def _check_nonempty_axes(shape, axes) -> None:
    for a in axes:
        if shape[a] == 0:
            raise ValueError(f"axis {a} has size 0: there is nothing to pool")


# --------------------------------------------------------------------------------------------
# global pooling
# --------------------------------------------------------------------------------------------


def _global_setup(x, axes, keepdims):
    x = V.check_array(x)
    if axes is None:
        ax = _channels_first_axes(x.ndim, "global pooling")
    else:
        ax = _sorted_axes(geo.normalize_axes(x.ndim, axes, None, "axes"))
    keepdims = V.check_bool("keepdims", keepdims)
    _check_nonempty_axes(x.shape, ax)
    sizes = tuple(x.shape[a] for a in ax)
    kept = list(x.shape)
    for a in ax:
        kept[a] = 1
    out_shape = tuple(kept) if keepdims else tuple(s for i, s in enumerate(x.shape) if i not in ax)
    return x, ax, sizes, keepdims, tuple(kept), out_shape


def _global_grad(grad_output, ax, keepdims, kept, out_shape):
    g = V.check_shape_of("grad_output", grad_output, out_shape)
    return g if keepdims else g.reshape(kept)


_GLOBAL_PARAMS = """\
    axes : int or sequence of int, optional
        The pooled axes; by default every axis after the first two (the spatial axes of
        ``(N, C, *spatial)``).
    keepdims : bool, optional
        Keep the pooled axes with size 1 (as ``numpy.max(..., keepdims=True)``)."""


def _doc(func):
    func.__doc__ = func.__doc__.replace("{GLOBAL}", _GLOBAL_PARAMS)
    return func


@_doc
def global_max_pool(x, axes=None, keepdims=False):
    """Global max pooling: the maximum over all positions of the pooled axes.

    Parameters
    ----------
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype.
{GLOBAL}

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
    x, ax, sizes, keepdims, kept, out_shape = _global_setup(x, axes, keepdims)
    return max_pool(x, sizes, axes=ax).reshape(out_shape)


@_doc
def global_avg_pool(x, axes=None, keepdims=False):
    """Global average pooling: the mean over all positions of the pooled axes.

    Parameters
    ----------
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype.
{GLOBAL}

    Returns
    -------
    out : ndarray
        ``(N, C)`` for channels-first input (or with size-1 pooled axes when ``keepdims``).
        Float inputs keep their dtype (accumulated in float64); integers and bools give float64.

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
    x, ax, sizes, keepdims, kept, out_shape = _global_setup(x, axes, keepdims)
    return avg_pool(x, sizes, axes=ax).reshape(out_shape)


@_doc
def global_lp_pool(x, p, axes=None, keepdims=False):
    """Global Lp pooling: ``(sum |x|**p) ** (1/p)`` over all positions of the pooled axes.

    Parameters
    ----------
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype.
    p : float
        The norm's order, finite and > 0 (ONNX ``GlobalLpPool``).
{GLOBAL}

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
    p = V.check_p(p)
    x, ax, sizes, keepdims, kept, out_shape = _global_setup(x, axes, keepdims)
    return lp_pool(x, p, sizes, axes=ax).reshape(out_shape)


@_doc
def global_max_pool_backward(grad_output, x, axes=None, keepdims=False):
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
    x, ax, sizes, keepdims, kept, out_shape = _global_setup(x, axes, keepdims)
    g = _global_grad(grad_output, ax, keepdims, kept, out_shape)
    return max_pool_backward(g, x, sizes, axes=ax)


@_doc
def global_avg_pool_backward(grad_output, x, axes=None, keepdims=False):
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
    x, ax, sizes, keepdims, kept, out_shape = _global_setup(x, axes, keepdims)
    g = _global_grad(grad_output, ax, keepdims, kept, out_shape)
    return avg_pool_backward(g, x, sizes, axes=ax)


@_doc
def global_lp_pool_backward(grad_output, x, p, axes=None, keepdims=False):
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
    x, ax, sizes, keepdims, kept, out_shape = _global_setup(x, axes, keepdims)
    g = _global_grad(grad_output, ax, keepdims, kept, out_shape)
    return lp_pool_backward(g, x, p, sizes, axes=ax)


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
    out = list(shape)
    for a, s in zip(ax, sizes):
        out[a] = s
    geo.check_size(out)
    order = sorted(range(len(ax)), key=lambda i: ax[i])
    return geo.Plan(tuple(shape), tuple(ax[i] for i in order),
                    tuple(geo.adaptive_plan(shape[ax[i]], sizes[i]) for i in order))


_ADAPTIVE_NOTES = """\
    Along each pooled axis with input size ``In`` and output size ``Out``, output ``i`` covers
    the input positions ``floor(i * In / Out) <= j < ceil((i + 1) * In / Out)`` (PyTorch's
    adaptive bins): windows overlap when ``In`` is not a multiple of ``Out`` and repeat cells
    when ``In < Out``."""


def _adoc(func):
    func.__doc__ = func.__doc__.replace("{ADAPTIVE_NOTES}", _ADAPTIVE_NOTES).replace(
        "{ADAPTIVE_PARAMS}", _ADAPTIVE_PARAMS)
    return func


_ADAPTIVE_PARAMS = """\
    output_size : int, or sequence of int or None
        Output size of each pooled axis; ``None`` keeps that axis's input size.  An int is used
        for every pooled axis.
    axes : int or sequence of int, optional
        The pooled axes.  By default the last ``len(output_size)`` axes, or, for an int
        ``output_size``, every axis after the first two (``(N, C, *spatial)``)."""


@_adoc
def adaptive_max_pool(x, output_size, *, axes=None, return_indices=False):
    """Adaptive max pooling: max pooling to a fixed output size, whatever the input size.

    Parameters
    ----------
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype.
{ADAPTIVE_PARAMS}
    return_indices : bool, optional
        Also return where each maximum came from.

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis resized to its output size; dtype of ``x``.
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
    x = V.check_array(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    ret = V.check_bool("return_indices", return_indices)
    out, idx = E.max_reduce(x, plan, ret)
    return (out, idx) if ret else out


@_adoc
def adaptive_avg_pool(x, output_size, *, axes=None):
    """Adaptive average pooling: average pooling to a fixed output size, whatever the input size.

    Parameters
    ----------
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype.
{ADAPTIVE_PARAMS}

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis resized to its output size.  Float inputs keep their dtype
        (accumulated in float64); integers and bools give float64.

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
    x = V.check_array(x)
    plan = _adaptive_plan(x.shape, output_size, axes)
    return E.pool_sums(x, plan, E.float_dtype(x.dtype), False)


@_adoc
def adaptive_max_pool_backward(grad_output, x, output_size, *, axes=None, indices=None):
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
    g = V.check_shape_of("grad_output", grad_output, plan.out_shape)
    if indices is None:
        _, idx = E.max_reduce(x, plan, True)
    else:
        idx = V.check_indices(indices, plan.out_shape)
    return E.max_scatter(g, idx, plan, E.float_dtype(x.dtype))


@_adoc
def adaptive_avg_pool_backward(grad_output, x, output_size, *, axes=None):
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


def _spp_setup(x, levels, mode, axes):
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
    if axes is None:
        ax = _channels_first_axes(x.ndim, "spatial_pyramid_pool")
    else:
        ax = _sorted_axes(geo.normalize_axes(x.ndim, axes, None, "axes"))
    if 0 in ax:
        raise ValueError(f"axes must not include axis 0, the batch axis, got {axes!r}")
    plans = [_adaptive_plan(x.shape, l, ax) for l in lv]
    widths = [math.prod(p.out_shape[1:]) for p in plans]
    return x, mode, plans, widths


def spatial_pyramid_pool(x, levels=(1, 2, 4), *, mode="max", axes=None):
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
    x, mode, plans, widths = _spp_setup(x, levels, mode, axes)
    n = x.shape[0]
    parts = []
    for plan, w in zip(plans, widths):
        if mode == "max":
            out = E.max_reduce(x, plan)[0]
        else:
            out = E.pool_sums(x, plan, E.float_dtype(x.dtype), False)
        parts.append(out.reshape(n, w))
    return np.concatenate(parts, axis=1)


def spatial_pyramid_pool_backward(grad_output, x, levels=(1, 2, 4), *, mode="max", axes=None):
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
    x, mode, plans, widths = _spp_setup(x, levels, mode, axes)
    n = x.shape[0]
    g = V.check_shape_of("grad_output", grad_output, (n, sum(widths)))
    total = np.zeros(x.shape, dtype=np.float64)
    offset = 0
    for plan, w in zip(plans, widths):
        gl = g[:, offset:offset + w].reshape(plan.out_shape)
        offset += w
        part = (E.max_scatter(gl, E.max_reduce(x, plan, True)[1], plan, np.float64) if mode == "max"
                else E.spread(gl, plan, np.float64, False))
        with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in any sum
            total += part
    return E.narrow(total, E.float_dtype(x.dtype))


# --------------------------------------------------------------------------------------------
# masked pooling of padded sequences
# --------------------------------------------------------------------------------------------

_MASK_MODES = ("max", "mean", "sum", "min")


def _fits(value, dtype) -> bool:
    with np.errstate(all="ignore"):
        try:
            cast = np.array(value).astype(dtype)
        except (OverflowError, ValueError):
            return False
    v = np.array(value, dtype=np.float64)
    if np.isnan(v):
        return bool(np.isnan(cast.astype(np.float64)))
    return bool(cast.astype(np.float64) == v)


def _masked_setup(x, mask, lengths, mode, axis, fill):
    x = V.check_array(x)
    mode = V.check_choice("mode", mode, _MASK_MODES)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of sequences (N, T, ...) with at least 2 dimensions, got shape {x.shape}")
    if not V.is_int(axis):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for an input with {x.ndim} dimensions")
    ax = operator.index(axis) % x.ndim
    if ax == 0:
        raise ValueError("axis is the time axis and must not be 0: axis 0 is the batch axis")
    n, t = x.shape[0], x.shape[ax]
    if mask is not None and lengths is not None:
        raise ValueError("pass either mask or lengths, not both")
    if mask is None and lengths is None:
        raise ValueError(
            "masked_pool needs mask= (N, T) or lengths= (N,); to pool every step use "
            "global_max_pool(x, axes=...) or global_avg_pool"
        )
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype.kind not in "biu":
            raise TypeError(f"mask must be a bool (or 0/1 integer) array, got dtype {m.dtype}")
        if m.shape != (n, t):
            raise ValueError(f"mask must have shape (N, T) = {(n, t)} (x.shape[0], x.shape[{ax}]), got {m.shape}")
        if m.dtype.kind != "b":
            if m.size and (m.min() < 0 or m.max() > 1):
                raise ValueError(f"an integer mask must hold only 0 and 1, got values in [{m.min()}, {m.max()}]")
        m = m.astype(bool)
    else:
        lens = np.asarray(lengths)
        if lens.dtype.kind not in "iu":
            raise TypeError(f"lengths must be an integer array, got dtype {lens.dtype}")
        if lens.shape != (n,):
            raise ValueError(f"lengths must have shape (N,) = ({n},), got {lens.shape}")
        if lens.size and (lens.min() < 0 or lens.max() > t):
            raise ValueError(f"lengths must lie in [0, T] = [0, {t}], got values in [{lens.min()}, {lens.max()}]")
        m = np.arange(t)[None, :] < lens.astype(np.int64)[:, None]
    if isinstance(fill, (bool, np.bool_)) or not isinstance(fill, numbers.Real):
        raise TypeError(f"fill must be a real number, got {fill!r}")
    out_dtype = E.native(x.dtype) if mode in ("max", "min") else E.float_dtype(x.dtype)
    if not _fits(fill, out_dtype):
        raise ValueError(f"fill={fill!r} cannot be represented in the output dtype {out_dtype}")
    moved = np.moveaxis(x, ax, 1)
    rest = moved.shape[2:]
    inner = math.prod(rest)
    x3 = np.ascontiguousarray(moved).reshape(n, t, inner)
    return x, m, mode, ax, fill, out_dtype, x3, rest


def _masked_extreme(x3, m, mode):
    """Values (compute dtype) and arg over the valid steps; arg -1 for empty rows."""
    n, t, inner = x3.shape
    src = E.kernel_input(x3)
    out = np.zeros((n, inner), dtype=src.dtype)
    arg = np.full((n, inner), -1, dtype=np.int64)
    if out.size:
        kern = K.masked.masked_min if mode == "min" else K.masked.masked_max
        mu = m.view(np.uint8)
        E.run(lambda n0, n1: kern(src, mu, out, arg, n0, n1), n, src.size)
    return out, arg


def masked_pool(x, mask=None, *, lengths=None, mode="max", axis=1, fill=0.0):
    """Pool a padded batch of sequences over its valid steps only: a fixed-length vector per row.

    Parameters
    ----------
    x : (N, T, ...) ndarray
        Padded batch: axis 0 is the batch, ``axis`` the time axis; any other axes are features.
    mask : (N, T) bool ndarray, optional
        True at the valid steps (a 0/1 integer array, such as an attention mask, works too).
    lengths : (N,) int ndarray, optional
        Number of valid steps of each row, the first ``lengths[n]``; instead of ``mask``.
    mode : {"max", "mean", "sum", "min"}, optional
        The reduction over the valid steps.
    axis : int, optional
        The time axis (default 1); it must not be 0.
    fill : float, optional
        The output of a row with no valid step (for every mode) -- never NaN, inf or an error.

    Returns
    -------
    out : (N, ...) ndarray
        ``x`` without its time axis.  Max and min keep the dtype of ``x`` (``fill`` must fit it);
        mean and sum keep float dtypes (accumulated in float64) and give float64 otherwise.

    Notes
    -----
    Exactly one of ``mask`` and ``lengths`` is required.  Padding values never matter, whatever
    they are (NaN included).  Max and min take the first extreme in time order and propagate
    NaN from valid steps.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[1., 4., 2.],
    ...               [3., 9., 9.],
    ...               [7., 7., 7.]])
    >>> poolkit.masked_pool(x, lengths=np.array([3, 1, 0]))
    array([4., 3., 0.])
    >>> poolkit.masked_pool(x, lengths=np.array([3, 1, 0]), mode="mean", fill=-1)
    array([ 2.33333333,  3.        , -1.        ])

    A batch of embedded sentences ``(N, T, D)`` with an attention mask:

    >>> emb = np.ones((2, 5, 8))
    >>> att = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    >>> poolkit.masked_pool(emb, att, mode="sum")[:, 0]
    array([3., 5.])
    """
    x, m, mode, ax, fill, out_dtype, x3, rest = _masked_setup(x, mask, lengths, mode, axis, fill)
    n = x.shape[0]
    count = m.sum(axis=1)
    empty = count == 0
    if mode in ("max", "min"):
        out, _ = _masked_extreme(x3, m, mode)
        out = out.astype(out_dtype, copy=False)
    else:
        src = E.kernel_input(x3)
        out = np.zeros((n, x3.shape[2]), dtype=np.float64)
        if out.size:
            mu = m.view(np.uint8)
            E.run(lambda n0, n1: K.masked.masked_sum(src, mu, out, n0, n1), n, src.size)
        if mode == "mean":
            out /= np.maximum(count, 1)[:, None]
        out = out.astype(out_dtype)
    out[empty] = fill
    return out.reshape((n,) + rest)


def masked_pool_backward(grad_output, x, mask=None, *, lengths=None, mode="max", axis=1, fill=0.0):
    """Gradient of :func:`masked_pool`; zero at every masked step and for empty rows.

    Parameters
    ----------
    grad_output : (N, ...) ndarray
        Gradient with respect to ``masked_pool(x, mask, lengths=..., mode=..., axis=...)``.
    x, mask, lengths, mode, axis, fill
        As in :func:`masked_pool`.

    Returns
    -------
    grad_x : ndarray
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.  Max/min: the
        gradient goes to the first extreme valid step; mean: ``grad / count`` at every valid step;
        sum: ``grad`` at every valid step.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[1., 4., 2.],
    ...               [3., 9., 9.]])
    >>> poolkit.masked_pool_backward(np.array([1., 1.]), x, lengths=np.array([2, 1]))
    array([[0., 1., 0.],
           [1., 0., 0.]])
    >>> poolkit.masked_pool_backward(np.array([6., 6.]), x, lengths=np.array([3, 0]), mode="mean")
    array([[2., 2., 2.],
           [0., 0., 0.]])
    """
    x, m, mode, ax, fill, out_dtype, x3, rest = _masked_setup(x, mask, lengths, mode, axis, fill)
    n, t, inner = x3.shape
    g = V.check_shape_of("grad_output", grad_output, (n,) + rest)
    g2 = np.asarray(g, dtype=np.float64).reshape(n, inner)
    if mode in ("max", "min"):
        _, arg = _masked_extreme(x3, m, mode)
        gx3 = np.zeros((n, t, inner), dtype=np.float64)
        rows, cols = np.nonzero(arg >= 0)
        gx3[rows, arg[rows, cols], cols] = g2[rows, cols]
    else:
        scale = g2 if mode == "sum" else g2 / np.maximum(m.sum(axis=1), 1)[:, None]
        gx3 = np.where(m[:, :, None], scale[:, None, :], 0.0)  # masked steps get 0, even for inf or NaN
    gx = np.moveaxis(gx3.reshape((n, t) + rest), 1, ax)
    return E.narrow(np.ascontiguousarray(gx), E.float_dtype(x.dtype))


# --------------------------------------------------------------------------------------------
# fractional max pooling
# --------------------------------------------------------------------------------------------


def _sample_dtype(dtype) -> np.dtype:
    """PyTorch draws and uses the samples in the input's float type; we do the same."""
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)


def _fractional_intervals(u, in_size, out_size, pool, dtype):
    """PyTorch's ``generate_intervals`` for every plane at once, in ``dtype`` arithmetic:
    ``start[i] = int((i + u) * alpha) - int(u * alpha)``, ``alpha = (In - k) / (Out - 1)``, and
    the last window ends the axis."""
    u = u.astype(dtype)
    last = np.full((u.shape[0], 1), in_size - pool, dtype=np.int64)
    if out_size == 1:
        return last
    alpha = dtype.type(in_size - pool) / dtype.type(out_size - 1)
    i = np.arange(out_size - 1).astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        a = ((i[None, :] + u[:, None]) * alpha).astype(np.int64)
        b = (u * alpha).astype(np.int64)
    return np.concatenate([a - b[:, None], last], axis=1)


def _fractional_setup(x, kernel_size, output_size, output_ratio, axes):
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
    batch_axes = tuple(i for i in range(x.ndim) if i not in ax)
    return x, ax, k, outs, batch_axes


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


def _fractional_forward(x, kernel_size, output_size, output_ratio, axes, random_samples, rng):
    x, ax, k, outs, batch_axes = _fractional_setup(x, kernel_size, output_size, output_ratio, axes)
    d = len(ax)
    u, dtype = _fractional_samples(x, ax, batch_axes, random_samples, rng)
    n_planes = u.shape[0]
    # PyTorch's order: with two pooled axes sample 0 drives the last one (W) and sample 1 the first
    # (H) -- FractionalMaxPool2d; otherwise sample j drives pooled axis j (FractionalMaxPool3d).
    sample_of = [1, 0] if d == 2 else list(range(d))
    starts = {}
    for j, a in enumerate(ax):
        st = _fractional_intervals(u[:, sample_of[j]], x.shape[a], outs[j], k[j], dtype)
        if st.size and (st.min() < 0 or st.max() > x.shape[a] - k[j]):
            raise ValueError(
                f"the fractional intervals of axis {a} fall outside the input in {dtype} arithmetic; "
                "pass a float32 or float64 input"
            )
        starts[a] = st
    # every window of a fractional pooling is a stride-1 window: pool with stride 1 once, then pick
    # each plane's windows out of the result
    plan = geo.make_plan(x.shape, k, 1, 0, 1, False, ax)
    vals, idx = E.max_reduce(x, plan, True)
    perm = list(batch_axes) + list(plan.axes)
    slide = tuple(vals.shape[a] for a in plan.axes)
    vals = vals.transpose(perm).reshape((n_planes,) + slide)
    idx = idx.transpose(perm).reshape((n_planes,) + slide)
    nd = len(plan.axes)
    sel = [np.arange(n_planes).reshape((n_planes,) + (1,) * nd)]
    for j, a in enumerate(plan.axes):
        shape = [n_planes] + [1] * nd
        shape[1 + j] = -1
        sel.append(starts[a].reshape(shape))
    sel = tuple(sel)
    out_sizes = tuple(starts[a].shape[1] for a in plan.axes)
    batch_shape = tuple(x.shape[i] for i in batch_axes)
    inv = np.argsort(perm)
    out = vals[sel].reshape(batch_shape + out_sizes).transpose(inv)
    out_idx = idx[sel].reshape(batch_shape + out_sizes).transpose(inv)
    return x, plan, np.ascontiguousarray(out), np.ascontiguousarray(out_idx)


_FRACTIONAL_PARAMS = """\
    kernel_size : int or sequence of int
        Window size along each pooled axis.
    output_size : int or sequence of int, optional
        Output size of each pooled axis; ``output_size + kernel_size - 1 <= input size``.
    output_ratio : float or sequence of float, optional
        Instead of ``output_size``: ``output = int(input * ratio)``, ratio in (0, 1).
    axes : int or sequence of int, optional
        The pooled axes.  By default the last ``len(kernel_size)`` (or ``len(output_size)``)
        axes, or, when all of these are scalars, every axis after the first two.
    random_samples : ndarray, optional
        One sample in [0, 1] per plane and pooled axis: shape ``(*batch_shape, d)`` where
        ``batch_shape`` is the shape of the non-pooled axes (``(N, C, d)`` for channels-first
        input; ``(1, C, d)`` is also accepted for ``(C, *spatial)``).  Used in the input's float
        type (float64 for integer input), as PyTorch does.  With two pooled axes sample 0 drives
        the second pooled axis (W of NCHW) and sample 1 the first (PyTorch's
        ``FractionalMaxPool2d`` order); otherwise sample ``j`` drives pooled axis ``j``
        (``FractionalMaxPool3d``).  Pooled axes are counted in the order of ``axes``.
    rng : numpy.random.Generator, optional
        Where to draw the samples when ``random_samples`` is not given (default
        ``np.random.default_rng()``); a seeded generator makes the pooling reproducible."""


def _fdoc(func):
    func.__doc__ = func.__doc__.replace("{FRACTIONAL}", _FRACTIONAL_PARAMS)
    return func


@_fdoc
def fractional_max_pool(x, kernel_size, output_size=None, output_ratio=None, *, axes=None, random_samples=None,
                        rng=None, return_indices=False):
    """Fractional max pooling (Graham, 2014): pseudo-random overlapping windows, any reduction ratio.

    Parameters
    ----------
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype.
{FRACTIONAL}
    return_indices : bool, optional
        Also return where each maximum came from.

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis resized to its output size; dtype of ``x``.
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
    _, _, out, idx = _fractional_forward(x, kernel_size, output_size, output_ratio, axes, random_samples, rng)
    return (out, idx) if ret else out


@_fdoc
def fractional_max_pool_backward(grad_output, x, kernel_size, output_size=None, output_ratio=None, *, axes=None,
                                 random_samples=None, rng=None, indices=None):
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
    if indices is None:
        if random_samples is None and rng is None:
            raise ValueError(
                "fractional_max_pool_backward needs the forward's indices, its random_samples, or an rng in "
                "the forward's state: the windows are random"
            )
        x, plan, out, idx = _fractional_forward(x, kernel_size, output_size, output_ratio, axes, random_samples, rng)
        out_shape = out.shape
    else:
        x, ax, k, outs, batch_axes = _fractional_setup(x, kernel_size, output_size, output_ratio, axes)
        plan = geo.make_plan(x.shape, k, 1, 0, 1, False, ax)
        shape = list(x.shape)
        for a, o in zip(ax, outs):
            shape[a] = o
        out_shape = tuple(shape)
        idx = V.check_indices(indices, out_shape)
    g = V.check_shape_of("grad_output", grad_output, out_shape)
    return E.max_scatter(g, idx, plan, E.float_dtype(x.dtype))


# --------------------------------------------------------------------------------------------
# ROI pooling and ROI align
# --------------------------------------------------------------------------------------------


def _roi_compute_dtype(dtype) -> np.dtype:
    """Coordinates and bilinear weights: float32 for float16/float32 maps (as ONNX Runtime and
    torchvision compute them), float64 otherwise."""
    return np.dtype(np.float32) if np.dtype(dtype) in (np.float16, np.float32) else np.dtype(np.float64)


def _check_map(x) -> np.ndarray:
    x = V.check_array(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of feature maps (N, C, H, W), got shape {x.shape}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"x must have non-empty spatial axes, got shape {x.shape}")
    return x


def _check_rois(rois, cols, what) -> np.ndarray:
    r = np.asarray(rois)
    if r.dtype.kind not in "fiu":
        raise TypeError(f"rois must be a real array, got dtype {r.dtype}")
    if r.ndim != 2 or r.shape[1] != cols:
        raise ValueError(f"rois must have shape (K, {cols}) ({what}), got {r.shape}")
    if r.size and not np.all(np.isfinite(r)):
        raise ValueError("rois must be finite")
    return r


def _check_batch(b, n_batch, name) -> np.ndarray:
    if b.size and (b.min() < 0 or b.max() >= n_batch):
        bad = b[(b < 0) | (b >= n_batch)][0]
        raise ValueError(f"{name} must lie in [0, N) = [0, {n_batch}), got {bad!r}")
    return np.ascontiguousarray(b, dtype=np.int64)


def _round_half_away(v):
    a = np.abs(v)
    f = np.floor(a)
    r = f + (a - f >= 0.5)
    return np.where(v < 0, -r, r)


def _roi_pool_setup(x, rois, output_size, spatial_scale):
    x = _check_map(x)
    r = _check_rois(rois, 5, "batch index, x1, y1, x2, y2")
    ph, pw = geo.positive_tuple("output_size", output_size, 2)
    scale = V.check_real("spatial_scale", spatial_scale, positive=True)
    n, c, h, w = x.shape
    geo.check_size((max(r.shape[0], 1), c, ph, pw))
    geo.check_memory((r.shape[0], c, ph, pw), x.dtype.itemsize, r.shape[0] * (ph + pw))
    bidx = r[:, 0]
    if bidx.size and np.any(bidx != np.floor(bidx)):
        raise ValueError(f"rois[:, 0] (the batch index) must hold integers, got {bidx[bidx != np.floor(bidx)][0]!r}")
    batch = _check_batch(bidx, n, "rois[:, 0] (the batch index)")
    T = _roi_compute_dtype(x.dtype)
    coords = r[:, 1:].astype(T) * T.type(scale)
    if coords.size and np.abs(coords).max() > MAX_ROI_COORD:
        raise ValueError(f"rois coordinates times spatial_scale must lie within +-2**31, got {np.abs(coords).max()}")
    rc = _round_half_away(coords).astype(np.int64)
    start_w, start_h, end_w, end_h = rc[:, 0], rc[:, 1], rc[:, 2], rc[:, 3]
    roi_w = np.maximum(end_w - start_w + 1, 1)
    roi_h = np.maximum(end_h - start_h + 1, 1)

    def bins(size, start, pooled, limit):
        bin_size = size.astype(T) / T.type(pooled)
        i = np.arange(pooled).astype(T)
        lo = np.floor(i[None, :] * bin_size[:, None]).astype(np.int64)
        hi = np.ceil((i + T.type(1))[None, :] * bin_size[:, None]).astype(np.int64)
        lo = np.clip(lo + start[:, None], 0, limit)
        hi = np.clip(hi + start[:, None], 0, limit)
        return np.ascontiguousarray(lo), np.ascontiguousarray(hi)

    hs, he = bins(roi_h, start_h, ph, h)
    ws, we = bins(roi_w, start_w, pw, w)
    return x, batch, hs, he, ws, we, (ph, pw)


def _roi_pool_run(x, batch, hs, he, ws, we, pooled):
    n, c, h, w = x.shape
    src = E.kernel_input(x)
    out = np.zeros((batch.shape[0], c) + pooled, dtype=src.dtype)
    arg = np.full(out.shape, -1, dtype=np.int64)
    if out.size:
        E.run(lambda t0, t1: K.roi.roi_pool_forward(src, batch, hs, he, ws, we, out, arg, t0, t1), out.shape[0] * c,
              out.size * 4)
    return E.from_kernel(out, x.dtype), arg


def roi_pool(x, rois, output_size, spatial_scale=1.0):
    """ROI max pooling (Fast R-CNN): each region of interest max-pooled to a fixed grid.

    Parameters
    ----------
    x : (N, C, H, W) ndarray
        Feature maps, of a real numeric or bool dtype.
    rois : (K, 5) ndarray
        One region per row: ``batch_index, x1, y1, x2, y2`` in input coordinates (corners
        inclusive).  The batch index must be an integer in ``[0, N)``.
    output_size : int or (int, int)
        ``(pooled_height, pooled_width)``.
    spatial_scale : float, optional
        Factor from input coordinates to the feature map (e.g. 1/16).

    Returns
    -------
    out : (K, C, pooled_height, pooled_width) ndarray
        Dtype of ``x``.

    Notes
    -----
    As ONNX ``MaxRoiPool`` and torchvision's ``roi_pool``: the corners are scaled by
    ``spatial_scale`` and rounded half away from zero; the region is
    ``roi_h = max(y2 - y1 + 1, 1)`` rows (likewise columns); bin ``i`` covers rows
    ``y1 + floor(i * roi_h / ph)`` to ``y1 + ceil((i + 1) * roi_h / ph)`` (exclusive), clipped to
    the map (computed in float32 for float16/float32 maps, as they do).  An empty bin gives 0.
    The gradient goes to the first maximum of a bin in row-major order; NaN propagates.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(36.).reshape(1, 1, 6, 6)
    >>> poolkit.roi_pool(x, np.array([[0, 1, 1, 4, 3]]), (2, 2))
    array([[[[14., 16.],
             [20., 22.]]]])
    """
    x, batch, hs, he, ws, we, pooled = _roi_pool_setup(x, rois, output_size, spatial_scale)
    return _roi_pool_run(x, batch, hs, he, ws, we, pooled)[0]


def roi_pool_backward(grad_output, x, rois, output_size, spatial_scale=1.0):
    """Gradient of :func:`roi_pool`: each output's gradient goes to its bin's maximum.

    Parameters
    ----------
    grad_output : (K, C, pooled_height, pooled_width) ndarray
        Gradient with respect to ``roi_pool(x, rois, output_size, spatial_scale)``.
    x, rois, output_size, spatial_scale
        As in :func:`roi_pool`.

    Returns
    -------
    grad_x : (N, C, H, W) ndarray
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.  Empty bins pass no
        gradient; overlapping regions add theirs.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolkit.roi_pool_backward(np.ones((1, 1, 1, 2)), x, np.array([[0, 0, 0, 3, 1]]), (1, 2))
    array([[[[0., 0., 0., 0.],
             [0., 1., 0., 1.],
             [0., 0., 0., 0.],
             [0., 0., 0., 0.]]]])
    """
    x, batch, hs, he, ws, we, pooled = _roi_pool_setup(x, rois, output_size, spatial_scale)
    g = V.check_shape_of("grad_output", grad_output, (batch.shape[0], x.shape[1]) + pooled)
    _, arg = _roi_pool_run(x, batch, hs, he, ws, we, pooled)
    gx = np.zeros(x.shape, dtype=np.float64)
    if gx.size:
        g64 = np.ascontiguousarray(g, dtype=np.float64)
        E.run(lambda c0, c1: K.roi.roi_pool_backward(g64, batch, arg, gx, c0, c1), x.shape[1], g.size + gx.size)
    return E.narrow(gx, E.float_dtype(x.dtype))


def _align_axis(start, bin_size, grid, pooled, size, T):
    """Per-ROI sample tables of one axis: rows (or columns) low/high, weights, in-range flags.

    ONNX Runtime's ``PreCalcForBilinearInterpolate``, operation by operation in ``T``."""
    k = start.shape[0]
    g = max(int(grid.max()) if k else 0, 1)
    i = np.arange(pooled).astype(T)
    half = (np.arange(g) + 0.5).astype(T)
    safe = np.where(grid > 0, grid, 1).astype(T)
    with np.errstate(all="ignore"):
        pos = (start[:, None, None] + i[None, :, None] * bin_size[:, None, None]) + (
            half[None, None, :] * bin_size[:, None, None]) / safe[:, None, None]
    ok = ~((pos < -1.0) | (pos > T.type(size)))
    pos = np.where(ok, pos, T.type(0))
    pos = np.where(pos <= 0, T.type(0), pos)
    lo = pos.astype(np.int64)
    top = lo >= size - 1
    lo = np.where(top, size - 1, lo)
    hi = np.where(top, size - 1, lo + 1)
    pos = np.where(top, lo.astype(T), pos)
    frac = (pos - lo.astype(T)).astype(T)
    rest = (T.type(1) - frac).astype(T)
    c = np.ascontiguousarray
    return c(lo), c(hi), c(frac), c(rest), c(ok)


def _roi_align_setup(x, rois, batch_indices, output_size, spatial_scale, sampling_ratio, mode, aligned):
    x = _check_map(x)
    r = _check_rois(rois, 4, "x1, y1, x2, y2")
    b = np.asarray(batch_indices)
    if b.dtype.kind not in "iu":
        raise TypeError(f"batch_indices must be an integer array, got dtype {b.dtype}")
    if b.shape != (r.shape[0],):
        raise ValueError(f"batch_indices must have shape (K,) = ({r.shape[0]},), one per roi, got {b.shape}")
    n, c, h, w = x.shape
    batch = _check_batch(b, n, "batch_indices")
    ph, pw = geo.positive_tuple("output_size", output_size, 2)
    scale = V.check_real("spatial_scale", spatial_scale, positive=True)
    if not V.is_int(sampling_ratio):
        raise TypeError(f"sampling_ratio must be an int, got {sampling_ratio!r}")
    if not 0 <= sampling_ratio <= MAX_SAMPLING_GRID:
        raise ValueError(f"sampling_ratio must lie in [0, 2**16] (0 = adaptive), got {sampling_ratio!r}")
    mode = V.check_choice("mode", mode, ("avg", "max"))
    aligned = V.check_bool("aligned", aligned)
    geo.check_size((max(r.shape[0], 1), c, ph, pw))
    geo.check_memory((r.shape[0], c, ph, pw), x.dtype.itemsize, r.shape[0] * (ph + pw))
    T = _roi_compute_dtype(x.dtype)
    rf = r.astype(T) * T.type(scale)
    if rf.size and np.abs(rf).max() > MAX_ROI_COORD:
        raise ValueError(f"rois coordinates times spatial_scale must lie within +-2**31, got {np.abs(rf).max()}")
    off = T.type(0.5 if aligned else 0.0)
    sw, sh, ew, eh = (rf[:, j] - off for j in range(4))
    rw = ew - sw
    rh = eh - sh
    if not aligned:
        rw = np.maximum(rw, T.type(1))
        rh = np.maximum(rh, T.type(1))
    bin_h = rh / T.type(ph)
    bin_w = rw / T.type(pw)
    if sampling_ratio > 0:
        gh = np.full(r.shape[0], sampling_ratio, dtype=np.int64)
        gw = gh
    else:
        gh = np.maximum(np.ceil(rh / T.type(ph)), 0).astype(np.int64)
        gw = np.maximum(np.ceil(rw / T.type(pw)), 0).astype(np.int64)
    samples = gh * gw * ph * pw
    if samples.size and samples.max() > MAX_ROI_SAMPLES:
        raise ValueError(
            f"a roi would take {samples.max()} bilinear samples ({ph}x{pw} bins); at most 2**24 are taken per roi: "
            "the rois are far larger than any feature map (check their units and spatial_scale) or "
            "sampling_ratio is too large"
        )
    ytab = _align_axis(sh, bin_h, gh, ph, h, T)
    xtab = _align_axis(sw, bin_w, gw, pw, w, T)
    count = np.maximum(gh * gw, 1).astype(T)
    return x, batch, (ph, pw), T, gh, ytab, gw, xtab, count, mode == "max"


def roi_align(x, rois, batch_indices, output_size, spatial_scale=1.0, sampling_ratio=0, mode="avg", aligned=True):
    """ROI align (Mask R-CNN): each region of interest bilinearly sampled and pooled to a fixed grid.

    Parameters
    ----------
    x : (N, C, H, W) ndarray
        Feature maps, of a real numeric or bool dtype.
    rois : (K, 4) ndarray
        One region per row: ``x1, y1, x2, y2`` in input coordinates.
    batch_indices : (K,) int ndarray
        The image of each region, in ``[0, N)``.
    output_size : int or (int, int)
        ``(pooled_height, pooled_width)``.
    spatial_scale : float, optional
        Factor from input coordinates to the feature map (e.g. 1/16).
    sampling_ratio : int, optional
        Bilinear samples per bin along each axis; 0 (default) takes ``ceil(roi_size / output)``.
    mode : {"avg", "max"}, optional
        Pooling of the samples of a bin (ONNX's definition of max: see Notes).
    aligned : bool, optional
        True (default): shift the corners by half a pixel, ONNX
        ``coordinate_transformation_mode="half_pixel"`` (torchvision's ``aligned=True``);
        False: ``"output_half_pixel"``, the original Mask R-CNN, where a region is at least
        1x1.

    Returns
    -------
    out : (K, C, pooled_height, pooled_width) ndarray
        Float inputs keep their dtype; integers and bools give float64.

    Notes
    -----
    As ONNX ``RoiAlign`` (opset 16) and ONNX Runtime, operation by operation (in float32 for
    float16/float32 maps): the corners scaled by ``spatial_scale`` (minus 0.5 when aligned);
    bin ``(i, j)`` of a ``roi_h x roi_w`` region takes ``gh x gw`` samples at
    ``y1 + i * roi_h / ph + (iy + 0.5) * roi_h / (ph * gh)`` (likewise x); a sample outside
    ``[-1, H] x [-1, W]`` has zero weight, others are clamped into the map and interpolated.
    ``avg`` divides the sum by ``gh * gw``.  ``max`` is ONNX's: the maximum over samples of the
    maximum of the four *weighted* corner values ``w_k * x_k`` (not of the interpolated
    values), so for negative inputs it is often 0.  A bin with no sample gives 0.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolkit.roi_align(x, np.array([[0., 0., 4., 4.]]), np.array([0]), (2, 2))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> roi = np.array([[0., 0., 2., 2.]])
    >>> poolkit.roi_align(x, roi, np.array([0]), 1, sampling_ratio=1)  # samples (0.5, 0.5)
    array([[[[2.5]]]])
    >>> poolkit.roi_align(x, roi, np.array([0]), 1, sampling_ratio=1, aligned=False)  # (1, 1)
    array([[[[5.]]]])
    """
    x, batch, pooled, T, gh, ytab, gw, xtab, count, is_max = _roi_align_setup(
        x, rois, batch_indices, output_size, spatial_scale, sampling_ratio, mode, aligned)
    n, c, h, w = x.shape
    out = np.zeros((batch.shape[0], c) + pooled, dtype=T)
    if out.size:
        src = np.ascontiguousarray(x, dtype=T).reshape(n, c, h * w)
        zero = np.zeros(1, T)
        E.run(lambda k0, k1: K.roi.roi_align_forward(src, w, batch, gh, *ytab, gw, *xtab, count, is_max, zero, out, k0, k1),
              out.shape[0], out.size * int(max(gh.max(), 1) * max(gw.max(), 1)) * 4)
    return E.narrow(out, E.float_dtype(x.dtype))


def roi_align_backward(grad_output, x, rois, batch_indices, output_size, spatial_scale=1.0, sampling_ratio=0,
                       mode="avg", aligned=True):
    """Gradient of :func:`roi_align` with respect to ``x``.

    Parameters
    ----------
    grad_output : (K, C, pooled_height, pooled_width) ndarray
        Gradient with respect to ``roi_align(x, rois, batch_indices, output_size, ...)``.
    x, rois, batch_indices, output_size, spatial_scale, sampling_ratio, mode, aligned
        As in :func:`roi_align`.

    Returns
    -------
    grad_x : (N, C, H, W) ndarray
        Avg: every sample passes ``grad * w_k / (gh * gw)`` to its four corners.  Max: the
        winning weighted corner receives ``grad * w_k`` (the first maximum in sample order).
        Shape of ``x``; dtype of ``x`` for float inputs, float64 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.zeros((1, 1, 3, 3))
    >>> poolkit.roi_align_backward(np.ones((1, 1, 1, 1)), x, np.array([[0., 0., 2., 2.]]), np.array([0]), 1,
    ...                            sampling_ratio=1)
    array([[[[0.25, 0.25, 0.  ],
             [0.25, 0.25, 0.  ],
             [0.  , 0.  , 0.  ]]]])
    """
    x, batch, pooled, T, gh, ytab, gw, xtab, count, is_max = _roi_align_setup(
        x, rois, batch_indices, output_size, spatial_scale, sampling_ratio, mode, aligned)
    n, c, h, w = x.shape
    g = V.check_shape_of("grad_output", grad_output, (batch.shape[0], c) + pooled)
    gx = np.zeros((n, c, h * w), dtype=np.float64)
    if gx.size and g.size:
        src = np.ascontiguousarray(x, dtype=T).reshape(n, c, h * w)
        g64, zero = np.ascontiguousarray(g, dtype=np.float64), np.zeros(1, T)
        E.run(lambda c0, c1: K.roi.roi_align_backward(g64, src, w, batch, gh, *ytab, gw, *xtab, count, is_max, zero, gx,
                                                   c0, c1),
              c, g.size * int(max(gh.max(), 1) * max(gw.max(), 1)) * 4)
    return E.narrow(gx.reshape(x.shape), E.float_dtype(x.dtype))
