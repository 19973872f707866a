"""The non-pooling layers: ``Linear``, ``Conv1d``, ``Conv2d``, ``ReLU``, ``Flatten``, ``Dropout``,
``Embedding``, ``Identity`` -- PyTorch's names, arguments, defaults, shapes and initialisation.

Convolution is im2col + BLAS: the (padded) input's windows are copied into a column matrix with
one strided slice per kernel tap, and one batched ``numpy.matmul`` per call multiplies it by the
weights (groups are a batch axis of that product).  The backward reuses the forward's columns for
the weight gradient (one ``tensordot``) and scatters the column gradient back with one strided
slice-add per kernel tap ("col2im").  Input gradients of overlapping windows add up exactly as in
the forward's sums.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._docs import fill
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Conv1d", "Conv2d", "ReLU", "Flatten", "Dropout", "Embedding", "Identity"]


# ---------------------------------------------------------------------------------------------
# argument checking shared by the layers
# ---------------------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    """A real number that is not a bool (checked in a function, so that type checkers do not narrow)."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _positive_int(cls: str, name: str, value, minimum: int = 1) -> int:
    if not _is_int(value):
        raise TypeError(f"{cls}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{cls}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _tuple(cls: str, name: str, value, n: int, minimum: int = 1) -> tuple:
    """An int or a sequence of ``n`` ints as a tuple of ``n`` ints, each >= ``minimum``."""
    if _is_int(value):
        vals = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(_is_int(v) for v in value):
        vals = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{cls}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in vals):
        raise ValueError(f"{cls}: {name} must be >= {minimum}, got {value!r}")
    return vals


def _dtype(cls: str, dtype) -> np.dtype:
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt.kind != "f":
        raise TypeError(f"{cls}: dtype must be a float dtype, got {dt}")
    return dt


def _as_real(cls: str, input, dtype) -> np.ndarray:
    x = np.asarray(input)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{cls}: input must be a real numeric array, got dtype {x.dtype}")
    return x.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# simple layers
# ---------------------------------------------------------------------------------------------


class Identity(Module):
    """``y = x``; a placeholder (``torch.nn.Identity``).  Extra arguments are ignored.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> nn.Identity()(np.arange(3))
    array([0, 1, 2])
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input

    def backward(self, grad_output: Any) -> Any:
        return grad_output


class ReLU(Module):
    """``max(x, 0)``, element-wise; the gradient passes where ``x > 0``.

    Shape: any; the output has the input's shape and dtype.  ``inplace`` is accepted for
    PyTorch compatibility and ignored (a new array is returned).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> relu = nn.ReLU()
    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    >>> relu.backward(np.array([5.0, 5.0, 5.0]))
    array([0., 0., 5.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)
        self._mask: np.ndarray | None = None

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _as_real("ReLU", input, np.asarray(input).dtype)
        self._mask = (x > 0) if self.requires_cache() else None
        return np.maximum(x, x.dtype.type(0))

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        mask = self._saved("_mask")
        g = np.asarray(grad_output)
        return np.where(mask, g, g.dtype.type(0))

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Flatten(Module):
    """Merge the axes ``start_dim .. end_dim`` into one (``torch.nn.Flatten``; default: all but the batch axis).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> nn.Flatten()(np.zeros((2, 16, 5, 5))).shape
    (2, 400)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        if not _is_int(start_dim) or not _is_int(end_dim):
            raise TypeError(f"Flatten: start_dim and end_dim must be ints, got {start_dim!r}, {end_dim!r}")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        self._shape: tuple | None = None

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = np.asarray(input)
        nd = max(x.ndim, 1)
        s, e = self.start_dim % nd, self.end_dim % nd
        if not (-nd <= self.start_dim < nd and -nd <= self.end_dim < nd) or s > e:
            raise ValueError(f"Flatten: start_dim={self.start_dim}, end_dim={self.end_dim} do not fit an input "
                             f"of {x.ndim} dimensions (shape {x.shape})")
        self._shape = x.shape if self.requires_cache() else None
        return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:]) if x.ndim else x.reshape(1)

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        return np.asarray(grad_output).reshape(self._saved("_shape"))

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero each element with probability ``p`` in training, scaling the rest by ``1 / (1 - p)``.

    In eval mode (``model.eval()``) it is the identity.  The mask is drawn from ``rng`` (or the
    module-level generator, see :func:`poolkit.nn.manual_seed`), so it is not PyTorch's mask.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> drop = nn.Dropout(0.5, rng=np.random.default_rng(0))
    >>> y = drop(np.ones(8))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> bool(np.array_equal(drop.backward(np.ones(8)), y))
    True
    >>> drop.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not _is_real(p) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"Dropout: p must be a probability between 0 and 1, got {p!r}")
        self.p = float(p)
        self.inplace = bool(inplace)
        self._rng = None if rng is None else init.get_rng(rng)
        self._scale: np.ndarray | float | None = None

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _as_real("Dropout", input, np.asarray(input).dtype)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        if not self.training or self.p == 0.0:
            self._scale = 1.0 if self.requires_cache() else None
            return x
        keep = init.get_rng(self._rng).random(x.shape) >= self.p
        scale = keep * x.dtype.type(0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p))
        scale = scale.astype(x.dtype)
        self._scale = scale if self.requires_cache() else None
        return x * scale

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        return np.asarray(grad_output) * self._saved("_scale")

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# ---------------------------------------------------------------------------------------------
# Linear and Embedding
# ---------------------------------------------------------------------------------------------


@fill
class Linear(Module):
    """``y = x @ weight.T + bias`` (``torch.nn.Linear``).

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool, optional
        Learn an additive bias (default True).
{WEIGHT_INIT}

    Notes
    -----
    Shapes: input ``(*, in_features)``, output ``(*, out_features)``; ``weight`` is
    ``(out_features, in_features)``, ``bias`` ``(out_features,)``.  Both start as
    ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` (PyTorch's ``kaiming_uniform_(a=sqrt(5))`` and
    bias rule).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> fc = nn.Linear(3, 2, rng=np.random.default_rng(0))
    >>> fc.weight.data[...] = [[1, 0, 0], [0, 1, 1]]; fc.bias.data[...] = [0, 10]
    >>> fc(np.array([[1.0, 2.0, 3.0]]))
    array([[ 1., 15.]], dtype=float32)
    >>> fc.backward(np.array([[1.0, 1.0]]))
    array([[1., 1., 1.]], dtype=float32)
    >>> fc.weight.grad
    array([[1., 2., 3.],
           [1., 2., 3.]], dtype=float32)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype=None,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features, 0)
        self.out_features = _positive_int("Linear", "out_features", out_features, 0)
        dt = _dtype("Linear", dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dt))
        if self.in_features:
            init.kaiming_uniform_(self.weight.data, a=math.sqrt(5), rng=rng)
        else:
            init.zeros_(self.weight.data)
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=dt))
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias.data, -bound, bound, rng=rng)
        else:
            self.register_parameter("bias", None)
        self._x: np.ndarray | None = None

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _as_real("Linear", input, self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input's last axis must have in_features={self.in_features} values, "
                             f"got input shape {x.shape}")
        self._x = x if self.requires_cache() else None
        y = x @ self.weight.data.T
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x = self._saved("_x")
        g = np.asarray(grad_output, dtype=self.weight.dtype)
        g2 = g.reshape(-1, self.out_features)
        self.weight.accumulate(g2.T @ x.reshape(-1, self.in_features))
        if self.bias is not None:
            self.bias.accumulate(g2.sum(axis=0))
        return g @ self.weight.data

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: integer token ids ``(*)`` -> vectors ``(*, embedding_dim)`` (``torch.nn.Embedding``).

    Parameters
    ----------
    num_embeddings : int
        Vocabulary size; ids must lie in ``[0, num_embeddings)``.
    embedding_dim : int
        Length of each vector.
    padding_idx : int, optional
        This row starts at zero and never receives a gradient (use it for padding tokens).
        Negative values count from the end, as in PyTorch.
    dtype, rng
        As in :class:`Linear`.  The weight starts as N(0, 1), PyTorch's default.

    Notes
    -----
    ``backward(grad_output)`` accumulates ``weight.grad`` (rows of repeated ids add up) and
    returns ``None``: integer ids have no gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> emb = nn.Embedding(5, 2, padding_idx=0, rng=np.random.default_rng(0))
    >>> emb(np.array([[0, 3, 3]])).shape
    (1, 3, 2)
    >>> emb.weight.data[0]
    array([0., 0.], dtype=float32)
    >>> emb.backward(np.ones((1, 3, 2)))
    >>> emb.weight.grad[[0, 3]]
    array([[0., 0.],
           [2., 2.]], dtype=float32)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *, dtype=None,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.num_embeddings = _positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not _is_int(padding_idx):
                raise TypeError(f"Embedding: padding_idx must be an int or None, got {padding_idx!r}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be within num_embeddings={self.num_embeddings}, "
                                 f"got {padding_idx}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=_dtype("Embedding", dtype)))
        init.normal_(self.weight.data, rng=rng)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0
        self._ids: np.ndarray | None = None

    def forward(self, input: ArrayLike) -> np.ndarray:
        ids = np.asarray(input)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"Embedding: input must hold integer token ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: input ids must lie in [0, {self.num_embeddings}), "
                             f"got values from {ids.min()} to {ids.max()}")
        self._ids = ids if self.requires_cache() else None
        return self.weight.data[ids]

    def backward(self, grad_output: ArrayLike) -> None:
        ids = self._saved("_ids")
        g = np.asarray(grad_output, dtype=self.weight.dtype).reshape(-1, self.embedding_dim)
        gw = np.zeros_like(self.weight.data)
        np.add.at(gw, ids.reshape(-1), g)
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        self.weight.accumulate(gw)
        return None

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


# ---------------------------------------------------------------------------------------------
# padding with a backward (zeros, reflect, replicate, circular)
# ---------------------------------------------------------------------------------------------

_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def _pad_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each padded position along one axis, the input position it copies."""
    i = np.arange(-before, size + after)
    if mode == "reflect":  # ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ... (the edge is not repeated)
        period = 2 * (size - 1)
        i = np.abs(i) if period == 0 else np.abs(i % period)
        return np.where(i >= size, period - i, i) if period else np.zeros_like(i)
    if mode == "replicate":
        return np.clip(i, 0, size - 1)
    return i % size  # circular


def pad(x: np.ndarray, pads: Sequence[tuple[int, int]], mode: str = "zeros", who: str = "pad") -> np.ndarray:
    """Pad the last ``len(pads)`` axes of ``x`` by ``(before, after)`` pairs.

    ``mode`` is ``"zeros"``, ``"reflect"`` (PyTorch's ``ReflectionPad``: the edge is not
    repeated, pad < size), ``"replicate"`` (the edge repeated) or ``"circular"`` (wrap around,
    pad <= size).  :func:`pad_backward` is its gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.layers import pad
    >>> pad(np.array([1., 2, 3]), [(2, 1)], "reflect")
    array([3., 2., 1., 2., 3., 2.])
    """
    n = len(pads)
    if all(b == 0 and a == 0 for b, a in pads):
        return x
    spatial = x.shape[x.ndim - n:]
    if mode == "zeros":
        out = np.zeros(x.shape[:x.ndim - n] + tuple(s + b + a for s, (b, a) in zip(spatial, pads)), dtype=x.dtype)
        out[(Ellipsis,) + tuple(slice(b, b + s) for s, (b, _) in zip(spatial, pads))] = x
        return out
    for ax, (s, (b, a)) in enumerate(zip(spatial, pads)):
        limit = s - 1 if mode == "reflect" else s
        if b > limit or a > limit:
            raise ValueError(f"{who}: {mode} padding ({b}, {a}) must be {'<' if mode == 'reflect' else '<='} the "
                             f"input size {s} along spatial axis {ax}")
    for ax, (s, (b, a)) in enumerate(zip(spatial, pads)):
        x = np.take(x, _pad_index(s, b, a, mode), axis=x.ndim - n + ax)
    return x


def pad_backward(grad: np.ndarray, pads: Sequence[tuple[int, int]], mode: str = "zeros") -> np.ndarray:
    """Gradient of :func:`pad`: every padded cell's gradient goes back to the cell it copied."""
    n = len(pads)
    if all(b == 0 and a == 0 for b, a in pads):
        return grad
    padded = grad.shape[grad.ndim - n:]
    if mode == "zeros":
        return grad[(Ellipsis,) + tuple(slice(b, p - a) for p, (b, a) in zip(padded, pads))]
    for ax, (p, (b, a)) in enumerate(zip(padded, pads)):
        axis = grad.ndim - n + ax
        size = p - b - a
        # the padded cells' gradients summed onto their sources: a product with the 0/1 copy matrix
        copy = np.zeros((p, size), dtype=grad.dtype)
        copy[np.arange(p), _pad_index(size, b, a, mode)] = 1
        grad = np.moveaxis(np.moveaxis(grad, axis, -1) @ copy, -1, axis)
    return grad


# ---------------------------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------------------------


class _ConvNd(Module):
    _n = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *, dtype=None,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        cls = type(self).__name__
        n = self._n
        self.in_channels = _positive_int(cls, "in_channels", in_channels)
        self.out_channels = _positive_int(cls, "out_channels", out_channels)
        self.groups = _positive_int(cls, "groups", groups)
        if self.in_channels % self.groups:
            raise ValueError(f"{cls}: in_channels={in_channels} must be divisible by groups={groups}")
        if self.out_channels % self.groups:
            raise ValueError(f"{cls}: out_channels={out_channels} must be divisible by groups={groups}")
        self.kernel_size = _tuple(cls, "kernel_size", kernel_size, n)
        self.stride = _tuple(cls, "stride", stride, n)
        self.dilation = _tuple(cls, "dilation", dilation, n)
        self.padding: str | tuple
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{cls}: padding must be an int, a tuple of {n} ints, 'valid' or 'same', "
                                 f"got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{cls}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _tuple(cls, "padding", padding, n, minimum=0)
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"{cls}: padding_mode must be one of {', '.join(_PAD_MODES)}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        # (before, after) per spatial axis; 'same' puts the odd cell at the end, as PyTorch does
        self._pads: tuple[tuple[int, int], ...]
        if self.padding == "valid":
            self._pads = ((0, 0),) * n
        elif self.padding == "same":
            tot = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            self._pads = tuple((t // 2, t - t // 2) for t in tot)
        else:
            self._pads = tuple((int(p), int(p)) for p in self.padding)
        dt = _dtype(cls, dtype)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dt))
        init.kaiming_uniform_(self.weight.data, a=math.sqrt(5), rng=rng)
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=dt))
            bound = 1 / math.sqrt(init.fan_in(self.weight.shape))
            init.uniform_(self.bias.data, -bound, bound, rng=rng)
        else:
            self.register_parameter("bias", None)
        self._ctx: tuple | None = None

    # -- forward ----------------------------------------------------------------------------

    def _check_input(self, input) -> tuple[np.ndarray, bool]:
        cls, n = type(self).__name__, self._n
        x = _as_real(cls, input, self.weight.dtype)
        if x.ndim not in (n + 1, n + 2):
            raise ValueError(f"{cls}: input must be {n + 1}-D (unbatched C, {'H, W' if n == 2 else 'L'}) or "
                             f"{n + 2}-D (batched N, C, {'H, W' if n == 2 else 'L'}), got shape {x.shape}")
        unbatched = x.ndim == n + 1
        if unbatched:
            x = x[None]
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{cls}: input has {x.shape[1]} channels (axis {0 if unbatched else 1}) but "
                             f"in_channels={self.in_channels}; input shape {np.shape(input)}")
        return x, unbatched

    def _out_sizes(self, padded) -> tuple:
        out = []
        for size, k, s, d in zip(padded, self.kernel_size, self.stride, self.dilation):
            span = d * (k - 1) + 1
            if size < span:
                raise ValueError(f"{type(self).__name__}: the (padded) input size {size} is smaller than the "
                                 f"kernel's span {span} (kernel_size={k}, dilation={d})")
            out.append((size - span) // s + 1)
        return tuple(out)

    def _taps(self, out_sizes):
        """For each kernel tap: its index and the strided slices of the padded input it reads."""
        for tap in np.ndindex(*self.kernel_size):
            yield tap, tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                             for t, d, s, o in zip(tap, self.dilation, self.stride, out_sizes))

    def forward(self, input: ArrayLike) -> np.ndarray:
        x, unbatched = self._check_input(input)
        xp = pad(x, self._pads, self.padding_mode, type(self).__name__)
        N, C = xp.shape[:2]
        out_sizes = self._out_sizes(xp.shape[2:])
        G, Co = self.groups, self.out_channels
        # im2col: cols[n, c, *tap, *out] = xp[n, c, out * stride + tap * dilation]
        cols = np.empty((N, C, *self.kernel_size, *out_sizes), dtype=xp.dtype)
        for tap, sl in self._taps(out_sizes):
            cols[(slice(None), slice(None)) + tap] = xp[(slice(None), slice(None)) + sl]
        cols = cols.reshape(N, G, (C // G) * math.prod(self.kernel_size), math.prod(out_sizes))
        w = self.weight.data.reshape(G, Co // G, -1)
        y = np.matmul(w, cols).reshape(N, Co, *out_sizes)  # (N, G, Co/G, P): one GEMM per sample and group
        if self.bias is not None:
            y += self.bias.data.reshape((Co,) + (1,) * self._n)
        self._ctx = (cols, xp.shape, out_sizes, unbatched) if self.requires_cache() else None
        return y[0] if unbatched else y

    # -- backward ---------------------------------------------------------------------------

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        cols, xp_shape, out_sizes, unbatched = self._saved("_ctx")
        g = np.asarray(grad_output, dtype=self.weight.dtype)
        if unbatched:
            g = g[None]
        N = xp_shape[0]
        G, Co = self.groups, self.out_channels
        if g.shape != (N, Co, *out_sizes):
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape {g.shape}, "
                             f"expected {(N, Co, *out_sizes)}")
        g = g.reshape(N, G, Co // G, -1)
        if self.bias is not None:
            self.bias.accumulate(g.sum(axis=(0, 3)).reshape(Co))
        # dW[g] = sum_n dY[n, g] @ cols[n, g].T  -- one tensordot (GEMM) per group
        gw = np.stack([np.tensordot(g[:, i], cols[:, i], axes=([0, 2], [0, 2])) for i in range(G)])
        self.weight.accumulate(gw.reshape(self.weight.shape))
        # dcols = W.T @ dY, then col2im: each tap's column gradient added back where it was read
        w = self.weight.data.reshape(G, Co // G, -1)
        gcols = np.matmul(w.transpose(0, 2, 1), g).reshape(N, xp_shape[1], *self.kernel_size, *out_sizes)
        gxp = np.zeros(xp_shape, dtype=g.dtype)
        for tap, sl in self._taps(out_sizes):
            gxp[(slice(None), slice(None)) + sl] += gcols[(slice(None), slice(None)) + tap]
        gx = pad_backward(gxp, self._pads, self.padding_mode)
        return gx[0] if unbatched else gx

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


_CONV_DOC = """{kind} convolution (cross-correlation, as in PyTorch) over an input of shape {shape}.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output.
    kernel_size : int or tuple of {n} ints
        Size of the window.
    stride : int or tuple of {n} ints, optional
        Step between windows (default 1).
    padding : int, tuple of {n} ints, "valid" or "same", optional
        Padding added to both sides of each spatial axis (default 0).  ``"same"`` (stride 1 only)
        keeps the size, the odd cell at the end as PyTorch does.
    dilation : int or tuple of {n} ints, optional
        Spacing between kernel taps (default 1).
    groups : int, optional
        Split the channels into ``groups`` independent convolutions; both channel counts must be
        divisible by it (``groups=in_channels`` is a depthwise convolution).
    bias : bool, optional
        Learn an additive bias per output channel (default True).
    padding_mode : {{"zeros", "reflect", "replicate", "circular"}}, optional
        What the padding holds (default zeros).
{{WEIGHT_INIT}}

    Notes
    -----
    Shapes: input {shape} (or without the batch axis), output {oshape} with, per spatial axis,
    ``out = (in + pad_before + pad_after - dilation * (kernel_size - 1) - 1) // stride + 1``.
    ``weight`` is {wshape}; weight and bias start as ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
    ``fan_in = in_channels / groups * prod(kernel_size)`` (PyTorch's defaults).

    Examples
    --------
{example}"""

_CONV1D_EXAMPLE = """    >>> import numpy as np
    >>> from poolkit import nn
    >>> conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)
    >>> conv.weight.data[...] = [1, 0, -1]
    >>> conv(np.array([[[1., 2, 4, 8]]]))
    array([[[-2., -3., -6.,  4.]]], dtype=float32)
    >>> conv.backward(np.ones((1, 1, 4)))
    array([[[ 1.,  0.,  0., -1.]]], dtype=float32)
    >>> conv.weight.grad
    array([[[ 7., 15., 14.]]], dtype=float32)"""

_CONV2D_EXAMPLE = """    >>> import numpy as np
    >>> from poolkit import nn
    >>> conv = nn.Conv2d(1, 8, 3, padding=1, rng=np.random.default_rng(0))
    >>> conv
    Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> y = conv(np.ones((2, 1, 28, 28), dtype=np.float32))
    >>> y.shape, conv.backward(np.ones_like(y)).shape, conv.weight.grad.shape
    ((2, 8, 28, 28), (2, 1, 28, 28), (8, 1, 3, 3))
    >>> nn.Conv2d(8, 16, 3, stride=2, groups=4)(np.ones((1, 8, 9, 9))).shape
    (1, 16, 4, 4)"""


@fill
class Conv1d(_ConvNd):
    _n = 1
    __doc__ = _CONV_DOC.format(kind="1-D", shape="``(N, C_in, L)``", oshape="``(N, C_out, L_out)``", n=1,
                               wshape="``(C_out, C_in / groups, kernel_size)``", example=_CONV1D_EXAMPLE)


@fill
class Conv2d(_ConvNd):
    _n = 2
    __doc__ = _CONV_DOC.format(kind="2-D", shape="``(N, C_in, H, W)``", oshape="``(N, C_out, H_out, W_out)``", n=2,
                               wshape="``(C_out, C_in / groups, kH, kW)``", example=_CONV2D_EXAMPLE)
