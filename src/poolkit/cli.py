"""The ``poolkit`` command line: ``demo``, ``explain``, ``show``, ``serve``, ``warmup`` and ``lab``.

Every subcommand is registered by one ``_add_<name>(subparsers)`` function listed in
:data:`COMMANDS`; it builds its parser and sets ``run`` to the function that carries it out
(``run(args) -> int``).  Adding a subcommand means writing such a function and appending it.

Exit status: 0 on success, 2 for bad arguments or unreadable input (one line on stderr, never
a traceback), 1 when an extra the command needs (plot, lab) is missing.

The command line is never silent for long: the library's log (a kernel compiled on first use) is
printed on stderr, and while a command runs a heartbeat says "still working" whenever nothing has
been printed for :data:`HEARTBEAT_SECONDS` (``serve``, which waits for requests, has none).
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

import poolkit as _pk

from .explanation import (
    MAX_CELLS,
    MAX_WINDOWS,
    OPS,
    explain_pooling,
    format_explanation,
    format_matrix,
    format_number,
)
from .nn.lab.cli import add_lab
from .pyramid import add_pyramid

__all__ = ["main", "build_parser", "load_matrix", "format_matrix", "format_explanation", "COMMANDS"]

#: The worked examples of ``poolkit demo``.
EXAMPLE_4X4 = ((1, 3, 2, 1), (2, 9, 1, 1), (1, 4, 2, 3), (5, 6, 1, 2))
EXAMPLE_3X3 = ((1, 2, 3), (4, 5, 6), (7, 8, 9))

#: ``poolkit explain`` refuses to list more windows than this (and more window cells than MAX_CELLS).
MAX_EXPLAIN_WINDOWS = MAX_WINDOWS

_PLOT_HINT = "pip install 'poolkit[plot]'  (or: pip install matplotlib pillow)"

#: Longest silence, in seconds, before the command line says it is still working.
HEARTBEAT_SECONDS = 2.0


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=30)


def _one_line(message) -> str:
    return " ".join(str(message).split())


# ---------------------------------------------------------------------------------------------
# parsing matrices and sizes
# ---------------------------------------------------------------------------------------------


def load_matrix(text: str, what: str = "MATRIX") -> np.ndarray:
    """A matrix from a literal such as ``[[1,2],[3,4]]`` or from a ``.npy``/``.csv`` file.

    Literals are read with :func:`ast.literal_eval` (never ``eval``); CSV files are
    comma-separated numbers, one row per line.

    Examples
    --------
    >>> from poolkit.cli import load_matrix
    >>> load_matrix("[[1, 2], [3, 4]]")
    array([[1, 2],
           [3, 4]])
    >>> load_matrix("[0.5, -1]")
    array([ 0.5, -1. ])
    """
    text = text.strip()
    lower = text.lower()
    if lower.endswith((".npy", ".csv")) or os.path.isfile(text):
        if not os.path.isfile(text):
            raise OSError(f"{what}: no such file {text!r}")
        if lower.endswith(".npy"):
            try:
                arr = np.load(text, allow_pickle=False)
            except ValueError as exc:
                raise ValueError(f"{what}: {text!r} is not a plain .npy array ({_one_line(exc)})") from None
        elif lower.endswith(".csv"):
            try:
                arr = np.loadtxt(text, delimiter=",", ndmin=2, dtype=np.float64)
            except ValueError as exc:
                raise ValueError(f"{what}: {text!r} is not a CSV of numbers ({_one_line(exc)})") from None
        else:
            raise ValueError(f"{what}: {text!r} is a file but neither .npy nor .csv")
    else:
        try:
            value = ast.literal_eval(text)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            raise ValueError(f"{what} must be a literal like [[1,2],[3,4]] or a .npy/.csv file, got {text!r}") from None
        try:
            arr = np.array(value)
        except ValueError:
            raise ValueError(f"{what} must be rectangular (every row the same length), got {text!r}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold real numbers, got {text!r}")
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D or 2-D array, got {text!r}")
    return arr


def parse_sizes(text: str, n: int, what: str, *, minimum: int = 1) -> tuple:
    """``"2"``, ``"2x3"``, ``"2,3"`` or ``"(2, 3)"`` as ``n`` ints (one int is repeated).

    Examples
    --------
    >>> from poolkit.cli import parse_sizes
    >>> parse_sizes("2", 2, "--kernel"), parse_sizes("2x3", 2, "--kernel")
    ((2, 2), (2, 3))
    """
    t = text.strip().lower().replace("×", ",").replace("x", ",")
    try:
        v = ast.literal_eval(t)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"{what} must be an int like 2 or sizes like 2x2, got {text!r}") from None
    vals = (v,) if isinstance(v, int) else v
    if not isinstance(vals, (tuple, list)) or not all(isinstance(a, int) and not isinstance(a, bool) for a in vals):
        raise ValueError(f"{what} must be an int like 2 or sizes like 2x2, got {text!r}")
    if len(vals) == 1:
        vals = tuple(vals) * n
    if len(vals) != n:
        raise ValueError(f"{what} needs 1 or {n} sizes for a {n}-D input, got {text!r}")
    if any(a < minimum for a in vals):
        raise ValueError(f"{what} must be >= {minimum}, got {text!r}")
    return tuple(vals)


def parse_padding(text: str | None):
    """``--padding``: an int, per-axis ints (``1,0``), pairs (``((0,1),(1,0))``) or a name.

    Examples
    --------
    >>> from poolkit.cli import parse_padding
    >>> parse_padding("1"), parse_padding("1,0"), parse_padding("same"), parse_padding("((0, 1), (1, 0))")
    (1, (1, 0), 'same', ((0, 1), (1, 0)))
    """
    if text is None:
        return 0
    t = text.strip().lower().replace("-", "_")
    if t in ("valid", "same", "same_lower"):
        return t
    try:
        value = ast.literal_eval(text.strip().lower().replace("×", ",").replace("x", ","))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"--padding must be an int, ints like 1,0, pairs like ((0,1),(1,0)), "
                         f"or valid/same/same_lower, got {text!r}") from None
    if isinstance(value, list):
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


# ---------------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------------


def _fmt(v) -> str:
    return format_number(v)


# format_grid, format_matrix and format_explanation live next to the model (poolkit.explanation)
# and are re-exported here.


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------

_DEMO_HELP = """\
Print the worked examples of pooling and write two pictures into DIR:
  feature-extraction.png  image -> filter -> detect (ReLU) -> condense (max and average pooling)
  max-pool.gif            a 2x2 max-pool window sliding over a 4x4 matrix
Everything runs offline on an image drawn by poolkit itself."""


def _add_demo(sub):
    p = sub.add_parser("demo", help="worked examples, the feature-extraction figure and the animation",
                       description=_DEMO_HELP, formatter_class=_Formatter)
    p.add_argument("--out", metavar="DIR", default="poolkit-demo",
                   help="directory for the pictures (created if needed; default: ./poolkit-demo)")
    p.set_defaults(run=_run_demo)
    return p


def _run_demo(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {args.out!r} exists and is not a directory")
    x = np.array(EXAMPLE_4X4)
    y = np.array(EXAMPLE_3X3)
    print(f"poolkit {_pk.__version__} demo: pooling, the condense step of a convolutional network\n")
    print("1. A 4x4 feature map x, pooled with 2x2 windows and stride 2")
    print(format_matrix(x, "   "))
    mx, idx = _pk.max_pool(x, (2, 2), 2, return_indices=True)
    print("   max_pool(x, (2, 2), 2): the largest value of each window")
    print(format_matrix(mx, "   "))
    print("   avg_pool(x, (2, 2), 2): the mean of each window")
    print(format_matrix(_pk.avg_pool(x, (2, 2), 2), "   "))
    print()
    print("2. Overlapping windows: 2x2 windows with stride 1 over a 3x3 matrix")
    print(format_matrix(y, "   "))
    print("   max_pool(y, (2, 2), 1)")
    print(format_matrix(_pk.max_pool(y, (2, 2), 1), "   "))
    print()
    winners = ", ".join(f"{_fmt(v)} at {tuple(int(i) for i in np.unravel_index(int(k), x.shape))}"
                        for v, k in zip(mx.ravel(), idx.ravel()))
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    print("3. Backward: max_pool_backward sends each output's gradient to its window's maximum")
    print(f"   (the maxima of example 1: {winners})")
    print("   grad_output")
    print(format_matrix(g, "   "))
    print("   max_pool_backward(grad_output, x, (2, 2), 2)")
    print(format_matrix(_pk.max_pool_backward(g, x, (2, 2), 2), "   "))
    print()
    print("4. Drawing the feature-extraction figure ...")
    sys.stdout.flush()

    viz = _import_viz()
    out.mkdir(parents=True, exist_ok=True)
    fig, stages = viz.feature_figure(viz.sample_image(), viz.get_filter("edge"), kernel_name="edge")
    png = viz.save_figure(fig, out / "feature-extraction.png")
    img, det = stages["image"], stages["detect"]
    print(f"   Feature extraction on a {img.shape[0]}x{img.shape[1]} image: edge filter (3x3) -> ReLU "
          f"{det.shape[0]}x{det.shape[1]} -> 2x2 pooling {stages['max'].shape[0]}x{stages['max'].shape[1]}")
    print(f"   max pooling keeps the peak ({_fmt(round(float(stages['max'].max()), 3))}); "
          f"averaging dilutes it ({_fmt(round(float(stages['avg'].max()), 3))})")
    print(f"   wrote {png.resolve()}")
    ex = explain_pooling(x, "max", (2, 2), 2)
    gif = out / "max-pool.gif"
    n = viz.save_pool_gif(ex, gif)
    print(f"5. A 2x2 max-pool window sliding over example 1 ({n} frames)")
    print(f"   wrote {gif.resolve()}")
    print()
    print("Next: poolkit explain --op avg --kernel 2 --stride 1 --backward '[[1,2,3],[4,5,6],[7,8,9]]'")
    print("      poolkit show YOUR_PHOTO.jpg -o figure.png --filter sobel-x")
    print("      poolkit lab train --pool max   (a CNN on real digits;"
          " poolkit lab claims measures what pooling is for)")
    return 0


def _import_viz():
    try:
        import matplotlib  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as exc:
        raise _MissingPlotting(f"pictures need matplotlib and pillow ({exc.name} is missing): {_PLOT_HINT}") from None
    from . import viz

    return viz


class _MissingPlotting(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------------------------

_EXPLAIN_HELP = """\
Pool a small matrix and show every window: where it lies, its cells, and the result the
engine computes from them; with --backward, also where each window's gradient goes.

MATRIX is a literal such as '[[1,3,2,1],[2,9,1,1]]' (quote it for the shell) or a .npy/.csv file.
1-D and 2-D matrices work; cells shown as 'pad' lie in the padding, '--' past it (ceil mode)."""

_EXPLAIN_EPILOG = """\
examples:
  poolkit explain --op max --kernel 2 --stride 2 '[[1,3,2,1],[2,9,1,1],[1,4,2,3],[5,6,1,2]]'
  poolkit explain --op avg --kernel 3 --stride 2 --padding 1 --ceil --backward data.npy
  poolkit explain --op max --kernel 2 --stride 1 --gif window.gif '[[1,2,3],[4,5,6],[7,8,9]]'
  poolkit explain --op avg --kernel 3 --stride 2 --padding same --backward --html page.html data.csv"""


def _add_explain(sub):
    p = sub.add_parser("explain", help="step-by-step account of every pooling window of a matrix",
                       description=_EXPLAIN_HELP, epilog=_EXPLAIN_EPILOG, formatter_class=_Formatter)
    p.add_argument("matrix", nargs="+", metavar="MATRIX", help="literal like [[1,2],[3,4]], or a .npy/.csv file")
    p.add_argument("--op", choices=tuple(OPS), default="max", help="pooling operation (default: max)")
    p.add_argument("--kernel", "-k", metavar="K", required=True, help="window size: 2, 2x3 or 2,3")
    p.add_argument("--stride", "-s", metavar="S", help="step between windows (default: the kernel size)")
    p.add_argument("--padding", metavar="P",
                   help="an int, per-axis ints like 1,0, pairs like ((0,1),(1,0)), or valid/same/same_lower")
    p.add_argument("--dilation", metavar="D", default="1", help="spacing between window cells (default: 1)")
    p.add_argument("--ceil", action="store_true", help="ceil mode: round the output size up")
    p.add_argument("--p", type=float, metavar="P", help="the norm's order for --op lp (default: 2)")
    p.add_argument("--exclude-pad", action="store_true",
                   help="--op avg: divide by the cells inside the input only (count_include_pad=False)")
    p.add_argument("--backward", action="store_true", help="also show where the gradient of each window goes")
    p.add_argument("--grad", metavar="MATRIX",
                   help="with --backward: the output's gradient (default: 1, 2, ... in output order)")
    p.add_argument("--gif", metavar="FILE", help="also write the sliding-window animation to FILE")
    p.add_argument("--html", metavar="FILE",
                   help="also write the interactive page to FILE (one self-contained file, works offline)")
    p.set_defaults(run=_run_explain)
    return p


def _run_explain(args) -> int:
    x = load_matrix(" ".join(args.matrix), "MATRIX")
    if x.ndim not in (1, 2):
        raise ValueError(f"MATRIX must be 1-D or 2-D, got shape {x.shape}")
    nd = x.ndim
    kernel = parse_sizes(args.kernel, nd, "--kernel")
    stride = None if args.stride is None else parse_sizes(args.stride, nd, "--stride")
    dilation = parse_sizes(args.dilation, nd, "--dilation")
    padding = parse_padding(args.padding)
    if args.p is not None and args.op != "lp":
        raise ValueError("--p applies to --op lp only")
    if args.exclude_pad and args.op != "avg":
        raise ValueError("--exclude-pad applies to --op avg only")
    if args.grad is not None and not args.backward:
        raise ValueError("--grad needs --backward")
    grad = None if args.grad is None else load_matrix(args.grad, "--grad")
    if grad is not None and grad.ndim != nd:
        grad = grad.reshape(-1) if nd == 1 and grad.size == max(grad.shape) else grad
    if args.gif:
        _check_writable(args.gif)
        viz = _import_viz()
    if args.html:
        _check_writable(args.html)
    ex = explain_pooling(x, args.op, kernel, stride, padding, dilation=dilation, ceil_mode=args.ceil,
                         p=2.0 if args.p is None else args.p, count_include_pad=not args.exclude_pad,
                         backward=args.backward, grad_output=grad, max_windows=MAX_EXPLAIN_WINDOWS,
                         max_cells=MAX_CELLS)
    print(format_explanation(ex, default_grad=args.grad is None))
    if args.gif:
        n = viz.save_pool_gif(ex, args.gif)
        print(f"\nwrote {Path(args.gif).resolve()} ({n} frames, one per window)")
    if args.html:
        from .viz.html import save_page

        path = save_page(ex, args.html)
        print(f"\nwrote {path.resolve()} (the interactive page: open it in a web browser)")
    return 0


# ---------------------------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------------------------

_SERVE_HELP = """\
The interactive page as a live app in your web browser: edit the matrix (or load a .npy, .csv or
image file), change the operation, kernel, stride, padding, dilation, ceil mode, divisor and p,
and see how PyTorch, TensorFlow and ONNX compute the same layer; the engine recomputes every change.
Listens on the loopback interface (this machine only) unless --host says otherwise."""


def _add_serve(sub):
    p = sub.add_parser("serve", help="the interactive page as a live app (a local web server)",
                       description=_SERVE_HELP, formatter_class=_Formatter)
    p.add_argument("--port", type=int, default=8765, metavar="N", help="TCP port (default: 8765; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", metavar="HOST",
                   help="interface to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--open", action="store_true", help="open the app in the default web browser")
    p.set_defaults(run=_run_serve, heartbeat=False)
    return p


def _run_serve(args) -> int:
    from .serve import MAX_SERVE_CELLS, is_loopback, make_server

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    server = make_server(args.host, args.port)
    try:
        if not is_loopback(args.host):
            print(f"warning: listening on {args.host}: anyone who can reach this machine can use the app",
                  file=sys.stderr)
        print(f"poolkit {_pk.__version__} serving the interactive page at {server.url}  (Ctrl+C stops it; "
              f"matrices up to {MAX_SERVE_CELLS} cells)", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(server.url)
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# ---------------------------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------------------------

_SHOW_HELP = """\
The feature-extraction figure for your own image (PNG, JPEG, ...; read as grayscale):
image -> filter (a convolution kernel) -> detect (ReLU) -> condense (max and/or average pooling).
Shown in a window, or written to FIG with -o (PNG, PDF or SVG by its extension)."""

_SHOW_EPILOG = """\
examples:
  poolkit show photo.jpg -o figure.png
  poolkit show photo.jpg --filter sobel-y --op max --kernel 3 --stride 2
  poolkit show photo.png --filter '[[0,1,0],[1,-4,1],[0,1,0]]' -o laplace.png"""


def _add_show(sub):
    from .viz.images import FILTERS

    p = sub.add_parser("show", help="the feature-extraction figure for your own image",
                       description=_SHOW_HELP, epilog=_SHOW_EPILOG, formatter_class=_Formatter)
    p.add_argument("image", metavar="IMAGE", help="a PNG/JPEG image")
    p.add_argument("-o", "--output", metavar="FIG", help="write the figure to FIG instead of showing it")
    p.add_argument("--filter", default="edge", metavar="NAME|FILE",
                   help=f"{'|'.join(FILTERS)}, or a kernel as a literal or .npy/.csv file (default: edge)")
    p.add_argument("--op", choices=("max", "avg"), help="only this pooling (default: both, side by side)")
    p.add_argument("--kernel", "-k", metavar="K", default="2", help="pooling window: 2 or 2x2 (default: 2)")
    p.add_argument("--stride", "-s", metavar="S", help="pooling stride (default: the kernel size)")
    p.add_argument("--max-side", type=int, default=256, metavar="N",
                   help="shrink the image so its longer side is at most N pixels, 0 to keep it (default: 256)")
    p.set_defaults(run=_run_show)
    return p


def _run_show(args) -> int:
    viz = _import_viz()
    if args.max_side < 0:
        raise ValueError(f"--max-side must be >= 0, got {args.max_side}")
    if args.filter in viz.FILTERS:
        kernel, name = viz.get_filter(args.filter), args.filter
    else:
        kernel = load_matrix(args.filter, "--filter")
        name = Path(args.filter).name if os.path.isfile(args.filter) else "custom"
        if kernel.ndim != 2:
            raise ValueError(f"--filter must be a 2-D kernel or one of {', '.join(viz.FILTERS)}, got {args.filter!r}")
    pool_kernel = parse_sizes(args.kernel, 2, "--kernel")
    stride = None if args.stride is None else parse_sizes(args.stride, 2, "--stride")
    if args.output is not None:
        _check_writable(args.output)
        viz.check_figure_path(args.output)
    if args.output is None and not viz.display_available():
        raise ValueError("no display to show the figure on; write it to a file with -o FIG.png")
    if not Path(args.image).is_file():
        raise OSError(f"no such image file {args.image!r}")
    try:
        image = viz.load_image(args.image, max_side=args.max_side or None)
    except OSError as exc:
        raise OSError(f"cannot read {args.image!r} as an image ({_one_line(exc)})") from None
    ops = (args.op,) if args.op else ("max", "avg")
    fig, stages = viz.feature_figure(image, kernel, kernel_name=name, pool_kernel=pool_kernel, stride=stride,
                                     ops=ops, title=f"Feature extraction: {Path(args.image).name}",
                                     interactive=args.output is None)
    if args.output is None:
        import matplotlib.pyplot as plt

        plt.show()
    else:
        path = viz.save_figure(fig, args.output)
        print(f"wrote {path.resolve()} ({len(fig.axes)} panels: image {_shape(stages['image'])} -> "
              + " -> ".join(f"{k} {_shape(stages[k])}" for k in ("filter", "detect") + ops) + ")")
    return 0


def _check_writable(path) -> None:
    """Fail early, before any work, when ``path`` cannot be written."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OSError(f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist")
    if p.is_dir():
        raise OSError(f"cannot write {str(path)!r}: it is a directory")


def _shape(a) -> str:
    return "x".join(str(s) for s in a.shape)


# ---------------------------------------------------------------------------------------------
# warmup
# ---------------------------------------------------------------------------------------------

_WARMUP_HELP = """\
Compile poolkit's kernels now, with a progress bar, so that no later call waits for one (numba
compiles each kernel and dtype on first use -- a second or two each -- and keeps it in its on-disk
cache, NUMBA_CACHE_DIR).  For Docker images, classrooms and CI caches."""


def _add_warmup(sub):
    from ._warmup import WARMUP_DTYPES

    p = sub.add_parser("warmup", help="compile the kernels ahead of time", description=_WARMUP_HELP,
                       formatter_class=_Formatter)
    p.add_argument("--dtypes", metavar="LIST", default=",".join(WARMUP_DTYPES),
                   help=f"comma-separated input dtypes (default: {','.join(WARMUP_DTYPES)})")
    p.set_defaults(run=_run_warmup)
    return p


def _run_warmup(args) -> int:
    dtypes = []
    for name in (d.strip() for d in args.dtypes.split(",")):
        try:
            dt = np.dtype(name)
        except TypeError:
            raise ValueError(f"--dtypes must list NumPy dtypes such as float32,uint8, got {name!r}") from None
        if dt.kind not in "biuf" or (dt.kind == "f" and dt.itemsize > 8):
            raise ValueError(f"--dtypes: poolkit computes bool, integer and float (up to 64-bit) dtypes, got {name!r}")
        dtypes.append(dt)
    bar = _ProgressBar("warmup")
    start = time.monotonic()
    log = logging.getLogger("poolkit")
    level = log.level
    log.setLevel(logging.WARNING)  # the bar says what is being compiled
    try:
        n = _pk.warmup(dtypes, progress=bar.update)
    finally:
        log.setLevel(level)
        bar.close()
    print(f"{n} kernel calls ready for {', '.join(map(str, dtypes))} in {time.monotonic() - start:.1f} s "
          f"(numba cache: {_cache_dir()})")
    return 0


def _cache_dir() -> str:
    return os.environ.get("NUMBA_CACHE_DIR") or "next to the installed package (__pycache__)"


class _ProgressBar:
    """``label [#####.....] done/total  step`` on stderr: redrawn in place on a terminal, one line
    per step otherwise."""

    def __init__(self, label: str, width: int = 30):
        self.label, self.width = label, width
        self.tty = sys.stderr.isatty()

    def update(self, done: int, total: int, step: str) -> None:
        filled = self.width * done // max(total, 1)
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}  {step}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(100)[:100])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# never silent: the library's log on stderr, and a heartbeat
# ---------------------------------------------------------------------------------------------


class _Watched:
    """A text stream that records when it was last written to (for the heartbeat)."""

    def __init__(self, stream, beat):
        self._stream, self._beat = stream, beat

    def write(self, text):
        self._beat.last = time.monotonic()
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Heartbeat:
    """While a command runs, print "still working" on stderr after HEARTBEAT_SECONDS of silence."""

    def __init__(self, prog: str):
        self.prog = prog
        self.last = self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poolkit-heartbeat", daemon=True)

    def _run(self):
        while not self._stop.wait(0.25):
            if time.monotonic() - self.last >= HEARTBEAT_SECONDS:
                sys.stderr.write(f"{self.prog}: still working ({time.monotonic() - self.start:.0f} s)\n")
                sys.stderr.flush()

    def __enter__(self):
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Watched(sys.stdout, self), _Watched(sys.stderr, self)
        self._handler = logging.StreamHandler(sys.stderr)
        self._handler.setFormatter(logging.Formatter(f"{self.prog}: %(message)s"))
        log = logging.getLogger("poolkit")
        self._level = log.level
        log.addHandler(self._handler)
        log.setLevel(logging.INFO)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        log = logging.getLogger("poolkit")
        log.removeHandler(self._handler)
        log.setLevel(self._level)
        sys.stdout, sys.stderr = self._saved
        return False


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

#: The subcommands, in the order ``poolkit --help`` lists them.  Each entry takes the
#: subparsers object, adds its parser and sets ``run``; append one to add a subcommand.
COMMANDS = [_add_demo, _add_explain, _add_show, _add_serve, _add_warmup, add_lab, add_pyramid]


def build_parser() -> argparse.ArgumentParser:
    """The ``poolkit`` argument parser with every subcommand of :data:`COMMANDS`."""
    parser = _Parser(
        prog="poolkit",
        description="poolkit: exact, fast pooling on NumPy arrays -- and pictures of it.",
        epilog="Run 'poolkit COMMAND --help' for the options of a command.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"poolkit {_pk.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in COMMANDS:
        p = add(sub)
        p.allow_abbrev = False
        p.set_defaults(prog=p.prog)
    return parser


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main(argv=None) -> int:
    """Run the ``poolkit`` command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return _exit_code(exc.code)
    try:
        if not getattr(args, "heartbeat", True):  # serve: waiting for requests is not work
            return int(args.run(args) or 0)
        with _Heartbeat(args.prog):
            return int(args.run(args) or 0)
    except _MissingPlotting as exc:
        print(f"{args.prog}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `poolkit explain ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        print(f"{args.prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, IndexError, MemoryError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.filename and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.filename:
            message = f"{message}: {exc.filename!r}"
        print(f"{args.prog}: error: {_one_line(message)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
