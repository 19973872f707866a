"""Calls from many Python threads at once (a web server, Dask's threaded scheduler, a user's thread
pool) give the serial results and never abort, whatever numba threading layer is installed:
poolkit runs its kernels on its own thread pool and never starts numba's."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import poolkit
from poolkit import _engine

# Where the team's helpers run, and whether they come in time, depends on the CPUs being free: these
# tests run after the parallel ones, in one process (the README's test command, `-m alone`).
pytestmark = pytest.mark.alone

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
        lambda: poolkit.global_avg_pool(x),  # 2.4 MB: its helpers run without Python (_native_sums)
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


@pytest.fixture(autouse=True)
def _restore_num_threads():
    """Tests set the thread count freely: it is given back afterwards."""
    before = poolkit.get_num_threads()
    yield
    poolkit.set_num_threads(before)


def test_threads_match_serial_results_in_process():
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 8, 64, 80)).astype(dt) for dt in (np.float32, np.float64, np.float16)]
    xs.append(rng.integers(0, 9, (2, 8, 64, 80)).astype(np.int16))
    calls = [(f, x) for x in xs for f in (lambda x: poolkit.max_pool(x, (3, 3), 2, 1),
                                          lambda x: poolkit.avg_pool(x, (3, 2), (1, 2), (1, 0), ceil_mode=True),
                                          lambda x: poolkit.lp_pool(x, 2, (2, 2)))]
    poolkit.set_num_threads(1)
    serial = [f(x) for f, x in calls]
    poolkit.set_num_threads(4)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: calls[i % len(calls)][0](calls[i % len(calls)][1]),
                                range(4 * len(calls))))
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r, serial[i % len(calls)])


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="n must be >= 1"):
        poolkit.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        poolkit.set_num_threads(2.0)


# ---------------------------------------------------------------- the engine's helper team


def _within(seconds, fn):
    """fn() in a daemon thread: a hang (a lost wake-up) fails the test instead of stalling CI."""
    outcome: list = []

    def target():
        try:
            outcome.append(("ok", fn()))
        except BaseException as e:
            outcome.append(("error", e))

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert outcome, f"hung for {seconds} s"
    if outcome[0][0] == "error":
        raise outcome[0][1]
    return outcome[0][1]


def _max2x2(x):
    return x.reshape(*x.shape[:2], x.shape[2] // 2, 2, x.shape[3] // 2, 2).max(axis=(3, 5))


def test_team_runs_every_chunk_once_with_helpers_sleeping_and_awake():
    """Calls spaced by less and by more than a helper's spin (helpers awake, then asleep on their
    lock): every chunk runs exactly once and its result comes back in order, and the helper
    takes part (each chunk sleeps, so the calling thread cannot take them all)."""
    poolkit.set_num_threads(2)
    workers: set[str] = set()

    def calls():
        rng = np.random.default_rng(1)
        for gap in rng.choice([0.0, 20e-6, _engine.SPIN_IDLE_S, 3 * _engine.SPIN_IDLE_S, 2e-3], 60):
            time.sleep(gap)
            seen: list[int] = []

            def body(t0, t1):
                seen.extend(range(t0, t1))
                workers.add(threading.current_thread().name)
                time.sleep(1e-4)
                return (t0, t1)

            total = int(rng.integers(2, 40))
            chunks = _engine.run(body, total, _engine.FEW_CHUNKS_BELOW)  # 4 chunks per thread
            assert sorted(seen) == list(range(total))
            assert [c[0] for c in chunks] == sorted(c[0] for c in chunks) and chunks[-1][1] == total
        return threading.current_thread().name

    caller = _within(120, calls)
    assert any(w.startswith("poolkit-") for w in workers) and caller in workers


def test_team_hands_errors_to_the_caller_and_stays_usable():
    poolkit.set_num_threads(2)
    for failing in (0, 1, 0, 1):  # the other chunk sleeps: the error comes from either thread
        def body(t0, t1, failing=failing):
            if (t0 > 0) == failing:
                raise MemoryError(f"chunk {t0}")
            time.sleep(0.01)
            return t1 - t0

        with pytest.raises(MemoryError, match="chunk"):
            _within(30, lambda: _engine.run(body, 8, _engine.SERIAL_BELOW))
        assert _within(30, lambda: sum(_engine.run(lambda t0, t1: t1 - t0, 8, _engine.SERIAL_BELOW))) == 8
    x = np.random.default_rng(0).standard_normal((4, 16, 96, 96)).astype(np.float32)
    np.testing.assert_array_equal(_within(30, lambda: poolkit.max_pool(x, (2, 2))), _max2x2(x))


def test_a_call_made_while_the_team_is_busy_runs_in_its_own_thread():
    """The helpers join one call at a time: a second thread's call runs all its chunks itself,
    at once, rather than waiting for the first call to end."""
    poolkit.set_num_threads(2)
    release, started = threading.Event(), threading.Event()

    def slow(t0, t1):
        started.set()
        assert release.wait(30)
        return threading.current_thread().name

    first = threading.Thread(target=_engine.run, args=(slow, 2, _engine.SERIAL_BELOW), daemon=True)
    first.start()
    assert started.wait(30)
    names, me = _within(30, lambda: (_engine.run(lambda t0, t1: threading.current_thread().name, 8,
                                                 _engine.SERIAL_BELOW), threading.current_thread().name))
    assert names == [me] * len(names)  # and it did not wait for `slow`
    release.set()
    first.join(30)
    assert not first.is_alive()


def test_set_num_threads_lets_the_old_helpers_exit():
    poolkit.set_num_threads(3)
    _within(30, lambda: _engine.run(lambda t0, t1: None, 8, _engine.SERIAL_BELOW))
    old = [t for t in threading.enumerate() if t.name.startswith("poolkit-")]
    assert len(old) >= 2
    poolkit.set_num_threads(2)
    deadline = time.monotonic() + 30
    while any(t.is_alive() for t in old) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.is_alive() for t in old)
    assert _within(30, lambda: sum(_engine.run(lambda t0, t1: t1 - t0, 8, _engine.SERIAL_BELOW))) == 8


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threaded_calls_work_in_a_forked_child():
    """A forked child has none of its parent's helper threads: it makes its own."""
    poolkit.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((4, 16, 96, 96)).astype(np.float32)
    expected = _max2x2(x)
    np.testing.assert_array_equal(_within(30, lambda: poolkit.max_pool(x, (2, 2))), expected)  # parent's helpers
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(poolkit.max_pool, (x, (2, 2))).get(timeout=120)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or _engine._cpu_reader() is None
                    or len(os.sched_getaffinity(0)) < 2, reason="needs CPU affinity and two CPUs")
def test_a_helper_moves_off_the_callers_cpu_and_gets_its_affinity_back(monkeypatch):
    """_move_off narrows the thread's affinity to its other CPUs (the kernel moves it there before
    the call returns) and then restores exactly the CPUs it had; with ``cpu`` its only CPU it
    changes nothing.  Run in a fresh thread, so the test's own thread keeps its affinity."""
    getcpu = _engine._cpu_reader()
    real = os.sched_setaffinity
    calls: list[tuple[set[int], int]] = []

    def spy(pid, mask):
        real(pid, mask)
        calls.append((set(mask), getcpu()))

    monkeypatch.setattr(os, "sched_setaffinity", spy)

    def move():
        allowed, here = os.sched_getaffinity(0), getcpu()
        _engine._move_off(here)
        moves = list(calls)
        real(0, {here})  # only this CPU: nothing to move to
        calls.clear()
        _engine._move_off(here)
        return allowed, here, moves, list(calls)

    with ThreadPoolExecutor(1) as pool:
        allowed, here, moves, alone = pool.submit(move).result()
    (narrowed, cpu_then), (restored, _) = moves
    assert narrowed == allowed - {here} and cpu_then != here, "the thread did not leave the CPU"
    assert restored == allowed
    assert alone == []


def test_a_helper_on_the_callers_cpu_moves_before_it_works(monkeypatch):
    """The team's wiring: a helper that starts a call on the CPU the call was made from calls
    _move_off with that CPU before running the task (here every thread reads CPU 7)."""
    moved: list[tuple[str, int]] = []
    monkeypatch.setattr(_engine, "_cpu_reader", lambda: (lambda: 7))
    monkeypatch.setattr(_engine, "_move_off", lambda cpu: moved.append((threading.current_thread().name, cpu)))
    team = _engine._Team(1)
    try:
        ran: list[str] = []
        assert team.run(lambda: ran.append(threading.current_thread().name))
        assert sorted(ran) == sorted([threading.current_thread().name, "poolkit-0"])
        assert moved == [("poolkit-0", 7)]
    finally:
        team.close()


def test_spin_yields_and_still_sees_the_flag():
    """sync.spin with a yield every round (``every`` 1): a timeout returns the old value, a flag
    already changed returns the new one."""
    from poolkit._kernels import sync

    flags = np.zeros(2, np.int64)
    assert sync.spin(flags, 1, 0, 1000, 0, 1, -1, 0) == 0
    flags[1] = 5
    assert sync.spin(flags, 1, 0, 1000, 0, 1, -1, 0) == 5


def test_spin_reports_the_generation_and_sees_a_sleeping_caller():
    """sync.spin with ``report`` (a helper ending its part of a call) stores the helper's
    generation and then watches for the next call (its value, or the old generation on a
    timeout); it returns -1 when the caller had marked the flag (sync.wait_mark) to sleep on its
    lock.  wait_mark marks only a flag still at the value the caller saw."""
    from poolkit._kernels import sync

    flags = np.array([5, 4], np.int64)
    assert sync.spin(flags, 0, 5, 1000, 0, 1, 1, 5) == 5 and flags[1] == 5  # no next call: timed out
    flags[0] = 6
    assert sync.spin(flags, 0, 5, 1000, 0, 1, 1, 5) == 6 and flags[1] == 5  # the next call is published
    assert sync.wait_mark(flags, 1, 5, -6) and flags[1] == -6  # the helper has not finished 6
    assert sync.spin(flags, 0, 6, 1000, 0, 1, 1, 6) == -1 and flags[1] == 6  # it finds the mark
    assert not sync.wait_mark(flags, 1, 5, -7) and flags[1] == 6  # finished meanwhile: no mark


@pytest.mark.parametrize("watch", ["never", "briefly"])
def test_team_join_races_without_losing_a_wake_up(watch):
    """The caller stops watching its helpers' flags after ``rounds_done`` reads and marks a flag
    to sleep (sync.wait_mark) while the helper may be storing it (sync.spin's report): with no
    watching at all, or a few reads, thousands of short calls of random length each end with
    every helper's part done, and none hangs."""
    team = _engine._Team(2)
    team.rounds_done = 1 if watch == "never" else 50
    rng = np.random.default_rng(3)
    try:
        def calls():
            for n in rng.integers(0, 400, 3000):
                ran: list[str] = []

                def task(n=int(n), ran=ran):
                    for _ in range(n):  # a few us of Python, holding the GIL
                        pass
                    ran.append(threading.current_thread().name)

                assert team.run(task)
                assert sorted(ran) == sorted([threading.current_thread().name, "poolkit-0", "poolkit-1"])
            return True

        assert _within(120, calls)
    finally:
        team.close()


# ---------------------------------------------------------------- global sums without the GIL


_NO_MASKS = _engine._NO_MASKS


def _masks():
    """A helper's scratch CPU masks for axis.follow_sums."""
    return np.zeros((2, 16), np.uint64)


def _global_means(x, axes, acc_dtype=None):
    """NumPy's global mean in float64 (or float32), cast as poolkit casts: the one-thread oracle."""
    acc = np.float64 if acc_dtype is None else np.float32
    out = np.float64 if x.dtype.kind != "f" else x.dtype
    return (x.astype(acc).sum(axis=axes, dtype=acc) / acc(np.prod([x.shape[a] for a in axes]))).astype(out)


def test_native_global_sums_match_one_thread_as_helpers_watch_sleep_and_switch(monkeypatch):
    """Global sums on the team, the helpers taking their chunks without Python
    (axis.follow_sums), give the one-thread result bit for bit: calls of several dtypes (each a
    kind of its own, which the watching helper leaves to Python), between Python calls (a max
    pooling, and chunks the helpers must join), with gaps shorter and longer than the helpers'
    watch (awake, asleep), 4 chunks per thread or one."""
    monkeypatch.setattr(_engine, "WHOLE_SERIAL_BYTES", 0)
    rng = np.random.default_rng(5)
    cases = [(rng.standard_normal((8, 7, 7, 520)).astype(np.float32), (1, 2), None),  # all over SERIAL_BELOW
             (rng.standard_normal((8, 7, 7, 520)).astype(np.float32), (1, 2), "float32"),
             (rng.standard_normal((16, 130, 9, 9)), (2, 3), None),
             (rng.integers(-300, 300, (6, 50, 40, 21)).astype(np.int16), (1, 2), None),
             (rng.standard_normal((3, 1 << 20)).astype(np.float32), (1,), None)]  # 4 chunks per thread
    poolkit.set_num_threads(1)
    expected = [poolkit.global_avg_pool(x, axes=axes, acc_dtype=acc) for x, axes, acc in cases]
    for (x, axes, acc), e in zip(cases, expected):
        np.testing.assert_allclose(e, _global_means(x, axes, acc), rtol=1e-6)
    assert min(x.size for x, _, _ in cases) >= _engine.SERIAL_BELOW
    x4 = rng.standard_normal((4, 16, 96, 96)).astype(np.float32)
    poolkit.set_num_threads(2)
    order = rng.integers(0, len(cases) + 1, 400)
    gaps = rng.choice([0.0, 0.0, 0.0, 30e-6, 3 * _engine.SPIN_IDLE_S, 2e-3], 400)

    helped: list[bool] = []  # Python calls right after a native one: did a helper take a chunk?

    def python_call() -> bool:
        names: list[str] = []

        def body(t0, t1):
            names.append(threading.current_thread().name)
            time.sleep(2e-3)  # the calling thread cannot take every chunk before the helper comes

        _engine.run(body, 4, _engine.SERIAL_BELOW)
        return any(n.startswith("poolkit-") for n in names)

    def calls():
        for k, gap in zip(order, gaps):
            time.sleep(gap)
            if k == len(cases):
                np.testing.assert_array_equal(poolkit.max_pool(x4, (2, 2)), _max2x2(x4))
                continue
            x, axes, acc = cases[k]
            got = poolkit.global_avg_pool(x, axes=axes, acc_dtype=acc)
            if gap == 0:  # a Python call at once, while the helper watches for the next call of this kind
                helped.append(python_call())
            np.testing.assert_array_equal(got, expected[k])
        return True

    assert _within(300, calls)
    assert len(helped) > 100 and np.mean(helped) > 0.5, helped  # the watching helper leaves it to Python


def test_native_sums_take_the_chunks_left_from_the_counter():
    """axis.follow_sums as the calling thread (i = -1): it claims chunks from the mailbox's counter
    until none is left, and leaves alone the chunks claimed before it came (here chunk 0); it
    reports nothing."""
    from poolkit._kernels import axis

    rng = np.random.default_rng(2)
    x = rng.standard_normal((12, 10, 3))
    out = np.full((12, 3), np.nan)
    scratch = np.empty((2, 3))
    flags = np.zeros(2, np.int64)
    box = np.array((1, 4, 12, 10, 3, x.ctypes.data, out.ctypes.data, scratch.ctypes.data, 0, 1, -1), np.int64)
    box.view(np.float64)[axis.BOX_DIVISOR] = 10.0
    likes = (np.empty((0, 0, 0)), np.empty((0, 0)), np.empty(0), 1)
    assert axis.follow_sums(flags, -1, 7, 0, 0, 1, _NO_MASKS, box, box.view(np.float64), *likes) == (7, 7)
    np.testing.assert_array_equal(out[3:], x.sum(axis=1)[3:] / 10)
    assert np.isnan(out[:3]).all()  # chunk 0 (rows 0-2) was another thread's
    assert box[axis.BOX_NEXT] == 5 and flags.tolist() == [0, 0]  # one failed claim past the last chunk


def test_the_callers_mailbox_holds_the_call():
    """axis.post_sums writes a call into the mailbox as the hand-made mailboxes of these tests hold
    it: the counter at 0, the chunks, the view's shape, the three addresses, the divisor, the kind
    and the CPU; it leaves the arrays alone."""
    from poolkit._kernels import axis

    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    out, scratch = np.zeros((3, 5)), np.zeros((2, 5))
    box = np.full(axis.BOX_SIZE, 77, np.int64)
    axis.post_sums(box, box.view(np.float64), x, out, scratch, 6, 2.5, 3, 1)
    want = np.array((0, 6, 3, 4, 5, x.ctypes.data, out.ctypes.data, scratch.ctypes.data, 0, 3, 1), np.int64)
    want.view(np.float64)[axis.BOX_DIVISOR] = 2.5
    assert box.tolist() == want.tolist()
    assert (x == np.arange(60).reshape(3, 4, 5)).all() and not out.any() and not scratch.any()


def test_native_sums_in_a_helper_report_and_return_for_other_calls():
    """axis.follow_sums as helper 0: a call of its kind is run and reported into flags[1], then it
    watches again; a call of another kind is returned (done, next) for Python to run; a timeout
    returns (done, done); a report that replaces the caller's mark returns (done, -1)."""
    from poolkit._kernels import axis

    x = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    out = np.zeros((2, 3))
    scratch = np.empty((2, 3))
    box = np.array((0, 2, 2, 4, 3, x.ctypes.data, out.ctypes.data, scratch.ctypes.data, 0, 1, -1), np.int64)
    box.view(np.float64)[axis.BOX_DIVISOR] = 4.0
    likes = (np.empty((0, 0, 0)), np.empty((0, 0)), np.empty(0), 1)
    boxf = box.view(np.float64)
    flags = np.array([3, 2], np.int64)
    assert axis.follow_sums(flags, 0, 2, 1000, 0, 1, _masks(), box, boxf, *likes) == (3, 3)  # ran 3, then timed out
    assert flags[1] == 3
    np.testing.assert_array_equal(out, x.mean(axis=1))  # both chunks: the caller never came
    box[axis.BOX_KIND] = 2
    flags[0] = 4
    assert axis.follow_sums(flags, 0, 3, 1000, 0, 1, _masks(), box, boxf, *likes) == (3, 4)  # not its kind
    box[axis.BOX_KIND], box[axis.BOX_NEXT] = 1, 0
    flags[1] = -4  # the caller marked: it sleeps on its lock
    assert axis.follow_sums(flags, 0, 3, 1000, 0, 1, _masks(), box, boxf, *likes) == (4, -1)
    assert flags[1] == 4


_TWO_CPUS = (hasattr(os, "sched_setaffinity") and _engine._cpu_reader() is not None
             and len(os.sched_getaffinity(0)) >= 2)


def _cpu_of(thread: threading.Thread) -> int:
    """The CPU a thread of this process last ran on (/proc's ``processor`` field)."""
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[36])


@pytest.mark.skipif(not _TWO_CPUS, reason="needs CPU affinity, sched_getcpu and two CPUs")
def test_native_sums_move_off_the_callers_cpu_in_the_kernel():
    """A helper in axis.follow_sums that finds itself on the CPU the call was made from moves off
    it before its part, without Python (sync.move_off), and then has the CPUs it had; the call is
    run and reported.  Run in a fresh thread, so the test's own thread keeps its affinity."""
    from poolkit._kernels import axis

    getcpu = _engine._cpu_reader()
    x = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    out = np.zeros((2, 3))
    scratch = np.empty((2, 3))
    likes = (np.empty((0, 0, 0)), np.empty((0, 0)), np.empty(0), 1)

    def helper():
        allowed = sorted(os.sched_getaffinity(0))[:2]
        here = allowed[0]
        os.sched_setaffinity(0, {here})  # on `here` now
        os.sched_setaffinity(0, set(allowed))  # and free to leave it
        flags = np.array([5, 4], np.int64)
        box = np.array((0, 2, 2, 4, 3, x.ctypes.data, out.ctypes.data, scratch.ctypes.data, 0, 1, here), np.int64)
        box.view(np.float64)[axis.BOX_DIVISOR] = 4.0
        got = axis.follow_sums(flags, 0, 4, 1000, 0, 1, _masks(), box, box.view(np.float64), *likes)
        return here, getcpu(), os.sched_getaffinity(0), set(allowed), got, flags.tolist()

    with ThreadPoolExecutor(1) as pool:
        here, now, affinity, allowed, got, flags = pool.submit(helper).result(timeout=60)
    assert now != here and affinity == allowed
    assert got == (5, 5) and flags == [5, 5]  # ran 5 and reported it, then timed out
    np.testing.assert_array_equal(out, x.mean(axis=1))


@pytest.mark.parametrize("watch", ["never", "briefly"])
def test_native_calls_race_the_join_without_losing_a_wake_up(watch, monkeypatch):
    """The join's race (see test_team_join_races_without_losing_a_wake_up) for native calls, whose
    helpers report from axis.follow_sums: thousands of global averages of random size on a
    two-helper team, with gaps that let the helpers sleep, each give NumPy's result and none
    hangs."""
    monkeypatch.setattr(_engine, "WHOLE_SERIAL_BYTES", 0)
    monkeypatch.setattr(_engine, "SERIAL_BELOW", 0)
    poolkit.set_num_threads(3)
    team = _engine._get_team(3)
    team.rounds_done = 1 if watch == "never" else 50
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((int(n), 4, 5, 8)) for n in rng.integers(2, 40, 50)]
    means = [x.sum(axis=(1, 2)) / 20 for x in xs]

    def calls():
        for k, gap in zip(rng.integers(0, len(xs), 3000), rng.choice([0.0, 0.0, 3 * _engine.SPIN_IDLE_S], 3000)):
            time.sleep(gap)
            np.testing.assert_allclose(poolkit.global_avg_pool(xs[k], axes=(1, 2)), means[k], rtol=1e-13)
        return True

    assert _within(120, calls)
    assert team.keep == () and team.native is None  # the call's arrays are let go


@pytest.mark.skipif(not _TWO_CPUS, reason="needs CPU affinity, sched_getcpu and two CPUs")
def test_a_native_call_tells_its_helpers_the_callers_cpu(monkeypatch):
    """The team's wiring for native calls: the CPU the call is made from goes into the mailbox,
    where a helper in axis.follow_sums compares it with its own (the move itself is
    test_native_sums_move_off_the_callers_cpu_in_the_kernel's).  The caller is held on one CPU,
    then on another."""
    monkeypatch.setattr(_engine, "WHOLE_SERIAL_BYTES", 0)
    poolkit.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((8, 7, 7, 520)).astype(np.float32)
    expected = x.astype(np.float64).sum(axis=(1, 2)) / 49
    from poolkit._kernels import axis

    def calls():
        seen = []
        for cpu in sorted(os.sched_getaffinity(0))[:2]:
            os.sched_setaffinity(0, {cpu})
            np.testing.assert_allclose(poolkit.global_avg_pool(x, axes=(1, 2)), expected, rtol=1e-6)
            seen.append((cpu, int(_engine._team.box[axis.BOX_CPU])))
        return seen

    for cpu, told in _within(120, calls):
        assert told == cpu


@pytest.mark.skipif(not _TWO_CPUS, reason="needs CPU affinity, sched_getcpu and two CPUs")
def test_keep_off_narrows_a_threads_cpus_and_gives_back_what_it_took():
    """_engine._keep_off takes the caller's CPU out of a helper's affinity; the next call gives
    that CPU back before it takes another; an affinity someone else set since is kept as it is; a
    thread whose only CPU is the caller's keeps it."""
    a, b = sorted(os.sched_getaffinity(0))[:2]
    allowed = os.sched_getaffinity(0)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        tid = thread.native_id
        last = _engine._keep_off(tid, a, None)
        assert os.sched_getaffinity(tid) == allowed - {a} and last == (a, frozenset(allowed - {a}))
        last = _engine._keep_off(tid, b, last)
        assert os.sched_getaffinity(tid) == allowed - {b}  # a given back
        os.sched_setaffinity(tid, {b})  # the user's choice: b only
        assert _engine._keep_off(tid, a, last) is None and os.sched_getaffinity(tid) == {b}  # nothing taken
        assert _engine._keep_off(tid, b, None) is None  # b is all it has: kept
        assert os.sched_getaffinity(tid) == {b}
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not _TWO_CPUS, reason="needs CPU affinity, sched_getcpu and two CPUs")
def test_the_team_keeps_its_helpers_off_the_callers_cpu():
    """After a call made from one CPU the helpers may not run there (a wake-up by the caller, of
    the helper's lock or of the GIL it waits for, would otherwise often place it on the caller's
    CPU, the other one idle); a call from another CPU gives that one back and takes the new one."""
    poolkit.set_num_threads(2)
    team = _engine._get_team(2)
    allowed = os.sched_getaffinity(0)

    def calls():
        seen = []
        for cpu in sorted(allowed)[:2]:
            os.sched_setaffinity(0, {cpu})
            assert sum(_engine.run(lambda t0, t1: t1 - t0, 8, _engine.SERIAL_BELOW)) == 8
            seen.append((cpu, [os.sched_getaffinity(tid) for tid in team.tids]))
        return seen

    for cpu, helpers in _within(120, calls):
        assert helpers == [allowed - {cpu}] * len(helpers), (cpu, helpers)
