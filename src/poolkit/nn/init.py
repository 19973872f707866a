"""PyTorch's default initialisation, drawn from a :class:`numpy.random.Generator`.

Where the random numbers come from: every layer that draws (weights, Dropout masks, fractional
pooling windows) takes ``rng=`` -- a :class:`numpy.random.Generator` that it keeps -- and otherwise
uses the module-level generator, which :func:`manual_seed` re-seeds (PyTorch's
``torch.manual_seed``).  So ``nn.manual_seed(0)`` followed by building a model gives the same
weights every time, and so does passing one seeded generator to every layer.  The *values* are not
PyTorch's (a different generator); the *distributions* are.

Examples
--------
>>> import numpy as np
>>> from poolkit import nn
>>> _ = nn.manual_seed(0)
>>> a = nn.Linear(4, 2).weight.data
>>> _ = nn.manual_seed(0)
>>> b = nn.Linear(4, 2).weight.data
>>> bool(np.array_equal(a, b)), bool(np.all(np.abs(a) <= 0.5))  # U(-1/sqrt(4), 1/sqrt(4))
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
    "manual_seed", "get_rng", "calculate_gain", "kaiming_uniform_", "uniform_", "normal_", "zeros_",
    "ones_", "fan_in",
]

_RNG = [np.random.default_rng()]


def manual_seed(seed: int) -> np.random.Generator:
    """Re-seed the module-level generator that layers without ``rng=`` draw from; return it.

    Examples
    --------
    >>> from poolkit import nn
    >>> g = nn.manual_seed(42)
    >>> round(float(g.random()), 6)
    0.773956
    """
    _RNG[0] = np.random.default_rng(seed)
    return _RNG[0]


def get_rng(rng: np.random.Generator | None = None) -> np.random.Generator:
    """``rng`` if given (checked), else the module-level generator.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.init import get_rng
    >>> g = np.random.default_rng(0)
    >>> get_rng(g) is g
    True
    """
    if rng is None:
        return _RNG[0]
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {rng!r}")
    return rng


def fan_in(shape: tuple) -> int:
    """PyTorch's fan-in of a weight: ``shape[1] * prod(shape[2:])``.

    Examples
    --------
    >>> from poolkit.nn.init import fan_in
    >>> fan_in((16, 8, 3, 3)), fan_in((10, 400))
    (72, 400)
    """
    if len(shape) < 2:
        raise ValueError(f"fan_in needs a weight of at least 2 dimensions, got shape {shape}")
    return int(shape[1] * math.prod(shape[2:]))


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """``torch.nn.init.calculate_gain`` for ``linear``, ``conv*``, ``sigmoid``, ``relu``, ``leaky_relu``, ``tanh``.

    Examples
    --------
    >>> import math
    >>> from poolkit.nn.init import calculate_gain
    >>> calculate_gain("relu") == math.sqrt(2), round(calculate_gain("leaky_relu", math.sqrt(5)), 6)
    (True, 0.57735)
    """
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def uniform_(array: np.ndarray, a: float = 0.0, b: float = 1.0, *, rng=None) -> np.ndarray:
    """Fill ``array`` in place with U(a, b) draws (in float64, then cast); return it.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.init import uniform_
    >>> w = uniform_(np.empty(1000, dtype=np.float32), -0.5, 0.5, rng=np.random.default_rng(0))
    >>> bool(w.min() >= -0.5 and w.max() < 0.5), w.dtype
    (True, dtype('float32'))
    """
    array[...] = get_rng(rng).uniform(a, b, size=array.shape)
    return array


def normal_(array: np.ndarray, mean: float = 0.0, std: float = 1.0, *, rng=None) -> np.ndarray:
    """Fill ``array`` in place with N(mean, std**2) draws; return it.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.init import normal_
    >>> round(float(normal_(np.empty(100000), 2.0, 0.5, rng=np.random.default_rng(0)).mean()), 2)
    2.0
    """
    array[...] = get_rng(rng).normal(mean, std, size=array.shape)
    return array


def _constant_fill(value: int, name: str, example: str, result: str) -> Callable[[np.ndarray], np.ndarray]:
    """The initialiser ``name``: fill ``array`` with ``value`` in place and return it; its docstring's
    example calls it as ``example`` and shows ``result``."""
    def constant(array: np.ndarray) -> np.ndarray:
        array[...] = value
        return array
    constant.__name__ = constant.__qualname__ = name
    constant.__doc__ = f"""Fill ``array`` with {value} in place; return it.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn.init import {name}
    >>> {example}
    {result}
    """
    return constant


zeros_ = _constant_fill(0, "zeros_", "zeros_(np.ones(3))", "array([0., 0., 0.])")
ones_ = _constant_fill(1, "ones_", "ones_(np.zeros(2))", "array([1., 1.])")


def kaiming_uniform_(array: np.ndarray, a: float = 0.0, nonlinearity: str = "leaky_relu", *, rng=None) -> np.ndarray:
    """``torch.nn.init.kaiming_uniform_`` (fan-in mode): U(-bound, bound), ``bound = gain * sqrt(3 / fan_in)``.

    PyTorch's layers call it with ``a=sqrt(5)``, which gives ``bound = 1 / sqrt(fan_in)``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from poolkit.nn.init import kaiming_uniform_
    >>> w = kaiming_uniform_(np.empty((64, 8, 3, 3)), a=math.sqrt(5), rng=np.random.default_rng(0))
    >>> bool(np.abs(w).max() <= 1 / math.sqrt(72))
    True
    """
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / fan_in(array.shape))
    return uniform_(array, -bound, bound, rng=rng)
