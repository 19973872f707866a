"""The ONNX pooling operators, on NumPy arrays.

``run(op_type, inputs, **attributes)`` evaluates one ONNX node -- MaxPool, AveragePool, LpPool,
GlobalMaxPool, GlobalAveragePool, GlobalLpPool, MaxUnpool, MaxRoiPool or RoiAlign, latest opset --
and returns the list of its outputs.  Attributes are given exactly as an ONNX node carries them
(``onnx.helper.get_attribute_value`` values work as they are, strings may be ``bytes``):
``kernel_shape``, ``strides``, ``dilations``, ``pads`` as ``[x1_begin, x2_begin, ..., x1_end,
x2_end, ...]``, ``auto_pad`` (``NOTSET``, ``SAME_UPPER``, ``SAME_LOWER``, ``VALID``),
``ceil_mode``, ``count_include_pad``, ``storage_order``, ``p``, ...  Inputs are channels-first
``(N, C, D1, ..., Dn)``.

The operators follow the ONNX specification and its backend conformance cases (which win where
another runtime disagrees):

* Output size: ``floor`` or, with ``ceil_mode``, ``ceil`` of ``(in + pads - dilation*(k-1) - 1)
  / stride + 1``, where a window that would start in the end padding is dropped (PyTorch's rule).
  With ``auto_pad`` the output is ``ceil(in / stride)`` (SAME) or the floor formula (VALID), with
  or without ``ceil_mode``.
* ``AveragePool``: ``count_include_pad`` defaults to 0 (divide by the cells inside the input).
* ``MaxPool``'s ``Indices`` are flat over the whole ``(N, C, D1, ..., Dn)`` tensor, row-major, or
  with ``storage_order=1`` column-major over the spatial axes within each ``(n, c)`` plane.
* ``LpPool`` is ``(sum |x|**p) ** (1/p)``; padding counts as zeros.
* ``MaxUnpool`` scatters ``X`` at ``I`` into the shape inferred from ``kernel_shape``, ``strides``
  and ``pads`` (``(in - 1) * stride + kernel - pad_begin - pad_end``); a larger ``output_shape``
  input pads that result with zeros at the end of each axis -- the ONNX reference and conformance
  case ``test_maxunpool_export_with_output_shape`` (onnxruntime instead reads the indices as
  positions in ``output_shape``).  Indices must therefore lie inside the inferred shape.
* ``RoiAlign``: ``coordinate_transformation_mode`` ``half_pixel`` (the default since opset 16) or
  ``output_half_pixel``; ``mode="max"`` takes ONNX's maximum of the weighted bilinear corners.

Examples
--------
>>> import numpy as np
>>> from poolkit.compat.onnx import run
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> y, indices = run("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
>>> y
array([[[[ 5.,  7.],
         [13., 15.]]]], dtype=float32)
>>> run("AveragePool", [x], kernel_shape=[3, 3], auto_pad=b"SAME_UPPER", strides=[2, 2])[0]
array([[[[ 5. ,  6.5],
         [11. , 12.5]]]], dtype=float32)
"""

from __future__ import annotations

import math
import numbers

import numpy as np

import poolkit

from .. import _geometry as geo
from .. import _validate as V

__all__ = ["run", "OPERATORS"]

_POOL_ATTRS = {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"}

#: The operators :func:`run` evaluates, and the attributes each takes.
OPERATORS = {
    "MaxPool": _POOL_ATTRS | {"storage_order"},
    "AveragePool": _POOL_ATTRS | {"count_include_pad"},
    "LpPool": _POOL_ATTRS | {"p"},
    "GlobalMaxPool": set(),
    "GlobalAveragePool": set(),
    "GlobalLpPool": {"p"},
    "MaxUnpool": {"kernel_shape", "pads", "strides"},
    "MaxRoiPool": {"pooled_shape", "spatial_scale"},
    "RoiAlign": {"coordinate_transformation_mode", "mode", "output_height", "output_width", "sampling_ratio",
                 "spatial_scale"},
}

_N_INPUTS = {"MaxPool": (1, 1), "AveragePool": (1, 1), "LpPool": (1, 1), "GlobalMaxPool": (1, 1),
             "GlobalAveragePool": (1, 1), "GlobalLpPool": (1, 1), "MaxUnpool": (2, 3), "MaxRoiPool": (2, 2),
             "RoiAlign": (3, 3)}


# --------------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------------


def _string(op, name, value) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    if not isinstance(value, str):
        raise TypeError(f"{op}: attribute {name} must be a string, got {value!r}")
    return value


def _int(op, name, value) -> int:
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if not V.is_int(value):
        raise TypeError(f"{op}: attribute {name} must be an int, got {value!r}")
    return int(value)


def _ints(op, name, value, length=None) -> list:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(V.is_int(v) for v in value):
        raise TypeError(f"{op}: attribute {name} must be a list of ints, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{op}: attribute {name} must have {length} values, got {list(value)}")
    return [int(v) for v in value]


def _float(op, name, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: attribute {name} must be a number, got {value!r}")
    return V.check_real(f"{op}: attribute {name}", value)


def _window_attrs(op, attrs, n) -> tuple[list, list, list]:
    """The kernel_shape (required), strides and pads of a node over ``n`` spatial axes."""
    if "kernel_shape" not in attrs:
        raise ValueError(f"{op}: attribute kernel_shape is required")
    return (_ints(op, "kernel_shape", attrs["kernel_shape"], n), _ints(op, "strides", attrs.get("strides", [1] * n), n),
            _ints(op, "pads", attrs.get("pads", [0] * 2 * n), 2 * n))


def _pool_geometry(op, x, attrs, *, ceil_ok=True):
    """kernel, strides, poolkit padding, dilations and ceil_mode of a sliding-window node."""
    if x.ndim < 3:
        raise ValueError(f"{op}: input must be (N, C, D1, ..., Dn) with n >= 1, got shape {x.shape}")
    n = x.ndim - 2
    k, s, pads = _window_attrs(op, attrs, n)
    d = _ints(op, "dilations", attrs.get("dilations", [1] * n), n)
    ceil_mode = _int(op, "ceil_mode", attrs.get("ceil_mode", 0)) if ceil_ok else 0
    if ceil_mode not in (0, 1):
        raise ValueError(f"{op}: attribute ceil_mode must be 0 or 1, got {ceil_mode}")
    auto_pad = _string(op, "auto_pad", attrs.get("auto_pad", "NOTSET"))
    if auto_pad == "NOTSET":
        padding = tuple((pads[i], pads[n + i]) for i in range(n))
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        if "pads" in attrs and any(pads):
            raise ValueError(f"{op}: pads {pads} cannot be used together with auto_pad={auto_pad}")
        padding = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}[auto_pad]
        # The specification's auto_pad output sizes are the floor formula's, ceil_mode or not.
        ceil_mode = 0
    else:
        raise ValueError(f"{op}: auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got {auto_pad!r}")
    return k, s, padding, d, bool(ceil_mode)


# --------------------------------------------------------------------------------------------
# the operators
# --------------------------------------------------------------------------------------------


def _max_pool(x, attrs, num_outputs):
    k, s, padding, d, ceil_mode = _pool_geometry("MaxPool", x, attrs)
    storage_order = _int("MaxPool", "storage_order", attrs.get("storage_order", 0))
    if storage_order not in (0, 1):
        raise ValueError(f"MaxPool: attribute storage_order must be 0 or 1, got {storage_order}")
    if num_outputs == 1:
        return [poolkit.max_pool(x, k, s, padding, dilation=d, ceil_mode=ceil_mode)]
    y, idx = poolkit.max_pool(x, k, s, padding, dilation=d, ceil_mode=ceil_mode, return_indices=True)
    spatial = x.shape[2:]
    if storage_order == 1 and len(spatial) > 1:
        idx = np.ravel_multi_index(np.unravel_index(idx, spatial), spatial, order="F")
    planes = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[:2] + (1,) * len(spatial))
    return [y, (idx + planes * math.prod(spatial)).astype(np.int64, copy=False)]


def _average_pool(x, attrs):
    k, s, padding, d, ceil_mode = _pool_geometry("AveragePool", x, attrs)
    cip = _int("AveragePool", "count_include_pad", attrs.get("count_include_pad", 0))
    return [poolkit.avg_pool(x, k, s, padding, dilation=d, ceil_mode=ceil_mode, count_include_pad=bool(cip))]


def _lp_pool(x, attrs):
    k, s, padding, d, ceil_mode = _pool_geometry("LpPool", x, attrs)
    p = _float("LpPool", "p", attrs.get("p", 2))
    return [poolkit.lp_pool(x, p, k, s, padding, dilation=d, ceil_mode=ceil_mode)]


def _global(op, x, attrs):
    if x.ndim < 3:
        raise ValueError(f"{op}: input must be (N, C, D1, ..., Dn) with n >= 1, got shape {x.shape}")
    if op == "GlobalMaxPool":
        return [poolkit.global_max_pool(x, keepdims=True)]
    if op == "GlobalAveragePool":
        return [poolkit.global_avg_pool(x, keepdims=True)]
    return [poolkit.global_lp_pool(x, _float(op, "p", attrs.get("p", 2)), keepdims=True)]


def _max_unpool(inputs, attrs):
    op = "MaxUnpool"
    x = np.asarray(inputs[0])
    idx = np.asarray(inputs[1])
    if x.ndim < 3:
        raise ValueError(f"{op}: X must be (N, C, D1, ..., Dn) with n >= 1, got shape {x.shape}")
    if idx.shape != x.shape:
        raise ValueError(f"{op}: I must have the shape of X {x.shape}, got {idx.shape}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: I must be an integer tensor, got dtype {idx.dtype}")
    n = x.ndim - 2
    k, s, pads = _window_attrs(op, attrs, n)
    inferred = x.shape[:2] + tuple((x.shape[2 + i] - 1) * s[i] - (pads[i] + pads[n + i]) + k[i] for i in range(n))
    if any(v < 0 for v in inferred):
        raise ValueError(f"{op}: kernel_shape, strides and pads give a negative output shape {inferred}")
    total = math.prod(inferred)
    if idx.size and (idx.min() < 0 or idx.max() >= total):
        raise ValueError(
            f"{op}: indices must lie in [0, {total}): ONNX (its reference and conformance cases) reads them as flat "
            f"positions in the shape {inferred} inferred from kernel_shape, strides and pads, got values in "
            f"[{idx.min()}, {idx.max()}]"
        )
    if total and x.size:
        y = poolkit.max_unpool(x.reshape(1, -1), idx.reshape(1, -1), (total,)).reshape(inferred)
    else:
        y = np.zeros(inferred, dtype=x.dtype.newbyteorder("="))
    if len(inputs) < 3 or inputs[2] is None:
        return [y]
    shape_in = np.asarray(inputs[2]).reshape(-1)
    if shape_in.dtype.kind not in "iuf" or (shape_in.dtype.kind == "f" and not np.all(np.isfinite(shape_in))):
        raise ValueError(f"{op}: output_shape must hold finite sizes, got {shape_in.tolist()}")
    if shape_in.size and shape_in.max() > geo.MAX_ELEMENTS:
        raise ValueError(f"{op}: output_shape must hold sensible sizes, got {shape_in.tolist()}")
    out_shape = tuple(int(v) for v in shape_in)
    if len(out_shape) != x.ndim:
        raise ValueError(f"{op}: output_shape must have {x.ndim} values, got {list(out_shape)}")
    if any(o < i for o, i in zip(out_shape, inferred)):
        raise ValueError(f"{op}: output_shape {list(out_shape)} must not be smaller than the inferred shape "
                         f"{list(inferred)}")
    geo.check_size(out_shape)
    geo.check_memory(out_shape, x.dtype.itemsize)
    res = np.zeros(out_shape, dtype=y.dtype)
    res[tuple(slice(0, v) for v in inferred)] = y
    return [res]


def _max_roi_pool(inputs, attrs):
    op = "MaxRoiPool"
    if "pooled_shape" not in attrs:
        raise ValueError(f"{op}: attribute pooled_shape is required")
    shape = _ints(op, "pooled_shape", attrs["pooled_shape"], 2)
    scale = _float(op, "spatial_scale", attrs.get("spatial_scale", 1.0))
    return [poolkit.roi_pool(np.asarray(inputs[0]), np.asarray(inputs[1]), tuple(shape), spatial_scale=scale)]


def _roi_align(inputs, attrs):
    op = "RoiAlign"
    ctm = _string(op, "coordinate_transformation_mode", attrs.get("coordinate_transformation_mode", "half_pixel"))
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise ValueError(f"{op}: coordinate_transformation_mode must be half_pixel or output_half_pixel, got {ctm!r}")
    mode = _string(op, "mode", attrs.get("mode", "avg"))
    if mode not in ("avg", "max"):
        raise ValueError(f"{op}: mode must be avg or max, got {mode!r}")
    oh = _int(op, "output_height", attrs.get("output_height", 1))
    ow = _int(op, "output_width", attrs.get("output_width", 1))
    ratio = _int(op, "sampling_ratio", attrs.get("sampling_ratio", 0))
    scale = _float(op, "spatial_scale", attrs.get("spatial_scale", 1.0))
    x, rois, batch_indices = (np.asarray(v) for v in inputs)
    return [poolkit.roi_align(x, rois, batch_indices, (oh, ow), spatial_scale=scale, sampling_ratio=ratio,
                              mode=mode, aligned=ctm == "half_pixel")]


def run(op_type, inputs, *, num_outputs=None, **attributes):
    """Evaluate one ONNX pooling node.

    Parameters
    ----------
    op_type : str
        ``"MaxPool"``, ``"AveragePool"``, ``"LpPool"``, ``"GlobalMaxPool"``,
        ``"GlobalAveragePool"``, ``"GlobalLpPool"``, ``"MaxUnpool"``, ``"MaxRoiPool"`` or
        ``"RoiAlign"``.
    inputs : sequence of ndarray
        The node's inputs in order (``[X]``; ``[X, I]`` or ``[X, I, output_shape]`` for
        MaxUnpool; ``[X, rois]`` for MaxRoiPool; ``[X, rois, batch_indices]`` for RoiAlign).
    num_outputs : int, optional
        How many outputs the node has: ``MaxPool`` computes ``Indices`` only when this is not 1.
    **attributes
        The node's attributes, as ONNX names and types them.

    Returns
    -------
    outputs : list of ndarray
        ``[Y]``, or ``[Y, Indices]`` for MaxPool (``Indices`` int64).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.compat.onnx import run
    >>> x = np.array([[[1., 3, 2, 5, 4]]], dtype=np.float32)
    >>> run("MaxPool", [x], kernel_shape=[2], strides=[2], ceil_mode=1)
    [array([[[3., 5., 4.]]], dtype=float32), array([[[1, 3, 4]]])]
    >>> run("LpPool", [x], kernel_shape=[2], p=1)[0]
    array([[[4., 5., 7., 9.]]], dtype=float32)
    """
    if op_type not in OPERATORS:
        raise ValueError(f"unsupported operator {op_type!r}; poolkit.compat.onnx runs {sorted(OPERATORS)}")
    unknown = set(attributes) - OPERATORS[op_type]
    if unknown:
        raise ValueError(f"{op_type} has no attribute(s) {sorted(unknown)}; it takes {sorted(OPERATORS[op_type])}")
    inputs = list(inputs)
    lo, hi = _N_INPUTS[op_type]
    while len(inputs) > lo and inputs[-1] is None:  # an omitted optional input
        inputs.pop()
    if not lo <= len(inputs) <= hi:
        raise ValueError(f"{op_type} takes {lo}" + (f" to {hi}" if hi != lo else "") + f" inputs, got {len(inputs)}")
    if num_outputs is not None and not (1 <= num_outputs <= (2 if op_type == "MaxPool" else 1)):
        raise ValueError(f"{op_type}: num_outputs={num_outputs} is not possible")
    if op_type == "MaxPool":
        return _max_pool(np.asarray(inputs[0]), attributes, num_outputs)
    if op_type == "AveragePool":
        return _average_pool(np.asarray(inputs[0]), attributes)
    if op_type == "LpPool":
        return _lp_pool(np.asarray(inputs[0]), attributes)
    if op_type.startswith("Global"):
        return _global(op_type, np.asarray(inputs[0]), attributes)
    if op_type == "MaxUnpool":
        return _max_unpool(inputs, attributes)
    if op_type == "MaxRoiPool":
        return _max_roi_pool(inputs, attributes)
    return _roi_align(inputs, attributes)
