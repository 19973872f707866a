"""Pictures of pooling, drawn from the engine's own numbers.

Two pictures, as the tutorials draw them:

* the **feature-extraction figure** (:func:`feature_figure`): an image, a convolution kernel, the
  filtered image, the detected features (ReLU) and the condensed map (max pooling) next to its
  average-pooling counterpart -- the three steps of a convolutional block;
* the **sliding-window animation** (:func:`save_pool_gif`): a pooling window walking over a small
  matrix, the current window highlighted and the output filling in, one frame per window.

Both are made from :func:`poolkit.explain.explain_pooling`'s account (re-exported here) and the
images and filters of :mod:`poolkit.viz.images`.  matplotlib and pillow (the ``plot`` extra) are
imported inside the functions that draw, so this package imports with NumPy alone.  Figures
written to files are drawn on the Agg canvas and never touch pyplot, so no display is needed.
"""

from ..explain import OPS, Explanation, Window, describe_gradient, explain_pooling, format_number
from .animation import _WINDOW, _WINNER, MAX_GIF_FRAMES, animation_figure, save_pool_gif
from .figure import check_figure_path, display_available, feature_figure, feature_stages, save_figure
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
    "format_number",
    "_WINDOW",
    "_WINNER",
]
