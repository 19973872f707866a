"""Fuzz every public function: a result or a clean error, the input unchanged.

Every public function of :mod:`poolkit` and of ``poolkit.compat.torch``, ``.tf``, ``.keras`` and
``.onnx`` is called with mostly plausible arguments, one or more of them perturbed: odd shapes,
dtypes and memory layouts, NaN and inf, huge and negative ints, floats where ints belong, strings,
None, empty or nested sequences.  Each call must

* return, or raise ``ValueError`` / ``TypeError`` -- any other exception (OverflowError,
  ZeroDivisionError, IndexError, MemoryError, SystemError, numba's TypingError, ...) fails;
* emit no warning (a RuntimeWarning would be an error under ``-W error``; numba's own compile
  warnings are ignored);
* leave every input array bit-for-bit unchanged (bytes, dtype, shape, strides, writeable flag, and
  the whole buffer the array is a view of);
* finish in SOFT_LIMIT seconds, numba compile time excluded: the arrays are tiny, so a slow call is
  a bug.  A call still running after HARD_LIMIT seconds aborts the run with a traceback of every
  thread (``faulthandler``), since a compiled kernel cannot be interrupted.

While this module runs, the process's address space is capped (current size + MEMORY_MARGIN) so
that a huge allocation fails at once as a MemoryError (reported) instead of swapping or being
OOM-killed (``POOLKIT_FUZZ_MEMORY_GUARD=0`` turns that off).

The examples are derandomized (the same on every run) and bounded: ``POOLKIT_FUZZ_EXAMPLES`` per
group (default 90), ``POOLKIT_FUZZ_SHRINK=1`` turns Hypothesis's shrinking on (off by default: a
slow failing call would be replayed many times), ``POOLKIT_FUZZ_COLLECT=1`` runs every example of a
group and lists each distinct failure once.  The end of the run prints how many examples and calls
ran (tests/conftest.py adds up the counts of every pytest-xdist worker).

The second half holds explicit regression cases: the reported failures, then failures this fuzz
found, each asserting the correct behaviour.
"""

from __future__ import annotations

import collections
import copy
import faulthandler
import functools
import math
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import poolkit
from poolkit.compat import keras as ckeras
from poolkit.compat import onnx as connx
from poolkit.compat import tf as ctf
from poolkit.compat import torch as ctorch

# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------

MAX_EXAMPLES = int(os.environ.get("POOLKIT_FUZZ_EXAMPLES", "90"))
SOFT_LIMIT = 20.0  # seconds per call, numba compilation excluded
HARD_LIMIT = 300.0  # seconds per call, compilation included: abort the whole run
MEMORY_MARGIN = 8 * 2**30  # bytes of address space the module may add to what the process has

#: run every example and report each distinct failure once (instead of stopping at the first)
COLLECT = os.environ.get("POOLKIT_FUZZ_COLLECT") == "1"

_PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("POOLKIT_FUZZ_SHRINK") == "1":
    _PHASES.append(Phase.shrink)

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=_PHASES,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)

#: calls made and examples run, per fuzz group (printed by the last test)
CASES: collections.Counter = collections.Counter()
EXAMPLES: collections.Counter = collections.Counter()
_current_group = ["?"]

# ---------------------------------------------------------------------------------------------
# numba compile time, so that the per-call time limit excludes it
# ---------------------------------------------------------------------------------------------

try:
    from numba.core import event as _numba_event

    class _CompileClock(_numba_event.Listener):
        """Total seconds spent in top-level numba compilations (nested ones are inside them)."""

        def __init__(self):
            self.depth = 0
            self.total = 0.0
            self._start = 0.0
            self._lock = threading.Lock()

        def on_start(self, event):
            with self._lock:
                if self.depth == 0:
                    self._start = time.perf_counter()
                self.depth += 1

        def on_end(self, event):
            with self._lock:
                self.depth -= 1
                if self.depth == 0:
                    self.total += time.perf_counter() - self._start

    _CLOCK = _CompileClock()
    _numba_event.register("numba:compile", _CLOCK)
except Exception:  # pragma: no cover - numba without the event API: count nothing as compile time
    _CLOCK = type("NoClock", (), {"total": 0.0})()


# ---------------------------------------------------------------------------------------------
# the address-space cap
# ---------------------------------------------------------------------------------------------


def _address_space_in_use():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@pytest.fixture(scope="module", autouse=True)
def _memory_guard():
    """Cap RLIMIT_AS while this module runs: a huge allocation becomes an immediate MemoryError."""
    if os.environ.get("POOLKIT_FUZZ_MEMORY_GUARD", "1") == "0":
        yield
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    in_use = _address_space_in_use()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if in_use is None:
        yield
        return
    limit = in_use + MEMORY_MARGIN
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY and soft <= limit:
        yield  # already capped at least as tightly
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---------------------------------------------------------------------------------------------
# one checked call
# ---------------------------------------------------------------------------------------------

#: how each array of the current example was built (for failure messages), by id
_DESC: dict = {}


def _fmt(v, depth=0):
    """A short, mostly copy-pasteable repr of an argument."""
    if isinstance(v, np.ndarray):
        how = _DESC.get(id(v), "")
        if v.dtype.kind in "biufcMm" and v.size <= 24:
            body = f"np.array({v.tolist()!r}, dtype={v.dtype.str!r})"
            if v.ndim == 0 or v.size == 0:
                body = f"np.array({v.tolist()!r}, dtype={v.dtype.str!r}).reshape({v.shape})"
        else:
            body = f"<array shape={v.shape} dtype={v.dtype.str}>"
        return body + (f"  # {how}" if how and depth == 0 else f"/*{how}*/" if how else "")
    if isinstance(v, (list, tuple)) and depth < 3:
        inner = ", ".join(_fmt(e, depth + 1) for e in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, np.random.Generator):
        return "np.random.default_rng(<seed>)"
    r = repr(v)
    return r if len(r) <= 120 else r[:117] + "..."


def _describe(label, args, kwargs):
    parts = [_fmt(a) for a in args] + [f"{k}={_fmt(v)}" for k, v in kwargs.items()]
    return f"{label}(" + ",\n    ".join(parts) + ")"


def _arrays_in(obj, path, out, depth=0):
    if isinstance(obj, np.ndarray):
        out.append((path, obj))
    elif depth < 4 and isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _arrays_in(v, f"{path}[{i}]", out, depth + 1)
    elif depth < 4 and isinstance(obj, dict):
        for k, v in obj.items():
            _arrays_in(v, f"{path}[{k!r}]", out, depth + 1)
    return out


def _root(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _snapshot(args, kwargs):
    found = []
    for i, a in enumerate(args):
        _arrays_in(a, f"args[{i}]", found)
    for k, v in kwargs.items():
        if k != "out":  # written by design; _call_with_out checks it
            _arrays_in(v, k, found)
    snaps = []
    for path, a in found:
        root = _root(a)
        snaps.append((path, a, a.dtype, a.shape, a.strides, a.flags.writeable, a.tobytes(),
                      root, root.tobytes()))
    containers = [(k, v, repr(v)) for k, v in list(enumerate(args)) + list(kwargs.items())
                  if isinstance(v, (list, dict))]
    return snaps, containers


def _check_unchanged(snaps, containers, where):
    for path, a, dtype, shape, strides, writeable, data, root, root_data in snaps:
        problems = []
        if a.dtype != dtype:
            problems.append(f"dtype {dtype} -> {a.dtype}")
        if a.shape != shape:
            problems.append(f"shape {shape} -> {a.shape}")
        if a.strides != strides:
            problems.append(f"strides {strides} -> {a.strides}")
        if a.flags.writeable != writeable:
            problems.append(f"writeable {writeable} -> {a.flags.writeable}")
        if not problems and a.tobytes() != data:
            problems.append("its values changed")
        if not problems and root.tobytes() != root_data:
            problems.append("memory outside the view (in the array it is a view of) changed")
        if problems:
            raise AssertionError(f"input {path} was modified ({'; '.join(problems)}) by\n{where}")
    for key, obj, text in containers:
        if repr(obj) != text:
            raise AssertionError(f"input argument {key!r} (a {type(obj).__name__}) was modified by\n{where}")


def _foreign_warning(w) -> bool:
    """Warnings numba gives while compiling are not the library's doing."""
    return not (getattr(w.category, "__module__", "") or "").startswith("numba")


def call(label, fn, *args, **kwargs):
    """Call ``fn`` once under the fuzz contract.

    Returns ``(result, None)`` or ``(None, error)`` for a ValueError/TypeError; anything else
    fails the test with the exception's type and message and the call.
    """
    CASES[_current_group[0]] += 1
    snaps, containers = _snapshot(args, kwargs)
    compile_before = _CLOCK.total
    start = time.perf_counter()
    result = error = unexpected = None
    faulthandler.dump_traceback_later(HARD_LIMIT, exit=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = fn(*args, **kwargs)
            except (ValueError, TypeError) as e:
                error = e
            except Exception as e:  # noqa: BLE001 - that is the point
                unexpected = e
    finally:
        faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - start - (_CLOCK.total - compile_before)
    where = _describe(label, args, kwargs)
    _check_unchanged(snaps, containers, where)  # first: a modified input is the worst outcome
    if unexpected is not None:
        e = unexpected
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        msg = " | ".join(lines[:3])[:300]  # numba's TypingError says what it is on its 2nd/3rd line
        raise AssertionError(
            f"{type(e).__module__}.{type(e).__name__} (not ValueError/TypeError): {msg}\n  from {where}"
        ) from e
    bad = [w for w in caught if _foreign_warning(w)]
    if bad:
        w = bad[0]
        raise AssertionError(
            f"{w.category.__name__} warning ({w.filename}:{w.lineno}): {w.message}\n  from {where}"
        )
    if elapsed > SOFT_LIMIT:
        raise AssertionError(f"took {elapsed:.1f} s (compilation excluded) on tiny inputs:\n  {where}")
    return result, error


# ---------------------------------------------------------------------------------------------
# strategies: arrays
# ---------------------------------------------------------------------------------------------

#: dtypes every op must accept (weighted towards the common ones)
REAL_DTYPES = ([np.dtype(np.float64)] * 6 + [np.dtype(np.float32)] * 3 + [np.dtype(np.int64)] * 2 + [
    np.dtype(t) for t in (np.float16, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64,
                          np.bool_, ">f8", ">i8", ">f4", ">u2", ">i4")
])
#: results must be in native byte order whatever the inputs' (poolkit._engine.native says so); set
#: False to compare byte-order regression results by value only
REQUIRE_NATIVE_RESULTS = True

#: dtypes that must give a TypeError (longdouble: a TypeError or a correct result)
ODD_DTYPES = [np.dtype(t) for t in (np.longdouble, np.complex128, np.complex64, object, "datetime64[s]",
                                    "timedelta64[ms]", "U3", "S2", [("a", "f8")])]

LAYOUTS = ["C"] * 4 + ["F", "swapped", "reversed", "strided", "broadcast", "unaligned"]
VALUE_MODES = ["arange", "small", "normal", "special", "zeros", "huge"]

_SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e300, -1e300, 5e-324, 65504.0, 0.5, 3.0])


def _values(shape, dtype, mode, rng):
    n = math.prod(shape)
    if mode == "arange":
        base = (np.arange(n, dtype=np.float64) - n // 3)[rng.permutation(n)]
    elif mode == "small":
        base = rng.integers(-3, 4, n).astype(np.float64)
    elif mode == "normal":
        base = rng.standard_normal(n) * 10
    elif mode == "special":
        base = rng.choice(_SPECIAL, n) if n else np.zeros(0)
    elif mode == "zeros":
        base = np.zeros(n)
    else:  # huge
        base = rng.choice(np.array([1e300, -1e300, 1e30, -1e30, 1e10]), n) if n else np.zeros(0)
    kind = dtype.kind
    with np.errstate(all="ignore"):
        if kind == "f":
            vals = base.astype(dtype)
        elif kind in "iu":
            info = np.iinfo(dtype)
            if mode in ("special", "huge") and n:
                pool = [info.min, info.max, 0, 1, info.max - 1] + ([-1, info.min + 1] if kind == "i" else [])
                vals = np.array([pool[i] for i in rng.integers(0, len(pool), n)], dtype=dtype)
            else:
                vals = np.clip(np.nan_to_num(np.round(base)), max(info.min, -2**53), min(info.max, 2**53)).astype(dtype)
        elif kind == "b":
            vals = base > 0
        elif kind == "c":
            vals = (base + 1j * rng.standard_normal(n)).astype(dtype)
        elif kind == "O":
            vals = np.empty(n, dtype=object)
            vals[:] = [float(v) for v in base]
        elif kind in "Mm":
            vals = np.nan_to_num(base).astype(np.int64).astype(dtype)
        elif kind in "US":
            vals = base.astype(np.int64).astype(dtype)
        else:  # structured
            vals = np.zeros(n, dtype=dtype)
    return vals.reshape(shape)


def _layout(a, layout, rng):
    """``a``'s values in the given memory layout."""
    nd = a.ndim
    if nd == 0 or layout == "C":
        return np.array(a, copy=True), "C"
    if layout == "F":
        return np.asfortranarray(a), "F-order"
    if layout == "swapped" and nd >= 2:
        i, j = rng.choice(nd, 2, replace=False)
        return np.ascontiguousarray(np.swapaxes(a, i, j)).swapaxes(i, j), f"axes {i},{j} swapped in memory"
    if layout == "reversed":
        rev = (slice(None, None, -1),) * nd
        return np.ascontiguousarray(a[rev])[rev], "negative strides"
    if layout == "strided":
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)  # the gaps are guards
        view = big[(slice(1, None, 2),) * nd]
        view[...] = a
        return view, "a strided view (every other element) of a larger array"
    if layout == "broadcast" and a.shape[0] >= 1:
        return np.broadcast_to(a[:1], a.shape), "np.broadcast_to (zero stride, read-only)"
    if layout == "unaligned" and a.dtype.itemsize > 1 and a.dtype.kind not in "OV":
        buf = np.zeros(a.nbytes + a.dtype.itemsize, dtype=np.uint8)
        view = buf[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view, "unaligned"
    return np.array(a, copy=True), "C"


def shapes(min_dims=1, max_dims=4, min_side=0, max_side=7):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple).filter(
        lambda s: math.prod(s) <= 2000)


@st.composite
def arrays(draw, shape=None, dtype=None, *, odd=0.08, min_dims=1, max_dims=4, min_side=0, max_side=7,
           values=None):
    """A small array of the given (or a drawn) shape and dtype, in a drawn value mode and layout."""
    if shape is None:
        shape = draw(shapes(min_dims, max_dims, min_side, max_side))
    if dtype is None:
        use_odd = draw(st.integers(0, 999)) < odd * 1000
        dtype = draw(st.sampled_from(ODD_DTYPES if use_odd else REAL_DTYPES))
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = values or draw(st.sampled_from(VALUE_MODES))
    a, how = _layout(_values(tuple(shape), dtype, mode, rng), draw(st.sampled_from(LAYOUTS)), rng)
    if a.flags.writeable and draw(st.integers(0, 3)) == 0:
        a.flags.writeable = False
        how += ", read-only"
    _DESC[id(a)] = how
    return a


@st.composite
def int_arrays(draw, shape, low, high, dtype=None):
    """Integer arrays in [low, high) (indices, lengths, batch indices), in a drawn layout."""
    dtype = np.dtype(dtype or draw(st.sampled_from([np.int64, np.int64, np.int32, np.uint8, np.int16, ">i8"])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo, hi = max(low, np.iinfo(dtype).min), min(high, np.iinfo(dtype).max + 1)
    vals = rng.integers(lo, max(hi, lo + 1), size=shape).astype(dtype) if hi > lo else np.zeros(shape, dtype)
    a, how = _layout(vals, draw(st.sampled_from(LAYOUTS)), rng)
    _DESC[id(a)] = how
    return a


# ---------------------------------------------------------------------------------------------
# strategies: perturbed scalar and sequence arguments
# ---------------------------------------------------------------------------------------------

BIG_INTS = [2**31, 2**31 - 1, 2**32, 2**36, 2**62, 2**62 - 2, 2**63 - 1, 2**63, 2**64, 10**30, 10**400,
            -2**63, -2**31, -1, -2, 0]
NP_INTS = [np.int64(2), np.int32(1), np.int8(-1), np.uint8(3), np.uint64(2**63), np.int64(2**62), np.intp(0),
           np.int16(3)]
JUNK = [0.5, 1.0, 2.0, math.inf, -math.inf, math.nan, True, False, None, "2", "", "same", "VALID", b"valid", (),
        [], [[]], ((1, 2),), ((1, 2, 3),), (1, (2, 3)), object(), 1j, np.float64(2.0), np.float32(0.5),
        np.bool_(True), np.array(2), np.array([2, 2]), np.array([]), np.array([1.5, 2.0]), np.array([[1, 2]]),
        Fraction(3, 2), Decimal("2"), {2: 2}, {2}, range(2), 1e300, -0.0]

wild_scalar = st.sampled_from(BIG_INTS + NP_INTS + JUNK).map(copy.deepcopy)


def wild_seq(n):
    elem = st.one_of(st.integers(-2, 8), wild_scalar)
    return st.one_of(
        st.lists(elem, min_size=0, max_size=max(n, 1) + 2).map(tuple),
        st.lists(elem, min_size=n, max_size=n),
        st.lists(st.sampled_from(BIG_INTS), min_size=n, max_size=n).map(tuple),
        st.lists(st.tuples(elem, elem), min_size=0, max_size=n + 1).map(tuple),
    )


def wild(n=1):
    return st.one_of(wild_scalar, wild_seq(n))


class Fuzz:
    """Draws one example's arguments: plausible values, each replaced by a wild one with the
    example's perturbation rate (0 for some examples, so that deep paths run with good input)."""

    def __init__(self, data):
        self.data = data
        self.rate = data.draw(st.sampled_from([0, 0, 5, 10, 20, 40]), label="perturbation %")

    def draw(self, strategy, label=None):
        return self.data.draw(strategy, label=label)

    def bad(self) -> bool:
        return self.rate > 0 and self.data.draw(st.integers(0, 99)) < self.rate

    def pick(self, good, bad=None, n=1):
        """``good`` (a value), or a draw from ``bad`` (default: wild values) at the perturbation rate."""
        if self.bad():
            return self.draw(bad if bad is not None else wild(n))
        return good

    def coin(self, p=0.5) -> bool:
        return self.draw(st.integers(0, 999)) < p * 1000

    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def array(self, shape=None, dtype=None, **kw):
        """A real array (perturbed: an odd dtype or another shape)."""
        if self.bad():
            if self.coin():
                return self.draw(arrays(shape=shape, odd=1.0, **kw))
            return self.draw(arrays(dtype=dtype, **{k: v for k, v in kw.items() if k not in ("shape",)}))
        return self.draw(arrays(shape=shape, dtype=dtype, odd=0.04, **kw))


def _safe(fn, *args, **kwargs):
    """A library call used only to make plausible arguments (its failures are fuzzed elsewhere)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001
        return None


def _shape_of(res):
    return getattr(res, "shape", None)


#: the functions that take ``out=`` (see _call_with_out)
TAKES_OUT = ("max_pool", "avg_pool", "max_pool_backward", "avg_pool_backward", "min_pool", "lp_pool",
             "global_max_pool", "global_avg_pool", "global_lp_pool", "adaptive_max_pool", "adaptive_avg_pool")


def _call_with_out(F, name, *args, **kw):
    """``poolkit.<name>(*args, **kw)`` under the fuzz contract and, in some examples, again with
    ``out=``: a good buffer (of the result's shape and dtype: fresh, dirty, or a strided view of a
    bigger array; never one overlapping an input, which tests/test_out.py covers) or, at the
    perturbation rate, a wrong one.  With a good buffer the call must fail as the plain call did
    or return that very buffer holding the plain call's result; with a wrong one it must raise a
    ValueError/TypeError naming ``out``; a call that raises leaves ``out`` unchanged."""
    fn = getattr(poolkit, name)
    res, err = call(f"poolkit.{name}", fn, *args, **kw)
    if not F.coin(0.3):
        return
    ref = res[0] if isinstance(res, tuple) else res
    good = None
    if isinstance(ref, np.ndarray):
        how = F.choice(["fresh", "dirty", "strided"])
        if how == "strided":
            good = np.zeros(ref.shape[:-1] + (2 * ref.shape[-1] + 1,) if ref.ndim else (), ref.dtype)
            good = good[..., 1::2] if ref.ndim else good
        else:
            good = np.empty_like(ref, order=F.choice(["C", "F"]))
            if how == "dirty" and good.dtype.kind == "f":
                good.fill(np.nan)
    wrong = [1.0, "out", [0.0], np.zeros(3), np.zeros((2, 2), np.complex64)]
    if isinstance(ref, np.ndarray):
        frozen = np.zeros_like(ref)
        frozen.flags.writeable = False
        wrong += [frozen, np.zeros(ref.shape + (1,), ref.dtype),
                  np.zeros(ref.shape, np.float32 if ref.dtype != np.float32 else np.float64)]
    out = F.pick(good, st.sampled_from(wrong)) if good is not None else F.choice(wrong)
    before = out.tobytes() if isinstance(out, np.ndarray) else None
    got, got_err = call(f"poolkit.{name}", fn, *args, out=out, **kw)
    if got_err is not None:
        if before is not None:
            assert out.tobytes() == before, f"a poolkit.{name} call that raised {got_err!r} wrote into out"
        if out is good:
            assert err is not None, f"poolkit.{name} with a good out raised {got_err!r}; without out it gave a result"
        else:
            assert err is not None or "out" in str(got_err), f"the error of a wrong out does not name it: {got_err!r}"
        return
    assert out is good, f"poolkit.{name} accepted a wrong out={_fmt(out)}"
    assert err is None, f"poolkit.{name} with out gave a result; without out it raised {err!r}"
    values = got[0] if isinstance(got, tuple) else got
    assert values is out, f"poolkit.{name} did not return the out it was given"
    np.testing.assert_array_equal(out, ref, err_msg=f"poolkit.{name} with out= differs from without")
    if isinstance(got, tuple):
        np.testing.assert_array_equal(got[1], res[1])


# ---------------------------------------------------------------------------------------------
# sliding-window geometry
# ---------------------------------------------------------------------------------------------


def _geometry(F, shape, max_axes=3):
    """kwargs kernel_size, stride, padding, dilation, ceil_mode, axes for ``shape``, perturbed."""
    nd = len(shape)
    n = F.int(1, max(1, min(nd, max_axes)))
    if nd and F.coin(0.35):
        perm = F.draw(st.permutations(range(nd)))[:n]
        axes = tuple(a - nd if F.coin(0.3) else a for a in perm)
        pooled = [shape[a] for a in perm]
        if F.coin(0.2) and n == 1:
            axes = axes[0]
    else:
        axes = None
        pooled = list(shape[nd - n:]) if n <= nd else [1] * n
    k = [F.int(1, max(1, min(L, 4) + (1 if F.coin(0.1) else 0))) for L in pooled]
    kernel = tuple(k)
    if axes is not None and len(set(k)) == 1 and F.coin(0.3):
        kernel = k[0]
    stride = F.choice([None, None, 1, 2, "tuple"])
    if stride == "tuple":
        stride = tuple(F.int(1, 3) for _ in k)
    dilation = 1 if F.coin(0.7) else tuple(F.int(1, 2) for _ in k)
    kind = F.choice(["zero", "int", "per-axis", "pairs", "string"])
    if kind == "zero":
        padding = 0
    elif kind == "int":
        padding = F.int(0, max(0, min(k) // 2))
    elif kind == "per-axis":
        padding = tuple(F.int(0, kk // 2) for kk in k)
    elif kind == "pairs":
        padding = tuple((F.int(0, kk - 1), F.int(0, kk - 1)) for kk in k)
    else:
        padding = F.choice(["valid", "same", "same_lower", "SAME"])
    ceil_mode = F.coin(0.3)
    return dict(
        kernel_size=F.pick(kernel, n=n),
        stride=F.pick(stride, n=n),
        padding=F.pick(padding, st.one_of(wild(n), st.sampled_from(
            ["full", "", "same_upper", ((2**62, 2**62),), ((2**62 - 2, 2**62),) * n, (2**63,) * n])), n=n),
        dilation=F.pick(dilation, n=n),
        ceil_mode=F.pick(ceil_mode, st.sampled_from([0, 1, None, "True", np.bool_(True), 1.0])),
        axes=F.pick(axes, st.one_of(wild(n), st.sampled_from([(0, 0), (-1, 1), (5,), (), [0, -1], 99]))),
    )


def _geo_args(g):
    return (g["kernel_size"], g["stride"], g["padding"]), dict(dilation=g["dilation"], ceil_mode=g["ceil_mode"],
                                                             axes=g["axes"])


_P_GOOD = [1, 2, 3, 0.5, 1.5, 2.0, np.float32(2.0), np.int64(3), Fraction(1, 2)]
_P_BAD = [0, 0.0, -1, -2.5, math.inf, -math.inf, math.nan, 10**400, -(10**400), 1e308, 1e-308, 5e-324, True,
          "2", None, Decimal("2"), np.float16(2), 2**63, np.array(2.0), 1j, 1e-300]


def _p(F):
    return F.pick(F.choice(_P_GOOD), st.sampled_from(_P_BAD))


# ---------------------------------------------------------------------------------------------
# fuzz groups: poolkit core
# ---------------------------------------------------------------------------------------------

SPECS = {}


def spec(name):
    def register(fn):
        SPECS[name] = fn
        return fn
    return register


def _winner_pool(F, name):
    """max_pool or min_pool (same arguments, same rules)."""
    x = F.array()
    args, kw = _geo_args(_geometry(F, x.shape))
    kw["return_indices"] = F.pick(F.coin(0.4), st.sampled_from([1, None, "yes"]))
    if name in TAKES_OUT:
        _call_with_out(F, name, x, *args, **kw)
    else:
        call(f"poolkit.{name}", getattr(poolkit, name), x, *args, **kw)


for _name in ("max_pool", "min_pool"):
    spec(_name)(functools.partial(_winner_pool, name=_name))


def _acc_dtype(F, kw: dict) -> dict:
    """Some examples ask for float32 sums (a clean error unless x is float32), or a wrong acc_dtype."""
    if F.coin(0.3):
        kw["acc_dtype"] = F.pick(F.choice(["float32", np.float32, "float64", np.dtype(np.float64)]),
                                 st.sampled_from(["float16", np.int8, "x", 3, ">f4", object(), "float128"]))
    return kw


@spec("avg_pool")
def _avg_pool(F):
    x = F.array()
    args, kw = _geo_args(_geometry(F, x.shape))
    kw["count_include_pad"] = F.pick(F.coin(), st.sampled_from([1, 0, None, "no"]))
    kw["divisor_override"] = F.pick(F.choice([None, None, 1, 3, -2, np.int64(5)]),
                                    st.sampled_from([0, 0.5, 2.0, 2**63, 10**400, -2**63, True, "2", math.inf]))
    _call_with_out(F, "avg_pool", x, *args, **_acc_dtype(F, kw))


@spec("lp_pool")
def _lp_pool(F):
    x = F.array()
    args, kw = _geo_args(_geometry(F, x.shape))
    _call_with_out(F, "lp_pool", x, _p(F), *args, **kw)


def _input_shape(F, shape):
    """``shape``, sometimes with huge sizes (no array is made), perturbed."""
    if F.coin(0.3):
        shape = tuple(F.choice([s, s, 2**31, 2**36, 2**62, 2**63 - 1]) for s in shape)
    return shape, F.pick(F.choice([shape, list(shape), np.array(shape, dtype=np.int64)]), st.one_of(
        wild(len(shape)), st.sampled_from([(-1, 4), (4.0, 4), ("4", 4), np.array([4.5, 4]), 4, None, (2**64, 4)])))


@spec("output_shape")
def _output_shape(F):
    shape = F.draw(shapes(1, 4, 0, 7))
    big, given_shape = _input_shape(F, shape)
    args, kw = _geo_args(_geometry(F, big))
    call("poolkit.output_shape", poolkit.output_shape, given_shape, *args, **kw)


@spec("resolve_padding")
def _resolve_padding(F):
    shape = F.draw(shapes(1, 4, 0, 7))
    big, given_shape = _input_shape(F, shape)
    args, kw = _geo_args(_geometry(F, big))
    call("poolkit.resolve_padding", poolkit.resolve_padding, given_shape, *args, **kw)


def _grad_for(F, shape):
    """A grad_output of ``shape`` (None: a random shape), perturbed."""
    if shape is None:
        return F.array()
    return F.array(shape=shape)


def _winner_pool_backward(F, name):
    """max_pool_backward or min_pool_backward, with the forward's indices, random ones or none."""
    x = F.array()
    args, kw = _geo_args(_geometry(F, x.shape))
    fwd = _safe(getattr(poolkit, name.removesuffix("_backward")), x, *args, return_indices=True, **kw)
    g = _grad_for(F, None if fwd is None else fwd[0].shape)
    which = F.choice(["none", "forward", "random"])
    indices = None
    if which == "forward" and fwd is not None:
        indices = fwd[1]
    elif which == "random":
        shape = g.shape if F.coin(0.8) else F.draw(shapes(0, 4))
        indices = F.draw(int_arrays(shape, -2, max(x.size, 1) + 2))
    kw["indices"] = F.pick(indices, st.sampled_from([np.array([1.5]), np.zeros((2, 2)), 3, "i"]))
    if name in TAKES_OUT:
        _call_with_out(F, name, g, x, *args, **kw)
    else:
        call(f"poolkit.{name}", getattr(poolkit, name), g, x, *args, **kw)


for _name in ("max_pool_backward", "min_pool_backward"):
    spec(_name)(functools.partial(_winner_pool_backward, name=_name))


@spec("avg_pool_backward")
def _avg_pool_backward(F):
    x = F.array()
    args, kw = _geo_args(_geometry(F, x.shape))
    g = _grad_for(F, _safe(poolkit.output_shape, x.shape, *args, **kw))
    kw["count_include_pad"] = F.pick(F.coin(), st.sampled_from([1, None]))
    kw["divisor_override"] = F.pick(F.choice([None, None, 2, -3]), st.sampled_from([0, 2.5, 10**400, True]))
    _call_with_out(F, "avg_pool_backward", g, x, *args, **kw)


@spec("lp_pool_backward")
def _lp_pool_backward(F):
    x = F.array()
    args, kw = _geo_args(_geometry(F, x.shape))
    g = _grad_for(F, _safe(poolkit.output_shape, x.shape, *args, **kw))
    call("poolkit.lp_pool_backward", poolkit.lp_pool_backward, g, x, _p(F), *args, **kw)


@spec("max_unpool")
def _max_unpool(F):
    v = F.array(min_dims=1, max_side=5)
    nd = v.ndim
    n = F.int(1, max(1, min(nd, 3)))
    sizes = tuple(F.int(1, 8) for _ in range(n))
    axes = None
    if F.coin(0.3) and nd:
        axes = tuple(F.draw(st.permutations(range(nd)))[:n])
    total = math.prod(sizes)
    idx = F.draw(int_arrays(v.shape, -1 if F.coin(0.1) else 0, total + (2 if F.coin(0.1) else 0)))
    idx = F.pick(idx, st.one_of(arrays(), st.sampled_from([None, 3, [0, 1]])))
    out = F.pick(sizes if F.coin(0.8) else (sizes[0] if n == 1 and axes is not None else sizes), st.one_of(
        wild(n), st.sampled_from([(), (2**36,), (2**31,) * n, (2**62,) * n, (0,) * n])), n=n)
    call("poolkit.max_unpool", poolkit.max_unpool, v, idx, out, axes=F.pick(axes, n=n))


# ---------------------------------------------------------------------------------------------
# fuzz groups: fixed-length family
# ---------------------------------------------------------------------------------------------


def _fixed_axes(F, nd, n=None):
    """None (channels-first default) or explicit pooled axes, perturbed."""
    if nd and F.coin(0.4):
        k = n or F.int(1, nd)
        ax = tuple(F.draw(st.permutations(range(nd)))[:k])
        ax = tuple(a - nd if F.coin(0.2) else a for a in ax)
        return F.pick(ax[0] if len(ax) == 1 and F.coin(0.3) else ax, n=k)
    return F.pick(None, n=n or 2)


def _keepdims(F):
    return F.pick(F.coin(), st.sampled_from([1, 0, None, "yes"]))


def _global_out_shape(shape, axes, keepdims):
    nd = len(shape)
    try:
        ax = tuple(range(2, nd)) if axes is None else tuple(sorted(a % nd for a in np.atleast_1d(axes).tolist()))
    except Exception:  # noqa: BLE001
        return None
    if keepdims:
        return tuple(1 if i in ax else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in ax)


def _global(F, name, with_p, backward):
    x = F.array(min_dims=1, max_dims=5, max_side=5)
    axes = _fixed_axes(F, x.ndim)
    keep = _keepdims(F)
    p_args = (_p(F),) if with_p else ()
    fn = getattr(poolkit, name + ("_backward" if backward else ""))
    if not backward:
        kw = _acc_dtype(F, {}) if name == "global_avg_pool" else {}
        _call_with_out(F, name, x, *p_args, axes=axes, keepdims=keep, **kw)
        return
    shape = _global_out_shape(x.shape, axes, keep is True)
    g = _grad_for(F, shape)
    call(f"poolkit.{fn.__name__}", fn, g, x, *p_args, axes=axes, keepdims=keep)


for _name, _p_arg in (("global_max_pool", False), ("global_avg_pool", False), ("global_lp_pool", True)):
    for _bw in (False, True):
        SPECS[_name + ("_backward" if _bw else "")] = (
            lambda F, _n=_name, _w=_p_arg, _b=_bw: _global(F, _n, _w, _b))


def _adaptive_size(F, n):
    if F.coin(0.3):
        size = F.int(1, 6)
    else:
        size = tuple(None if F.coin(0.1) else F.int(1, 6) for _ in range(n))
    return F.pick(size, st.one_of(wild(n), st.sampled_from([(0,) * n, (2**20,) * n, (2**31,) * n, 10**30, ()])), n=n)


def _adaptive(F, mode, backward):
    x = F.array(min_dims=1, max_dims=5, max_side=6)
    nd = x.ndim
    n = F.int(1, max(1, min(3, nd)))
    axes = None if F.coin(0.5) else _fixed_axes(F, nd, n)
    size = _adaptive_size(F, n)
    fwd = getattr(poolkit, f"adaptive_{mode}_pool")
    if not backward:
        kw = dict(axes=axes)
        if mode == "max":
            kw["return_indices"] = F.pick(F.coin(0.4), st.sampled_from([1, None]))
        else:
            _acc_dtype(F, kw)
        _call_with_out(F, f"adaptive_{mode}_pool", x, size, **kw)
        return
    res = _safe(fwd, x, size, axes=axes, **({"return_indices": True} if mode == "max" else {}))
    out_shape = None if res is None else (res[0].shape if mode == "max" else res.shape)
    g = _grad_for(F, out_shape)
    kw = dict(axes=axes)
    if mode == "max":
        which = F.choice(["none", "forward", "random"])
        if which == "forward" and res is not None:
            kw["indices"] = res[1]
        elif which == "random":
            kw["indices"] = F.draw(int_arrays(g.shape, -1, max(x.size, 1) + 1))
    bw = getattr(poolkit, f"adaptive_{mode}_pool_backward")
    call(bw.__name__, bw, g, x, size, **kw)


for _mode in ("max", "avg"):
    SPECS[f"adaptive_{_mode}_pool"] = lambda F, _m=_mode: _adaptive(F, _m, False)
    SPECS[f"adaptive_{_mode}_pool_backward"] = lambda F, _m=_mode: _adaptive(F, _m, True)


def _spp(F, backward):
    x = F.array(min_dims=2, max_dims=5, max_side=6)
    levels = F.choice([(1, 2, 4), (1,), 2, (1, 2), (3, 1)])
    levels = F.pick(levels, st.one_of(wild(2), st.sampled_from([(), (0,), (1, 2**20), (2**31,), (1.0,), [1, None]])))
    mode = F.pick(F.choice(["max", "avg", "AVG"]), st.sampled_from(["mean", "", None, 1, b"max"]))
    axes = None if F.coin(0.6) else _fixed_axes(F, x.ndim)
    if not backward:
        call("poolkit.spatial_pyramid_pool", poolkit.spatial_pyramid_pool, x, levels, mode=mode, axes=axes)
        return
    res = _safe(poolkit.spatial_pyramid_pool, x, levels, mode=mode, axes=axes)
    g = _grad_for(F, _shape_of(res))
    call("poolkit.spatial_pyramid_pool_backward", poolkit.spatial_pyramid_pool_backward, g, x, levels, mode=mode,
         axes=axes)


SPECS["spatial_pyramid_pool"] = lambda F: _spp(F, False)
SPECS["spatial_pyramid_pool_backward"] = lambda F: _spp(F, True)


def _masked(F, backward):
    x = F.array(min_dims=2, max_dims=4, max_side=6)
    nd = x.ndim
    axis = F.int(1, max(1, nd - 1)) if nd >= 2 else 1
    if F.coin(0.2):
        axis -= nd
    axis = F.pick(axis, st.sampled_from([0, 99, -99, 1.0, None, True, np.int64(1), 2**63]))
    n = x.shape[0] if nd else 0
    t = x.shape[axis] if nd >= 2 and isinstance(axis, int) and -nd <= axis < nd else 1
    mask = lengths = None
    if F.coin(0.5):
        mdtype = F.choice([np.bool_, np.bool_, np.int64, np.uint8, np.int8])
        mask = F.draw(int_arrays((n, t), 0, 2, dtype=np.int64)).astype(mdtype)
        _DESC[id(mask)] = "C"
        if F.coin(0.1):
            mask = F.draw(arrays())
    else:
        lengths = F.draw(int_arrays((n,), 0, t + 1))
        if F.coin(0.1):
            lengths = F.draw(int_arrays((n,), -1, t + 3))
    if F.coin(0.05):
        mask = F.draw(int_arrays((n, t), 0, 2, dtype=np.int64)).astype(bool)
        lengths = F.draw(int_arrays((n,), 0, t + 1))
    elif F.coin(0.05):
        mask = lengths = None
    mode = F.pick(F.choice(["max", "mean", "sum", "min", "MEAN"]), st.sampled_from(["avg", "", None, 0]))
    fill = F.pick(F.choice([0.0, 0, -1, 1.5, np.nan, np.inf, -7]),
                  st.sampled_from([300, -129, 1e300, 10**400, 2**64, "0", None, True, 1j, Decimal(1)]))
    kw = dict(lengths=lengths, mode=mode, axis=axis, fill=fill)
    if not backward:
        call("poolkit.masked_pool", poolkit.masked_pool, x, mask, **kw)
        return
    res = _safe(poolkit.masked_pool, x, mask, **kw)
    g = _grad_for(F, _shape_of(res))
    call("poolkit.masked_pool_backward", poolkit.masked_pool_backward, g, x, mask, **kw)


SPECS["masked_pool"] = lambda F: _masked(F, False)
SPECS["masked_pool_backward"] = lambda F: _masked(F, True)


def _fractional_args(F, x):
    """kernel_size and the keyword arguments of a fractional max pooling call on ``x``, perturbed."""
    nd = x.ndim
    n = F.int(1, max(1, min(3, nd - 1)))
    if nd and F.coin(0.3):
        perm = tuple(F.draw(st.permutations(range(nd)))[:n])
        axes, pooled = perm, [x.shape[a] for a in perm]
        batch = tuple(s for i, s in enumerate(x.shape) if i not in perm)
    else:
        n = min(n, nd) if nd else 1
        axes, pooled = None, (list(x.shape[nd - n:]) if nd else [1])
        batch = tuple(x.shape[:nd - n])
    n = len(pooled)
    k = tuple(F.int(1, max(1, min(3, L))) for L in pooled)
    kw = {}
    if F.coin(0.6):
        kw["output_size"] = F.pick(tuple(F.int(1, max(1, L - kk + 1)) for L, kk in zip(pooled, k)), n=n)
    else:
        kw["output_ratio"] = F.pick(F.choice([0.5, 0.7, (0.5,) * n, 0.99]), st.sampled_from(
            [math.inf, math.nan, 0.0, 1.0, -0.5, 1e-300, 10**400, "0.5", True, (math.inf,) * n, ()]))
    if F.coin(0.05):
        kw["output_size"], kw["output_ratio"] = (1,) * n, 0.5
    if F.coin(0.65):
        rng = np.random.default_rng(F.int(0, 100))
        samples = rng.random(batch + (n,)).astype(F.choice([np.float64, np.float32, np.float16, ">f8"]))
        if F.coin(0.1):
            samples = samples * 2 - 0.5
        _DESC[id(samples)] = "C"
        kw["random_samples"] = F.pick(samples, st.one_of(arrays(), st.sampled_from([0.5, "u"])))
    else:
        kw["rng"] = F.pick(np.random.default_rng(F.int(0, 100)), st.sampled_from([0, "seed", np.random.RandomState(0)]))
    kw["axes"] = axes
    kernel = k[0] if n == 1 and axes is not None and F.coin(0.2) else k
    return F.pick(kernel, n=n), kw


def _fractional(F, backward):
    x = F.array(min_dims=1, max_dims=5, max_side=7)
    k, kw = _fractional_args(F, x)
    if not backward:
        kw["return_indices"] = F.pick(F.coin(0.4), st.sampled_from([1, None]))
        call("poolkit.fractional_max_pool", poolkit.fractional_max_pool, x, k, **kw)
        return
    res = _safe(poolkit.fractional_max_pool, x, k, return_indices=True, **kw)
    g = _grad_for(F, None if res is None else res[0].shape)
    if res is not None and F.coin(0.4):
        kw["indices"] = res[1]
        if F.coin(0.5):
            kw.pop("random_samples", None)
            kw.pop("rng", None)
    elif F.coin(0.05):
        kw.pop("random_samples", None)
        kw.pop("rng", None)
    call("poolkit.fractional_max_pool_backward", poolkit.fractional_max_pool_backward, g, x, k, **kw)


SPECS["fractional_max_pool"] = lambda F: _fractional(F, False)
SPECS["fractional_max_pool_backward"] = lambda F: _fractional(F, True)

_SCALE_GOOD = [1.0, 0.5, 0.25, 2.0, 1 / 16, 1, np.float32(0.5)]
_SCALE_BAD = [0, 0.0, -1.0, math.inf, math.nan, 10**400, 1e300, 1e-300, 2**63, "1", None, True, np.array(1.0),
              Decimal("0.5")]
_COORD_BAD = [np.nan, np.inf, -np.inf, 1e300, 2.0**31, -2.0**40, 1e6, 50.0, -50.0]


def _feature_map(F):
    shape = (F.int(0, 2) if F.coin(0.1) else F.int(1, 2), F.int(1, 3), F.int(1, 6), F.int(1, 6))
    if F.coin(0.1):
        shape = F.draw(shapes(0, 5, 0, 5))
    return F.array(shape=shape)


def _rois(F, x, cols):
    n = x.shape[0] if x.ndim else 1
    h = x.shape[2] if x.ndim > 2 else 4
    w = x.shape[3] if x.ndim > 3 else 4
    k = F.int(0, 3)
    rng = np.random.default_rng(F.int(0, 2**32 - 1))
    x1 = rng.uniform(-2, w + 1, k)
    y1 = rng.uniform(-2, h + 1, k)
    x2 = x1 + rng.uniform(-1, w + 2, k)
    y2 = y1 + rng.uniform(-1, h + 2, k)
    coords = np.stack([x1, y1, x2, y2], axis=1)
    if F.coin(0.3):
        coords = np.round(coords)
    if F.bad() and k:
        coords.flat[F.int(0, coords.size - 1)] = F.choice(_COORD_BAD)
    if cols == 5:
        batch = rng.integers(0, max(n, 1), k).astype(np.float64)
        if F.bad() and k:
            batch[0] = F.choice([-1, n, 0.5, np.nan, 2**63])
        coords = np.concatenate([batch[:, None], coords], axis=1)
    dtype = F.choice([np.float64, np.float32, np.float16, ">f8", np.int64])
    with np.errstate(all="ignore"):
        r = coords.astype(dtype)
    r, how = _layout(r, F.choice(LAYOUTS), rng)
    _DESC[id(r)] = how
    return F.pick(r, st.one_of(arrays(), st.sampled_from([None, [[0, 0, 0, 1, 1]]])))


def _output_size2(F):
    return F.pick(F.choice([1, 2, 3, (2, 3), (1, 1), [2, 2], np.int64(2)]),
                  st.one_of(wild(2), st.sampled_from([(2**31, 2**31), (0, 1), (2, 2, 2), 2**20])), n=2)


def _roi_pool(F, backward):
    x = _feature_map(F)
    rois = _rois(F, x, 5)
    size = _output_size2(F)
    scale = F.pick(F.choice(_SCALE_GOOD), st.sampled_from(_SCALE_BAD))
    if not backward:
        call("poolkit.roi_pool", poolkit.roi_pool, x, rois, size, scale)
        return
    g = _grad_for(F, _shape_of(_safe(poolkit.roi_pool, x, rois, size, scale)))
    call("poolkit.roi_pool_backward", poolkit.roi_pool_backward, g, x, rois, size, scale)


def _roi_align(F, backward):
    x = _feature_map(F)
    rois = _rois(F, x, 4)
    k = rois.shape[0] if isinstance(rois, np.ndarray) and rois.ndim else 1
    n = x.shape[0] if x.ndim else 1
    bi = F.draw(int_arrays((k,), 0, max(n, 1)))
    bi = F.pick(bi, st.one_of(int_arrays((k,), -1, n + 2), arrays(), st.sampled_from([None, [0], 0])))
    size = _output_size2(F)
    kw = dict(spatial_scale=F.pick(F.choice(_SCALE_GOOD), st.sampled_from(_SCALE_BAD)),
              sampling_ratio=F.pick(F.choice([0, 0, 1, 2, 3]), st.sampled_from(
                  [-1, 2**15, 2**16 + 1, 2**31, 2**63, 10**400, 1.5, 2.0, None, True, "2"])),
              mode=F.pick(F.choice(["avg", "max"]), st.sampled_from(["mean", "AVG", None, b"avg"])),
              aligned=F.pick(F.coin(), st.sampled_from([1, 0, None, "half_pixel"])))
    if not backward:
        call("poolkit.roi_align", poolkit.roi_align, x, rois, bi, size, **kw)
        return
    g = _grad_for(F, _shape_of(_safe(poolkit.roi_align, x, rois, bi, size, **kw)))
    call("poolkit.roi_align_backward", poolkit.roi_align_backward, g, x, rois, bi, size, **kw)


SPECS["roi_pool"] = lambda F: _roi_pool(F, False)
SPECS["roi_pool_backward"] = lambda F: _roi_pool(F, True)
SPECS["roi_align"] = lambda F: _roi_align(F, False)
SPECS["roi_align_backward"] = lambda F: _roi_align(F, True)


@spec("num_threads")
def _num_threads(F):
    before = poolkit.get_num_threads()
    try:
        n, _ = call("poolkit.get_num_threads", poolkit.get_num_threads)
        assert isinstance(n, int) and n >= 1, n
        value = F.pick(F.int(1, 4), st.sampled_from([0, -1, 2**63, 10**400, 1.5, 2.0, True, None, "2", np.int64(2)]))
        _, err = call("poolkit.set_num_threads", poolkit.set_num_threads, value)
        if err is None:
            assert poolkit.get_num_threads() >= 1
        x = F.array(max_side=6)
        args, kw = _geo_args(_geometry(F, x.shape))
        call("poolkit.max_pool", poolkit.max_pool, x, *args, **kw)
    finally:
        poolkit.set_num_threads(before)


@spec("result_cache")
def _result_cache(F):
    before = poolkit.get_result_cache()
    try:
        n, _ = call("poolkit.get_result_cache", poolkit.get_result_cache)
        assert isinstance(n, int) and n >= 0, n
        value = F.pick(F.int(0, 1 << 31), st.sampled_from([-1, 2**63, 10**400, 1.5, 2.0, True, None, "2",
                                                          np.int64(1 << 20)]))
        _, err = call("poolkit.set_result_cache", poolkit.set_result_cache, value)
        if err is None:
            assert poolkit.get_result_cache() == int(value)
        x = F.array(max_side=6)
        args, kw = _geo_args(_geometry(F, x.shape))
        call("poolkit.max_pool", poolkit.max_pool, x, *args, **kw)
    finally:
        poolkit.set_result_cache(before)


# ---------------------------------------------------------------------------------------------
# min and mode pooling, explain, pyramid
# ---------------------------------------------------------------------------------------------


@spec("mode_pool")
def _mode_pool(F):
    x = F.array()
    args, kw = _geo_args(_geometry(F, x.shape))
    call("poolkit.mode_pool", poolkit.mode_pool, x, *args, **kw)


@spec("explain")
def _explain(F):
    x = F.array(shape=F.choice([(F.int(1, 6),), (F.int(1, 5), F.int(1, 5))]), max_side=6)
    args, kw = _geo_args(_geometry(F, x.shape, max_axes=x.ndim))
    kw.pop("axes")
    op = F.pick(F.choice(["max", "avg", "lp"]), st.sampled_from(["min", "", None, 3, "MAX"]))
    kw["count_include_pad"] = F.pick(F.coin(), st.sampled_from([1, None, "no"]))
    kw["p"] = _p(F)
    kw["backward"] = F.pick(F.coin(0.3), st.sampled_from([1, None, "yes"]))
    res, err = call("poolkit.explain", poolkit.explain, x, op, *args, **kw)
    if err is None:
        text = call("Explanation.__str__", str, res)[0]
        assert isinstance(text, str) and text


_PYRAMID_CLIENT: list = []


def _pyramid_client():
    """One in-process Dask cluster for every pyramid example (started on first use)."""
    if not _PYRAMID_CLIENT:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                               silence_logs=50)
        _PYRAMID_CLIENT.extend([Client(cluster, set_as_default=False), cluster])
    return _PYRAMID_CLIENT[0]


@pytest.fixture(scope="module", autouse=True)
def _close_pyramid_client():
    yield
    for thing in _PYRAMID_CLIENT:
        thing.close()
    _PYRAMID_CLIENT.clear()


@spec("pyramid")
def _pyramid(F):
    """Arguments of pyramid() on a small .npy (a real run on a shared in-process cluster)."""
    tmp = Path(tempfile.mkdtemp(prefix="poolkit-fuzz-pyramid-"))
    try:
        x = F.draw(arrays(shape=F.choice([(F.int(1, 9), F.int(1, 9)), (F.int(1, 4), F.int(1, 6), F.int(1, 6))]),
                          dtype=F.choice([np.uint8, np.uint16, np.float32, np.int32, np.bool_])))
        np.save(tmp / "in.npy", x)
        axes = {2: "yx", 3: F.choice(["zyx", "cyx"])}[x.ndim]
        kw = dict(
            method=F.pick(F.choice(["mean", "max", "min", "mode"]), st.sampled_from(["median", "", None, 2, "MEAN"])),
            factor=F.pick(F.choice([2, 3, "2", "1,2,2"[-2 * x.ndim + 1:], (1,) + (2,) * (x.ndim - 1)]),
                          st.sampled_from([0, -2, 1.5, "a", (2,) * 7, 10**400, True, "", None])),
            levels=F.pick(F.choice([None, 1, 2, 3]), st.sampled_from([0, -1, 2.5, "3", 10**400, True])),
            axes=F.pick(F.choice([axes, None]), st.sampled_from(["xy", "qyx", "yy", "tczyx", 3, ""])),
            chunks=F.pick(F.choice([None, 4, (2,) * x.ndim]), st.sampled_from([0, -4, "x", (1, 2, 3, 4, 5), 2.5])),
            overwrite=F.pick(False, st.sampled_from([1, None, "yes"])),
        )
        res, err = call("poolkit.pyramid", poolkit.pyramid, str(tmp / "in.npy"), str(tmp / "out.zarr"),
                        scheduler=_pyramid_client(), **kw)
        if err is None:
            assert res is not None and (tmp / "out.zarr").is_dir()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_WARMUP_DTYPES = ["float64", "float32", np.int8, "uint8", np.bool_, "float16", ">f8", None]


@spec("warmup")
def _warmup(F):
    """warmup compiles every kernel for its dtypes: a few common ones, so that only the first run pays."""
    dtypes = [F.choice(_WARMUP_DTYPES) for _ in range(F.int(0, 2))]
    form = F.choice(["list", "tuple", "generator"])
    dtypes = tuple(dtypes) if form == "tuple" else (d for d in dtypes) if form == "generator" else dtypes
    dtypes = F.pick(dtypes, st.sampled_from(
        ["float32", "f", None, 3, [np.longdouble], ["complex64"], [object], ["M8[s]"], ["float99"], [[("a", "f8")]],
         np.array(["float32"]), [b"float32"], ["U3"], [np.dtype(">i8")], [np.float64(1.0)], [2**63]]))
    seen = []
    progress = F.pick(F.choice([None, lambda done, total, label: seen.append(done)]),
                      st.sampled_from([3, "print", np.array([1])]))
    n, err = call("poolkit.warmup", poolkit.warmup, dtypes, progress=progress)
    if err is None:
        assert isinstance(n, int) and n >= 0, n


_THREADED = ["max_pool", "avg_pool", "lp_pool", "max_pool_backward", "avg_pool_backward", "max_unpool",
             "adaptive_max_pool", "adaptive_avg_pool_backward", "masked_pool", "masked_pool_backward",
             "roi_pool", "roi_pool_backward", "roi_align", "roi_align_backward", "spatial_pyramid_pool"]


@spec("threaded")
def _threaded(F):
    """Tiny calls split into chunks across 3 threads (the pool path normally needs >= 64K elements)."""
    engine = poolkit._engine
    if not hasattr(engine, "SERIAL_BELOW"):
        pytest.skip("poolkit._engine.SERIAL_BELOW is gone: update the threaded fuzz group")
    before_threads, before_serial = poolkit.get_num_threads(), engine.SERIAL_BELOW
    try:
        poolkit.set_num_threads(F.choice([2, 3, 5]))
        engine.SERIAL_BELOW = 1
        SPECS[F.choice(_THREADED)](F)
    finally:
        engine.SERIAL_BELOW = before_serial
        poolkit.set_num_threads(before_threads)


# ---------------------------------------------------------------------------------------------
# fuzz groups: compat.torch
# ---------------------------------------------------------------------------------------------


def _torch_input(F, n, max_side=6):
    nd = F.choice([n + 1, n + 2, n + 2])
    shape = tuple(F.int(1, 3) for _ in range(nd - n)) + tuple(F.int(1, max_side) for _ in range(n))
    if F.coin(0.1):
        shape = (0,) + shape[1:]
    if F.bad():
        shape = F.draw(shapes(0, 5, 0, 5))
    return F.array(shape=shape)


def _torch_ints(F, good, n):
    v = good
    if isinstance(good, tuple) and F.coin(0.3):
        v = list(good)
    if isinstance(good, tuple) and len(set(good)) == 1 and F.coin(0.4):
        v = good[0]
    return F.pick(v, n=n)


def _torch_geometry(F, x, n):
    spatial = x.shape[-n:] if x.ndim >= n else (4,) * n
    k = tuple(F.int(1, max(1, min(4, L))) for L in spatial)
    s = F.choice([None, None, "k", (1,) * n, tuple(F.int(1, 3) for _ in range(n))])
    s = k if s == "k" else s
    p = tuple(F.int(0, kk // 2) for kk in k)
    return _torch_ints(F, k, n), F.pick(s, n=n), _torch_ints(F, p, n)


@spec("torch.max_pool")
def _torch_max(F):
    n = F.int(1, 3)
    x = _torch_input(F, n)
    k, s, p = _torch_geometry(F, x, n)
    d = _torch_ints(F, (1,) * n if F.coin(0.7) else tuple(F.int(1, 2) for _ in range(n)), n)
    fn = getattr(ctorch, f"max_pool{n}d")
    call(f"compat.torch.{fn.__name__}", fn, x, k, s, p, d, F.pick(F.coin(0.3), st.sampled_from([1, None])),
         F.pick(F.coin(0.4), st.sampled_from([1, None])))


@spec("torch.avg_pool")
def _torch_avg(F):
    n = F.int(1, 3)
    x = _torch_input(F, n)
    k, s, p = _torch_geometry(F, x, n)
    fn = getattr(ctorch, f"avg_pool{n}d")
    args = [x, k, s, p, F.pick(F.coin(0.3), st.sampled_from([1, None])), F.pick(F.coin(), st.sampled_from([1, None]))]
    if n > 1:
        args.append(F.pick(F.choice([None, None, 1, 3, -2]), st.sampled_from([0, 2.5, 2**63, 10**400, True])))
    call(f"compat.torch.{fn.__name__}", fn, *args)


@spec("torch.lp_pool")
def _torch_lp(F):
    n = F.int(1, 3)
    x = _torch_input(F, n)
    k, s, _ = _torch_geometry(F, x, n)
    p = F.pick(F.choice([1, 2, 3, 0.5, 2.0, math.inf, -math.inf, 1.5]), st.sampled_from(_P_BAD))
    fn = getattr(ctorch, f"lp_pool{n}d")
    call(f"compat.torch.{fn.__name__}", fn, x, p, k, s, F.pick(F.coin(0.3), st.sampled_from([1, None])))


def _torch_adaptive(F, mode):
    n = F.int(1, 3)
    x = _torch_input(F, n)
    size = F.choice([F.int(0, 5), tuple(F.int(1, 5) if F.coin(0.9) else None for _ in range(n)), (F.int(1, 4),)])
    size = F.pick(size, st.one_of(wild(n), st.sampled_from([(2**31,) * n, (-1,) * n, 10**30])), n=n)
    fn = getattr(ctorch, f"adaptive_{mode}_pool{n}d")
    args = [x, size] + ([F.pick(F.coin(0.4), st.sampled_from([1, None]))] if mode == "max" else [])
    call(f"compat.torch.{fn.__name__}", fn, *args)


SPECS["torch.adaptive_max_pool"] = lambda F: _torch_adaptive(F, "max")
SPECS["torch.adaptive_avg_pool"] = lambda F: _torch_adaptive(F, "avg")


@spec("torch.max_unpool")
def _torch_unpool(F):
    n = F.int(1, 3)
    x = _torch_input(F, n + 0, max_side=7)
    k, s, p = _torch_geometry(F, x, n)
    res = _safe(getattr(ctorch, f"max_pool{n}d"), x, k, s, p, return_indices=True)
    if res is not None and F.coin(0.8):
        vals, idx = res
    else:
        vals = F.array(shape=x.shape)
        idx = F.draw(int_arrays(vals.shape, -1, 30))
    if F.coin(0.2):
        idx = F.draw(int_arrays(vals.shape, -2, max(x.size, 1) + 3))
    out = None
    if F.coin(0.4):
        out = list(x.shape[-n:]) if x.ndim >= n else [1] * n
        if F.coin(0.3):
            out = list(x.shape[:2]) + out
        out = F.pick(out, st.sampled_from([[math.inf] * n, [2**63] * n, [-1] * n, [], ["4"] * n, np.array([4.5] * n)]))
    fn = getattr(ctorch, f"max_unpool{n}d")
    call(f"compat.torch.{fn.__name__}", fn, vals, F.pick(idx, st.one_of(arrays(), st.just(None))), k, s, p, out)


@spec("torch.fractional_max_pool")
def _torch_fractional(F):
    n = F.int(2, 3)
    x = _torch_input(F, n, max_side=7)
    spatial = x.shape[-n:] if x.ndim >= n else (4,) * n
    k = tuple(F.int(1, max(1, min(3, L))) for L in spatial)
    kw = {}
    if F.coin(0.6):
        kw["output_size"] = _torch_ints(F, tuple(F.int(1, max(1, L - kk)) for L, kk in zip(spatial, k)), n)
    else:
        kw["output_ratio"] = F.pick(F.choice([0.5, 0.7, (0.5,) * n, (0.6,)]), st.sampled_from(
            [math.inf, math.nan, -math.inf, 10**400, 0.0, 2.0, "0.5", (math.inf,) * n, (0.5,) * (n + 1), None]))
    batch = x.shape[:2] if x.ndim == n + 2 else (1,) + x.shape[:1]
    samples = np.random.default_rng(F.int(0, 99)).random(tuple(batch) + (n,))
    if F.coin(0.2):
        samples = samples.astype(F.choice([np.float32, ">f8", np.float16]))
    _DESC[id(samples)] = "C"
    kw["_random_samples"] = F.pick(samples, st.one_of(arrays(), st.sampled_from([None, 0.5])))
    kw["return_indices"] = F.pick(F.coin(0.4), st.sampled_from([1, None]))
    fn = getattr(ctorch, f"fractional_max_pool{n}d")
    call(f"compat.torch.{fn.__name__}", fn, x, _torch_ints(F, k, n), **kw)


# ---------------------------------------------------------------------------------------------
# fuzz groups: compat.tf
# ---------------------------------------------------------------------------------------------


def _tf_input(F, n, channels_first=False):
    shape = (F.int(1, 2),) + tuple(F.int(1, 6) for _ in range(n)) + (F.int(1, 3),)
    if channels_first:
        shape = (shape[0], shape[-1]) + shape[1:-1]
    if F.coin(0.05):
        shape = (0,) + shape[1:]
    if F.bad():
        shape = F.draw(shapes(0, 6, 0, 5))
    return F.array(shape=shape)


def _tf_window(F, n, spatial, channel_index):
    k = [F.int(1, max(1, min(4, L))) for L in spatial]
    s = [F.int(1, 3) for _ in range(n)]
    form = F.choice(["int", "n", "full"])
    if form == "int":
        ks, ss = k[0], s[0]
    elif form == "n":
        ks, ss = list(k), tuple(s)
    else:
        ks = [1] + k + [1] if channel_index != 1 else [1, 1] + k
        ss = [1] + s + [1] if channel_index != 1 else [1, 1] + s
    return F.pick(ks, n=n), F.pick(ss, n=n), k


def _tf_padding(F, n, k, explicit):
    pad = F.choice(["SAME", "VALID"] + (["explicit"] if explicit else []))
    if pad == "explicit":
        pad = [[0, 0]] + [[F.int(0, kk - 1), F.int(0, kk - 1)] for kk in k] + [[0, 0]]
    return F.pick(pad, st.one_of(wild(n), st.sampled_from(["same", "EXPLICIT", [[0, 0]] * (n + 2), [[-1, 0]] * (n + 2),
                                                          [[0, 0], [2**63, 0], [0, 0]], None])))


def _tf_pool(F, kind):
    which = F.choice(["", "1d", "2d", "3d"])
    n = F.int(1, 3) if which == "" else int(which[0])
    fmt_cf = F.coin(0.25)
    formats = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}[n]
    fmt = formats[1] if fmt_cf else (formats[0] if which or F.coin(0.5) else None)
    x = _tf_input(F, n, fmt_cf)
    spatial = x.shape[2:] if fmt_cf else x.shape[1:-1]
    spatial = tuple(spatial[:n]) + (4,) * max(0, n - len(spatial))
    ks, ss, k = _tf_window(F, n, spatial, 1 if fmt_cf else n + 1)
    pad = _tf_padding(F, n, k, kind == "max" and n < 3)
    fn = getattr(ctf, f"{kind}_pool{which}")
    call(f"compat.tf.{fn.__name__}", fn, x, ks, ss, pad, F.pick(fmt, st.sampled_from(["NCHW", "nhwc", "", 3])))


SPECS["tf.max_pool"] = lambda F: _tf_pool(F, "max")
SPECS["tf.avg_pool"] = lambda F: _tf_pool(F, "avg")


@spec("tf.pool")
def _tf_generic_pool(F):
    n = F.int(1, 3)
    fmt_cf = F.coin(0.25)
    x = _tf_input(F, n, fmt_cf)
    spatial = x.shape[2:] if fmt_cf else x.shape[1:-1]
    spatial = tuple(spatial[:n]) + (4,) * max(0, n - len(spatial))
    window = tuple(F.int(1, max(1, min(4, L))) for L in spatial)
    dil = None
    strides = None
    if F.coin(0.4):
        dil = tuple(F.int(1, 2) for _ in range(n))
    elif F.coin(0.5):
        strides = tuple(F.int(1, w) for w in window)
    ptype = F.pick(F.choice(["MAX", "AVG"]), st.sampled_from(["max", "MIN", None, 1]))
    pad = _tf_padding(F, n, window, ptype == "MAX" and n < 3 and dil is None)
    fmt = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}[n][1 if fmt_cf else 0]
    call("compat.tf.pool", ctf.pool, x, F.pick(window, n=n), ptype, F.pick(strides, n=n), pad,
         F.pick(fmt if F.coin(0.7) else None, st.sampled_from(["NCHW", "", 3])),
         F.pick(dil, st.one_of(wild(n), st.sampled_from([(10**30,) * n, (2**63,) * n]))))


@spec("tf.max_pool_with_argmax")
def _tf_argmax(F):
    x = _tf_input(F, 2)
    spatial = x.shape[1:3] if x.ndim >= 3 else (4, 4)
    ks, ss, k = _tf_window(F, 2, tuple(spatial) + (4,) * (2 - len(spatial)), 3)
    pad = F.pick(F.choice(["SAME", "VALID"]), st.sampled_from(["EXPLICIT", [[0, 0]] * 4, "same"]))
    call("compat.tf.max_pool_with_argmax", ctf.max_pool_with_argmax, x, ks, ss, pad,
         data_format=F.pick("NHWC", st.sampled_from(["NCHW", None])),
         output_dtype=F.pick(F.choice([np.int64, np.int32, "int64", np.dtype("int32")]),
                             st.sampled_from([np.float32, "float", None, "x", np.int16, object])),
         include_batch_in_index=F.pick(F.coin(), st.sampled_from([1, None, "no"])))


# ---------------------------------------------------------------------------------------------
# fuzz groups: compat.keras (construct, call, backward, compute_output_shape)
# ---------------------------------------------------------------------------------------------

_KERAS_DTYPES = ["float32", "float32", None, "float64", "float16", np.float64]
_KERAS_BAD_DTYPES = ["int32", "bool", "complex64", "x", 3, ">f8", "longdouble", object]


def _keras_layer_run(F, cls, ctor_args, ctor_kw, n):
    layer, _ = call(f"compat.keras.{cls.__name__}", cls, *ctor_args, **ctor_kw)
    if layer is None:
        return
    cf = getattr(layer, "data_format", "channels_last") == "channels_first"
    x = _tf_input(F, n, cf)
    mask = None
    if isinstance(layer, ckeras.GlobalAveragePooling1D) and F.coin(0.4):
        steps = x.shape[2 if cf else 1] if x.ndim == 3 else 2
        mask = F.draw(int_arrays((x.shape[0] if x.ndim else 1, steps), 0, 2, dtype=np.int64)).astype(bool)
        if F.bad():
            mask = F.draw(arrays())
    if mask is not None:
        out, _ = call(f"{cls.__name__}(...).__call__", layer, x, mask=mask)
    else:
        out, _ = call(f"{cls.__name__}(...).__call__", layer, x)
    if F.coin(0.5):
        shape = x.shape if F.coin(0.7) else (None,) + tuple(x.shape[1:])
        call(f"{cls.__name__}(...).compute_output_shape", layer.compute_output_shape,
             F.pick(shape, st.one_of(wild(n + 2), st.sampled_from([(None,) * (n + 2), ()]))))
    if out is not None and hasattr(layer, "backward"):
        g = F.array(shape=out.shape)
        call(f"{cls.__name__}(...).backward", layer.backward, g)


def _keras_common(F):
    kw = {}
    if F.coin(0.6):
        kw["data_format"] = F.pick(F.choice(["channels_last", "channels_first", None]),
                                   st.sampled_from(["NHWC", "", 1, "CHANNELS_FIRST"]))
    if F.coin(0.6):
        kw["dtype"] = F.pick(F.choice(_KERAS_DTYPES), st.sampled_from(_KERAS_BAD_DTYPES))
    return kw


@spec("keras.pooling")
def _keras_pooling(F):
    n = F.int(1, 3)
    cls = getattr(ckeras, F.choice(["MaxPooling", "AveragePooling", "MaxPool", "AvgPool"]) + f"{n}D")
    kw = _keras_common(F)
    pool = F.choice([2, 1, 3, (2,) * n, tuple(F.int(1, 3) for _ in range(n))])
    kw["pool_size"] = F.pick(pool, n=n)
    if F.coin(0.5):
        kw["strides"] = F.pick(F.choice([None, 1, 2, (1,) * n, 0]), n=n)
    if F.coin(0.5):
        kw["padding"] = F.pick(F.choice(["valid", "same", "SAME"]), st.sampled_from(["full", None, 0, b"same"]))
    _keras_layer_run(F, cls, (), kw, n)


@spec("keras.global")
def _keras_global(F):
    n = F.int(1, 3)
    cls = getattr(ckeras, F.choice(["GlobalMaxPooling", "GlobalAveragePooling", "GlobalMaxPool", "GlobalAvgPool"])
                  + f"{n}D")
    kw = _keras_common(F)
    if F.coin(0.5):
        kw["keepdims"] = F.pick(F.coin(), st.sampled_from([1, None, "yes", 2]))
    _keras_layer_run(F, cls, (), kw, n)


@spec("keras.adaptive")
def _keras_adaptive(F):
    n = F.int(1, 3)
    cls = getattr(ckeras, F.choice(["AdaptiveMaxPooling", "AdaptiveAveragePooling"]) + f"{n}D")
    kw = _keras_common(F)
    size = F.choice([F.int(1, 5), tuple(F.int(1, 5) for _ in range(n)), list(F.int(1, 4) for _ in range(n))])
    _keras_layer_run(F, cls, (F.pick(size, st.one_of(wild(n), st.sampled_from([(2**31,) * n, 2**40]))),), kw, n)


# ---------------------------------------------------------------------------------------------
# fuzz groups: compat.onnx.run
# ---------------------------------------------------------------------------------------------


def _onnx_input(F, min_n=1, max_n=3):
    n = F.int(min_n, max_n)
    shape = (F.int(1, 2), F.int(1, 3)) + tuple(F.int(1, 6) for _ in range(n))
    if F.coin(0.05):
        shape = (0,) + shape[1:]
    if F.bad():
        shape = F.draw(shapes(0, 5, 0, 5))
    return F.array(shape=shape), n


def _onnx_run(F, op, inputs, attrs, num_outputs=None):
    if F.bad():
        attrs = dict(attrs)
        attrs[F.choice(["kernel_shape", "strides", "pads", "dilations", "bogus", "p", "spatial_scale"])] = \
            F.draw(wild(2))
    if F.coin(0.05):
        inputs = list(inputs) + [None] if F.coin() else list(inputs)[:-1]
    kw = dict(attrs)
    if num_outputs is not None:
        kw["num_outputs"] = num_outputs
    call(f"compat.onnx.run[{op}]", connx.run, op, inputs, **kw)


def _onnx_pool_attrs(F, x, n, op):
    spatial = tuple(x.shape[2:2 + n]) + (4,) * max(0, n - max(0, x.ndim - 2))
    k = [F.int(1, max(1, min(4, L))) for L in spatial]
    attrs = {"kernel_shape": k}
    if F.coin(0.6):
        attrs["strides"] = [F.int(1, 3) for _ in range(n)]
    if F.coin(0.3):
        attrs["dilations"] = [F.int(1, 2) for _ in range(n)]
    if F.coin(0.4):
        attrs["pads"] = [F.int(0, kk - 1) for kk in k] * 2
    elif F.coin(0.4):
        attrs["auto_pad"] = F.choice(["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET", b"SAME_UPPER"])
    if F.coin(0.3):
        attrs["ceil_mode"] = F.choice([0, 1])
    if op == "AveragePool" and F.coin(0.5):
        attrs["count_include_pad"] = F.choice([0, 1])
    if op == "MaxPool" and F.coin(0.3):
        attrs["storage_order"] = F.choice([0, 1])
    if op == "LpPool" and F.coin(0.7):
        attrs["p"] = F.pick(F.choice([1, 2, 3, 2.0, 0.5]), st.sampled_from(_P_BAD))
    for key in list(attrs):
        attrs[key] = F.pick(attrs[key], st.one_of(wild(n), st.sampled_from(
            [[2**63] * n, [0] * n, [-1] * n, "SAME", 2, None, np.array(k), [2**62 - 2] * (2 * n)])), n=n)
    return attrs


def _onnx_sliding(F, op):
    x, n = _onnx_input(F)
    attrs = _onnx_pool_attrs(F, x, n, op)
    num = F.pick(F.choice([None, 1, 2]), st.sampled_from([0, 3, -1, 1.0])) if op == "MaxPool" else None
    _onnx_run(F, op, [x], attrs, num)


for _op in ("MaxPool", "AveragePool", "LpPool"):
    SPECS[f"onnx.{_op}"] = lambda F, _o=_op: _onnx_sliding(F, _o)


def _onnx_global(F, op):
    x, n = _onnx_input(F)
    attrs = {}
    if op == "GlobalLpPool" and F.coin(0.7):
        attrs["p"] = F.pick(F.choice([1, 2, 3, 2.0]), st.sampled_from(_P_BAD))
    _onnx_run(F, op, [x], attrs)


for _op in ("GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"):
    SPECS[f"onnx.{_op}"] = lambda F, _o=_op: _onnx_global(F, _o)


@spec("onnx.MaxUnpool")
def _onnx_unpool(F):
    x, n = _onnx_input(F, max_n=3)
    attrs = {k: v for k, v in _onnx_pool_attrs(F, x, n, "MaxPool").items() if k in ("kernel_shape", "strides")}
    attrs.setdefault("strides", attrs.get("kernel_shape"))
    res = _safe(connx.run, "MaxPool", [x], **attrs)
    if res is not None and F.coin(0.8):
        y, idx = res
    else:
        y = F.array(shape=x.shape)
        idx = F.draw(int_arrays(y.shape, -1, max(x.size, 1) + 2))
    inputs = [y, F.pick(idx, st.one_of(arrays(), st.sampled_from([None])))]
    if F.coin(0.4):
        shape = np.array([s + (F.int(0, 2) if i >= 2 else 0) for i, s in enumerate(x.shape)], dtype=np.int64)
        if F.bad():
            shape = F.choice([np.array(list(x.shape[:-1]) + [np.inf]), np.array([2**63] * x.ndim, dtype=np.uint64),
                              np.array([-1] * x.ndim), np.array([1.5] * x.ndim), np.array(list(x.shape) + [1]),
                              np.array([2**62] * x.ndim), np.array([]), np.array(["4"] * x.ndim)])
        _DESC[id(shape)] = "C"
        inputs.append(shape)
    _onnx_run(F, "MaxUnpool", inputs, attrs)


@spec("onnx.MaxRoiPool")
def _onnx_roipool(F):
    x = _feature_map(F)
    rois = _rois(F, x, 5)
    attrs = {"pooled_shape": F.pick([F.int(1, 3), F.int(1, 3)], st.one_of(wild(2), st.sampled_from([[2**31] * 2])),
                                    n=2)}
    if F.coin(0.6):
        attrs["spatial_scale"] = F.pick(F.choice(_SCALE_GOOD), st.sampled_from(_SCALE_BAD))
    _onnx_run(F, "MaxRoiPool", [x, rois], attrs)


@spec("onnx.RoiAlign")
def _onnx_roialign(F):
    x = _feature_map(F)
    rois = _rois(F, x, 4)
    k = rois.shape[0] if isinstance(rois, np.ndarray) and rois.ndim else 1
    bi = F.draw(int_arrays((k,), 0, max(x.shape[0] if x.ndim else 1, 1)))
    attrs = {}
    for key, good, bad in (
        ("output_height", F.int(1, 3), [0, -1, 2**31, 2**63, 1.5, None]),
        ("output_width", F.int(1, 3), [0, -1, 2**31, 10**400, "2"]),
        ("sampling_ratio", F.choice([0, 1, 2]), [-1, 2**15, 2**63, 10**400, 1.5]),
        ("spatial_scale", F.choice(_SCALE_GOOD), _SCALE_BAD),
        ("mode", F.choice(["avg", "max", b"avg"]), ["mean", None, 1]),
        ("coordinate_transformation_mode", F.choice(["half_pixel", "output_half_pixel"]), ["asymmetric", None, 0]),
    ):
        if F.coin(0.6):
            attrs[key] = F.pick(good, st.sampled_from(bad))
    _onnx_run(F, "RoiAlign", [x, rois, F.pick(bi, st.one_of(arrays(), st.sampled_from([None])))], attrs)


@spec("onnx.unknown")
def _onnx_unknown(F):
    x, n = _onnx_input(F)
    op = F.choice(["MaxPool", "Conv", "maxpool", "", None, 3, b"MaxPool"])
    inputs = F.choice([[x], [], [x, x], [None], x, None, "x"])
    call("compat.onnx.run", connx.run, op, inputs, **F.choice([{}, {"kernel_shape": [2] * n}, {"bogus": 1}]))


# ---------------------------------------------------------------------------------------------
# the fuzz test
# ---------------------------------------------------------------------------------------------


def _failure_key(message):
    """Failures of one kind in one function share a key (numbers and quoted text masked)."""
    first = message.splitlines()[0]
    label = re.search(r"from (\S+?)\(", message)
    first = re.sub(r"input \S+", "input <arg>", first)
    first = re.sub(r"'[^']*'", "'S'", re.sub(r"\d+", "N", first))
    return (label.group(1) if label else "?", first[:200])


#: with POOLKIT_FUZZ_COLLECT=1: group -> {failure key: message}
COLLECTED: dict = collections.defaultdict(dict)


@pytest.mark.parametrize("group", list(SPECS))
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz(group, data):
    """A result or a ValueError/TypeError, the inputs unchanged, in bounded time."""
    _DESC.clear()
    _current_group[0] = group
    try:
        SPECS[group](Fuzz(data))
    except AssertionError as e:
        EXAMPLES[group] += 1
        if not COLLECT:
            raise
        COLLECTED[group].setdefault(_failure_key(str(e)), str(e))
    else:
        EXAMPLES[group] += 1


def _collected_failures():
    """With POOLKIT_FUZZ_COLLECT=1 the fuzz groups run every example and pass; this lists each
    distinct failure they met once (by function and exception)."""
    found = [(g, msg) for g, by_key in COLLECTED.items() for msg in by_key.values()]
    if found:
        raise AssertionError(f"{len(found)} distinct fuzz failure(s):\n\n"
                             + "\n\n".join(f"[{g}] {msg}" for g, msg in found))


if COLLECT:  # a diagnostic mode: only then is there anything to report
    test_fuzz_collected_failures = _collected_failures


def _group_of(module, name):
    """The fuzz group that calls ``module.name``."""
    base = re.sub(r"[123]d$", "", name)
    if module == "poolkit":
        if name in ("get_num_threads", "set_num_threads"):
            return "num_threads"
        return "result_cache" if name in ("get_result_cache", "set_result_cache") else name
    if module == "torch":
        return f"torch.{base}"
    if module == "tf":
        return "tf.max_pool" if base == "max_pool" else "tf.avg_pool" if base == "avg_pool" else f"tf.{name}"
    if module == "keras":
        return ("keras.adaptive" if name.startswith("Adaptive") else "keras.global" if name.startswith("Global")
                else "keras.pooling")
    return f"onnx.{name}"


def test_every_public_function_is_fuzzed():
    """A public function added later must get a fuzz group (SPECS) too."""
    public = ([("poolkit", n) for n in poolkit.__all__] + [("torch", n) for n in ctorch.__all__]
              + [("tf", n) for n in ctf.__all__] + [("keras", n) for n in ckeras.__all__]
              + [("onnx", n) for n in connx.OPERATORS])
    missing = [f"{m}.{n}" for m, n in public if _group_of(m, n) not in SPECS]
    assert not missing, f"public functions without a fuzz group: {missing}"


def test_fuzz_harness_catches_what_it_must():
    """``call`` itself: it must flag each kind of failure, and let results and clean errors through."""
    group, _current_group[0] = _current_group[0], "harness self-check"
    try:
        with pytest.raises(AssertionError, match="OverflowError"):
            call("overflow", lambda v: int(float("inf")), np.zeros(3))
        with pytest.raises(AssertionError, match="IndexError"):
            call("index", lambda v: ()[0], np.zeros(3))
        with pytest.raises(AssertionError, match="values changed"):
            call("modify", lambda v: v.__setitem__(0, 1.0), np.zeros(3))
        with pytest.raises(AssertionError, match="outside the view"):
            call("write gap", lambda v: v.base.__setitem__(0, 1.0), np.zeros(7)[1::2])
        with pytest.raises(AssertionError, match="writeable"):
            call("flags", lambda v: setattr(v.flags, "writeable", False), np.zeros(3))
        with pytest.raises(AssertionError, match="modified"):
            call("list", lambda v, k: k.append(1), np.zeros(3), [2, 2])
        with pytest.raises(AssertionError, match="RuntimeWarning"):
            call("warn", lambda v: np.float32(1e300) * np.float32(1e300), np.zeros(3))
        assert call("result", lambda v: v.sum(), np.ones(3)) == (3.0, None)
        res, err = call("clean", lambda v: int("x"), np.zeros(3))
        assert res is None and isinstance(err, ValueError)
    finally:
        _current_group[0] = group
        CASES.pop("harness self-check", None)


# ---------------------------------------------------------------------------------------------
# regression cases: non-native byte order
# ---------------------------------------------------------------------------------------------

_RNG = np.random.default_rng(7)
X4 = _RNG.integers(-20, 20, (2, 3, 6, 5)).astype(np.float64)  # (N, C, H, W)
X4[0, 0, 1, 1] = 7.5
X3 = X4[:, :, :, 0]  # (N, C, L)
XL = np.moveaxis(X4, 1, -1).copy()  # NHWC
ROIS5 = np.array([[0, 0, 0, 3, 4], [1, 1, 1, 4, 5]], dtype=np.float64)
ROIS4 = ROIS5[:, 1:].copy()
BATCH = np.array([0, 1], dtype=np.int64)
SAMPLES = np.random.default_rng(3).random((2, 3, 2))


def _g(shape):
    return np.arange(math.prod(shape), dtype=np.float64).reshape(shape) / 7 - 1


def _mp_idx(x):
    return poolkit.max_pool(x, (2, 2), return_indices=True)[1]


def _keras(cls, x, *a, **k):
    layer = cls(*a, dtype=None, **k)
    out = layer(x)
    return out, layer.backward(_g(out.shape))


#: name -> (function of the arrays, the arrays).  Every kernel-backed public function is here.
BYTE_ORDER_CASES = {
    "max_pool": (lambda x: poolkit.max_pool(x, (2, 2), 2, 1, return_indices=True), [X4]),
    "max_pool_3axes": (lambda x: poolkit.max_pool(x, (2, 2, 2), 1, axes=(0, 2, 3)), [X4]),
    "avg_pool": (lambda x: poolkit.avg_pool(x, (3, 2), 1, 1, ceil_mode=True), [X4]),
    "lp_pool": (lambda x: poolkit.lp_pool(x, 3, (2, 2)), [X4]),
    "max_pool_backward": (lambda g, x: poolkit.max_pool_backward(g, x, (2, 2)), [_g((2, 3, 3, 2)), X4]),
    "max_pool_backward_indices": (lambda g, x, i: poolkit.max_pool_backward(g, x, (2, 2), indices=i),
                                  [_g((2, 3, 3, 2)), X4, _mp_idx(X4)]),
    "avg_pool_backward": (lambda g, x: poolkit.avg_pool_backward(g, x, (2, 2), padding=1), [_g((2, 3, 4, 3)), X4]),
    "lp_pool_backward": (lambda g, x: poolkit.lp_pool_backward(g, x, 2, (2, 2)), [_g((2, 3, 3, 2)), X4]),
    "max_unpool": (lambda v, i: poolkit.max_unpool(v, i, (6, 4)), [X4[:, :, ::2, 1::2].copy(),
                                                                   _mp_idx(X4[:, :, :, :4])]),
    "global_max_pool": (lambda x: poolkit.global_max_pool(x), [X4]),
    "global_avg_pool": (lambda x: poolkit.global_avg_pool(x, keepdims=True), [X4]),
    "global_lp_pool": (lambda x: poolkit.global_lp_pool(x, 2), [X4]),
    "global_max_pool_backward": (lambda g, x: poolkit.global_max_pool_backward(g, x), [_g((2, 3)), X4]),
    "global_avg_pool_backward": (lambda g, x: poolkit.global_avg_pool_backward(g, x), [_g((2, 3)), X4]),
    "global_lp_pool_backward": (lambda g, x: poolkit.global_lp_pool_backward(g, x, 3), [_g((2, 3)), X4]),
    "adaptive_max_pool": (lambda x: poolkit.adaptive_max_pool(x, (4, 3), return_indices=True), [X4]),
    "adaptive_avg_pool": (lambda x: poolkit.adaptive_avg_pool(x, (4, 3)), [X4]),
    "adaptive_max_pool_backward": (lambda g, x: poolkit.adaptive_max_pool_backward(g, x, (4, 3)),
                                   [_g((2, 3, 4, 3)), X4]),
    "adaptive_avg_pool_backward": (lambda g, x: poolkit.adaptive_avg_pool_backward(g, x, (4, 3)),
                                   [_g((2, 3, 4, 3)), X4]),
    "spatial_pyramid_pool": (lambda x: poolkit.spatial_pyramid_pool(x, (1, 2)), [X4]),
    "spatial_pyramid_pool_avg": (lambda x: poolkit.spatial_pyramid_pool(x, (1, 3), mode="avg"), [X4]),
    "spatial_pyramid_pool_backward": (lambda g, x: poolkit.spatial_pyramid_pool_backward(g, x, (1, 2)),
                                      [_g((2, 15)), X4]),
    "masked_pool": (lambda x, m: poolkit.masked_pool(x, m, mode="max", axis=2), [X4, X4[:, 0, :, 0] > 0]),
    "masked_pool_lengths": (lambda x, n: poolkit.masked_pool(x, lengths=n, mode="mean"),
                            [X3, np.array([3, 0], dtype=np.int64)]),
    "masked_pool_backward": (lambda g, x, n: poolkit.masked_pool_backward(g, x, lengths=n, mode="min"),
                             [_g((2, 6)), X3, np.array([2, 3], dtype=np.int64)]),
    "fractional_max_pool": (lambda x, u: poolkit.fractional_max_pool(x, 2, (3, 3), random_samples=u,
                                                                      return_indices=True), [X4, SAMPLES]),
    "fractional_max_pool_backward": (lambda g, x, u: poolkit.fractional_max_pool_backward(
        g, x, 2, (3, 3), random_samples=u), [_g((2, 3, 3, 3)), X4, SAMPLES]),
    "roi_pool": (lambda x, r: poolkit.roi_pool(x, r, (2, 2), 0.5), [X4, ROIS5]),
    "roi_pool_backward": (lambda g, x, r: poolkit.roi_pool_backward(g, x, r, (2, 2)), [_g((2, 3, 2, 2)), X4, ROIS5]),
    "roi_align": (lambda x, r, b: poolkit.roi_align(x, r, b, (2, 2), 0.5, 2), [X4, ROIS4, BATCH]),
    "roi_align_max": (lambda x, r, b: poolkit.roi_align(x, r, b, 2, mode="max", aligned=False), [X4, ROIS4, BATCH]),
    "roi_align_backward": (lambda g, x, r, b: poolkit.roi_align_backward(g, x, r, b, (2, 2)),
                           [_g((2, 3, 2, 2)), X4, ROIS4, BATCH]),
    "torch.max_pool1d": (lambda x: ctorch.max_pool1d(x, 2, 1, 1, return_indices=True), [X3]),
    "torch.max_pool2d": (lambda x: ctorch.max_pool2d(x, 3, 2, 1, 2, True, True), [X4]),
    "torch.max_pool3d": (lambda x: ctorch.max_pool3d(x, 2, return_indices=True), [X4]),
    "torch.avg_pool2d": (lambda x: ctorch.avg_pool2d(x, 3, 2, 1, True, False), [X4]),
    "torch.avg_pool3d": (lambda x: ctorch.avg_pool3d(x, 2, divisor_override=3), [X4]),
    "torch.lp_pool2d": (lambda x: ctorch.lp_pool2d(x, 2, 2), [X4]),
    "torch.lp_pool1d_inf": (lambda x: ctorch.lp_pool1d(x, math.inf, 2), [X3]),
    "torch.adaptive_max_pool2d": (lambda x: ctorch.adaptive_max_pool2d(x, (4, 2), True), [X4]),
    "torch.adaptive_avg_pool1d": (lambda x: ctorch.adaptive_avg_pool1d(x, 4), [X3]),
    "torch.max_unpool2d": (lambda v, i: ctorch.max_unpool2d(v, i, 2), [X4[:, :, :3, :2].copy(),
                                                                      _mp_idx(X4[:, :, :, :4])]),
    "torch.fractional_max_pool2d": (lambda x, u: ctorch.fractional_max_pool2d(
        x, 2, (3, 3), return_indices=True, _random_samples=u), [X4, SAMPLES]),
    "tf.max_pool2d": (lambda x: ctf.max_pool2d(x, 2, 1, "SAME"), [XL]),
    "tf.max_pool_explicit": (lambda x: ctf.max_pool(x, 3, 2, [[0, 0], [1, 2], [0, 1], [0, 0]]), [XL]),
    "tf.avg_pool": (lambda x: ctf.avg_pool(x, (2, 3), (1, 2), "SAME"), [XL]),
    "tf.pool": (lambda x: ctf.pool(x, (2, 2), "MAX", padding="VALID", dilations=(2, 1)), [XL]),
    "tf.pool_avg": (lambda x: ctf.pool(x, (2, 2), "AVG", (1, 2), "SAME"), [XL]),
    "tf.max_pool_with_argmax": (lambda x: ctf.max_pool_with_argmax(x, 2, 2, "SAME", include_batch_in_index=True),
                                [XL]),
    "tf.depthwise_max_pool": (lambda x: ctf.max_pool2d(x[..., :2], [1, 1, 1, 2], [1, 1, 1, 2], "VALID"), [XL]),
    "keras.MaxPooling2D": (lambda x: _keras(ckeras.MaxPooling2D, x, 2, padding="same"), [XL]),
    "keras.AveragePooling1D": (lambda x: _keras(ckeras.AveragePooling1D, x, 2, 1), [XL[:, :, 0]]),
    "keras.GlobalMaxPooling2D": (lambda x: _keras(ckeras.GlobalMaxPooling2D, x), [XL]),
    "keras.GlobalAveragePooling1D_mask": (
        lambda x, m: (lambda L: (L(x, mask=m), L.backward(np.ones((2, 3)))))(
            ckeras.GlobalAveragePooling1D(dtype=None)), [XL[:, 0], XL[:, 0, :, 0] > 0]),
    "keras.AdaptiveAveragePooling2D": (lambda x: _keras(ckeras.AdaptiveAveragePooling2D, x, (4, 2)), [XL]),
    "keras.AdaptiveMaxPooling1D": (lambda x: _keras(ckeras.AdaptiveMaxPooling1D, x, 3), [XL[:, :, 0]]),
    "onnx.MaxPool": (lambda x: connx.run("MaxPool", [x], kernel_shape=[2, 2], pads=[1, 0, 1, 1], storage_order=1),
                     [X4]),
    "onnx.AveragePool": (lambda x: connx.run("AveragePool", [x], kernel_shape=[3, 2], auto_pad="SAME_LOWER"), [X4]),
    "onnx.LpPool": (lambda x: connx.run("LpPool", [x], kernel_shape=[2, 2], p=3), [X4]),
    "onnx.GlobalMaxPool": (lambda x: connx.run("GlobalMaxPool", [x]), [X4]),
    "onnx.GlobalAveragePool": (lambda x: connx.run("GlobalAveragePool", [x]), [X4]),
    "onnx.GlobalLpPool": (lambda x: connx.run("GlobalLpPool", [x], p=1), [X4]),
    "onnx.MaxUnpool": (lambda v, i, s: connx.run("MaxUnpool", [v, i, s], kernel_shape=[2, 2], strides=[2, 2]),
                       [X4[:, :, :3, :2].copy(),
                        connx.run("MaxPool", [X4[:, :, :, :4]], kernel_shape=[2, 2], strides=[2, 2])[1],
                        np.array([2, 3, 7, 5])]),
    "onnx.MaxRoiPool": (lambda x, r: connx.run("MaxRoiPool", [x, r], pooled_shape=[2, 2], spatial_scale=0.5),
                        [X4, ROIS5]),
    "onnx.RoiAlign": (lambda x, r, b: connx.run("RoiAlign", [x, r, b], output_height=2, output_width=3,
                                                 sampling_ratio=2), [X4, ROIS4, BATCH]),
}


def _swap(a):
    """``a`` in the non-native byte order (same values)."""
    return a.astype(a.dtype.newbyteorder("S")) if a.dtype.itemsize > 1 else a


def _as(a, dtype):
    with np.errstate(all="ignore"):
        return a.astype(dtype) if a.dtype.kind == "f" else a


def _assert_same(got, want, path="result"):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), f"{path}: {type(got)} vs {type(want)}"
        for i, (a, b) in enumerate(zip(got, want)):
            _assert_same(a, b, f"{path}[{i}]")
        return
    got, want = np.asarray(got), np.asarray(want)
    if REQUIRE_NATIVE_RESULTS:
        assert got.dtype == want.dtype, f"{path}: dtype {got.dtype.str} (expected the native {want.dtype.str})"
    else:
        assert got.dtype.newbyteorder("=") == want.dtype, f"{path}: dtype {got.dtype.str} vs {want.dtype.str}"
    np.testing.assert_array_equal(got, want, err_msg=path)


@pytest.mark.parametrize("which", ["first array", "every array"])
@pytest.mark.parametrize("dtype", ["f8", "i8", "f4", "i4", "u2"])
@pytest.mark.parametrize("name", list(BYTE_ORDER_CASES))
def test_non_native_byte_order_gives_the_native_result(name, dtype, which):
    fn, arrays_ = BYTE_ORDER_CASES[name]
    native = [_as(arrays_[0], np.dtype(dtype))] + [a.copy() for a in arrays_[1:]]
    want = fn(*[a.copy() for a in native])
    swapped = [_swap(native[0])] + [_swap(a) if which == "every array" else a.copy() for a in native[1:]]
    assert not swapped[0].dtype.isnative
    got = fn(*swapped)
    _assert_same(got, want)


# ---------------------------------------------------------------------------------------------
# regression cases: np.longdouble
# ---------------------------------------------------------------------------------------------

LONGDOUBLE_CASES = {k: BYTE_ORDER_CASES[k] for k in (
    "max_pool", "avg_pool", "lp_pool", "max_pool_backward", "global_max_pool", "adaptive_avg_pool",
    "spatial_pyramid_pool", "masked_pool_lengths", "fractional_max_pool", "roi_pool", "roi_align",
    "torch.max_pool2d", "torch.lp_pool2d", "tf.max_pool2d", "tf.avg_pool", "onnx.MaxPool", "onnx.LpPool",
    "keras.MaxPooling2D")}


def _to64(v):
    if isinstance(v, (tuple, list)):
        return [_to64(e) for e in v]
    v = np.asarray(v)
    return v.astype(np.float64) if v.dtype.kind == "f" else v


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize == 8, reason="longdouble is float64 here")
@pytest.mark.parametrize("name", list(LONGDOUBLE_CASES))
def test_longdouble_is_a_type_error_or_correct(name):
    fn, arrays_ = LONGDOUBLE_CASES[name]
    want = fn(*arrays_)
    try:
        got = fn(arrays_[0].astype(np.longdouble), *arrays_[1:])
    except TypeError:
        return
    got, want = _to64(got), _to64(want)
    if not isinstance(want, list):
        got, want = [got], [want]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------
# regression cases: the reported failures, with their correct behaviour
# ---------------------------------------------------------------------------------------------


def _result_or_value_error(fn, expected, match):
    """The correct ``expected`` result, or a ValueError naming ``match``."""
    try:
        got = fn()
    except ValueError as e:
        assert re.search(match, str(e)), f"the ValueError does not name {match!r}: {e}"
        return
    if callable(expected):
        expected(got)
    else:
        np.testing.assert_array_equal(got, expected)


def test_avg_pool_count_include_pad_divisor_does_not_overflow():
    got = poolkit.avg_pool(np.arange(1.0, 5.0), (2**62,), 2**61, ((2**62 - 2, 2**62),))
    np.testing.assert_array_equal(got, np.array([3.0, 10.0, 7.0]) / 2**62)


X44 = np.arange(16.0).reshape(4, 4)


@pytest.mark.parametrize("stride", [2**63, 2**64, 10**30])
def test_huge_stride_is_one_window_or_a_value_error(stride):
    # (4 - 2) // stride + 1 == 1: one window per axis, at the start
    _result_or_value_error(lambda: poolkit.max_pool(X44, (2, 2), stride), np.array([[5.0]]), "stride")
    _result_or_value_error(lambda: poolkit.output_shape((4, 4), (2, 2), stride), (1, 1), "stride")


@pytest.mark.parametrize("stride", [2**63, 10**30])
def test_huge_stride_compat(stride):
    x = X44.reshape(1, 1, 4, 4)
    _result_or_value_error(lambda: ctorch.max_pool2d(x, 2, stride=stride), np.array([[[[5.0]]]]), "stride")
    _result_or_value_error(lambda: ctf.max_pool2d(x.reshape(1, 4, 4, 1), 2, stride, "VALID"),
                           np.array([[[[5.0]]]]), "stride")


@pytest.mark.parametrize("dilation", [2**63, 10**30])
def test_huge_dilation_with_a_one_tap_kernel(dilation):
    # a kernel of 1 has one tap whatever the dilation: the result is the input itself
    _result_or_value_error(lambda: poolkit.max_pool(X44, (1, 1), dilation=dilation), X44, "dilation")
    _result_or_value_error(lambda: poolkit.avg_pool(X44, (1, 1), dilation=dilation), X44, "dilation")
    _result_or_value_error(lambda: poolkit.output_shape((4, 4), (1, 1), dilation=dilation), (4, 4), "dilation")
    _result_or_value_error(lambda: poolkit.resolve_padding((4, 4), (1, 1), dilation=dilation),
                           ((0, 0), (0, 0)), "dilation")
    _result_or_value_error(lambda: ctf.pool(X44.reshape(1, 4, 4, 1), (1, 1), "MAX", dilations=(dilation, 1)),
                           X44.reshape(1, 4, 4, 1), "dilation")
    _result_or_value_error(lambda: ctorch.max_pool2d(X44.reshape(1, 1, 4, 4), 1, dilation=dilation),
                           X44.reshape(1, 1, 4, 4), "dilation")


@pytest.mark.parametrize("p", [10**400, -(10**400)], ids=["10**400", "-10**400"])
def test_lp_pool_p_too_large_for_a_float(p):
    with pytest.raises(ValueError, match=r"\bp\b"):
        poolkit.lp_pool(X44, p, (2, 2))
    with pytest.raises(ValueError, match=r"\bp\b"):
        poolkit.lp_pool_backward(np.ones((2, 2)), X44, p, (2, 2))
    with pytest.raises(ValueError, match=r"\bp\b"):
        poolkit.global_lp_pool(X44.reshape(1, 1, 4, 4), p)
    with pytest.raises(ValueError, match=r"\bp\b"):
        connx.run("LpPool", [X44.reshape(1, 1, 4, 4)], kernel_shape=[2, 2], p=p)
    with pytest.raises(ValueError, match="norm_type"):
        ctorch.lp_pool2d(X44.reshape(1, 1, 4, 4), p, 2)


def test_spatial_scale_too_large_for_a_float():
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(ValueError, match="spatial_scale"):
        poolkit.roi_pool(x, np.array([[0, 0, 0, 2, 2.0]]), 2, spatial_scale=10**400)
    with pytest.raises(ValueError, match="spatial_scale"):
        poolkit.roi_pool_backward(np.ones((1, 1, 2, 2)), x, np.array([[0, 0, 0, 2, 2.0]]), 2, spatial_scale=10**400)
    with pytest.raises(ValueError, match="spatial_scale"):
        poolkit.roi_align(x, np.array([[0, 0, 2, 2.0]]), np.array([0]), 2, spatial_scale=10**400)
    with pytest.raises(ValueError, match="spatial_scale"):
        poolkit.roi_align_backward(np.ones((1, 1, 2, 2)), x, np.array([[0, 0, 2, 2.0]]), np.array([0]), 2,
                                   spatial_scale=10**400)
    with pytest.raises(ValueError, match="spatial_scale"):
        connx.run("MaxRoiPool", [x, np.array([[0, 0, 0, 2, 2.0]])], pooled_shape=[2, 2], spatial_scale=10**400)


@pytest.mark.parametrize("ratio", [math.inf, -math.inf, math.nan, (math.inf, 0.5), 10**400])
def test_fractional_output_ratio_not_finite(ratio):
    x = np.ones((1, 1, 8, 8))
    with pytest.raises(ValueError, match="output_ratio"):
        ctorch.fractional_max_pool2d(x, 2, output_ratio=ratio, _random_samples=np.full((1, 1, 2), 0.5))
    with pytest.raises(ValueError, match="output_ratio"):
        poolkit.fractional_max_pool(x, 2, output_ratio=ratio, random_samples=np.full((1, 1, 2), 0.5))


@pytest.mark.parametrize("bad", [np.inf, np.nan, -np.inf, 1e300])
def test_onnx_maxunpool_output_shape_not_finite(bad):
    y, i = connx.run("MaxPool", [X44.reshape(1, 1, 4, 4)], kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(ValueError, match="output_shape"):
        connx.run("MaxUnpool", [y, i, np.array([1, 1, 4, bad])], kernel_shape=[2, 2], strides=[2, 2])


def test_torch_lp_pool_norm_type_zero():
    for p in (0.0, 0, -0.0):
        with pytest.raises(ValueError, match="norm_type"):
            ctorch.lp_pool1d(np.ones((1, 1, 4)), p, 2)
        with pytest.raises(ValueError, match="norm_type"):
            ctorch.lp_pool2d(np.ones((1, 1, 4, 4)), p, 2)


def test_empty_kernel_size_is_a_value_error():
    for fn in (poolkit.max_pool, poolkit.avg_pool, lambda x, k: poolkit.lp_pool(x, 2, k)):
        with pytest.raises(ValueError, match="kernel_size"):
            fn(np.ones((4, 4)), ())
    with pytest.raises(ValueError, match="kernel_size"):
        poolkit.output_shape((4, 4), ())
    with pytest.raises(ValueError, match="kernel_size"):
        poolkit.resolve_padding((4, 4), ())
    with pytest.raises(ValueError, match="kernel_size"):
        poolkit.max_pool_backward(np.ones((4, 4)), np.ones((4, 4)), ())


def test_empty_unpool_size_is_a_value_error():
    v, i = poolkit.max_pool(X44, (2, 2), return_indices=True)
    with pytest.raises(ValueError, match="output_size"):
        poolkit.max_unpool(v, i, ())
    with pytest.raises(ValueError, match="output_size"):
        poolkit.max_unpool(v, i, [])


def test_roi_align_huge_sampling_ratio():
    x = np.ones((1, 1, 4, 4))
    rois = np.array([[0.5, 0.5, 2.5, 2.5]])

    def expected(got):
        np.testing.assert_array_equal(got, np.ones((1, 1, 2, 2)))

    for ratio in (2**15, 2**16):
        start = time.perf_counter()
        _result_or_value_error(lambda: poolkit.roi_align(x, rois, np.array([0]), 2, sampling_ratio=ratio),
                               expected, "sampling_ratio")
        assert time.perf_counter() - start < SOFT_LIMIT
        with pytest.raises(ValueError, match="sampling_ratio"):
            poolkit.roi_align(x, rois, np.array([0]), 2, sampling_ratio=2**63)


def _quick(fn, limit=5.0):
    """``fn()``, which must return within ``limit`` seconds (numba compilation excluded)."""
    compile_before = _CLOCK.total
    start = time.perf_counter()
    out = fn()
    assert time.perf_counter() - start - (_CLOCK.total - compile_before) < limit
    return out


def test_output_shape_of_a_huge_axis_allocates_nothing():
    assert _quick(lambda: poolkit.output_shape((1, 2**36), (2,))) == (1, 2**35)
    assert _quick(lambda: poolkit.output_shape((2**36,), (3,), 1, 1)) == (2**36,)
    assert _quick(lambda: poolkit.resolve_padding((1, 2**36), (3,), 2, "same")) == ((0, 1),)


def test_pooling_an_empty_array_with_a_huge_axis_allocates_nothing():
    x = np.empty((0, 2**36))
    out = _quick(lambda: poolkit.max_pool(x, (2,)))
    assert out.shape == (0, 2**35) and out.dtype == x.dtype
    out = _quick(lambda: poolkit.avg_pool(x, (2,)))
    assert out.shape == (0, 2**35)


def test_spatial_pyramid_of_zero_channels_allocates_nothing():
    out = _quick(lambda: poolkit.spatial_pyramid_pool(np.ones((3, 0, 7, 6)), (1, 2**20), mode="avg"))
    assert out.shape == (3, 0)
    out = _quick(lambda: poolkit.spatial_pyramid_pool(np.ones((3, 0, 7, 6)), (1, 2**20), mode="max"))
    assert out.shape == (3, 0)


# ---------------------------------------------------------------------------------------------
# regression cases for failures this fuzz found
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("g", [np.inf, -np.inf, np.nan])
def test_masked_pool_backward_is_zero_at_masked_steps_whatever_the_gradient(mode, g):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = poolkit.masked_pool_backward(np.array([g]), np.zeros((1, 3)), lengths=np.array([1]), mode=mode)
    np.testing.assert_array_equal(got[0, 1:], [0.0, 0.0])


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["10**400", "-10**400"])
def test_huge_divisor_override(value):
    x = np.ones((1, 1, 4, 4))
    zeros = np.zeros((1, 1, 2, 2))  # 4 / 10**400 is 0 in float64
    _result_or_value_error(lambda: poolkit.avg_pool(x, (2, 2), divisor_override=value), zeros, "divisor")
    _result_or_value_error(lambda: poolkit.avg_pool_backward(np.ones((1, 1, 2, 2)), x, (2, 2),
                                                             divisor_override=value), np.zeros(x.shape), "divisor")
    _result_or_value_error(lambda: ctorch.avg_pool2d(x, 2, divisor_override=value), zeros, "divisor")


@pytest.mark.parametrize("shape", [(), (1,), (None, 7)])
@pytest.mark.parametrize("layer", [ckeras.MaxPooling2D, ckeras.GlobalMaxPooling1D, ckeras.GlobalAveragePooling2D,
                                   lambda: ckeras.AdaptiveAveragePooling1D(2)])
def test_keras_compute_output_shape_of_the_wrong_rank(layer, shape):
    with pytest.raises(ValueError):
        layer().compute_output_shape(shape)


NO_WARNING_CASES = {
    "lp_pool": lambda: poolkit.lp_pool(np.array([[3e200, 4e200]]), 2, (1, 2)),
    "lp_pool_p3": lambda: poolkit.lp_pool(np.array([[1e300, 1.0]]), 3, (1, 2)),
    "lp_pool_backward": lambda: poolkit.lp_pool_backward(np.ones((1, 1)), np.array([[3e200, 4e200]]), 2, (1, 2)),
    "global_lp_pool": lambda: poolkit.global_lp_pool(np.full((1, 1, 2), 1e300), 3),
    "onnx.LpPool": lambda: connx.run("LpPool", [np.full((1, 1, 2), 1e300)], kernel_shape=[2]),
    "onnx.GlobalLpPool": lambda: connx.run("GlobalLpPool", [np.full((1, 1, 2), 1e300)]),
    "max_pool_backward_float32": lambda: poolkit.max_pool_backward(np.full((1, 1), 1e300),
                                                                   np.zeros((2, 2), np.float32), (2, 2)),
    "keras.MaxPooling1D_cast": lambda: ckeras.MaxPooling1D()(np.full((1, 2, 1), 1e300)),
    "keras.AveragePooling1D_int_cast": lambda: ckeras.AveragePooling1D(2, dtype="float16")(
        np.full((1, 2, 1), 2**31 - 1, dtype=np.int32)),
    "masked_pool_backward_inf": lambda: poolkit.masked_pool_backward(np.array([np.inf]), np.zeros((1, 3)),
                                                                     lengths=np.array([1]), mode="sum"),
    "spatial_pyramid_pool_backward_inf": lambda: poolkit.spatial_pyramid_pool_backward(
        np.array([[np.inf, -np.inf, 0, 0, 0]]), np.zeros((1, 1, 2, 2)), (1, 2), mode="avg"),
}


@pytest.mark.parametrize("name", list(NO_WARNING_CASES))
def test_no_runtime_warning(name):
    """Overflow to inf (or inf - inf) is the right answer here; the RuntimeWarning that comes with it is not
    (it is an exception under ``-W error``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="warn"):
            NO_WARNING_CASES[name]()


@pytest.mark.parametrize("p", [1, 2, 3, 20])
def test_lp_pool_of_a_subnormal_maximum_is_exact(p):
    """The rescaling for |x|**p used ``2.0 ** 1073`` for a maximum of 5e-324: OverflowError
    (found by CI's fuzz run of onnx GlobalLpPool).  The norm of one subnormal is itself."""
    np.testing.assert_array_equal(poolkit.lp_pool(np.array([5e-324, 0.0]), p, (2,)), [5e-324])
    np.testing.assert_array_equal(connx.run("GlobalLpPool", [np.array([[[5e-324]]])], p=p)[0], [[[5e-324]]])
    np.testing.assert_allclose(poolkit.lp_pool(np.array([1e-310, 1e-310]), 2, (2,)), [np.sqrt(2) * 1e-310])
