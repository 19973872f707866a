"""Max, average and Lp pooling over any number of axes, forward and backward.

Public functions validate and normalise their arguments, ask :mod:`poolkit._geometry` for a plan,
and run the reductions of :mod:`poolkit._engine` on it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from . import _engine as E
from . import _geometry as geo
from . import _validate as V
from ._docs import fill
from ._validate import ArrayLike, Axes, Padding, Sizes

__all__ = [
    "max_pool",
    "avg_pool",
    "lp_pool",
    "max_pool_backward",
    "avg_pool_backward",
    "lp_pool_backward",
    "max_unpool",
    "output_shape",
    "resolve_padding",
    "min_pool",
    "min_pool_backward",
    "mode_pool",
]

# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _plan(x_shape, kernel_size, stride, padding, dilation, ceil_mode, axes) -> geo.Plan:
    return geo.make_plan(x_shape, kernel_size, stride, padding, dilation, ceil_mode, axes)


#: The last prepared call of each op ("max", "avg", "global_max", "global_avg") whose arguments are
#: all immutable: (arguments, shape, dtype, the call: :func:`poolkit._engine.prepared_call`'s new-result
#: call, or :func:`poolkit._engine.whole_call`).  See :func:`_repeated`.
_LAST: dict[str, tuple] = {}

#: The flags of an input a remembered max or average call takes (C order, aligned: see
#: :func:`poolkit._engine._entry_point`).
_CA = E.C_ALIGNED

#: Argument types whose values cannot change once made (tuples of them too).
_IMMUTABLE = frozenset((int, bool, str, type(None)))


def _immutable(a) -> bool:
    return type(a) in _IMMUTABLE or (type(a) is tuple and all(_immutable(b) for b in a))


def _repeated(op: str, x, args: tuple):
    """The prepared call of ``op``'s last call when this one repeats it -- the very same
    argument objects, on a C-contiguous ndarray of the same shape and dtype -- else None.

    A loop or a layer passes the same literals every time (a tuple literal is
    one object, small ints are cached): those objects were validated when they were remembered and
    cannot have changed since (only immutable ones are), so the plan made from them holds, and the
    call skips validation and planning (with its prepared call, a (1, 1, 6, 6) global average went
    from 15.8 to 2.9 us).  Identity, not equality: ``2.0 == 2`` and ``True == 1``, and both are
    refused.

    Used by the global poolings; ``max_pool`` and ``avg_pool`` apply the same rule inline, their
    remembered arguments unpacked (a (1, 1, 6, 6) call 0.2 us faster than this map), and take
    only aligned inputs, for their kernels' entry points."""
    last = _LAST.get(op)
    if last is None or type(x) is not np.ndarray:
        return None
    remembered, shape, dtype, call = last
    if x.shape == shape and x.dtype is dtype and x.flags.c_contiguous and all(map(operator.is_, args, remembered)):
        return call
    return None


def _remember(op: str, x: np.ndarray, args: tuple, prepare) -> None:
    """Keep the prepared call of ``op`` on ``x`` for :func:`_repeated`, if every argument is
    immutable and ``prepare()`` (which returns the prepared new-result call, or None) finds one.
    Those checks come first: a call passing a list prepares nothing."""
    if type(x) is np.ndarray and x.flags.c_contiguous and _immutable(args):
        call = prepare()
        if call is not None:
            _LAST[op] = (args, x.shape, x.dtype, call)


def _new_result(prepared) -> object:
    """The new-result call of :func:`poolkit._engine.prepared_call`'s pair, or None."""
    return None if prepared is None else prepared[0]


def _check_out(out: object, shape: tuple[int, ...], dtype: np.dtype, *read: np.ndarray | None) -> np.ndarray | None:
    """Check a caller's ``out=`` for a result of ``shape`` and ``dtype`` (native) and return the array
    the engine may write straight into (``out`` as a plain ndarray), or None when ``out`` may share
    memory with one of the arrays the computation ``read``s: the result is then computed apart
    first (:func:`_deliver` copies it in), so it is right whatever the overlap.

    ``out`` must be a writeable ndarray of exactly ``shape`` and ``dtype`` -- NumPy's ``out=`` with
    no casting.  Either byte order is accepted: the kernels write native arrays only, so a byte-swapped
    ``out`` receives a copy, as any ``out`` a kernel cannot write directly (see ``_engine.takes``)."""
    if not isinstance(out, np.ndarray) or isinstance(out, np.ma.MaskedArray):
        kind = "a numpy.ma.MaskedArray (its mask would not be set)" if isinstance(out, np.ndarray) else \
            type(out).__name__
        raise TypeError(f"out must be a numpy.ndarray, got {kind}")
    if not out.flags.writeable:
        raise ValueError(f"out must be writeable, got a read-only array of shape {out.shape} and dtype {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out must have the result's shape {shape}, got shape {out.shape}")
    if E.native(out.dtype) != dtype:
        raise TypeError(f"out must have the result's dtype {dtype} (no casting), got dtype {out.dtype}")
    if any(a is not None and np.may_share_memory(out, a) for a in read):
        return None
    return out if type(out) is np.ndarray else out.view(np.ndarray)


def _deliver(result: np.ndarray, direct: np.ndarray | None, out: np.ndarray) -> np.ndarray:
    """``out`` holding ``result``: copied in unless the engine wrote it there (``direct``, from
    :func:`_check_out`)."""
    if result is not direct:
        np.copyto(out, result)
    return out


def _no_lazy_out(out: object) -> None:
    """A Dask input's result is lazy: there is nothing to write into ``out`` yet."""
    if out is not None:
        raise TypeError(f"out must be None for a Dask array input (its result is lazy), got {type(out).__name__}")


def _check_acc(acc_dtype: object, x_dtype: np.dtype | None) -> np.dtype:
    """The dtype of an average's sums: float64, or float32 when asked for a float32 x (``x_dtype``;
    None for a Dask input, whose sums are float64)."""
    bad = ValueError(f"acc_dtype must be 'float64' or 'float32', got {acc_dtype!r}")
    try:
        acc = np.dtype(acc_dtype)  # type: ignore[call-overload]
    except TypeError:
        raise bad from None
    if acc == E.F64:
        return acc
    if acc != np.float32:
        raise bad
    if x_dtype is None:
        raise ValueError("acc_dtype='float32' is for NumPy inputs; a Dask input's sums are float64")
    if E.native(x_dtype) != np.float32:
        raise ValueError(f"acc_dtype='float32' needs a float32 x, got x of dtype {x_dtype}")
    return acc


def _check_avg_options(count_include_pad, divisor_override):
    V.check_bool("count_include_pad", count_include_pad)
    if divisor_override is not None:
        if not V.is_int(divisor_override):
            raise TypeError(f"divisor_override must be an integer or None, got {divisor_override!r}")
        if divisor_override == 0 or abs(divisor_override) > geo.MAX_GEOMETRY:
            raise ValueError(f"divisor_override must be a nonzero integer within +-2**62, got {divisor_override!r}")


def _lp_scaled(x, p: float) -> tuple[np.ndarray, int]:
    """(|x| * 2**k, k) in float64, the exponent k chosen so that |x|**p neither overflows nor
    underflows for the array's largest finite magnitude: without it
    ``lp_pool([[3e200, 4e200]], 2, ...)`` gave inf where 5e200 is right.  Scaling by a power of two
    with ``ldexp`` is exact for any k (``2.0 ** k`` itself overflows for the k of a subnormal
    maximum such as 5e-324).  Values far below the largest (by more than about 2**(1000 / p)) may
    still underflow to 0.  Undo with :func:`_unscaled`."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    top = float(finite.max()) if finite.size else 0.0
    k = 0
    if top > 0 and p * abs(math.log2(top)) > 900:
        k = -math.frexp(top)[1]
        a = np.ldexp(a, k)
    return a, k


def _unscaled(y: np.ndarray, k: int) -> np.ndarray:
    """``y / 2**k``, exactly (see :func:`_lp_scaled`)."""
    return np.ldexp(y, -k) if k else y


def _pow(a: np.ndarray, p: float) -> np.ndarray:
    return a if p == 1.0 else (a * a if p == 2.0 else a**p)


def _lp_norms(x, p: float, plan: geo.Plan) -> tuple[np.ndarray, np.ndarray, int]:
    """(y * 2**k, |x| * 2**k, k): the window norms ``y = (sum |x|**p) ** (1/p)`` computed on the
    scaled magnitudes (float64)."""
    a, scale = _lp_scaled(x, p)
    with np.errstate(under="ignore"):
        sums = E.sum_reduce(_pow(a, p), plan)
        ys = sums if p == 1.0 else (np.sqrt(sums) if p == 2.0 else sums ** (1.0 / p))
    return ys, a, scale


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

@fill
def max_pool(x: ArrayLike, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *,
             dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None,
             return_indices: bool = False, out: np.ndarray | None = None
             ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling over any number of axes.

    Parameters
    ----------
{X_ANY}
{SHARED}
{RETURN_INDICES}
{OUT}
        Its shape is ``output_shape(x.shape, ...)`` and its dtype that of ``x``; the indices
        are a new array.  Not for a Dask ``x`` (its result is lazy).

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis replaced by its output size; dtype of ``x``.
    indices : ndarray of int64, optional
        Flat index of each maximum over the pooled axes of the unpadded input, row-major in
        ascending axis order (PyTorch's per-plane index).  Only with ``return_indices=True``.

    Notes
    -----
{SIZE_RULE}

    Padded cells never win.  Ties go to the first maximum in row-major window order, and NaN
    propagates: a window holding NaN gives NaN and its index points at the first NaN.  Tied
    elements have the same bits, but for 0.0 and -0.0 and NaNs of other payloads: where a window's
    maximum is a tie of both zeros, or it holds several NaNs, the maxima alone (without
    ``return_indices``) may carry the bits of another of the tied elements than the indexed one
    (channels-first windows are reduced a column's rows first); with ``return_indices=True`` each
    maximum is its indexed element, bits included.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[1, 3, 2, 1],
    ...               [2, 9, 1, 1],
    ...               [1, 4, 2, 3],
    ...               [5, 6, 1, 2]])
    >>> poolkit.max_pool(x, (2, 2))
    array([[9, 2],
           [6, 3]])
    >>> out, idx = poolkit.max_pool(x, (2, 2), return_indices=True)
    >>> idx
    array([[ 5,  2],
           [13, 11]])

    A channels-last batch ``(N, H, W, C)`` pools its spatial axes with ``axes``:

    >>> poolkit.max_pool(np.zeros((8, 28, 28, 3)), 2, axes=(1, 2)).shape
    (8, 14, 14, 3)

    A loop can write every result into one buffer (``out``, as in NumPy), which it gets back:

    >>> buf = np.empty((2, 2), dtype=x.dtype)
    >>> poolkit.max_pool(x, (2, 2), out=buf) is buf
    True
    >>> buf
    array([[9, 2],
           [6, 3]])
    """
    # a repeat of the last call takes its prepared call (see _repeated), checked inline: the
    # remembered arguments (in the order of ``args`` below) unpacked and compared one by one, which
    # made a (1, 1, 6, 6) call 0.2 us faster than _repeated's map over them.  ``out`` is an argument
    # too: an ndarray is never remembered, so a call with ``out`` never takes the prepared call
    # (which allocates its result)
    last = _LAST.get("max")
    if last is not None and type(x) is np.ndarray:
        (k0, s0, p0, d0, c0, a0, r0, o0), shape, dtype, call = last
        if (kernel_size is k0 and stride is s0 and padding is p0 and dilation is d0 and ceil_mode is c0
                and axes is a0 and return_indices is r0 and out is o0
                and x.shape == shape and x.dtype is dtype and x.flags.num & _CA == _CA):
            return call(x)
    args = (kernel_size, stride, padding, dilation, ceil_mode, axes, return_indices, out)
    if _is_dask(x):
        lazy = _lazy().max_pool(x, kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode, axes=axes,
                                return_indices=return_indices)
        _no_lazy_out(out)
        return lazy
    x = V.check_array(x)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    if out is not None:
        direct = _check_out(out, plan.out_shape, E.native(x.dtype), x)
        res, idx = E.max_reduce(x, plan, bool(return_indices), direct)
        res = _deliver(res, direct, out)
        return (res, idx) if return_indices else res
    res, idx = E.max_reduce(x, plan, bool(return_indices))
    if return_indices:
        return res, idx
    _remember("max", x, args, lambda: _new_result(E.prepared_call(plan, "max", x)))
    return res


@fill
def avg_pool(x: ArrayLike, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *,
             dilation: Sizes = 1, ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None, axes: Axes = None, out: np.ndarray | None = None,
             acc_dtype: DTypeLike = "float64") -> np.ndarray:
    """Average pooling over any number of axes.

    Parameters
    ----------
{X_ANY}
{SHARED}
    count_include_pad : bool, optional
        Divide by the number of window cells inside the padded input (True, PyTorch's default) or
        only by the cells inside the input (False, TensorFlow's SAME behaviour).  In ceil mode the
        overhang of the last window past the padding is never counted.
    divisor_override : int, optional
        Divide every window sum by this instead.
{OUT}
        Its shape is ``output_shape(x.shape, ...)``; its dtype that of a float ``x``, float64 for
        integer and bool inputs.  Not for a Dask ``x`` (its result is lazy).
{ACC_DTYPE}

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis replaced by its output size.  Float inputs keep their dtype
        (sums are accumulated in float64 unless ``acc_dtype`` says otherwise); integer and bool
        inputs give float64.

    Notes
    -----
{SIZE_RULE}

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> poolkit.avg_pool(np.array([[1., 3, 2, 1], [2, 9, 1, 1]]), (2, 2))
    array([[3.75, 1.25]])
    >>> poolkit.avg_pool(np.ones((3, 3)), (2, 2), stride=2, padding=1, count_include_pad=False)
    array([[1., 1.],
           [1., 1.]])

    A loop can write every result into one buffer (``out``, as in NumPy), which it gets back:

    >>> buf = np.empty((1, 2))
    >>> poolkit.avg_pool(np.array([[1., 3, 2, 1], [2, 9, 1, 1]]), (2, 2), out=buf) is buf
    True
    >>> buf
    array([[3.75, 1.25]])

    float32 sums, for speed (``acc_dtype``):

    >>> poolkit.avg_pool(np.array([[1, 3, 2, 1], [2, 9, 1, 1]], np.float32), (2, 2), acc_dtype="float32")
    array([[3.75, 1.25]], dtype=float32)
    """
    # a repeat of the last call, checked inline (see max_pool); a call with ``out`` never repeats one
    last = _LAST.get("avg")
    if last is not None and type(x) is np.ndarray:
        (k0, s0, p0, d0, c0, i0, v0, a0, o0, t0), shape, dtype, call = last
        if (kernel_size is k0 and stride is s0 and padding is p0 and dilation is d0 and ceil_mode is c0
                and count_include_pad is i0 and divisor_override is v0 and axes is a0 and out is o0
                and acc_dtype is t0 and x.shape == shape and x.dtype is dtype and x.flags.num & _CA == _CA):
            return call(x)
    args = (kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override, axes, out,
            acc_dtype)
    if _is_dask(x):
        lazy = _lazy().avg_pool(x, kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode,
                                count_include_pad=count_include_pad, divisor_override=divisor_override, axes=axes)
        _check_acc(acc_dtype, None)
        _no_lazy_out(out)
        return lazy
    x = V.check_array(x)
    _check_avg_options(count_include_pad, divisor_override)
    acc = _check_acc(acc_dtype, x.dtype)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    dtype = E.float_dtype(x.dtype)
    if out is not None:
        direct = _check_out(out, plan.out_shape, dtype, x)
        res = E.pool_sums(x, plan, dtype, bool(count_include_pad), divisor_override, direct, acc)
        return _deliver(res, direct, out)
    res = E.pool_sums(x, plan, dtype, bool(count_include_pad), divisor_override, None, acc)
    _remember("avg", x, args,
              lambda: _new_result(E.prepared_call(plan, "sum", x, bool(count_include_pad), divisor_override, acc)))
    return res


@fill
def lp_pool(x: ArrayLike, p: float, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *,
            dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None,
            out: np.ndarray | None = None) -> np.ndarray:
    """Lp-norm pooling: ``(sum |x|**p) ** (1/p)`` over each window.

    Parameters
    ----------
{X_ANY}
    p : float
        The norm's order, finite and > 0 (``p=1`` sums magnitudes, ``p=2`` is the Euclidean norm).
{SHARED}
{OUT}
        Its shape is ``output_shape(x.shape, ...)``; its dtype that of a float ``x``, float64 for
        integer and bool inputs.  Not for a Dask ``x`` (its result is lazy).

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis replaced by its output size; float inputs keep their dtype,
        integer and bool inputs give float64.

    Notes
    -----
{SIZE_RULE}

    Padding counts as zeros, as in ONNX ``LpPool``.  PyTorch's ``lp_pool`` (signed, scaled by the
    full kernel in ceil mode) is available in ``poolkit.compat.torch``.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> poolkit.lp_pool(np.array([[3., -4, 1, 0]]), 2, (1, 2))
    array([[5., 1.]])
    """
    if _is_dask(x):
        lazy = _lazy().lp_pool(x, p, kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode, axes=axes)
        _no_lazy_out(out)
        return lazy
    x = V.check_array(x)
    p = V.check_p(p)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    dtype = E.float_dtype(x.dtype)
    if out is not None:  # checked before any work; the norms go through float64 buffers, then copied in
        _check_out(out, plan.out_shape, dtype)
    ys, _, scale = _lp_norms(x, p, plan)
    res = E.narrow(_unscaled(ys, scale), dtype)
    return res if out is None else _deliver(res, None, out)


@fill
def max_pool_backward(grad_output: ArrayLike, x: ArrayLike, kernel_size: Sizes, stride: Sizes | None = None,
                      padding: Padding = 0, *, dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None,
                      indices: ArrayLike | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of max pooling: each output's gradient goes to its window's maximum.

    Parameters
    ----------
{WINNER_BACKWARD}
{OUT}
        Its shape is that of ``x``; its dtype that of a float ``x``, float64 for integer and bool
        inputs.  Its old contents do not matter: every element is written.

    Returns
    -------
    grad_x : ndarray
        The gradient of ``sum(grad_output * max_pool(x, ...))`` with respect to ``x``: shape of
        ``x``, dtype of ``x`` for float inputs (float64 for integer and bool inputs).  Where
        windows overlap, the gradients of all windows sharing a maximum add up.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[1., 3, 2, 1],
    ...               [2, 9, 1, 1]])
    >>> poolkit.max_pool_backward(np.array([[10., 20]]), x, (2, 2))
    array([[ 0.,  0., 20.,  0.],
           [ 0., 10.,  0.,  0.]])

    A training loop can write every gradient into one buffer (``out``, as in NumPy):

    >>> grad = np.full_like(x, np.nan)
    >>> poolkit.max_pool_backward(np.array([[10., 20]]), x, (2, 2), out=grad) is grad
    True
    >>> grad
    array([[ 0.,  0., 20.,  0.],
           [ 0., 10.,  0.,  0.]])
    """
    x = V.check_array(x)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    if out is None:
        return E.max_backward(grad_output, x, plan, indices)
    g = V.check_shape_of("grad_output", grad_output, plan.out_shape)
    idx = None if indices is None else V.check_indices(indices, plan.out_shape)
    # x is read before out is written (the indices are found first): only g and idx must not overlap it
    direct = _check_out(out, plan.in_shape, E.float_dtype(x.dtype), g, idx)
    return _deliver(E.max_backward(g, x, plan, idx, direct), direct, out)


@fill
def avg_pool_backward(grad_output: ArrayLike, x: ArrayLike, kernel_size: Sizes, stride: Sizes | None = None,
                      padding: Padding = 0, *, dilation: Sizes = 1, ceil_mode: bool = False,
                      count_include_pad: bool = True, divisor_override: int | None = None,
                      axes: Axes = None, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of average pooling: each output's gradient is spread evenly over its window.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to the output of ``avg_pool(x, ...)``, of that output's shape.
    x : ndarray
        The forward input (only its shape and dtype are used).
{SHARED}
    count_include_pad, divisor_override
        As in :func:`avg_pool`.
{OUT}
        Its shape is that of ``x``; its dtype that of a float ``x``, float64 for integer and bool
        inputs.  Its old contents do not matter: every element is written.

    Returns
    -------
    grad_x : ndarray
        The gradient of ``sum(grad_output * avg_pool(x, ...))``: each input cell receives
        ``grad_output / divisor`` from every window holding it.  Shape of ``x``, dtype of ``x``
        for float inputs (float64 otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> poolkit.avg_pool_backward(np.array([[4., 8.]]), np.zeros((2, 4)), (2, 2))
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]])

    A training loop can write every gradient into one buffer (``out``, as in NumPy):

    >>> grad = np.empty((2, 4))
    >>> poolkit.avg_pool_backward(np.array([[4., 8.]]), np.zeros((2, 4)), (2, 2), out=grad) is grad
    True
    """
    x = V.check_array(x)
    _check_avg_options(count_include_pad, divisor_override)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    g = V.check_shape_of("grad_output", grad_output, plan.out_shape)
    dtype = E.float_dtype(x.dtype)
    if out is None:
        return E.spread(g, plan, dtype, bool(count_include_pad), divisor_override)
    direct = _check_out(out, plan.in_shape, dtype, g)  # x is not read (its shape and dtype only)
    return _deliver(E.spread(g, plan, dtype, bool(count_include_pad), divisor_override, direct), direct, out)


@fill
def lp_pool_backward(grad_output: ArrayLike, x: ArrayLike, p: float, kernel_size: Sizes,
                     stride: Sizes | None = None, padding: Padding = 0, *, dilation: Sizes = 1,
                     ceil_mode: bool = False, axes: Axes = None) -> np.ndarray:
    """Gradient of Lp pooling.

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to the output of ``lp_pool(x, p, ...)``, of that output's shape.
    x : ndarray
        The forward input.
    p : float
        As in :func:`lp_pool`.
{SHARED}

    Returns
    -------
    grad_x : ndarray
        ``sign(x) * |x|**(p-1) * sum over windows of grad_output * y**(1-p)`` where ``y`` is the
        forward output; a window whose norm is 0 passes no gradient (its subgradient 0 is chosen).
        Shape of ``x``, dtype of ``x`` for float inputs (float64 otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> poolkit.lp_pool_backward(np.array([[1.]]), np.array([[3., -4.]]), 2, (1, 2))
    array([[ 0.6, -0.8]])
    """
    x = V.check_array(x)
    p = V.check_p(p)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    g = V.check_shape_of("grad_output", grad_output, plan.out_shape)
    # sign(x) |x|**(p-1) y**(1-p) does not change when x and y are scaled alike: use the scaled ones
    ys, a, _ = _lp_norms(x, p, plan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        factor = np.where(ys > 0, g * ys ** (1.0 - p), 0.0)
        spread = E.sum_adjoint(factor, plan)
        sign = np.sign(np.asarray(x, dtype=np.float64))
        local = sign if p == 1.0 else np.where(a != 0, sign * a ** (p - 1.0), 0.0)
        grad = spread * local
    return E.narrow(grad, E.float_dtype(x.dtype))


def max_unpool(values: ArrayLike, indices: ArrayLike, output_size: Sizes, *, axes: Axes = None) -> np.ndarray:
    """Place pooled values back at their flat indices in a zero array (PyTorch's MaxUnpool).

    Parameters
    ----------
    values : ndarray
        Pooled values, e.g. the output of ``max_pool(..., return_indices=True)``.
    indices : ndarray of int
        Flat indices over the pooled axes (row-major), same shape as ``values``.
    output_size : int or sequence of int
        Size of each pooled axis of the result.
    axes : sequence of int, optional
        The pooled axes; by default the last ``len(output_size)``.

    Returns
    -------
    out : ndarray
        ``values``' shape with each pooled axis replaced by ``output_size``, dtype of ``values``;
        zero everywhere except at the indices.  When two values share an index the later one (in
        row-major order) wins.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[1., 3, 2, 1],
    ...               [2, 9, 1, 1]])
    >>> v, i = poolkit.max_pool(x, (2, 2), return_indices=True)
    >>> poolkit.max_unpool(v, i, (2, 4))
    array([[0., 0., 2., 0.],
           [0., 9., 0., 0.]])
    """
    v = V.check_array(values, "values")
    n = geo.count_of(output_size, "output_size")
    ax = geo.normalize_axes(v.ndim, axes, n, "output_size")
    out_shape = geo.resized(v.shape, ax, geo.positive_tuple("output_size", output_size, len(ax)))
    geo.check_size(out_shape)
    geo.check_memory(out_shape, v.dtype.itemsize)
    idx = V.check_indices(indices, v.shape)
    return E.scatter(v, idx, sorted(ax), out_shape, v.dtype, False)


@fill
def output_shape(input_shape: Sequence[int], kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0,
                 *, dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None) -> tuple[int, ...]:
    """The shape pooling gives, without pooling anything.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of the input.
{SHARED}

    Returns
    -------
    shape : tuple of int
        ``input_shape`` with each pooled axis replaced by its output size.

    Notes
    -----
{SIZE_RULE}

    Examples
    --------
    >>> import poolkit
    >>> poolkit.output_shape((1, 64, 112, 112), (3, 3), 2, 1)
    (1, 64, 56, 56)
    >>> poolkit.output_shape((1, 3, 5, 5), (2, 2), 2, ceil_mode=True)
    (1, 3, 3, 3)
    """
    return _plan(input_shape, kernel_size, stride, padding, dilation, ceil_mode, axes).out_shape


@fill
def resolve_padding(input_shape: Sequence[int], kernel_size: Sizes, stride: Sizes | None = None,
                    padding: Padding = 0, *, dilation: Sizes = 1, ceil_mode: bool = False,
                    axes: Axes = None) -> tuple[tuple[int, int], ...]:
    """The explicit ``(before, after)`` padding of every pooled axis, for any padding form.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of the input.
{SHARED}

    Returns
    -------
    pads : tuple of (int, int)
        One ``(before, after)`` pair per pooled axis, in the order of ``axes`` (ascending when
        ``axes`` is not given).  This shows what ``"same"`` means: TensorFlow and ONNX pad
        asymmetrically, with the odd cell at the end.

    Examples
    --------
    >>> import poolkit
    >>> poolkit.resolve_padding((1, 5, 6), (3, 2), 2, "same")
    ((1, 1), (0, 0))
    >>> poolkit.resolve_padding((1, 6, 6), (3, 3), 2, "same")
    ((0, 1), (0, 1))
    """
    plan = _plan(input_shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    shape = geo.check_shape(input_shape)
    given = geo.normalize_axes(len(shape), axes, geo.count_of(kernel_size))
    by_axis = dict(zip(plan.axes, plan.pads))
    return tuple(by_axis[a] for a in given)


# --------------------------------------------------------------------------------------------
# min and mode pooling
# --------------------------------------------------------------------------------------------


def _is_dask(x) -> bool:
    """True for a ``dask.array.Array``, told by its type's module: dask is never imported here."""
    return type(x) is not np.ndarray and type(x).__module__.startswith("dask.")


def _lazy():
    """poolkit's Dask module (imported on first use: ``import poolkit`` never imports dask)."""
    from . import dask as lazy

    return lazy


def _reversed_order(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The order-reversing bijection of min pooling: ``~x`` for integers and bools (``~v = -v - 1``
    for signed, ``max - v`` for unsigned, ``not v`` for bools: no overflow, unlike ``-x``), ``-x``
    for floats (exact, and NaN stays NaN).  It is its own inverse, bit for bit.  Written into
    ``out`` (of x's shape and dtype) when given, which is returned."""
    f = np.negative if x.dtype.kind == "f" else np.invert
    return f(x) if out is None else f(x, out=out)


@fill
def min_pool(x: ArrayLike, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *,
             dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None, return_indices: bool = False,
             out: np.ndarray | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Min pooling over any number of axes: the rules of :func:`max_pool`, order reversed.

    Parameters
    ----------
{X_ANY}
{SHARED}
    return_indices : bool, optional
        Also return where each minimum came from.
{OUT}
        Its shape is ``output_shape(x.shape, ...)``; its dtype that of ``x``.  It receives the
        minima (the indices are a new array).  Not for a Dask ``x`` (its result is lazy).

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis replaced by its output size; dtype of ``x``.
    indices : ndarray of int64, optional
        Flat index of each minimum over the pooled axes of the unpadded input, row-major in
        ascending axis order.  Only with ``return_indices=True``.

    Notes
    -----
{SIZE_RULE}

    Padded cells never win.  Ties go to the first minimum in row-major window order, and NaN
    propagates: a window holding NaN gives NaN and its index points at the first NaN.

    It is computed as ``r(max_pool(r(x)))`` with ``r`` the order-reversing bijection ``~x`` for
    integers and bools and ``-x`` for floats: ``r`` is strictly decreasing (``a < b`` exactly
    when ``r(a) > r(b)``), maps equal values to equal values and NaN to NaN, and ``r(r(v))`` is
    ``v`` bit for bit.  So the first maximum of ``r`` over a window sits where the first minimum
    of ``x`` does (the same index), its value maps back to that minimum exactly, and a NaN is found
    first in both.  ``~`` cannot overflow, unlike ``-x`` on ``int8(-128)`` or unsigned values.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[1, 3, 2, 1],
    ...               [2, 9, 1, 1],
    ...               [1, 4, 2, 3],
    ...               [5, 6, 0, 2]], dtype=np.uint8)
    >>> poolkit.min_pool(x, (2, 2))
    array([[1, 1],
           [1, 0]], dtype=uint8)
    >>> poolkit.min_pool(x, (2, 2), return_indices=True)[1]
    array([[ 0,  3],
           [ 8, 14]])
    """
    if _is_dask(x):
        lazy = _lazy().min_pool(x, kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode, axes=axes,
                                return_indices=return_indices)
        _no_lazy_out(out)
        return lazy
    x = V.check_array(x)
    ret = V.check_bool("return_indices", return_indices)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    if out is not None:  # checked before any work; x is read before out is written
        _check_out(out, plan.out_shape, E.native(x.dtype))
    res, idx = E.max_reduce(_reversed_order(x), plan, ret)
    res = _reversed_order(res, out)
    return (res, idx) if ret else res


@fill
def min_pool_backward(grad_output: ArrayLike, x: ArrayLike, kernel_size: Sizes, stride: Sizes | None = None,
                      padding: Padding = 0, *, dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None,
                      indices: ArrayLike | None = None) -> np.ndarray:
    """Gradient of min pooling: each output's gradient goes to its window's (first) minimum.

    Parameters
    ----------
{WINNER_BACKWARD}

    Returns
    -------
    grad_x : ndarray
        The gradient of ``sum(grad_output * min_pool(x, ...))`` with respect to ``x``: shape of
        ``x``, dtype of ``x`` for float inputs (float64 for integer and bool inputs).  Where
        windows overlap, the gradients of all windows sharing a minimum add up.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> x = np.array([[1., 3, 2, 1],
    ...               [2, 9, 1, 0]])
    >>> poolkit.min_pool_backward(np.array([[10., 20]]), x, (2, 2))
    array([[10.,  0.,  0.,  0.],
           [ 0.,  0.,  0., 20.]])
    """
    x = V.check_array(x)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    return E.max_backward(grad_output, x if indices is not None else _reversed_order(x), plan, indices)


@fill
def mode_pool(x: ArrayLike, kernel_size: Sizes, stride: Sizes | None = None, padding: Padding = 0, *,
              dilation: Sizes = 1, ceil_mode: bool = False, axes: Axes = None) -> np.ndarray:
    """Mode pooling: the most frequent value of each window (downsampling label images).

    Parameters
    ----------
{X_ANY}
{SHARED}

    Returns
    -------
    out : ndarray
        ``x`` with each pooled axis replaced by its output size; dtype of ``x``.  Meant for
        integer and bool label images; floats are accepted.

    Notes
    -----
{SIZE_RULE}

    Only the window's cells inside the input count (padded cells never do).  Ties go to the
    smallest of the most frequent values.  Values are equal when ``==`` says so: -0.0 and 0.0
    are one value (reported as 0.0), and all NaNs are one value that ranks after every number, so
    a window's mode is NaN only when NaN is strictly its most frequent value.  Compiled
    (:mod:`poolkit._kernels.mode`): each window is gathered and sorted, about ``k log k`` for
    ``k`` taps.

    Examples
    --------
    >>> import numpy as np
    >>> import poolkit
    >>> labels = np.array([[1, 1, 2, 3],
    ...                    [4, 1, 3, 2],
    ...                    [0, 0, 5, 5],
    ...                    [7, 7, 5, 6]])
    >>> poolkit.mode_pool(labels, (2, 2))
    array([[1, 2],
           [0, 5]])
    >>> poolkit.mode_pool(np.array([3, 3, 3, 1, 1, 1, 9]), (3,), ceil_mode=True)
    array([3, 1, 9])
    """
    if _is_dask(x):
        return _lazy().mode_pool(x, kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode, axes=axes)
    x = V.check_array(x)
    plan = _plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    return _mode_reduce(x, plan)


def _mode_reduce(x: np.ndarray, plan: geo.Plan) -> np.ndarray:
    """The window modes of ``x`` for ``plan`` (dtype of ``x``): the pooled axes moved last and
    flattened, one kernel call per chunk of output positions."""
    from ._kernels import mode as KM

    out_shape = plan.out_shape
    if 0 in out_shape:
        return np.empty(out_shape, E.native(x.dtype))
    cur = E.kernel_input(x)
    geo.check_memory(out_shape, cur.dtype.itemsize, sum(ap.out_size for ap in plan.axis_plans))
    batch = [a for a in range(x.ndim) if a not in plan.axes]
    perm = batch + list(plan.axes)
    aps = plan.axis_plans
    n_planes = math.prod(x.shape[a] for a in batch)
    n_out = math.prod(ap.out_size for ap in aps)
    x2 = np.ascontiguousarray(cur.transpose(perm)).reshape(n_planes, -1)
    tables = np.concatenate([ap.starts for ap in aps] + [ap.counts for ap in aps]).astype(np.int64)
    params = np.array([len(aps)] + [ap.in_size for ap in aps] + [ap.out_size for ap in aps]
                      + [ap.dilation for ap in aps], dtype=np.int64)
    taps = math.prod(int(ap.counts.max()) for ap in aps)
    out2 = np.empty((n_planes, n_out), dtype=cur.dtype)
    E.run(lambda t0, t1: KM.mode_window(x2, tables, params, np.empty(taps, cur.dtype), np.empty(3 * len(aps), np.int64),
                                        out2, t0, t1),
          n_planes * n_out, n_planes * n_out * taps)
    moved = out2.reshape(tuple(x.shape[a] for a in batch) + tuple(ap.out_size for ap in aps))
    return E.from_kernel(np.ascontiguousarray(moved.transpose(np.argsort(perm))), x.dtype)
