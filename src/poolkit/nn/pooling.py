"""Pooling layers: thin shells over poolkit's ops and their ``*_backward``.

Every pooling layer PyTorch has for 1-D and 2-D input, with its name, arguments, defaults and
validation (the forward is :mod:`poolkit.compat.torch`, PyTorch-exact: ceil-mode rules, the
half-kernel padding limit, NaN indices, LPPool's signed, kernel-scaled formula), and the backward
is the poolkit core's ``*_backward`` -- given the forward's indices where there are some, so the
gradient goes exactly where PyTorch sends it.

Beyond PyTorch:

* :class:`SpatialPyramidPool` (He et al. 2014): a fixed-length vector from any image size;
* :class:`MaskedPool1d`: a fixed-length vector from a padded batch of variable-length sequences,
  padding never counted;
* :class:`GlobalAvgPool`: the mean over every spatial position, ``(N, C, *spatial) -> (N, C)``;
* :class:`BlurPool2d` and :class:`MaxBlurPool2d`: anti-aliased downsampling (Zhang 2019, "Making
  Convolutional Networks Shift-Invariant Again"), as in the paper's reference implementation
  ``antialiased-cnns``: a fixed binomial filter, reflect padding by default, stride 2.

Layers keep the last forward's input (and indices) for ``backward``; ``return_indices=True``
makes ``forward`` return ``(output, indices)`` as in PyTorch, and ``backward`` still takes only
the output's gradient.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

import poolkit
from poolkit.compat import torch as F

from . import init
from .layers import _is_int, _is_real, _positive_int, pad, pad_backward
from .module import Module, Sequential

__all__ = [
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "LPPool1d", "LPPool2d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "FractionalMaxPool2d", "MaxUnpool1d", "MaxUnpool2d",
    "SpatialPyramidPool", "MaskedPool1d", "GlobalAvgPool", "BlurPool2d", "MaxBlurPool2d",
]


def _ntuple(value, n: int) -> tuple:
    """PyTorch's ``_single``/``_pair``: an int repeated, or a sequence as a tuple (validated later)."""
    if _is_int(value):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and len(value) == 1 and n > 1:
        return tuple(value) * n
    return tuple(value)


def _axes(x: np.ndarray, n: int) -> tuple:
    return tuple(range(x.ndim - n, x.ndim))


def _zero_like(shape, dtype) -> np.ndarray:
    """A read-only zero array of ``shape`` without allocating it (for ops that only need a shape)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def _float_input(cls: str, input) -> np.ndarray:
    x = np.asarray(input)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{cls}: input must be a real numeric array, got dtype {x.dtype}")
    return x


def _example(layer: str, x: str, y: str, g: str, gx: str):
    """Close a 1-D layer's docstring with the example those layers share: ``pool = nn.<layer>``, its
    forward of ``x`` (printing ``y``) and its backward of ``g`` (printing ``gx``)."""
    def add(cls):
        cls.__doc__ = cls.__doc__.rstrip() + f"""

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> pool = nn.{layer}
    >>> pool({x})
    {y}
    >>> pool.backward({g})
    {gx}
    """
        return cls
    return add


class _Pool(Module):
    _n = 0
    # what the last forward kept for backward (None inside no_grad)
    _x: np.ndarray | None = None
    _out_shape: tuple = ()
    _idx: Any = None
    _y: Any = None
    _samples: Any = None
    _mask: Any = None
    _lengths: Any = None
    _shapes: Any = None

    def _grad(self, grad_output) -> tuple[np.ndarray, np.ndarray]:
        x = self._saved("_x")
        g = np.asarray(grad_output)
        expected = self._out_shape
        if g.shape != expected:
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape {g.shape}, "
                             f"the forward's output had {expected}")
        return x, g.astype(x.dtype if x.dtype.kind == "f" else np.float64, copy=False)

    def _keep(self, x, out_shape, **extra) -> None:
        if self.requires_cache():
            self._x, self._out_shape = x, tuple(out_shape)
            self.__dict__.update(extra)
        else:
            self._x = None


# ---------------------------------------------------------------------------------------------
# max, average and Lp pooling
# ---------------------------------------------------------------------------------------------


class _SlidingPoolNd(_Pool):
    """What max and average pooling share: ``kernel_size``, ``stride`` and ``padding``."""

    kernel_size: Any
    stride: Any
    padding: Any

    def _windows(self) -> tuple[tuple, tuple, tuple]:
        """Kernel, stride and padding as n-tuples (PyTorch's default stride: the kernel)."""
        n = self._n
        k = _ntuple(self.kernel_size, n)
        s = k if self.stride is None or self.stride == () or self.stride == [] else _ntuple(self.stride, n)
        return k, s, _ntuple(self.padding, n)

    def extra_repr(self) -> str:
        stride = self.stride if self.stride is not None else self.kernel_size
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class _MaxPoolNd(_SlidingPoolNd):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.return_indices, self.ceil_mode = bool(return_indices), bool(ceil_mode)

    def forward(self, input: ArrayLike) -> Any:
        fn = F.max_pool1d if self._n == 1 else F.max_pool2d
        x = _float_input(type(self).__name__, input)
        out, idx = fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, True)
        self._keep(x, out.shape, _idx=idx)
        return (out, idx) if self.return_indices else out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        k, s, p = self._windows()
        return poolkit.max_pool_backward(g, x, k, s, p, dilation=_ntuple(self.dilation, self._n),
                                         ceil_mode=self.ceil_mode, indices=self._idx)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"


@_example("MaxPool1d(2)", "np.array([[[1., 5, 2, 4, 3]]])", "array([[[5., 4.]]])",
          "np.array([[[10., 20.]]])", "array([[[ 0., 10.,  0., 20.,  0.]]])")
class MaxPool1d(_MaxPoolNd):
    """Max pooling over ``(N, C, L)`` or ``(C, L)`` input (``torch.nn.MaxPool1d``).

    Parameters
    ----------
    kernel_size : int
        Window length.
    stride : int, optional
        Step between windows; default ``kernel_size``.
    padding : int, optional
        Implicit ``-inf`` padding on both sides, at most half the kernel.
    dilation : int, optional
        Spacing between window taps.
    return_indices : bool, optional
        ``forward`` returns ``(output, indices)``, the int64 position of each maximum along L
        (what :class:`MaxUnpool1d` takes).
    ceil_mode : bool, optional
        Round the output length up (PyTorch's rule: the last window starts inside the input or
        the left padding).

    Notes
    -----
    Output length ``floor_or_ceil((L + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``.
    ``backward`` sends each output's gradient to its window's maximum (ties: the first).
    """

    _n = 1


class MaxPool2d(_MaxPoolNd):
    """Max pooling over ``(N, C, H, W)`` or ``(C, H, W)`` input (``torch.nn.MaxPool2d``).

    Parameters
    ----------
    kernel_size : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Step between windows; default ``kernel_size``.
    padding : int or (int, int), optional
        Implicit ``-inf`` padding, at most half the kernel on each axis.
    dilation : int or (int, int), optional
        Spacing between window taps.
    return_indices : bool, optional
        ``forward`` returns ``(output, indices)``: flat ``h * W + w`` position of each maximum in
        its plane (int64), what :class:`MaxUnpool2d` takes.
    ceil_mode : bool, optional
        Round output sizes up (PyTorch's rule).

    Notes
    -----
    ``H_out = floor_or_ceil((H + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``, the
    same for W.  ``backward`` sends each output's gradient to its window's maximum; overlapping
    windows sharing a maximum add up.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> pool = nn.MaxPool2d(2)
    >>> x = np.array([[[[1., 3, 2, 1], [2, 9, 1, 1], [1, 4, 2, 3], [5, 6, 1, 2]]]])
    >>> pool(x)
    array([[[[9., 2.],
             [6., 3.]]]])
    >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
    array([[0., 0., 1., 0.],
           [0., 1., 0., 0.],
           [0., 0., 0., 1.],
           [0., 1., 0., 0.]])
    """

    _n = 2


class _AvgPoolNd(_SlidingPoolNd):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _float_input(type(self).__name__, input)
        if self._n == 1:
            out = F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)
        else:
            out = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                               self.divisor_override)
        self._keep(x, out.shape)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        k, s, p = self._windows()
        return poolkit.avg_pool_backward(g, x, k, s, p, ceil_mode=self.ceil_mode,
                                         count_include_pad=self.count_include_pad,
                                         divisor_override=self.divisor_override)


@_example("AvgPool1d(2)", "np.array([[[1., 5, 2, 4]]])", "array([[[3., 3.]]])",
          "np.array([[[2., 4.]]])", "array([[[1., 1., 2., 2.]]])")
class AvgPool1d(_AvgPoolNd):
    """Average pooling over ``(N, C, L)`` or ``(C, L)`` input (``torch.nn.AvgPool1d``).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode
        As in :class:`MaxPool1d` (the padding holds zeros).
    count_include_pad : bool, optional
        Count the zero padding in each window's divisor (default True, PyTorch's default).
    """

    _n = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Average pooling over ``(N, C, H, W)`` or ``(C, H, W)`` input (``torch.nn.AvgPool2d``).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode
        As in :class:`MaxPool2d` (the padding holds zeros).
    count_include_pad : bool, optional
        Count the zero padding in each window's divisor (default True).
    divisor_override : int, optional
        Divide every window's sum by this instead.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> pool = nn.AvgPool2d(2)
    >>> pool(np.arange(16.).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> pool.backward(np.full((1, 1, 2, 2), 4.))[0, 0, 0]
    array([1., 1., 1., 1.])
    """

    _n = 2


class _LPPoolNd(_Pool):
    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> None:
        super().__init__()
        if not _is_real(norm_type):
            raise TypeError(f"{type(self).__name__}: norm_type must be a number, got {norm_type!r}")
        if norm_type == 0:
            raise ValueError(f"{type(self).__name__}: norm_type must not be 0")
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, bool(ceil_mode)

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _float_input(type(self).__name__, input)
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
        fn = F.lp_pool1d if self._n == 1 else F.lp_pool2d
        out = fn(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)
        self._keep(x, out.shape, _y=out)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        n, p = self._n, float(self.norm_type)
        k = _ntuple(self.kernel_size, n)
        s = k if self.stride is None else _ntuple(self.stride, n)
        if math.isinf(p):  # max pooling of |x| (or -max of -|x|): the winner's sign
            z = np.abs(x) if p > 0 else -np.abs(x)
            return np.sign(x) * poolkit.max_pool_backward(g, z, k, s, ceil_mode=self.ceil_mode)
        # y = S ** (1/p) with S = prod(k) * avg_pool(x ** p): dy/dx = x**(p-1) * prod(k) * y**(1-p) / divisor.
        # A window whose S is 0 passes no gradient (what PyTorch's autograd gives there).
        y = self._y
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            coef = np.where(y != 0, g * np.power(y, y.dtype.type(1 - p)), 0).astype(x.dtype)
            spread = poolkit.avg_pool_backward(coef * x.dtype.type(math.prod(k)), x, k, s, 0,
                                               ceil_mode=self.ceil_mode, count_include_pad=True)
            return np.power(x, x.dtype.type(p - 1)) * spread

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


@_example("LPPool1d(2, 2)", "np.array([[[3., 4, 0, 0]]])", "array([[[5., 0.]]])",
          "np.array([[[1., 1.]]])", "array([[[0.6, 0.8, 0. , 0. ]]])")
class LPPool1d(_LPPoolNd):
    """Power-average pooling over ``(N, C, L)`` input, PyTorch's formula (``torch.nn.LPPool1d``).

    ``y = (sum over the window of x ** p) ** (1 / p)``, computed as PyTorch does:
    ``(kernel_size * avg_pool(x ** p)) ** (1 / p)`` (so a partial ``ceil_mode`` window is scaled to
    the full kernel, and odd ``p`` with a negative window sum gives NaN).  ``norm_type=inf`` is max
    pooling of ``|x|``.  A window whose power sum is 0 passes no gradient, as in PyTorch.
    """

    _n = 1


class LPPool2d(_LPPoolNd):
    """Power-average pooling over ``(N, C, H, W)`` input, PyTorch's formula (``torch.nn.LPPool2d``).

    As :class:`LPPool1d`, with the window sum scaled by ``kH * kW``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> pool = nn.LPPool2d(2, 2)
    >>> pool(np.array([[[[3., 0], [0, 4]]]]))
    array([[[[5.]]]])
    """

    _n = 2


# ---------------------------------------------------------------------------------------------
# adaptive pooling
# ---------------------------------------------------------------------------------------------


class _AdaptiveMaxPoolNd(_Pool):
    def __init__(self, output_size, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, bool(return_indices)

    def forward(self, input: ArrayLike) -> Any:
        x = _float_input(type(self).__name__, input)
        fn = F.adaptive_max_pool1d if self._n == 1 else F.adaptive_max_pool2d
        out, idx = fn(x, self.output_size, True)
        self._keep(x, out.shape, _idx=idx)
        return (out, idx) if self.return_indices else out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        sizes = self._out_shape[-self._n:]
        if 0 in sizes:
            return np.zeros(x.shape, dtype=g.dtype)
        return poolkit.adaptive_max_pool_backward(g, x, sizes, axes=_axes(x, self._n), indices=self._idx)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


@_example("AdaptiveMaxPool1d(2)", "np.array([[[1., 5, 2, 0, 3]]])", "array([[[5., 3.]]])",
          "np.array([[[1., 1.]]])", "array([[[0., 1., 0., 0., 1.]]])")
class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed length, whatever the input length (``torch.nn.AdaptiveMaxPool1d``).

    Output ``i`` of ``L_out`` covers ``floor(i * L / L_out) <= j < ceil((i + 1) * L / L_out)``.
    ``return_indices=True`` makes ``forward`` return ``(output, indices)``.
    """

    _n = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed ``(H_out, W_out)`` (``torch.nn.AdaptiveMaxPool2d``); ``None`` keeps that size.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> nn.AdaptiveMaxPool2d((2, None))(np.zeros((1, 3, 13, 17))).shape
    (1, 3, 2, 17)
    """

    _n = 2


class _AdaptiveAvgPoolNd(_Pool):
    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _float_input(type(self).__name__, input)
        fn = F.adaptive_avg_pool1d if self._n == 1 else F.adaptive_avg_pool2d
        out = fn(x, self.output_size)
        self._keep(x, out.shape)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        sizes = self._out_shape[-self._n:]
        if 0 in sizes:
            return np.zeros(x.shape, dtype=g.dtype)
        return poolkit.adaptive_avg_pool_backward(g, x, sizes, axes=_axes(x, self._n))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed length (``torch.nn.AdaptiveAvgPool1d``).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> nn.AdaptiveAvgPool1d(2)(np.array([[[1., 5, 2, 0, 3]]]))
    array([[[2.66666667, 1.66666667]]])
    """

    _n = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed ``(H_out, W_out)`` (``torch.nn.AdaptiveAvgPool2d``); ``None`` keeps that size.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> nn.AdaptiveAvgPool2d(1)(np.arange(8.).reshape(1, 2, 2, 2))
    array([[[[1.5]],
    <BLANKLINE>
            [[5.5]]]])
    """

    _n = 2


# ---------------------------------------------------------------------------------------------
# fractional max pooling and unpooling
# ---------------------------------------------------------------------------------------------


class FractionalMaxPool2d(_Pool):
    """Fractional max pooling (Graham 2014; ``torch.nn.FractionalMaxPool2d``).

    Pseudo-random, overlapping ``kernel_size`` windows shrink ``(H, W)`` to ``output_size`` (or
    ``int(size * output_ratio)``) by any ratio.  Each forward draws one sample per plane and axis,
    shape ``(N, C, 2)``, from ``rng`` (default: the module-level generator) -- unless
    ``_random_samples`` is given, which is then used at every call; with PyTorch's samples the
    windows and the output are PyTorch's.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> pool = nn.FractionalMaxPool2d(2, output_size=3, _random_samples=np.full((1, 1, 2), 0.5))
    >>> x = np.arange(25.).reshape(1, 1, 5, 5)
    >>> pool(x)
    array([[[[ 6.,  8.,  9.],
             [16., 18., 19.],
             [21., 23., 24.]]]])
    >>> pool.backward(np.ones((1, 1, 3, 3)))[0, 0, 1]
    array([1., 1., 0., 1., 1.])
    """

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                 _random_samples=None, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if output_size is None and output_ratio is None:
            raise ValueError("FractionalMaxPool2d requires specifying either an output size, or a pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError("FractionalMaxPool2d: only one of output_size and output_ratio may be specified")
        if output_ratio is not None:
            ratios = _ntuple(output_ratio, 2) if not isinstance(output_ratio, numbers.Real) else (output_ratio,) * 2
            if not all(0 < float(r) < 1 for r in ratios):
                raise ValueError(f"FractionalMaxPool2d: output_ratio must be between 0 and 1 (got {output_ratio})")
        self.kernel_size, self.output_size, self.output_ratio = kernel_size, output_size, output_ratio
        self.return_indices = bool(return_indices)
        if _random_samples is None:
            self._random_samples = None
        else:  # a buffer, as in PyTorch (so it is in the state_dict)
            self.register_buffer("_random_samples", np.asarray(_random_samples))
        self._rng = None if rng is None else init.get_rng(rng)

    def forward(self, input: ArrayLike) -> Any:
        x = _float_input("FractionalMaxPool2d", input)
        if x.ndim not in (3, 4):
            raise ValueError("FractionalMaxPool2d: input must be 3-D (C, H, W) or 4-D (N, C, H, W), "
                             f"got shape {x.shape}")
        n, c = (x.shape[0], x.shape[1]) if x.ndim == 4 else (1, x.shape[0])
        if self._random_samples is not None:
            samples = self._random_samples
        else:
            dtype = x.dtype if x.dtype.kind == "f" else np.float32
            samples = init.get_rng(self._rng).random((n, c, 2)).astype(dtype)
        out, idx = F.fractional_max_pool2d(x, self.kernel_size, self.output_size, self.output_ratio, True, samples)
        self._keep(x, out.shape, _idx=idx, _samples=samples)
        return (out, idx) if self.return_indices else out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        k = _ntuple(self.kernel_size, 2)
        xb, gb, idx = (x, g, self._idx) if x.ndim == 4 else (x[None], g[None], self._idx[None])
        gx = poolkit.fractional_max_pool_backward(gb, xb, k, gb.shape[-2:], random_samples=self._samples, indices=idx)
        return gx if x.ndim == 4 else gx[0]

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, output_size={self.output_size}, output_ratio={self.output_ratio}"


class _MaxUnpoolNd(Module):
    _n = 0

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self._idx: tuple | None = None

    def forward(self, input: ArrayLike, indices: ArrayLike, output_size=None) -> np.ndarray:
        fn = F.max_unpool1d if self._n == 1 else F.max_unpool2d
        x = _float_input(type(self).__name__, input)
        idx = np.asarray(indices)
        if idx.shape != x.shape:
            raise ValueError(f"{type(self).__name__}: indices must have the input's shape {x.shape}, got {idx.shape}")
        out = fn(x, idx, self.kernel_size, self.stride, self.padding, output_size)
        self._idx = (idx, out.shape) if self.requires_cache() else None
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Each input cell receives the output gradient at its index (a gather)."""
        idx, out_shape = self._saved("_idx")
        g = np.asarray(grad_output)
        if g.shape != out_shape:
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape {g.shape}, expected {out_shape}")
        n = self._n
        lead = idx.shape[:idx.ndim - n]
        flat_g = g.reshape(lead + (-1,))
        if flat_g.shape[-1] == 0:
            return np.zeros(idx.shape, dtype=g.dtype)
        return np.take_along_axis(flat_g, idx.reshape(lead + (-1,)), axis=-1).reshape(idx.shape)

    def extra_repr(self) -> str:
        stride = self.stride if self.stride is not None else self.kernel_size
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """The partial inverse of :class:`MaxPool1d`: values back at their indices, zeros elsewhere.

    ``forward(input, indices, output_size=None)``; default output length
    ``(L - 1) * stride + kernel_size - 2 * padding`` (``torch.nn.MaxUnpool1d``).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> v, i = nn.MaxPool1d(2, return_indices=True)(np.array([[[1., 5, 2, 4]]]))
    >>> unpool = nn.MaxUnpool1d(2)
    >>> unpool(v, i)
    array([[[0., 5., 0., 4.]]])
    >>> unpool.backward(np.array([[[1., 2., 3., 4.]]]))
    array([[[2., 4.]]])
    """

    _n = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """The partial inverse of :class:`MaxPool2d` (``torch.nn.MaxUnpool2d``); indices are flat ``h * W_out + w``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> v, i = nn.MaxPool2d(2, return_indices=True)(np.arange(16.).reshape(1, 1, 4, 4))
    >>> nn.MaxUnpool2d(2)(v, i)[0, 0]
    array([[ 0.,  0.,  0.,  0.],
           [ 0.,  5.,  0.,  7.],
           [ 0.,  0.,  0.,  0.],
           [ 0., 13.,  0., 15.]])
    """

    _n = 2


# ---------------------------------------------------------------------------------------------
# beyond PyTorch: fixed-length outputs
# ---------------------------------------------------------------------------------------------


class SpatialPyramidPool(_Pool):
    """Spatial pyramid pooling (He et al. 2014): ``(N, C, *spatial) -> (N, C * sum(l ** d))`` for any size.

    Parameters
    ----------
    levels : sequence of int, optional
        Level ``l`` pools every spatial axis into ``l`` adaptive bins (default ``(1, 2, 4)``).
    mode : {"max", "avg"}, optional
        Adaptive max or average pooling.

    Notes
    -----
    Per sample, the levels are concatenated in order, each flattened ``(C, l, l)``.  Put it in
    place of ``Flatten`` to let a classifier take images of any size.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> spp = nn.SpatialPyramidPool((1, 2))
    >>> [spp(np.ones((2, 8, s, s))).shape for s in (5, 9, 16)]
    [(2, 40), (2, 40), (2, 40)]
    >>> spp(np.arange(16.).reshape(1, 1, 4, 4))
    array([[15.,  5.,  7., 13., 15.]])
    """

    def __init__(self, levels=(1, 2, 4), mode: str = "max") -> None:
        super().__init__()
        if _is_int(levels):
            levels = (levels,)
        levels = tuple(levels)
        if not levels or not all(_is_int(v) and v >= 1 for v in levels):
            raise ValueError(f"SpatialPyramidPool: levels must be positive ints, got {levels!r}")
        if mode not in ("max", "avg"):
            raise ValueError(f"SpatialPyramidPool: mode must be 'max' or 'avg', got {mode!r}")
        self.levels, self.mode = tuple(int(v) for v in levels), mode

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _float_input("SpatialPyramidPool", input)
        if x.ndim < 3:
            raise ValueError(f"SpatialPyramidPool: input must be (N, C, *spatial) with at least one spatial axis, "
                             f"got shape {x.shape}")
        out = poolkit.spatial_pyramid_pool(x, self.levels, mode=self.mode)
        self._keep(x, out.shape)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        return poolkit.spatial_pyramid_pool_backward(g, x, self.levels, mode=self.mode)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}"


class MaskedPool1d(_Pool):
    """Pool a padded batch of variable-length sequences over their valid steps: ``(N, C, L) -> (N, C)``.

    ``forward(input, lengths=None, mask=None)``: exactly one of ``lengths`` (``(N,)`` ints, the
    first ``lengths[n]`` steps are valid) and ``mask`` (``(N, L)`` bool) says which steps count.
    Padding values never matter; a sequence with no valid step gives ``fill``.

    Parameters
    ----------
    mode : {"max", "mean", "sum", "min"}, optional
        The reduction over the valid steps (default max).
    fill : float, optional
        Output for an empty sequence (default 0).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> pool = nn.MaskedPool1d()
    >>> x = np.array([[[1., 4, 9]], [[3, 2, 99]]])          # (N=2, C=1, L=3); 99 is padding
    >>> pool(x, lengths=np.array([3, 2]))
    array([[9.],
           [3.]])
    >>> pool.backward(np.ones((2, 1)))
    array([[[0., 0., 1.]],
    <BLANKLINE>
           [[1., 0., 0.]]])
    """

    def __init__(self, mode: str = "max", fill: float = 0.0) -> None:
        super().__init__()
        if mode not in ("max", "mean", "sum", "min"):
            raise ValueError(f"MaskedPool1d: mode must be 'max', 'mean', 'sum' or 'min', got {mode!r}")
        self.mode, self.fill = mode, float(fill)

    def forward(self, input: ArrayLike, lengths: ArrayLike | None = None, mask: ArrayLike | None = None) -> np.ndarray:
        x = _float_input("MaskedPool1d", input)
        if x.ndim != 3:
            raise ValueError(f"MaskedPool1d: input must be 3-D (N, C, L), got shape {x.shape}")
        if (lengths is None) == (mask is None):
            raise ValueError("MaskedPool1d: give exactly one of lengths= and mask=")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (x.shape[0],) or lengths.dtype.kind not in "iu":
                raise ValueError(f"MaskedPool1d: lengths must be {x.shape[0]} ints (one per sequence), "
                                 f"got shape {lengths.shape}, dtype {lengths.dtype}")
            if lengths.size and (lengths.min() < 0 or lengths.max() > x.shape[2]):
                raise ValueError(f"MaskedPool1d: lengths must lie in [0, {x.shape[2]}] (the padded length L)")
        else:
            mask = np.asarray(mask)
            if mask.shape != (x.shape[0], x.shape[2]):
                raise ValueError(f"MaskedPool1d: mask must have shape (N, L) = {(x.shape[0], x.shape[2])}, "
                                 f"got {mask.shape}")
        out = poolkit.masked_pool(x, mask, lengths=lengths, mode=self.mode, axis=2, fill=self.fill)
        self._keep(x, out.shape, _mask=mask, _lengths=lengths)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        return poolkit.masked_pool_backward(g, x, self._mask, lengths=self._lengths, mode=self.mode, axis=2,
                                            fill=self.fill)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class GlobalAvgPool(_Pool):
    """The mean over every spatial position: ``(N, C, *spatial) -> (N, C)`` (``keepdims``: ``(N, C, 1, ...)``).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> gap = nn.GlobalAvgPool()
    >>> gap(np.arange(8.).reshape(1, 2, 2, 2))
    array([[1.5, 5.5]])
    >>> gap.backward(np.array([[4., 8.]]))[0, 1]
    array([[2., 2.],
           [2., 2.]])
    """

    def __init__(self, keepdims: bool = False) -> None:
        super().__init__()
        self.keepdims = bool(keepdims)

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _float_input("GlobalAvgPool", input)
        if x.ndim < 3:
            raise ValueError(f"GlobalAvgPool: input must be (N, C, *spatial), got shape {x.shape}")
        out = poolkit.global_avg_pool(x, keepdims=self.keepdims)
        self._keep(x, out.shape)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        return poolkit.global_avg_pool_backward(g, x, keepdims=self.keepdims)

    def extra_repr(self) -> str:
        return "keepdims=True" if self.keepdims else ""


# ---------------------------------------------------------------------------------------------
# anti-aliased pooling (Zhang 2019)
# ---------------------------------------------------------------------------------------------

_BLUR_PAD = {"reflect": "reflect", "refl": "reflect", "replicate": "replicate", "repl": "replicate", "zero": "zeros"}


def binomial_filter(filt_size: int) -> np.ndarray:
    """The normalised 2-D binomial filter of ``antialiased-cnns``: ``outer(a, a) / sum``, ``a`` = Pascal's row.

    Examples
    --------
    >>> from poolkit.nn.pooling import binomial_filter
    >>> binomial_filter(3) * 16
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    a = np.array([math.comb(filt_size - 1, i) for i in range(filt_size)], dtype=np.float64)
    f = np.outer(a, a)
    return f / f.sum()


class BlurPool2d(_Pool):
    """Anti-aliased downsampling: a fixed binomial blur, then stride (Zhang 2019, ``BlurPool``).

    A drop-in for the reference implementation ``antialiased_cnns.BlurPool``: same arguments,
    defaults and ``state_dict`` (the fixed filter is the buffer ``filt``, ``(channels, 1, f, f)``).

    Parameters
    ----------
    channels : int
        Channels of the input (the filter is applied to each channel separately).
    pad_type : {"reflect", "replicate", "zero"}, optional
        Padding before the blur (default reflect, the reference's default): ``(f - 1) // 2``
        before and ``ceil((f - 1) / 2)`` after on each spatial axis, plus ``pad_off``.
    filt_size : int, optional
        Taps of the binomial filter per axis, 1 to 7 (default 4: ``[1, 3, 3, 1] / 8``).
    stride : int, optional
        Subsampling factor (default 2).
    pad_off : int, optional
        Extra padding on every side (default 0).

    Notes
    -----
    The blur is computed as ``filt_size - 1`` passes of 2x2 average pooling
    (:func:`poolkit.avg_pool`; the last one with the stride): a binomial filter is a 2-tap box
    filter applied repeatedly, so this is exactly the reference's depthwise convolution with
    ``filt``.  Output size per axis: ``(in + pads - filt_size) // stride + 1``, e.g. ``ceil(in / 2)``
    for the defaults.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> blur = nn.BlurPool2d(1, filt_size=3)
    >>> x = np.zeros((1, 1, 6, 6)); x[0, 0, 2, 2] = 16
    >>> blur(x)[0, 0]
    array([[0., 0., 0.],
           [0., 4., 0.],
           [0., 0., 0.]])
    >>> float(blur.backward(np.ones((1, 1, 3, 3))).sum())
    9.0
    """

    def __init__(self, channels: int, pad_type: str = "reflect", filt_size: int = 4, stride: int = 2,
                 pad_off: int = 0) -> None:
        super().__init__()
        self.channels = _positive_int("BlurPool2d", "channels", channels)
        if pad_type not in _BLUR_PAD:
            raise ValueError(f"BlurPool2d: pad_type must be 'reflect', 'replicate' or 'zero', got {pad_type!r}")
        if not _is_int(filt_size) or not 1 <= filt_size <= 7:
            raise ValueError(f"BlurPool2d: filt_size must be an int from 1 to 7, got {filt_size!r}")
        self.pad_type, self.filt_size = pad_type, int(filt_size)
        self.stride = _positive_int("BlurPool2d", "stride", stride)
        self.pad_off = _positive_int("BlurPool2d", "pad_off", pad_off, 0)
        before, after = (self.filt_size - 1) // 2 + self.pad_off, -(-(self.filt_size - 1) // 2) + self.pad_off
        self._pads = ((before, after), (before, after))
        self.filt: np.ndarray
        filt = binomial_filter(self.filt_size).astype(np.float32)
        self.register_buffer("filt", np.repeat(filt[None, None], self.channels, axis=0))

    def _after_load(self) -> None:
        want = binomial_filter(self.filt_size)
        if self.filt.shape != (self.channels, 1, self.filt_size, self.filt_size) or \
                not np.allclose(self.filt, want, rtol=1e-6, atol=1e-7):
            raise ValueError("BlurPool2d: the loaded 'filt' is not the fixed binomial filter of filt_size="
                             f"{self.filt_size}; this layer computes with that filter only")

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = _float_input("BlurPool2d", input)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        if x.ndim not in (3, 4) or x.shape[-3] != self.channels:
            raise ValueError(f"BlurPool2d: input must be (N, {self.channels}, H, W) or ({self.channels}, H, W) "
                             f"(channels={self.channels}), got shape {x.shape}")
        z = pad(x, self._pads, _BLUR_PAD[self.pad_type], "BlurPool2d")
        shapes = [z.shape]
        if self.filt_size == 1:
            z = z[..., ::self.stride, ::self.stride]
        else:
            for i in range(self.filt_size - 1):
                s = self.stride if i == self.filt_size - 2 else 1
                z = poolkit.avg_pool(z, (2, 2), s)
                shapes.append(z.shape)
        self._keep(x, z.shape, _shapes=shapes)
        return z

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        x, g = self._grad(grad_output)
        shapes = self._shapes
        if self.filt_size == 1:
            gz = np.zeros(shapes[0], dtype=g.dtype)
            gz[..., ::self.stride, ::self.stride] = g
        else:
            gz = g
            for i in reversed(range(self.filt_size - 1)):
                s = self.stride if i == self.filt_size - 2 else 1
                gz = poolkit.avg_pool_backward(gz, _zero_like(shapes[i], g.dtype), (2, 2), s)
        return pad_backward(gz, self._pads, _BLUR_PAD[self.pad_type])

    def extra_repr(self) -> str:
        return f"{self.channels}, pad_type={self.pad_type!r}, filt_size={self.filt_size}, stride={self.stride}"


class MaxBlurPool2d(Sequential):
    """Anti-aliased max pooling (Zhang 2019): max with stride 1, then :class:`BlurPool2d` with the stride.

    ``MaxPool2d(kernel_size, stride=1)`` followed by ``BlurPool2d(channels, pad_type, filt_size,
    stride)``; the same children, names and ``state_dict`` (``"1.filt"``) as the reference
    implementation's ``nn.Sequential(nn.MaxPool2d(kernel_size, stride=1), BlurPool(channels, ...))``.
    It replaces ``MaxPool2d(kernel_size)``: with the defaults ``(N, C, H, W) -> (N, C, ceil((H - 1) / 2), ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> pool = nn.MaxBlurPool2d(8)
    >>> pool
    MaxBlurPool2d(
      (0): MaxPool2d(kernel_size=2, stride=1, padding=0, dilation=1, ceil_mode=False)
      (1): BlurPool2d(8, pad_type='reflect', filt_size=4, stride=2)
    )
    >>> y = pool(np.ones((2, 8, 20, 20), dtype=np.float32))
    >>> y.shape, float(y.min()), float(y.max())
    ((2, 8, 10, 10), 1.0, 1.0)
    """

    def __init__(self, channels: int, kernel_size=2, filt_size: int = 4, stride: int = 2,
                 pad_type: str = "reflect") -> None:
        super().__init__(MaxPool2d(kernel_size, stride=1), BlurPool2d(channels, pad_type, filt_size, stride))
