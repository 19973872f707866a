"""The lab's data: real hand-written digits, a generated text task, and image transforms.

Digits: scikit-learn's bundled ``load_digits`` -- 1,797 real 8x8 hand-written digits (UCI), shipped
inside scikit-learn, so nothing is downloaded.  Each image (values 0..16) is scaled to [0, 1],
upscaled to 16x16 by bilinear interpolation (PyTorch's ``F.interpolate(scale_factor=2,
mode="bilinear", align_corners=False)``) and zero-padded by 2 pixels to 20x20, so that shifts of a
few pixels, rotations and scalings move the digit without cutting it.  The held-out test set is
``train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)``: 1,347 training and 450 test
images.

Text: :func:`make_motif_task` generates variable-length token sequences whose class is which of
four ordered trigrams of the *same* three tokens was planted somewhere in them -- order matters, so
a bag of words cannot solve it, while a width-3 convolution followed by max pooling over time can,
at any length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Digits", "load_digits", "bilinear_matrix", "upscale", "shift", "affine", "TextTask", "make_motif_task",
           "pad_batch"]

#: Side of the lab's digit images and the zero margin around the 16x16 digit.
IMAGE_SIZE = 20
MARGIN = 2


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix of 1-D bilinear interpolation with ``align_corners=False``.

    Examples
    --------
    >>> from poolkit.nn.lab.data import bilinear_matrix
    >>> bilinear_matrix(2, 4) @ [0.0, 4.0]
    array([0., 1., 3., 4.])
    """
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(int(math.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1 - frac
        m[i, hi] += frac
    return m


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upscaling of ``(N, h, w)`` images to ``(N, size, size)`` (``align_corners=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.data import upscale
    >>> upscale(np.array([[[0.0, 4.0], [4.0, 8.0]]]), 4)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    mh = bilinear_matrix(images.shape[1], size)
    mw = bilinear_matrix(images.shape[2], size)
    return np.einsum("ih,nhw,jw->nij", mh, images, mw)


@dataclass
class Digits:
    """The lab's digits: ``(N, 1, 20, 20)`` float32 images in [0, 1] and int64 labels.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.data import Digits
    >>> d = Digits(np.zeros((3, 1, 20, 20)), np.zeros(3), np.zeros((1, 1, 20, 20)), np.zeros(1))
    >>> d.shape
    (1, 20, 20)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def shape(self) -> tuple:
        return self.x_train.shape[1:]


def load_digits() -> Digits:
    """scikit-learn's digits, split 75/25 (stratified, ``random_state=0``), as 20x20 images.

    Needs scikit-learn (``pip install 'poolkit[lab]'``).

    Examples
    --------
    >>> from poolkit.nn.lab.data import load_digits
    >>> d = load_digits()                                     # doctest: +SKIP
    >>> d.x_train.shape, d.x_test.shape, d.x_train.dtype      # doctest: +SKIP
    ((1347, 1, 20, 20), (450, 1, 20, 20), dtype('float32'))
    """
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    bunch = _load()
    x = bunch.images.astype(np.float64) / 16.0
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)

    def prep(imgs):
        big = upscale(imgs, IMAGE_SIZE - 2 * MARGIN)
        big = np.pad(big, ((0, 0), (MARGIN, MARGIN), (MARGIN, MARGIN)))
        return np.clip(big, 0.0, 1.0).astype(np.float32)[:, None]

    return Digits(prep(x_tr), y_tr, prep(x_te), y_te)


# ---------------------------------------------------------------------------------------------
# transforms of (N, C, H, W) images (zero fill outside)
# ---------------------------------------------------------------------------------------------


def shift(images: np.ndarray, dy, dx) -> np.ndarray:
    """Shift each image by whole pixels (down ``dy``, right ``dx``), filling with zeros.

    ``dy`` and ``dx`` are ints or one int per image.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.data import shift
    >>> shift(np.arange(1., 5).reshape(1, 1, 2, 2), 0, 1)[0, 0]
    array([[0., 1.],
           [0., 3.]])
    """
    n = images.shape[0]
    dy = np.broadcast_to(np.asarray(dy, dtype=np.int64), (n,))
    dx = np.broadcast_to(np.asarray(dx, dtype=np.int64), (n,))
    h, w = images.shape[-2:]
    out = np.zeros_like(images)
    for i in range(n):
        a, b = int(dy[i]), int(dx[i])
        src = images[i, ..., max(0, -a):h - max(0, a), max(0, -b):w - max(0, b)]
        out[i, ..., max(0, a):max(0, a) + src.shape[-2], max(0, b):max(0, b) + src.shape[-1]] = src
    return out


def affine(images: np.ndarray, angle_deg=0.0, scale=1.0) -> np.ndarray:
    """Rotate (counter-clockwise, degrees) and scale each image about its centre; bilinear, zero fill.

    ``angle_deg`` and ``scale`` are numbers or one per image.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.data import affine
    >>> x = np.zeros((1, 1, 5, 5)); x[0, 0, 2, 4] = 1
    >>> np.argwhere(affine(x, 90)[0, 0] > 0.99).tolist()     # the right edge goes to the top
    [[0, 2]]
    """
    n = images.shape[0]
    angles = np.broadcast_to(np.asarray(angle_deg, dtype=np.float64), (n,))
    scales = np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,))
    h, w = images.shape[-2:]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros_like(images)
    for i in range(n):
        t = math.radians(float(angles[i]))
        s = float(scales[i])
        # inverse map: output pixel -> input position (rotate by -t, scale by 1/s); y points down
        dy, dx = yy - cy, xx - cx
        sx = (math.cos(t) * dx - math.sin(t) * dy) / s + cx
        sy = (math.sin(t) * dx + math.cos(t) * dy) / s + cy
        x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
        fx, fy = sx - x0, sy - y0
        acc = np.zeros(images.shape[1:], dtype=np.float64)
        for oy, wy in ((0, 1 - fy), (1, fy)):
            for ox, wx in ((0, 1 - fx), (1, fx)):
                yi, xi = y0 + oy, x0 + ox
                ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
                vals = images[i][..., np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
                acc += np.where(ok, wy * wx, 0.0) * vals
        out[i] = acc
    return out


# ---------------------------------------------------------------------------------------------
# the text task
# ---------------------------------------------------------------------------------------------


@dataclass
class TextTask:
    """Token sequences (lists of int arrays, 0 is never used: it is the padding id) and labels.

    Made by :func:`make_motif_task`, whose example shows one.
    """

    train: list
    y_train: np.ndarray
    test: list
    y_test: np.ndarray
    vocab_size: int
    motifs: tuple
    n_classes: int


def make_motif_task(n_train: int = 2000, n_test: int = 1000, vocab_size: int = 40, min_len: int = 6,
                    max_len: int = 60, test_max_len: int | None = 120, seed: int = 0) -> TextTask:
    """Sequences of random tokens ``1..vocab_size-1`` of random length; class = the ordered trigram planted.

    Training lengths are uniform in ``[min_len, max_len]``, test lengths in ``[min_len,
    test_max_len]`` (default 120: twice the longest training sequence, so the test also asks
    whether the model handles lengths it never saw).

    The four motifs are orderings of the same tokens (1, 2, 3): ``(1, 2, 3)``, ``(3, 2, 1)``,
    ``(1, 3, 2)``, ``(2, 1, 3)``.  Exactly one is planted at a random position; a sequence in
    which another motif occurs by chance is redrawn.

    Examples
    --------
    >>> from poolkit.nn.lab.data import make_motif_task
    >>> task = make_motif_task(n_train=50, n_test=10, seed=0)
    >>> len(task.train), task.n_classes, min(len(s) for s in task.train) >= 6
    (50, 4, True)
    """
    motifs = ((1, 2, 3), (3, 2, 1), (1, 3, 2), (2, 1, 3))
    rng = np.random.default_rng(seed)

    def one(longest):
        label = int(rng.integers(len(motifs)))
        length = int(rng.integers(min_len, longest + 1))
        while True:
            seq = rng.integers(1, vocab_size, size=length)
            pos = int(rng.integers(0, length - 2))
            seq[pos:pos + 3] = motifs[label]
            if _count(seq, motifs) == 1:  # no other motif by chance
                return seq.astype(np.int64), label

    def make_all(n, longest):
        pairs = [one(longest) for _ in range(n)]
        return [p[0] for p in pairs], np.array([p[1] for p in pairs], dtype=np.int64)

    tr, ytr = make_all(n_train, max_len)
    te, yte = make_all(n_test, max_len if test_max_len is None else test_max_len)
    return TextTask(tr, ytr, te, yte, vocab_size, motifs, len(motifs))


def _count(seq, motifs) -> int:
    return sum((int(a), int(b), int(c)) in motifs for a, b, c in zip(seq, seq[1:], seq[2:]))


def pad_batch(seqs: list, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens (N, max_len) padded with pad_id, lengths (N,))`` for a list of 1-D int arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.data import pad_batch
    >>> pad_batch([np.array([5, 6, 7]), np.array([8])])
    (array([[5, 6, 7],
           [8, 0, 0]]), array([3, 1]))
    """
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.full((len(seqs), int(lengths.max()) if len(seqs) else 0), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out, lengths
