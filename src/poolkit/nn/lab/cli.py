"""The ``poolkit lab`` subcommand: ``train`` and ``claims``.

:func:`add_lab` follows :mod:`poolkit.cli`'s conventions: it takes the subparsers object, adds the
``lab`` parser (with its own sub-subcommands), sets ``run(args) -> int`` on each, and returns the
parser.  Bad arguments raise ``ValueError``/``OSError`` (one line, exit status 2, from
``poolkit.cli.main``); a missing extra (scikit-learn, matplotlib) prints one line and returns 1.

While a lab command runs, BLAS is limited to one thread (``threadpoolctl``, which comes with
scikit-learn): the matrix products here are small, and a second BLAS thread made a training step
up to ten times slower when the machine's other core was busy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_lab", "run_train", "run_claims_command"]

_LAB_HELP = """\
Train small convolutional networks written with poolkit.nn (NumPy inside) on real hand-written
digits (scikit-learn's bundled load_digits: nothing is downloaded), and measure what is claimed
about pooling.  Needs the lab and plot extras: pip install 'poolkit[lab,plot]'."""

_TRAIN_HELP = """\
Train the LeNet-style digit classifier
  Conv2d(1,8,3,p=1) ReLU DOWN Conv2d(8,16,3,p=1) ReLU DOWN Flatten Linear(->10)
on 1,347 digits (20x20), test it on the 450 held-out ones, and write into DIR the weights
(lenet-POOL.npz, the state_dict: np.load it and pass it to model.load_state_dict) and the loss and
accuracy curves (lenet-POOL.png).  DOWN is the pooling choice:
  max      MaxPool2d(2)                 avg   AvgPool2d(2)
  lp       LPPool2d(2, 2)               none  no downsampling
  maxblur  MaxBlurPool2d: max (stride 1) + binomial blur (stride 2), Zhang 2019
  stride   Conv2d(c, c, 3, stride=2, padding=1) + ReLU (learned downsampling)"""

_CLAIMS_HELP = """\
Train the network with every pooling choice over several seeds and measure six claims:
accuracy, over-fitting, compute and memory, translation invariance (and rotations, scalings),
receptive fields (closed form against the gradient), and fixed-length outputs for variable-length
text (masked max pooling).  Writes claims.md, claims.json and claims.png into DIR; every verdict
is computed from the numbers.  The defaults take a few minutes on 2 cores; --quick takes seconds."""


class _MissingExtra(Exception):
    pass


def _require(module: str, extra: str):
    try:
        return __import__(module)
    except ImportError:
        raise _MissingExtra(f"needs {module.split('.')[0]} (pip install 'poolkit[{extra}]')") from None


@contextlib.contextmanager
def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _checked(name: str, convert, kind: str, ok, rule: str):
    """An argparse ``type``: ``convert(text)`` (else "must be ``kind``"), which must pass ``ok`` (else
    "must be ``rule``", showing the value as read)."""
    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {kind}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{name} must be {rule}, got {v if convert is int else repr(text)}")
        return v
    return parse


def _positive(name: str):
    return _checked(name, int, "an int", lambda v: v >= 1, ">= 1")


def _float(name: str):
    return _checked(name, float, "a number", lambda v: v > 0, "> 0")


def add_lab(sub) -> argparse.ArgumentParser:
    """Add ``lab`` (with ``train`` and ``claims``) to the ``poolkit`` subparsers ``sub``; return its parser.

    Examples
    --------
    >>> import argparse
    >>> from poolkit.nn.lab.cli import add_lab
    >>> parser = argparse.ArgumentParser(prog="poolkit")
    >>> _ = add_lab(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["lab", "train", "--pool", "avg", "--epochs", "5"])
    >>> args.pool, args.epochs, args.run.__name__
    ('avg', 5, 'run_train')
    """
    from .models import POOLS

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("lab", help="train networks on real digits and measure the claims about pooling",
                       description=_LAB_HELP, formatter_class=fmt)
    labsub = p.add_subparsers(dest="lab_command", metavar="LABCOMMAND", required=True, parser_class=type(p))

    t = labsub.add_parser("train", help="train the digit classifier with one pooling choice",
                          description=_TRAIN_HELP, formatter_class=fmt)
    t.add_argument("--pool", choices=POOLS, default="max", help="the downsampling (default: max)")
    t.add_argument("--epochs", type=_positive("--epochs"), default=30, metavar="N", help="epochs (default: 30)")
    t.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the weights and batch order (default: 0)")
    t.add_argument("--lr", type=_float("--lr"), default=3e-3, metavar="LR",
                   help="Adam learning rate, cosine-decayed over the epochs (default: 0.003)")
    t.add_argument("--batch-size", type=_positive("--batch-size"), default=32, metavar="B", help="default: 32")
    t.add_argument("--out", metavar="DIR", default="poolkit-lab", help="output directory (default: ./poolkit-lab)")
    t.add_argument("--json", metavar="FILE", help='also write {"pool", "test_accuracy", "train_accuracy", '
                                                  '"seconds", "epochs"} to FILE')
    t.set_defaults(run=run_train, prog=t.prog)

    c = labsub.add_parser("claims", help="measure the six claims over every pooling choice and several seeds",
                          description=_CLAIMS_HELP, formatter_class=fmt)
    c.add_argument("--out", metavar="DIR", default="poolkit-lab", help="output directory (default: ./poolkit-lab)")
    c.add_argument("--seeds", type=_positive("--seeds"), default=None, metavar="N",
                   help="seeds per pooling choice (default: 3; 1 with --quick)")
    c.add_argument("--epochs", type=_positive("--epochs"), default=None, metavar="N",
                   help="epochs per training run (default: 30; 2 with --quick)")
    c.add_argument("--quick", action="store_true",
                   help="a reduced setting for CI: 1 seed, 2 epochs, fewer images and sequences (seconds)")
    c.set_defaults(run=run_claims_command, prog=c.prog)
    p.set_defaults(prog=p.prog)
    return p


def _check_out(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {path!r} exists and is not a directory")
    return out


def _missing(args, exc) -> int:
    print(f"{getattr(args, 'prog', 'poolkit lab')}: {exc}", file=sys.stderr)
    return 1


def run_train(args) -> int:
    """``poolkit lab train``: train, save ``lenet-POOL.npz`` and ``lenet-POOL.png``, print the accuracy.

    ``args`` as parsed by the parser of :func:`add_lab` (see its example); returns the exit status.
    """
    out = _check_out(args.out)
    if args.json:
        from poolkit.cli import _check_writable  # the poolkit command's own check (it imports this module)

        _check_writable(args.json)
    try:
        _require("sklearn", "lab")
        _require("matplotlib", "plot")
    except _MissingExtra as exc:
        return _missing(args, exc)
    from . import data, models, train

    print(f"poolkit lab train: pool {args.pool}, {args.epochs} epochs, seed {args.seed}, Adam lr {args.lr:g}, "
          f"batch {args.batch_size}", flush=True)
    digits = data.load_digits()
    print(f"data: {len(digits.x_train)} training and {len(digits.x_test)} test digits, "
          f"{digits.shape[1]}x{digits.shape[2]} (scikit-learn's load_digits, upscaled)", flush=True)
    model = models.make_lenet(args.pool, rng=np.random.default_rng(args.seed))
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
    print(model, flush=True)
    cfg = train.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    with _one_blas_thread():
        hist = train.fit(model, digits.x_train, digits.y_train, digits.x_test, digits.y_test, cfg,
                         train.Progress())
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"lenet-{args.pool}.npz"
    state: dict[str, Any] = dict(model.state_dict())
    np.savez(weights, **state)
    curve = out / f"lenet-{args.pool}.png"
    _plot_curve(hist, args.pool, curve)
    result = {"pool": args.pool, "test_accuracy": hist.test_accuracy[-1], "train_accuracy": hist.train_accuracy[-1],
              "seconds": round(hist.seconds, 3), "epochs": args.epochs}
    print(f"test accuracy {result['test_accuracy']:.4f} ({round(result['test_accuracy'] * len(digits.y_test))}/"
          f"{len(digits.y_test)}), train accuracy {result['train_accuracy']:.4f}, {hist.seconds:.1f} s of training")
    print(f"wrote {weights.resolve()}")
    print(f"wrote {curve.resolve()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {Path(args.json).resolve()}")
    return 0


def _plot_curve(hist, pool: str, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    a, b = fig.subplots(1, 2)
    ep = np.arange(1, len(hist.loss) + 1)
    a.plot(ep, hist.loss, "o-", ms=3)
    a.set_yscale("log")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss (cross-entropy)")
    a.set_title(f"LeNet with {pool} pooling: loss")
    a.grid(alpha=0.3)
    b.plot(ep, hist.train_accuracy, "o-", ms=3, label="train")
    b.plot(ep, hist.test_accuracy, "s-", ms=3, label=f"test (final {hist.test_accuracy[-1]:.4f})")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.set_ylim(max(0.0, min(hist.test_accuracy + hist.train_accuracy) - 0.02), 1.0)
    b.set_title("accuracy")
    b.legend(loc="lower right")
    b.grid(alpha=0.3)
    fig.savefig(path, dpi=90)


def run_claims_command(args) -> int:
    """``poolkit lab claims``: run :func:`poolkit.nn.lab.claims.run_claims` and print the verdicts.

    ``args`` as parsed by the parser of :func:`add_lab` (see its example); returns the exit status.
    """
    out = _check_out(args.out)
    try:
        _require("sklearn", "lab")
        _require("matplotlib", "plot")
    except _MissingExtra as exc:
        return _missing(args, exc)
    from . import claims

    cfg = claims.quick_config() if args.quick else claims.ClaimsConfig()
    if args.seeds is not None:
        cfg.seeds = args.seeds
    if args.epochs is not None:
        cfg.epochs = args.epochs
    print(f"poolkit lab claims: pools {', '.join(cfg.pools)}; {cfg.seeds} seed(s), {cfg.epochs} epochs each"
          + (" (--quick)" if cfg.quick else ""), flush=True)
    start = time.monotonic()

    def log(text: str) -> None:
        print(text, flush=True)

    with _one_blas_thread():
        res = claims.run_claims(out, cfg, log=log)
    v = res["verdicts"]
    print(f"\nverdicts ({time.monotonic() - start:.0f} s):")
    if "accuracy" in v:
        print(f"  1. accuracy (max > none):           {v['accuracy']['verdict']}")
        print(f"  2. over-fitting (max gap < none):   {v['overfitting']['verdict']}")
        print(f"  3. compute and memory (max < none): {v['compute']['verdict']}")
        inv = v["invariance"]
        print(f"  4a. shift consistency (max > none): {inv['max_vs_none_shift']['verdict']}")
        print(f"  4a. shifted feature similarity (max > none): {inv['features_max_vs_none']['verdict']}")
        if "maxblur_vs_max_shift" in inv:
            print(f"  4b. shift consistency (maxblur > max): {inv['maxblur_vs_max_shift']['verdict']}")
            print(f"  4b. shifted feature similarity (maxblur > max): {inv['features_maxblur_vs_max']['verdict']}")
    print(f"  5. receptive field closed form = measured: {v['receptive_field']['verdict']} "
          f"({v['receptive_field']['agree']}/{v['receptive_field']['layers']} layers)")
    print(f"  6. masked pooling, padded batch = per sequence: {v['text']['verdict']}")
    for name in ("claims.md", "claims.json", "claims.png"):
        print(f"wrote {(out / name).resolve()}")
    return 0
