"""Inputs shared by several test files.  Random inputs are drawn from a seed, so a failing example
reproduces."""

from __future__ import annotations

import numpy as np

#: the worked example of issue 2 and of the README: 2x2 max pooling gives [[9, 2], [6, 3]]
X44 = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 4, 2, 3], [5, 6, 1, 2]])


def random_input(seed, shape, kind="normal", dtype=np.float64, tie_values=(-2, 3)):
    """``(x, rng)``: ``x`` standard normal (``kind="normal"``), small integers from
    ``rng.integers(*tie_values)`` with many ties (``"ties"``), or standard normal with about a fifth
    NaN (``"nan"``), cast to ``dtype``; ``rng`` goes on to draw the test's other arrays."""
    rng = np.random.default_rng(seed)
    if kind == "ties":
        x = rng.integers(*tie_values, size=shape).astype(dtype)
    elif kind == "nan":
        x = rng.standard_normal(shape)
        x[rng.random(shape) < 0.2] = np.nan
        x = x.astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    return x, rng


def values_of(dtype, shape, rng):
    """Values over the whole range of ``dtype``: booleans (30 % True), any integer of an integer type
    (both extremes included), standard normal for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.3
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def distinct(shape, rng, scale=0.1):
    """Values spaced at least ``scale`` apart (no near ties: max gradients are well defined)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * scale


# ---------------------------------------------------------------------------------------------
# regions of interest on a (2, C, 6..7, 8..9) feature map (test_roi.py, peers/test_onnx.py)
# ---------------------------------------------------------------------------------------------

#: roi_pool's rois: (batch index, x1, y1, x2, y2) in input coordinates
ROIS5 = np.array([
    [0, 1.0, 1.0, 4.0, 3.0],
    [1, 0.0, 0.0, 7.0, 5.0],
    [1, 2.6, 3.4, 2.6, 3.4],      # rounds to a 1x1 region
    [0, 5.0, 4.0, 2.0, 1.0],      # malformed: forced to 1x1
    [0, -3.0, -2.0, 1.5, 2.5],    # partly outside
    [1, 6.0, 4.0, 12.0, 9.0],     # partly outside: empty bins
])

#: roi_align's rois (x1, y1, x2, y2) and their batch indices
ROIS4 = np.array([
    [0.3, 1.2, 6.1, 5.4],
    [-2.0, -1.0, 3.0, 2.0],
    [1.0, 1.0, 1.0, 1.0],      # empty when aligned
    [4.0, 4.0, 2.0, 1.0],      # negative size
    [0.0, 0.0, 30.0, 20.0],    # larger than the map
    [5.5, 3.25, 8.75, 6.5],
])
BATCH4 = np.array([0, 1, 1, 0, 1, 0])
