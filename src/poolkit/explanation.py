"""A pooling laid out window by window -- the model behind ``poolkit explain``, the animation, the
interactive page and :func:`poolkit.explain`.  No drawing here (that is :mod:`poolkit.viz`).

Every window's position and taps come from the plan of :mod:`poolkit._geometry`; every result and
gradient from the engine.  What differs between max, average and Lp pooling -- how a window's
result reads as a formula, where its gradient goes -- lives in one :class:`Op` per operation,
registered in :data:`OPS`.  How PyTorch, TensorFlow and ONNX compute "the same" call comes from
:mod:`poolkit.compat` (:func:`compare_dialects`).

(The module is ``poolkit.explanation``; ``poolkit.explain`` is the function :func:`explain`.)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _geometry as geo
from . import _validate as V
from .pooling import avg_pool, avg_pool_backward, lp_pool, lp_pool_backward, max_pool, max_pool_backward

__all__ = ["explain", "explain_pooling", "Explanation", "Window", "Op", "OPS", "MAX_WINDOWS", "MAX_CELLS",
           "describe_gradient", "format_explanation", "format_matrix", "format_grid", "format_number",
           "format_position", "compare_dialects", "DialectResult", "DIALECTS"]

#: :func:`explain` refuses to lay out more windows than this (``poolkit explain`` too)...
MAX_WINDOWS = 2500
#: ... or more window cells (windows times cells per window) than this.
MAX_CELLS = 100_000


# ---------------------------------------------------------------------------------------------
# numbers and positions as people write them
# ---------------------------------------------------------------------------------------------


def format_number(v: Any, digits: int = 6) -> str:
    """A number the way a person writes it: ``4`` not ``4.0``, ``3.75``, ``0.333333``.

    Examples
    --------
    >>> from poolkit.explanation import format_number
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


def format_position(coord) -> str:
    """An input or output position: ``3`` in 1-D, ``(1, 2)`` in 2-D.

    Examples
    --------
    >>> from poolkit.explanation import format_position
    >>> format_position((3,)), format_position((1, 2))
    ('3', '(1, 2)')
    """
    return str(coord[0]) if len(coord) == 1 else "(" + ", ".join(str(c) for c in coord) + ")"


def format_grid(rows, indent: str = "") -> str:
    """Rows of strings as a bracketed, column-aligned matrix.

    Examples
    --------
    >>> from poolkit.explanation import format_grid
    >>> print(format_grid([["1", "pad"], ["10", "2"]]))
    [[ 1, pad],
     [10,   2]]
    """
    rows = [list(r) for r in rows]
    if not rows:
        return indent + "[]"
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        body = ", ".join(s.rjust(w) for s, w in zip(r, widths))
        first, last = i == 0, i == len(rows) - 1
        lines.append(indent + ("[[" if first else " [") + body + ("]]" if last else "],"))
    return "\n".join(lines)


def format_matrix(a, indent: str = "") -> str:
    """A 1-D or 2-D array the way a person writes it, columns aligned.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.explanation import format_matrix
    >>> print(format_matrix(np.array([[3.75, 1.25], [4.0, 2.0]])))
    [[3.75, 1.25],
     [   4,    2]]
    >>> print(format_matrix(np.array([1, 2, 3])))
    [1, 2, 3]
    """
    a = np.asarray(a)
    if a.ndim == 1:
        return indent + "[" + ", ".join(format_number(v) for v in a) + "]"
    if a.ndim != 2:
        return indent + np.array2string(a)
    return format_grid([[format_number(v) for v in row] for row in a], indent)


# ---------------------------------------------------------------------------------------------
# the operations
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
    extra : bool
        The window exists only because of ceil mode (floor mode would stop before it).
    """

    index: tuple
    taps: tuple
    cells: tuple
    regions: tuple
    values: tuple
    result: Any
    argmax: tuple | None
    formula: str
    grad: float | None = None
    grad_to: tuple = ()
    divisor: int | None = None
    extra: bool = False


@dataclass(frozen=True)
class _Cells:
    """A window's cells, as the Op methods read them: every cell with its region and value, the
    ones inside the input, and how many lie in the padding."""

    cells: tuple
    regions: tuple
    values: tuple
    inside: list
    n_pad: int


class Op:
    """What one pooling operation means for an explanation (subclassed for max, avg and Lp).

    Attributes: ``key`` (``"max"``), ``title`` (``"max pooling"``), ``short`` (``"max pool"``),
    ``function`` (the engine's function name), ``pad_label`` (what a padded cell counts as).
    """

    key = ""
    title = ""
    short = ""
    function = ""
    pad_label = "0"

    def label(self, p: float) -> str:
        """The operation's short name in a picture's heading (Lp adds its p)."""
        return self.short

    def heading(self, p: float) -> str:
        """The operation's name at the top of an explanation (Lp names its p)."""
        return self.title

    def divisor_note(self, count_include_pad: bool) -> str:
        """What the parameters line says about the divisor (average pooling only)."""
        return ""

    def pool(self, x, kernel_size, stride=None, p: float = 2.0) -> np.ndarray:
        """The engine's pooling of ``x`` (no padding): the condense step of a picture."""
        return self.forward(x, kernel_size, stride, 0, {}, p, True)[0]

    def forward(self, x, k, s, padding, geom: dict, p: float, count_include_pad: bool):
        """(output, indices or None) from the engine."""
        raise NotImplementedError

    def backward(self, g, x, k, s, padding, geom: dict, p: float, count_include_pad: bool, indices):
        """The engine's input gradient."""
        raise NotImplementedError

    def window(self, c: _Cells, result, idx, x_shape, grad, p: float, count_include_pad: bool):
        """(formula, argmax, divisor, grad_to) of one window."""
        raise NotImplementedError

    def gradient_words(self, w: Window) -> str:
        """Where ``w``'s gradient goes, in words (``w.grad_to`` is not empty)."""
        raise NotImplementedError


def _padding_note(n_pad: int, text: str) -> str:
    return f"; {text}" if n_pad else ""


class _Max(Op):
    key, title, short, function, pad_label = "max", "max pooling", "max pool", "max_pool", "−∞"

    def forward(self, x, k, s, padding, geom, p, count_include_pad):
        return max_pool(x, k, s, padding, return_indices=True, **geom)

    def backward(self, g, x, k, s, padding, geom, p, count_include_pad, indices):
        return max_pool_backward(g, x, k, s, padding, indices=indices, **geom)

    def window(self, c, result, idx, x_shape, grad, p, count_include_pad):
        argmax = tuple(int(i) for i in np.unravel_index(int(idx), x_shape))
        if len(c.cells) <= 16:
            formula = f"max({', '.join(format_number(v) for _, v in c.inside)})"
        else:
            formula = f"max of {len(c.inside)} cells"
        formula += f" = {format_number(result)} at {format_position(argmax)}"
        if c.n_pad:
            formula += f"; {c.n_pad} padding cell{'s' if c.n_pad > 1 else ''} never win{'s' if c.n_pad == 1 else ''}"
        return formula, argmax, None, ((argmax, grad),) if grad is not None else ()

    def gradient_words(self, w):
        return f"gradient {format_number(w.grad)} -> {format_position(w.argmax)} (all of it goes to the maximum)"


class _Avg(Op):
    key, title, short, function = "avg", "average pooling", "average pool", "avg_pool"

    def divisor_note(self, count_include_pad):
        return "; padding cells " + ("count in the divisor" if count_include_pad else "do not count")

    def forward(self, x, k, s, padding, geom, p, count_include_pad):
        return avg_pool(x, k, s, padding, count_include_pad=count_include_pad, **geom), None

    def backward(self, g, x, k, s, padding, geom, p, count_include_pad, indices):
        return avg_pool_backward(g, x, k, s, padding, count_include_pad=count_include_pad, **geom)

    def window(self, c, result, idx, x_shape, grad, p, count_include_pad):
        counted = [v for v, r in zip(c.values, c.regions) if r == "input" or (r == "pad" and count_include_pad)]
        divisor = len(counted)
        if len(c.cells) <= 16:
            terms = " + ".join(format_number(0 if v is None else v) for v in counted)
            formula = f"({terms}) / {divisor} = {format_number(result)}"
        else:
            total = sum(v for _, v in c.inside)
            formula = f"sum of {len(c.inside)} cells {format_number(total)} / {divisor} = {format_number(result)}"
        formula += _padding_note(c.n_pad, "padding counts as 0" if count_include_pad else "padding is not counted")
        grad_to = () if grad is None else tuple((cell, grad / divisor) for cell, _ in c.inside)
        return formula, None, divisor, grad_to

    def gradient_words(self, w):
        where = ", ".join(format_position(c) for c, _ in w.grad_to)
        return (f"gradient {format_number(w.grad)} / {w.divisor} = {format_number(w.grad_to[0][1])} "
                f"-> each of {where}")


class _Lp(Op):
    key, title, short, function = "lp", "Lp pooling", "Lp pool", "lp_pool"

    def label(self, p):
        return f"{self.short} (p={format_number(p)})"

    def heading(self, p):
        return f"L{format_number(p)} pooling"

    def forward(self, x, k, s, padding, geom, p, count_include_pad):
        return lp_pool(x, p, k, s, padding, **geom), None

    def backward(self, g, x, k, s, padding, geom, p, count_include_pad, indices):
        return lp_pool_backward(g, x, p, k, s, padding, **geom)

    def window(self, c, result, idx, x_shape, grad, p, count_include_pad):
        ptxt = format_number(p)
        if len(c.cells) <= 16:
            terms = " + ".join(f"|{format_number(v)}|^{ptxt}" for _, v in c.inside)
            formula = f"({terms})^(1/{ptxt}) = {format_number(result)}"
        else:
            formula = f"(sum of |x|^{ptxt} over {len(c.inside)} cells)^(1/{ptxt}) = {format_number(result)}"
        formula += _padding_note(c.n_pad, "padding counts as 0")
        grad_to = ()
        if grad is not None and result > 0:
            y = float(result)
            grad_to = tuple((cell, grad * (0.0 if v == 0 else math.copysign(abs(float(v)) ** (p - 1.0), v))
                             * y ** (1.0 - p)) for cell, v in c.inside)
        return formula, None, None, grad_to

    def gradient_words(self, w):
        where = ", ".join(f"{format_position(c)}: {format_number(a, 4)}" for c, a in w.grad_to)
        return f"gradient {format_number(w.grad)} * sign(x)*|x|^(p-1) / y^(p-1) -> {where}"


#: The operations an explanation knows, by key.
OPS: dict[str, Op] = {op.key: op for op in (_Max(), _Avg(), _Lp())}


# ---------------------------------------------------------------------------------------------
# the explanation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Explanation:
    """A pooling laid out window by window, with the engine's results: see :func:`explain`.

    In Jupyter it shows as the interactive page (``_repr_html_``); its text (``repr``/``str``) is
    what ``poolkit explain`` prints; :meth:`to_html` and :meth:`to_gif` write the page and the
    animation.

    Attributes
    ----------
    op : {"max", "avg", "lp"}
    x : ndarray
        The matrix (1-D or 2-D).
    kernel_size, stride, dilation : tuple of int
        One entry per axis of ``x``.
    padding
        As given (an int, pairs or a name such as ``"same"``).
    pads : tuple of (int, int)
        The padding resolved to ``(before, after)`` per axis.
    ceil_mode, count_include_pad : bool
    p : float
        The norm's order (``op="lp"``).
    output : ndarray
        The engine's result.
    windows : tuple of Window
        One per output cell, row-major.
    size_rules : tuple of str
        How each axis's output size follows from the rule, in numbers.
    grad_output, grad_input : ndarray or None
        With ``backward``: the output's gradient and the engine's input gradient.
    default_grad : bool
        ``grad_output`` is the default ``1, 2, ...``.
    """

    op: str
    x: np.ndarray
    kernel_size: tuple
    stride: tuple
    padding: Any
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
    default_grad: bool = False

    @property
    def backward(self) -> bool:
        """Whether the backward pass was run (``grad_input`` is the engine's)."""
        return self.grad_input is not None

    @property
    def operation(self) -> Op:
        """The :class:`Op` of ``op``."""
        return OPS[self.op]

    def gradient_from_windows(self) -> np.ndarray:
        """The sum of every window's ``grad_to`` -- what the engine's backward must equal."""
        g = np.zeros(self.x.shape, dtype=np.float64)
        for w in self.windows:
            for cell, amount in w.grad_to:
                g[cell] += amount
        return g

    def __repr__(self) -> str:
        return format_explanation(self)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        from .viz.html import notebook_html

        return notebook_html(self)

    def to_html(self, path) -> Path:
        """Write the interactive page: one self-contained HTML file (no network needed).

        Parameters
        ----------
        path : str or path-like
            The file to write (its directory must exist).

        Returns
        -------
        Path
            ``path``.
        """
        from .viz.html import save_page

        return save_page(self, path)

    def to_gif(self, path, **kwargs) -> Path:
        """Write the sliding-window animation (one frame per window) as a GIF.

        Parameters
        ----------
        path : str or path-like
            The GIF to write.
        **kwargs
            ``duration_ms``, ``last_ms``, ``dpi`` of :func:`poolkit.viz.save_pool_gif`.

        Returns
        -------
        Path
            ``path``.
        """
        from .viz.animation import save_pool_gif

        save_pool_gif(self, path, **kwargs)
        return Path(path)

    def dialects(self) -> tuple[DialectResult, ...]:
        """This call in PyTorch, TensorFlow and ONNX: see :func:`compare_dialects`."""
        return compare_dialects(self)


def _as_tuple(v, n, name):
    """An int, or a sequence of ``n`` ints, as ``n`` ints (no bools, floats or strings)."""
    if V.is_int(v):
        return (int(v),) * n
    if isinstance(v, (str, bytes)) or not isinstance(v, (tuple, list, np.ndarray)):
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {v!r}")
    t = tuple(v.tolist() if isinstance(v, np.ndarray) else v)
    if not all(V.is_int(a) for a in t):
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {v!r}")
    if len(t) != n:
        raise ValueError(f"{name} needs {n} value{'s' if n > 1 else ''} for a {n}-D input, got {v!r}")
    return tuple(int(a) for a in t)


def _size_rule(ap: geo.AxisPlan, ceil: bool) -> str:
    """How the output size of one axis follows from the rule, in numbers."""
    eff, raw = ap.size_terms(ceil)
    rnd = "ceil" if ceil else "floor"
    text = f"{rnd}(({ap.in_size} + {ap.pad_before} + {ap.pad_after} - {eff}) / {ap.stride}) + 1 = {raw}"
    if raw != ap.out_size:
        text += f", less the last window (it would start in the right padding) = {ap.out_size}"
    return text


def _cells_of(x, taps, pads) -> _Cells:
    cells = tuple(itertools.product(*taps))
    regions, values = [], []
    nd = x.ndim
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
    inside = [(c, v) for c, v, r in zip(cells, values, regions) if r == "input"]
    return _Cells(cells, tuple(regions), tuple(values), inside, regions.count("pad"))


def explain_pooling(x, op: str, kernel_size, stride=None, padding=0, *, dilation=1, ceil_mode: bool = False,
                    p: float = 2.0, count_include_pad: bool = True, backward: bool = False, grad_output=None,
                    max_windows: int | None = None, max_cells: int | None = None) -> Explanation:
    """Lay a pooling of a 1-D or 2-D array out window by window, results from the engine.

    The position and cells of each window come from the plan of :mod:`poolkit._geometry` (window
    ``o`` covers ``o * stride - pad_before + j * dilation``, padding included); every result and
    gradient is the engine's.  :func:`explain` is the same with keyword defaults and a limit.

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
    max_windows, max_cells : int, optional
        Refuse (ValueError) to explain more windows, or more window cells in all, than this.

    Returns
    -------
    explanation : Explanation
        One Window per output cell (row-major) with its cells and result, the engine's
        ``output`` and, with ``backward``, its ``grad_input``.

    Examples
    --------
    >>> from poolkit.explanation import explain_pooling
    >>> ex = explain_pooling([[1, 3, 2, 1], [2, 9, 1, 1], [1, 4, 2, 3], [5, 6, 1, 2]], "max", 2, 2)
    >>> for w in ex.windows:
    ...     print(w.formula)
    max(1, 3, 2, 9) = 9 at (1, 1)
    max(2, 1, 1, 1) = 2 at (0, 2)
    max(1, 4, 5, 6) = 6 at (3, 1)
    max(2, 3, 1, 2) = 3 at (2, 3)
    >>> ex.output
    array([[9, 2],
           [6, 3]])
    """
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    operation = OPS[op]
    try:
        x = np.asarray(x)
    except ValueError:
        raise ValueError("x must be a rectangular 1-D or 2-D array (every row the same length)") from None
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(f"explain takes a 1-D or 2-D matrix, got {x.ndim}-D (shape {x.shape})")
    nd = x.ndim
    k = _as_tuple(kernel_size, nd, "kernel_size")
    s = k if stride is None else _as_tuple(stride, nd, "stride")
    d = _as_tuple(dilation, nd, "dilation")
    ceil_mode = V.check_bool("ceil_mode", ceil_mode)
    count_include_pad = V.check_bool("count_include_pad", count_include_pad)
    backward = V.check_bool("backward", backward)
    if grad_output is not None and not backward:
        raise ValueError("grad_output needs backward=True")
    p = V.check_p(p) if op == "lp" else float(V.check_real("p", p))
    geom = dict(dilation=d, ceil_mode=ceil_mode)
    plan = geo.make_plan(x.shape, k, s, padding, d, ceil_mode, tuple(range(nd)))
    out_shape = plan.out_shape
    n_windows = math.prod(out_shape)
    if max_windows is not None and n_windows > max_windows:
        raise ValueError(f"this pooling has {n_windows} windows, more than the {max_windows} explain shows; "
                         "use a smaller matrix or a larger stride")
    n_cells = n_windows * math.prod(k)
    if max_cells is not None and n_cells > max_cells:
        raise ValueError(f"this pooling has {n_windows} windows of {math.prod(k)} cells, {n_cells} cells in all, "
                         f"more than the {max_cells} explain shows; use a smaller kernel or matrix")
    pads = plan.pads
    g = gin = None
    if backward:  # checked before any computing
        g = (np.arange(1, n_windows + 1, dtype=np.float64).reshape(out_shape) if grad_output is None
             else V.check_shape_of("grad_output", grad_output, tuple(out_shape)))
    out, idx = operation.forward(x, k, s, padding, geom, p, count_include_pad)
    if g is not None:
        gin = operation.backward(g, x, k, s, padding, geom, p, count_include_pad, idx)

    # the windows floor mode would have: any window past them exists only because of ceil mode
    floor_sizes = tuple(ap.size_terms(False)[1] for ap in plan.axis_plans)
    windows = []
    for o in np.ndindex(*out_shape):
        taps = tuple(ap.taps(o[a]) for a, ap in enumerate(plan.axis_plans))
        cells = _cells_of(x, taps, pads)
        result = out[o].item()
        grad = None if g is None else float(g[o])
        formula, argmax, divisor, grad_to = operation.window(cells, result, None if idx is None else idx[o],
                                                             x.shape, grad, p, bool(count_include_pad))
        extra = ceil_mode and any(o[a] >= floor_sizes[a] for a in range(nd))
        windows.append(Window(index=tuple(int(i) for i in o), taps=taps, cells=cells.cells, regions=cells.regions,
                              values=cells.values, result=result, argmax=argmax, formula=formula,
                              grad=grad, grad_to=grad_to, divisor=divisor, extra=extra))
    rules = tuple(_size_rule(ap, ceil_mode) for ap in plan.axis_plans)
    return Explanation(op=op, x=x, kernel_size=k, stride=s, padding=padding, pads=pads, dilation=d,
                       ceil_mode=ceil_mode, p=p, count_include_pad=bool(count_include_pad), output=out,
                       windows=tuple(windows), size_rules=rules, grad_output=g, grad_input=gin,
                       default_grad=backward and grad_output is None)


def explain(x, op: str = "max", kernel_size=2, stride=None, padding=0, *, dilation=1, ceil_mode: bool = False,
            count_include_pad: bool = True, p: float = 2.0, backward: bool = False, grad_output=None) -> Explanation:
    """Explain a pooling of a small 1-D or 2-D array, window by window, with the engine's numbers.

    The options are those of ``poolkit explain``.  The result shows itself as the interactive
    page in Jupyter, prints as the command line's step-by-step text, and writes the page
    (:meth:`Explanation.to_html`) and the animation (:meth:`Explanation.to_gif`).

    Parameters
    ----------
    x : (n,) or (h, w) array_like
        The matrix (real numbers).
    op : {"max", "avg", "lp"}, optional
        The pooling.
    kernel_size : int or tuple of int, optional
        The window; an int is used on every axis.
    stride : int or tuple of int, optional
        The step between windows (default: the kernel size).
    padding : int, tuple or {"valid", "same", "same_lower"}, optional
        An int, one int per axis, ``(before, after)`` pairs, or a name (as :func:`poolkit.max_pool`).
    dilation : int or tuple of int, optional
        The spacing between a window's cells.
    ceil_mode : bool, optional
        Round the output size up (an extra window where the last one would not fit).
    count_include_pad : bool, optional
        ``op="avg"``: padded cells count in the divisor.
    p : float, optional
        ``op="lp"``: the norm's order.
    backward : bool, optional
        Also run the backward pass: where each window's gradient goes, and the input's gradient.
    grad_output : array_like, optional
        With ``backward``: the output's gradient (default ``1, 2, ...`` in output order).

    Returns
    -------
    Explanation

    Raises
    ------
    ValueError
        For parameters the engine refuses (its message), or more than :data:`MAX_WINDOWS` windows
        or :data:`MAX_CELLS` window cells.

    See Also
    --------
    poolkit.viz.save_pool_gif, poolkit.viz.page_html

    Examples
    --------
    >>> import poolkit
    >>> ex = poolkit.explain([[1, 2, 3], [4, 5, 6], [7, 8, 9]], "max", 2, stride=1, backward=True)
    >>> ex.output
    array([[5, 6],
           [8, 9]])
    >>> ex.grad_input
    array([[0., 0., 0.],
           [0., 1., 2.],
           [0., 3., 4.]])
    >>> print(ex.windows[0].formula)
    max(1, 2, 4, 5) = 5 at (1, 1)
    >>> print(repr(ex).splitlines()[0])
    max pooling of a 3x3 matrix
    """
    return explain_pooling(x, op, kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode, p=p,
                           count_include_pad=count_include_pad, backward=backward, grad_output=grad_output,
                           max_windows=MAX_WINDOWS, max_cells=MAX_CELLS)


def describe_gradient(ex: Explanation, w: Window) -> str:
    """Where window ``w``'s gradient goes, in words (empty without ``backward``)."""
    if w.grad is None:
        return ""
    if not w.grad_to:
        return f"gradient {format_number(w.grad)} goes nowhere (the window's norm is 0)"
    return ex.operation.gradient_words(w)


# ---------------------------------------------------------------------------------------------
# the step-by-step text
# ---------------------------------------------------------------------------------------------


def _window_grid(w, shape2) -> list:
    labels = []
    for v, region in zip(w.values, w.regions):
        labels.append(format_number(v) if region == "input" else ("pad" if region == "pad" else "--"))
    rows, cols = shape2
    return [labels[r * cols:(r + 1) * cols] for r in range(rows)]


def _span(taps) -> str:
    """``3``, ``0..1`` for contiguous taps, ``{0, 2}`` for dilated ones."""
    if len(taps) == 1:
        return str(taps[0])
    if all(b - a == 1 for a, b in zip(taps, taps[1:])):
        return f"{taps[0]}..{taps[-1]}"
    return "{" + ", ".join(str(t) for t in taps) + "}"


def axis_names(ndim: int) -> tuple[str, ...]:
    """What the axes of a 1-D or 2-D matrix are called in an explanation."""
    return ("rows", "cols") if ndim == 2 else ("positions",)


def parameters_line(ex: Explanation) -> str:
    """The kernel, stride, dilation, padding, ceil mode and divisor of ``ex`` in one line."""
    kx = "x".join(map(str, ex.kernel_size))
    sx = "x".join(map(str, ex.stride))
    params = f"kernel {kx}, stride {sx}"
    if any(d != 1 for d in ex.dilation):
        params += f", dilation {'x'.join(map(str, ex.dilation))}"
    params += ", padding " + ", ".join(f"{n} ({b}, {a})" for n, (b, a) in zip(axis_names(ex.x.ndim), ex.pads))
    if isinstance(ex.padding, str):
        params += f"  (from {ex.padding!r})"
    if ex.ceil_mode:
        params += ", ceil mode"
    return params + ex.operation.divisor_note(ex.count_include_pad)


def format_explanation(ex: Explanation, default_grad: bool | None = None) -> str:
    """The step-by-step account that ``poolkit explain`` prints, and the text of an :class:`Explanation`.

    ``default_grad`` says that ``ex.grad_output`` is the default ``1, 2, ...`` (to say so);
    by default ``ex.default_grad``.

    Examples
    --------
    >>> from poolkit.explanation import explain, format_explanation
    >>> print(format_explanation(explain([3, 1, 4, 1], "max", 2)))
    max pooling of a vector of length 4
      kernel 2, stride 2, padding positions (0, 0)
      output size = floor((in + pad_before + pad_after - span) / stride) + 1, span = dilation*(kernel-1) + 1
        positions: floor((4 + 0 + 0 - 2) / 2) + 1 = 2
    <BLANKLINE>
    input:
      [3, 1, 4, 1]
    <BLANKLINE>
    window 0: positions 0..1
      [3, 1]
      max(3, 1) = 3 at 0
    window 1: positions 2..3
      [4, 1]
      max(4, 1) = 4 at 2
    <BLANKLINE>
    output 2 (poolkit.max_pool):
      [3, 4]
    """
    if default_grad is None:
        default_grad = ex.default_grad
    op_name = ex.operation.heading(ex.p)
    nd = ex.x.ndim
    names = axis_names(nd)
    shape = "x".join(str(s) for s in ex.x.shape)
    out_lines = [f"{op_name} of a {shape} matrix" if nd == 2 else f"{op_name} of a vector of length {shape}"]
    out_lines.append("  " + parameters_line(ex))
    rnd = "ceil" if ex.ceil_mode else "floor"
    out_lines.append(f"  output size = {rnd}((in + pad_before + pad_after - span) / stride) + 1, "
                     "span = dilation*(kernel-1) + 1")
    for name, rule in zip(names, ex.size_rules):
        out_lines.append(f"    {name}: {rule}")
    out_lines.append("")
    out_lines.append("input:")
    out_lines.append(format_matrix(ex.x, "  "))
    out_lines.append("")
    kshape = ex.kernel_size if nd == 2 else (1, ex.kernel_size[0])
    for w in ex.windows:
        where = ", ".join(f"{n} {_span(t)}" for n, t in zip(names, w.taps))
        out_lines.append(f"window {format_position(w.index)}: {where}")
        grid = _window_grid(w, kshape)
        out_lines.append(format_grid(grid, "  ") if nd == 2 else "  [" + ", ".join(grid[0]) + "]")
        out_lines.append(f"  {w.formula}")
        if ex.backward:
            out_lines.append(f"  {describe_gradient(ex, w)}")
    out_lines.append("")
    fn = ex.operation.function
    out_lines.append(f"output {'x'.join(map(str, ex.output.shape))} (poolkit.{fn}):")
    out_lines.append(format_matrix(ex.output, "  "))
    if ex.backward:
        out_lines.append("")
        out_lines.append("gradient of the output (grad_output" +
                         (", by default 1, 2, ... so that every share can be traced):" if default_grad else "):"))
        out_lines.append(format_matrix(ex.grad_output, "  "))
        out_lines.append(f"gradient of the input, the sum of every window's share (poolkit.{fn}_backward):")
        out_lines.append(format_matrix(ex.grad_input, "  "))
    return "\n".join(out_lines)


# ---------------------------------------------------------------------------------------------
# the same call in PyTorch, TensorFlow and ONNX
# ---------------------------------------------------------------------------------------------

#: The frameworks :func:`compare_dialects` speaks, by key.
DIALECTS = {"torch": "PyTorch", "tf": "TensorFlow", "onnx": "ONNX"}


@dataclass(frozen=True)
class DialectResult:
    """One framework's version of an explained call (see :func:`compare_dialects`).

    Attributes
    ----------
    key : {"torch", "tf", "onnx"}
    framework : str
        ``"PyTorch"``, ``"TensorFlow"`` or ``"ONNX"``.
    call : str
        The framework's call, as code (empty when it has none).
    output : ndarray or None
        What the framework computes (shaped like the explanation's output), or None with ``error``.
    error : str or None
        Why the framework cannot make this call (its own message where it has one).
    notes : tuple of str
        What the translation changed, and why the numbers differ.
    differs : ndarray of bool or None
        Cells where ``output`` differs from poolkit's, when the shapes agree.
    """

    key: str
    framework: str
    call: str
    output: np.ndarray | None
    error: str | None
    notes: tuple
    differs: np.ndarray | None = None

    @property
    def same(self) -> bool:
        """The framework gives poolkit's output exactly (to float rounding)."""
        return self.output is not None and self.differs is not None and not self.differs.any()


class _NoEquivalent(ValueError):
    pass


def _code(v: tuple) -> str:
    return str(v[0]) if len(v) == 1 else "(" + ", ".join(map(str, v)) + ")"


def _torch(ex: Explanation):
    from .compat import torch as T

    nd = ex.x.ndim
    notes = []
    if any(b != a for b, a in ex.pads):
        raise _NoEquivalent(f"PyTorch pads both ends of an axis equally; pads {ex.pads} have no torch equivalent "
                            "(pad the input with F.pad first)")
    pad = tuple(b for b, _ in ex.pads)
    if isinstance(ex.padding, str) and ex.padding != "valid":
        notes.append(f"PyTorch's pooling has no padding={ex.padding!r}; the pads it resolves to are given explicitly")
    x = np.asarray(ex.x, dtype=np.float64)[None]  # (C=1, *spatial), unbatched
    k, s, d = _code(ex.kernel_size), _code(ex.stride), _code(ex.dilation)
    if ex.op == "max":
        call = (f"F.max_pool{nd}d(x, kernel_size={k}, stride={s}, padding={_code(pad)}, dilation={d}, "
                f"ceil_mode={ex.ceil_mode})")
        out = T.max_pool1d(x, *_args(ex, pad)) if nd == 1 else T.max_pool2d(x, *_args(ex, pad))
    elif ex.op == "avg":
        call = (f"F.avg_pool{nd}d(x, kernel_size={k}, stride={s}, padding={_code(pad)}, ceil_mode={ex.ceil_mode}, "
                f"count_include_pad={ex.count_include_pad})")
        if any(v != 1 for v in ex.dilation):
            raise _NoEquivalent(f"avg_pool{nd}d has no dilation", call)
        fn = T.avg_pool1d if nd == 1 else T.avg_pool2d
        out = fn(x, ex.kernel_size, ex.stride, pad, ex.ceil_mode, ex.count_include_pad)
    else:
        call = (f"F.lp_pool{nd}d(x, norm_type={format_number(ex.p)}, kernel_size={k}, stride={s}, "
                f"ceil_mode={ex.ceil_mode})")
        if any(pad) or any(v != 1 for v in ex.dilation):
            raise _NoEquivalent(f"lp_pool{nd}d has no padding and no dilation", call)
        lp = T.lp_pool1d if nd == 1 else T.lp_pool2d
        out = lp(x, ex.p, ex.kernel_size, ex.stride, ex.ceil_mode)
        notes.append("PyTorch's lp_pool is signed, (sum of x^p)^(1/p) without |x|, and scales a partial ceil-mode "
                     "window up to the full kernel")
    return call, out[0], notes


def _args(ex, pad):
    return ex.kernel_size, ex.stride, pad, ex.dilation, ex.ceil_mode


def _tf(ex: Explanation):
    from .compat import tf as TF

    nd = ex.x.ndim
    if ex.op == "lp":
        raise _NoEquivalent("TensorFlow has no Lp pooling (tf.nn pools by max and average only)")
    if ex.ceil_mode:
        raise _NoEquivalent("TensorFlow has no ceil mode: its output size is floor((in - span) / stride) + 1 "
                            "(VALID) or ceil(in / stride) (SAME)")
    notes = []
    padding: Any
    if isinstance(ex.padding, str):
        if ex.padding == "same_lower":
            raise _NoEquivalent("TensorFlow has no SAME_LOWER padding (its SAME puts the odd cell at the end)")
        padding = ex.padding.upper()
        pad_text = f'"{padding}"'
    elif not any(v for pair in ex.pads for v in pair):
        padding, pad_text = "VALID", '"VALID"'
    else:
        padding = [[0, 0], *([b, a] for b, a in ex.pads), [0, 0]]
        pad_text = str(padding)
    kind = "MAX" if ex.op == "max" else "AVG"
    x = np.asarray(ex.x, dtype=np.float64)[None, ..., None]  # (N=1, *spatial, C=1)
    k, s = list(ex.kernel_size), list(ex.stride)
    if any(v != 1 for v in ex.dilation):
        call = (f'tf.nn.pool(x, window_shape={k}, pooling_type="{kind}", strides={s}, padding={pad_text}, '
                f"dilations={list(ex.dilation)})")
        try:
            out = TF.pool(x, k, kind, s, padding, dilations=list(ex.dilation))
        except ValueError as exc:
            raise _NoEquivalent(str(exc), call) from None
    else:
        fn = f"{'max' if ex.op == 'max' else 'avg'}_pool{nd}d"
        call = f"tf.nn.{fn}(x, ksize={k}, strides={s}, padding={pad_text})"
        try:
            out = getattr(TF, fn)(x, k, s, padding)
        except ValueError as exc:
            raise _NoEquivalent(str(exc), call) from None
    if ex.op == "avg" and any(v for pair in ex.pads for v in pair):
        notes.append("TensorFlow's average divides by the cells inside the input: it has no count_include_pad, "
                     "padding never counts")
    return call, out[0, ..., 0], notes


def _onnx(ex: Explanation):
    from .compat import onnx as O

    nd = ex.x.ndim
    op_type = {"max": "MaxPool", "avg": "AveragePool", "lp": "LpPool"}[ex.op]
    attrs: dict[str, Any] = dict(kernel_shape=list(ex.kernel_size), strides=list(ex.stride))
    notes = []
    if isinstance(ex.padding, str):
        attrs["auto_pad"] = {"same": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}[ex.padding]
        if ex.ceil_mode:
            notes.append("with auto_pad, ONNX sizes the output without ceil mode")
    else:
        attrs["pads"] = [b for b, _ in ex.pads] + [a for _, a in ex.pads]
    if any(v != 1 for v in ex.dilation):
        attrs["dilations"] = list(ex.dilation)
    attrs["ceil_mode"] = int(ex.ceil_mode)
    if ex.op == "avg":
        attrs["count_include_pad"] = int(ex.count_include_pad)
    if ex.op == "lp":
        if ex.p != int(ex.p):
            raise _NoEquivalent(f"ONNX's LpPool takes an integer p, got {format_number(ex.p)}")
        attrs["p"] = int(ex.p)
    text = ", ".join(f'{key}="{v}"' if isinstance(v, str) else f"{key}={v}" for key, v in attrs.items())
    call = f"{op_type}({text})"
    x = np.asarray(ex.x, dtype=np.float64).reshape((1, 1) + ex.x.shape)
    try:
        out = O.run(op_type, [x], **attrs)[0]
    except ValueError as exc:
        raise _NoEquivalent(str(exc), call) from None
    del nd
    return call, out[0, 0], notes


_TRANSLATIONS = {"torch": _torch, "tf": _tf, "onnx": _onnx}


def compare_dialects(ex: Explanation) -> tuple[DialectResult, ...]:
    """The call of ``ex`` in PyTorch, TensorFlow and ONNX, computed by :mod:`poolkit.compat`.

    Each framework gets ``ex.x`` as float64 (a batch of one, one channel) and the parameters
    translated into its own terms; where it has no equivalent (TensorFlow's missing ceil mode,
    PyTorch's symmetric padding, ...) the result says why instead.  Where it has one, ``differs``
    marks the cells whose value is not poolkit's.

    Parameters
    ----------
    ex : Explanation

    Returns
    -------
    tuple of DialectResult
        PyTorch, TensorFlow, ONNX.

    Examples
    --------
    SAME average pooling of 4 cells with 3-wide windows pads one cell at the end.  poolkit (here)
    and ONNX count it in the divisor, TensorFlow never does, PyTorch cannot pad one side only:

    >>> import numpy as np
    >>> from poolkit.explanation import explain, compare_dialects
    >>> ex = explain(np.array([1., 2, 3, 4]), "avg", 3, stride=2, padding="same")
    >>> ex.output
    array([2.        , 2.33333333])
    >>> torch, tf, onnx = compare_dialects(ex)
    >>> torch.error.split(";")[0]
    'PyTorch pads both ends of an axis equally'
    >>> tf.call, tf.output
    ('tf.nn.avg_pool1d(x, ksize=[3], strides=[2], padding="SAME")', array([2. , 3.5]))
    >>> onnx.call
    'AveragePool(kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER", ceil_mode=0, count_include_pad=1)'
    >>> onnx.output
    array([2.        , 2.33333333])
    """
    core = np.asarray(ex.output, dtype=np.float64)
    results = []
    for key, translate in _TRANSLATIONS.items():
        try:
            call, out, notes = translate(ex)
        except _NoEquivalent as exc:
            call = exc.args[1] if len(exc.args) > 1 else ""
            results.append(DialectResult(key, DIALECTS[key], call, None, str(exc.args[0]), ()))
            continue
        except (ValueError, TypeError) as exc:  # the framework's own check (its message)
            results.append(DialectResult(key, DIALECTS[key], "", None, str(exc), ()))
            continue
        out = np.asarray(out, dtype=np.float64)
        differs = None
        if out.shape != core.shape:
            notes.append(f"output shape {out.shape} instead of poolkit's {core.shape}")
        else:
            differs = ~np.isclose(out, core, rtol=1e-9, atol=1e-12, equal_nan=True)
            if differs.any():
                notes.append(f"{int(differs.sum())} of {differs.size} cells differ from poolkit's")
        results.append(DialectResult(key, DIALECTS[key], call, out, None, tuple(notes), differs))
    return tuple(results)
