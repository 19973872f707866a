"""The old name of the benchmark suite: ``python -m benchmarks.run`` runs ``benchmarks.suite``
(same options; see its docstring).  The window-size sweep that this module used to plot is
``python -m benchmarks.suite --windows docs/bench_windows.png``."""

from __future__ import annotations

from .suite import main

if __name__ == "__main__":
    raise SystemExit(main())
