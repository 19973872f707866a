"""Calls from many Python threads at once (a web server, Dask's threaded scheduler, a user's thread
pool) give the serial results and never abort, whatever numba threading layer is installed:
poolkit runs its kernels on its own thread pool and never starts numba's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import poolkit

SCRIPT = textwrap.dedent("""
    import sys
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    import numba
    import poolkit

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 96, 96)).astype(np.float32)   # large enough for the threaded path
    rois = np.array([[0, 2, 2, 60, 50], [3, 0, 10, 90, 95]], dtype=np.float64)
    calls = [
        lambda: poolkit.max_pool(x, (3, 3), 2, 1),
        lambda: poolkit.avg_pool(x, (2, 2)),
        lambda: poolkit.max_pool(x, (3, 3), 2, 1, return_indices=True)[1],
        lambda: poolkit.max_pool_backward(np.ones((4, 16, 48, 48), np.float32), x, (3, 3), 2, 1),
        lambda: poolkit.avg_pool_backward(np.ones((4, 16, 48, 48), np.float32), x, (2, 2)),
        lambda: poolkit.max_pool(x, (2, 3), 1, axes=(1, 3)),
        lambda: poolkit.masked_pool(x.reshape(4, 16, -1), lengths=np.array([16, 3, 0, 9])),
        lambda: poolkit.roi_pool(x, rois, (7, 7)),
        lambda: poolkit.roi_align(x, rois[:, 1:], np.array([0, 3]), (7, 7)),
    ]
    expected = [c() for c in calls]
    with ThreadPoolExecutor(int(sys.argv[1])) as pool:
        futures = [pool.submit(calls[i % len(calls)]) for i in range(6 * len(calls))]
        for i, f in enumerate(futures):
            np.testing.assert_array_equal(f.result(), expected[i % len(calls)])
    try:
        layer = numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized": numba's pool never started
        layer = "never started"
    print("ok", layer)
""")


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_many_threads_in_a_fresh_process(layer):
    """Four threads calling kernels at once used to terminate the process under the workqueue
    layer ("the workqueue threading layer is not threadsafe")."""
    env = dict(os.environ)
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run([sys.executable, "-c", SCRIPT, "8"], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ok", "never", "started"]


def test_threads_match_serial_results_in_process():
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 8, 64, 80)).astype(dt) for dt in (np.float32, np.float64, np.float16)]
    xs.append(rng.integers(0, 9, (2, 8, 64, 80)).astype(np.int16))
    calls = [(f, x) for x in xs for f in (lambda x: poolkit.max_pool(x, (3, 3), 2, 1),
                                          lambda x: poolkit.avg_pool(x, (3, 2), (1, 2), (1, 0), ceil_mode=True),
                                          lambda x: poolkit.lp_pool(x, 2, (2, 2)))]
    before = poolkit.get_num_threads()
    try:
        poolkit.set_num_threads(1)
        serial = [f(x) for f, x in calls]
        poolkit.set_num_threads(4)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: calls[i % len(calls)][0](calls[i % len(calls)][1]),
                                    range(4 * len(calls))))
    finally:
        poolkit.set_num_threads(before)
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r, serial[i % len(calls)])


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="n must be >= 1"):
        poolkit.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        poolkit.set_num_threads(2.0)
