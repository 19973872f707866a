"""Compiled kernels and numba's on-disk cache: every cached kernel has one identity, so no process
ever loads one computation's machine code for another -- checked the way users run poolkit, in
fresh processes sharing one cache directory."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest
from numba.core.caching import NullCache

import poolkit
from poolkit import _kernels

PROBE = pathlib.Path(__file__).parent / "support" / "cache_probe.py"  # the script each fresh process runs
SRC = pathlib.Path(poolkit.__file__).parent


def _njit_decorated(tree):
    """(function node, depth) of every function decorated with njit(...) / jit(...)."""
    found = []

    def visit(node, depth):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for dec in child.decorator_list:
                    call = dec.func if isinstance(dec, ast.Call) else dec
                    name = call.attr if isinstance(call, ast.Attribute) else getattr(call, "id", "")
                    if name in ("njit", "jit", "vectorize", "guvectorize", "stencil", "kernel"):
                        found.append((child, depth, dec))
                visit(child, depth + 1)
            elif isinstance(child, ast.ClassDef):
                visit(child, depth + 1)
            else:
                visit(child, depth)

    visit(tree, 0)
    return found


def test_every_compiled_function_is_defined_at_module_level():
    """A factory that builds jitted functions makes builds that share one cache entry (numba keys
    the cache by name and source location, not by captured values): there must be none."""
    checked = 0
    for path in sorted(SRC.rglob("*.py")):
        for fn, depth, dec in _njit_decorated(ast.parse(path.read_text())):
            checked += 1
            assert depth == 0, f"{path.name}:{fn.lineno}: {fn.name} is jitted inside another definition"
            if isinstance(dec, ast.Call):
                opts = {kw.arg: kw.value for kw in dec.keywords}
                assert "parallel" not in opts, (
                    f"{path.name}:{fn.lineno}: {fn.name} uses parallel=: kernels run on poolkit's own threads")
    assert checked > 30


def test_cached_kernels_are_unique_module_level_functions():
    seen = {}
    for module in (getattr(_kernels, m) for m in _kernels.__all__):  # every kernel module
        for name, obj in vars(module).items():
            py = getattr(obj, "py_func", None)
            if py is None or py.__module__ != module.__name__:
                continue
            if not isinstance(obj._cache, NullCache):  # cache=True
                assert py.__qualname__ == name and py.__closure__ is None, f"{module.__name__}.{name}"
                key = (module.__name__, py.__qualname__)
                assert key not in seen
                seen[key] = obj
                assert obj.targetoptions.get("nogil"), f"{module.__name__}.{name} holds the GIL"
    assert len(seen) >= 30


def _probe(cache, cases):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, str(PROBE), *cases], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


CORE_OPS = ["max", "avg", "max_indices", "max_backward", "avg_backward", "unpool", "masked_max", "masked_mean"]
CORE_DTYPES = ["float32", "float16", "int32"]
OTHER_OPS = ["max3", "avg3", "max_nhwc", "avg_nhwc", "max_wide", "avg_wide", "max_large", "max_large_nan",
             "max_indices_nan", "max_indices_nhwc", "max_indices_nhwc_nan", "max_1d",
             "max_axes", "avg_axes", "lp", "masked_min", "adaptive_max", "adaptive_avg", "roi_pool", "roi_align",
             "avg_acc32", "global_acc32", "global_large"]
ALL_CASES = ([f"{op}:{dt}" for op in CORE_OPS for dt in CORE_DTYPES] + [f"{op}:float32" for op in OTHER_OPS]
             + ["max:bool", "max:uint8", "avg:float64", "avg:uint8", "max_large_int:uint8", "max_large_int:int32",
                "max_pairs_large:uint8", "max_large_int:float16"])


@pytest.mark.slow
def test_fresh_processes_sharing_one_cache(tmp_path):
    """Each op and dtype compiled first in a process of its own, all sharing one empty cache; then
    every op in one process, in both orders, loaded from the cache.  Every result against the
    oracle.  (Before kernels had one identity each, the second process of `max:float32` then
    `avg:float32` returned the max for the average.)"""
    cache = tmp_path / "numba-cache"
    wrong = []
    for case in ALL_CASES:
        res = _probe(cache, [case])
        wrong += [c for c, ok in res["results"].items() if not ok]
    assert not wrong, f"wrong results when compiled alone: {wrong}"
    for order in (ALL_CASES, ALL_CASES[::-1]):
        res = _probe(cache, order)
        assert [c for c, ok in res["results"].items() if not ok] == []
        assert res["compiles"] == 0, f"every kernel should have loaded from the shared cache: {res['compiled']}"


@pytest.mark.slow
def test_warmup_compiles_what_later_calls_need(tmp_path):
    """After ``poolkit.warmup(["float32"])`` in one process, a fresh process sharing its cache runs
    the float32 cases of the probe (small and large, with and without NaN) without compiling, and
    right."""
    cache = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    subprocess.run([sys.executable, "-c", "import poolkit; poolkit.warmup(['float32'])"], env=env, check=True,
                   timeout=1200)
    # (not the float32 sums of acc_dtype="float32", which warmup leaves to the first call, nor the
    # probe's average backward, whose gradient is float64)
    cases = [c for c in ALL_CASES if c.endswith(":float32") and "acc32" not in c and not c.startswith("avg_backward")]
    res = _probe(cache, cases)
    assert [c for c, ok in res["results"].items() if not ok] == []
    assert res["compiles"] == 0, res["compiled"]


_NOTICE_SCRIPT = """
import logging, numba, numpy as np
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
import poolkit
# a function made by exec without a __name__: numba gives it __module__ None
ns = {"njit": numba.njit}
exec("@njit\\ndef plus_one(a):\\n    return a + 1\\n", ns)
assert ns["plus_one"].py_func.__module__ is None
print("unrelated", ns["plus_one"](41))
print("pooled", poolkit.max_pool(np.array([1.0, 3.0, 2.0, 0.5]), (2,)).tolist())
"""


def test_compile_notice_names_poolkit_kernels_only(tmp_path):
    """The compile notice watches every function numba compiles in the process, so it must let
    others' functions compile whatever they look like (one made by ``exec`` has ``__module__``
    None: the notice raised AttributeError inside numba and the user's own function failed to
    compile), and still log poolkit's own kernels when they compile on first use."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    proc = subprocess.run([sys.executable, "-c", _NOTICE_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "unrelated 42" in proc.stdout
    assert "pooled [3.0, 2.0]" in proc.stdout
    notices = [line for line in proc.stderr.splitlines() if line.startswith("poolkit: compiling the ")]
    assert len(notices) == 1, proc.stderr  # the one kernel the call used, not the user's function
    assert "max_line_k2s2 kernel for float64" in notices[0]
