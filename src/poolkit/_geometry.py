"""Pooling geometry: the only module that knows output sizes, padding forms, ceil rules and windows.

Along one pooled axis every pooling op is "for output ``i``, reduce the taps
``starts[i] + j * dilation`` for ``j < counts[i]``" -- the taps that lie inside the input.
Regular pooling (any padding, ceil mode, SAME), adaptive bins and fractional intervals differ only
in how that per-axis window table is built; the kernels never see the difference.

Everything here is plain Python/NumPy and validates what it is given, so that the compiled kernels
can trust every index they receive.
"""

from __future__ import annotations

import functools
import marshal
import math
import numbers
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Largest number of output elements a call may ask for.  Anything larger is a mistake (a kernel or
#: padding of 10**12), reported as a ValueError rather than an allocation failure or a hang.
MAX_ELEMENTS = 2**40

PADDING_STRINGS = ("valid", "same", "same_lower")


@dataclass(frozen=True, eq=False)
class AxisPlan:
    """The window table of one pooled axis.

    Output ``i`` reduces the input positions ``starts[i] + j * dilation`` for ``0 <= j < counts[i]``,
    all inside ``[0, in_size)``.  ``pad_counts[i]`` is the number of taps of window ``i`` inside
    the padded extent ``[-pad_before, in_size + pad_after)`` (the ``count_include_pad`` divisor
    factor; the overhang of a ceil-mode window past the padding is not counted).

    The tables are computed on first use, not with the plan: a shape-only query or an empty batch
    needs none, however many output positions the axis has.  Irregular windows (adaptive bins,
    fractional intervals) come with an explicit ``table`` of starts and counts.
    """

    in_size: int
    out_size: int
    kernel: int
    stride: int
    dilation: int
    pad_before: int
    pad_after: int
    #: windows full_lo <= i < full_hi hold all ``kernel`` taps and start at ``i * stride - pad_before``
    #: (empty for tables of irregular windows)
    full_lo: int = 0
    full_hi: int = 0
    #: explicit (starts, counts) of irregular windows, else None
    table: tuple | None = None
    #: PyTorch's adaptive bins (made on first use, like the sliding tables)
    adaptive: bool = False

    @functools.cached_property
    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.adaptive:
            i = np.arange(self.out_size, dtype=np.int64)
            starts = (i * self.in_size) // self.out_size
            counts = -((-(i + 1) * self.in_size) // self.out_size) - starts
            return _frozen(starts), _frozen(counts), _frozen(counts)
        if self.table is not None:
            starts, counts = self.table
            return starts, counts, counts
        return _sliding_tables(self.in_size, self.out_size, self.kernel, self.stride, self.dilation, self.pad_before,
                               self.pad_after)

    def taps(self, i: int) -> tuple[int, ...]:
        """Every position window ``i`` of a sliding plan covers, padding included (negative, or
        ``in_size`` and beyond): ``i * stride - pad_before + j * dilation`` for ``j < kernel``."""
        start = i * self.stride - self.pad_before
        return tuple(start + j * self.dilation for j in range(self.kernel))

    def size_terms(self, ceil_mode: bool) -> tuple[int, int]:
        """(effective kernel, size before ceil mode's last-window rule) of a sliding plan: the
        numbers of the output-size rule, for showing it (``out_size`` is the final size)."""
        eff = self.dilation * (self.kernel - 1) + 1
        span = self.in_size + self.pad_before + self.pad_after - eff
        return eff, (-(-span // self.stride) if ceil_mode else span // self.stride) + 1

    @property
    def starts(self) -> np.ndarray:
        return self._tables[0]

    @property
    def counts(self) -> np.ndarray:
        return self._tables[1]

    @property
    def pad_counts(self) -> np.ndarray:
        return self._tables[2]


def _frozen(a) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.int64)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# argument normalisation
# --------------------------------------------------------------------------------------------


def as_int(name: str, value) -> int:
    """``value`` as a Python int; bools, floats and other types are a TypeError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer or a sequence of integers, got {value!r}")
    return operator.index(value)


def _per_axis(name: str, value, n: int, kinds: str) -> tuple:
    """``value`` as a tuple of one entry per pooled axis (``n``); ``kinds`` names what the
    argument may be, for the TypeError."""
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be {kinds}, got {value!r}") from None
    if len(items) != n:
        raise ValueError(f"{name} must have one entry per pooled axis ({n}), got {value!r}")
    return items


def int_tuple(name: str, value, n: int) -> tuple[int, ...]:
    """Broadcast an int, or check a sequence of ``n`` ints, for one argument of the pooled axes."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an integer or a sequence of integers, got {value!r}")
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return (operator.index(value),) * n
    items = _per_axis(name, value, n, "an integer or a sequence of integers")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an integer or a sequence of integers, got {value!r}")
    return tuple(operator.index(v) for v in items)


def positive_tuple(name: str, value, n: int) -> tuple[int, ...]:
    out = int_tuple(name, value, n)
    if any(v < 1 for v in out):
        raise ValueError(f"{name} must be >= 1 on every axis, got {value!r}")
    return out


def normalize_axes(ndim: int, axes, n: int | None, what: str = "kernel_size") -> tuple[int, ...]:
    """The pooled axes as non-negative ints, in the order given.

    ``axes=None`` means the last ``n`` axes, where ``n`` is the number of values in ``what``
    (``None`` when ``what`` was a bare int: then ``axes`` is required).
    """
    if axes is None:
        if n == 0:
            raise ValueError(f"{what} must have at least one value, got an empty sequence")
        if n is None:
            raise ValueError(
                f"an int {what} needs axes= to say which axes to pool; pass one value per axis, "
                f"e.g. {what}=(2, 2), or give axes=(-2, -1)"
            )
        if n > ndim:
            raise ValueError(f"{what} has {n} values but the input has only {ndim} dimensions")
        return tuple(range(ndim - n, ndim))
    if isinstance(axes, (numbers.Integral, np.integer)) and not isinstance(axes, (bool, np.bool_)):
        axes = (axes,)
    try:
        items = tuple(axes)
    except TypeError:
        raise TypeError(f"axes must be an int or a sequence of ints, got {axes!r}") from None
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(f"axes must be an int or a sequence of ints, got {axes!r}")
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axes={axes!r} is out of range for an input with {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axes must not repeat an axis, got {axes!r}")
    if not out:
        raise ValueError(f"axes must name at least one axis, got {axes!r}")
    if n is not None and len(out) != n:
        raise ValueError(f"{what} has {n} values but axes={axes!r} names {len(out)} axes")
    if n == 0:
        raise ValueError(f"{what} must have at least one value, got an empty sequence")
    return tuple(out)


def count_of(value, what: str = "kernel_size") -> int | None:
    """How many pooled axes a kernel-like argument ``what`` names (None for a bare int)."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be an integer or a sequence of integers, got {value!r}")
    try:
        return len(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer or a sequence of integers, got {value!r}") from None


def parse_padding(padding, n: int):
    """``padding`` as a lower-case string from PADDING_STRINGS or a tuple of ``n`` (before, after) pairs."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in PADDING_STRINGS:
            raise ValueError(f"padding must be an int, pairs, or one of {PADDING_STRINGS}, got {padding!r}")
        return mode
    if isinstance(padding, (numbers.Integral, np.integer)) and not isinstance(padding, (bool, np.bool_)):
        pairs = ((operator.index(padding),) * 2,) * n
    else:
        items = _per_axis("padding", padding, n, "an int, a sequence, or a string")
        found: list[tuple[int, int]] = []
        for item in items:
            if isinstance(item, (numbers.Integral, np.integer)) and not isinstance(item, (bool, np.bool_)):
                found.append((operator.index(item), operator.index(item)))
                continue
            try:
                pair = tuple(item)
            except TypeError:
                raise TypeError(f"padding entries must be ints or (before, after) pairs, got {padding!r}") from None
            if len(pair) != 2 or any(
                isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) for v in pair
            ):
                raise TypeError(f"padding entries must be ints or (before, after) pairs, got {padding!r}")
            found.append((operator.index(pair[0]), operator.index(pair[1])))
        pairs = tuple(found)
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return tuple(pairs)


def same_pads(in_size: int, kernel: int, stride: int, dilation: int, lower: bool) -> tuple[int, int]:
    """TensorFlow/ONNX SAME padding: output ``ceil(in / stride)``, the odd cell at the end
    (SAME_UPPER) or at the start (SAME_LOWER)."""
    eff = dilation * (kernel - 1) + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + eff - in_size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def resolve_pads(in_sizes, kernels, strides, dilations, padding) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * len(in_sizes)
        lower = padding == "same_lower"
        return tuple(same_pads(L, k, s, d, lower) for L, k, s, d in zip(in_sizes, kernels, strides, dilations))
    return padding


# --------------------------------------------------------------------------------------------
# per-axis plans
# --------------------------------------------------------------------------------------------


def output_size(in_size, kernel, stride, dilation, pad_before, pad_after, ceil_mode) -> int:
    """PyTorch's ``pooling_output_shape_pad_lr`` (aten/src/ATen/native/Pool.h).

    ``floor_or_ceil((in + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1``, and in
    ceil mode the last window must start inside the input or the left padding.
    """
    num = in_size + pad_before + pad_after - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1  # floor division: div_rtn
    if ceil_mode and out > 0 and (out - 1) * stride >= in_size + pad_before:
        out -= 1
    return out


#: Largest kernel size, stride, dilation or padding accepted: every sum of them fits in an int64
#: window table with room to spare (and anything larger is a mistake).
MAX_GEOMETRY = 2**62


def _sliding_tables(in_size, out, kernel, stride, dilation, pad_before, pad_after):
    """(starts, counts, pad_counts) of sliding windows as int64 arrays.  The arithmetic is exact:
    in int64 while every intermediate fits, in Python ints otherwise (paddings near 2**62)."""
    big = max(in_size + pad_before + pad_after, out * stride, dilation * kernel) >= 2**61
    i = np.arange(out, dtype=object if big else np.int64)
    start = i * stride - pad_before
    j0 = np.maximum(0, (-start + dilation - 1) // dilation)
    j1 = np.minimum(kernel, np.maximum(0, (in_size - start + dilation - 1) // dilation))
    counts = np.maximum(j1 - j0, 0)
    pad_counts = np.minimum(kernel, (in_size + pad_after - start + dilation - 1) // dilation)
    return _frozen(start + j0 * dilation), _frozen(counts), _frozen(pad_counts)


@functools.lru_cache(maxsize=512)
def plan_axis(in_size: int, kernel: int, stride: int, dilation: int, pad_before: int, pad_after: int,
              ceil_mode: bool, axis: int = 0) -> AxisPlan:
    """The window plan of one axis for sliding-window pooling; validates the geometry (in closed
    form: no table is built here)."""
    for name, v in (("kernel_size", kernel), ("stride", stride), ("dilation", dilation),
                    ("padding", max(pad_before, pad_after))):
        if v > MAX_GEOMETRY:
            raise ValueError(f"{name} must be at most 2**62 on every axis, got {v} on axis {axis}")
    eff = dilation * (kernel - 1) + 1
    out = output_size(in_size, kernel, stride, dilation, pad_before, pad_after, ceil_mode)
    if out <= 0:
        if in_size == 0:
            raise ValueError(f"axis {axis} has size 0: there is nothing to pool")
        raise ValueError(
            f"kernel_size={kernel} (effective {eff} with dilation={dilation}) is larger than the padded "
            f"input ({in_size} + {pad_before} + {pad_after}) on axis {axis}"
        )

    def empty_window(w):
        raise ValueError(
            f"window {w} on axis {axis} lies wholly in the padding (padding=({pad_before}, {pad_after}), "
            f"kernel_size={kernel}, stride={stride}, dilation={dilation}, input size {in_size}); "
            "reduce the padding"
        )

    # Windows start in order, so when in_size >= dilation a window holds an input cell unless it
    # lies wholly before or after the input: only the first and last can be empty.
    for w in (0, out - 1):
        start = w * stride - pad_before
        if start >= in_size or start + eff <= 0:
            empty_window(w)
    if out > MAX_ELEMENTS:
        raise ValueError(f"the output would have {out} positions on axis {axis}; that is not a sensible pooling")
    if in_size < dilation:  # taps can straddle the input: any window may be empty (rare; the table is small)
        if out > in_size * kernel:  # at most in_size * kernel windows can hold a cell
            raise ValueError(f"some windows on axis {axis} lie wholly in the padding or between the input's cells "
                             f"(padding=({pad_before}, {pad_after}), kernel_size={kernel}, dilation={dilation}, "
                             f"input size {in_size}); reduce the padding or the dilation")
        empty = np.flatnonzero(_sliding_tables(in_size, out, kernel, stride, dilation, pad_before, pad_after)[1] == 0)
        if empty.size:
            empty_window(int(empty[0]))
    # the full windows: start >= 0 and start + eff <= in_size
    lo = -(-pad_before // stride)
    hi = min(out, (in_size + pad_before - eff) // stride + 1) if in_size + pad_before >= eff else 0
    if hi <= lo:
        lo = hi = 0
    return AxisPlan(in_size, out, kernel, stride, dilation, pad_before, pad_after, lo, hi)


def table_plan(in_size: int, starts, counts) -> AxisPlan:
    """A plan from an explicit table of contiguous windows (adaptive bins, fractional intervals).

    ``starts`` and ``counts`` must describe windows inside ``[0, in_size)``, each non-empty; this is
    checked, because the kernels trust it.
    """
    starts = _frozen(starts)
    counts = _frozen(counts)
    if starts.ndim != 1 or starts.shape != counts.shape:
        raise ValueError("window table: starts and counts must be 1-D and of one length")
    if starts.size and (starts.min() < 0 or counts.min() < 1 or (starts + counts).max() > in_size):
        raise ValueError("window table: every window must be non-empty and inside the input")
    kernel = int(counts.max()) if counts.size else 0
    return AxisPlan(in_size, int(starts.size), kernel, 0, 1, 0, 0, table=(starts, counts))


def adaptive_plan(in_size: int, out_size: int) -> AxisPlan:
    """PyTorch's adaptive bins: ``start = floor(i*In/Out)``, ``end = ceil((i+1)*In/Out)`` (each
    non-empty when In >= 1), tables made on first use."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"adaptive pooling needs input and output sizes >= 1, got {in_size} and {out_size}")
    if in_size % out_size == 0:  # bins [i*k, (i+1)*k): sliding windows, k = stride = In / Out
        k = in_size // out_size
        return plan_axis(in_size, k, k, 1, 0, 0, False)
    # kernel: an upper bound on the bin size (only full regular windows use it; bins are irregular)
    return AxisPlan(in_size, out_size, -(-in_size // out_size) + 1, 0, 1, 0, 0, adaptive=True)


# --------------------------------------------------------------------------------------------
# whole-call planning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything a pooling call needs: the pooled axes (ascending) and one AxisPlan per axis."""

    in_shape: tuple[int, ...]
    axes: tuple[int, ...]
    axis_plans: tuple[AxisPlan, ...]

    @functools.cached_property
    def fused(self) -> FusedView | None:
        """The fused kernels' view, when the plan has 1, 2 or 3 adjacent pooled axes (else None)."""
        n = len(self.axes)
        if n <= 3 and self.axes[-1] - self.axes[0] == n - 1:
            return FusedView(self)
        return None

    @classmethod
    def of(cls, shape, axes, axis_plans) -> Plan:
        """The plan of per-axis plans given in the order of ``axes`` (any order): sorted by axis,
        and the output's size checked."""
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        plan = cls(tuple(shape), tuple(axes[i] for i in order), tuple(axis_plans[i] for i in order))
        check_size(plan.out_shape)
        return plan

    @functools.cached_property
    def out_shape(self) -> tuple[int, ...]:
        return resized(self.in_shape, self.axes, [p.out_size for p in self.axis_plans])

    @functools.cached_property
    def memo(self) -> dict:
        """What the engine derives from this plan once (kernel choices, work sizes...): plans are
        memoised, so a layer applied batch after batch derives nothing again."""
        return {}

    @property
    def pads(self) -> tuple[tuple[int, int], ...]:
        return tuple((p.pad_before, p.pad_after) for p in self.axis_plans)


#: the trivial D axis of 2-D pooling in the fused view
_UNIT_AXIS = table_plan(1, [0], [1])


class FusedView:
    """A plan seen by the fused kernels: the input as (outer, D, H, W * inner) -- 2-D pooling has
    D = 1, 1-D pooling D = H = 1 -- and the per-axis tables and flags the kernels take, computed
    once per plan."""

    def __init__(self, plan: Plan):
        shape = plan.in_shape
        self.outer = math.prod(shape[:plan.axes[0]])
        self.inner = math.prod(shape[plan.axes[-1] + 1:])
        plans = plan.axis_plans
        self.pd, self.ph, self.pw = (_UNIT_AXIS,) * (3 - len(plans)) + tuple(plans)
        self.in4 = (self.outer, self.pd.in_size, self.ph.in_size, self.pw.in_size * self.inner)
        self.out4 = (self.outer, self.pd.out_size, self.ph.out_size, self.pw.out_size * self.inner)
        axes = (self.pd, self.ph, self.pw)
        #: window starts and counts of D, H and W in one array: sd, cd, sh, ch, sw, cw
        self.tables = np.concatenate([t for p in axes for t in (p.starts, p.counts)]).astype(np.int64)
        #: the kernels' scalar arguments in one array (fewer arguments: a faster numba dispatch);
        #: the PARAM_* names of poolkit._kernels give the layout
        self.params = np.array(
            (self.inner,) + tuple(p.dilation for p in axes) + self._regular_h() + self._regular_w()
            + (_disjoint(self.pd) and _disjoint(self.ph),)  # no input row (d, h) lies in two windows
            + tuple(p.out_size for p in axes) + (self.ph.in_size, self.pw.in_size) + self._pads_w(), dtype=np.int64)
        self._divisors: dict[tuple, np.ndarray] = {}
        #: the engine's kernel choices for this view, by op
        self.kernels: dict[str, tuple] = {}
        self._row_windows: np.ndarray | None = None

    def row_windows(self) -> np.ndarray:
        """Which windows hold each input row, for the adjoint of windows that overlap along D or H:
        for the input row r = d * H + h of a plane, the output rows t = od * OH + oh whose windows
        hold it, ascending.  One int64 array: D * H + 1 offsets (row r's list is entries
        ``offsets[r]:offsets[r + 1]`` of the lists), then the lists."""
        if self._row_windows is None:
            pd, ph = self.pd, self.ph
            t = np.arange(pd.out_size * ph.out_size)
            od, oh = np.divmod(t, ph.out_size)
            rows, held = [], []
            for jd in range(int(pd.counts.max(initial=0))):
                for jh in range(int(ph.counts.max(initial=0))):
                    ok = (jd < pd.counts[od]) & (jh < ph.counts[oh])
                    rows.append(((pd.starts[od] + jd * pd.dilation) * ph.in_size + ph.starts[oh]
                                 + jh * ph.dilation)[ok])
                    held.append(t[ok])
            r, t = np.concatenate(rows).astype(np.int64), np.concatenate(held)
            order = np.lexsort((t, r))  # by row, then by output row
            offsets = np.concatenate(([0], np.cumsum(np.bincount(r, minlength=pd.in_size * ph.in_size))))
            self._row_windows = np.concatenate((offsets, t[order])).astype(np.int64)
        return self._row_windows

    def _regular_h(self):
        """(kernel, stride, lo, hi, blocks) of H: windows lo <= i < hi are full and regular, and
        ``blocks`` selects van Herk / Gil-Werman row blocks (about 3 row operations per output row
        instead of ``kernel``) for contiguous windows overlapping by more than about two strides."""
        p = self.ph
        blocks = p.dilation == 1 and p.kernel >= 4 and p.kernel > 2 * p.stride + 2 and p.full_hi > p.full_lo
        return (p.kernel, p.stride, p.full_lo, p.full_hi, bool(blocks))

    def _regular_w(self):
        """(kernel, stride, lo, hi, doubling) of W: ``doubling`` combines taps in log2(kernel)
        levels, ``log2(kernel) * stride + popcount(kernel)`` passes instead of ``kernel``."""
        p = self.pw
        k = p.kernel
        doubling = (k.bit_length() - 1) * max(p.stride, 1) + bin(k).count("1") < k
        return (k, p.stride, p.full_lo, p.full_hi, bool(doubling and p.full_hi > p.full_lo))

    def _pads_w(self) -> tuple[int, int]:
        """(positions before, positions after) the row in the row buffer of the doubled column
        strategy (``poolkit._kernels.sliding._cols_doubled``; doubling, and inner == 1 or stride
        1), else (0, 0).  That strategy pads the row so that every window along W is a full window
        of it: the padding before W, and what the last window reaches past the row (the padding
        after, or ceil mode's overhang).  A plan that doubles has sliding windows (irregular
        tables have no full windows), and those are the padded windows clipped to the row, none
        of them empty (``make_plan`` refuses a window wholly in the padding)."""
        p = self.pw
        if not (self._regular_w()[4] and (self.inner == 1 or p.stride == 1)):
            return 0, 0
        end = (p.out_size - 1) * p.stride - p.pad_before + (p.kernel - 1) * p.dilation + 1  # the last window's
        return p.pad_before, max(0, end - p.in_size)

    def divisors(self, count_include_pad, divisor_override):
        """Reciprocals of the per-axis divisor factors, one per output position of D, then H, then W,
        in one float64 array (the kernels multiply: no division per output); all ones for raw sums
        (``count_include_pad=None``)."""
        key = (count_include_pad, divisor_override)
        if key not in self._divisors:
            axes = (self.pd, self.ph, self.pw)
            if count_include_pad is None:
                div = tuple(np.ones(p.out_size) for p in axes)
            elif divisor_override is not None:
                div = (np.ones(self.pd.out_size), np.ones(self.ph.out_size),
                       np.full(self.pw.out_size, 1.0 / divisor_override))
            else:
                div = tuple(1.0 / (p.pad_counts if count_include_pad else p.counts) for p in axes)
            self._divisors[key] = np.concatenate(div)
        return self._divisors[key]


def _disjoint(p: AxisPlan) -> bool:
    """No input position lies in two windows of this axis (windows ordered by start)."""
    if p.out_size < 2:
        return True
    last = p.starts + (p.counts - 1) * p.dilation
    return bool(np.all(p.starts[1:] > last[:-1]))


def resized(shape, axes, sizes) -> tuple[int, ...]:
    """``shape`` with axis ``axes[i]`` of size ``sizes[i]``."""
    out = list(shape)
    for a, s in zip(axes, sizes):
        out[a] = s
    return tuple(out)


def check_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"input_shape must be a sequence of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"input_shape must not have negative sizes, got {shape!r}")
    return shape


_PLANS: dict = {}


def make_plan(shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, axes=None) -> Plan:
    """Validate sliding-window arguments against ``shape`` and build the plan (memoised).

    Repeated calls with the same arguments -- a layer applied to batch after batch -- reuse the
    plan.  The memo's key is the arguments' ``marshal`` serialisation (format 2, without shared
    references), which tells bools, floats and ints apart, so ``True``, ``2.0`` and ``2`` never
    share an entry; arguments marshal cannot serialise (NumPy scalars) are keyed by their ``repr``,
    and calls with array-valued arguments are not memoised.
    """
    args = (shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    key: object
    try:
        key = marshal.dumps(args, 2)
    except ValueError:
        if any(isinstance(a, np.ndarray) for a in args):
            return _make_plan(*args)
        key = repr(args)
    return kept_plan(key, lambda: _make_plan(*args))


def kept_plan(key, build: Callable[[], Plan]) -> Plan:
    """The plan memoised under ``key`` (hashable), made by ``build()`` the first time and marked
    kept (``plan.memo["kept"]``): what the engine prepares for a kept plan serves every later call
    with that key, so it pays to prepare (see :func:`poolkit._engine._prepared_call`)."""
    plan = _PLANS.get(key)
    if plan is None:
        plan = build()
        if len(_PLANS) >= 4096:
            _PLANS.clear()
        plan.memo["kept"] = True
        _PLANS[key] = plan
    return plan


def _make_plan(shape, kernel_size, stride, padding, dilation, ceil_mode, axes) -> Plan:
    shape = check_shape(shape)
    n = count_of(kernel_size)
    axes = normalize_axes(len(shape), axes, n)
    nax = len(axes)
    kernels = positive_tuple("kernel_size", kernel_size, nax)
    strides = kernels if stride is None else positive_tuple("stride", stride, nax)
    dilations = positive_tuple("dilation", dilation, nax)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    pads = resolve_pads([shape[a] for a in axes], kernels, strides, dilations, parse_padding(padding, nax))
    return Plan.of(shape, axes, [plan_axis(shape[a], k, s, d, pb, pa, bool(ceil_mode), a)
                                 for a, k, s, d, (pb, pa) in zip(axes, kernels, strides, dilations, pads)])


def check_size(shape) -> None:
    """A ValueError when an output of ``shape`` would have more than MAX_ELEMENTS elements."""
    total = math.prod(shape)
    if total > MAX_ELEMENTS:
        raise ValueError(f"the output would have {total} elements (shape {tuple(shape)}); "
                         "that is not a sensible pooling")


def check_memory(shape, itemsize: int, table_positions: int = 0) -> None:
    """A ValueError when an output of ``shape`` (plus window tables of ``table_positions`` entries)
    would need more bytes than this process can get (physical memory, or its address-space limit):
    such a request fails at once with a message, not with a MemoryError or the out-of-memory
    killer.  Called where the memory is about to be allocated, not for shape queries."""
    need = math.prod(shape) * itemsize + 24 * table_positions
    if need > 2**30:  # only large requests pay for asking the system
        budget = memory_budget()
        if need > budget:
            raise ValueError(f"the output would need about {need / 2**30:.1f} GiB (shape {tuple(shape)}), more than "
                             f"the {budget / 2**30:.1f} GiB of memory this process can have")


def memory_budget() -> int:
    """Bytes this process could still allocate: the smaller of physical memory and what its
    address-space limit (``ulimit -v``) leaves."""
    budget = 2**63
    try:
        budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            budget = min(budget, soft - used)
    except (ImportError, ValueError, OSError):
        pass
    return budget


# --------------------------------------------------------------------------------------------
# fractional intervals
# --------------------------------------------------------------------------------------------


def fractional_starts(u: np.ndarray, in_size: int, out_size: int, pool: int, dtype: np.dtype) -> np.ndarray:
    """The window starts of fractional max pooling along one axis, one row per plane (sample
    ``u``): PyTorch's ``generate_intervals`` for every plane at once, in ``dtype`` arithmetic:
    ``start[i] = int((i + u) * alpha) - int(u * alpha)``, ``alpha = (In - k) / (Out - 1)``, and
    the last window ends the axis."""
    u = u.astype(dtype)
    last = np.full((u.shape[0], 1), in_size - pool, dtype=np.int64)
    if out_size == 1:
        return last
    alpha = dtype.type(in_size - pool) / dtype.type(out_size - 1)
    i = np.arange(out_size - 1).astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        a = ((i[None, :] + u[:, None]) * alpha).astype(np.int64)
        b = (u * alpha).astype(np.int64)
    return np.concatenate([a - b[:, None], last], axis=1)


# --------------------------------------------------------------------------------------------
# ROI bins and samples
# --------------------------------------------------------------------------------------------


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Round half away from zero (C's ``round``), elementwise."""
    a = np.abs(v)
    f = np.floor(a)
    r = f + (a - f >= 0.5)
    return np.where(v < 0, -r, r)


def roi_pool_bins(start: np.ndarray, size: np.ndarray, pooled: int, limit: int,
                  dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The bins of ROI max pooling along one axis: for ROI k, bin i covers
    ``[start + floor(i * size / pooled), start + ceil((i + 1) * size / pooled))`` clipped to
    ``[0, limit]``, computed in ``dtype`` as ONNX Runtime and torchvision do.  (K, pooled) int64
    tables of first and past-the-end positions."""
    bin_size = size.astype(dtype) / dtype.type(pooled)
    i = np.arange(pooled).astype(dtype)
    lo = np.floor(i[None, :] * bin_size[:, None]).astype(np.int64)
    hi = np.ceil((i + dtype.type(1))[None, :] * bin_size[:, None]).astype(np.int64)
    lo = np.clip(lo + start[:, None], 0, limit)
    hi = np.clip(hi + start[:, None], 0, limit)
    return np.ascontiguousarray(lo), np.ascontiguousarray(hi)


def roi_align_samples(start, bin_size, grid, pooled: int, size: int, T: np.dtype) -> tuple:
    """Per-ROI sample tables of one axis: rows (or columns) low/high, weights, in-range flags.

    ONNX Runtime's ``PreCalcForBilinearInterpolate``, operation by operation in ``T``."""
    k = start.shape[0]
    g = max(int(grid.max()) if k else 0, 1)
    i = np.arange(pooled).astype(T)
    half = (np.arange(g) + 0.5).astype(T)
    safe = np.where(grid > 0, grid, 1).astype(T)
    with np.errstate(all="ignore"):
        pos = (start[:, None, None] + i[None, :, None] * bin_size[:, None, None]) + (
            half[None, None, :] * bin_size[:, None, None]) / safe[:, None, None]
    ok = ~((pos < -1.0) | (pos > T.type(size)))
    pos = np.where(ok, pos, T.type(0))
    pos = np.where(pos <= 0, T.type(0), pos)
    lo = pos.astype(np.int64)
    top = lo >= size - 1
    lo = np.where(top, size - 1, lo)
    hi = np.where(top, size - 1, lo + 1)
    pos = np.where(top, lo.astype(T), pos)
    frac = (pos - lo.astype(T)).astype(T)
    rest = (T.type(1) - frac).astype(T)
    c = np.ascontiguousarray
    return c(lo), c(hi), c(frac), c(rest), c(ok)


# --------------------------------------------------------------------------------------------
# blocks of output positions (chunked arrays)
# --------------------------------------------------------------------------------------------


def block_plan(ap: AxisPlan, i0: int, i1: int) -> tuple[int, int, AxisPlan]:
    """``(lo, hi, plan)`` for the output positions ``i0 <= i < i1`` of one axis: the input range
    ``[lo, hi)`` their windows read, and the plan of exactly those windows over that range alone.

    The block's windows are the plan's own -- the same taps, shifted by ``lo``, with the same
    ``counts`` and ``pad_counts`` -- so pooling ``x[lo:hi]`` with the block plan gives outputs
    ``i0:i1`` of pooling ``x`` with ``ap``, whatever the block (a chunked array pooled block by
    block equals the in-memory result by construction).  A sliding plan stays a sliding plan (the
    kernels keep their fast paths): its padding becomes ``pad_before' = lo + pad_before - i0 * stride``
    (>= 0: no window of the block starts before window ``i0``) and ``pad_after' = in_size + pad_after - hi``,
    which keeps every window's valid taps and its ``count_include_pad`` divisor.  Other plans
    become window tables.
    """
    if not 0 <= i0 < i1 <= ap.out_size:
        raise ValueError(f"block [{i0}, {i1}) is not inside the {ap.out_size} output positions")
    starts, counts = ap.starts[i0:i1], ap.counts[i0:i1]
    lo = int(starts.min())  # with dilation, a later window's first valid tap can come first
    hi = int((starts + (counts - 1) * ap.dilation).max()) + 1
    if ap.table is None and not ap.adaptive:
        pb = lo + ap.pad_before - i0 * ap.stride
        pa = ap.in_size + ap.pad_after - hi
        n, size = i1 - i0, hi - lo
        full_lo, full_hi = max(ap.full_lo, i0) - i0, min(ap.full_hi, i1) - i0
        if full_hi <= full_lo:
            full_lo = full_hi = 0
        return lo, hi, AxisPlan(size, n, ap.kernel, ap.stride, ap.dilation, pb, pa, full_lo, full_hi)
    sub = AxisPlan(hi - lo, i1 - i0, int(counts.max()), 0, ap.dilation, 0, 0,
                   table=(_frozen(starts - lo), _frozen(counts)))
    return lo, hi, sub
