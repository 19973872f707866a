"""Shared test configuration: ``tests/`` on ``sys.path`` (so that ``from support import oracle``
works), the Hypothesis profile, the ``rng`` fixture, and the fuzz count at the end of the run
(from every pytest-xdist worker).  Where each kind of test goes:
``tests/README.md``."""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import pytest

# The shared helpers live in the package ``support/`` next to this file; make ``import support``
# work whatever pytest's import mode is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# Under pytest-xdist (``-n``) each worker compiles into a numba cache of its own: numba's cache
# files are not safe for two processes saving overloads of one function at once (each picks the
# next free data file from the index it read, so both can write to one file, and the index can end
# up naming the other signature's code).  The cache shared by fresh processes is tested on its own
# (test_compile_cache.py).  napari's pytest plugin has imported numba by now, so its configuration
# is read again (numba would do so only at its next compilation, after poolkit's kernels took
# their cache directory from it).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(
        os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "poolkit-tests-numba-cache"),
        f"xdist-{_WORKER}")
    if "numba" in sys.modules:
        from numba.core import config as _numba_config

        _numba_config.reload_config()

try:
    from hypothesis import HealthCheck, settings

    # Numba compiles a kernel the first time it meets a new signature, which can take seconds:
    # per-example deadlines would be noise.  Property tests set their own max_examples.
    settings.register_profile(
        "poolkit",
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "poolkit"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: failures reproduce."""
    return np.random.default_rng(20240607)


#: The longest tests (minutes each on a 2-core machine with an empty compile cache, most of it
#: compiling), run first: under pytest-xdist's worksteal the other workers take the rest of the
#: work from the worker that runs them, instead of waiting for it at the end.
LONGEST_FIRST = ("test_fuzz.py::test_fuzz[warmup]",  # every kernel for five dtypes
                 "test_compile_cache.py::test_warmup_compiles_what_later_calls_need",
                 "test_compile_cache.py::test_fresh_processes_sharing_one_cache")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.rsplit("/", 1)[-1], len(rank)))  # stable: the rest in order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With ``POOLKIT_NO_SKIP=1`` (set by ``.ci/run``), a skipped test fails: on a laptop without
    Chromium or an optional peer a test may skip with its reason, but in CI, which installs
    everything, a skip would hide a test that never ran."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("POOLKIT_NO_SKIP") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped under POOLKIT_NO_SKIP=1 (CI installs every test dependency): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at import (``pytest.importorskip``)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("POOLKIT_NO_SKIP") == "1" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under POOLKIT_NO_SKIP=1: {report.longrepr}"


# The fuzz count: how many examples and checked calls tests/test_fuzz.py ran, printed at the end of
# the run for the CI log.  Under pytest-xdist each worker runs some of the fuzz groups and hands its
# count to the controller, which adds them up.


def _fuzz_count():
    """This process's fuzz count, or None if tests/test_fuzz.py did not run here."""
    fuzz = sys.modules.get("test_fuzz")
    if fuzz is None or not fuzz.EXAMPLES:
        return None
    return {"examples": sum(fuzz.EXAMPLES.values()), "calls": sum(fuzz.CASES.values()),
            "groups": sorted(fuzz.EXAMPLES), "per_group": fuzz.MAX_EXAMPLES}


def pytest_configure(config):
    config._poolkit_fuzz_counts = []


def pytest_sessionfinish(session):
    count = _fuzz_count()
    if count is not None:
        if hasattr(session.config, "workeroutput"):  # an xdist worker: to the controller
            session.config.workeroutput["poolkit_fuzz"] = count
        else:
            session.config._poolkit_fuzz_counts.append(count)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """(pytest-xdist, on the controller) a worker's fuzz count."""
    count = getattr(node, "workeroutput", {}).get("poolkit_fuzz")
    if count is not None:
        node.config._poolkit_fuzz_counts.append(count)


def pytest_terminal_summary(terminalreporter, config):
    counts = config._poolkit_fuzz_counts
    if counts:
        groups = {g for c in counts for g in c["groups"]}
        terminalreporter.write_line(
            f"[poolkit fuzz] {sum(c['examples'] for c in counts)} examples, {sum(c['calls'] for c in counts)} "
            f"checked calls, {len(groups)} groups (POOLKIT_FUZZ_EXAMPLES={counts[0]['per_group']})")
