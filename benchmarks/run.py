"""poolkit's benchmark suite: poolkit side by side with the installed peers and the copy floor.

Run from the repository root::

    python -m benchmarks.run                 # every case, prints a Markdown table
    python -m benchmarks.run --cases max     # only cases whose name contains "max"
    python -m benchmarks.run --json out.json --plot docs/bench_windows.png

Every case is timed in interleaved rounds (each contender once per round, in turn), so that the
noise of a shared machine hits all contenders alike; the table reports medians, the bandwidth each
contender reaches (input + output bytes per second) and its ratio to poolkit.  All contenders run
with the same number of threads (``--threads``, default: all cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    name: str
    nbytes: int  # input + output bytes of the pooling itself
    contenders: dict = field(default_factory=dict)  # label -> zero-argument callable
    target: str = ""  # what the issue asks of the ratio (for the table)
    copy_bytes: int = 0  # bytes the copy-floor contender copies

    def add_floor(self, x):
        """A plain copy of x into a preallocated array: the memory-bandwidth floor of this machine."""
        dst = np.empty_like(x)
        self.copy_bytes = x.nbytes
        self.contenders["copy floor"] = lambda: np.copyto(dst, x)


def _peers():
    """Import what is installed; each missing peer is reported and skipped."""
    found = {}
    try:
        import torch

        found["torch"] = torch
    except ImportError:
        pass
    try:
        import jax

        jax.config.update("jax_platforms", "cpu")
        found["jax"] = jax
    except ImportError:
        pass
    try:
        import skimage.measure

        found["skimage"] = skimage.measure
    except ImportError:
        pass
    return found


def _torch_fns(torch, x, kind, k, s, p):
    import torch.nn.functional as F

    tx = torch.from_numpy(x)
    tcl = tx.contiguous(memory_format=torch.channels_last)
    f = {"max": F.max_pool2d, "avg": F.avg_pool2d}[kind]
    return {"torch NCHW": lambda: f(tx, k, s, p), "torch channels_last": lambda: f(tcl, k, s, p)}


def _jax_fn(jax, x, kind, k, s, p):
    import jax.numpy as jnp
    from jax import lax

    xj = jax.device_put(jnp.asarray(x))
    pads = ((0, 0), (0, 0), (p, p), (p, p))
    if kind == "max":
        fn = jax.jit(lambda a: lax.reduce_window(a, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), pads))
    else:
        fn = jax.jit(lambda a: lax.reduce_window(a, 0.0, lax.add, (1, 1, k, k), (1, 1, s, s), pads) / (k * k))
    fn(xj).block_until_ready()
    return lambda: fn(xj).block_until_ready()


def _numpy_fn(x, kind, k, s, p):
    """NumPy's own idiom: pad, sliding_window_view, reduce."""
    fill = -np.inf if kind == "max" else 0.0

    def run():
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill) if p else x
        v = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        return v.max(axis=(-2, -1)) if kind == "max" else v.mean(axis=(-2, -1))

    return run


def _standard_cases(peers, rng, shape, k, s, p):
    """Forward (both layouts) and backward cases for one standard CNN shape (its own scope, so that
    every contender binds this shape's arrays)."""
    import poolkit

    cases = []
    x = rng.standard_normal(shape, dtype=np.float32)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out_shape = poolkit.output_shape(shape, (k, k), s, p)
    nbytes = x.nbytes + int(np.prod(out_shape)) * 4
    tag = f"{shape} {k}x{k} s{s} p{p}"
    for kind in ("max", "avg"):
        pool = getattr(poolkit, f"{kind}_pool")
        c = Case(f"{kind} forward NCHW {tag}", nbytes)
        c.contenders["poolkit"] = lambda pool=pool, x=x: pool(x, (k, k), s, p)
        if "torch" in peers:
            c.contenders.update(_torch_fns(peers["torch"], x, kind, k, s, p))
        if "jax" in peers:
            c.contenders["jax reduce_window"] = _jax_fn(peers["jax"], x, kind, k, s, p)
        c.contenders["numpy sliding_window_view"] = _numpy_fn(x, kind, k, s, p)
        if "skimage" in peers and s == k and p == 0:
            fn = np.max if kind == "max" else np.mean
            c.contenders["skimage block_reduce"] = (
                lambda x=x, fn=fn: peers["skimage"].block_reduce(x, (1, 1, k, k), fn))
        c.add_floor(x)
        c.target = {"max": "<= 0.25 x torch NCHW, <= 1.25 x torch channels_last",
                    "avg": "<= 0.5 x torch NCHW"}[kind]
        cases.append(c)
    c = Case(f"max forward NHWC (axes=(1, 2)) {tag}", nbytes, target="<= 1.25 x torch channels_last")
    c.contenders["poolkit"] = lambda xh=xh: poolkit.max_pool(xh, (k, k), s, p, axes=(1, 2))
    if "torch" in peers:
        c.contenders["torch channels_last"] = _torch_fns(peers["torch"], x, "max", k, s, p)["torch channels_last"]
    c.add_floor(x)
    cases.append(c)
    if "torch" in peers:
        torch = peers["torch"]
        tx = torch.from_numpy(x)
        out, idx = poolkit.max_pool(x, (k, k), s, p, return_indices=True)
        g = rng.standard_normal(out.shape, dtype=np.float32)
        tg, tidx = torch.from_numpy(g), torch.from_numpy(idx)
        c = Case(f"max backward NCHW {tag}", x.nbytes + g.nbytes + idx.nbytes, target="<= 0.7 x torch")
        c.contenders["poolkit"] = lambda x=x, g=g, idx=idx: poolkit.max_pool_backward(g, x, (k, k), s, p, indices=idx)
        c.contenders["torch NCHW"] = lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            tg, tx, [k, k], [s, s], [p, p], [1, 1], False, tidx)
        cases.append(c)
        c = Case(f"avg backward NCHW {tag}", x.nbytes + g.nbytes, target="<= 0.7 x torch")
        c.contenders["poolkit"] = lambda x=x, g=g: poolkit.avg_pool_backward(g, x, (k, k), s, p)
        c.contenders["torch NCHW"] = lambda: torch.ops.aten.avg_pool2d_backward(
            tg, tx, [k, k], [s, s], [p, p], False, True, None)
        cases.append(c)
    return cases


def build_cases(peers, quick=False):
    import poolkit

    rng = np.random.default_rng(0)
    cases = []
    big = [((32, 64, 112, 112), 3, 2, 1), ((32, 128, 56, 56), 2, 2, 0)]
    if quick:
        big = [((8, 64, 112, 112), 3, 2, 1), ((8, 128, 56, 56), 2, 2, 0)]
    for shape, k, s, p in big:
        cases += _standard_cases(peers, rng, shape, k, s, p)

    # large windows: the cost per output must not grow with the window
    x = rng.standard_normal((4, 16, 256, 256), dtype=np.float32)
    for kind in ("max", "avg"):
        pool = getattr(poolkit, f"{kind}_pool")
        c = Case(f"{kind} forward NCHW (4, 16, 256, 256) 9x9 s1 p4", 2 * x.nbytes, target="<= 0.1 x torch NCHW")
        c.contenders["poolkit"] = lambda pool=pool, x=x: pool(x, (9, 9), 1, 4)
        if "torch" in peers:
            c.contenders.update(_torch_fns(peers["torch"], x, kind, 9, 1, 4))
        if "jax" in peers:
            c.contenders["jax reduce_window"] = _jax_fn(peers["jax"], x, kind, 9, 1, 4)
        c.add_floor(x)
        cases.append(c)

    # call overhead
    x = rng.standard_normal((1, 1, 6, 6), dtype=np.float32)
    c = Case("max forward tiny (1, 1, 6, 6) 2x2", x.nbytes * 5 // 4, target="<= 3 x torch")
    c.contenders["poolkit"] = lambda x=x: poolkit.max_pool(x, (2, 2))
    if "torch" in peers:
        c.contenders.update(_torch_fns(peers["torch"], x, "max", 2, 2, 0))
    cases.append(c)

    # 1-D long sequences and 3-D volumes
    x = rng.standard_normal((8, 64, 65536), dtype=np.float32)
    for kind in ("max", "avg"):
        c = Case(f"{kind} forward 1-D (8, 64, 65536) k4 s4", x.nbytes * 5 // 4)
        c.contenders["poolkit"] = lambda kind=kind, x=x: getattr(poolkit, f"{kind}_pool")(x, (4,))
        if "torch" in peers:
            tx = peers["torch"].from_numpy(x)
            f = getattr(peers["torch"].nn.functional, f"{kind}_pool1d")
            c.contenders["torch"] = lambda f=f, tx=tx: f(tx, 4)
        c.add_floor(x)
        cases.append(c)
    x = rng.standard_normal((2, 16, 64, 64, 64), dtype=np.float32)
    for kind in ("max", "avg"):
        c = Case(f"{kind} forward 3-D (2, 16, 64, 64, 64) 3x3x3 s2 p1", x.nbytes * 9 // 8)
        c.contenders["poolkit"] = lambda kind=kind, x=x: getattr(poolkit, f"{kind}_pool")(x, (3, 3, 3), 2, 1)
        if "torch" in peers:
            tx = peers["torch"].from_numpy(x)
            f = getattr(peers["torch"].nn.functional, f"{kind}_pool3d")
            c.contenders["torch"] = lambda f=f, tx=tx: f(tx, 3, 2, 1)
        c.add_floor(x)
        cases.append(c)
    return cases


def window_sweep(peers, sizes=(2, 3, 5, 9, 17, 33, 65), rounds=5):
    """max pooling, stride 1, 'same'-style padding, over window sizes: medians in ms per contender."""
    import poolkit

    x = np.random.default_rng(1).standard_normal((2, 16, 256, 256), dtype=np.float32)
    results = {}
    for k in sizes:
        lo, hi = (k - 1) // 2, k // 2
        fns = {"poolkit": lambda k=k: poolkit.max_pool(x, (k, k), 1, ((lo, hi), (lo, hi)))}
        if "torch" in peers and lo == hi:
            fns.update(_torch_fns(peers["torch"], x, "max", k, 1, lo))
        if "jax" in peers and lo == hi:
            fns["jax reduce_window"] = _jax_fn(peers["jax"], x, "max", k, 1, lo)
        results[k] = {name: t * 1e3 for name, t in _time(fns, rounds).items()}
    return results


def _time(fns, rounds):
    for f in fns.values():  # warm up: compile, allocate
        f()
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in samples.items()}


def _rounds_for(case):
    return 200 if "tiny" in case.name else 9


def machine_info(threads):
    import numba

    import poolkit

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "poolkit": poolkit.__version__,
    }
    for mod in ("torch", "jax", "skimage"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "not installed"
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="only cases whose name contains this text")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every contender")
    ap.add_argument("--quick", action="store_true", help="smaller shapes (for a smoke run)")
    ap.add_argument("--json", help="write the results to this JSON file")
    ap.add_argument("--plot", help="also run the window-size sweep and plot it to this PNG")
    args = ap.parse_args(argv)

    import poolkit

    poolkit.set_num_threads(args.threads)
    peers = _peers()
    if "torch" in peers:
        peers["torch"].set_num_threads(args.threads)
    info = machine_info(args.threads)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    results = []
    for case in build_cases(peers, args.quick):
        if args.cases not in case.name:
            continue
        med = _time(case.contenders, _rounds_for(case))
        results.append({"case": case.name, "bytes": case.nbytes, "target": case.target, "median_s": med})
        print(f"\n### {case.name}" + (f"  (target: {case.target})" if case.target else ""))
        print("| contender | median ms | GB/s (in+out) | poolkit / contender |")
        print("|---|---:|---:|---:|")
        for name, t in med.items():
            gbs = (2 * case.copy_bytes if name == "copy floor" else case.nbytes) / t / 1e9
            print(f"| {name} | {t * 1e3:.3f} | {gbs:.1f} | {med['poolkit'] / t:.3f} |")
        if "copy floor" in med:
            floor = case.nbytes / (2 * case.copy_bytes / med["copy floor"])
            print(f"| *floor for these bytes at copy bandwidth* | {floor * 1e3:.3f} | | {med['poolkit'] / floor:.3f} |")
        sys.stdout.flush()
    sweep = None
    if args.plot:
        sweep = window_sweep(peers)
        _plot(sweep, args.plot, info)
        print(f"\nwindow sweep plotted to {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results, "window_sweep": sweep}, f, indent=1)
    return 0


def _plot(sweep, path, info):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(sweep)
    names = sorted({n for r in sweep.values() for n in r}, key=lambda n: n != "poolkit")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in names:
        ks = [k for k in sizes if name in sweep[k]]
        ax.plot(ks, [sweep[k][name] for k in ks], marker="o", label=name, lw=2.5 if name == "poolkit" else 1.5)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.set_xlabel("window size k (k x k, stride 1, same padding)")
    ax.set_ylabel("median time, ms (log)")
    ax.set_title(f"max pooling, (2, 16, 256, 256) float32, {info['threads']} threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
