"""Keras 3 pooling layers, on NumPy arrays, with a backward pass.

The classes have the names, constructor arguments and defaults of ``keras.layers`` (Keras 3,
TensorFlow backend): ``pool_size``, ``strides`` (default ``pool_size``), ``padding`` ``"valid"`` or
``"same"``, ``data_format`` ``"channels_last"`` (the default) or ``"channels_first"``, ``keepdims``
for the global layers, ``output_size`` for the adaptive ones.  A layer is called on an array and
returns an array; ``layer.backward(grad_output)`` returns the gradient of
``sum(grad_output * layer(x))`` with respect to the ``x`` of the last call.

As in Keras, the layer's ``dtype`` (default ``"float32"``, Keras's default policy) is the compute
dtype: floating inputs are cast to it, and so are integer inputs of the averaging layers.  Pass
``dtype=None`` to keep the input's float dtype.  Pooling follows the TensorFlow backend (see
:mod:`poolkit.compat.tf`): ``"same"`` average pooling divides by the cells inside the input, max
pooling skips NaN.  ``GlobalAveragePooling1D`` takes a ``mask`` ``(batch, steps)``: masked steps are
ignored, and a sequence with no valid step gives NaN (Keras's 0/0) with a zero gradient.

Examples
--------
>>> import numpy as np
>>> from poolkit.compat import keras
>>> layer = keras.MaxPooling2D(pool_size=2)
>>> x = np.arange(16.0).reshape(1, 4, 4, 1)
>>> layer(x)[..., 0]
array([[[ 5.,  7.],
        [13., 15.]]], dtype=float32)
>>> layer.backward(np.ones((1, 2, 2, 1)))[0, ..., 0]
array([[0., 0., 0., 0.],
       [0., 1., 0., 1.],
       [0., 0., 0., 0.],
       [0., 1., 0., 1.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

import poolkit

from .. import _validate as V
from . import tf as _tf

__all__ = [
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
    "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
    "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
]


def _standardize_tuple(value, n, name, allow_zero=False):
    """keras.src.utils.argument_validation.standardize_tuple."""
    msg = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if V.is_int(value):
        out = (int(value),) * n
    else:
        try:
            out = tuple(value)
        except TypeError:
            raise ValueError(msg) from None
        if len(out) != n or not all(V.is_int(v) for v in out):
            raise ValueError(msg)
        out = tuple(int(v) for v in out)
    bad = {v for v in out if (v < 0 if allow_zero else v <= 0)}
    if bad:
        req = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{msg}, including values {bad} that do not satisfy `value {req}`")
    return out


def _standardize_data_format(data_format):
    if data_format is None:
        return "channels_last"
    df = str(data_format).lower()
    if df not in {"channels_first", "channels_last"}:
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format}")
    return df


class _Layer:
    """What the layers share: a name, a compute dtype, the input of the last call, and the call and
    backward steps around the pooling (``_forward(x)``, ``_backward(g, x)``) each family defines."""

    _n = 0
    #: "max" or "average"; averaging layers also cast integer inputs to the compute dtype
    _mode = "max"

    def __init__(self, name=None, dtype="float32"):
        self.name = name if name is not None else _snake(type(self).__name__)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self._last = None

    def _prepare(self, inputs) -> np.ndarray:
        """The input as an array of the layer's compute dtype (float inputs, and every input of an
        averaging layer), in native byte order."""
        x = V.check_array(inputs, f'Layer "{self.name}" input')
        self._check_rank(x.shape)
        dtype = self.dtype if self.dtype is not None and (x.dtype.kind == "f" or self._mode == "average") else x.dtype
        with np.errstate(over="ignore", invalid="ignore"):  # as Keras casts: out of range becomes inf
            return x.astype(dtype.newbyteorder("="), copy=False)

    def _check_rank(self, shape) -> None:
        if len(shape) != self._n + 2:
            raise ValueError(f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                             f"ndim={self._n + 2}, found ndim={len(shape)}. Full shape received: {tuple(shape)}")

    def _input_shape(self, input_shape) -> list:
        """``input_shape`` as a list of sizes (None where unknown), checked for the layer's rank."""
        try:
            shape = list(input_shape)
        except TypeError:
            raise TypeError(f'Layer "{self.name}": input_shape must be a sequence, got {input_shape!r}') from None
        self._check_rank(shape)
        if not all(v is None or (V.is_int(v) and v >= 0) for v in shape):
            raise ValueError(f'Layer "{self.name}": input_shape must hold sizes >= 0 or None, got {input_shape!r}')
        return shape

    def _in_float(self, grad) -> np.ndarray:
        """A gradient in the last input's float dtype (the dtype it has otherwise)."""
        x = self._last
        with np.errstate(over="ignore"):
            return grad.astype(x.dtype if x.dtype.kind == "f" else grad.dtype, copy=False)

    def _spatial_axes(self):
        return tuple(range(1, self._n + 1)) if self.data_format == "channels_last" else tuple(range(2, self._n + 2))

    def _check_backward(self, grad_output):
        if self._last is None:
            raise RuntimeError(f'Layer "{self.name}": call the layer before backward()')
        return np.asarray(grad_output)

    def __call__(self, inputs):
        x = self._prepare(inputs)
        out = self._forward(x)
        self._last = x
        return out

    def backward(self, grad_output):
        """Gradient of ``sum(grad_output * self(x))`` with respect to the last call's ``x``."""
        g = self._check_backward(grad_output)
        return self._in_float(self._backward(g, self._last))

    def _forward(self, x) -> np.ndarray:  # pragma: no cover - every layer family defines it
        raise NotImplementedError

    def _backward(self, g, x) -> np.ndarray:  # pragma: no cover - every layer family defines it
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": None if self.dtype is None else self.dtype.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k not in ("name", "dtype"))
        return f"{type(self).__name__}({args})"


def _ranked(base: type, name: str, n: int) -> type:
    """The layer class ``name`` of ``base`` for ``n`` spatial axes (``keras.layers.<name>``)."""
    return type(name, (base,), {"_n": n, "__doc__": f"``keras.layers.{name}``.", "__module__": __name__,
                                "__qualname__": name})


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


# --------------------------------------------------------------------------------------------
# sliding-window pooling
# --------------------------------------------------------------------------------------------


class _Pooling(_Layer):
    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, dtype="float32"):
        super().__init__(name, dtype)
        self.pool_size = _standardize_tuple(pool_size, self._n, "pool_size")
        self.strides = _standardize_tuple(pool_size if strides is None else strides, self._n, "strides",
                                          allow_zero=True)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"The `padding` argument must be one of 'valid', 'same'. Received: {padding}")
        self.padding = padding.lower()
        self.data_format = _standardize_data_format(data_format)

    def _tf_args(self):
        fmt = {1: "NWC", 2: "NHWC", 3: "NDHWC"}[self._n] if self.data_format == "channels_last" else \
            {1: "NCW", 2: "NCHW", 3: "NCDHW"}[self._n]
        return self.pool_size, self.strides, self.padding.upper(), fmt

    def _forward(self, x):
        return (_tf.max_pool if self._mode == "max" else _tf.avg_pool)(x, *self._tf_args())

    def _backward(self, g, x):
        axes = self._spatial_axes()
        if self._mode == "max":  # TensorFlow's max never picks a NaN
            return poolkit.max_pool_backward(g, _tf._nan_to_neginf(x), self.pool_size, self.strides, self.padding,
                                             axes=axes)
        return poolkit.avg_pool_backward(g, x, self.pool_size, self.strides, self.padding, axes=axes,
                                         count_include_pad=False)

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape`` (batch size may be None)."""
        shape = self._input_shape(input_shape)
        for a, k, s in zip(self._spatial_axes(), self.pool_size, self.strides):
            if shape[a] is not None:
                shape[a] = poolkit.output_shape((shape[a],), (k,), (s,), self.padding)[0]
        return tuple(shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}


class MaxPooling1D(_Pooling):
    """``keras.layers.MaxPooling1D``: ``(batch, steps, features)`` input (channels_last).

    >>> import numpy as np
    >>> from poolkit.compat.keras import MaxPooling1D
    >>> MaxPooling1D(pool_size=2, strides=1, padding="same")(np.array([[[1.], [3.], [2.]]]))[..., 0]
    array([[3., 3., 2.]], dtype=float32)
    """

    _n = 1

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None,
                 dtype="float32"):
        super().__init__(pool_size, strides, padding, data_format, name, dtype)


class MaxPooling2D(_Pooling):
    """``keras.layers.MaxPooling2D``: ``(batch, rows, cols, channels)`` input (channels_last)."""

    _n = 2

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None,
                 dtype="float32"):
        super().__init__(pool_size, strides, padding, data_format, name, dtype)


class MaxPooling3D(_Pooling):
    """``keras.layers.MaxPooling3D``: ``(batch, d1, d2, d3, channels)`` input (channels_last)."""

    _n = 3

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None, name=None,
                 dtype="float32"):
        super().__init__(pool_size, strides, padding, data_format, name, dtype)


class _AveragePooling(_Pooling):
    _mode = "average"


class AveragePooling1D(_AveragePooling):
    """``keras.layers.AveragePooling1D``; ``"same"`` divides by the steps inside the input.

    >>> import numpy as np
    >>> from poolkit.compat.keras import AveragePooling1D
    >>> AveragePooling1D(pool_size=2, padding="same")(np.array([[[1.], [3.], [2.]]]))[..., 0]
    array([[2., 2.]], dtype=float32)
    """

    _n = 1


AveragePooling2D = _ranked(_AveragePooling, "AveragePooling2D", 2)


AveragePooling3D = _ranked(_AveragePooling, "AveragePooling3D", 3)


MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D


# --------------------------------------------------------------------------------------------
# global pooling
# --------------------------------------------------------------------------------------------


class _GlobalPooling(_Layer):
    def __init__(self, data_format=None, keepdims=False, name=None, dtype="float32"):
        super().__init__(name, dtype)
        self.data_format = _standardize_data_format(data_format)
        self.keepdims = bool(keepdims)

    def _forward(self, x):
        pool = poolkit.global_max_pool if self._mode == "max" else poolkit.global_avg_pool
        return pool(x, axes=self._spatial_axes(), keepdims=self.keepdims)

    def _backward(self, g, x):
        grad = poolkit.global_max_pool_backward if self._mode == "max" else poolkit.global_avg_pool_backward
        return grad(g, x, axes=self._spatial_axes(), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        shape = self._input_shape(input_shape)
        for a in self._spatial_axes():
            shape[a] = 1
        if not self.keepdims:
            shape = [v for a, v in enumerate(shape) if a not in self._spatial_axes()]
        return tuple(shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalMaxPooling1D(_GlobalPooling):
    """``keras.layers.GlobalMaxPooling1D``: ``(batch, steps, features)`` -> ``(batch, features)``."""

    _n = 1


GlobalMaxPooling2D = _ranked(_GlobalPooling, "GlobalMaxPooling2D", 2)


GlobalMaxPooling3D = _ranked(_GlobalPooling, "GlobalMaxPooling3D", 3)


class _GlobalAveragePooling(_GlobalPooling):
    _mode = "average"


class GlobalAveragePooling1D(_GlobalAveragePooling):
    """``keras.layers.GlobalAveragePooling1D``, with Keras's ``mask`` ``(batch, steps)``.

    Masked steps are ignored; a sequence with no valid step averages to NaN, as in Keras.

    >>> import numpy as np
    >>> from poolkit.compat.keras import GlobalAveragePooling1D
    >>> x = np.array([[[1.], [3.], [100.]]])
    >>> GlobalAveragePooling1D()(x, mask=np.array([[True, True, False]]))
    array([[2.]], dtype=float32)
    """

    _n = 1

    def __init__(self, data_format=None, keepdims=False, name=None, dtype="float32"):
        super().__init__(data_format, keepdims, name, dtype)
        self._mask = None

    def _steps_first(self, x):
        return x if self.data_format == "channels_last" else np.swapaxes(x, 1, 2)

    def _check_mask(self, mask, x):
        m = np.asarray(mask)
        if m.shape != (x.shape[0], x.shape[1 if self.data_format == "channels_last" else 2]):
            raise ValueError(f'Layer "{self.name}": mask must have shape (batch, steps) = '
                             f"{(x.shape[0], x.shape[1 if self.data_format == 'channels_last' else 2])}, got {m.shape}")
        return m.astype(bool)

    def __call__(self, inputs, mask=None):
        if mask is None:
            self._mask = None
            return super().__call__(inputs)
        x = self._prepare(inputs)
        m = self._check_mask(mask, x)
        self._last, self._mask = x, m
        out = self._in_float(poolkit.masked_pool(self._steps_first(x), m, mode="mean", axis=1, fill=np.nan))
        if self.keepdims:
            out = np.expand_dims(out, 1 if self.data_format == "channels_last" else 2)
        return out

    def backward(self, grad_output):
        if self._mask is None:
            return super().backward(grad_output)
        g = self._check_backward(grad_output)
        x = self._last
        if self.keepdims:
            g = np.squeeze(g, 1 if self.data_format == "channels_last" else 2)
        grad = poolkit.masked_pool_backward(g, self._steps_first(x), self._mask, mode="mean", axis=1, fill=np.nan)
        grad = self._steps_first(grad)  # swapping back is the same swap
        return self._in_float(grad)


GlobalAveragePooling2D = _ranked(_GlobalAveragePooling, "GlobalAveragePooling2D", 2)


GlobalAveragePooling3D = _ranked(_GlobalAveragePooling, "GlobalAveragePooling3D", 3)


GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (GlobalAveragePooling1D, GlobalAveragePooling2D,
                                                     GlobalAveragePooling3D)


# --------------------------------------------------------------------------------------------
# adaptive pooling
# --------------------------------------------------------------------------------------------


class _AdaptivePooling(_Layer):
    def __init__(self, output_size, data_format=None, name=None, dtype="float32"):
        super().__init__(name, dtype)
        n = self._n
        if V.is_int(output_size):
            sizes = (int(output_size),) * n
        elif isinstance(output_size, (tuple, list)):
            if len(output_size) != n:
                raise ValueError(f"For {n}D input, `output_size` tuple must have length {n}. Received: {output_size}")
            sizes = tuple(output_size)
        else:
            raise TypeError(f"`output_size` must be an integer or tuple of {n} integers. "
                            f"Received: {output_size} of type {type(output_size)}")
        if not all(V.is_int(v) and v > 0 for v in sizes):
            raise ValueError(f"`output_size` must contain positive integers. Received: {output_size}")
        self.output_size = tuple(int(v) for v in sizes)
        self.data_format = _standardize_data_format(data_format)

    def _forward(self, x):
        axes = self._spatial_axes()
        if self._mode != "max":
            return poolkit.adaptive_avg_pool(x, self.output_size, axes=axes)
        # the TensorFlow backend pools with tf.nn.pool: NaN never wins
        out = poolkit.adaptive_max_pool(_tf._nan_to_neginf(x), self.output_size, axes=axes)
        return _tf._at_least_lowest(out)

    def _backward(self, g, x):
        axes = self._spatial_axes()
        if self._mode == "max":
            return poolkit.adaptive_max_pool_backward(g, _tf._nan_to_neginf(x), self.output_size, axes=axes)
        return poolkit.adaptive_avg_pool_backward(g, x, self.output_size, axes=axes)

    def compute_output_shape(self, input_shape):
        shape = self._input_shape(input_shape)
        for a, v in zip(self._spatial_axes(), self.output_size):
            shape[a] = v
        return tuple(shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "output_size": self.output_size, "data_format": self.data_format}


class AdaptiveMaxPooling1D(_AdaptivePooling):
    """``keras.layers.AdaptiveMaxPooling1D``: PyTorch's bins ``[floor(i*L/out), ceil((i+1)*L/out))``.

    >>> import numpy as np
    >>> from poolkit.compat.keras import AdaptiveMaxPooling1D
    >>> AdaptiveMaxPooling1D(3)(np.array([[[1.], [5.], [2.], [4.], [3.]]]))[..., 0]
    array([[5., 5., 4.]], dtype=float32)
    """

    _n = 1


AdaptiveMaxPooling2D = _ranked(_AdaptivePooling, "AdaptiveMaxPooling2D", 2)


AdaptiveMaxPooling3D = _ranked(_AdaptivePooling, "AdaptiveMaxPooling3D", 3)


class _AdaptiveAveragePooling(_AdaptivePooling):
    _mode = "average"


AdaptiveAveragePooling1D = _ranked(_AdaptiveAveragePooling, "AdaptiveAveragePooling1D", 1)


AdaptiveAveragePooling2D = _ranked(_AdaptiveAveragePooling, "AdaptiveAveragePooling2D", 2)


AdaptiveAveragePooling3D = _ranked(_AdaptiveAveragePooling, "AdaptiveAveragePooling3D", 3)
