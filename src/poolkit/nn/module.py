"""``Parameter``, ``Module`` and ``Sequential``: the skeleton every layer hangs on.

A :class:`Module` holds :class:`Parameter` objects (NumPy arrays with a gradient), buffers (NumPy
arrays without one) and child modules, registered by attribute assignment in the order they are
set -- which is what gives :meth:`Module.state_dict` PyTorch's keys (``"0.weight"``,
``"features.3.bias"``, ...).

Autograd is replaced by hand-written ``backward`` methods.  ``forward(x)`` keeps what ``backward``
needs (the last call's input, a mask, the windows' winners, ...); ``backward(grad_output)`` returns
the gradient with respect to that input and *adds* each parameter's gradient to ``param.grad`` --
as ``loss.backward()`` does in PyTorch, so gradients accumulate until ``zero_grad()``.  Only the
last forward is remembered: call ``backward`` after the forward it belongs to.  Inside
``with no_grad():`` forwards keep nothing (for evaluation).

``train()`` and ``eval()`` switch ``training`` on every module, which only changes what
:class:`~poolkit.nn.Dropout` does -- as in PyTorch, eval mode does not disable gradients.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Parameter", "Module", "Sequential", "no_grad", "is_grad_enabled"]

_GRAD_ENABLED = [True]


def is_grad_enabled() -> bool:
    """Whether forwards keep what ``backward`` needs (False inside :func:`no_grad`).

    Examples
    --------
    >>> from poolkit import nn
    >>> with nn.no_grad():
    ...     print(nn.is_grad_enabled())
    False
    >>> nn.is_grad_enabled()
    True
    """
    return _GRAD_ENABLED[0]


@contextlib.contextmanager
def no_grad():
    """Context manager: forwards inside it keep nothing for ``backward`` (less memory).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> relu = nn.ReLU()
    >>> with nn.no_grad():
    ...     y = relu(np.array([-1.0, 2.0]))
    >>> relu.backward(np.ones(2))
    Traceback (most recent call last):
      ...
    RuntimeError: ReLU.backward: no forward to differentiate (call the module outside no_grad() first)
    """
    saved = _GRAD_ENABLED[0]
    _GRAD_ENABLED[0] = False
    try:
        yield
    finally:
        _GRAD_ENABLED[0] = saved


class Parameter:
    """A trainable array: ``data`` (the values) and ``grad`` (their accumulated gradient).

    ``grad`` is ``None`` until a ``backward`` adds to it, and again after ``zero_grad()``
    (PyTorch's ``set_to_none=True`` default).  Optimisers update ``data`` in place.

    Parameters
    ----------
    data : array_like
        The initial values; kept as a NumPy array (float32 unless it is another float dtype).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> p = nn.Parameter(np.zeros((2, 3)))
    >>> p
    Parameter(shape=(2, 3), dtype=float64)
    >>> p.grad is None
    True
    >>> p.accumulate(np.ones((2, 3))); p.accumulate(np.ones((2, 3))); p.grad[0]
    array([2., 2., 2.])
    """

    __slots__ = ("data", "grad")

    def __init__(self, data) -> None:
        arr = np.array(data, copy=True)
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float32)
        self.data: np.ndarray = arr
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def numel(self) -> int:
        """Number of values (PyTorch's name)."""
        return int(self.data.size)

    def accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` to ``self.grad`` (creating it on the first call), in ``data``'s dtype."""
        grad = np.asarray(grad, dtype=self.data.dtype)
        if grad.shape != self.data.shape:
            raise ValueError(f"Parameter.accumulate: grad shape {grad.shape} != parameter shape {self.data.shape}")
        if self.grad is None:
            self.grad = grad.copy()
        else:
            self.grad += grad

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of every layer: registration, ``state_dict``, modes, ``__call__``.

    Subclasses set parameters, buffers and children as attributes (in ``__init__``, after
    ``super().__init__()``) and define ``forward`` and ``backward``.  Calling the module calls
    ``forward``.

    Examples
    --------
    A custom layer, ``y = a * x``, with its gradient:

    >>> import numpy as np
    >>> from poolkit import nn
    >>> class Scale(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a = nn.Parameter(np.array([2.0]))
    ...     def forward(self, x):
    ...         self._x = x
    ...         return self.a.data * x
    ...     def backward(self, grad_output: ArrayLike) -> np.ndarray:
    ...         self.a.accumulate([np.sum(grad_output * self._x)])
    ...         return grad_output * self.a.data
    >>> m = nn.Sequential(Scale(), nn.ReLU())
    >>> m(np.array([1.0, -3.0]))
    array([2., 0.])
    >>> m.backward(np.array([1.0, 1.0]))
    array([2., 0.])
    >>> m[0].a.grad, list(m.state_dict())
    (array([1.]), ['0.a'])
    """

    training: bool
    _parameters: OrderedDict[str, Parameter]
    _buffers: OrderedDict[str, np.ndarray]
    _modules: OrderedDict[str, Module]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -----------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if name in self._buffers and isinstance(value, np.ndarray):
            self._buffers[name] = value
            object.__setattr__(self, name, value)
            return
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """A named array that is saved in ``state_dict`` but is not trained (PyTorch's buffers)."""
        self._buffers[name] = np.asarray(array)
        object.__setattr__(self, name, self._buffers[name])

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Set ``name`` to ``param``; ``None`` records that the parameter is absent (``bias=False``)."""
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module) -> None:
        """Register ``module`` as the child ``name``."""
        if not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # -- traversal --------------------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all its descendants, with their dotted names (``""`` for this one)."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its ``state_dict`` key, each one once, in registration order."""
        seen = set()
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mname, m in self.named_modules(prefix):
            for bname, b in m._buffers.items():
                yield (f"{mname}.{bname}" if mname else bname), b

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed as PyTorch keys them.

        Parameters come before buffers within each module, modules in registration order
        (PyTorch's order).  ``np.savez(path, **model.state_dict())`` saves a model.
        """
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mname, m in self.named_modules():
            for kind in (m._parameters, m._buffers):
                for name, v in kind.items():
                    arr = v.data if isinstance(v, Parameter) else v
                    out[f"{mname}.{name}" if mname else name] = np.array(arr, copy=True)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> tuple[list, list]:
        """Copy values into the parameters and buffers (shapes must match; cast to their dtype).

        ``state_dict`` maps keys to arrays -- anything :func:`numpy.asarray` converts, so a
        PyTorch ``state_dict()`` of CPU tensors or an opened ``.npz`` file work as they are.
        With ``strict`` (the default) missing and unexpected keys are an error.  Returns
        ``(missing_keys, unexpected_keys)``.
        """
        targets: dict[str, tuple[Module, str, bool]] = {}
        for mname, m in self.named_modules():
            for name in m._parameters:
                targets[f"{mname}.{name}" if mname else name] = (m, name, True)
            for name in m._buffers:
                targets[f"{mname}.{name}" if mname else name] = (m, name, False)
        keys = list(state_dict.keys())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in keys if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys " + ", ".join(repr(k) for k in missing))
            if unexpected:
                parts.append("unexpected keys " + ", ".join(repr(k) for k in unexpected))
            raise KeyError(f"load_state_dict: {'; '.join(parts)}")
        for key, (m, name, is_param) in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            current = m._parameters[name].data if is_param else m._buffers[name]
            if value.shape != current.shape:
                raise ValueError(f"load_state_dict: {key!r} has shape {value.shape}, "
                                 f"the model expects {current.shape}")
            if is_param:
                m._parameters[name].data[...] = value
            else:
                m._buffers[name] = np.array(value, dtype=current.dtype)
                object.__setattr__(m, name, m._buffers[name])
        for m in self.modules():
            m._after_load()
        return missing, unexpected

    def _after_load(self) -> None:
        """Hook run on every module after :meth:`load_state_dict` (to validate buffers)."""

    # -- modes and gradients ----------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Training mode (Dropout active) on this module and all its children; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (to ``None``, or to zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def requires_cache(self) -> bool:
        """Whether this forward should keep what backward needs (False inside ``no_grad()``)."""
        return is_grad_enabled()

    def _saved(self, name: str):
        """The value a forward kept under ``name``, or a RuntimeError saying to run a forward."""
        value = self.__dict__.get(name)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward to differentiate "
                               "(call the module outside no_grad() first)")
        return value

    # -- calling ----------------------------------------------------------------------------

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def backward(self, grad_output: ArrayLike):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no backward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other; ``backward`` runs them in reverse.

    Children are named ``"0"``, ``"1"``, ... so ``state_dict`` keys are ``"0.weight"``, ... as in
    PyTorch.  Indexing gives a child (``model[0]``) or a ``Sequential`` of a slice.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> model = nn.Sequential(nn.Linear(3, 2, rng=np.random.default_rng(0)), nn.ReLU())
    >>> model
    Sequential(
      (0): Linear(in_features=3, out_features=2, bias=True)
      (1): ReLU()
    )
    >>> [(k, v.shape) for k, v in model.state_dict().items()]
    [('0.weight', (2, 3)), ('0.bias', (2,))]
    >>> model(np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} must be a Module, got {type(m).__name__}")
            self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            out = Sequential()
            for name, m in items[index]:  # PyTorch keeps the names ("2", "3", ...) in a slice
                out.add_module(name, m)
            return out
        return items[index][1]

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_output: Any) -> Any:
        g = grad_output
        for m in reversed(list(self._modules.values())):
            g = m.backward(g)
        return g
