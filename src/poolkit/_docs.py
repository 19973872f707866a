"""The shared fragments of poolkit's numpydoc docstrings, and the one decorator that fills them.

A docstring names a fragment as ``{NAME}`` on a line of its own; :func:`fill` replaces it.  Each
fragment is written once here, so every function that takes ``padding`` (say) describes it in the
same words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

#: The sliding-window arguments (kernel_size ... axes) of max, average and Lp pooling.
SHARED = """\
    kernel_size : int or sequence of int
        Window size along each pooled axis.  An int needs ``axes`` (it is broadcast over them).
    stride : int or sequence of int, optional
        Step between windows; defaults to ``kernel_size``.
    padding : int, sequence of int, sequence of (before, after), or {"valid", "same", "same_lower"}
        Implicit padding.  Ints pad both sides; pairs pad each side; ``"same"`` is TensorFlow/ONNX
        SAME_UPPER (output ``ceil(in / stride)``, the odd cell at the end), ``"same_lower"`` puts
        it at the start.  See :func:`resolve_padding`.
    dilation : int or sequence of int, optional
        Spacing between window taps (1 = contiguous windows).
    ceil_mode : bool, optional
        Round the output size up instead of down; the last window must still start inside the
        input or the left padding.
    axes : int or sequence of int, optional
        The pooled axes; by default the last ``len(kernel_size)`` axes.  All other axes are
        batch-like, so NCHW pools with ``kernel_size=(kh, kw)`` and NHWC with ``axes=(1, 2)``."""

#: The output-size rule of sliding windows (for a Notes section).
SIZE_RULE = """\
    Along each pooled axis, with ``eff = dilation * (kernel_size - 1) + 1``::

        out = floor_or_ceil((in + pad_before + pad_after - eff) / stride) + 1

    and in ceil mode the last window is dropped if it would start at or past
    ``in + pad_before`` (PyTorch's ``pooling_output_shape_pad_lr``)."""

#: The arguments of global pooling.
GLOBAL = """\
    axes : int or sequence of int, optional
        The pooled axes; by default every axis after the first two (the spatial axes of
        ``(N, C, *spatial)``).
    keepdims : bool, optional
        Keep the pooled axes with size 1 (as ``numpy.max(..., keepdims=True)``)."""

#: The arguments of adaptive pooling.
ADAPTIVE_PARAMS = """\
    output_size : int, or sequence of int or None
        Output size of each pooled axis; ``None`` keeps that axis's input size.  An int is used
        for every pooled axis.
    axes : int or sequence of int, optional
        The pooled axes.  By default the last ``len(output_size)`` axes, or, for an int
        ``output_size``, every axis after the first two (``(N, C, *spatial)``)."""

#: How adaptive bins are made (for a Notes section).
ADAPTIVE_NOTES = """\
    Along each pooled axis with input size ``In`` and output size ``Out``, output ``i`` covers
    the input positions ``floor(i * In / Out) <= j < ceil((i + 1) * In / Out)`` (PyTorch's
    adaptive bins): windows overlap when ``In`` is not a multiple of ``Out`` and repeat cells
    when ``In < Out``."""

#: The arguments of fractional max pooling.
FRACTIONAL = """\
    kernel_size : int or sequence of int
        Window size along each pooled axis.
    output_size : int or sequence of int, optional
        Output size of each pooled axis; ``output_size + kernel_size - 1 <= input size``.
    output_ratio : float or sequence of float, optional
        Instead of ``output_size``: ``output = int(input * ratio)``, ratio in (0, 1).
    axes : int or sequence of int, optional
        The pooled axes.  By default the last ``len(kernel_size)`` (or ``len(output_size)``)
        axes, or, when all of these are scalars, every axis after the first two.
    random_samples : ndarray, optional
        One sample in [0, 1] per plane and pooled axis: shape ``(*batch_shape, d)`` where
        ``batch_shape`` is the shape of the non-pooled axes (``(N, C, d)`` for channels-first
        input; ``(1, C, d)`` is also accepted for ``(C, *spatial)``).  Used in the input's float
        type (float64 for integer input), as PyTorch does.  With two pooled axes sample 0 drives
        the second pooled axis (W of NCHW) and sample 1 the first (PyTorch's
        ``FractionalMaxPool2d`` order); otherwise sample ``j`` drives pooled axis ``j``
        (``FractionalMaxPool3d``).  Pooled axes are counted in the order of ``axes``.
    rng : numpy.random.Generator, optional
        Where to draw the samples when ``random_samples`` is not given (default
        ``np.random.default_rng()``); a seeded generator makes the pooling reproducible."""

#: The input of the sliding-window ops.
X_ANY = """\
    x : (..., *spatial) ndarray
        Input of a real numeric or bool dtype; any strides.  It is never modified."""

#: The input of the fixed-size ops (channels-first by default).
X_SPATIAL = """\
    x : (N, C, *spatial) ndarray
        Input of a real numeric or bool dtype."""

#: The return_indices argument of the max ops.
RETURN_INDICES = """\
    return_indices : bool, optional
        Also return where each maximum came from."""

#: The out argument of the sliding-window ops (each docstring adds a line with its shape and dtype).
OUT = """\
    out : ndarray, optional
        Where to write the result, as NumPy's ``out=``: ``out`` itself is returned, and a loop
        reusing one buffer saves allocating (and page-faulting) a new result per call.  It must be
        writeable and have exactly the result's shape and dtype (no casting; either byte order).
        It may overlap the inputs: the result is then computed apart and copied in."""

#: The acc_dtype argument of the averages.
ACC_DTYPE = """\
    acc_dtype : {'float64', 'float32'} or dtype, optional
        What the window sums are accumulated in: float64 (the default) or, for a float32 ``x``
        only, float32 -- faster (the sums vectorise twice as wide, with no conversion per element)
        but rounded to float32 as they go, as PyTorch's and ONNX Runtime's CPU kernels do, so a
        result may differ from the default's in its last bits (more for long windows of values
        that cancel).  Not for a Dask ``x``."""

#: The values returned by the fixed-size max ops.
MAX_RESULT = """\
    out : ndarray
        ``x`` with each pooled axis resized to its output size; dtype of ``x``."""

#: The arguments of the poolkit.nn layers that own weights.
WEIGHT_INIT = """\
    dtype : numpy dtype, optional
        Parameter and compute dtype (default float32); inputs are converted to it.
    rng : numpy.random.Generator, optional
        Where the initial weights come from (default: the module-level generator)."""

#: The maximize argument of the poolkit.nn optimisers (applied by ``Optimizer.step``).
MAXIMIZE = """\
    maximize : bool, optional
        Ascend instead of descending."""

#: The arguments of the backward of a max or min pooling (first in _FRAGMENTS: it holds {SHARED}).
WINNER_BACKWARD = """\
    grad_output : ndarray
        Gradient with respect to the forward's output, of that output's shape.
    x : ndarray
        The forward input.
{SHARED}
    indices : ndarray of int, optional
        The forward's ``indices`` (``return_indices=True``), to skip recomputing them.  Checked
        for shape and range."""

_FRAGMENTS = {"WINNER_BACKWARD": WINNER_BACKWARD, "SHARED": SHARED, "SIZE_RULE": SIZE_RULE, "GLOBAL": GLOBAL,
              "ADAPTIVE_PARAMS": ADAPTIVE_PARAMS,
              "ADAPTIVE_NOTES": ADAPTIVE_NOTES, "FRACTIONAL": FRACTIONAL, "X_ANY": X_ANY, "X_SPATIAL": X_SPATIAL,
              "RETURN_INDICES": RETURN_INDICES, "OUT": OUT, "ACC_DTYPE": ACC_DTYPE, "MAX_RESULT": MAX_RESULT,
              "WEIGHT_INIT": WEIGHT_INIT, "MAXIMIZE": MAXIMIZE}


def fill(func: F) -> F:
    """Replace every ``{NAME}`` of ``func``'s docstring by the fragment NAME (a decorator)."""
    doc = func.__doc__ or ""
    for name, text in _FRAGMENTS.items():
        doc = doc.replace("{" + name + "}", text)
    func.__doc__ = doc
    return func
