"""Pictures of pooling, drawn from the engine's own numbers.

Three pictures, as the tutorials draw them:

* the **feature-extraction figure** (:func:`feature_figure`): an image, a convolution kernel, the
  filtered image, the detected features (ReLU) and the condensed map (max pooling) next to its
  average-pooling counterpart -- the three steps of a convolutional block;
* the **sliding-window animation** (:func:`save_pool_gif`): a pooling window walking over a small
  matrix, the current window highlighted and the output filling in, one frame per window
  (:func:`animation_figure` draws one frame as a matplotlib figure);
* the **interactive page** (:func:`page_html`, :func:`save_page`): the same walk in a web page,
  with play, step and a slider, hovering a cell to see its window or its share of the gradient,
  and the same layer in PyTorch, TensorFlow and ONNX.

All are made from :func:`poolkit.explain`'s account (:mod:`poolkit.explanation`, re-exported
here) and the images and filters of :mod:`poolkit.viz.images`.  matplotlib and pillow (the
``plot`` extra) are imported inside the functions that draw, so this package imports with NumPy
alone, and the page needs neither.  Figures written to files are drawn on the Agg canvas and never
touch pyplot, so no display is needed.

Examples
--------
>>> import poolkit
>>> from poolkit import viz
>>> ex = poolkit.explain([[1, 3, 2, 1], [2, 9, 1, 1], [1, 4, 2, 3], [5, 6, 1, 2]], "max", 2)
>>> fig = viz.animation_figure(ex, step=0)          # the first frame, a matplotlib Figure
>>> [ax.get_title() for ax in fig.axes]
['input 4×4', 'output 2×2 (max_pool)']
>>> fig, stages = viz.feature_figure(viz.sample_image(64), viz.get_filter("edge"))
>>> stages["max"].shape
(31, 31)
"""

from ..explanation import OPS, Explanation, Window, describe_gradient, explain_pooling, format_number
from .animation import _WINDOW, _WINNER, MAX_GIF_FRAMES, animation_figure, save_pool_gif
from .figure import check_figure_path, display_available, feature_figure, feature_stages, save_figure
from .html import page_data, page_html, save_page
from .images import FILTERS, convolve2d, get_filter, load_image, sample_image

__all__ = [
    "FILTERS",
    "OPS",
    "MAX_GIF_FRAMES",
    "sample_image",
    "load_image",
    "get_filter",
    "convolve2d",
    "feature_stages",
    "feature_figure",
    "save_figure",
    "check_figure_path",
    "display_available",
    "explain_pooling",
    "describe_gradient",
    "Explanation",
    "Window",
    "animation_figure",
    "save_pool_gif",
    "page_data",
    "page_html",
    "save_page",
    "format_number",
    "_WINDOW",
    "_WINNER",
]
