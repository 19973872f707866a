"""``poolkit.pyramid`` and ``poolkit pyramid``: OME-Zarr 0.5 multiscale images written on a real
``distributed.LocalCluster`` (no mocks).  Every level is compared with a slow in-memory reduction
of level 0 over its blocks written here (a Python loop over the blocks, each a NumPy slice, so the
last partial block holds only real cells); the output is validated with ome-zarr-models and read
back with ome-zarr-py; a worker is killed in the middle of a run; interrupted runs resume."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import poolkit

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


# ---------------------------------------------------------------------------------------------
# the reference: level l from level 0, block by block
# ---------------------------------------------------------------------------------------------


def ref_level(x, pooled, factors, level, method):
    """Reduce ``x`` over blocks of ``f**level`` cells along each pooled axis (the last block of an
    axis holds what is left: its real cells only).  Means in float64, rounded to nearest (ties to
    even) for integer dtypes; mode: the most frequent value, ties to the smallest."""
    F = {a: f**level for a, f in zip(pooled, factors)}
    out_shape = tuple(-(-n // F[a]) if a in F else n for a, n in enumerate(x.shape))
    out = np.zeros(out_shape, x.dtype)
    for pos in itertools.product(*[range(n) for n in out_shape]):
        sl = tuple(slice(p * F[a], (p + 1) * F[a]) if a in F else slice(p, p + 1) for a, p in enumerate(pos))
        block = x[sl].ravel()
        if method == "max":
            v = block.max()
        elif method == "min":
            v = block.min()
        elif method == "mode":
            values, counts = np.unique(block, return_counts=True)
            v = values[np.argmax(counts)]  # unique sorts: the first of the most frequent is the smallest
        else:
            m = block.astype(np.float64).mean()
            v = np.rint(m) if x.dtype.kind in "iub" else m
        out[pos] = v
    return out


def _levels(path):
    g = zarr.open_group(str(path), mode="r")
    ms = dict(g.attrs)["ome"]["multiscales"][0]
    return g, ms, [g[d["path"]][...] for d in ms["datasets"]]


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes with a nanny each (a killed worker is replaced)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                                  dashboard_address=None, silence_logs=50) as c:
        yield c


def _zarr_input(tmp_path, x, chunks, name="in.zarr"):
    path = tmp_path / name
    a = zarr.create_array(str(path), shape=x.shape, chunks=chunks, dtype=x.dtype, zarr_format=3)
    a[...] = x
    return str(path)


# ---------------------------------------------------------------------------------------------
# every level equals the reduction of level 0
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, factor, dtype", [
    ("mean", 2, np.uint16),
    ("mean", (1, 2, 3), np.float32),
    ("max", 2, np.uint16),
    ("min", (2, 3, 2), np.int16),
    ("mode", 2, np.int32),
])
def test_every_level_equals_the_reduction_of_level_0(tmp_path, cluster, method, factor, dtype):
    rng = np.random.default_rng(7)
    shape = (11, 29, 38)  # no axis divisible by the factors' powers: every level has partial blocks
    if method == "mode":
        x = rng.integers(0, 4, shape).astype(dtype)
    elif np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
    else:
        x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    src = _zarr_input(tmp_path, x, (5, 7, 9))  # input chunks cut the blocks anywhere
    out = tmp_path / "out.zarr"
    r = poolkit.pyramid(src, str(out), method=method, factor=factor, levels=4, chunks=(4, 8, 16),
                        scheduler=cluster.scheduler_address)
    _, ms, levels = _levels(out)
    assert len(levels) == 4 and r.computed == (0, 1, 2, 3)
    f = (factor,) * 3 if isinstance(factor, int) else factor
    np.testing.assert_array_equal(levels[0], x)
    for lev in range(1, 4):
        want = ref_level(x, (0, 1, 2), f, lev, method)
        got = levels[lev]
        assert got.dtype == x.dtype and got.shape == want.shape == r.shapes[lev]
        if np.dtype(dtype).kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)
    assert ms["type"] == method


def test_integer_mean_is_rounded_to_nearest_and_edges_use_real_cells(tmp_path, cluster):
    # 1-D per row: blocks [0, 1] -> 0.5 -> 0 (ties to even), [1, 2] -> 1.5 -> 2, last block [7] -> 7
    x = np.array([[0, 1, 1, 2, 7]] * 3, dtype=np.uint8)
    src = tmp_path / "x.npy"
    np.save(src, x)
    out = tmp_path / "x.zarr"
    poolkit.pyramid(str(src), str(out), factor=(1, 2), levels=2, axes="yx", scheduler=cluster.scheduler_address)
    _, _, levels = _levels(out)
    np.testing.assert_array_equal(levels[1], [[0, 2, 7]] * 3)  # zero padding would make the edge 4 (dark)


# ---------------------------------------------------------------------------------------------
# OME-Zarr 0.5: validation, ome-zarr-py, metadata
# ---------------------------------------------------------------------------------------------


def test_output_validates_and_opens_in_ome_zarr_py(tmp_path, cluster):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader
    from ome_zarr_models.v05.image import Image

    x = np.random.default_rng(1).integers(0, 1000, (2, 9, 40, 50)).astype(np.uint16)
    src = tmp_path / "c.npy"
    np.save(src, x)
    out = tmp_path / "c.zarr"
    r = poolkit.pyramid(str(src), str(out), axes="czyx", factor=(1, 2, 2), min_size=16,
                        scheduler=cluster.scheduler_address)
    assert r.shapes == ((2, 9, 40, 50), (2, 9, 20, 25), (2, 9, 10, 13))
    group = zarr.open_group(str(out), mode="r")
    assert group.metadata.zarr_format == 3
    Image.from_zarr(group)  # raises if the metadata do not validate
    ome = dict(group.attrs)["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == list("czyx")
    assert [a["type"] for a in ms["axes"]] == ["channel", "space", "space", "space"]
    for lev, ds in enumerate(ms["datasets"]):
        scale, trans = (t[k] for t, k in zip(ds["coordinateTransformations"], ("scale", "translation")))
        F = 2**lev
        assert scale == [1.0, 1.0, F, F]
        assert trans == [0.0, 0.0, (F - 1) / 2, (F - 1) / 2]  # a block's centre, between its pixels
    nodes = list(Reader(parse_url(str(out)))())
    ms_nodes = [n for n in nodes if any(isinstance(s, Multiscales) for s in n.specs)]
    data = ms_nodes[0].data
    assert [tuple(d.shape) for d in data] == list(r.shapes)
    # channels never pooled
    np.testing.assert_array_equal(np.asarray(data[2]), np.stack([ref_level(x[c], (1, 2), (2, 2), 2, "mean")
                                                                 for c in range(2)]))


def test_inputs_tiff_png_zarr_and_ome_zarr(tmp_path, cluster):
    tifffile = pytest.importorskip("tifffile")
    PIL = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    vol = rng.integers(0, 60000, (6, 20, 30)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", vol)
    r = poolkit.pyramid(str(tmp_path / "v.tif"), str(tmp_path / "v.zarr"), method="max", levels=3,
                        scheduler=cluster.scheduler_address)
    _, _, lv = _levels(tmp_path / "v.zarr")
    np.testing.assert_array_equal(lv[2], ref_level(vol, (0, 1, 2), (2, 2, 2), 2, "max"))
    assert r.axes == "zyx"
    # a colour PNG is yxc: written cyx, the channels never pooled
    rgb = rng.integers(0, 256, (21, 17, 3)).astype(np.uint8)
    PIL.fromarray(rgb).save(tmp_path / "p.png")
    r = poolkit.pyramid(str(tmp_path / "p.png"), str(tmp_path / "p.zarr"), levels=2,
                        scheduler=cluster.scheduler_address)
    assert r.axes == "cyx" and r.shapes == ((3, 21, 17), (3, 11, 9))
    _, _, lv = _levels(tmp_path / "p.zarr")
    np.testing.assert_array_equal(lv[1], ref_level(rgb.transpose(2, 0, 1), (1, 2), (2, 2), 1, "mean"))
    # an OME-Zarr image as input: its level 0, axes and scale carry over
    r = poolkit.pyramid(str(tmp_path / "v.zarr"), str(tmp_path / "w.zarr"), method="min", factor=(1, 2, 2),
                        levels=2, scheduler=cluster.scheduler_address)
    g, ms, lv = _levels(tmp_path / "w.zarr")
    np.testing.assert_array_equal(lv[1], ref_level(vol, (1, 2), (2, 2), 1, "min"))
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 2.0]


def test_level_0_of_a_zarr_input_in_the_output_chunks_is_its_chunk_files_copied(tmp_path, cluster):
    from ome_zarr_models.v05.image import Image

    rng = np.random.default_rng(11)
    x = rng.integers(0, 60000, (9, 40, 36)).astype(np.uint16)
    path = tmp_path / "in.zarr"
    a = zarr.create_array(str(path), shape=x.shape, chunks=(9, 16, 16), dtype=x.dtype, zarr_format=3,
                          compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=3), fill_value=7)
    a[...] = x
    a[:, 32:, :16] = 7  # a chunk of fill values only: never written, must stay implicit
    x[:, 32:, :16] = 7
    out = tmp_path / "o.zarr"
    r = poolkit.pyramid(str(path), str(out), method="min", levels=3, scheduler=cluster.scheduler_address)
    assert r.computed == (0, 1, 2)
    src_files = sorted(f.relative_to(path) for f in path.rglob("*") if f.is_file() and f.name != "zarr.json")
    dst_files = sorted(f.relative_to(out / "0") for f in (out / "0").rglob("*") if f.is_file()
                       and f.name != "zarr.json")
    assert src_files == dst_files and len(src_files) == 8  # 9 chunks, one of them fill only
    for f in src_files:
        assert (path / f).read_bytes() == (out / "0" / f).read_bytes()
    g, _, lv = _levels(out)
    Image.from_zarr(g)
    assert g["0"].metadata.dimension_names == ("z", "y", "x")
    np.testing.assert_array_equal(lv[0], x)
    for lev in (1, 2):
        np.testing.assert_array_equal(lv[lev], ref_level(x, (0, 1, 2), (2, 2, 2), lev, "min"))


def test_progress_reports_tasks_done_of_total(tmp_path, cluster):
    x = np.zeros((8, 64, 64), np.uint16)
    seen = []
    r = poolkit.pyramid(_zarr_input(tmp_path, x, (8, 16, 16)), str(tmp_path / "o.zarr"), levels=3,
                        scheduler=cluster.scheduler_address, progress=lambda d, t: seen.append((d, t)))
    assert seen, "no progress reported"
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1][0] == seen[-1][1] > 0
    assert r.tasks >= seen[-1][1] // 2


# ---------------------------------------------------------------------------------------------
# faults: a killed worker, an interrupted run
# ---------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_run_does_not_change_the_result(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, (24, 256, 256)).astype(np.int32)
    src = _zarr_input(tmp_path, x, (8, 64, 64))
    killed = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                                  dashboard_address=None, silence_logs=50) as c, \
            distributed.Client(c) as client:
        pids = list(client.run(os.getpid).values())

        def progress(done, total):
            if not killed and 0 < done < total // 2:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(done)

        r = poolkit.pyramid(src, str(tmp_path / "k.zarr"), method="mode", levels=3, chunks=(8, 64, 64),
                            scheduler=c.scheduler_address, progress=progress)
        assert killed, "the run ended before a worker could be killed"
        assert pids[0] not in client.run(os.getpid).values()  # the worker really died (and was replaced)
    _, _, lv = _levels(tmp_path / "k.zarr")
    np.testing.assert_array_equal(lv[0], x)
    for lev in (1, 2):
        np.testing.assert_array_equal(lv[lev], ref_level(x, (0, 1, 2), (2, 2, 2), lev, "mode"))
    assert r.computed == (0, 1, 2)


def test_an_interrupted_run_resumes_without_redoing_finished_levels(tmp_path, cluster):
    x = np.random.default_rng(9).integers(0, 5000, (7, 33, 41)).astype(np.uint16)
    src = _zarr_input(tmp_path, x, (7, 16, 16))
    out = tmp_path / "r.zarr"
    kw = dict(method="max", levels=4, chunks=16, scheduler=cluster.scheduler_address)
    poolkit.pyramid(src, str(out), **kw)
    # make it look like a run stopped after levels 0 and 1: 2 and 3 hold garbage, 1 holds a marker
    g = zarr.open_group(str(out), mode="r+")
    info = dict(g.attrs)["poolkit"]
    g.attrs["poolkit"] = {**info, "levels_done": [0, 1], "complete": False}
    g["2"][...] = 1
    g["3"][...] = 1
    marker = g["1"][...]
    marker[0, 0, 0] ^= 1
    g["1"][...] = marker
    r = poolkit.pyramid(src, str(out), **kw)
    assert r.computed == (2, 3)
    _, _, lv = _levels(out)
    np.testing.assert_array_equal(lv[1], marker)  # finished levels untouched
    # level 2 continues from the level 1 on disk (max chains level to level)
    np.testing.assert_array_equal(lv[2], ref_level(marker, (0, 1, 2), (2, 2, 2), 1, "max"))
    assert dict(zarr.open_group(str(out), mode="r").attrs)["poolkit"]["complete"] is True
    # complete now: running again is an error, overwrite replaces
    with pytest.raises(OSError, match="exists"):
        poolkit.pyramid(src, str(out), **kw)
    r = poolkit.pyramid(src, str(out), overwrite=True, **kw)
    _, _, lv = _levels(out)
    np.testing.assert_array_equal(lv[2], ref_level(x, (0, 1, 2), (2, 2, 2), 2, "max"))


# ---------------------------------------------------------------------------------------------
# bad input: a ValueError/OSError naming the problem (Python); one line and exit status 2 (CLI)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((6, 6), np.uint8))
    return str(path)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(method="median"), ValueError, "method"),
    (dict(factor=0), ValueError, "factor"),
    (dict(factor="2,x"), ValueError, "factor"),
    (dict(factor=(2, 2, 2)), ValueError, "factor"),
    (dict(axes="zyx"), ValueError, "axes"),
    (dict(axes="cx"), ValueError, "spatial"),
    (dict(levels=0), ValueError, "levels"),
    (dict(levels=2, min_size=3), ValueError, "levels or min_size"),
    (dict(chunks=(0, 2)), ValueError, "chunks"),
    (dict(scheduler="tcp://127.0.0.1:1", workers=1), ValueError, "workers"),
])
def test_bad_arguments(npy, tmp_path, kw, exc, match):
    with pytest.raises(exc, match=match):
        poolkit.pyramid(npy, str(tmp_path / "o.zarr"), **kw)
    assert not (tmp_path / "o.zarr").exists()


def test_bad_inputs_and_outputs(npy, tmp_path):
    with pytest.raises(OSError, match="cannot read"):
        poolkit.pyramid(str(tmp_path / "missing.npy"), str(tmp_path / "o.zarr"))
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(OSError, match="cannot read"):
        poolkit.pyramid(str(tmp_path / "junk.tif"), str(tmp_path / "o.zarr"))
    (tmp_path / "exists.zarr").mkdir()
    with pytest.raises(OSError, match="exists"):
        poolkit.pyramid(npy, str(tmp_path / "exists.zarr"))


_CLI = ("import sys, poolkit.cli as c; from poolkit.pyramid import add_pyramid\n"
        "if add_pyramid not in c.COMMANDS: c.COMMANDS.append(add_pyramid)\n"
        "sys.exit(c.main(sys.argv[1:]))")


def _cli(*args):
    """``poolkit pyramid ...`` in a fresh process (registered here if cli.py does not list it yet)."""
    env = dict(os.environ, COLUMNS="100")
    return subprocess.run([sys.executable, "-c", _CLI, "pyramid", *args], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.parametrize("args, words", [
    (["--method", "median"], "--method"),
    (["--factor", "0"], "factor"),
    (["--axes", "zyx"], "axes"),
    (["--levels", "0"], "--levels"),
])
def test_cli_bad_arguments_one_line_exit_2(npy, tmp_path, args, words):
    p = _cli(npy, str(tmp_path / "o.zarr"), *args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_cli_unreadable_input_and_existing_output_exit_2(npy, tmp_path):
    p = _cli(str(tmp_path / "nope.tif"), str(tmp_path / "o.zarr"))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "cannot read" in p.stderr
    (tmp_path / "o.zarr").mkdir()
    p = _cli(npy, str(tmp_path / "o.zarr"))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "--overwrite" in p.stderr


def test_cli_writes_a_pyramid_with_a_progress_bar(tmp_path):
    x = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50)
    np.save(tmp_path / "a.npy", x)
    p = _cli(str(tmp_path / "a.npy"), str(tmp_path / "a.zarr"), "--levels", "3", "--workers", "1",
             "--memory-limit", "1GB", "--chunks", "16")
    assert p.returncode == 0, p.stderr
    assert "pyramid [" in p.stderr and "tasks" in p.stderr
    assert "3 levels" in p.stdout and "40x50, 20x25, 10x13" in p.stdout
    _, _, lv = _levels(tmp_path / "a.zarr")
    np.testing.assert_array_equal(lv[2], ref_level(x, (0, 1), (2, 2), 2, "mean"))


def test_metadata_records_the_run(tmp_path, cluster, npy):
    poolkit.pyramid(npy, str(tmp_path / "m.zarr"), method="mode", levels=2, scheduler=cluster.scheduler_address)
    attrs = json.loads(json.dumps(dict(zarr.open_group(str(tmp_path / "m.zarr"), mode="r").attrs)))
    assert attrs["poolkit"]["complete"] is True and attrs["poolkit"]["levels_done"] == [0, 1]
    assert attrs["ome"]["multiscales"][0]["metadata"]["kwargs"]["method"] == "mode"


def test_runs_in_a_thread_pool_client(tmp_path, npy):
    # an in-process cluster (threads) passed as a Client object works too
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                                  silence_logs=50) as c, distributed.Client(c) as client:
        errors = []

        def run():
            try:
                poolkit.pyramid(npy, str(tmp_path / "t.zarr"), levels=2, scheduler=client)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        t.join(120)
        assert not errors and not t.is_alive()
    _, _, lv = _levels(tmp_path / "t.zarr")
    assert lv[1].shape == (3, 3)


# ---------------------------------------------------------------------------------------------
# memory: an input several times larger than the workers' memory
# ---------------------------------------------------------------------------------------------


def test_an_input_three_times_the_workers_memory_completes_under_the_limit(tmp_path):
    """A 1.5 GiB uint16 volume on one worker process limited to 450 MB (3.6 times smaller): the
    run completes, the worker's resident memory (sampled every 20 ms) stays under the limit, the
    worker is never replaced, and level 1 is the exact rounded mean of level 0."""
    psutil = pytest.importorskip("psutil")
    shape, chunk = (768, 1024, 1024), 128
    src = zarr.create_array(str(tmp_path / "big.zarr"), shape=shape, chunks=(chunk,) * 3, dtype=np.uint16,
                            zarr_format=3)
    z, y, x = np.ogrid[:chunk, :chunk, :chunk]
    for z0 in range(0, shape[0], chunk):  # filled chunk by chunk: the test process never holds it all
        for y0 in range(0, shape[1], chunk):
            for x0 in range(0, shape[2], chunk):
                block = ((z + z0) * 7 + (y + y0) * 3 + (x + x0) * 5 + (z0 * y0 + x0) // 64) % 60000
                src[z0:z0 + chunk, y0:y0 + chunk, x0:x0 + chunk] = block.astype(np.uint16)
    limit = 450 * 10**6
    assert 2 * np.prod(shape) > 3 * limit
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, memory_limit=limit,
                                  dashboard_address=None, silence_logs=50) as c, \
            distributed.Client(c) as client:
        pids = list(client.run(os.getpid).values())
        procs = [psutil.Process(p) for p in pids]
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                for p in procs:
                    try:
                        peak[0] = max(peak[0], p.memory_info().rss)
                    except psutil.Error:
                        pass
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            poolkit.pyramid(str(tmp_path / "big.zarr"), str(tmp_path / "out.zarr"), method="mean", levels=3,
                            scheduler=c.scheduler_address)
        finally:
            done.set()
            sampler.join()
        assert list(client.run(os.getpid).values()) == pids  # never killed or replaced
    assert 0 < peak[0] < limit, f"worker peak {peak[0] / 1e6:.0f} MB, limit {limit / 1e6:.0f} MB"
    out = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(out["1"][:32, :32, :32],
                                  ref_level(out["0"][:64, :64, :64], (0, 1, 2), (2, 2, 2), 1, "mean"))
    print(f"worker peak {peak[0] / 1e6:.0f} MB, limit {limit / 1e6:.0f} MB, input {2 * np.prod(shape) / 1e9:.2f} GB")


def test_mean_levels_hold_no_float64_block_larger_than_an_output_chunk():
    """The mean pyramid's carried float64 sums are cut so that no block of them takes more bytes
    than an output chunk (a 64**3 uint16 chunk is 0.5 MB; its sums in one block would be 2 MB):
    every task result of the graph is recorded, and the levels still equal the reduction of
    level 0."""
    import dask
    import dask.array as da
    from dask.callbacks import Callback

    from poolkit.pyramid import _levels_graph

    rng = np.random.default_rng(3)
    x = rng.integers(0, 60000, size=(96, 160, 130), dtype=np.uint16)
    chunks = (64, 64, 64)
    arrays = _levels_graph(da.from_array(x, chunks=chunks), "mean", (0, 1, 2), (2, 2, 2), 3, chunks, {})
    biggest = {}

    def posttask(key, result, dsk, state, worker_id):
        if isinstance(result, np.ndarray):
            biggest[result.dtype] = max(biggest.get(result.dtype, 0), result.nbytes)

    with Callback(posttask=posttask):
        levels = dask.compute(arrays[1], arrays[2], scheduler="sync")
    budget = 2 * 64**3
    assert 0 < biggest[np.dtype(np.float64)] <= budget, biggest
    for lev, got in zip((1, 2), levels):
        assert arrays[lev].chunks == da.core.normalize_chunks(chunks, got.shape)  # the output's chunks
        np.testing.assert_array_equal(got, ref_level(x, (0, 1, 2), (2, 2, 2), lev, "mean"))


def test_finishing_a_mean_level_holds_no_full_size_float64_temporary():
    """A level's block of float64 sums (2 MB) becomes its uint16 means (0.5 MB) through float64
    temporaries of about 1 MB at most (numpy's allocations, traced), equal to dividing the whole
    block at once; the counts of the last, partial blocks (axes of 254 and 294 cells in blocks of 4)
    are sliced with the slabs."""
    import tracemalloc

    from poolkit.pyramid import _finish_mean

    rng = np.random.default_rng(5)
    sums = rng.integers(0, 4 * 4 * 2 * 60000, size=(64, 64, 64)).astype(np.float64)
    info = [{"array-location": [(0, 64), (0, 64), (10, 74)]}]
    F, L0 = (4, 4, 4), (254, 256, 294)
    tracemalloc.start()
    try:
        got = _finish_mean(sums, F, L0, (0, 1, 2), np.uint16, block_info=info)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < sums.nbytes, f"{peak} bytes traced for {sums.nbytes} bytes of sums"
    count = (np.minimum(4, 254 - 4 * np.arange(64))[:, None, None] * 4.0
             * np.minimum(4, 294 - 4 * np.arange(10, 74))[None, None, :])
    assert count[-1, 0, -1] == 2 * 4 * 2  # the last blocks are partial along axes 0 and 2
    np.testing.assert_array_equal(got, np.rint(sums / count).astype(np.uint16))
    assert got.dtype == np.uint16
