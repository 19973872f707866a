"""poolkit: pooling -- the condense step of a convolutional network -- exact, fast and easy to see."""

from .pooling import (
    avg_pool,
    avg_pool_backward,
    lp_pool,
    lp_pool_backward,
    max_pool,
    max_pool_backward,
    max_unpool,
    output_shape,
    resolve_padding,
)

__version__ = "0.1.0"

__all__ = [
    "max_pool",
    "avg_pool",
    "lp_pool",
    "max_pool_backward",
    "avg_pool_backward",
    "lp_pool_backward",
    "max_unpool",
    "output_shape",
    "resolve_padding",
]
