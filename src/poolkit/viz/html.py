"""The interactive page: one self-contained HTML file that steps through the windows of an
:class:`~poolkit.explanation.Explanation`, written by ``poolkit explain --html``, served live by
``poolkit serve`` and shown inline in Jupyter.

The page is a template with its style and script inlined (package data in ``poolkit/viz/web/``:
``page.html``, ``page.css``, ``page.js``) and the engine's numbers embedded as JSON
(:func:`page_data`).  Every number it shows is a string written here, by
:func:`~poolkit.explanation.format_number`, from the engine's results: the script does no
arithmetic.  Its Content-Security-Policy allows no network access at all (the live app may talk to
the server it came from), so the page works offline.
"""

from __future__ import annotations

import html
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..explanation import (
    Explanation,
    Window,
    _span,
    axis_names,
    compare_dialects,
    describe_gradient,
    format_explanation,
    format_number,
    parameters_line,
)

__all__ = ["page_data", "page_html", "save_page", "notebook_html", "CELL_DIGITS"]

#: Significant digits of the numbers in the page's grids (formulas keep 6).
CELL_DIGITS = 4

_CSP_STATIC = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
               "base-uri 'none'; form-action 'none'")
_CSP_LIVE = _CSP_STATIC + "; connect-src 'self'"


def _label(v) -> str:
    return format_number(v, CELL_DIGITS)


def _grid2(a) -> list:
    """A 1-D or 2-D array as rows of labels (a 1-D array is one row)."""
    a = np.asarray(a)
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    return [[_label(v) for v in row] for row in a2]


def _divisor_words(w: Window, count_include_pad: bool) -> str:
    n_in = w.regions.count("input")
    n_pad = w.regions.count("pad")
    n_out = w.regions.count("outside")
    text = f"{n_in} cell{'s' if n_in != 1 else ''} inside the input"
    if count_include_pad:
        if n_pad:
            text += f" + {n_pad} padding cell{'s' if n_pad != 1 else ''}"
        if n_out:
            text += f"; the {n_out} cell{'s' if n_out != 1 else ''} past the padding never count"
    elif n_pad or n_out:
        text += "; padding is not counted (count_include_pad=False)"
    return text


def _call(ex: Explanation) -> str:
    """The poolkit call the explanation made, as code."""
    k = ex.kernel_size[0] if len(set(ex.kernel_size)) == 1 else ex.kernel_size
    s = ex.stride[0] if len(set(ex.stride)) == 1 else ex.stride
    head = f"poolkit.{ex.operation.function}(x, "
    if ex.op == "lp":
        head += f"{format_number(ex.p)}, "
    text = f"{head}{k}, stride={s}, padding={ex.padding!r}"
    if any(v != 1 for v in ex.dilation):
        text += f", dilation={ex.dilation if len(set(ex.dilation)) > 1 else ex.dilation[0]}"
    if ex.ceil_mode:
        text += ", ceil_mode=True"
    if ex.op == "avg" and not ex.count_include_pad:
        text += ", count_include_pad=False"
    return text + ")"


def page_data(ex: Explanation, *, dialects: bool = True) -> dict[str, Any]:
    """What the page shows, as JSON-ready data: every number already a label.

    Parameters
    ----------
    ex : Explanation
        From :func:`poolkit.explain`.
    dialects : bool, optional
        Include the same call in PyTorch, TensorFlow and ONNX
        (:func:`~poolkit.explanation.compare_dialects`).

    Returns
    -------
    dict
        Positions are 2-D (a 1-D input is one row); ``windows`` has one entry per window: its
        output position ``i``, ``cells`` and their regions ``reg`` (``i`` input, ``p`` padding,
        ``o`` past the padding), formula ``f``, result ``r``, maximum ``am``, divisor ``dv``,
        and with ``backward`` its gradient shares ``gt`` (cell, share, the cell's running sum).

    Examples
    --------
    >>> import poolkit
    >>> from poolkit.viz import page_data
    >>> d = page_data(poolkit.explain([[1, 3], [2, 9]], "avg", 2))
    >>> d["out"], d["windows"][0]["f"], d["windows"][0]["dv"]
    ([['3.75']], '(1 + 3 + 2 + 9) / 4 = 3.75', 4)
    """
    nd = ex.x.ndim
    c2 = (lambda c: tuple(int(v) for v in c)) if nd == 2 else (lambda c: (0, int(c[0])))
    shape2 = ex.x.shape if nd == 2 else (1, ex.x.shape[0])
    out2 = ex.output.shape if nd == 2 else (1, ex.output.shape[0])
    pads2 = tuple(ex.pads) if nd == 2 else ((0, 0), tuple(ex.pads[0]))
    lo = [-pads2[0][0], -pads2[1][0]]
    hi = [shape2[0] + pads2[0][1], shape2[1] + pads2[1][1]]
    names = axis_names(nd)
    running = np.zeros(shape2, dtype=np.float64)
    windows = []
    for w in ex.windows:
        for c in w.cells:
            cc = c2(c)
            hi = [max(hi[0], cc[0] + 1), max(hi[1], cc[1] + 1)]
        entry: dict[str, Any] = {
            "i": list(c2(w.index)),
            "cells": [list(c2(c)) for c in w.cells],
            "reg": "".join(r[0] for r in w.regions),
            "f": w.formula,
            "r": _label(w.result),
            "am": None if w.argmax is None else list(c2(w.argmax)),
            "dv": w.divisor,
            "x": w.extra,
            "where": ", ".join(f"{n} {_span(t)}" for n, t in zip(names, w.taps)),
        }
        if w.divisor is not None:
            entry["dv_why"] = _divisor_words(w, ex.count_include_pad)
        if ex.backward:
            gt = []
            for cell, amount in w.grad_to:
                cc = c2(cell)
                running[cc] += amount
                gt.append([list(cc), _label(amount), _label(running[cc])])
            entry["gt"] = gt
            entry["gw"] = describe_gradient(ex, w)
        windows.append(entry)
    padded = any(v for pair in ex.pads for v in pair)
    text = format_explanation(ex)
    title = text.split("\n", 1)[0]
    data: dict[str, Any] = {
        "version": 1,
        "poolkit_version": _version(),
        "op": ex.op,
        "function": ex.operation.function,
        "title": title,
        "text": text,
        "params": parameters_line(ex),
        "size_formula": f"output size = {'ceil' if ex.ceil_mode else 'floor'}((in + pad_before + pad_after - span) "
                        "/ stride) + 1, span = dilation*(kernel-1) + 1",
        "size_rules": [f"{n}: {r}" for n, r in zip(names, ex.size_rules)],
        "ndim": nd,
        "shape": list(ex.x.shape),
        "shape2": list(shape2),
        "out_shape": list(ex.output.shape),
        "out_shape2": list(out2),
        "pads2": [list(p) for p in pads2],
        "lo": lo,
        "hi": hi,
        "pad_label": ex.operation.pad_label,
        "padded": bool(padded),
        "has_outside": any("outside" in w.regions for w in ex.windows),
        "has_extra": any(w.extra for w in ex.windows),
        "count_include_pad": ex.count_include_pad,
        "in_sub": "x".join(map(str, ex.x.shape)) + (", padding " + " ".join(f"({b}, {a})" for b, a in ex.pads)
                                                     if padded else ""),
        "out_sub": "x".join(map(str, ex.output.shape)) + f" ({ex.operation.function})",
        "x": _grid2(ex.x),
        "out": _grid2(ex.output),
        "call": _call(ex),
        "backward": ex.backward,
        "default_grad": ex.default_grad,
        "grad_output": None if ex.grad_output is None else _grid2(ex.grad_output),
        "grad_input": None if ex.grad_input is None else _grid2(ex.grad_input),
        "windows": windows,
        "dialects": [],
    }
    if dialects:
        for d in compare_dialects(ex):
            data["dialects"].append({
                "key": d.key,
                "name": d.framework,
                "call": d.call,
                "error": d.error,
                "notes": list(d.notes),
                "out": None if d.output is None else _grid2(d.output),
                "out_shape": None if d.output is None else list(d.output.shape),
                "differs": None if d.differs is None else np.atleast_2d(d.differs).tolist(),
                "n_differs": 0 if d.differs is None else int(d.differs.sum()),
                "n_cells": int(math.prod(ex.output.shape)),
                "same": d.same,
            })
    return data


def _version() -> str:
    from .. import __version__

    return __version__


def _asset(name: str) -> str:
    return (resources.files("poolkit.viz") / "web" / name).read_text(encoding="utf-8")


def _script_json(data) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>``, no HTML)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def page_html(ex: Explanation | None, *, live: bool = False, form: dict | None = None,
              data: dict | None = None) -> str:
    """The interactive page of ``ex``: one HTML document, style and script inline.

    Parameters
    ----------
    ex : Explanation or None
        From :func:`poolkit.explain` (None when ``data`` is given).
    live : bool, optional
        The live app's page (``poolkit serve``): a form whose changes the server recomputes.
    form : dict, optional
        With ``live``: the form's initial values.
    data : dict, optional
        :func:`page_data` of ``ex``, if already made.

    Returns
    -------
    str

    Examples
    --------
    >>> import poolkit
    >>> from poolkit.viz import page_html
    >>> page = page_html(poolkit.explain([[1, 3, 2, 1], [2, 9, 1, 1]], "max", 2))
    >>> page.startswith("<!DOCTYPE html>"), "<script src" in page, "http://" in page or "https://" in page
    (True, False, False)
    """
    if data is None:
        if ex is None:
            raise TypeError("page_html needs an Explanation or its page_data")
        data = page_data(ex)
    if live:
        data = dict(data, form=form or {})
    title = html.escape(data["title"] + " — poolkit")
    parts = {
        "__CSP__": _CSP_LIVE if live else _CSP_STATIC,
        "__VERSION__": html.escape(_version()),
        "__TITLE__": title,
        "__LIVE__": "1" if live else "0",
        "__TEXT__": html.escape(data["text"]),
        "__CSS__": _asset("page.css"),
        "__DATA__": _script_json(data),
        "__JS__": _asset("page.js"),
    }
    # one pass, so that text put in for one marker is never read as another
    return re.sub("|".join(parts), lambda m: parts[m.group(0)], _asset("page.html"))


def save_page(ex: Explanation, path) -> Path:
    """Write the interactive page of ``ex`` to ``path`` (UTF-8); return the path.

    Parameters
    ----------
    ex : Explanation
    path : str or path-like
        The HTML file; its directory must exist.

    Returns
    -------
    Path
    """
    path = Path(path)
    if str(path.parent) and not path.parent.is_dir():
        raise OSError(f"cannot write {str(path)!r}: directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise OSError(f"cannot write {str(path)!r}: it is a directory")
    path.write_text(page_html(ex), encoding="utf-8")
    return path


def notebook_html(ex: Explanation) -> str:
    """The page as Jupyter shows it: an ``<iframe>`` holding the whole page (``srcdoc``), so that
    its style and script never touch the notebook's; it grows to fit the page."""
    rows = ex.x.shape[0] if ex.x.ndim == 2 else 1
    out_rows = ex.output.shape[0] if ex.output.ndim == 2 else 1
    pad_rows = sum(ex.pads[0]) if ex.x.ndim == 2 else 0
    cell = 36
    height = 520 + cell * (rows + pad_rows + 2) * (2 if ex.backward else 1) + cell * (out_rows + 2)
    return (f'<iframe title="{html.escape(format_explanation(ex).splitlines()[0])}: interactive explanation" '
            f'srcdoc="{html.escape(page_html(ex), quote=True)}" '
            f'style="width: 100%; height: {height}px; border: 0;" loading="lazy"></iframe>')

