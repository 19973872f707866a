"""The feature-extraction figure -- image, filter, detect (ReLU), condense (pooling) -- and the
matplotlib plumbing the pictures share (figures on the Agg canvas unless shown on screen)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ..explanation import OPS, format_number
from .images import _shape_str, convolve2d

__all__ = ["feature_stages", "feature_figure", "save_figure", "check_figure_path", "display_available"]


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
    >>> for name, a in st.items():
    ...     print(name, a.shape)
    image (128, 128)
    kernel (3, 3)
    filter (126, 126)
    detect (126, 126)
    max (63, 63)
    avg (63, 63)
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
        stages[op] = OPS[op].pool(detected, pool_kernel, stride)
    return stages


def _pair(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return (int(v), int(v))
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t


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


def check_figure_path(path) -> Path:
    """``path`` as a Path a figure can be written to: its directory exists and matplotlib knows its
    format (from the extension: png, pdf, svg, jpg...) -- checked before any drawing."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise OSError(f"directory {str(path.parent)!r} does not exist")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise ValueError(f"cannot write a figure as {path.name!r}: its extension must be one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return path


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (format from the extension: png, pdf, svg, jpg...)."""
    path = check_figure_path(path)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


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
        panel(ax, data, "4. Condense", f"{OPS[op].short} {pk[0]}×{pk[1]}, {stride_text}",
              cmap="magma", vmin=0.0, vmax=top)
        ax.set_xlabel(f"peak {format_number(data.max(), 3)}, mean {format_number(data.mean(), 3)}", fontsize=9)
    axes[3].set_xlabel(f"peak {format_number(det.max(), 3)}, mean {format_number(det.mean(), 3)}", fontsize=9)
    fig.suptitle(title or "Feature extraction: filter → detect → condense", fontsize=13, y=0.97)
    return fig, stages


