"""TensorFlow's ``tf.nn`` pooling, on NumPy arrays.

The functions have the names, arguments and defaults of their ``tf.nn`` twins (TensorFlow 2),
take and return NumPy arrays, and are thin translations onto the poolkit core.  Inputs are
channels-last by default (``NWC``, ``NHWC``, ``NDHWC``); ``data_format="NCW"/"NCHW"/"NCDHW"``
pools channels-first input (TensorFlow accepts that only on GPU; here it works everywhere).

What TensorFlow does, and so what happens here:

* ``padding="SAME"`` pads ``max(0, (ceil(in/stride) - 1) * stride + window - in)`` cells, the odd
  one at the end (see :func:`poolkit.resolve_padding`); ``"VALID"`` does not pad.  Both are
  upper case, as in TensorFlow.  ``max_pool1d``/``max_pool2d`` (and ``max_pool``/``pool`` on such
  input) also take explicit pads ``[[0, 0], [before, after], ..., [0, 0]]``, each smaller than the
  window.
* SAME average pooling divides by the number of cells inside the input, not the window size.
* Max pooling skips NaN (a window of NaN only gives the dtype's lowest value) and never returns less
  than the lowest finite value (a window of ``-inf`` gives it too), as TensorFlow's reference
  (Eigen) kernels do for every dtype.  For float16, and for 3-D windows, TensorFlow's result
  depends on the CPU: where it routes float16 through oneDNN, a window of ``-inf`` gives ``-inf``
  (seen on an Intel Xeon); where it falls back to Eigen, -65504 (seen on an AMD EPYC).  Its
  ``max_pool3d`` gave NaN for a window of NaN only and ``-inf`` for a window of ``-inf`` on an AMD
  EPYC of family 25 (without AVX-512), the lowest finite value on one of family 26.  poolkit
  gives the reference kernel's lowest finite value everywhere.
  ``max_pool_with_argmax`` takes the first cell of a window and then any strictly larger one, so a
  NaN in the first cell wins and a NaN elsewhere never does.
* ``max_pool_with_argmax`` encodes the position of each maximum as ``(y * W + x) * C + c``, plus
  ``b * H * W * C`` with ``include_batch_in_index=True``.
* A window of 1 over the channel axis with a channel ``ksize`` > 1 is TensorFlow's depthwise max
  pooling (``ksize == strides`` on the channel axis, dividing the channel count, no spatial pooling).

Beyond TensorFlow: integer average pooling (float64 result) and a window larger than the input,
which TensorFlow 2.21 may answer with a crash, is a clear ValueError.

Examples
--------
>>> import numpy as np
>>> from poolkit.compat import tf
>>> x = np.arange(1., 10.).reshape(1, 3, 3, 1)
>>> tf.avg_pool2d(x, 2, 2, "SAME")[..., 0]
array([[[3. , 4.5],
        [7.5, 9. ]]])
>>> out, argmax = tf.max_pool_with_argmax(x, 2, 2, "SAME")
>>> argmax[..., 0]
array([[[4, 5],
        [7, 8]]])
"""

from __future__ import annotations

import numpy as np

import poolkit

from .. import _validate as V

__all__ = [
    "max_pool", "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "pool", "max_pool_with_argmax",
]

_FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


# --------------------------------------------------------------------------------------------
# argument handling, as tf.nn does it
# --------------------------------------------------------------------------------------------


def _array(input, fname: str) -> np.ndarray:
    return V.check_array(input, f"{fname}: input")


def _rank_n(x: np.ndarray) -> int:
    n = x.ndim - 2
    if not 1 <= n <= 3:
        raise ValueError(f"`input.shape.rank` must be 3, 4 or 5. Received: input.shape={x.shape} of rank {x.ndim}.")
    return n


def _layout(n: int, data_format, fname: str):
    """(channels_first, channel axis, spatial axes) for an (n+2)-D input."""
    if data_format is None:
        cf = False
    else:
        if data_format not in _FORMATS[n]:
            raise ValueError(f"{fname}: data_format must be one of {_FORMATS[n]} for {n + 2}-D input, "
                             f"got {data_format!r}")
        cf = data_format.startswith("NC")
    if cf:
        return True, 1, tuple(range(2, n + 2))
    return False, n + 1, tuple(range(1, n + 1))


def _get_sequence(value, n: int, channel_index: int, name: str) -> list:
    """``tf.nn``'s ``_get_sequence``: 1, n or n+2 values, completed with 1 for batch and channels."""
    if value is None:
        return [1] * (n + 2)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if V.is_int(value):
        value = [value]
    elif isinstance(value, (list, tuple)):
        value = list(value)
    else:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}")
    if not all(V.is_int(v) for v in value):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}")
    value = [int(v) for v in value]
    if len(value) == n + 2:
        return value
    if len(value) == 1:
        value = value * n
    elif len(value) != n:
        raise ValueError(f"{name} should be of length 1, {n} or {n + 2}. "
                         f"Received: {name}={value} of length {len(value)}")
    return [1, 1] + value if channel_index == 1 else [1] + value + [1]


def _windows(fname, n, ksize, strides, channel, spatial, *, kind):
    """Check a full-rank ksize/strides pair; return (spatial k, spatial s, depth window)."""
    if any(v <= 0 for v in ksize):
        raise ValueError(f"{fname}: Sliding window ksize must be positive. The specified or inferred ksize is: "
                         + ",".join(map(str, ksize)))
    if any(v <= 0 for v in strides):
        raise ValueError(f"{fname}: Sliding window stride must be positive. The specified or inferred stride is: "
                         + ",".join(map(str, strides)))
    if ksize[0] != 1 or strides[0] != 1:
        raise ValueError(f"{fname}: Pooling is not yet supported on the batch dimension.")
    k = tuple(ksize[a] for a in spatial)
    s = tuple(strides[a] for a in spatial)
    depth = ksize[channel]
    if depth != 1:
        if kind == "avg":
            raise ValueError(f"{fname}: average pooling across the channel (depth) dimension is not supported")
        if kind == "max3d":
            raise ValueError(f"{fname}: Pooling is not yet supported on the depth dimension.")
        if kind == "argmax":
            raise ValueError(f"{fname}: pooling across the channel (depth) dimension is not supported by "
                             "max_pool_with_argmax (TensorFlow silently ignores the channel window)")
        if any(v != 1 for v in k):
            raise ValueError(f"{fname}: MaxPooling supports exactly one of pooling across depth or pooling "
                             "across width/height.")
        if strides[channel] != depth:
            raise ValueError(f"{fname}: Depthwise max pooling requires the depth window to equal the depth stride")
    elif kind == "max3d" and strides[channel] != 1:
        raise ValueError(f"{fname}: Pooling is not yet supported on the depth dimension.")
    return k, s, depth


def _padding(fname, padding, n, channel, spatial, k, *, explicit_ok):
    """TF padding -> a poolkit padding for the spatial axes (``"valid"``, ``"same"`` or pairs)."""
    if isinstance(padding, str):
        if padding == "VALID":
            return "valid"
        if padding == "SAME":
            return "same"
        allowed = '"SAME", "VALID", "EXPLICIT"' if explicit_ok else '"SAME", "VALID"'
        raise ValueError(f"{fname}: Value for attr 'padding' of \"{padding}\" is not in the list of allowed "
                         f"values: {allowed}")
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if not isinstance(padding, (list, tuple)):
        raise TypeError(f"{fname}: padding must be 'SAME', 'VALID' or a list of [before, after] pairs, got {padding!r}")
    if not explicit_ok:
        raise ValueError(f"{fname}: explicit padding is not supported here (TensorFlow allows it only for 1-D and "
                         f"2-D max pooling); got padding={padding!r}")
    pairs = []
    for i, item in enumerate(padding):
        item = list(item) if isinstance(item, (list, tuple, np.ndarray)) else [item]
        if len(item) != 2 or not all(V.is_int(v) for v in item):
            raise ValueError("When `padding` is a list, each element of `padding` must be a list/tuple of size 2. "
                             f"Received: padding={padding} with element at index {i} of size {len(item)}")
        pairs.append((int(item[0]), int(item[1])))
    if len(pairs) != n + 2:
        raise ValueError(f"When padding is a list, it must be of size {n + 2}. "
                         f"Received: padding={padding} of size {len(pairs)}")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{fname}: All elements of explicit_paddings must be nonnegative")
    if pairs[0] != (0, 0) or pairs[channel] != (0, 0):
        raise ValueError(f"{fname}: Nonzero explicit padding in the batch or depth dimensions is not supported")
    names = {1: [("Left", "Right")], 2: [("Top", "Bottom"), ("Left", "Right")]}.get(n)
    if names is None:
        raise ValueError("Explicit padding is not supported with an input tensor of rank 5. "
                         f"Received: padding={padding}")
    out = []
    for (before, after), (nb, na), ki in zip((pairs[a] for a in spatial), names, k):
        if before >= ki:
            raise ValueError(f"{fname}: {nb} padding {before} needs to be smaller than the window size {ki}")
        if after >= ki:
            raise ValueError(f"{fname}: {na} padding {after} needs to be smaller than the window size {ki}")
        out.append((before, after))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# the pooling itself, with TensorFlow's NaN and -inf behaviour
# --------------------------------------------------------------------------------------------


def _nan_to_neginf(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "f":
        nans = np.isnan(x)
        if nans.any():
            return np.where(nans, x.dtype.type(-np.inf), x)
    return x


def _tf_max(x, k, s, padding, axes, dilation=1, return_indices=False):
    """Max pooling as TensorFlow's MaxPool: NaN never wins, the result is at least the dtype's
    lowest finite value (float16 included: TensorFlow's reference kernel, see the module notes)."""
    res = poolkit.max_pool(_nan_to_neginf(x), k, s, padding, dilation=dilation, axes=axes,
                           return_indices=return_indices)
    out, idx = res if return_indices else (res, None)
    out = _at_least_lowest(out)
    return (out, idx) if return_indices else out


def _at_least_lowest(out: np.ndarray) -> np.ndarray:
    """A float max-pooling result raised to its dtype's lowest finite value, as TensorFlow's max
    kernels start from it (a window of -inf or NaN only gives it); other dtypes as they are."""
    return np.maximum(out, np.finfo(out.dtype).min) if out.dtype.kind == "f" and out.size else out


def _windowed(fname, input, ksize, strides, data_format, n_expected, kind):
    """The input and its windows, checked as tf.nn's max and avg pooling do: (x, n, channel axis,
    spatial axes, spatial ksize, spatial strides, channel window)."""
    x = _array(input, fname)
    n = _rank_n(x) if n_expected is None else n_expected
    if x.ndim != n + 2:
        raise ValueError(f"{fname}: input must be {n + 2}-dimensional, got shape {x.shape}")
    _, channel, spatial = _layout(n, data_format, fname)
    ks = _get_sequence(ksize, n, channel, "ksize")
    ss = _get_sequence(strides, n, channel, "strides")
    k, s, depth = _windows(fname, n, ks, ss, channel, spatial, kind="max3d" if kind == "max" and n == 3 else kind)
    return x, n, channel, spatial, k, s, depth


def _max(fname, input, ksize, strides, padding, data_format, n_expected=None):
    x, n, channel, spatial, k, s, depth = _windowed(fname, input, ksize, strides, data_format, n_expected, "max")
    if depth != 1:  # depthwise max pooling: spatial strides and padding are ignored, as TensorFlow does
        _padding(fname, padding, n, channel, spatial, (1,) * n, explicit_ok=n < 3)
        if x.shape[channel] % depth:
            raise ValueError(f"{fname}: Depthwise max pooling requires the depth window to evenly divide the "
                             "input depth")
        return _tf_max(x, (depth,), depth, 0, (channel,))
    pad = _padding(fname, padding, n, channel, spatial, k, explicit_ok=n < 3)
    return _tf_max(x, k, s, pad, spatial)


def _avg(fname, input, ksize, strides, padding, data_format, n_expected=None):
    x, n, channel, spatial, k, s, _ = _windowed(fname, input, ksize, strides, data_format, n_expected, "avg")
    pad = _padding(fname, padding, n, channel, spatial, k, explicit_ok=False)
    return poolkit.avg_pool(x, k, s, pad, count_include_pad=False, axes=spatial)


def max_pool(input, ksize, strides, padding, data_format=None, name=None):
    """``tf.nn.max_pool``: N-D max pooling, N = ``input.ndim - 2`` (1, 2 or 3).

    ``ksize`` and ``strides`` are an int, N ints, or N + 2 ints (batch and channel entries 1).
    ``padding`` is ``"SAME"``, ``"VALID"`` or, for N < 3, explicit pairs.

    >>> import numpy as np
    >>> from poolkit.compat.tf import max_pool
    >>> max_pool(np.array([[[1.], [5.], [2.], [4.], [3.]]]), 2, 2, "SAME")[..., 0]
    array([[5., 4., 3.]])
    """
    return _max("max_pool", input, ksize, strides, padding, data_format)


def avg_pool(input, ksize, strides, padding, data_format=None, name=None):
    """``tf.nn.avg_pool``: N-D average pooling; ``"SAME"`` divides by the cells inside the input.

    >>> import numpy as np
    >>> from poolkit.compat.tf import avg_pool
    >>> avg_pool(np.array([[[1.], [5.], [2.], [4.], [3.]]]), 2, 2, "SAME")[..., 0]
    array([[3., 3., 3.]])
    """
    return _avg("avg_pool", input, ksize, strides, padding, data_format)


def _ranked(op, fname: str, n: int, what: str):
    """The ``tf.nn`` function ``fname``: ``op`` (:func:`_max` or :func:`_avg`) for ``n`` spatial
    axes, with TensorFlow's signature and default (channels-last) layout; ``what`` ends its docstring."""
    def ranked(input, ksize, strides, padding, data_format=_FORMATS[n][0], name=None):
        return op(fname, input, ksize, strides, padding, data_format, n)
    ranked.__name__ = ranked.__qualname__ = fname
    ranked.__doc__ = f"``tf.nn.{fname}``: {what}"
    return ranked


max_pool1d = _ranked(_max, "max_pool1d", 1, '``(N, W, C)`` input (``"NCW"``: ``(N, C, W)``).')
max_pool2d = _ranked(_max, "max_pool2d", 2, '``(N, H, W, C)`` input (``"NCHW"``: ``(N, C, H, W)``).')
max_pool3d = _ranked(_max, "max_pool3d", 3, '``(N, D, H, W, C)`` input; ``"SAME"`` or ``"VALID"`` padding.')
avg_pool1d = _ranked(_avg, "avg_pool1d", 1, "``(N, W, C)`` input.")
avg_pool2d = _ranked(_avg, "avg_pool2d", 2, "``(N, H, W, C)`` input.")
avg_pool3d = _ranked(_avg, "avg_pool3d", 3, "``(N, D, H, W, C)`` input.")


def _spatial_ints(name, value, n):
    if value is None:
        return (1,) * n
    if V.is_int(value):
        raise TypeError(f"object of type 'int' has no len() ({name} must be a sequence of {n} ints)")
    value = tuple(value)
    if len(value) != n or not all(V.is_int(v) for v in value):
        raise ValueError(f"len({name})={len(value)} but should be {n}" if len(value) != n
                         else f"{name} must contain ints, got {value!r}")
    if any(v < 1 for v in value):
        raise ValueError(f"all values of {name} must be positive, got {list(value)}")
    return tuple(int(v) for v in value)


def pool(input, window_shape, pooling_type, strides=None, padding="VALID", data_format=None, dilations=None,
         name=None):
    """``tf.nn.pool``: N-D ``"MAX"`` or ``"AVG"`` pooling with optional dilation.

    ``window_shape``, ``strides`` and ``dilations`` have one value per spatial axis.  As in
    TensorFlow, strides > 1 cannot be combined with dilations > 1, a stride may not exceed the
    window, and ``"SAME"`` padding is not available with dilations > 1.

    >>> import numpy as np
    >>> from poolkit.compat.tf import pool
    >>> pool(np.arange(6.).reshape(1, 6, 1), [2], "MAX", dilations=[2])[..., 0]
    array([[2., 3., 4., 5.]])
    """
    try:
        n = len(window_shape)
    except TypeError:
        raise TypeError(f"window_shape must be a sequence of ints, got {window_shape!r}") from None
    if not 1 <= n <= 3:
        raise ValueError(f"`len(window_shape)` must be 1, 2, or 3. Received: window_shape={window_shape} of length {n}")
    window = _spatial_ints("window_shape", window_shape, n)
    x = _array(input, "pool")
    if x.ndim != n + 2:
        raise ValueError(f"pool: input must have rank {n + 2} for a {n}-D window, got shape {x.shape}")
    s = _spatial_ints("strides", strides, n)
    d = _spatial_ints("dilation_rate", dilations, n)
    if any(v > 1 for v in s) and any(v > 1 for v in d):
        raise ValueError(f"`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
                         f"strides={list(s)} and dilation_rate={list(d)}")
    if isinstance(padding, str) and padding == "SAME" and any(v > 1 for v in d):
        raise ValueError(f"pooling with 'SAME' padding is not implemented for `dilation_rate` > 1. Received: "
                         f"padding={padding} and dilation_rate={list(d)}")
    if any(sv > kv for sv, kv in zip(s, window)):
        raise ValueError(f"`strides` > `window_shape` not supported due to inconsistency between CPU and GPU "
                         f"implementations. Received: strides={list(s)} and window_shape={tuple(window_shape)}")
    if pooling_type not in ("MAX", "AVG"):
        raise ValueError(f"{n}-D {pooling_type} pooling is not supported.")
    if n == 1 and data_format not in (None, "NWC", "NCW"):
        raise ValueError(f"data_format must be either 'NWC' or 'NCW'. Received: data_format={data_format}")
    cf, channel, spatial = _layout(n, data_format, "pool")
    explicit_ok = pooling_type == "MAX" and n < 3 and all(v == 1 for v in d)
    pad = _padding("pool", padding, n, channel, spatial, window, explicit_ok=explicit_ok)
    if pooling_type == "MAX":
        return _tf_max(x, window, s, pad, spatial, dilation=d)
    return poolkit.avg_pool(x, window, s, pad, dilation=d, count_include_pad=False, axes=spatial)


def max_pool_with_argmax(input, ksize, strides, padding, data_format="NHWC", output_dtype=np.int64,
                         include_batch_in_index=False, name=None):
    """``tf.nn.max_pool_with_argmax``: 2-D max pooling of ``(N, H, W, C)`` input, and where each
    maximum came from as ``(y * W + x) * C + c`` (plus ``b * H * W * C`` with
    ``include_batch_in_index``).

    ``output_dtype`` is int64 (default) or int32 (NumPy or TensorFlow dtypes both work).  Ties go
    to the first maximum in row-major order.

    >>> import numpy as np
    >>> from poolkit.compat.tf import max_pool_with_argmax
    >>> x = np.array([[1., 2], [9, 3]]).reshape(1, 2, 2, 1).repeat(2, axis=0)
    >>> max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)[1].ravel()
    array([2, 6])
    """
    fname = "max_pool_with_argmax"
    x = _array(input, fname)
    if x.ndim != 4:
        raise ValueError(f"{fname}: input must be 4-dimensional (N, H, W, C), got shape {x.shape}")
    if data_format != "NHWC":
        raise ValueError("`data_format` values other  than 'NHWC' are not supported. "
                         f"Received: data_format={data_format}")
    dtype = np.dtype(getattr(output_dtype, "as_numpy_dtype", output_dtype))
    if dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
        raise ValueError(f"{fname}: output_dtype must be int32 or int64, got {output_dtype!r}")
    ks = _get_sequence(ksize, 2, 3, "ksize")
    ss = _get_sequence(strides, 2, 3, "strides")
    k, s, _ = _windows(fname, 2, ks, ss, 3, (1, 2), kind="argmax")
    pad = _padding(fname, padding, 2, 3, (1, 2), k, explicit_ok=False)
    N, H, W, C = x.shape
    out, idx = poolkit.max_pool(_nan_to_neginf(x), k, s, pad, axes=(1, 2), return_indices=True)
    if x.dtype.kind == "f" and out.size and np.isnan(x).any():
        # TensorFlow starts each window with its first cell, then takes strictly larger ones:
        # a NaN in the first cell stays, a NaN elsewhere never wins.
        _, first = poolkit.max_pool(np.zeros((1, H, W, 1), np.uint8), k, s, pad, axes=(1, 2), return_indices=True)
        first_vals = np.take(x.reshape(N, H * W, C), first.reshape(-1), axis=1).reshape(out.shape[:3] + (C,))
        nan_first = np.isnan(first_vals)
        out = np.where(nan_first, first_vals, out)
        idx = np.where(nan_first, first, idx)
    enc = idx * C + np.arange(C, dtype=np.int64)
    if include_batch_in_index:
        enc = enc + (np.arange(N, dtype=np.int64) * (H * W * C)).reshape(N, 1, 1, 1)
    return out, enc.astype(dtype)
