"""Optimisers with PyTorch's exact update rules: ``SGD`` and ``Adam``.

``opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)``; after ``model.backward(...)`` has
filled the gradients, ``opt.step()`` updates every parameter's ``data`` in place and
``opt.zero_grad()`` clears the gradients.  Parameters without a gradient are skipped, as in
PyTorch.  ``params`` may also be a list of dicts (parameter groups with their own options).

Examples
--------
>>> import numpy as np
>>> from poolkit import nn
>>> p = nn.Parameter(np.array([1.0, -2.0]))
>>> opt = nn.optim.SGD([p], lr=0.1, momentum=0.9)
>>> for _ in range(2):
...     p.grad = 2 * p.data              # d/dp of sum(p**2)
...     opt.step()
>>> p.data
array([ 0.46, -0.92])
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .._docs import fill
from .layers import _is_real
from .module import Parameter

__all__ = ["Optimizer", "SGD", "Adam"]


def _number(cls: str, name: str, value, minimum: float = 0.0) -> float:
    if not _is_real(value):
        raise TypeError(f"{cls}: {name} must be a number, got {value!r}")
    if not float(value) >= minimum:
        raise ValueError(f"Invalid {name} value: {value} ({cls}: {name} must be >= {minimum})")
    return float(value)


class Optimizer:
    """Base class: parameter groups, per-parameter ``state``, ``zero_grad``.

    ``param_groups`` is a list of dicts, each with its ``params`` and options (change ``lr`` there
    for a schedule); ``state`` maps ``id(parameter)`` to that parameter's buffers.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> opt = nn.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    >>> opt.param_groups[0]["lr"] = 0.05
    >>> [len(g["params"]) for g in opt.param_groups]
    [2]
    """

    def __init__(self, params: Iterable, defaults: dict) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        seen = set()
        for group in groups:
            group = dict(group)
            ps = group["params"]
            ps = [ps] if isinstance(ps, Parameter) else list(ps)
            for p in ps:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{type(self).__name__}: params must be Parameters (model.parameters()), "
                                    f"got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: some parameters appear in more than one group")
                seen.add(id(p))
            group["params"] = ps
            for k, v in defaults.items():
                group.setdefault(k, v)
            self._check_group(group)
            self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:  # pragma: no cover - overridden
        pass

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter of every group."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def _state(self, p: Parameter) -> dict:
        return self.state.setdefault(id(p), {})

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            wd = group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                t = p.data.dtype.type
                g = -p.grad if group["maximize"] else p.grad
                if wd != 0:
                    g = g + t(wd) * p.data
                self._update(p, g, group)

    def _update(self, p: Parameter, g: np.ndarray, group: dict) -> None:  # pragma: no cover - abstract
        """Move ``p.data`` by its gradient ``g`` (sign for ``maximize`` and weight decay applied)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


@fill
class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (``torch.optim.SGD``).

    Per parameter, with ``g`` its gradient (PyTorch's rule, step by step)::

        g = g + weight_decay * p                       (if weight_decay)
        b = g on the first step, else momentum * b + (1 - dampening) * g   (if momentum)
        g = g + momentum * b if nesterov else b                            (if momentum)
        p = p - lr * g            (p + lr * g with maximize=True)

    Parameters
    ----------
    params : iterable of Parameter, or of dicts
        What to optimise (``model.parameters()``), or parameter groups.
    lr : float, optional
        Learning rate (default 1e-3, PyTorch's).
    momentum, dampening, weight_decay : float, optional
        Default 0.
    nesterov : bool, optional
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
{MAXIMIZE}

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> p = nn.Parameter(np.array([1.0]))
    >>> opt = nn.optim.SGD([p], lr=0.5, weight_decay=1.0)
    >>> p.grad = np.array([1.0]); opt.step(); p.data
    array([0.])
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=_number("SGD", "lr", lr), momentum=_number("SGD", "momentum", momentum),
                        dampening=_number("SGD", "dampening", dampening, -math.inf),
                        weight_decay=_number("SGD", "weight_decay", weight_decay),
                        nesterov=bool(nesterov), maximize=bool(maximize))
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p: Parameter, g: np.ndarray, group: dict) -> None:
        t = p.data.dtype.type
        mom = group["momentum"]
        if mom != 0:
            state = self._state(p)
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = np.array(g, copy=True)
                state["momentum_buffer"] = buf
            else:
                buf *= t(mom)
                buf += t(1 - group["dampening"]) * g
            g = g + t(mom) * buf if group["nesterov"] else buf
        p.data -= t(group["lr"]) * g


@fill
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with PyTorch's exact arithmetic (``torch.optim.Adam``).

    Per parameter, at step ``t`` (from 1), with ``g`` its gradient::

        g = g + weight_decay * p                    (L2 penalty; if weight_decay)
        m = m + (1 - beta1) * (g - m)               (lerp, as PyTorch)
        v = beta2 * v + (1 - beta2) * g * g
        vmax = max(vmax, v)                         (if amsgrad; then v := vmax below)
        denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps
        p = p - lr / (1 - beta1 ** t) * m / denom

    Parameters
    ----------
    params : iterable of Parameter, or of dicts
        What to optimise.
    lr : float, optional
        Default 1e-3.
    betas : (float, float), optional
        Default (0.9, 0.999).
    eps : float, optional
        Default 1e-8.
    weight_decay : float, optional
        Default 0.
    amsgrad : bool, optional
        Use the running maximum of ``v`` (Reddi et al. 2018).
{MAXIMIZE}

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> p = nn.Parameter(np.array([1.0, -1.0]))
    >>> opt = nn.optim.Adam([p], lr=0.1)
    >>> p.grad = np.array([3.0, -0.5]); opt.step(); p.data   # the first step moves each by ~lr
    array([ 0.9, -0.9])
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair of numbers, got {betas!r}")
        b1, b2 = (_number("Adam", "beta parameter at index 0", betas[0]),
                  _number("Adam", "beta parameter at index 1", betas[1]))
        if not (b1 < 1 and b2 < 1):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas!r}")
        defaults = dict(lr=_number("Adam", "lr", lr), betas=(b1, b2), eps=_number("Adam", "eps", eps),
                        weight_decay=_number("Adam", "weight_decay", weight_decay), amsgrad=bool(amsgrad),
                        maximize=bool(maximize))
        super().__init__(params, defaults)

    def _update(self, p: Parameter, g: np.ndarray, group: dict) -> None:
        t = p.data.dtype.type
        (b1, b2), eps = group["betas"], group["eps"]
        state = self._state(p)
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += t(1 - b1) * (g - m)
        v *= t(b2)
        v += t(1 - b2) * (g * g)
        bc1 = 1 - b1 ** step
        bc2_sqrt = math.sqrt(1 - b2 ** step)
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            denom = np.sqrt(state["max_exp_avg_sq"]) / t(bc2_sqrt) + t(eps)
        else:
            denom = np.sqrt(v) / t(bc2_sqrt) + t(eps)
        p.data -= t(group["lr"] / bc1) * (m / denom)
