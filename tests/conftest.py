"""Shared test configuration: ``tests/`` on ``sys.path`` (so that ``from support import oracle``
works), the Hypothesis profile, and the ``rng`` fixture.  Where each kind of test goes:
``tests/README.md``."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

# The shared helpers live in the package ``support/`` next to this file; make ``import support``
# work whatever pytest's import mode is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

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
