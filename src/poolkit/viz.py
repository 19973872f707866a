"""Pictures of pooling, drawn from the engine's own numbers.

Two pictures, as the tutorials draw them:

* the **feature-extraction figure** (:func:`feature_figure`): an image, a convolution kernel, the
  filtered image, the detected features (ReLU) and the condensed map (max pooling) next to its
  average-pooling counterpart -- the three steps of a convolutional block;
* the **sliding-window animation** (:func:`save_pool_gif`): a pooling window walking over a small
  matrix, the current window highlighted and the output filling in, one frame per window.

:func:`explain_pooling` is the step-by-step account both ``poolkit explain`` and the animation
are made from: every window's cells and position (geometry computed here, for display) and its
result (taken from the engine).

matplotlib and pillow (the ``plot`` extra) are imported inside the functions that draw, so this
module imports with NumPy alone.  Figures written to files are drawn on the Agg canvas and never
touch pyplot, so no display is needed.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import poolkit as _pk

__all__ = [
    "FILTERS",
    "OPS",
    "sample_image",
    "load_image",
    "get_filter",
    "convolve2d",
    "feature_stages",
    "feature_figure",
    "save_figure",
    "explain_pooling",
    "Explanation",
    "Window",
    "animation_figure",
    "save_pool_gif",
    "format_number",
]

#: The pooling operations the pictures know.
OPS = ("max", "avg", "lp")

#: Named 3x3 convolution kernels (the ones the Kaggle computer-vision course uses).
FILTERS = {
    "edge": ((-1, -1, -1), (-1, 8, -1), (-1, -1, -1)),
    "sobel-x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel-y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
}

#: More windows than this make an unreadable animation.
MAX_GIF_FRAMES = 400

_OP_NAMES = {"max": "max pool", "avg": "average pool", "lp": "Lp pool"}


# ---------------------------------------------------------------------------------------------
# numbers as people read them
# ---------------------------------------------------------------------------------------------


def format_number(v, digits: int = 6) -> str:
    """A number the way a person writes it: ``4`` not ``4.0``, ``3.75``, ``0.333333``.

    Examples
    --------
    >>> from poolkit.viz import format_number
    >>> format_number(4.0), format_number(3.75), format_number(1 / 3), format_number(-0.0)
    ('4', '3.75', '0.333333', '0')
    """
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


def _shape_str(shape, sep: str = "×") -> str:
    return sep.join(str(int(s)) for s in shape)


def _size_label(shape) -> str:
    return f"of length {shape[0]}" if len(shape) == 1 else _shape_str(shape)


def _pos(coord) -> str:
    """An input or output position: ``3`` in 1-D, ``(1, 2)`` in 2-D."""
    return str(coord[0]) if len(coord) == 1 else "(" + ", ".join(str(c) for c in coord) + ")"


# ---------------------------------------------------------------------------------------------
# images and filters
# ---------------------------------------------------------------------------------------------


def sample_image(size: int = 128) -> np.ndarray:
    """A small grayscale scene (a house, a tree and the sun), drawn procedurally.

    Hard-edged shapes of different brightness on a smooth sky, so an edge filter has something
    to find.  Nothing is downloaded or read from disk.

    Parameters
    ----------
    size : int, optional
        Side length in pixels (at least 16).

    Returns
    -------
    image : (size, size) ndarray of float64
        Brightness in ``[0, 1]``.

    Examples
    --------
    >>> from poolkit.viz import sample_image
    >>> img = sample_image()
    >>> img.shape, img.dtype, bool(0 <= img.min() < img.max() <= 1)
    ((128, 128), dtype('float64'), True)
    """
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    img = 0.78 - 0.25 * y  # sky, brighter towards the top
    img = np.where((x - 0.84) ** 2 + (y - 0.15) ** 2 < 0.09**2, 0.98, img)  # sun
    ground = y > 0.8
    img = np.where(ground, 0.32 + 0.06 * (np.floor(x * 16) % 2), img)  # ploughed field
    img = np.where((np.abs(x - 0.82) < 0.025) & (y > 0.55) & (y <= 0.8), 0.25, img)  # trunk
    img = np.where((x - 0.82) ** 2 + (y - 0.47) ** 2 < 0.12**2, 0.5, img)  # crown
    body = (x > 0.14) & (x < 0.62) & (y > 0.46) & (y <= 0.8)
    img = np.where(body, 0.62, img)
    roof = (y > 0.2) & (y <= 0.46) & (np.abs(x - 0.38) < (y - 0.2) / 0.26 * 0.3)
    img = np.where(roof, 0.16, img)
    img = np.where((x > 0.33) & (x < 0.44) & (y > 0.6) & (y <= 0.8), 0.1, img)  # door
    for x0 in (0.19, 0.5):  # windows
        img = np.where((x > x0) & (x < x0 + 0.08) & (y > 0.53) & (y < 0.63), 0.95, img)
    return np.clip(img, 0.0, 1.0)


def load_image(path, max_side: int | None = 256) -> np.ndarray:
    """Read a PNG/JPEG (anything pillow reads) as a grayscale float image in ``[0, 1]``.

    Parameters
    ----------
    path : str or path-like
        The image file.
    max_side : int or None, optional
        Shrink the image (keeping its aspect) so that its longer side is at most this many
        pixels; ``None`` or 0 keeps the full size.

    Returns
    -------
    image : (H, W) ndarray of float64
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("L")
        if max_side and max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.float64) / 255.0


def get_filter(name: str) -> np.ndarray:
    """One of the named kernels of :data:`FILTERS` as a float64 array.

    Examples
    --------
    >>> from poolkit.viz import get_filter
    >>> get_filter("sobel-x")
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    """
    try:
        return np.array(FILTERS[name], dtype=np.float64)
    except KeyError:
        raise ValueError(f"unknown filter {name!r}; choose one of {', '.join(FILTERS)}") from None


def convolve2d(image, kernel) -> np.ndarray:
    """The "convolution" of a CNN layer: slide ``kernel`` over ``image`` without flipping it.

    This is cross-correlation with no padding ("valid"), as ``tf.nn.conv2d`` and
    ``torch.nn.functional.conv2d`` compute it: ``out[i, j] = sum(image[i:i+kh, j:j+kw] * kernel)``.

    Parameters
    ----------
    image : (H, W) array_like
    kernel : (kh, kw) array_like
        No larger than ``image``.

    Returns
    -------
    out : (H - kh + 1, W - kw + 1) ndarray of float64

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.viz import convolve2d
    >>> convolve2d(np.arange(16.).reshape(4, 4), [[1, 0], [0, -1]])
    array([[-5., -5., -5.],
           [-5., -5., -5.],
           [-5., -5., -5.]])
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"convolve2d needs a 2-D image and a 2-D kernel, got shapes {image.shape} and {kernel.shape}")
    if kernel.size == 0 or kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        raise ValueError(f"the filter ({_shape_str(kernel.shape, 'x')}) must be non-empty and no larger than the image "
                         f"({_shape_str(image.shape, 'x')})")
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape)
    return np.einsum("ijkl,kl->ij", windows, kernel)


def _pool(op: str, x, kernel_size, stride, p=2.0):
    if op == "max":
        return _pk.max_pool(x, kernel_size, stride)
    if op == "avg":
        return _pk.avg_pool(x, kernel_size, stride)
    if op == "lp":
        return _pk.lp_pool(x, p, kernel_size, stride)
    raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")


def feature_stages(image, kernel, *, pool_kernel=(2, 2), stride=None, ops=("max", "avg")) -> dict:
    """The arrays of the feature-extraction pipeline: filter, detect, condense.

    Parameters
    ----------
    image : (H, W) array_like
        Grayscale image.
    kernel : (kh, kw) array_like
        The convolution kernel of the filter step.
    pool_kernel : int or (int, int), optional
        The pooling window of the condense step.
    stride : int or (int, int), optional
        The pooling stride; defaults to ``pool_kernel``.
    ops : sequence of {"max", "avg", "lp"}, optional
        The condense steps to compute (``"lp"`` is the 2-norm).

    Returns
    -------
    stages : dict of ndarray
        ``"image"``, ``"kernel"``, ``"filter"`` (:func:`convolve2d`), ``"detect"`` (ReLU of the
        filter) and one entry per op (the engine's pooling of ``"detect"``).

    Examples
    --------
    >>> from poolkit.viz import feature_stages, sample_image, get_filter
    >>> st = feature_stages(sample_image(), get_filter("edge"))
    >>> {name: a.shape for name, a in st.items()}
    {'image': (128, 128), 'kernel': (3, 3), 'filter': (126, 126), 'detect': (126, 126), 'max': (63, 63), 'avg': (63, 63)}
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    pool_kernel = _pair(pool_kernel, "pool_kernel")
    stride = None if stride is None else _pair(stride, "stride")
    ops = tuple(ops)
    for op in ops:
        if op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    filtered = convolve2d(image, kernel)
    detected = np.maximum(filtered, 0.0)
    stages = {"image": image, "kernel": kernel, "filter": filtered, "detect": detected}
    for op in ops:
        stages[op] = _pool(op, detected, pool_kernel, stride)
    return stages


def _pair(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return (int(v), int(v))
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t


# ---------------------------------------------------------------------------------------------
# matplotlib plumbing
# ---------------------------------------------------------------------------------------------


def display_available() -> bool:
    """Whether a window can be opened (a display on Linux; always on macOS and Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _new_figure(figsize, interactive: bool = False):
    """A Figure on the Agg canvas, or -- to show on screen -- a pyplot figure."""
    if interactive:
        import matplotlib

        if not display_available():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (format from the extension: png, pdf, svg, jpg...)."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise OSError(f"directory {str(path.parent)!r} does not exist")
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


# ---------------------------------------------------------------------------------------------
# the feature-extraction figure
# ---------------------------------------------------------------------------------------------


def feature_figure(image, kernel, *, kernel_name: str | None = None, pool_kernel=(2, 2), stride=None,
                   ops=("max", "avg"), title: str | None = None, interactive: bool = False):
    """Draw image → filter → detect → condense, with max and average pooling side by side.

    One row of panels, as the Kaggle computer-vision lessons draw it: the image, the kernel
    (its numbers written in), the filtered image (blue negative, red positive), the detected
    features (ReLU) and one condensed map per op.  Every title gives the step, the operation
    with its parameters and the array's shape.  The detect and condense panels share one colour
    scale, so you can see that max pooling keeps the strongest activations while averaging
    dilutes them.

    Parameters
    ----------
    image, kernel, pool_kernel, stride, ops
        As in :func:`feature_stages`.
    kernel_name : str, optional
        A name for the kernel panel (``"edge"``).
    title : str, optional
        The figure's title.
    interactive : bool, optional
        Create the figure with pyplot (to show it on screen) instead of the Agg canvas.

    Returns
    -------
    fig : matplotlib.figure.Figure
        ``4 + len(ops)`` axes, left to right; each image panel's ``images[0]`` holds exactly the
        array it shows.
    stages : dict of ndarray
        The arrays drawn, from :func:`feature_stages`.

    Examples
    --------
    >>> from poolkit.viz import feature_figure, sample_image, get_filter
    >>> fig, stages = feature_figure(sample_image(), get_filter("edge"), kernel_name="edge")
    >>> [ax.get_title().splitlines()[0] for ax in fig.axes]
    ['1. Image', 'Kernel (edge)', '2. Filter', '3. Detect', '4. Condense', '4. Condense']
    """
    stages = feature_stages(image, kernel, pool_kernel=pool_kernel, stride=stride, ops=ops)
    pk = _pair(pool_kernel, "pool_kernel")
    st = pk if stride is None else _pair(stride, "stride")
    ops = tuple(ops)

    n = 4 + len(ops)
    ratios = [1.0, 0.62, 1.0, 1.0] + [1.0] * len(ops)
    fig = _new_figure((2.75 * sum(ratios) + 0.4, 3.95), interactive)
    axes = fig.subplots(1, n, gridspec_kw={"width_ratios": ratios, "wspace": 0.12,
                                           "left": 0.01, "right": 0.99, "top": 0.74, "bottom": 0.1})
    img, ker, filt, det = stages["image"], stages["kernel"], stages["filter"], stages["detect"]
    kh, kw = ker.shape

    def panel(ax, data, heading, detail, **kw):
        ax.imshow(data, interpolation="nearest", **kw)
        ax.set_title(f"{heading}\n{detail}\n{_shape_str(data.shape)}", fontsize=10.5)
        ax.set_xticks([])
        ax.set_yticks([])

    panel(axes[0], img, "1. Image", "grayscale input", cmap="gray", vmin=0.0, vmax=max(1.0, float(img.max())))

    bound = float(np.abs(ker).max()) or 1.0
    axk = axes[1]
    panel(axk, ker, f"Kernel ({kernel_name})" if kernel_name else "Kernel", "the filter's weights",
          cmap="RdBu_r", vmin=-bound, vmax=bound)
    if ker.size <= 49:
        for (i, j), v in np.ndenumerate(ker):
            axk.text(j, i, format_number(v, 3), ha="center", va="center", fontsize=12 if ker.size <= 9 else 8,
                     color="white" if abs(v) > 0.6 * bound else "black")

    fb = float(np.abs(filt).max()) or 1.0
    panel(axes[2], filt, "2. Filter", f"convolution {kh}×{kw}, valid", cmap="RdBu_r", vmin=-fb, vmax=fb)
    top = float(det.max()) or 1.0
    panel(axes[3], det, "3. Detect", "ReLU: max(0, x)", cmap="magma", vmin=0.0, vmax=top)
    stride_text = f"stride {st[0]}" if st[0] == st[1] else f"stride {st[0]}×{st[1]}"
    for ax, op in zip(axes[4:], ops):
        data = stages[op]
        panel(ax, data, "4. Condense", f"{_OP_NAMES[op]} {pk[0]}×{pk[1]}, {stride_text}",
              cmap="magma", vmin=0.0, vmax=top)
        ax.set_xlabel(f"peak {format_number(data.max(), 3)}, mean {format_number(data.mean(), 3)}", fontsize=9)
    axes[3].set_xlabel(f"peak {format_number(det.max(), 3)}, mean {format_number(det.mean(), 3)}", fontsize=9)
    fig.suptitle(title or "Feature extraction: filter → detect → condense", fontsize=13, y=0.97)
    return fig, stages


# ---------------------------------------------------------------------------------------------
# explaining a pooling, window by window
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One pooling window, for display.

    Attributes
    ----------
    index : tuple of int
        The output position this window produces.
    taps : tuple of tuple of int
        Per axis, the input coordinates the window covers (negative or past the end: padding).
    cells : tuple of tuple of int
        Every cell of the window, row-major.
    regions : tuple of str
        For each cell: ``"input"``, ``"pad"`` (inside the padding) or ``"outside"`` (past the
        padding, the overhang of a ceil-mode window).
    values : tuple
        For each cell, its value in the input, or None outside the input.
    result : number
        The engine's output at ``index``.
    argmax : tuple of int or None
        Max pooling: where the engine found the maximum.
    formula : str
        How the result comes from the cells.
    grad : float or None
        With ``backward``: ``grad_output[index]``.
    grad_to : tuple of (tuple of int, float)
        With ``backward``: the input cells this window's gradient goes to, and how much.
    divisor : int or None
        Average pooling: the number the window's sum is divided by.
    """

    index: tuple
    taps: tuple
    cells: tuple
    regions: tuple
    values: tuple
    result: object
    argmax: tuple | None
    formula: str
    grad: float | None = None
    grad_to: tuple = ()
    divisor: int | None = None


@dataclass(frozen=True)
class Explanation:
    """A pooling laid out window by window: see :func:`explain_pooling`."""

    op: str
    x: np.ndarray
    kernel_size: tuple
    stride: tuple
    padding: object
    pads: tuple
    dilation: tuple
    ceil_mode: bool
    p: float
    count_include_pad: bool
    output: np.ndarray
    windows: tuple
    size_rules: tuple
    grad_output: np.ndarray | None = None
    grad_input: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    @property
    def backward(self) -> bool:
        return self.grad_input is not None

    def gradient_from_windows(self) -> np.ndarray:
        """The sum of every window's ``grad_to`` -- what the engine's backward must equal."""
        g = np.zeros(self.x.shape, dtype=np.float64)
        for w in self.windows:
            for cell, amount in w.grad_to:
                g[cell] += amount
        return g


def _as_tuple(v, n, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return (int(v),) * n
    try:
        t = tuple(int(a) for a in v)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {v!r}") from None
    if len(t) != n:
        raise ValueError(f"{name} needs {n} value{'s' if n > 1 else ''} for a {n}-D input, got {v!r}")
    return t


def _size_rule(n, k, s, d, pb, pa, ceil, out) -> str:
    eff = d * (k - 1) + 1
    rnd = "ceil" if ceil else "floor"
    span = n + pb + pa - eff
    raw = (-(-span // s) if ceil else span // s) + 1
    text = f"{rnd}(({n} + {pb} + {pa} - {eff}) / {s}) + 1 = {raw}"
    if ceil and raw != out:
        text += f", less the last window (it would start in the right padding) = {out}"
    elif raw != out:  # never expected; the engine's size is the truth
        text += f" (engine: {out})"
    return text


def explain_pooling(x, op, kernel_size, stride=None, padding=0, *, dilation=1, ceil_mode=False, p=2.0,
                    count_include_pad=True, backward=False, grad_output=None, max_windows=None) -> Explanation:
    """Lay a pooling of a 1-D or 2-D array out window by window, results from the engine.

    The position and cells of each window are computed here from the engine's
    :func:`poolkit.resolve_padding` and :func:`poolkit.output_shape` with the stride and
    dilation arithmetic (window ``o`` covers ``o * stride - pad_before + j * dilation``); every
    result and gradient is the engine's.

    Parameters
    ----------
    x : (n,) or (h, w) array_like
        The matrix.
    op : {"max", "avg", "lp"}
    kernel_size, stride, padding, dilation, ceil_mode
        As in :func:`poolkit.max_pool`; ints are broadcast over the axes of ``x``.
    p : float, optional
        The norm's order for ``op="lp"``.
    count_include_pad : bool, optional
        For ``op="avg"``.
    backward : bool, optional
        Also run the backward pass and say where each window's gradient goes.
    grad_output : array_like, optional
        The incoming gradient; by default ``1, 2, ..., n`` in output order, so every window's
        share can be traced.
    max_windows : int, optional
        Refuse (ValueError) to explain more windows than this.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> from poolkit.viz import explain_pooling
    >>> ex = explain_pooling([[1, 3, 2, 1], [2, 9, 1, 1], [1, 4, 2, 3], [5, 6, 1, 2]], "max", 2, 2)
    >>> [w.formula for w in ex.windows]
    ['max(1, 3, 2, 9) = 9 at (1, 1)', 'max(2, 1, 1, 1) = 2 at (0, 2)', 'max(1, 4, 5, 6) = 6 at (3, 1)', 'max(2, 3, 1, 2) = 3 at (2, 3)']
    >>> ex.output
    array([[9, 2],
           [6, 3]])
    """
    x = np.asarray(x)
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"the matrix must hold real numbers, got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(f"explain takes a 1-D or 2-D matrix, got {x.ndim}-D (shape {x.shape})")
    nd = x.ndim
    k = _as_tuple(kernel_size, nd, "kernel_size")
    s = k if stride is None else _as_tuple(stride, nd, "stride")
    d = _as_tuple(dilation, nd, "dilation")
    ceil_mode = bool(ceil_mode)
    geo = dict(dilation=d, ceil_mode=ceil_mode)
    out_shape = _pk.output_shape(x.shape, k, s, padding, **geo)
    n_windows = math.prod(out_shape)
    if max_windows is not None and n_windows > max_windows:
        raise ValueError(f"this pooling has {n_windows} windows, more than the {max_windows} explain shows; "
                         "use a smaller matrix or a larger stride")
    pads = tuple(tuple(int(v) for v in pair) for pair in _pk.resolve_padding(x.shape, k, s, padding, **geo))
    p = float(p)

    idx = None
    if op == "max":
        out, idx = _pk.max_pool(x, k, s, padding, return_indices=True, **geo)
    elif op == "avg":
        out = _pk.avg_pool(x, k, s, padding, count_include_pad=count_include_pad, **geo)
    else:
        out = _pk.lp_pool(x, p, k, s, padding, **geo)

    g = gin = None
    if backward:
        g = (np.arange(1, n_windows + 1, dtype=np.float64).reshape(out_shape) if grad_output is None
             else np.asarray(grad_output))
        if g.shape != tuple(out_shape):
            raise ValueError(f"the gradient must have the output's shape {tuple(out_shape)}, got {g.shape}")
        if op == "max":
            gin = _pk.max_pool_backward(g, x, k, s, padding, indices=idx, **geo)
        elif op == "avg":
            gin = _pk.avg_pool_backward(g, x, k, s, padding, count_include_pad=count_include_pad, **geo)
        else:
            gin = _pk.lp_pool_backward(g, x, p, k, s, padding, **geo)

    windows = []
    for o in np.ndindex(*out_shape):
        taps = tuple(tuple(o[a] * s[a] - pads[a][0] + j * d[a] for j in range(k[a])) for a in range(nd))
        cells = tuple(itertools.product(*taps))
        regions, values = [], []
        for c in cells:
            if all(0 <= c[a] < x.shape[a] for a in range(nd)):
                regions.append("input")
                values.append(x[c].item())
            elif all(-pads[a][0] <= c[a] < x.shape[a] + pads[a][1] for a in range(nd)):
                regions.append("pad")
                values.append(None)
            else:
                regions.append("outside")
                values.append(None)
        result = out[o].item()
        inside = [(c, v) for c, v, r in zip(cells, values, regions) if r == "input"]
        n_pad = regions.count("pad")
        argmax = divisor = None
        grad = None if g is None else float(g[o])
        grad_to = ()
        if op == "max":
            argmax = tuple(int(i) for i in np.unravel_index(int(idx[o]), x.shape))
            if len(cells) <= 16:
                formula = f"max({', '.join(format_number(v) for _, v in inside)})"
            else:
                formula = f"max of {len(inside)} cells"
            formula += f" = {format_number(result)} at {_pos(argmax)}"
            if n_pad:
                formula += f"; {n_pad} padding cell{'s' if n_pad > 1 else ''} never win{'s' if n_pad == 1 else ''}"
            if grad is not None:
                grad_to = ((argmax, grad),)
        elif op == "avg":
            counted = [(c, v, r) for c, v, r in zip(cells, values, regions)
                       if r == "input" or (r == "pad" and count_include_pad)]
            divisor = len(counted)
            if len(cells) <= 16:
                terms = " + ".join(format_number(0 if v is None else v) for _, v, _ in counted)
                formula = f"({terms}) / {divisor} = {format_number(result)}"
            else:
                total = sum(v for _, v in inside)
                formula = f"sum of {len(inside)} cells {format_number(total)} / {divisor} = {format_number(result)}"
            if n_pad:
                formula += ("; padding counts as 0" if count_include_pad else "; padding is not counted")
            if grad is not None:
                share = grad / divisor
                grad_to = tuple((c, share) for c, _ in inside)
        else:
            ptxt = format_number(p)
            if len(cells) <= 16:
                terms = " + ".join(f"|{format_number(v)}|^{ptxt}" for _, v in inside)
                formula = f"({terms})^(1/{ptxt}) = {format_number(result)}"
            else:
                formula = f"(sum of |x|^{ptxt} over {len(inside)} cells)^(1/{ptxt}) = {format_number(result)}"
            if n_pad:
                formula += "; padding counts as 0"
            if grad is not None and result > 0:
                y = float(result)
                parts = []
                for c, v in inside:
                    v = float(v)
                    local = 0.0 if v == 0 else math.copysign(abs(v) ** (p - 1.0), v)
                    parts.append((c, grad * local * y ** (1.0 - p)))
                grad_to = tuple(parts)
        windows.append(Window(index=tuple(int(i) for i in o), taps=taps, cells=cells, regions=tuple(regions),
                              values=tuple(values), result=result, argmax=argmax, formula=formula,
                              grad=grad, grad_to=grad_to, divisor=divisor))

    rules = tuple(_size_rule(x.shape[a], k[a], s[a], d[a], pads[a][0], pads[a][1], ceil_mode, out_shape[a])
                  for a in range(nd))
    return Explanation(op=op, x=x, kernel_size=k, stride=s, padding=padding, pads=pads, dilation=d,
                       ceil_mode=ceil_mode, p=p, count_include_pad=bool(count_include_pad), output=out,
                       windows=tuple(windows), size_rules=rules, grad_output=g, grad_input=gin)


def describe_gradient(ex: Explanation, w: Window) -> str:
    """Where window ``w``'s gradient goes, in words (empty without ``backward``)."""
    if w.grad is None:
        return ""
    gtxt = format_number(w.grad)
    if not w.grad_to:
        return f"gradient {gtxt} goes nowhere (the window's norm is 0)"
    if ex.op == "max":
        return f"gradient {gtxt} -> {_pos(w.argmax)} (all of it goes to the maximum)"
    if ex.op == "avg":
        where = ", ".join(_pos(c) for c, _ in w.grad_to)
        return f"gradient {gtxt} / {w.divisor} = {format_number(w.grad_to[0][1])} -> each of {where}"
    where = ", ".join(f"{_pos(c)}: {format_number(a, 4)}" for c, a in w.grad_to)
    return f"gradient {gtxt} * sign(x)*|x|^(p-1) / y^(p-1) -> {where}"


# ---------------------------------------------------------------------------------------------
# the sliding-window animation
# ---------------------------------------------------------------------------------------------

_WINDOW = "#ffe082"  # amber: the current window
_WINNER = "#ff8a65"  # orange: the cell that wins a max / takes the gradient
_EDGE = "#e65100"
_DONE = "#bbdefb"  # pale blue: output cells already computed
_PAD = "#eeeeee"


class _PoolAnimation:
    """One Figure redrawn for each window: input grid (with padding), output grid, gradient grid."""

    def __init__(self, ex: Explanation):
        from matplotlib.patches import Rectangle

        self._Rectangle = Rectangle
        self.ex = ex
        x = ex.x if ex.x.ndim == 2 else ex.x.reshape(1, -1)
        self.x2 = x
        self.two_d = ex.x.ndim == 2
        out = ex.output if self.two_d else ex.output.reshape(1, -1)
        self.out2 = out
        pads = ex.pads if self.two_d else ((0, 0),) + ex.pads
        # the drawn input grid: padding plus any ceil-mode overhang
        lo = [-pads[a][0] for a in range(2)]
        hi = [x.shape[a] + pads[a][1] for a in range(2)]
        for w in ex.windows:
            for c in w.cells:
                c2 = self._c2(c)
                hi = [max(hi[a], c2[a] + 1) for a in range(2)]
        self.lo, self.hi = lo, hi
        self.pads = pads
        in_rows, in_cols = hi[0] - lo[0], hi[1] - lo[1]
        panels = [(in_rows, in_cols), out.shape] + ([x.shape] if ex.backward else [])
        total_cols = sum(c for _, c in panels)
        max_rows = max(r for r, _ in panels)
        cell = min(0.6, 10.0 / total_cols, 6.0 / max_rows)
        gap, margin, top, bottom = 0.9, 0.35, 0.95, 0.75
        width = max(2 * margin + cell * total_cols + gap * (len(panels) - 1), 7.0)
        height = top + bottom + cell * max_rows
        self.fig = fig = _new_figure((width, height))
        left = (width - (cell * total_cols + gap * (len(panels) - 1))) / 2
        self.axes = []
        for r, c in panels:
            y0 = bottom + (max_rows - r) * cell / 2
            ax = fig.add_axes((left / width, y0 / height, c * cell / width, r * cell / height))
            ax.set_axis_off()
            self.axes.append(ax)
            left += c * cell + gap
        for ax_a, ax_b in zip(self.axes, self.axes[1:]):
            b0, b1 = ax_a.get_position(), ax_b.get_position()
            fig.text((b0.x1 + b1.x0) / 2, (b0.y0 + b0.y1) / 2, "→", ha="center", va="center", fontsize=22,
                     color="#616161")
        labels = [format_number(v, 4) for v in ex.output.ravel()] + [format_number(v, 4) for v in x.ravel()]
        if ex.backward:
            labels += [format_number(v, 4) for v in ex.grad_input.ravel()]
        longest = max([len(t) for t in labels] + [2])
        self.fs = max(5.0, min(14.0, cell * 72 * 0.85 / (0.62 * longest)))
        self.cell_in = cell
        self._build()
        self.transient = []

    def _c2(self, c):
        return tuple(c) if self.two_d else (0,) + tuple(c)

    def _grid(self, ax, rows, cols, r0=0, c0=0):
        ax.set_xlim(c0 - 0.5, c0 + cols - 0.5)
        ax.set_ylim(r0 + rows - 0.5, r0 - 0.5)
        patches, texts = {}, {}
        for r in range(r0, r0 + rows):
            for c in range(c0, c0 + cols):
                rect = self._Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="white", edgecolor="#9e9e9e", lw=1)
                ax.add_patch(rect)
                patches[(r, c)] = rect
                texts[(r, c)] = ax.text(c, r, "", ha="center", va="center", fontsize=self.fs)
        return patches, texts

    def _build(self):
        ex, x = self.ex, self.x2
        ax_in, ax_out = self.axes[0], self.axes[1]
        op = _OP_NAMES[ex.op] + (f" (p={format_number(ex.p)})" if ex.op == "lp" else "")
        kd = f"kernel {_shape_str(ex.kernel_size)}, stride {_shape_str(ex.stride)}"
        if any(v != 1 for v in ex.dilation):
            kd += f", dilation {_shape_str(ex.dilation)}"
        if any(v for pair in ex.pads for v in pair):
            kd += ", padding " + " ".join(f"({a}, {b})" for a, b in ex.pads)
        if ex.ceil_mode:
            kd += ", ceil mode"
        self.heading = f"{op}: {kd}"
        rows, cols = self.hi[0] - self.lo[0], self.hi[1] - self.lo[1]
        self.in_patches, in_texts = self._grid(ax_in, rows, cols, self.lo[0], self.lo[1])
        pad_label = "−∞" if ex.op == "max" else "0"
        for (r, c), rect in self.in_patches.items():
            t = in_texts[(r, c)]
            if 0 <= r < x.shape[0] and 0 <= c < x.shape[1]:
                t.set_text(format_number(x[r, c], 4))
            elif r < x.shape[0] + self.pads[0][1] and c < x.shape[1] + self.pads[1][1]:
                rect.set_facecolor(_PAD)
                t.set_text(pad_label)
                t.set_color("#9e9e9e")
                t.set_fontstyle("italic")
            else:
                rect.set_facecolor("white")
                rect.set_hatch("///")
                rect.set_edgecolor("#bdbdbd")
        self.in_base = {key: rect.get_facecolor() for key, rect in self.in_patches.items()}
        ax_in.add_patch(self._Rectangle((-0.5, -0.5), x.shape[1], x.shape[0], fill=False, edgecolor="black", lw=2))
        ax_in.set_title(f"input {_size_label(ex.x.shape)}" + (" (grey: padding)" if any(v for pr in ex.pads for v in pr) else ""),
                        fontsize=11)
        self.out_patches, self.out_texts = self._grid(ax_out, *self.out2.shape)
        ax_out.add_patch(self._Rectangle((-0.5, -0.5), self.out2.shape[1], self.out2.shape[0], fill=False,
                                         edgecolor="black", lw=2))
        fn = {"max": "max_pool", "avg": "avg_pool", "lp": "lp_pool"}[ex.op]
        ax_out.set_title(f"output {_size_label(ex.output.shape)} ({fn})", fontsize=11)
        if ex.backward:
            ax_g = self.axes[2]
            self.g_patches, self.g_texts = self._grid(ax_g, *x.shape)
            ax_g.add_patch(self._Rectangle((-0.5, -0.5), x.shape[1], x.shape[0], fill=False, edgecolor="black", lw=2))
            ax_g.set_title(f"gradient of the input {_size_label(ex.x.shape)}", fontsize=11)
        self.title = self.fig.text(0.5, 1 - 0.3 / self.fig.get_figheight(), "", ha="center", va="center",
                                   fontsize=13, weight="bold")
        self.caption = self.fig.text(0.5, 0.42 / self.fig.get_figheight(), "", ha="center", va="center",
                                     fontsize=11, wrap=True)
        self.caption2 = self.fig.text(0.5, 0.16 / self.fig.get_figheight(), "", ha="center", va="center",
                                      fontsize=10, color="#424242")

    def update(self, step: int):
        ex = self.ex
        for a in self.transient:
            a.remove()
        self.transient = []
        w = ex.windows[step]
        for key, rect in self.in_patches.items():
            rect.set_facecolor(self.in_base[key])
        ax_in = self.axes[0]
        for c, region in zip(w.cells, w.regions):
            r2, c2 = self._c2(c)
            winner = ex.op == "max" and w.argmax is not None and tuple(c) == w.argmax
            self.in_patches[(r2, c2)].set_facecolor(_WINNER if winner else _WINDOW)
            hl = self._Rectangle((c2 - 0.5, r2 - 0.5), 1, 1, fill=False, edgecolor=_EDGE, lw=2.5, zorder=5,
                                 clip_on=False)
            ax_in.add_patch(hl)
            self.transient.append(hl)
        # the output so far
        for i, win in enumerate(ex.windows):
            key = self._c2(win.index)
            rect, text = self.out_patches[key], self.out_texts[key]
            if i < step:
                rect.set_facecolor(_DONE)
                text.set_text(format_number(win.result, 4))
            elif i == step:
                rect.set_facecolor(_WINDOW)
                text.set_text(format_number(win.result, 4))
            else:
                rect.set_facecolor("white")
                text.set_text("")
        r, c = self._c2(w.index)
        hl = self._Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=_EDGE, lw=2.5, zorder=5,
                                 clip_on=False)
        self.axes[1].add_patch(hl)
        self.transient.append(hl)
        last = step == len(ex.windows) - 1
        if ex.backward:
            if last:
                acc = np.asarray(ex.grad_input, dtype=np.float64).reshape(self.x2.shape)
            else:
                acc = np.zeros(self.x2.shape)
                for win in ex.windows[: step + 1]:
                    for cell, amount in win.grad_to:
                        acc[self._c2(cell)] += amount
            touched = {self._c2(cell) for cell, _ in w.grad_to}
            for key, rect in self.g_patches.items():
                rect.set_facecolor(_WINNER if key in touched else "white")
                v = acc[key]
                self.g_texts[key].set_text(format_number(v, 4))
                self.g_texts[key].set_color("black" if v != 0 else "#bdbdbd")
        n = len(ex.windows)
        self.title.set_text(f"{self.heading} — window {step + 1} of {n}")
        self.caption.set_text(f"window {_pos(w.index)}: {w.formula}")
        self.caption2.set_text(describe_gradient(ex, w) if ex.backward else "")
        return self.fig

    def frame(self, step: int):
        from PIL import Image

        self.update(step)
        self.fig.canvas.draw()
        rgba = np.asarray(self.fig.canvas.buffer_rgba())
        return Image.fromarray(np.ascontiguousarray(rgba[..., :3]))


def animation_figure(ex: Explanation, step: int = -1):
    """The animation's frame for window ``step`` (default: the last) as a matplotlib Figure.

    Its axes are, left to right: the input (padding in grey, the window in amber, a max's
    winner in orange), the output filled in up to this window, and -- with ``backward`` -- the
    input's gradient accumulated so far (the engine's gradient on the last frame).
    """
    anim = _PoolAnimation(ex)
    n = len(ex.windows)
    if not -n <= step < n:
        raise IndexError(f"step must be in [{-n}, {n}), got {step}")
    return anim.update(step % n)


def _indexed_frames(frames):
    """RGB frames as palette images sharing one palette, each pixel mapped to its nearest entry.

    The palette is a median cut of (up to 8 of) the frames, with the flat colours of the drawing
    snapped to their exact values; the mapping is exact nearest-colour (pillow's own palette
    lookup is approximate and turns white into light grey).
    """
    from PIL import Image

    sample = np.concatenate(frames[:8], axis=0)
    cut = Image.fromarray(sample).quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    entries = np.array(cut.getpalette()[: 3 * 255], dtype=np.int64).reshape(-1, 3)
    for hex_colour in ("#ffffff", "#000000", _WINDOW, _WINNER, _DONE, _PAD, _EDGE):
        rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        entries[np.argmin(((entries - rgb) ** 2).sum(axis=1))] = rgb
    flat_palette = entries.astype(np.uint8).ravel().tolist()
    out = []
    for f in frames:
        codes = (f[..., 0].astype(np.int64) << 16) | (f[..., 1].astype(np.int64) << 8) | f[..., 2]
        uniq, inverse = np.unique(codes, return_inverse=True)
        rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
        nearest = np.empty(len(uniq), dtype=np.uint8)
        for lo in range(0, len(uniq), 4096):
            d = ((rgb[lo:lo + 4096, None, :] - entries[None, :, :]) ** 2).sum(axis=2)
            nearest[lo:lo + 4096] = np.argmin(d, axis=1)
        idx = np.ascontiguousarray(nearest[inverse.reshape(codes.shape)])
        im = Image.frombytes("P", (idx.shape[1], idx.shape[0]), idx.tobytes())
        im.putpalette(flat_palette)
        out.append(im)
    return out


def save_pool_gif(ex: Explanation, path, *, duration_ms: int = 1000, last_ms: int = 2500, dpi: int = 100) -> int:
    """Write the sliding-window animation of ``ex`` as an animated GIF, one frame per window.

    Parameters
    ----------
    ex : Explanation
        From :func:`explain_pooling`.
    path : str or path-like
        The GIF to write.
    duration_ms, last_ms : int, optional
        How long each frame, and the last one, is shown.
    dpi : int, optional
        Resolution.

    Returns
    -------
    n_frames : int
        The number of frames written (= the number of windows).
    """
    n = len(ex.windows)
    if n > MAX_GIF_FRAMES:
        raise ValueError(f"the animation would have {n} frames (one per window), more than {MAX_GIF_FRAMES}; "
                         "use a smaller matrix or a larger stride")
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise OSError(f"directory {str(path.parent)!r} does not exist")

    anim = _PoolAnimation(ex)
    anim.fig.set_dpi(dpi)
    frames = [np.asarray(anim.frame(i)) for i in range(n)]
    indexed = _indexed_frames(frames)
    durations = [duration_ms] * (n - 1) + [last_ms]
    indexed[0].save(path, format="GIF", save_all=True, append_images=indexed[1:], duration=durations, loop=0,
                    disposal=1, optimize=False)
    return n
