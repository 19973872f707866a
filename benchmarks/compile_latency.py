"""First-call latency of poolkit, each measured in fresh processes, and peak memory.

    python -m benchmarks.compile_latency [--runs 3]

* cold: a new process with an empty numba cache (a fresh NUMBA_CACHE_DIR): ``import poolkit`` and
  the first call, which compiles the kernel it needs;
* warm: a new process with that cache filled: the first call loads its kernel from disk;
* the first ``poolkit demo`` on a fresh cache, and again warm (wall time of the whole command);
* ``poolkit warmup --dtypes float32`` on a fresh cache.

Each figure is the median over ``--runs`` fresh cache directories (min and max in brackets).
``--python`` runs the probes with another interpreter: a virtual environment holding what
``pip install poolkit`` installs (numpy and numba only) measures a library user's first call, where
this one (the test environment) has SciPy, which numba imports on its first dispatch to look for a
BLAS (about 0.1 s of a warm call).
Also reports the peak extra memory of a large max/avg pooling call (tracemalloc sees NumPy's
allocations), compared with the output's size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

#: name -> the statement timed after ``import numpy as np; import poolkit`` (x is float32 NCHW
#: (8, 64, 112, 112), x64 and x16 the same in float64 and float16, unless the statement makes its
#: own input).
CALLS = {
    "max_pool 3x3 s2 p1": "poolkit.max_pool(x, (3, 3), 2, 1)",
    "avg_pool 3x3 s2 p1": "poolkit.avg_pool(x, (3, 3), 2, 1)",
    "max_pool 2x2 float64": "poolkit.max_pool(x64, (2, 2))",
    "max_pool 3x3 s2 p1 float16": "poolkit.max_pool(x16, (3, 3), 2, 1)",
    "max_pool NHWC 3x3 s2 p1": "poolkit.max_pool(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), (3, 3), 2, 1, "
                               "axes=(1, 2))",
    "max_pool 9x9 s1 p4": "poolkit.max_pool(x[:1], (9, 9), 1, 4)",
    "avg_pool 1-D k4 s4": "poolkit.avg_pool(x.reshape(8, 64, -1), (4,))",
    "max_pool 3x3 s2 p1 with indices": "poolkit.max_pool(x, (3, 3), 2, 1, return_indices=True)",
    "max_pool_backward 3x3 s2 p1": "poolkit.max_pool_backward(np.ones((8, 64, 56, 56), np.float32), x, (3, 3), 2, 1)",
    "avg_pool_backward 3x3 s2 p1": "poolkit.avg_pool_backward(np.ones((8, 64, 56, 56), np.float32), x, (3, 3), 2, 1)",
    "adaptive_avg_pool to 7x7": "poolkit.adaptive_avg_pool(x, 7)",
    "masked_pool max": "poolkit.masked_pool(x.reshape(8, 64, -1), lengths=np.arange(8) * 8)",
    "roi_align 7x7": "poolkit.roi_align(x, np.array([[0., 0., 50., 60.]]), np.array([1]), 7)",
}

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import poolkit
t_import = time.perf_counter() - t0
x = np.random.default_rng(0).standard_normal((8, 64, 112, 112), dtype=np.float32)
x64 = x.astype(np.float64)  # made before the clock starts: the probe times the call, not the conversion
x16 = x.astype(np.float16)
t1 = time.perf_counter()
exec(sys.argv[1])
t_call = time.perf_counter() - t1
print(json.dumps({"import_s": t_import, "call_s": t_call, "total_s": t_import + t_call}))
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


def _probe(python, code, env, *args):
    out = subprocess.run([python, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wall(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    return time.perf_counter() - t


def _user_environ(python: str) -> dict:
    """This environment as a user's would be: Python caches the bytecode of the modules it
    imports (PYTHONDONTWRITEBYTECODE, set on some CI machines, would make every probe recompile
    poolkit's sources: about 45 ms).  One import first writes the caches."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([python, "-c", "import poolkit, poolkit.cli"], env=env, check=True)
    return env


def _stat(values):
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="fresh cache directories per figure")
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter of the probes (default: this one); the demo needs matplotlib in it, and "
                         "the demo and warmup rows are skipped when it has none")
    args = ap.parse_args(argv)
    python = args.python
    base = _user_environ(python)
    has_plot = subprocess.run([python, "-c", "import matplotlib"], capture_output=True).returncode == 0
    found = subprocess.run([python, "-c", "import numpy, numba, importlib.util as u; "
                            "print(numpy.__version__, numba.__version__, u.find_spec('scipy') is not None)"],
                           env=base, capture_output=True, text=True, check=True).stdout.split()
    scipy = "installed" if found[2] == "True" else "absent"
    print(f"Interpreter {python}: numpy {found[0]}, numba {found[1]}, SciPy {scipy}.")
    res = {name: {"cold": [], "warm": [], "cold_call": []} for name in CALLS}
    demo = {"cold": [], "warm": []}
    warmup = []
    for _ in range(args.runs):
        for name, stmt in CALLS.items():
            with tempfile.TemporaryDirectory() as cache:
                env = dict(base, NUMBA_CACHE_DIR=cache)
                cold = _probe(python, PROBE, env, stmt)
                warm = _probe(python, PROBE, env, stmt)
            res[name]["cold"].append(cold["total_s"])
            res[name]["cold_call"].append(cold["call_s"])
            res[name]["warm"].append(warm["total_s"])
        if not has_plot:
            continue
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            env = dict(base, NUMBA_CACHE_DIR=cache, MPLBACKEND="Agg")
            cmd = [python, "-m", "poolkit.cli", "demo", "--out", out]
            demo["cold"].append(_wall(cmd, env))
            demo["warm"].append(_wall(cmd, env))
        with tempfile.TemporaryDirectory() as cache:
            env = dict(base, NUMBA_CACHE_DIR=cache)
            warmup.append(_wall([python, "-m", "poolkit.cli", "warmup", "--dtypes", "float32"], env))
    print(f"Median of {args.runs} runs (min-max), seconds, each in a new process; 'cold' and 'warm' include "
          "`import poolkit`.\n")
    print("| first call in a new process (float32 unless named) | cold: empty cache | of which the call "
          "| warm: cache filled |")
    print("|---|---:|---:|---:|")
    for name, r in res.items():
        print(f"| `{name}` | {_stat(r['cold'])} | {_stat(r['cold_call'])} | {_stat(r['warm'])} |")
    if has_plot:
        print(f"| `poolkit demo` (whole command) | {_stat(demo['cold'])} | | {_stat(demo['warm'])} |")
        print(f"| `poolkit warmup --dtypes float32` | {_stat(warmup)} | | |")
    with tempfile.TemporaryDirectory() as cache:
        memory = _probe(python, MEMORY, dict(base, NUMBA_CACHE_DIR=cache))
    print()
    print("| call | output MB | peak extra MB (tracemalloc) | peak / output |")
    print("|---|---:|---:|---:|")
    for name in ("max_pool", "avg_pool", "max_pool_nhwc", "max_pool_backward"):
        m = memory[name]
        print(f"| `{name}` | {m['output_bytes'] / 1e6:.1f} | {m['peak_bytes'] / 1e6:.1f} | "
              f"{m['peak_bytes'] / m['output_bytes']:.2f} |")
    print(f"\n(input: {memory['input_bytes'] / 1e6:.0f} MB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"calls": res, "demo": demo, "warmup": warmup, "memory": memory}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
