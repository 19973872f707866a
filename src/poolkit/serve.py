"""``poolkit serve``: the interactive page as a live app, recomputed by the engine on every change.

A threaded :mod:`http.server` (standard library only) serves

* ``GET /`` -- the page of :func:`poolkit.viz.page_html` with a form (the matrix, op, kernel,
  stride, padding, dilation, ceil mode, count_include_pad, p, backward);
* ``POST /api/explain`` -- the form as JSON in, ``{"ok": true, "data": page_data, "ms": ...}`` or
  ``{"ok": false, "error": "<the engine's message>"}`` out (status 200 either way: a bad parameter
  is an answer, not a failure);
* ``POST /api/load`` -- ``{"name": "x.npy", "data": "<base64>"}``: a ``.npy``, ``.csv`` or image
  file read into a matrix literal for the form;
* ``GET /api/health`` -- ``{"ok": true, "version": ...}``.

It listens on the loopback interface by default and refuses requests larger than
:data:`MAX_BODY_BYTES` and matrices with more than :data:`MAX_SERVE_CELLS` cells.
"""

from __future__ import annotations

import ast
import base64
import binascii
import io
import ipaddress
import json
import math
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["make_server", "explain_request", "load_request", "parse_matrix_text", "DEFAULT_FORM",
           "MAX_SERVE_CELLS", "MAX_BODY_BYTES", "MAX_IMAGE_SIDE"]

#: The largest matrix the app explains (cells): a page of windows stays readable and fast.
MAX_SERVE_CELLS = 32 * 32
#: The largest request body, in bytes (a loaded file arrives base64-encoded inside it).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: A loaded image is shrunk so that its longer side is at most this many pixels.
MAX_IMAGE_SIDE = 16

#: The form the app opens with: the 4x4 example of ``poolkit demo``, 2x2 windows, stride 1.
DEFAULT_FORM: dict[str, Any] = {
    "matrix": "[[1, 3, 2, 1],\n [2, 9, 1, 1],\n [1, 4, 2, 3],\n [5, 6, 1, 2]]",
    "op": "max",
    "kernel": "2",
    "stride": "1",
    "padding": "0",
    "dilation": "1",
    "p": "2",
    "ceil_mode": False,
    "count_include_pad": True,
    "backward": True,
}


def parse_matrix_text(text: str) -> np.ndarray:
    """The form's matrix: a literal such as ``[[1, 2], [3, 4]]``, or rows of numbers separated
    by spaces or commas, one row per line.

    Examples
    --------
    >>> from poolkit.serve import parse_matrix_text
    >>> parse_matrix_text("1 2 3\\n4 5 6").tolist()
    [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    >>> parse_matrix_text("[3, 1, 4]").tolist()
    [3, 1, 4]
    """
    if not isinstance(text, str):
        raise TypeError(f"matrix must be text, got {type(text).__name__}")
    t = text.strip()
    if not t:
        raise ValueError("matrix is empty: type numbers, one row per line, or a literal like [[1,2],[3,4]]")
    if len(t) > 200_000:
        raise ValueError(f"matrix text is {len(t)} characters long; the app explains at most "
                         f"{MAX_SERVE_CELLS} cells")
    if t[0] in "[(":
        try:
            value = ast.literal_eval(t)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            raise ValueError("matrix must be a literal like [[1,2],[3,4]] or rows of numbers, "
                             f"got {_short(t)}") from None
        try:
            arr = np.array(value)
        except ValueError:
            raise ValueError(f"matrix must be rectangular (every row the same length), got {_short(t)}") from None
    else:
        rows = []
        for line in t.splitlines():
            parts = line.replace(",", " ").replace(";", " ").split()
            if not parts:
                continue
            try:
                rows.append([float(v) for v in parts])
            except ValueError:
                raise ValueError(f"matrix: cannot read {_short(line)} as numbers") from None
        if len({len(r) for r in rows}) != 1:
            raise ValueError("matrix must be rectangular: every row needs the same number of values, got rows of "
                             + ", ".join(str(len(r)) for r in rows))
        arr = np.array(rows[0] if len(rows) == 1 else rows, dtype=np.float64)
    if arr.dtype.kind not in "biuf" or arr.dtype == np.bool_:
        raise ValueError(f"matrix must hold real numbers, got {_short(t)}")
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"matrix must be a non-empty 1-D or 2-D array, got shape {arr.shape}")
    if arr.size > MAX_SERVE_CELLS:
        raise ValueError(f"matrix has {arr.size} cells ({'x'.join(map(str, arr.shape))}), more than the "
                         f"{MAX_SERVE_CELLS} the app explains; use a smaller one")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("matrix must hold finite numbers (no nan or inf)")
    return arr


def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[: n - 1] + "…")


def _form_text(form: dict, key: str) -> str:
    v = form.get(key, DEFAULT_FORM[key])
    if v is None:
        return ""
    if not isinstance(v, (str, int, float)) or isinstance(v, bool):
        raise TypeError(f"{key} must be text, got {v!r}")
    return str(v)


def _form_bool(form: dict, key: str) -> bool:
    v = form.get(key, DEFAULT_FORM[key])
    if not isinstance(v, bool):
        raise TypeError(f"{key} must be true or false, got {v!r}")
    return v


def explain_request(form: dict) -> dict:
    """The answer of ``POST /api/explain`` for ``form`` (the page's fields).

    Parameters
    ----------
    form : dict
        ``matrix``, ``op``, ``kernel``, ``stride``, ``padding``, ``dilation``, ``p`` as text and
        ``ceil_mode``, ``count_include_pad``, ``backward`` as booleans; missing keys take
        :data:`DEFAULT_FORM`'s values.

    Returns
    -------
    dict
        ``{"ok": True, "data": page_data, "ms": int}``, or ``{"ok": False, "error": message}``
        when a parameter is wrong (the message of the engine's ValueError/TypeError).

    Examples
    --------
    >>> from poolkit.serve import explain_request
    >>> explain_request({"matrix": "1 2\\n3 4", "kernel": "2"})["data"]["out"]
    [['4']]
    >>> explain_request({"matrix": "1 2\\n3 4", "kernel": "3"})["error"]
    'kernel_size=3 (effective 3 with dilation=1) is larger than the padded input (2 + 0 + 0) on axis 0'
    """
    from .cli import parse_padding, parse_sizes
    from .explanation import OPS, explain_pooling
    from .viz.html import page_data

    start = time.perf_counter()
    try:
        if not isinstance(form, dict):
            raise TypeError(f"the request must be a JSON object of form fields, got {type(form).__name__}")
        x = parse_matrix_text(_form_text(form, "matrix"))
        nd = x.ndim
        op = _form_text(form, "op")
        if op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
        kernel = parse_sizes(_form_text(form, "kernel") or "2", nd, "kernel")
        stride_text = _form_text(form, "stride").strip()
        stride = None if not stride_text else parse_sizes(stride_text, nd, "stride")
        padding_text = _form_text(form, "padding").strip()
        padding = parse_padding(padding_text or "0")
        dilation = parse_sizes(_form_text(form, "dilation").strip() or "1", nd, "dilation")
        p_text = _form_text(form, "p").strip() or "2"
        try:
            p = float(p_text)
        except ValueError:
            raise ValueError(f"p must be a number, got {p_text!r}") from None
        if not math.isfinite(p) or p <= 0:
            raise ValueError(f"p must be a positive finite number, got {p_text!r}")
        ex = explain_pooling(x, op, kernel, stride, padding, dilation=dilation,
                             ceil_mode=_form_bool(form, "ceil_mode"), p=p,
                             count_include_pad=_form_bool(form, "count_include_pad"),
                             backward=_form_bool(form, "backward"), max_windows=400, max_cells=20_000)
        data = page_data(ex)
    except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as exc:
        message = str(exc).replace("--padding", "padding")
        return {"ok": False, "error": " ".join(message.split())}
    return {"ok": True, "data": data, "ms": int(round((time.perf_counter() - start) * 1000))}


def load_request(payload: dict) -> dict:
    """The answer of ``POST /api/load``: a ``.npy``, ``.csv`` or image file as the form's matrix.

    Parameters
    ----------
    payload : dict
        ``name`` (the file's name, for its kind) and ``data`` (its bytes, base64).

    Returns
    -------
    dict
        ``{"ok": True, "matrix": text, "note": what was read}`` or ``{"ok": False, "error": ...}``.
        An image is read as grayscale in ``[0, 1]``, shrunk to at most :data:`MAX_IMAGE_SIDE`
        pixels a side and rounded to 2 decimals.
    """
    from .explanation import format_matrix

    try:
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str) \
                or not isinstance(payload.get("data"), str):
            raise TypeError("the request must be {\"name\": file name, \"data\": base64 bytes}")
        name = payload["name"]
        try:
            raw = base64.b64decode(payload["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name!r}: the file's data is not base64") from None
        lower = name.lower()
        note = ""
        if lower.endswith(".npy"):
            try:
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise ValueError(f"{name!r} is not a plain .npy array ({' '.join(str(exc).split())})") from None
        elif lower.endswith((".csv", ".txt")):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{name!r} is not UTF-8 text") from None
            arr = parse_matrix_text(text)
        else:
            try:
                from PIL import Image, UnidentifiedImageError
            except ImportError:
                raise ValueError("reading images needs pillow: pip install 'poolkit[plot]'") from None
            try:
                with Image.open(io.BytesIO(raw)) as opened:
                    gray = opened.convert("L")
                full = gray.size
                if max(gray.size) > MAX_IMAGE_SIDE:
                    gray.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
                arr = np.round(np.asarray(gray, dtype=np.float64) / 255.0, 2)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                raise ValueError(f"{name!r} is neither .npy, .csv nor an image pillow reads "
                                 f"({' '.join(str(exc).split())})") from None
            note = (f"read {name} ({full[0]}x{full[1]} pixels) as grayscale in [0, 1], "
                    f"{arr.shape[0]}x{arr.shape[1]} cells")
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biuf" or arr.ndim not in (1, 2) or arr.size == 0:
            raise ValueError(f"{name!r} must hold a non-empty 1-D or 2-D array of real numbers, "
                             f"got dtype {arr.dtype}, shape {arr.shape}")
        if arr.size > MAX_SERVE_CELLS:
            raise ValueError(f"{name!r} has {arr.size} cells ({'x'.join(map(str, arr.shape))}), more than the "
                             f"{MAX_SERVE_CELLS} the app explains")
        text = format_matrix(arr)
        return {"ok": True, "matrix": text, "note": note or f"read {name}: {'x'.join(map(str, arr.shape))}"}
    except (ValueError, TypeError) as exc:
        return {"ok": False, "error": " ".join(str(exc).split())}


class _Handler(BaseHTTPRequestHandler):
    server_version = "poolkit-serve"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def do_GET(self):  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, self.server.page().encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/api/health":
            from . import __version__

            self._json(200, {"ok": True, "version": __version__})
        else:
            self._json(404, {"ok": False, "error": f"no such page {path!r}"})

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        path = self.path.split("?", 1)[0]
        routes = {"/api/explain": explain_request, "/api/load": load_request}
        if path not in routes:
            self._json(404, {"ok": False, "error": f"no such endpoint {path!r}"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(411, {"ok": False, "error": "the request needs a Content-Length"})
            return
        if length > MAX_BODY_BYTES or length < 0:
            self.close_connection = True
            left = length if 0 < length <= 4 * MAX_BODY_BYTES else 0
            while left > 0:  # read what the client sends, so that it can read the answer
                left -= len(self.rfile.read(min(left, 1 << 16)) or b"x" * left)
            self._json(413, {"ok": False, "error": f"the request is {length} bytes, more than the "
                                                   f"{MAX_BODY_BYTES // (1024 * 1024)} MB the app accepts; "
                                                   "use a smaller input"})
            return
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._json(400, {"ok": False, "error": "the request is not JSON"})
            return
        try:
            answer = routes[path](payload)
        except Exception as exc:  # never a broken page: say what went wrong
            answer = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
        self._json(HTTPStatus.OK, answer)


class PoolkitServer(ThreadingHTTPServer):
    """The app's server: a :class:`~http.server.ThreadingHTTPServer` that renders its page once."""

    daemon_threads = True
    verbose = False

    def __init__(self, address, form: dict | None = None):
        super().__init__(address, _Handler)
        self.form = dict(DEFAULT_FORM, **(form or {}))
        self._page: str | None = None
        self._lock = threading.Lock()

    def page(self) -> str:
        with self._lock:
            if self._page is None:
                from .viz.html import page_html

                answer = explain_request(self.form)
                if not answer["ok"]:
                    raise ValueError(answer["error"])
                self._page = page_html(None, live=True, form=self.form, data=answer["data"])
            return self._page

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in name:
            name = f"[{name}]"
        return f"http://{name}:{port}/"


def make_server(host: str = "127.0.0.1", port: int = 8765, form: dict | None = None) -> PoolkitServer:
    """The app's HTTP server, bound but not yet serving (call ``serve_forever``).

    Parameters
    ----------
    host : str, optional
        The interface to listen on (loopback by default).
    port : int, optional
        The TCP port; 0 picks a free one (see ``server.url``).
    form : dict, optional
        The form's initial values (default :data:`DEFAULT_FORM`).

    Returns
    -------
    server : PoolkitServer
        Bound to ``(host, port)`` and not yet serving: run ``server.serve_forever()`` (in a thread
        of its own for a background app) and stop it with ``server.shutdown()``; its page is at
        ``server.url``.

    Examples
    --------
    >>> from poolkit.serve import make_server
    >>> server = make_server(port=0)
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.server_close()
    """
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a host name or address, got {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in [0, 65535], got {port!r}")
    server = PoolkitServer((host, port), form)
    server.page()  # a bad initial form fails now, not on the first request
    return server


def is_loopback(host: str) -> bool:
    """Whether ``host`` names the loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
