"""poolkit's benchmark suite: poolkit beside every installed peer that computes the same thing, and
beside the bytes floor.

Run from the repository root::

    python -m benchmarks.suite                        # every case; writes benchmarks/results.{md,json}
                                                      # and docs/bench_peers.png
    python -m benchmarks.suite --quick                # few repeats, no three-run spread (a smoke run)
    python -m benchmarks.suite --cases "global,tiny"  # only cases whose name contains one of the parts
    python -m benchmarks.suite --quick --scale 8 --no-write   # batch 8x smaller, print only
    python -m benchmarks.suite --cases none --windows docs/bench_windows.png   # only the window sweep (~30 s)

Before the first case (not with ``--quick``), most of the free memory is touched once: on a virtual
machine that backs memory on first touch, fresh outputs are otherwise slow or not at random
(``warm_memory``; the machine line reports both speeds).

What a run does, case by case (one case's arrays alive at a time):

1. builds poolkit's call and result, and each peer's call (``benchmarks.peers``; conversions a peer
   needs, such as another layout, are made before timing and marked ``*``);
2. checks each peer's output against poolkit's -- max exactly, averages and gradient sums with
   ``np.allclose`` (float32: rtol 1e-5; the atol covers any summation order, see
   ``peers.tolerance``); a peer that computes something else, or fails, is not timed and the
   tables say ``differs`` or ``unsupported``;
3. times all contenders in interleaved rounds (each contender once per round, in an order drawn
   anew each round, so that the noise of a shared machine and a predecessor's leftovers hit all
   alike; calls shorter than a few ms are batched), and reports medians; the ratios are poolkit's
   median over the peer's median in the same run;
4. the bytes floor: the median time of ``np.copyto`` moving the call's input + output bytes
   (a copy of half that many bytes reads and writes them once), timed in the same rounds;
5. the targets of issue 15: <= 1.0x the fastest peer; forward <= 1.2x the floor, backward <= 2x,
   global <= 1.5x; the tiny call <= torch.  A case within 10% of one of its targets is run twice
   more at the end of the run, and the tables give the spread over the three runs.

All contenders get the same thread count (``--threads``, default 2): ``poolkit.set_num_threads``,
``torch.set_num_threads``, onnxruntime's ``intra_op_num_threads``, ``cv2.setNumThreads``, and for
JAX ``XLA_FLAGS`` set before jax is imported.  Each contender's "cores used" (process CPU time over
wall time while it runs) shows what it really used.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import cases as cases_mod
from .cases import Spec
from .peers import OTHER_LAYOUT, OWN, OWN_F32, OWN_OUT, Contender, Libs, Setup, build

#: summary-table columns, in order: (column title, test on a contender's label)
COLUMNS = (
    ("torch NCHW", lambda lb: lb.startswith("torch") and "channels_last" not in lb),
    ("torch channels_last", lambda lb: lb.startswith("torch") and "channels_last" in lb),
    ("onnxruntime", lambda lb: lb.startswith("onnxruntime")),
    ("OpenCV", lambda lb: lb.startswith("OpenCV")),
    ("scipy.ndimage", lambda lb: lb.startswith("scipy")),
    ("JAX", lambda lb: lb.startswith("jax")),
    ("NumPy", lambda lb: lb.startswith("numpy")),
)

NEAR = 0.10  # a case within this fraction of a target is run three times


@dataclass
class Budget:
    min_rounds: int = 5  # samples of each contender at least (3 for calls over 0.1 s)
    max_rounds: int = 25
    per_contender_s: float = 1.0  # stop timing a contender after this much, once it has min_rounds
    per_case_s: float = 5.0  # stop the rounds after this much, once every contender has min_rounds
    sample_s: float = 0.002  # batch calls so that one sample lasts at least this long
    #: idle time before each sample, repeated (see quiesce) until the process's threads are idle:
    #: thread pools that spin-wait after a call would otherwise take CPU from the next contender --
    #: onnxruntime's spins about 40 ms of CPU after each run, and a 3-D max pooling timed after it
    #: took 4.5-5.1 ms against 2.6-3.1 ms alone
    gap_s: float = 0.005
    quiet_max_s: float = 0.25  # give up waiting for idle threads after this long
    #: a contender whose call takes less than this makes one untimed call before each sample, so
    #: that every timed call follows a call of its own, as a network's layers follow each other:
    #: on this VM a thread pool woken after 20 ms or more of sleep often lands on the caller's
    #: core and shares it for the whole call (poolkit's 3-D max: 4.8-7.3 ms on 1.00 core after
    #: 20-50 ms idle, 2.7-4.0 ms on 1.3-1.8 cores after 5 ms) -- a cost of waking from idle, which
    #: the batches of many calls that fast contenders get would hide and slow ones would not
    wake_below_s: float = 0.05


QUICK = Budget(min_rounds=3, max_rounds=5, per_contender_s=0.3, per_case_s=2.0)


@dataclass
class Timing:
    median: float  # seconds per call
    samples: list[float]
    number: int  # calls per sample
    cores: float  # process CPU time / wall time while it ran


@dataclass
class Measured:
    spec: Spec
    contenders: list[Contender]
    timings: dict[str, Timing]
    nbytes: int
    tol: str
    runs: list[dict[str, float]] = field(default_factory=list)  # medians of each run (first = the table's)

    def median(self, label: str) -> float | None:
        t = self.timings.get(label)
        return t.median if t else None


# ---------------------------------------------------------------- checking


def check(setup: Setup) -> None:
    """Set each peer's ``status``: run it once and compare its output with poolkit's."""
    ref, tol = setup.ref, setup.tol
    for c in setup.contenders:
        if not c.peer and c.label != OWN_F32:  # poolkit's float32 sums are checked as a peer is
            c.status = "ok (reference)" if c.label == "poolkit" else "ok"
            continue
        if c.call is None:
            continue
        try:
            if c.around:
                c.around[0]()
            try:
                got = np.asarray(c.result(c.call()))
            finally:
                if c.around:
                    c.around[1]()
        except Exception as e:  # the library has no kernel for this dtype, layout or geometry
            c.status = "unsupported: " + _short(e)
            continue
        c.status = compare(got, ref, tol)


def compare(got: np.ndarray, ref: np.ndarray, tol) -> str:
    """"ok ..." when `got` is poolkit's result `ref` under `tol`, else "differs: <how>"."""
    if got.shape != ref.shape:
        return f"differs: shape {got.shape} vs poolkit's {ref.shape}"
    if got.dtype != ref.dtype:
        return f"differs: dtype {got.dtype} vs poolkit's {ref.dtype}"
    if tol.exact:
        if np.array_equal(got, ref, equal_nan=True):
            return "ok (exact)"
        bad = int(np.count_nonzero(~((got == ref) | (np.isnan(got) & np.isnan(ref)))
                                   if got.dtype.kind == "f" else got != ref))
        return f"differs: {bad} of {ref.size} values not equal"
    if np.allclose(got, ref, rtol=tol.rtol, atol=tol.atol, equal_nan=True):
        err = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
        return f"ok (max abs diff {err:.2g})"
    close = np.isclose(got, ref, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
    err = float(np.nanmax(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    return f"differs: {int(close.size - close.sum())} of {ref.size} values beyond tolerance (max abs diff {err:.2g})"


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    for marker in ("error: (", "Error: ", "NOT_IMPLEMENTED : ", "INVALID_GRAPH : ", "FAIL : "):
        if marker in text:
            text = text[text.index(marker) + len(marker) - (1 if marker.endswith("(") else 0):]
    return (type(e).__name__ + ": " + text)[:200]


# ---------------------------------------------------------------- timing


def _nothing() -> None:
    pass


def _nanmedian(v: list[float]) -> float:
    v = [a for a in v if not math.isnan(a)]
    return statistics.median(v) if v else math.nan


def quiesce(gap_s: float, max_s: float, busy: float = 0.05) -> float:
    """Sleep ``gap_s`` at a time until this process used under ``busy`` of a core while asleep
    (no thread of a pool still spins), or ``max_s`` has passed; the time slept."""
    start = time.perf_counter()
    while True:
        p0, t0 = time.process_time(), time.perf_counter()
        time.sleep(gap_s)
        t1 = time.perf_counter()
        if time.process_time() - p0 < busy * (t1 - t0) or t1 - start >= max_s:
            return t1 - start


def _settle(budget: Budget) -> None:
    """Wait, before a sample, until the threads of every pool are idle (see Budget.gap_s)."""
    if budget.gap_s:
        quiesce(budget.gap_s, budget.quiet_max_s)


def time_contenders(contenders: list[Contender], budget: Budget) -> dict[str, Timing]:
    """Median seconds per call of each timed contender, in interleaved rounds."""
    live = [c for c in contenders if c.timed]
    calls: dict[str, Callable[[], object]] = {c.label: c.call for c in live if c.call is not None}
    number: dict[str, int] = {}
    first: dict[str, float] = {}
    enter = {c.label: c.around[0] if c.around else _nothing for c in live}
    leave = {c.label: c.around[1] if c.around else _nothing for c in live}
    for c in live:  # size the batches (the check, or making the reference, was each call's warm-up)
        enter[c.label]()
        t0 = time.perf_counter()
        calls[c.label]()
        dt = first[c.label] = time.perf_counter() - t0
        leave[c.label]()
        if dt < 0.01:
            # a fast call is sized as its samples are taken -- after idle threads and a call of its own
            # -- by the fastest of three calls: one slow call (a cold cache, poolkit's remembered small
            # call made for another contender) would make its samples short.  Sized right after the
            # check, without the wait, the first contender shared the cores with the pools the check
            # had left spinning: in the run of 2026-12-07 02:06 poolkit's channels-first global
            # average got 4 calls a sample (its float32-sums twin, sized next, 24) and took 0.207 ms
            # a call, where timed 20 calls a sample it takes 0.10-0.14 ms
            _settle(budget)
            enter[c.label]()
            calls[c.label]()
            for _ in range(3):
                t0 = time.perf_counter()
                calls[c.label]()
                dt = min(dt, time.perf_counter() - t0)
            leave[c.label]()
        number[c.label] = max(1, min(100_000, int(budget.sample_s / max(dt, 1e-7))))
    samples: dict[str, list[float]] = {c.label: [] for c in live}
    cpu: dict[str, list[float]] = {c.label: [] for c in live}
    spent = dict.fromkeys(samples, 0.0)
    for lb, dt in first.items():  # a call of over 0.1 s: its sizing run is its first sample
        if dt > 0.1:
            samples[lb].append(dt)
            cpu[lb].append(math.nan)
            spent[lb] += dt
    gc_was = gc.isenabled()
    gc.collect()
    gc.disable()
    rng = random.Random(0)
    try:
        case_t0 = time.perf_counter()
        last = None
        for _ in range(budget.max_rounds):
            active = [c for c in live if len(samples[c.label]) < (budget.min_rounds if first[c.label] <= 0.1
                                                                  else min(3, budget.min_rounds))
                      or (spent[c.label] < budget.per_contender_s
                          and time.perf_counter() - case_t0 < budget.per_case_s)]
            if not active:
                break
            # each round in an order of its own (seeded), the copy floor among the others: a
            # contender always timed right after the same one inherits that one's leftovers
            # (caches, pages) in every sample.  In the runs of 2026-12-05 09:31 UTC the 2x2 max,
            # poolkit always first, took 1.28-1.37 ms, and the same call with out=, always second,
            # 1.11-1.16 ms (1.10 and 1.11 in a script that reversed the order every round).  Until
            # 2026-12-07 each round started one contender later, which left each contender after
            # the same one in most rounds -- poolkit's plain call after the copy floor, whose
            # dirty lines cost the next call: on 2026-12-07, a channels-last 2x2 average timed
            # after the floor took 1.81 ms against 1.61 ms for its out= twin timed after it, and
            # 1.86 against 1.66 ms with the two swapped; a 3x3x3 max 1.93 against 1.77 ms, 1.87
            # against 1.72 swapped
            rng.shuffle(active)
            if active[0] is last and len(active) > 1:  # no contender timed twice in a row
                active.append(active.pop(0))
            last = active[-1]
            for c in active:
                call, n = calls[c.label], number[c.label]
                _settle(budget)
                enter[c.label]()
                if first[c.label] < budget.wake_below_s:
                    call()  # untimed: wakes the contender's own threads (see Budget.wake_below_s)
                p0 = time.process_time()
                t0 = time.perf_counter()
                for _ in range(n):
                    call()
                dt = time.perf_counter() - t0
                dp = time.process_time() - p0
                leave[c.label]()
                samples[c.label].append(dt / n)
                cpu[c.label].append(dp / dt if dt > 0 else 0.0)
                spent[c.label] += dt
    finally:
        if gc_was:
            gc.enable()
    return {lb: Timing(statistics.median(v), v, number[lb], _nanmedian(cpu[lb])) for lb, v in samples.items()}


def measure(spec: Spec, libs: Libs, budget: Budget, seed: int = 0, log=print) -> Measured:
    t0 = time.perf_counter()
    setup = build(spec, libs, np.random.default_rng(seed))
    t1 = time.perf_counter()
    check(setup)
    t2 = time.perf_counter()
    timings = time_contenders(setup.contenders, budget)
    t3 = time.perf_counter()
    m = Measured(spec, setup.contenders, timings, setup.nbytes, setup.tol.text())
    m.runs.append({lb: t.median for lb, t in timings.items()})
    log(f"  {spec.name}: {t3 - t0:.1f} s (build {t1 - t0:.1f}, check {t2 - t1:.1f}), "
        f"poolkit {timings['poolkit'].median * 1e3:.3f} ms"
        + "".join(f"; {c.label} {c.status.split(':')[0]}" for c in setup.contenders
                  if c.peer and not c.status.startswith("ok")))
    del setup
    gc.collect()
    return m


# ---------------------------------------------------------------- ratios and targets


def best_by_column(m: Measured, medians: dict[str, float]) -> dict[str, tuple[str, float | None, str]]:
    """column -> (label of its fastest timed contender, its median, or the reason none was timed)."""
    out: dict[str, tuple[str, float | None, str]] = {}
    for col, belongs in COLUMNS:
        mine = [c for c in m.contenders if c.peer and belongs(c.label)]
        if not mine:
            continue
        timed = [(medians[c.label], c.label) for c in mine if c.label in medians]
        if timed:
            t, lb = min(timed)
            out[col] = (lb, t, "")
        elif any(c.status.startswith("differs") for c in mine):
            out[col] = ("", None, "differs")
        elif any(c.status.startswith("not run: not installed") for c in mine):
            out[col] = ("", None, "not installed")
        else:  # raised, or the adapter knows the library has no way to compute it
            out[col] = ("", None, "unsupported")
    return out


def targets(m: Measured, medians: dict[str, float]) -> list[tuple[str, float, float]]:
    """(target, poolkit's ratio, limit) for each target of the case."""
    pk = medians["poolkit"]
    out = []
    # a peer pooling a copy in its other layout (marked *) is shown, but is not a target: the
    # caller's array is in poolkit's layout
    lb = fastest_peer(medians)
    if lb is not None:
        out.append((f"fastest peer ({lb})", pk / medians[lb], 1.0))
    if m.spec.family == "tiny":
        torch = [t for lb, t in medians.items() if lb.startswith("torch")]
        if torch:
            out.append(("torch", pk / min(torch), 1.0))
    limit = m.spec.floor_target
    if limit and "copy floor" in medians:
        out.append(("bytes floor", pk / medians["copy floor"], limit))
    return out


def fastest_peer(medians: dict[str, float]) -> str | None:
    """The label of the fastest peer among a run's medians (a copy in the other layout is not one)."""
    peers = [(t, lb) for lb, t in medians.items() if lb not in OWN and not _other_layout(lb)]
    return min(peers)[1] if peers else None


def _other_layout(label: str) -> bool:
    return OTHER_LAYOUT in label


def near_target(m: Measured) -> bool:
    return any(abs(r / lim - 1) <= NEAR for _, r, lim in targets(m, m.runs[0]))


# ---------------------------------------------------------------- reports


def _fmt_ratio(r: float) -> str:
    text = f"{r:.2f}" if r < 10 else f"{r:.1f}"
    return f"**{text}**" if r > 1 else text


def _over_runs(m: Measured, what) -> tuple[float, str]:
    """A value computed from each run's medians: its median over the runs, and ' [min-max]' when
    there was more than one run."""
    vals = [v for v in (what(r) for r in m.runs) if v is not None]
    if not vals:
        return math.nan, ""
    return statistics.median(vals), (f" [{min(vals):.2f}-{max(vals):.2f}]" if len(vals) > 1 else "")


def _ratio_cell(m: Measured, label: str, of: str = "poolkit") -> str:
    """The time of ``of`` over that of ``label``, its median over the runs and spread."""
    r, spread = _over_runs(m, lambda run: run[of] / run[label] if label in run and of in run else None)
    return _fmt_ratio(r) + spread


def summary_table(ms: list[Measured]) -> list[str]:
    cols = [c for c, _ in COLUMNS]
    lines = ["| case | " + " | ".join(cols)
             + " | x bytes floor | x floor, out= | float32 sums x fastest peer | targets (poolkit ratio / limit) "
             "| met |",
             "|---|" + "---:|" * len(cols) + "---:|---:|---:|---|---|"]
    for m in ms:
        med = m.runs[0]
        best = best_by_column(m, med)
        cells = []
        for col in cols:
            if col not in best:
                cells.append("")
                continue
            lb, t, why = best[col]
            if t is None:
                cells.append(why)
            else:
                cells.append(_ratio_cell(m, lb) + ("*" if _other_layout(lb) else ""))
        floor = _ratio_cell(m, "copy floor") if "copy floor" in med else ""
        # poolkit writing into a buffer it is given (out=): the floor's own terms
        reused = _ratio_cell(m, "copy floor", OWN_OUT) if OWN_OUT in med and "copy floor" in med else ""
        run = _median_run(m)
        # poolkit's float32 sums over the fastest peer of the plain call's target
        peer = fastest_peer(run)
        acc32 = _ratio_cell(m, peer, OWN_F32) if OWN_F32 in med and peer is not None else ""
        tg = targets(m, run)
        tcell = "; ".join(f"{name}: {r:.2f} / {lim:g}" for name, r, lim in tg)
        met = "yes" if tg and all(r <= lim for _, r, lim in tg) else ("**no**" if tg else "")
        lines.append(f"| {m.spec.name} | " + " | ".join(cells) + f" | {floor} | {reused} | {acc32} | {tcell} | {met} |")
    return lines


def targets_over_runs(m: Measured) -> list[tuple[str, float, float]]:
    """The targets of a case run once or more: the same as ``targets`` on a run whose time of each
    contender is such that poolkit's ratio to it is its median ratio over the runs (so the fastest
    peer is the one with the highest median ratio, as in the tables)."""
    return targets(m, _median_run(m))


def _median_run(m: Measured) -> dict[str, float]:
    """A run whose time of each contender is such that poolkit's ratio to it is its median ratio
    over the runs (poolkit's own entry: 1); the first run when there is only one."""
    if len(m.runs) == 1:
        return m.runs[0]
    labels = set.intersection(*(set(r) for r in m.runs))
    ratio = {lb: _over_runs(m, lambda r, lb=lb: r["poolkit"] / r[lb])[0] for lb in labels}
    return {lb: 1.0 / v for lb, v in ratio.items()}


def detail_table(m: Measured) -> list[str]:
    lines = [f"#### {m.spec.name}", ""]
    if m.spec.note:
        lines += [m.spec.note, ""]
    lines += [f"Input + output bytes: {m.nbytes / 1e6:.1f} MB; check: {m.tol}." + (
        f" Runs: {len(m.runs)}." if len(m.runs) > 1 else ""), "",
        "| contender | how | threads | check | median ms | GB/s (in+out) | cores used | poolkit / it |",
        "|---|---|---|---|---:|---:|---:|---:|"]
    for c in m.contenders:
        t = m.timings.get(c.label)
        if t is None:
            lines.append(f"| {c.label} | {c.how} | {c.threads} | {c.status} | | | | |")
            continue
        gbs = m.nbytes / t.median / 1e9
        ratio = _ratio_cell(m, c.label)
        lines.append(f"| {c.label} | {c.how} | {c.threads} | {c.status} | {t.median * 1e3:.4g} | {gbs:.2f} | "
                     f"{t.cores:.2f} | {ratio} |")
    return lines + [""]


def write_markdown(path: str, ms: list[Measured], info: dict, plot: str | None) -> None:
    lines = ["# poolkit beside its peers",
             "",
             f"Generated by `{info.get('command', 'python -m benchmarks.suite')}` on {info['date']}.",
             "Do not edit by hand: rerun the suite.",
             "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("date", "versions", "command"))
             + ".",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
             "",
             "Each cell is **poolkit's median time over the peer's** in the same run (below 1: poolkit is faster; "
             "**bold**: poolkit is slower), for the fastest way that peer has to compute exactly poolkit's result "
             "(all the ways tried are in the details). `*`: the peer pools a copy of the input in its other "
             "layout, made before timing (shown, but not counted in the fastest-peer target: the caller's array "
             "is in poolkit's layout). `differs`: the peer's output is not poolkit's (not timed); "
             "`unsupported`: the library raised or has no kernel for it; empty: not a peer of this case.",
             "",
             "\"x bytes floor\": poolkit's time over the time `np.copyto` (one thread) needs to move the call's "
             "input + output bytes; \"x floor, out=\": the same call writing into a buffer it is given "
             "(`out=`, the floor's own terms: a copy into a preallocated array), for the ops that take `out=`. "
             "\"float32 sums x fastest peer\": a float32 average asked to sum in float32 (`acc_dtype=\"float32\"`, "
             "checked against the plain call as a peer is) over the fastest peer of the plain call's target; "
             "not counted in the targets, which are the plain call's. "
             "Targets (issue 15), on poolkit's plain call: <= 1 x the fastest peer; forward <= 1.2 x floor, "
             "backward <= 2 x, global <= 1.5 x; the tiny call <= torch (its fastest variant, which includes "
             "torch on 1 thread: see the details). Cases within 10% of a target were run three times: their "
             "ratios are the medians over the three runs, followed by [lowest-highest]; the other columns of "
             "the details are from the first run.",
             ""]
    if plot:
        lines += [f"![poolkit over the fastest peer and over the bytes floor]({os.path.relpath(plot, 'benchmarks')})",
                  ""]
    groups: dict[str, list[Measured]] = {}
    for m in ms:
        groups.setdefault(m.spec.dtype, []).append(m)
    for dtype, g in groups.items():
        lines += [f"## {dtype}", ""] + summary_table(g) + [""]
    lines += ["## Details", "", "\"cores used\": process CPU time over wall time while the contender ran.", ""]
    for m in ms:
        lines += detail_table(m)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def to_json(ms: list[Measured], info: dict) -> dict[str, Any]:
    results = []
    for m in ms:
        results.append({
            "case": m.spec.name, "op": m.spec.op, "kind": m.spec.kind, "shape": list(m.spec.shape),
            "layout": m.spec.layout, "kernel": list(m.spec.kernel), "stride": list(m.spec.stride),
            "pad": list(m.spec.pad), "dtype": m.spec.dtype, "family": m.spec.family, "bytes": m.nbytes,
            "check_tolerance": m.tol,
            "contenders": [{"label": c.label, "how": c.how, "threads": c.threads, "status": c.status,
                            **({"median_s": m.timings[c.label].median, "samples_s": m.timings[c.label].samples,
                                "calls_per_sample": m.timings[c.label].number,
                                "cores_used": m.timings[c.label].cores} if c.label in m.timings else {})}
                           for c in m.contenders],
            "runs_median_s": m.runs,
            "targets": [{"target": n, "ratio": r, "limit": lim, "met": r <= lim} for n, r, lim in targets_over_runs(m)],
        })
    return {"machine": info, "results": results}


def plot_png(path: str, ms: list[Measured], info: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m for m in ms if m.spec.dtype == "float32"] or ms
    names, vs_peer, vs_floor, floor_lim = [], [], [], []
    for m in rows:
        tg = {n.split(" (")[0]: (r, lim) for n, r, lim in targets_over_runs(m)}
        names.append(m.spec.name.replace(" float32", ""))
        vs_peer.append(tg.get("fastest peer", (math.nan,))[0])
        vs_floor.append(tg.get("bytes floor", (math.nan,))[0])
        floor_lim.append(tg.get("bytes floor", (math.nan, math.nan))[1])
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 2.0))
    for dy, vals, lab, col in ((-0.2, vs_peer, "poolkit / fastest peer (target <= 1)", "tab:blue"),
                               (0.2, vs_floor, "poolkit / bytes floor", "tab:orange")):
        v = np.array(vals, float)
        ax.barh(y + dy, np.abs(v - 1), 0.4, left=np.minimum(v, 1), label=lab, color=col)  # bars grow from 1
    ax.scatter(floor_lim, y + 0.2, marker="|", s=120, color="black", label="floor target", zorder=3)
    ax.axvline(1.0, color="tab:blue", lw=1, ls="--")
    ax.set_xscale("log")
    seen = [v for v in vs_peer + vs_floor if v > 0 and math.isfinite(v)] + [1.0]
    lo, hi = min(seen) / 1.3, max(seen) * 1.3
    ax.set_xlim(lo, hi)
    # plain ratios at 1-2-5 steps (matplotlib's log labels, 3x10^-1 and the like, ran into each other)
    ax.set_xticks([t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if lo <= t <= hi])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio of median times (log; left of 1 = poolkit faster)")
    ax.set_title(f"poolkit, {rows[0].spec.dtype if rows else ''}, {info['threads']} threads, {info['cpu']}",
                 fontsize=9)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def window_sweep(libs: Libs, budget: Budget, sizes=(2, 3, 5, 9, 17, 33, 65)) -> dict[int, dict[str, float]]:
    """Max pooling, stride 1, padding (k-1)//2, over window sizes: median ms of poolkit, torch and JAX
    (each checked against poolkit first, as in the cases)."""
    specs = [Spec(f"max {k}x{k} s1 p{(k - 1) // 2}", "max", "pool", (2, 16, 256, 256), "NCHW", (k, k), (1, 1),
                  ((k - 1) // 2,) * 2, peers=("torch", "jax")) for k in sizes]
    out: dict[int, dict[str, float]] = {}
    slow: set[str] = set()  # peers that took over a second at a smaller window: not run at larger ones
    budget = dataclasses.replace(budget, min_rounds=1)
    for k, spec in zip(sizes, specs):
        setup = build(spec, libs, np.random.default_rng(1))
        setup.contenders = [c for c in setup.contenders
                            if c.label not in slow and c.label not in OWN[1:] and not _other_layout(c.label)]
        check(setup)
        out[k] = {lb: t.median * 1e3 for lb, t in time_contenders(setup.contenders, budget).items()}
        slow |= {lb for lb, ms in out[k].items() if ms > 1000 and lb != "poolkit"}
        del setup
    return out


def plot_windows(path: str, sweep: dict[int, dict[str, float]], info: dict) -> None:
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
    ax.set_xlabel("window size k (k x k, stride 1, padding (k-1)//2)")
    ax.set_ylabel("median time, ms (log)")
    ax.set_title(f"max pooling, (2, 16, 256, 256) float32, {info['threads']} threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def from_json(data: dict[str, Any]) -> list[Measured]:
    """The measurements of a results JSON written by this suite (to render its reports again)."""
    ms = []
    for r in data["results"]:
        spec = Spec(r["case"], r["op"], r["kind"], tuple(r["shape"]), r["layout"], tuple(r["kernel"]),
                    tuple(r["stride"]), tuple(r["pad"]), r["dtype"], family=r["family"])
        spec = next((s for s in cases_mod.all_specs() if s.name == spec.name), spec)  # its peers, output size
        contenders, timings = [], {}
        for c in r["contenders"]:
            contenders.append(Contender(c["label"], None, threads=c["threads"], how=c["how"], status=c["status"],
                                        peer=c["label"] not in OWN))
            if "median_s" in c:
                timings[c["label"]] = Timing(c["median_s"], c["samples_s"], c["calls_per_sample"], c["cores_used"])
        ms.append(Measured(spec, contenders, timings, r["bytes"], r["check_tolerance"], r["runs_median_s"]))
    return ms


# ---------------------------------------------------------------- machine


def machine_info(threads: int) -> dict[str, Any]:
    import numba

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "load average at start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "python": platform.python_version(),
        "os": platform.platform(),
    }
    versions = {"numpy": np.__version__, "numba": numba.__version__}
    for name, mod in (("poolkit", "poolkit"), ("torch", "torch"), ("onnxruntime", "onnxruntime"),
                      ("onnx", "onnx"), ("opencv", "cv2"), ("scipy", "scipy"), ("jax", "jax"),
                      ("jaxlib", "jaxlib")):
        try:
            versions[name] = __import__(mod).__version__
        except ImportError:
            versions[name] = "not installed"
    info["versions"] = versions
    info["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")
    return info


def warm_memory(limit_gb: float = 16.0, chunk: int = 256 << 20) -> str:
    """Touch most of the free memory once, a chunk at a time, before anything is timed, and say how
    fast that went.

    On a virtual machine whose host backs guest memory on first touch (this one: 0.4 GB/s the first
    time a page is written, 13 GB/s after), a call's freshly allocated output is slow or not
    depending on whether the allocator hands it pages touched before -- it made the same call take
    4 or 11 ms from one run of the suite to the next.  Touched once, the freed pages stay backed,
    and every contender's allocations get them."""
    avail = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        return "not measured (no /proc/meminfo)"
    total = int(min(max(avail - (3 << 30), 0), limit_gb * (1 << 30))) // chunk * chunk
    if total == 0:
        return "skipped (little free memory)"
    speeds = []
    for _ in range(2):  # the first pass finds untouched pages, the second shows the steady speed
        t = time.perf_counter()
        blocks = []
        for _ in range(total // chunk):
            b = np.empty(chunk, np.uint8)
            b.fill(1)
            blocks.append(b)
        del blocks
        speeds.append(total / (time.perf_counter() - t) / 1e9)
    return f"{total / 2**30:.0f} GiB touched at {speeds[0]:.1f} GB/s, then again at {speeds[1]:.1f} GB/s"


def _cpu_name() -> str:
    """'model name (family F model M, widest SIMD)' from /proc/cpuinfo, where there is one."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or "unknown"
    flags = set(fields.get("flags", "").split())
    simd = next((f for f in ("avx512f", "avx2", "avx", "sse4_2", "neon") if f in flags), "")
    model = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
    extra = ", ".join(x for x in (model, simd) if x)
    return f"{fields['model name']} ({extra})"


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="only cases whose name contains one of these comma-separated parts "
                    "(commas inside brackets belong to the part: --cases 'global,max 2x2 s2 NCHW (32,128,56,56)')")
    ap.add_argument("--threads", type=int, default=2, help="threads for every contender (default 2)")
    ap.add_argument("--quick", action="store_true", help="few repeats and no three-run spread (a smoke run)")
    ap.add_argument("--scale", type=int, default=1, help="divide every case's batch by this (smoke runs)")
    ap.add_argument("--runs", type=int, default=3, help="runs of a case within 10%% of a target (default 3)")
    ap.add_argument("--md", default="benchmarks/results.md", help="Markdown report")
    ap.add_argument("--json", default="benchmarks/results.json", help="JSON results")
    ap.add_argument("--plot", default="docs/bench_peers.png", help="PNG plot of the float32 ratios")
    ap.add_argument("--windows", default="", help="also run the window-size sweep and plot it to this PNG "
                    "(docs/bench_windows.png)")
    ap.add_argument("--no-write", action="store_true", help="print the tables only")
    ap.add_argument("--list", action="store_true", help="list the selected cases and exit")
    ap.add_argument("--render", metavar="JSON", help="run nothing: write the Markdown and the plot of a saved "
                    "results JSON again")
    args = ap.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            data = json.load(f)
        ms = from_json(data)
        if args.plot:
            plot_png(args.plot, ms, data["machine"])
        write_markdown(args.md, ms, data["machine"], args.plot or None)
        print(f"wrote {args.md}" + (f", {args.plot}" if args.plot else ""))
        return 0

    specs = cases_mod.select(cases_mod.all_specs(), args.cases)
    if args.scale > 1:
        specs = [s.scaled(args.scale) for s in specs]
    if args.list or not (specs or args.windows):
        for s in specs:
            print(s.name, " peers:", ", ".join(s.peers))
        return 0 if specs else 1
    libs = Libs(args.threads)  # sets XLA_FLAGS before jax is imported
    libs.get("poolkit")
    budget = QUICK if args.quick else Budget()
    info = machine_info(args.threads)
    info["command"] = " ".join(["python -m benchmarks.suite", *argv])
    if not args.quick:
        info["memory warm-up"] = warm_memory()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    t_start = time.perf_counter()
    ms = []
    for spec in specs:
        ms.append(measure(spec, libs, budget))
        sys.stdout.flush()
    if not args.quick and args.runs > 1:
        again = [i for i, m in enumerate(ms) if near_target(m)]
        if again:
            print(f"again, {args.runs - 1} more runs of the {len(again)} cases within 10% of a target:", flush=True)
        for r in range(1, args.runs):
            for i in again:
                m2 = measure(ms[i].spec, libs, budget, seed=r)
                ms[i].runs.append(m2.runs[0])
    sweep = None
    if args.windows:
        sweep = window_sweep(libs, budget)
        print("\nwindow sweep, median ms: " + json.dumps(sweep))
        if not args.no_write:
            plot_windows(args.windows, sweep, info)
    info["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")  # as set for jax by the suite
    info["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    info["wall time of the run"] = f"{time.perf_counter() - t_start:.0f} s"
    groups: dict[str, list[Measured]] = {}
    for m in ms:
        groups.setdefault(m.spec.dtype, []).append(m)
    for dtype, g in groups.items():
        print(f"\n## {dtype}\n")
        print("\n".join(summary_table(g)))
    if not args.no_write and ms:  # (a window sweep alone leaves the case reports as they are)
        plot = args.plot or None
        if plot:
            try:
                plot_png(plot, ms, info)
            except ImportError as e:
                print(f"no plot: {e}")
                plot = None
        write_markdown(args.md, ms, info, plot)
        with open(args.json, "w") as f:
            json.dump({**to_json(ms, info), "window_sweep_ms": sweep}, f, indent=1)
        print(f"\nwrote {args.md}, {args.json}" + (f", {plot}" if plot else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
