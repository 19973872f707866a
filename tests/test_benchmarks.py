"""Smoke test of the benchmark suite (``benchmarks/``): every peer adapter, on a small version of
every case, computes what the slow NumPy oracle computes (so a peer the suite times really is a
peer), the output check catches a peer that computes something else, and the runner's timing and
tables work.  Runs in seconds; peers that are not installed are skipped."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time

import numpy as np
import pytest

from support import oracle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

cases = pytest.importorskip("benchmarks.cases")
peers = pytest.importorskip("benchmarks.peers")
suite = pytest.importorskip("benchmarks.suite")

# small shapes of each layout, with odd sizes so that windows do not tile the input exactly
_SMALL = {"NCHW": (2, 3, 9, 10), "NHWC": (2, 9, 10, 3), "NCL": (2, 3, 33), "NCDHW": (1, 2, 6, 7, 5)}


def _small(spec):
    if spec.family == "tiny":
        return spec
    if spec.kind == "global":
        shape = (2, 5, 3, 4) if spec.layout == "NCHW" else (2, 3, 4, 5)
    elif spec.kind == "adaptive":
        shape = (2, 3, 14, 14)
    elif spec.kernel and max(spec.kernel) > 5:
        shape = (1, 2, 12, 13)
    else:
        shape = _SMALL[spec.layout]
    return dataclasses.replace(spec, shape=shape, name=spec.name + " small")


def _tiling(spec):
    """The same case on an input its windows tile exactly (the peers' fast paths for that)."""
    shape = tuple(n - n % spec.kernel[spec.spatial.index(a)] if a in spec.spatial else n
                  for a, n in enumerate(_SMALL[spec.layout]))
    return dataclasses.replace(spec, shape=shape, name=spec.name + " small tiled")


# one small case per distinct computation of the suite, and one more on a tiled input where the
# windows do not overlap
_SPECS = list({(s.op, s.kind, s.layout, s.kernel, s.stride, s.pad, s.dtype, s.family): _small(s)
               for s in cases.all_specs()}.values())
_SPECS += [_tiling(s) for s in _SPECS if s.kind in ("pool", "backward") and s.family != "tiny"
           and s.kernel == s.stride and not any(s.pad) and s.dtype != "float16"]


def _oracle(spec, x, g):
    ax = spec.spatial
    if spec.kind == "global":
        return x.astype(np.float64).mean(axis=ax).astype(peers.out_dtype(spec))
    if spec.kind == "adaptive":
        k = tuple(spec.shape[a] // o for a, o in zip(ax, spec.output_size))
        return oracle.ref_avg_pool(x, k, k, [(0, 0)] * len(k), 1, False, ax)
    pads = [(p, p) for p in spec.pad]
    if spec.kind == "backward":
        f = oracle.ref_max_pool_backward if spec.op == "max" else oracle.ref_avg_pool_backward
        return f(g, x, spec.kernel, spec.stride, pads, 1, False, ax)
    if spec.kind == "indices":
        return peers.pack_indices(*oracle.ref_max_pool(x, spec.kernel, spec.stride, pads, 1, False, ax))
    if spec.op == "max":
        return oracle.ref_max_pool(x, spec.kernel, spec.stride, pads, 1, False, ax)[0]
    return oracle.ref_avg_pool(x, spec.kernel, spec.stride, pads, 1, False, ax)


@pytest.fixture(scope="module")
def libs():
    lib = peers.Libs(2)
    yield lib
    lib.pool.shutdown()


@pytest.mark.parametrize("spec", _SPECS, ids=[s.name for s in _SPECS])
def test_every_peer_computes_what_the_oracle_computes(spec, libs):
    setup = peers.build(spec, libs, np.random.default_rng(7))
    suite.check(setup)
    x = setup.keep[0]
    g = setup.keep[1] if spec.kind == "backward" else None
    want = _oracle(spec, x, g)
    tol = setup.tol
    assert setup.ref.dtype == want.dtype
    np.testing.assert_allclose(setup.ref, want, rtol=tol.rtol, atol=tol.atol)  # poolkit itself
    ran = sums32 = 0
    for c in setup.contenders:
        if c.label == peers.OWN_F32:  # poolkit's float32 sums: checked against the plain call as a peer is
            assert c.status.startswith("ok (max abs diff"), c.status
            np.testing.assert_allclose(np.asarray(c.call()), want, rtol=tol.rtol, atol=tol.atol)
            sums32 += 1
        if not c.peer:
            continue
        assert not c.status.startswith("differs"), (c.label, c.status)
        if spec.dtype == "float32" and not c.status.startswith("not run: not installed"):
            # float32 is every peer's home ground: each must run, unless its adapter knows why not
            assert c.status.startswith(("ok", "not run")), (c.label, c.status)
        if not c.timed:
            continue
        got = np.asarray(c.result(c.call()))
        assert got.shape == want.shape and got.dtype == want.dtype, (c.label, got.shape, got.dtype)
        if tol.exact:
            np.testing.assert_array_equal(got, want, err_msg=c.label)
        else:
            np.testing.assert_allclose(got, want, rtol=tol.rtol, atol=tol.atol, err_msg=c.label)
        ran += 1
    if spec.dtype == "float32" and "torch" in spec.peers and _installed("torch"):
        assert ran >= 1
    assert sums32 == (spec.dtype == "float32" and spec.op != "max" and spec.kind != "backward")


def _installed(mod):
    try:
        __import__(mod)
    except ImportError:
        return False
    return True


def test_the_check_catches_a_peer_that_computes_something_else():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 7), dtype=np.float32)
    spec = cases.Spec("t", "avg", "pool", x.shape, "NCHW", (3, 3), (2, 2), (1, 1))
    ref = oracle.ref_avg_pool(x, (3, 3), (2, 2), [(1, 1)] * 2, 1, False, (2, 3))
    tol = peers.tolerance(spec, x)
    # the same windows without the padded cells in the divisor (count_include_pad=False)
    other = oracle.ref_avg_pool(x, (3, 3), (2, 2), [(1, 1)] * 2, 1, False, (2, 3), count_include_pad=False)
    assert suite.compare(ref.copy(), ref, tol).startswith("ok")
    assert suite.compare(other, ref, tol).startswith("differs")
    assert suite.compare(ref.astype(np.float64), ref, tol).startswith("differs: dtype")
    assert suite.compare(ref[:, :, :-1], ref, tol).startswith("differs: shape")
    mx = oracle.ref_max_pool(x, (3, 3), (2, 2), [(1, 1)] * 2, 1, False, (2, 3))[0]
    off = mx.copy()
    off[0, 0, 0, 0] = np.nextafter(off[0, 0, 0, 0], np.float32(np.inf))  # one ulp: max must be exact
    assert suite.compare(off, mx, peers.Tol()) == f"differs: 1 of {mx.size} values not equal"


def test_a_peer_that_raises_is_not_timed(libs):
    spec = _small(cases.all_specs()[0])
    setup = peers.build(spec, libs, np.random.default_rng(0))

    def boom():
        raise RuntimeError("no kernel for this dtype")

    setup.contenders.append(peers.Contender("broken", boom))
    setup.contenders.append(peers.Contender("wrong", lambda: setup.ref + 1))
    suite.check(setup)
    by = {c.label: c for c in setup.contenders}
    assert by["broken"].status.startswith("unsupported: RuntimeError") and not by["broken"].timed
    assert by["wrong"].status.startswith("differs") and not by["wrong"].timed
    timings = suite.time_contenders(setup.contenders, suite.QUICK)
    assert "broken" not in timings and "wrong" not in timings
    assert {"poolkit", "copy floor"} <= set(timings)
    assert all(t.median > 0 and len(t.samples) >= suite.QUICK.min_rounds for t in timings.values())


def test_timing_calls_around_hooks_and_tables_mark_where_poolkit_is_slower():
    state = []
    fast = peers.Contender("fast peer", lambda: None, status="ok (exact)",
                           around=(lambda: state.append("in"), lambda: state.append("out")))
    slow = peers.Contender("poolkit", lambda: sum(range(2000)), status="ok (reference)", peer=False)
    timings = suite.time_contenders([slow, fast], suite.QUICK)
    assert state and state.count("in") == state.count("out")
    assert timings["poolkit"].median > timings["fast peer"].median
    spec = cases.Spec("made-up case", "max", "pool", (1, 1, 4, 4), "NCHW", (2, 2), (2, 2), (0, 0),
                      peers=("numpy",))
    fast.label = "numpy strided slices"
    m = suite.Measured(spec, [slow, fast], {"poolkit": timings["poolkit"], "numpy strided slices":
                                            timings["fast peer"]}, 80, "exact")
    m.runs.append({"poolkit": 2.0, "numpy strided slices": 1.0, "copy floor": 1.0})
    row = suite.summary_table([m])[-1]
    assert "| **2.00** |" in row  # the NumPy column: poolkit twice as slow, bold
    assert row.rstrip().endswith("| **no** |")
    (peer_t, r1, l1), (floor_t, r2, l2) = suite.targets(m, m.runs[0])
    assert (r1, l1, r2, l2) == (2.0, 1.0, 2.0, 1.2) and "numpy" in peer_t and floor_t == "bytes floor"
    m.runs += [{"poolkit": 1.0, "numpy strided slices": 1.0, "copy floor": 1.0},
               {"poolkit": 0.9, "numpy strided slices": 1.0, "copy floor": 1.0}]
    assert suite.targets_over_runs(m)[0][1] == 1.0  # the median over the three runs
    assert "| 1.00 [0.90-2.00] |" in suite.summary_table([m])[-1]  # median and spread of the NumPy ratio


def test_quiesce_waits_for_a_spinning_thread_and_no_longer():
    """A thread pool that spin-waits after a call (onnxruntime's spins about 40 ms) must be idle
    before the next contender's sample starts; an idle process waits one gap only."""
    spun = threading.Event()

    def spin(seconds):
        end = time.perf_counter() + seconds
        spun.set()
        while time.perf_counter() < end:
            pass

    worker = threading.Thread(target=spin, args=(0.15,))
    worker.start()
    spun.wait()
    t0 = time.perf_counter()
    slept = suite.quiesce(0.005, 2.0)
    worker.join()
    assert slept >= 0.12 and time.perf_counter() - t0 >= 0.12  # waited until the spinning stopped
    assert suite.quiesce(0.005, 2.0) < 0.1  # nothing spins: one gap, or a few on a busy machine
    worker = threading.Thread(target=spin, args=(1.0,))
    worker.start()
    spun.wait()
    assert suite.quiesce(0.005, 0.05) < 0.5  # gives up after max_s
    worker.join()


def test_each_sample_follows_an_untimed_call_of_its_own():
    """A contender faster than Budget.wake_below_s makes one untimed call before each sample, so a
    sample never times the wake-up of its thread pool; a slower one does not."""
    calls = {"quick": 0, "slow": 0}

    def quick():
        calls["quick"] += 1

    def slow():
        calls["slow"] += 1
        time.sleep(0.06)

    budget = dataclasses.replace(suite.QUICK, min_rounds=3, max_rounds=3, per_contender_s=0.0, per_case_s=0.0)
    timings = suite.time_contenders([peers.Contender("quick", quick, status="ok (exact)"),
                                     peers.Contender("slow", slow, status="ok (exact)")], budget)
    n = timings["quick"].number
    sizing = 5  # the first call, then for a fast call a wake-up call and the fastest of three more
    assert calls["quick"] == sizing + 3 * (n + 1)
    assert calls["slow"] == 1 + 3 * timings["slow"].number  # the sizing call only


def test_rounds_vary_the_order(monkeypatch):
    """No contender follows the same one in most of its samples (the copy floor included, whose
    dirty lines cost the call timed after it), and none is timed twice in a row."""
    monkeypatch.setattr(suite, "quiesce", lambda *a: 0.0)
    log: list[str] = []

    def contender(label):
        return peers.Contender(label, lambda: log.append(label), status="ok (exact)")

    labels = ["poolkit", "b", "c", "d", "copy floor"]
    budget = dataclasses.replace(suite.QUICK, min_rounds=24, max_rounds=24, per_contender_s=0.0, per_case_s=0.0,
                                 sample_s=1e-12, wake_below_s=0.0)  # one call a sample, no wake-up call
    suite.time_contenders([contender(lb) for lb in labels], budget)
    timed = log[5 * len(labels):]  # after the sizing: five calls each
    assert len(timed) == 24 * len(labels) and all(x != y for x, y in zip(timed, timed[1:]))
    for lb in labels:
        before = [timed[k - 1] for k in range(1, len(timed)) if timed[k] == lb]
        assert max(before.count(other) for other in labels) <= len(before) / 2, (lb, before)


def test_a_fast_call_is_sized_after_idle_threads_and_a_call_of_its_own(monkeypatch):
    """The calls that size a sample come as a sample's do: after the wait for idle threads, and
    after an untimed call.  A contender whose first three calls are slow (pools left spinning by
    the check, a cold cache) is sized by its fourth and fifth, not given one call a sample."""
    log = []
    monkeypatch.setattr(suite, "quiesce", lambda *a: log.append("quiesce") or 0.0)

    def call():
        log.append("call")
        time.sleep(0.004 if log.count("call") <= 3 else 0.0001)

    budget = dataclasses.replace(suite.QUICK, min_rounds=1, max_rounds=1, per_contender_s=0.0, per_case_s=0.0)
    timing = suite.time_contenders([peers.Contender("c", call, status="ok (exact)")], budget)["c"]
    assert log[:6] == ["call", "quiesce", "call", "call", "call", "call"]
    assert timing.number >= 4  # sized by a call of about 0.1 ms (2 ms samples); 0.5 with the slow calls


@pytest.mark.parametrize("label, op, time, cells", [
    (peers.OWN_OUT, "max", 0.5, "| **1.50** | 0.25 |  |"),  # x bytes floor, then x floor with out=
    (peers.OWN_F32, "avg", 1.0, "| **1.50** |  | 0.50 |"),  # x bytes floor, then float32 sums x fastest peer
])
def test_poolkit_own_variants_are_their_own_columns_and_not_peers(label, op, time, cells):
    """poolkit writing into out=, and its float32 sums: each faster than every peer here, yet the
    targets are the plain call's."""
    spec = cases.Spec("made-up case", op, "pool", (1, 1, 4, 4), "NCHW", (2, 2), (2, 2), (0, 0), peers=("numpy",))
    m = suite.Measured(spec, [peers.Contender(label, lambda: None, peer=False)], {}, 80, "exact")
    m.runs.append({"poolkit": 3.0, label: time, "numpy strided slices": 2.0, "copy floor": 2.0})
    (peer_t, r1, _), (_, r2, _) = suite.targets(m, m.runs[0])
    assert "numpy" in peer_t and (r1, r2) == (1.5, 1.5)
    row = suite.summary_table([m])[-1]
    assert cells + " fastest peer (numpy strided slices): 1.50 / 1;" in row
    assert row.rstrip().endswith("| **no** |")


def test_the_entry_point_runs_and_writes(tmp_path, capsys):
    md, js, png = tmp_path / "r.md", tmp_path / "r.json", tmp_path / "r.png"
    plot = str(png) if _installed("matplotlib") else ""
    assert suite.main(["--quick", "--cases", "tiny max", "--md", str(md), "--json", str(js), "--plot", plot]) == 0
    text = md.read_text()
    assert "tiny max 2x2 s2 NCHW (1,1,6,6) float32" in text and "Machine:" in text
    import json

    data = json.loads(js.read_text())
    (res,) = data["results"]
    assert res["contenders"][0]["label"] == "poolkit" and res["contenders"][0]["median_s"] > 0
    assert data["machine"]["threads"] == 2
    if plot:
        assert png.stat().st_size > 1000
    assert "| case |" in capsys.readouterr().out
    again = tmp_path / "again.md"  # the saved JSON renders the same report
    assert suite.main(["--render", str(js), "--md", str(again), "--plot", plot]) == 0
    assert again.read_text() == text
