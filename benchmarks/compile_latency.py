"""Compile latency and peak memory of poolkit's first calls, each measured in a fresh process.

    python -m benchmarks.compile_latency

* cold: an empty numba cache (a fresh NUMBA_CACHE_DIR): the first call compiles its kernel;
* warm: a new process with that cache filled: the first call loads the compiled kernel from disk.

Also reports the peak extra memory of a large max/avg pooling call (tracemalloc sees NumPy's
allocations, numba's per-chunk buffers are not included), compared with the output's size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

PROBE = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import poolkit
t_import = time.perf_counter() - t0
x = np.random.default_rng(0).standard_normal((8, 64, 112, 112), dtype=np.float32)
res = {"import_s": t_import}
for name, call in [("max_pool", lambda: poolkit.max_pool(x, (3, 3), 2, 1)),
                   ("avg_pool", lambda: poolkit.avg_pool(x, (3, 3), 2, 1)),
                   ("max_pool_backward", lambda: poolkit.max_pool_backward(
                       np.ones((8, 64, 56, 56), np.float32), x, (3, 3), 2, 1))]:
    t = time.perf_counter(); call(); res[name + "_first_s"] = time.perf_counter() - t
    t = time.perf_counter(); call(); res[name + "_second_s"] = time.perf_counter() - t
print(json.dumps(res))
"""

MEMORY = r"""
import json, tracemalloc
import numpy as np
import poolkit
x = np.random.default_rng(0).standard_normal((32, 64, 112, 112), dtype=np.float32)
xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
res = {"input_bytes": x.nbytes}
for name, call in [("max_pool", lambda: poolkit.max_pool(x, (3, 3), 2, 1)),
                   ("avg_pool", lambda: poolkit.avg_pool(x, (3, 3), 2, 1)),
                   ("max_pool_nhwc", lambda: poolkit.max_pool(xh, (3, 3), 2, 1, axes=(1, 2))),
                   ("max_pool_backward", lambda: poolkit.max_pool_backward(
                       np.ones((32, 64, 56, 56), np.float32), x, (3, 3), 2, 1))]:
    call()
    tracemalloc.start()
    out = call()
    cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    res[name] = {"peak_bytes": peak, "output_bytes": out.nbytes}  # for backward: the gradient
print(json.dumps(res))
"""


def _run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = _run(PROBE, env)
        warm = _run(PROBE, env)
        memory = _run(MEMORY, env)
    print("| first call in a new process | cache | seconds |")
    print("|---|---|---:|")
    print(f"| `import poolkit` | | {warm['import_s']:.2f} |")
    for name in ("max_pool", "avg_pool", "max_pool_backward"):
        print(f"| `{name}` float32 (8, 64, 112, 112) | empty | {cold[name + '_first_s']:.2f} |")
        print(f"| `{name}` float32 (8, 64, 112, 112) | warm | {warm[name + '_first_s']:.2f} |")
    print(f"| (for scale: second call, warm) | | {warm['max_pool_second_s']:.3f} |")
    print()
    print("| call | output MB | peak extra MB (tracemalloc) | peak / output |")
    print("|---|---:|---:|---:|")
    for name in ("max_pool", "avg_pool", "max_pool_nhwc", "max_pool_backward"):
        m = memory[name]
        print(f"| `{name}` | {m['output_bytes'] / 1e6:.1f} | {m['peak_bytes'] / 1e6:.1f} | "
              f"{m['peak_bytes'] / m['output_bytes']:.2f} |")
    print(f"\n(input: {memory['input_bytes'] / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
