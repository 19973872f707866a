"""A pooling laid out window by window -- the model behind ``poolkit explain``, the animation and
the interactive page.  No drawing here (that is :mod:`poolkit.viz`).

Every window's position and taps come from the plan of :mod:`poolkit._geometry`; every result and
gradient from the engine.  What differs between max, average and Lp pooling -- how a window's
result reads as a formula, where its gradient goes -- lives in one :class:`Op` per operation,
registered in :data:`OPS`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _geometry as geo
from . import _validate as V
from .pooling import avg_pool, avg_pool_backward, lp_pool, lp_pool_backward, max_pool, max_pool_backward

__all__ = ["OPS", "Op", "Window", "Explanation", "explain_pooling", "describe_gradient", "format_number",
           "format_position"]


# ---------------------------------------------------------------------------------------------
# numbers and positions as people write them
# ---------------------------------------------------------------------------------------------


def format_number(v: Any, digits: int = 6) -> str:
    """A number the way a person writes it: ``4`` not ``4.0``, ``3.75``, ``0.333333``.

    Examples
    --------
    >>> from poolkit.explain import format_number
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
    >>> from poolkit.explain import format_position
    >>> format_position((3,)), format_position((1, 2))
    ('3', '(1, 2)')
    """
    return str(coord[0]) if len(coord) == 1 else "(" + ", ".join(str(c) for c in coord) + ")"


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


@dataclass(frozen=True)
class Explanation:
    """A pooling laid out window by window: see :func:`explain_pooling`."""

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

    @property
    def backward(self) -> bool:
        return self.grad_input is not None

    @property
    def operation(self) -> Op:
        return OPS[self.op]

    def gradient_from_windows(self) -> np.ndarray:
        """The sum of every window's ``grad_to`` -- what the engine's backward must equal."""
        g = np.zeros(self.x.shape, dtype=np.float64)
        for w in self.windows:
            for cell, amount in w.grad_to:
                g[cell] += amount
        return g


def _as_tuple(v, n, name):
    if V.is_int(v):
        return (int(v),) * n
    try:
        t = tuple(int(a) for a in v)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {v!r}") from None
    if len(t) != n:
        raise ValueError(f"{name} needs {n} value{'s' if n > 1 else ''} for a {n}-D input, got {v!r}")
    return t


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
                    max_windows: int | None = None) -> Explanation:
    """Lay a pooling of a 1-D or 2-D array out window by window, results from the engine.

    The position and cells of each window come from the plan of :mod:`poolkit._geometry` (window
    ``o`` covers ``o * stride - pad_before + j * dilation``, padding included); every result and
    gradient is the engine's.

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
    >>> from poolkit.explain import explain_pooling
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
    x = np.asarray(x)
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    operation = OPS[op]
    if x.dtype.kind not in "biuf":
        raise TypeError(f"the matrix must hold real numbers, got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(f"explain takes a 1-D or 2-D matrix, got {x.ndim}-D (shape {x.shape})")
    nd = x.ndim
    k = _as_tuple(kernel_size, nd, "kernel_size")
    s = k if stride is None else _as_tuple(stride, nd, "stride")
    d = _as_tuple(dilation, nd, "dilation")
    ceil_mode = bool(ceil_mode)
    geom = dict(dilation=d, ceil_mode=ceil_mode)
    plan = geo.make_plan(x.shape, k, s, padding, d, ceil_mode, tuple(range(nd)))
    out_shape = plan.out_shape
    n_windows = math.prod(out_shape)
    if max_windows is not None and n_windows > max_windows:
        raise ValueError(f"this pooling has {n_windows} windows, more than the {max_windows} explain shows; "
                         "use a smaller matrix or a larger stride")
    pads = plan.pads
    p = float(p)
    g = gin = None
    if backward:  # checked before any computing
        g = (np.arange(1, n_windows + 1, dtype=np.float64).reshape(out_shape) if grad_output is None
             else np.asarray(grad_output))
        if g.shape != tuple(out_shape):
            raise ValueError(f"the gradient must have the output's shape {tuple(out_shape)}, got {g.shape}")
    out, idx = operation.forward(x, k, s, padding, geom, p, count_include_pad)
    if g is not None:
        gin = operation.backward(g, x, k, s, padding, geom, p, count_include_pad, idx)

    windows = []
    for o in np.ndindex(*out_shape):
        taps = tuple(ap.taps(o[a]) for a, ap in enumerate(plan.axis_plans))
        cells = _cells_of(x, taps, pads)
        result = out[o].item()
        grad = None if g is None else float(g[o])
        formula, argmax, divisor, grad_to = operation.window(cells, result, None if idx is None else idx[o],
                                                             x.shape, grad, p, bool(count_include_pad))
        windows.append(Window(index=tuple(int(i) for i in o), taps=taps, cells=cells.cells, regions=cells.regions,
                              values=cells.values, result=result, argmax=argmax, formula=formula,
                              grad=grad, grad_to=grad_to, divisor=divisor))
    rules = tuple(_size_rule(ap, ceil_mode) for ap in plan.axis_plans)
    return Explanation(op=op, x=x, kernel_size=k, stride=s, padding=padding, pads=pads, dilation=d,
                       ceil_mode=ceil_mode, p=p, count_include_pad=bool(count_include_pad), output=out,
                       windows=tuple(windows), size_rules=rules, grad_output=g, grad_input=gin)


def describe_gradient(ex: Explanation, w: Window) -> str:
    """Where window ``w``'s gradient goes, in words (empty without ``backward``)."""
    if w.grad is None:
        return ""
    if not w.grad_to:
        return f"gradient {format_number(w.grad)} goes nowhere (the window's norm is 0)"
    return ex.operation.gradient_words(w)
