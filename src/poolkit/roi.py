"""ROI pooling: each region of interest of a batch of feature maps pooled to a fixed grid --
ROI max pooling (Fast R-CNN; ONNX ``MaxRoiPool``, torchvision ``roi_pool``) and ROI align (Mask
R-CNN; ONNX ``RoiAlign``), each with its ``*_backward``.

Arguments are validated here; the bins and bilinear sample tables come from
:mod:`poolkit._geometry` and the kernels from :mod:`poolkit._kernels.roi`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _engine as E
from . import _geometry as geo
from . import _kernels as K
from . import _validate as V
from ._validate import ArrayLike, Sizes

__all__ = ["roi_pool", "roi_pool_backward", "roi_align", "roi_align_backward"]

#: Most bilinear samples ROI align takes along one axis of one bin (``sampling_ratio=0`` takes
#: ``ceil(roi_size / output_size)``); a larger grid means absurd ROI coordinates.
MAX_SAMPLING_GRID = 2**16
#: Most bilinear samples ROI align takes for one roi (all its bins): the cost of a roi is bounded
#: (about 0.5 s for the largest).
MAX_ROI_SAMPLES = 2**24
#: ROI coordinates (after ``spatial_scale``) must lie within this magnitude.
MAX_ROI_COORD = 2.0**31


@dataclass(frozen=True)
class _RoiPool:
    """A validated ROI max pooling call: the map, each roi's image, and its bins' row and column
    ranges ((K, ph) and (K, pw) first and past-the-end positions)."""

    x: np.ndarray
    batch: np.ndarray
    hs: np.ndarray
    he: np.ndarray
    ws: np.ndarray
    we: np.ndarray
    pooled: tuple[int, int]


@dataclass(frozen=True)
class _RoiAlign:
    """A validated ROI align call: the map, each roi's image, the bilinear sample tables of its rows
    (gh samples per bin) and columns (gw), computed in ``dtype``, and the average's divisor."""

    x: np.ndarray
    batch: np.ndarray
    pooled: tuple[int, int]
    dtype: np.dtype
    gh: np.ndarray
    ytab: tuple
    gw: np.ndarray
    xtab: tuple
    count: np.ndarray
    is_max: bool

    def map(self) -> np.ndarray:
        """The feature maps as (N, C, H * W) in the compute dtype."""
        n, c, h, w = self.x.shape
        return np.ascontiguousarray(self.x, dtype=self.dtype).reshape(n, c, h * w)

    def kernel_args(self) -> tuple:
        """The kernels' arguments between the map and the output."""
        return (self.x.shape[3], self.batch, self.gh, *self.ytab, self.gw, *self.xtab, self.count, self.is_max,
                np.zeros(1, self.dtype))

    @property
    def samples(self) -> int:
        """The most samples per bin of any roi (a work estimate)."""
        return int(max(self.gh.max(initial=1), 1) * max(self.gw.max(initial=1), 1)) * 4


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
    rc = geo.round_half_away(coords).astype(np.int64)
    start_w, start_h, end_w, end_h = rc[:, 0], rc[:, 1], rc[:, 2], rc[:, 3]
    roi_w = np.maximum(end_w - start_w + 1, 1)
    roi_h = np.maximum(end_h - start_h + 1, 1)
    hs, he = geo.roi_pool_bins(start_h, roi_h, ph, h, T)
    ws, we = geo.roi_pool_bins(start_w, roi_w, pw, w, T)
    return _RoiPool(x, batch, hs, he, ws, we, (ph, pw))


def _roi_pool_run(r: _RoiPool) -> tuple[np.ndarray, np.ndarray]:
    """(out, arg): the maxima, and the flat h * W + w of each (-1 for an empty bin)."""
    c = r.x.shape[1]
    src = E.kernel_input(r.x)
    out = np.zeros((r.batch.shape[0], c) + r.pooled, dtype=src.dtype)
    arg = np.full(out.shape, -1, dtype=np.int64)
    if out.size:
        E.run(lambda t0, t1: K.roi.roi_pool_forward(src, r.batch, r.hs, r.he, r.ws, r.we, out, arg, t0, t1),
              out.shape[0] * c, out.size * 4)
    return E.from_kernel(out, r.x.dtype), arg


def roi_pool(x: ArrayLike, rois: ArrayLike, output_size: Sizes, spatial_scale: float = 1.0) -> np.ndarray:
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
    return _roi_pool_run(_roi_pool_setup(x, rois, output_size, spatial_scale))[0]


def roi_pool_backward(grad_output: ArrayLike, x: ArrayLike, rois: ArrayLike, output_size: Sizes,
                      spatial_scale: float = 1.0) -> np.ndarray:
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
    r = _roi_pool_setup(x, rois, output_size, spatial_scale)
    g = V.check_shape_of("grad_output", grad_output, (r.batch.shape[0], r.x.shape[1]) + r.pooled)
    _, arg = _roi_pool_run(r)
    gx = np.zeros(r.x.shape, dtype=np.float64)
    if gx.size:
        g64 = np.ascontiguousarray(g, dtype=np.float64)
        E.run(lambda c0, c1: K.roi.roi_pool_backward(g64, r.batch, arg, gx, c0, c1), r.x.shape[1], g.size + gx.size)
    return E.narrow(gx, E.float_dtype(r.x.dtype))


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
    ytab = geo.roi_align_samples(sh, bin_h, gh, ph, h, T)
    xtab = geo.roi_align_samples(sw, bin_w, gw, pw, w, T)
    count = np.maximum(gh * gw, 1).astype(T)
    return _RoiAlign(x, batch, (ph, pw), T, gh, ytab, gw, xtab, count, mode == "max")


def roi_align(x: ArrayLike, rois: ArrayLike, batch_indices: ArrayLike, output_size: Sizes, spatial_scale: float = 1.0,
              sampling_ratio: int = 0, mode: str = "avg", aligned: bool = True) -> np.ndarray:
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
    r = _roi_align_setup(x, rois, batch_indices, output_size, spatial_scale, sampling_ratio, mode, aligned)
    out = np.zeros((r.batch.shape[0], r.x.shape[1]) + r.pooled, dtype=r.dtype)
    if out.size:
        src, args = r.map(), r.kernel_args()
        E.run(lambda k0, k1: K.roi.roi_align_forward(src, *args, out, k0, k1), out.shape[0], out.size * r.samples)
    return E.narrow(out, E.float_dtype(r.x.dtype))


def roi_align_backward(grad_output: ArrayLike, x: ArrayLike, rois: ArrayLike, batch_indices: ArrayLike,
                       output_size: Sizes, spatial_scale: float = 1.0, sampling_ratio: int = 0, mode: str = "avg",
                       aligned: bool = True) -> np.ndarray:
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
    r = _roi_align_setup(x, rois, batch_indices, output_size, spatial_scale, sampling_ratio, mode, aligned)
    n, c, h, w = r.x.shape
    g = V.check_shape_of("grad_output", grad_output, (r.batch.shape[0], c) + r.pooled)
    gx = np.zeros((n, c, h * w), dtype=np.float64)
    if gx.size and g.size:
        src, args = r.map(), r.kernel_args()
        g64 = np.ascontiguousarray(g, dtype=np.float64)
        E.run(lambda c0, c1: K.roi.roi_align_backward(g64, src, *args, gx, c0, c1), c, g.size * r.samples)
    return E.narrow(gx.reshape(r.x.shape), E.float_dtype(r.x.dtype))
