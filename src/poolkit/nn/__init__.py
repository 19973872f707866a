"""``poolkit.nn``: a small, explicit, PyTorch-shaped network library with NumPy inside.

Every layer has a visible ``forward`` and ``backward``; names, arguments, defaults, shapes (NCHW /
NCL, float32 by default) and ``state_dict`` keys are PyTorch's, so a model written for one is a
model for the other (``model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})``).

* Structure: :class:`Module`, :class:`Parameter` (``.data``, ``.grad``), :class:`Sequential`,
  :func:`no_grad`.
* Layers: :class:`Conv1d`, :class:`Conv2d`, :class:`Linear`, :class:`ReLU`, :class:`Flatten`,
  :class:`Dropout`, :class:`Embedding`, :class:`Identity`.
* Pooling -- PyTorch's: :class:`MaxPool1d`/``2d``, :class:`AvgPool1d`/``2d``, :class:`LPPool1d`/``2d``,
  :class:`AdaptiveMaxPool1d`/``2d``, :class:`AdaptiveAvgPool1d`/``2d``,
  :class:`FractionalMaxPool2d`, :class:`MaxUnpool1d`/``2d``; and beyond:
  :class:`SpatialPyramidPool`, :class:`MaskedPool1d`, :class:`GlobalAvgPool`, :class:`BlurPool2d`,
  :class:`MaxBlurPool2d`.
* Losses :class:`CrossEntropyLoss`, :class:`MSELoss`; optimisers ``nn.optim.SGD``, ``nn.optim.Adam``.
* Initialisation: PyTorch's defaults, drawn from a :class:`numpy.random.Generator` -- each layer's
  ``rng=`` or the module-level one that :func:`manual_seed` seeds (see :mod:`poolkit.nn.init`).

``backward(grad_output)`` returns the gradient with respect to the last forward's input and adds
each parameter's gradient to its ``.grad``, as autograd does.

Examples
--------
A LeNet-style classifier for 28x28 images, one training step:

>>> import numpy as np
>>> from poolkit import nn
>>> _ = nn.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
...                       nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
...                       nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
>>> x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
>>> y = np.array([0, 1, 2, 3])
>>> logits = model(x)
>>> loss_fn = nn.CrossEntropyLoss()
>>> loss = loss_fn(logits, y)
>>> dx = model.backward(loss_fn.backward())
>>> opt = nn.optim.Adam(model.parameters(), lr=1e-3)
>>> opt.step(); opt.zero_grad()
>>> logits.shape, dx.shape, logits.dtype
((4, 10), (4, 1, 28, 28), dtype('float32'))
>>> list(model.state_dict())
['0.weight', '0.bias', '3.weight', '3.bias', '7.weight', '7.bias']
>>> sum(p.numel() for p in model.parameters())
9098
"""

from . import init, optim
from .init import manual_seed
from .layers import Conv1d, Conv2d, Dropout, Embedding, Flatten, Identity, Linear, ReLU
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, Parameter, Sequential, is_grad_enabled, no_grad
from .pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    BlurPool2d,
    FractionalMaxPool2d,
    GlobalAvgPool,
    LPPool1d,
    LPPool2d,
    MaskedPool1d,
    MaxBlurPool2d,
    MaxPool1d,
    MaxPool2d,
    MaxUnpool1d,
    MaxUnpool2d,
    SpatialPyramidPool,
)

__all__ = [
    "Module", "Parameter", "Sequential", "no_grad", "is_grad_enabled", "manual_seed", "init", "optim",
    "Conv1d", "Conv2d", "Linear", "ReLU", "Flatten", "Dropout", "Embedding", "Identity",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "LPPool1d", "LPPool2d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "FractionalMaxPool2d", "MaxUnpool1d", "MaxUnpool2d",
    "SpatialPyramidPool", "MaskedPool1d", "GlobalAvgPool", "BlurPool2d", "MaxBlurPool2d",
    "CrossEntropyLoss", "MSELoss",
]
