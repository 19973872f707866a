"""The lab's training loop: mini-batch Adam on the digits, with progress lines.

Everything is seeded: the weights (``numpy.random.default_rng(seed)`` passed to every layer) and
the order of the mini-batches (a second generator from the same seed), so a run is reproducible
on one machine.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ... import nn

__all__ = ["TrainConfig", "History", "predict", "accuracy", "fit", "Progress"]


@dataclass
class TrainConfig:
    """Hyper-parameters of ``poolkit lab train`` (the defaults are the lab's).

    ``cosine`` anneals the learning rate from ``lr`` to ``lr / 100`` over the epochs.

    Examples
    --------
    >>> from poolkit.nn.lab.train import TrainConfig
    >>> TrainConfig(epochs=2)
    TrainConfig(epochs=2, batch_size=32, lr=0.003, seed=0, cosine=True)
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    cosine: bool = True


@dataclass
class History:
    """Per-epoch curves and the final figures of one training run (see :func:`fit`'s example)."""

    loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    train_seconds: list = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"loss": self.loss, "train_accuracy": self.train_accuracy, "test_accuracy": self.test_accuracy,
                "epoch_seconds": self.epoch_seconds, "train_seconds": self.train_seconds, "seconds": self.seconds}


class Progress:
    """Progress lines on stdout: one per epoch (``every_epoch``, else only when ``every`` seconds have
    passed since the last line), and one within an epoch whenever ``every`` seconds passed without one.

    Examples
    --------
    >>> from poolkit.nn.lab.train import Progress
    >>> Progress("run 1").line("epoch 1/2  loss 0.5")
    run 1 epoch 1/2  loss 0.5
    """

    def __init__(self, label: str = "", every: float = 1.5, stream=None, quiet: bool = False,
                 every_epoch: bool = True) -> None:
        self.label, self.every, self.quiet, self.every_epoch = label, every, quiet, every_epoch
        self.stream = stream
        self.last = time.monotonic()

    def line(self, text: str) -> None:
        self.last = time.monotonic()
        if not self.quiet:
            out = self.stream or sys.stdout
            out.write((f"{self.label} " if self.label else "") + text + "\n")
            out.flush()

    def tick(self, text_fn: Callable[[], str]) -> None:
        if time.monotonic() - self.last >= self.every:
            self.line(text_fn())

    def epoch(self, text: str) -> None:
        if self.every_epoch:
            self.line(text)
        else:
            self.tick(lambda: text)


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits of ``model`` on ``x``, in batches, keeping nothing for backward.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> from poolkit.nn.lab.train import predict
    >>> predict(nn.Linear(3, 2), np.ones((1200, 3), dtype=np.float32)).shape
    (1200, 2)
    """
    outs = []
    with nn.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(x[i:i + batch_size]))
    return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=np.float32)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` whose arg-max logit is ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> from poolkit.nn.lab.train import accuracy
    >>> accuracy(nn.Identity(), np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    0.5
    """
    return float(np.mean(predict(model, x).argmax(axis=1) == y))


def fit(model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
        config: TrainConfig | None = None, progress: Progress | None = None) -> History:
    """Train ``model`` with Adam and cross-entropy; evaluate on both sets after every epoch.

    ``History.seconds`` is the wall time of the whole loop, the per-epoch evaluations included;
    ``History.train_seconds`` the time of each epoch's mini-batch updates alone.

    Examples
    --------
    Two well separated blobs, a linear classifier, three quiet epochs:

    >>> import numpy as np
    >>> from poolkit import nn
    >>> from poolkit.nn.lab.train import TrainConfig, fit
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> x = (rng.normal(size=(200, 2)) + 4 * y[:, None]).astype(np.float32)
    >>> hist = fit(nn.Linear(2, 2, rng=rng), x[:150], y[:150], x[150:], y[150:], TrainConfig(epochs=3, lr=0.1))
    >>> len(hist.loss), hist.test_accuracy[-1] > 0.9
    (3, True)
    """
    config = config or TrainConfig()
    progress = progress or Progress(quiet=True)
    rng = np.random.default_rng([config.seed, 1])
    opt = nn.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    hist = History()
    n = len(x_train)
    n_batches = -(-n // config.batch_size)
    start = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        t0 = time.monotonic()
        if config.cosine:  # cosine annealing of the learning rate, epoch by epoch, down to lr / 100
            frac = (epoch - 1) / max(config.epochs, 1)
            opt.param_groups[0]["lr"] = config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        model.train()
        order = rng.permutation(n)
        total, seen = 0.0, 0
        for b in range(n_batches):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            logits = model(x_train[idx])
            loss = loss_fn(logits, y_train[idx])
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            total += float(loss) * len(idx)
            seen += len(idx)
            progress.tick(lambda: f"epoch {epoch}/{config.epochs}  batch {b + 1}/{n_batches}  loss {total / seen:.4f}")
        t_train = time.monotonic() - t0
        model.eval()
        train_acc = accuracy(model, x_train, y_train)
        test_acc = accuracy(model, x_test, y_test)
        dt = time.monotonic() - t0
        hist.loss.append(total / seen)
        hist.train_accuracy.append(train_acc)
        hist.test_accuracy.append(test_acc)
        hist.epoch_seconds.append(dt)
        hist.train_seconds.append(t_train)
        progress.epoch(f"epoch {epoch}/{config.epochs}  loss {total / seen:.4f}  train acc {train_acc:.4f}  "
                      f"test acc {test_acc:.4f}  ({dt:.1f} s)")
    hist.seconds = time.monotonic() - start
    return hist
