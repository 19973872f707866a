"""poolkit: pooling -- the condense step of a convolutional network -- exact, fast and easy to see.

The public API is each family module's ``__all__``; see ``ARCHITECTURE.md`` for where each lives.
"""

from . import _engine, _results, _warmup, adaptive, masked, pooling, roi
from ._engine import *  # noqa: F403
from ._results import *  # noqa: F403
from ._warmup import *  # noqa: F403
from .adaptive import *  # noqa: F403
from .explanation import explain
from .masked import *  # noqa: F403
from .pooling import *  # noqa: F403
from .pyramid import pyramid
from .roi import *  # noqa: F403

__version__ = "0.1.0"

__all__ = (pooling.__all__ + adaptive.__all__ + masked.__all__ + roi.__all__ + _engine.__all__ + _results.__all__
           + _warmup.__all__
           + ["pyramid", "explain"])
