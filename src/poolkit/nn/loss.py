"""Losses: ``CrossEntropyLoss`` and ``MSELoss``, PyTorch's formulas and ``reduction='mean'`` default.

A loss is called as ``loss = loss_fn(input, target)`` (a NumPy scalar for ``'mean'``/``'sum'``) and
``loss_fn.backward()`` returns the gradient of that loss with respect to ``input`` -- the seed of a
model's ``backward``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .layers import _is_int, _is_real
from .module import Module

__all__ = ["CrossEntropyLoss", "MSELoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(cls: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{cls}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """``x - logsumexp(x)`` along ``axis``, computed stably (the max is subtracted first).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.loss import log_softmax
    >>> np.exp(log_softmax(np.array([[1000., 1000.]])))
    array([[0.5, 0.5]])
    """
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


class CrossEntropyLoss(Module):
    """Cross-entropy of class logits and integer targets (``torch.nn.CrossEntropyLoss``).

    Parameters
    ----------
    weight : (C,) array_like, optional
        A weight per class (default: all 1).
    ignore_index : int, optional
        Targets equal to it contribute nothing, to the loss or to the mean's divisor (default -100).
    reduction : {"mean", "sum", "none"}, optional
        ``"mean"`` (default) divides the sum by the total weight of the counted targets.
    label_smoothing : float, optional
        Mix the one-hot target with the uniform distribution by this amount, in [0, 1].

    Notes
    -----
    Shapes: input ``(N, C)`` or ``(N, C, d1, ...)`` (or ``(C,)``), target ``(N,)`` or
    ``(N, d1, ...)`` (or ``()``) of ints in ``[0, C)``.  With ``p = log_softmax(input)``:
    ``loss_i = -(1 - eps) * w[y_i] * p[i, y_i] - eps / C * sum_c w[c] * p[i, c]``, and ``backward``
    returns ``softmax(input) - target distribution`` scaled by the weights and the reduction.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> loss_fn = nn.CrossEntropyLoss()
    >>> logits = np.array([[2.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    >>> loss = loss_fn(logits, np.array([0, 1]))
    >>> round(float(loss), 6)
    0.410038
    >>> loss_fn.backward().round(4)
    array([[-0.0596,  0.0596],
           [ 0.25  , -0.25  ]], dtype=float32)
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64)
        if self.weight is not None and self.weight.ndim != 1:
            raise ValueError("CrossEntropyLoss: weight must be 1-D (one weight per class), "
                             f"got shape {self.weight.shape}")
        if not _is_int(ignore_index):
            raise TypeError(f"CrossEntropyLoss: ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)
        if not _is_real(label_smoothing) or not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self._ctx: tuple | None = None

    def forward(self, input: ArrayLike, target: ArrayLike) -> np.ndarray:
        x = np.asarray(input)
        if x.dtype.kind != "f":
            raise TypeError(f"CrossEntropyLoss: input must hold float logits, got dtype {x.dtype}")
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            raise TypeError(f"CrossEntropyLoss: target must hold integer class indices, got dtype {t.dtype}")
        if x.ndim == 0:
            raise ValueError("CrossEntropyLoss: input must have a class axis, got a scalar")
        unbatched = x.ndim == 1
        xb, tb = (x[None], t[None]) if unbatched else (x, t)
        if tb.shape != (xb.shape[0],) + xb.shape[2:]:
            raise ValueError(f"CrossEntropyLoss: target shape {t.shape} does not match input shape {x.shape} "
                             f"(expected {(xb.shape[0],) + xb.shape[2:] if not unbatched else ()})")
        C = xb.shape[1]
        if self.weight is not None and self.weight.shape != (C,):
            raise ValueError(f"CrossEntropyLoss: weight has {self.weight.size} values, the input has {C} classes")
        # classes last: (M, C) and (M,)
        z = np.moveaxis(xb, 1, -1).reshape(-1, C).astype(np.float64)
        y = tb.reshape(-1).astype(np.int64)
        valid = y != self.ignore_index
        if np.any((y[valid] < 0) | (y[valid] >= C)):
            raise ValueError(f"CrossEntropyLoss: target values must lie in [0, {C}) (or equal ignore_index), "
                             f"got values from {y[valid].min()} to {y[valid].max()}")
        ys = np.where(valid, y, 0)
        w = np.ones(C) if self.weight is None else self.weight
        logp = log_softmax(z, axis=1)
        wy = np.where(valid, w[ys], 0.0)
        eps = self.label_smoothing
        nll = -wy * logp[np.arange(len(ys)), ys]
        per = (1 - eps) * nll
        if eps:
            per = per - eps / C * np.where(valid, (logp * w).sum(axis=1), 0.0)
        if self.reduction == "none":
            loss = per.reshape(tb.shape)
            loss = loss[0] if unbatched else loss
            out = loss.astype(x.dtype)
            denom = None
        elif self.reduction == "sum":
            out = x.dtype.type(per.sum())
            denom = 1.0
        else:
            denom = wy.sum()
            out = x.dtype.type(per.sum() / denom)
        if self.requires_cache():
            self._ctx = (logp, ys, valid, w, wy, denom, xb.shape, x.shape, x.dtype, unbatched)
        return out

    def backward(self, grad_output: ArrayLike = 1.0) -> np.ndarray:
        """Gradient of the loss (times ``grad_output``, an array of the loss's shape for ``'none'``) w.r.t. input."""
        logp, ys, valid, w, wy, denom, xb_shape, x_shape, dtype, unbatched = self._saved("_ctx")
        C = logp.shape[1]
        eps = self.label_smoothing
        p = np.exp(logp)
        # d loss_i / d z_i = (1 - eps) * wy * (p - onehot) + eps / C * (sum_c w_c * p - w)
        g = (1 - eps) * wy[:, None] * p
        g[np.arange(len(ys)), ys] -= (1 - eps) * wy
        if eps:
            g += eps / C * np.where(valid[:, None], (w * 1.0).sum() * p - w, 0.0)
        go = np.asarray(grad_output, dtype=np.float64)
        if self.reduction == "none":
            go = (go[None] if unbatched else go).reshape(-1)
            g *= go[:, None]
        else:
            if go.shape != ():
                raise ValueError(f"CrossEntropyLoss.backward: grad_output must be a scalar, got shape {go.shape}")
            g *= go / denom
        spatial = xb_shape[2:]
        g = np.moveaxis(g.reshape((xb_shape[0],) + spatial + (C,)), -1, 1)
        return g.reshape(x_shape).astype(dtype)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(Module):
    """Mean squared error ``mean((input - target) ** 2)`` (``torch.nn.MSELoss``).

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, optional
        Default ``"mean"`` over every element.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> mse = nn.MSELoss()
    >>> float(mse(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
    >>> mse.backward()
    array([1., 2.])
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)
        self._ctx: tuple | None = None

    def forward(self, input: ArrayLike, target: ArrayLike) -> np.ndarray:
        x = np.asarray(input)
        t = np.asarray(target)
        if x.dtype.kind != "f":
            raise TypeError(f"MSELoss: input must be a float array, got dtype {x.dtype}")
        if t.shape != x.shape:
            raise ValueError(f"MSELoss: target shape {t.shape} must equal input shape {x.shape}")
        d = x - t.astype(x.dtype)
        sq = d * d
        if self.requires_cache():
            self._ctx = (d, x.dtype)
        if self.reduction == "none":
            return sq
        if self.reduction == "sum":
            return x.dtype.type(sq.sum(dtype=np.float64))
        return x.dtype.type(sq.mean(dtype=np.float64)) if sq.size else x.dtype.type(np.nan)

    def backward(self, grad_output: ArrayLike = 1.0) -> np.ndarray:
        d, dtype = self._saved("_ctx")
        go = np.asarray(grad_output, dtype=dtype)
        if self.reduction == "none":
            return (2 * d * go).astype(dtype)
        scale = 2.0 / (d.size if self.reduction == "mean" else 1)
        return (d * (go * dtype.type(scale))).astype(dtype)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"
