"""The lab's networks: the LeNet-style digit classifier with each pooling choice, and a text CNN.

The digit network is the one of :mod:`poolkit.nn`'s example, sized for 20x20 digits::

    Conv2d(1, 8, 3, padding=1) -> ReLU -> DOWN(8)
    -> Conv2d(8, 16, 3, padding=1) -> ReLU -> DOWN(16)
    -> Flatten -> Linear(16 * s * s, 10)

where ``DOWN(c)`` halves the resolution, by the choice of ``pool``:

======== =====================================================================================
max      ``MaxPool2d(2)``
avg      ``AvgPool2d(2)``
lp       ``LPPool2d(2, 2)`` (the L2 norm of each 2x2 window)
maxblur  ``MaxBlurPool2d(c)``: max with stride 1, then a 4-tap binomial blur with stride 2 and
         reflect padding (Zhang 2019; the reference implementation's defaults)
stride   ``Conv2d(c, c, 3, stride=2, padding=1) -> ReLU``: a learned downsampling in place of the
         pooling (the "all-convolutional" net of Springenberg et al. 2015)
none     nothing: full resolution up to the classifier (``s = 20``)
======== =====================================================================================
"""

from __future__ import annotations

import numpy as np

from ... import nn

__all__ = ["POOLS", "make_lenet", "TextCNN", "feature_extractor"]

#: The pooling choices of ``poolkit lab``, in the order the report lists them.
POOLS = ("max", "avg", "lp", "maxblur", "stride", "none")


def _down(pool: str, channels: int, rng) -> list:
    if pool == "max":
        return [nn.MaxPool2d(2)]
    if pool == "avg":
        return [nn.AvgPool2d(2)]
    if pool == "lp":
        return [nn.LPPool2d(2, 2)]
    if pool == "maxblur":
        return [nn.MaxBlurPool2d(channels)]
    if pool == "stride":
        return [nn.Conv2d(channels, channels, 3, stride=2, padding=1, rng=rng), nn.ReLU()]
    if pool == "none":
        return []
    raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")


def make_lenet(pool: str = "max", image_size: int = 20, channels: tuple = (8, 16), n_classes: int = 10,
               rng: np.random.Generator | None = None) -> nn.Sequential:
    """The digit network with pooling ``pool`` (see the module docstring), for ``image_size``-square input.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.models import make_lenet
    >>> model = make_lenet("max", rng=np.random.default_rng(0))
    >>> [type(m).__name__ for m in model]
    ['Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear']
    >>> model[-1]
    Linear(in_features=400, out_features=10, bias=True)
    >>> make_lenet("none", rng=np.random.default_rng(0))[-1].in_features
    6400
    """
    c1, c2 = channels
    layers = [nn.Conv2d(1, c1, 3, padding=1, rng=rng), nn.ReLU(), *_down(pool, c1, rng),
              nn.Conv2d(c1, c2, 3, padding=1, rng=rng), nn.ReLU(), *_down(pool, c2, rng), nn.Flatten()]
    body = nn.Sequential(*layers)
    with nn.no_grad():
        n_features = body(np.zeros((1, 1, image_size, image_size), dtype=np.float32)).shape[1]
    return body.append(nn.Linear(n_features, n_classes, rng=rng))


def feature_extractor(model: nn.Sequential) -> nn.Sequential:
    """The layers of a :func:`make_lenet` model before ``Flatten``: the pooled feature maps.

    The result shares its layers (and weights) with ``model``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.models import feature_extractor, make_lenet
    >>> feats = feature_extractor(make_lenet("max", rng=np.random.default_rng(0)))
    >>> feats(np.zeros((2, 1, 20, 20), dtype=np.float32)).shape
    (2, 16, 5, 5)
    """
    for i, m in enumerate(model):
        if isinstance(m, nn.Flatten):
            return model[:i]
    raise ValueError("feature_extractor: the model has no Flatten layer")


class TextCNN(nn.Module):
    """A 1-D convolutional classifier of variable-length token sequences, with masked max pooling.

    ``Embedding(vocab, dim, padding_idx=0) -> Conv1d(dim, channels, width, padding=width // 2) -> ReLU
    -> MaskedPool1d("max") -> Linear(channels, n_classes)``.  ``forward(tokens, lengths)`` takes a
    padded ``(N, L)`` batch and the true lengths; the pooled vector has ``channels`` values whatever
    ``L`` is, and padding never reaches it.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.lab.models import TextCNN
    >>> model = TextCNN(vocab_size=10, n_classes=3, rng=np.random.default_rng(0))
    >>> tokens = np.array([[4, 5, 6, 0, 0], [1, 2, 3, 4, 5]])
    >>> logits = model(tokens, np.array([3, 5]))
    >>> logits.shape, model.backward(np.ones_like(logits)) is None
    ((2, 3), True)
    >>> list(model.state_dict())
    ['embedding.weight', 'conv.weight', 'conv.bias', 'fc.weight', 'fc.bias']
    """

    def __init__(self, vocab_size: int, n_classes: int, dim: int = 16, channels: int = 32, width: int = 3,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0, rng=rng)
        self.conv = nn.Conv1d(dim, channels, width, padding=width // 2, rng=rng)
        self.relu = nn.ReLU()
        self.pool = nn.MaskedPool1d("max")
        self.fc = nn.Linear(channels, n_classes, rng=rng)

    def features(self, tokens, lengths) -> np.ndarray:
        e = self.embedding(tokens)                    # (N, L, dim)
        h = self.relu(self.conv(e.transpose(0, 2, 1)))  # (N, channels, L)
        return self.pool(h, lengths=lengths)          # (N, channels)

    def forward(self, tokens, lengths):
        return self.fc(self.features(tokens, lengths))

    def backward(self, grad_output):
        g = self.pool.backward(self.fc.backward(grad_output))
        g = self.conv.backward(self.relu.backward(g))
        return self.embedding.backward(g.transpose(0, 2, 1))
