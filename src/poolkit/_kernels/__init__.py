"""poolkit's compiled kernels, one module per family: ``@njit`` functions only, no validation and
no Python objects.  Every index a kernel receives has been checked by the public function that
calls it (through :mod:`poolkit._engine`).

* :mod:`._loops`: the inlined vector helpers and reductions (max2, add2, put2) all families share,
  the prefetch intrinsic, and ``rmw``, which keeps LLVM from making a row's maxima combined into
  itself masked stores;
* :mod:`._runs`: the global averages' float64 sums of float32 runs, written as LLVM vectors;
* :mod:`.sliding`: fused windows over 1-3 adjacent axes (forward, indices, adjoint);
* :mod:`.axis`: the general path, one pooled axis at a time, and global sums (with the helpers'
  loop that takes their chunks without Python);
* :mod:`.scatter`: the max backward and unpooling;
* :mod:`.masked` and :mod:`.roi`: masked sequence pooling and ROI pooling;
* :mod:`.mode`: the most frequent value of each window (mode pooling of label images);
* :mod:`.sync`: the spin-wait of the engine's helper threads, and the atomic counter and
  address-to-array view of the calls they take without Python.

Cache identity: numba's on-disk cache keys a compiled function by its qualified name, source
location and argument types -- not by values a closure captured.  So every cached kernel here is a
module-level function with a name of its own, and nothing is built by a factory; a test walks these
modules and fails on any cached function that is not.  Variants share source through
``inline="always"`` bodies that take the reduction and the strategy as arguments.

Threads: kernels are ``nogil`` and take a chunk of their work (``t0, t1``); :mod:`poolkit._engine`
runs the chunks on its own thread pool (the helpers of large global sums claim theirs in
:func:`.axis.follow_sums`).  No kernel uses numba's ``parallel=True``, so numba's threading layer
is never started and cannot abort a process whose threads call kernels at once.
"""

import importlib

__all__ = ["axis", "half", "masked", "mode", "roi", "scatter", "sliding", "sync"]


def __getattr__(name: str):
    """Import a family on first use: ``import poolkit`` creates no numba dispatcher (each cached one
    costs about a millisecond to set up), and a first call sets up only its own family's."""
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
