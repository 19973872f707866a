"""Masked pooling of padded sequences: a fixed-length vector per row of a padded batch, from its
valid steps only (given by a mask or by lengths), with its backward.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass

import numpy as np

from . import _engine as E
from . import _kernels as K
from . import _validate as V
from ._validate import ArrayLike

__all__ = ["masked_pool", "masked_pool_backward"]

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


@dataclass(frozen=True)
class _Masked:
    """A validated masked pooling call: the input, the (N, T) bool mask, the mode, the time axis,
    the fill of empty rows, the output dtype, and the input as (N, T, features) with the feature
    axes' shape ``rest``."""

    x: np.ndarray
    mask: np.ndarray
    mode: str
    axis: int
    fill: numbers.Real
    out_dtype: np.dtype
    x3: np.ndarray
    rest: tuple[int, ...]


def _masked_setup(x, mask, lengths, mode, axis, fill) -> _Masked:
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
    return _Masked(x, m, mode, ax, fill, out_dtype, x3, rest)


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


def masked_pool(x: ArrayLike, mask: ArrayLike | None = None, *, lengths: ArrayLike | None = None, mode: str = "max",
                axis: int = 1, fill: float = 0.0) -> np.ndarray:
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
    s = _masked_setup(x, mask, lengths, mode, axis, fill)
    n = s.x.shape[0]
    if s.mode in ("max", "min"):
        out = _masked_extreme(s.x3, s.mask, s.mode)[0].astype(s.out_dtype, copy=False)
    else:
        src = E.kernel_input(s.x3)
        out = np.zeros((n, s.x3.shape[2]), dtype=np.float64)
        if out.size:
            mu = s.mask.view(np.uint8)
            E.run(lambda n0, n1: K.masked.masked_sum(src, mu, out, n0, n1), n, src.size)
        if s.mode == "mean":
            out /= np.maximum(s.mask.sum(axis=1), 1)[:, None]
        out = out.astype(s.out_dtype)
    out[~s.mask.any(axis=1)] = s.fill
    return out.reshape((n,) + s.rest)


def masked_pool_backward(grad_output: ArrayLike, x: ArrayLike, mask: ArrayLike | None = None, *,
                         lengths: ArrayLike | None = None, mode: str = "max", axis: int = 1,
                         fill: float = 0.0) -> np.ndarray:
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
    s = _masked_setup(x, mask, lengths, mode, axis, fill)
    n, t, inner = s.x3.shape
    g = V.check_shape_of("grad_output", grad_output, (n,) + s.rest)
    g2 = np.asarray(g, dtype=np.float64).reshape(n, inner)
    if s.mode in ("max", "min"):
        _, arg = _masked_extreme(s.x3, s.mask, s.mode)
        gx3 = np.zeros((n, t, inner), dtype=np.float64)
        rows, cols = np.nonzero(arg >= 0)
        gx3[rows, arg[rows, cols], cols] = g2[rows, cols]
    else:
        scale = g2 if s.mode == "sum" else g2 / np.maximum(s.mask.sum(axis=1), 1)[:, None]
        gx3 = np.where(s.mask[:, :, None], scale[:, None, :], 0.0)  # masked steps get 0, even for inf or NaN
    gx = np.moveaxis(gx3.reshape((n, t) + s.rest), 1, s.axis)
    return E.narrow(np.ascontiguousarray(gx), E.float_dtype(s.x.dtype))
