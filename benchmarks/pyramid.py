"""The pyramid case: a uint16 Zarr volume to a mean OME-Zarr pyramid on a Dask ``LocalCluster``.

poolkit (:func:`poolkit.pyramid`) against ngff-zarr (``ITKWASM_BIN_SHRINK``, its local mean),
``dask.array.coarsen`` (``np.mean`` level after level, cast back to uint16, stored with
``da.store``) and ome-zarr-py's writer (``Methods.LOCAL_MEAN``), all on the same cluster: wall
time, the peak resident memory of any worker process (sampled every 0.1 s), worker processes that
died (the nanny kills a worker past 95 % of its limit), the task count of each graph, and how far
each tool's level 1 is from the exact, rounded block mean on a corner of the volume.

Run from the repository root::

    python benchmarks/pyramid.py                                   # 1 GiB volume, every tool
    python benchmarks/pyramid.py --shape 1024,1024,1024 --memory-limit 300MB --tools poolkit
                                                                   # the memory scenario
    python benchmarks/pyramid.py --shape 256,1024,1024 --tools poolkit --kill-at 0.3
                                                                   # kill a worker at 30 % of the tasks

Each run gets a fresh cluster.  The volume is made once (``--workdir``) and
reused; its values are a smooth ramp plus noise, compressed with Zarr's default codec.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))


def _volume_block(block_info=None):
    loc = block_info[None]["array-location"]
    shape = block_info[None]["chunk-shape"]
    z, y, x = np.meshgrid(*[np.arange(a, b, dtype=np.float64) for a, b in loc], indexing="ij")
    rng = np.random.default_rng(loc[0][0] * 7919 + loc[1][0] * 104729 + loc[2][0])
    smooth = 20000 + 15000 * np.sin(z / 97.0) * np.cos(y / 61.0) + 9000 * np.sin(x / 43.0)
    return (smooth + rng.integers(0, 256, shape)).astype(np.uint16)


def make_volume(path: Path, shape, chunks: int, client) -> None:
    import dask.array as da
    import zarr

    if (path / "zarr.json").exists():
        a = zarr.open_array(str(path), mode="r")
        if a.shape == tuple(shape) and a.chunks == (chunks,) * 3:
            return
        shutil.rmtree(path)
    arr = da.map_blocks(_volume_block, chunks=da.core.normalize_chunks(chunks, shape), dtype=np.uint16,
                        meta=np.empty((0, 0, 0), np.uint16))
    z = zarr.create_array(str(path), shape=shape, chunks=(chunks,) * 3, dtype=np.uint16, zarr_format=3)
    client.compute(da.store(arr, z, lock=False, compute=False)).result()


class PeakRSS:
    """Sample the resident memory of every worker process (children of this process) every 0.1 s."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.peak = 0
        self.base = self.me.memory_info().rss
        self.client_peak = self.base
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.wait(0.1):
            self.client_peak = max(self.client_peak, self.me.memory_info().rss)
            for p in self.me.children(recursive=True):
                try:
                    if "multiprocessing" not in " ".join(p.cmdline()) or "resource_tracker" in " ".join(p.cmdline()):
                        continue
                    self.pids.add(p.pid)
                    self.peak = max(self.peak, p.memory_info().rss)
                except psutil.Error:
                    pass

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _n_tasks(*arrays) -> int:
    from poolkit.dask import task_count

    return task_count(*arrays)


def run_poolkit(src, out, levels, chunks, client, kill_at=None):
    import poolkit

    killed = []
    pids = list(client.run(os.getpid).values())

    def progress(done, total):
        if kill_at is not None and not killed and done >= kill_at * total:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(done)

    r = poolkit.pyramid(str(src), str(out), method="mean", factor=2, levels=levels, chunks=chunks,
                        scheduler=client, progress=progress)
    return {"tasks": r.tasks, "killed_at_task": killed[0] if killed else None}


def run_coarsen(src, out, levels, chunks, client):
    import dask.array as da
    import zarr

    root = zarr.open_group(str(out), mode="w", zarr_format=3)
    cur = da.from_zarr(str(src))
    arrays = [cur]
    for _ in range(1, levels):
        cur = da.coarsen(np.mean, cur, {0: 2, 1: 2, 2: 2}, trim_excess=True).astype(np.uint16)
        arrays.append(cur.rechunk(tuple(min(chunks, s) for s in cur.shape)))
    stores = []
    for lev, a in enumerate(arrays):
        z = root.create_array(str(lev), shape=a.shape, chunks=tuple(max(c) for c in a.chunks), dtype=np.uint16)
        stores.append(da.store(a, z, lock=False, compute=False))
    n = _n_tasks(*arrays) + sum(a.npartitions for a in arrays)  # one store task per chunk, as poolkit counts
    client.compute(stores, sync=True)
    return {"tasks": n}


def run_ngff_zarr(src, out, levels, chunks, client):
    """ngff-zarr 0.50 writes through zarrista, whose arrays cannot be pickled to a distributed
    worker (TypeError: cannot pickle 'zarrista.Array'): it runs on dask's threaded scheduler in this
    process instead, with as many threads as the cluster has workers (no memory limit applies)."""
    import dask
    import dask.array as da
    from ngff_zarr import Methods, to_multiscales, to_ngff_image, to_ngff_zarr

    img = to_ngff_image(da.from_zarr(str(src)), dims=["z", "y", "x"])
    ms = to_multiscales(img, scale_factors=[2**lev for lev in range(1, levels)], method=Methods.ITKWASM_BIN_SHRINK,
                        chunks=chunks)
    # count what it computes: every dask.array.store call's sources and one store task per chunk
    counted = [0]
    store = da.store

    def counting_store(sources, targets, *a, **kw):
        srcs = sources if isinstance(sources, (list, tuple)) else [sources]
        counted[0] += _n_tasks(*srcs) + sum(s.npartitions for s in srcs)
        return store(sources, targets, *a, **kw)

    da.store = counting_store
    try:
        with dask.config.set(scheduler="threads", num_workers=len(client.scheduler_info()["workers"])):
            to_ngff_zarr(str(out), ms, version="0.5")
    finally:
        da.store = store
    return {"tasks": counted[0], "scheduler": "threads in the client process (cannot run on distributed)"}


def run_ome_zarr(src, out, levels, chunks, client):
    import dask
    import dask.array as da
    import zarr
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(out), mode="w", zarr_format=3)
    factors = [{"z": 2**lev, "y": 2**lev, "x": 2**lev} for lev in range(1, levels)]
    delayed = write_image(da.from_zarr(str(src)), group, scale_factors=factors, method=Methods.LOCAL_MEAN,
                          axes="zyx", storage_options={"chunks": (chunks,) * 3}, compute=False)
    n = len(dask.base.collections_to_expr(delayed, optimize_graph=False).__dask_graph__())
    client.compute(delayed, sync=True)
    return {"tasks": n}


TOOLS = {"poolkit": run_poolkit, "coarsen": run_coarsen, "ngff-zarr": run_ngff_zarr, "ome-zarr": run_ome_zarr}


def _level_paths(out: Path) -> list[str]:
    """Level array paths of an output, from its multiscales metadata (or 0, 1, ... for coarsen)."""
    import zarr

    g = zarr.open_group(str(out), mode="r")
    attrs = dict(g.attrs)
    ome = attrs.get("ome", attrs)
    if "multiscales" in ome:
        return [d["path"] for d in ome["multiscales"][0]["datasets"]]
    return sorted((k for k in g.array_keys()), key=int)


def level1_error(src: Path, out: Path, corner: int = 128) -> dict:
    """Level 1 of ``out`` on the corner [0, corner/2)^3 against the exact block mean of level 0,
    rounded to nearest: max |difference| and the share of voxels that differ."""
    import zarr

    x = zarr.open_array(str(src), mode="r")[:corner, :corner, :corner].astype(np.float64)
    h = corner // 2
    exact = np.rint(x.reshape(h, 2, h, 2, h, 2).mean(axis=(1, 3, 5)))
    got = zarr.open_group(str(out), mode="r")[_level_paths(out)[1]][:h, :h, :h].astype(np.float64)
    d = np.abs(got - exact)
    return {"level1_max_abs_err": float(d.max()), "level1_share_differing": float((d > 0).mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="512,1024,1024", help="z,y,x of the uint16 volume (default: 1 GiB)")
    ap.add_argument("--chunks", type=int, default=128, help="input and output chunk edge")
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="1GB", help="per worker")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--kill-at", type=float, help="poolkit only: kill a worker at this share of the tasks and "
                                                  "compare the result with an undisturbed run")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each tool, interleaved")
    ap.add_argument("--workdir", default="/tmp/poolkit-bench-pyramid")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    import dask
    import distributed
    import zarr

    shape = tuple(int(v) for v in args.shape.split(","))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / ("volume-" + "x".join(map(str, shape)) + f"-c{args.chunks}.zarr")
    env = {"NUMBA_NUM_THREADS": "1"}
    if os.environ.get("NUMBA_CACHE_DIR"):
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    results = {"shape": shape, "dtype": "uint16", "bytes": int(np.prod(shape)) * 2, "chunks": args.chunks,
               "levels": args.levels, "workers": args.workers, "memory_limit": args.memory_limit,
               "threads_per_worker": 1, "cpus": os.cpu_count(), "tools": {}}
    def fresh_cluster():
        """A new cluster for every run (restarting workers in place proved fragile on a loaded machine)."""
        return distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                        memory_limit=args.memory_limit, dashboard_address=None, silence_logs=50,
                                        env=env)

    with dask.config.set({"distributed.scheduler.worker-ttl": None}):
        with fresh_cluster() as cluster, distributed.Client(cluster) as client:
            limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
            results["memory_limit_bytes"] = limit
            t = time.monotonic()
            make_volume(src, shape, args.chunks, client)
        print(f"volume {src.name}: {results['bytes'] / 2**30:.2f} GiB uint16 ({time.monotonic() - t:.0f} s)",
              flush=True)
        for rnd in range(args.rounds):  # interleaved: the noise of a shared machine hits every tool alike
            for name in args.tools.split(","):
                out = work / f"out-{name}.zarr"
                if out.exists():
                    shutil.rmtree(out)
                rec: dict = {"round": rnd}
                with fresh_cluster() as cluster, distributed.Client(cluster) as client:
                    pids0 = set(client.run(os.getpid).values())
                    with PeakRSS() as mem:
                        t = time.monotonic()
                        try:
                            kw = {"kill_at": args.kill_at} if name == "poolkit" and args.kill_at is not None else {}
                            rec.update(TOOLS[name](src, out, args.levels, args.chunks, client, **kw))
                            rec["ok"] = True
                        except Exception as exc:  # a peer failing under the memory limit is a result too
                            rec["ok"] = False
                            rec["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                        rec["seconds"] = round(time.monotonic() - t, 2)
                rec["peak_worker_rss_bytes"] = mem.peak
                rec["peak_worker_rss_share_of_limit"] = round(mem.peak / limit, 3)
                rec["worker_processes_replaced"] = len(mem.pids - pids0)
                rec["client_process_rss_growth_bytes"] = mem.client_peak - mem.base
                if rec["ok"]:
                    rec.update(level1_error(src, out, min(128, *shape) // 2 * 2))
                results["tools"].setdefault(name, []).append(rec)
                print(name, json.dumps(rec), flush=True)
        for name, runs in results["tools"].items():
            secs = sorted(r["seconds"] for r in runs if r["ok"])
            if secs:
                print(f"{name:10s} seconds: min {secs[0]:.1f}, median {secs[len(secs) // 2]:.1f} over {len(secs)} "
                      f"runs; peak worker RSS {max(r['peak_worker_rss_bytes'] for r in runs) / 1e6:.0f} MB", flush=True)
        if args.kill_at is not None and "poolkit" in results["tools"]:  # compare with an undisturbed run
            import dask.array as da

            ref = work / "out-poolkit-undisturbed.zarr"
            if ref.exists():
                shutil.rmtree(ref)
            with fresh_cluster() as cluster, distributed.Client(cluster) as client:
                run_poolkit(src, ref, args.levels, args.chunks, client)
                same = all(bool(client.compute((da.from_zarr(str(work / "out-poolkit.zarr"), component=p)
                                                == da.from_zarr(str(ref), component=p)).all(), sync=True))
                           for p in _level_paths(ref))
            results["killed_run_equals_undisturbed_run"] = same
            print("killed run equals undisturbed run:", same, flush=True)
    del zarr
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
