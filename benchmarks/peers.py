"""The contenders of a case: poolkit, each peer made to compute exactly what poolkit computes, and
the copy floor.

Every adapter returns ``Contender`` objects: a zero-argument call (what is timed), a function that
turns its result into a NumPy array in poolkit's layout and dtype (used by the output check, never
timed), the threads it runs on, and a line saying how it computes the same thing.  An adapter that
knows its library cannot compute the case (a dtype, a layout or a geometry it does not have)
returns a contender without a call and says why; errors raised by a library are caught by the
check and reported the same way.  Conversions a peer needs before the call (another layout, a
device copy) are made here, outside the timing, and the label says so.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .cases import Spec

OTHER_LAYOUT = "*"  # label mark: the peer pools a copy of the input in its other layout, made before timing
OWN_OUT = "poolkit out="  # poolkit writing into a buffer the caller gives it (the ops that take out=)
OWN_F32 = "poolkit float32 sums"  # a float32 average summed in float32 (acc_dtype="float32")
OWN = ("poolkit", OWN_OUT, OWN_F32, "copy floor")  # the contenders that are not peers


@dataclass
class Contender:
    label: str
    call: Callable[[], object] | None  # None: not run, `status` says why
    result: Callable[[object], np.ndarray] = np.asarray  # raw result -> array in poolkit's layout
    threads: str = ""
    how: str = ""
    status: str = ""  # filled by the check: "ok ...", "differs: ...", "unsupported: ..."
    peer: bool = True  # False for poolkit itself and the copy floor
    #: (enter, leave): called, untimed, around each run of the call (e.g. a library's thread count)
    around: tuple[Callable[[], object], Callable[[], object]] | None = None

    @property
    def timed(self) -> bool:
        return self.call is not None and self.status.startswith("ok")


def skipped(label: str, why: str) -> Contender:
    return Contender(label, None, status=f"not run: {why}")


@dataclass
class Tol:
    """What "equal" means for one case: exact, or np.allclose with these tolerances."""
    rtol: float = 0.0
    atol: float = 0.0
    why: str = "exact (np.array_equal)"

    @property
    def exact(self) -> bool:
        return self.rtol == 0 and self.atol == 0

    def text(self) -> str:
        if self.exact:
            return self.why
        return f"allclose rtol={self.rtol:.2g} atol={self.atol:.2g} ({self.why})"


@dataclass
class Setup:
    """One case, made: poolkit's call and result, every contender, the bytes and the tolerance."""
    spec: Spec
    ref: np.ndarray
    contenders: list[Contender]
    nbytes: int  # input + output bytes of poolkit's call
    copy_bytes: int  # bytes the copy floor copies
    tol: Tol
    keep: list = field(default_factory=list)  # arrays the calls refer to


def set_xla_flags(threads: int) -> bool:
    """Give XLA's CPU client `threads` threads, through XLA_FLAGS, which it reads once, when jax is
    first imported: False if that has already happened (or the caller set its own flags)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or "xla_cpu_multi_thread_eigen" in flags:
        return False
    os.environ["XLA_FLAGS"] = (flags + f" --xla_cpu_multi_thread_eigen={str(threads > 1).lower()}"
                               f" intra_op_parallelism_threads={threads}").strip()
    return True


class Libs:
    """The peer libraries, imported on first use and set to the suite's thread count."""

    def __init__(self, threads: int):
        self.threads = threads
        self.xla_flags_set = set_xla_flags(threads)
        self._mods: dict[str, object] = {}
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="bench-split")

    def get(self, name: str):
        if name not in self._mods:
            try:
                self._mods[name] = getattr(self, f"_import_{name}")()
            except ImportError as e:
                self._mods[name] = e
        mod = self._mods[name]
        if isinstance(mod, ImportError):
            raise mod
        return mod

    def _import_torch(self):
        import torch

        torch.set_num_threads(self.threads)
        return torch

    def _import_onnxruntime(self):
        import onnx  # noqa: F401  (the models are built with onnx.helper)
        import onnxruntime

        return onnxruntime

    def _import_opencv(self):
        import cv2

        cv2.setNumThreads(self.threads)
        return cv2

    def _import_scipy(self):
        import scipy.ndimage

        return scipy.ndimage

    def _import_jax(self):
        import jax

        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_enable_x64", True)  # float64 results for integer averages, as poolkit
        return jax

    def _import_poolkit(self):
        import poolkit

        poolkit.set_num_threads(self.threads)
        return poolkit


# ---------------------------------------------------------------- the case's data and poolkit


def make_input(spec: Spec, rng, shape=None) -> np.ndarray:
    shape = shape or spec.shape
    if spec.dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape, dtype=np.float32).astype(spec.dtype, copy=False)


def out_dtype(spec: Spec) -> np.dtype:
    """poolkit's result dtype: max keeps the input's, averages of integers are float64."""
    dt = np.dtype(spec.dtype)
    return dt if spec.op == "max" or dt.kind == "f" else np.dtype(np.float64)


def tolerance(spec: Spec, x: np.ndarray, g: np.ndarray | None = None) -> Tol:
    """Max: exact.  Averages and gradient sums: allclose with rtol 1e-5 for float32 results (2 eps
    for the others) and atol = n * eps * max|input|, with eps of the result's dtype and n the cells
    summed into one result -- twice the worst-case error of summing n terms in that dtype, so any
    correct summation order passes, and a wrong window, divisor or padding rule does not."""
    if spec.kind == "backward":
        n, src, what = spec.overlap, g, "overlapping windows"
        if spec.op == "max" and n == 1:
            return Tol()
    elif spec.op == "max":
        return Tol()
    else:
        n, src, what = spec.taps, x, "cells per window"
    res = out_dtype(spec) if spec.kind != "backward" else np.dtype(np.float32)
    eps = float(np.finfo(res).eps)
    assert src is not None, "a backward case's tolerance needs its gradient"
    big = float(np.abs(src).max())
    rtol = 1e-5 if res == np.float32 else 2 * eps
    return Tol(rtol, n * eps * big, f"n={n} {what}, eps={eps:.3g}, max|in|={big:.3g}")


def pack_indices(values, indices) -> np.ndarray:
    """A max with indices as one int64 array to compare exactly: [0] the maxima's bits (NaN
    payloads and zero signs included), [1] the indices."""
    values, indices = np.asarray(values), np.asarray(indices)
    bits = values.view(f"i{values.itemsize}") if values.dtype.kind == "f" else values
    return np.stack([bits.astype(np.int64), indices.astype(np.int64, copy=False)])


def _pads(spec):
    return [(0, 0)] * len(spec.shape) if not any(spec.pad) else [
        (spec.pad[spec.spatial.index(a)],) * 2 if a in spec.spatial else (0, 0) for a in range(len(spec.shape))]


def build(spec: Spec, libs: Libs, rng) -> Setup:
    """Make the case's arrays, poolkit's reference result and every contender."""
    pk = libs.get("poolkit")
    x = make_input(spec, rng)
    axes = spec.spatial if spec.layout == "NHWC" else None
    keep = [x]
    g = idx = None
    plain = None  # the timed plain call, when it differs from `call`
    if spec.kind == "pool":
        f = pk.max_pool if spec.op == "max" else pk.avg_pool
        call = lambda out=None, **kw: f(x, spec.kernel, spec.stride, spec.pad, axes=axes, out=out, **kw)  # noqa: E731
        # the timed plain call as a user writes it, bound once: no keyword dict or attribute
        # lookups of the harness in it (they cost about 0.1 us, a tenth of a tiny call)
        plain = (functools.partial(f, x, spec.kernel, spec.stride, spec.pad) if axes is None
                 else functools.partial(f, x, spec.kernel, spec.stride, spec.pad, axes=axes))
        how = f"poolkit.{spec.op}_pool(x, {spec.kernel}, {spec.stride}, {spec.pad}" + (
            f", axes={axes})" if axes else ")")
    elif spec.kind == "indices":
        kw = {"axes": axes} if axes else {}
        plain = functools.partial(pk.max_pool, x, spec.kernel, spec.stride, spec.pad, return_indices=True, **kw)
        call = lambda: pack_indices(*plain())  # noqa: E731
        how = f"poolkit.max_pool(x, {spec.kernel}, {spec.stride}, {spec.pad}, return_indices=True" + (
            f", axes={axes})" if axes else ")")
    elif spec.kind == "global":
        call = lambda **kw: pk.global_avg_pool(x, axes=axes, **kw)  # noqa: E731
        how = "poolkit.global_avg_pool(x" + (f", axes={axes})" if axes else ")")
    elif spec.kind == "adaptive":
        call = lambda **kw: pk.adaptive_avg_pool(x, spec.output_size, **kw)  # noqa: E731
        how = f"poolkit.adaptive_avg_pool(x, {spec.output_size})"
    else:
        out, idx = pk.max_pool(x, spec.kernel, spec.stride, spec.pad, return_indices=True)
        g = rng.standard_normal(out.shape, dtype=np.float32)
        keep += [g, idx]
        if spec.op == "max":
            call = lambda out=None: pk.max_pool_backward(g, x, spec.kernel, spec.stride, spec.pad,  # noqa: E731
                                                         indices=idx, out=out)
            how = "poolkit.max_pool_backward(g, x, k, s, p, indices=idx)"
        else:
            call = lambda out=None: pk.avg_pool_backward(g, x, spec.kernel, spec.stride, spec.pad, out=out)  # noqa: E731
            how = "poolkit.avg_pool_backward(g, x, k, s, p)"
    ref = call()
    reuse = None  # poolkit writing into a buffer it is given (out=), where the op has out=
    if spec.kind == "pool" or g is not None:
        buf = np.empty_like(ref)
        keep.append(buf)
        reuse = lambda: call(out=buf)  # noqa: E731
    if g is not None and idx is not None:  # backward: reads g (and the indices), writes the gradient
        nbytes = g.nbytes + ref.nbytes + (idx.nbytes if spec.op == "max" else 0)
    elif spec.kind == "indices":  # reads x, writes the maxima (x's dtype) and the int64 indices
        nbytes = x.nbytes + ref[1].nbytes + ref[1].size * x.itemsize
    else:
        nbytes = x.nbytes + ref.nbytes
    contenders = [Contender("poolkit", plain or call, threads=str(pk.get_num_threads()), how=how, peer=False)]
    if reuse is not None:
        contenders.append(Contender(OWN_OUT, reuse, threads=str(pk.get_num_threads()),
                                    how=how[:-1] + ", out=buf): the same call writing into a buffer it is given",
                                    peer=False))
    if spec.op != "max" and g is None and x.dtype == np.float32:  # a forward average: checked as the peers are
        contenders.append(Contender(OWN_F32, lambda: call(acc_dtype="float32"), threads=str(pk.get_num_threads()),
                                    how=how[:-1] + ', acc_dtype="float32"): the sums in float32', peer=False))
    for name in spec.peers:
        try:
            lib = libs.get(name if name != "numpy" else "poolkit")
        except ImportError as e:
            contenders.append(skipped(name, f"not installed ({e})"))
            continue
        try:
            contenders += ADAPTERS[name](spec, x, lib, libs, g=g, idx=idx)
        except Exception as e:  # the adapter itself failed on this library version: say so, go on
            contenders.append(skipped(name, "adapter failed: " + _short(e)))
    half = max(1, nbytes // 2)
    src, dst = np.ones(half, np.uint8), np.zeros(half, np.uint8)
    keep += [src, dst]
    contenders.append(Contender("copy floor", lambda: np.copyto(dst, src), threads="1",
                                how=f"np.copyto of {half} bytes into a preallocated array: reads and writes "
                                    "the call's input + output bytes once",
                                peer=False))
    return Setup(spec, ref, contenders, nbytes, half, tolerance(spec, x, g), keep)


# ---------------------------------------------------------------- torch


def torch_peers(spec, x, torch, libs, g=None, idx=None):
    F = torch.nn.functional
    nthreads = str(torch.get_num_threads())
    if spec.kind == "backward":
        tx, tg, ti = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(idx)
        k, s, p = list(spec.kernel), list(spec.stride), list(spec.pad)
        if spec.op == "max":
            f = torch.ops.aten.max_pool2d_with_indices_backward
            return [Contender("torch NCHW", lambda: f(tg, tx, k, s, p, [1, 1], False, ti), threads=nthreads,
                              how="aten.max_pool2d_with_indices_backward with poolkit's indices",
                              result=lambda t: t.numpy())]
        f = torch.ops.aten.avg_pool2d_backward
        return [Contender("torch NCHW", lambda: f(tg, tx, k, s, p, False, True, None), threads=nthreads,
                          how="aten.avg_pool2d_backward (count_include_pad=True)", result=lambda t: t.numpy())]
    nd = len(spec.spatial)
    k, s, p = spec.kernel, spec.stride, spec.pad
    cast = ""
    if spec.op == "avg" and out_dtype(spec) != np.dtype(spec.dtype):
        cast = " (x.double() in the call: torch has no integer average)"
    variants = []  # (label, tensor in NCHW logical order, how the input was made)
    if spec.layout == "NHWC":
        t_cl = torch.from_numpy(x).permute(0, 3, 1, 2)  # channels_last strides, no copy
        t_first = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        variants = [("torch channels_last", t_cl, "the NHWC array viewed as a channels_last tensor"),
                    ("torch NCHW" + OTHER_LAYOUT, t_first, "an NCHW copy made before timing")]
        back = (lambda a: a.transpose(0, 2, 3, 1)) if spec.kind != "global" else (lambda a: a)
    else:
        t = torch.from_numpy(x)
        variants = [("torch " + spec.layout if nd == 2 else "torch", t, "the array as a tensor (no copy)")]
        if nd == 2 and spec.family != "tiny":
            variants.append(("torch channels_last" + OTHER_LAYOUT, t.contiguous(memory_format=torch.channels_last),
                             "a channels_last copy made before timing"))
        back = lambda a: a  # noqa: E731
    out = []
    for label, t, made in variants:
        prep = (lambda a: a.double()) if cast else (lambda a: a)
        if spec.kind == "indices":
            f = getattr(F, f"max_pool{nd}d")
            call = functools.partial(f, t, k, s, p, return_indices=True)
            how = f"F.max_pool{nd}d(x, {k}, {s}, {p}, return_indices=True) on {made}"
            res = lambda r, back=back: pack_indices(back(r[0].numpy()), back(r[1].numpy()))  # noqa: E731
        elif spec.kind == "pool":
            f = getattr(F, f"{spec.op}_pool{nd}d")
            call = (lambda f=f, t=t, prep=prep: f(prep(t), k, s, p)) if cast else functools.partial(f, t, k, s, p)
            how = f"F.{spec.op}_pool{nd}d(x, {k}, {s}, {p}) on {made}"
            res = lambda r, back=back: back(r.numpy())  # noqa: E731
        elif spec.kind == "adaptive":
            call = lambda t=t: F.adaptive_avg_pool2d(t, spec.output_size)  # noqa: E731
            how = f"F.adaptive_avg_pool2d(x, {spec.output_size}) on {made}"
            res = lambda r, back=back: back(r.numpy())  # noqa: E731
        else:  # global
            call = lambda t=t: F.adaptive_avg_pool2d(t, 1)  # noqa: E731
            how = f"F.adaptive_avg_pool2d(x, 1) on {made}"
            res = lambda r: r.numpy().reshape(r.shape[0], r.shape[1])  # noqa: E731
            out.append(Contender(label.replace("torch", "torch mean", 1), lambda t=t: t.mean((2, 3)), threads=nthreads,
                                 how=f"x.mean((2, 3)) on {made}", result=lambda r: r.numpy()))
        if spec.dtype == "uint8" and "channels_last" in label and spec.op == "max":
            pass  # run it: the check reports torch's error for uint8 channels_last, if any
        out.append(Contender(label + (" (via float64)" if cast else ""), call, res, nthreads, how + cast))
    if spec.family == "tiny":
        # torch hands even a 36-cell pooling to its OpenMP pool: with a core taken by another
        # process its barrier alone can cost 100s of us; its call overhead is the 1-thread figure
        n0 = torch.get_num_threads()
        one = Contender(out[-1].label + " (1 thread)", out[-1].call, out[-1].result, "1",
                        out[-1].how + "; torch.set_num_threads(1) around the timed calls",
                        around=(lambda: torch.set_num_threads(1), lambda: torch.set_num_threads(n0)))
        out.append(one)
    return out


# ---------------------------------------------------------------- onnxruntime

_ONNX_TYPES = {"float32": 1, "uint8": 2, "float16": 10, "float64": 11}  # onnx.TensorProto values


def _ort_session(ort, threads, nodes, in_dtype, out_dt, initializers=()):
    from onnx import helper

    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", _ONNX_TYPES[in_dtype], None)],
                              [helper.make_tensor_value_info("y", _ONNX_TYPES[str(out_dt)], None)],
                              initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def onnxruntime_peers(spec, x, ort, libs, g=None, idx=None):
    from onnx import helper, numpy_helper

    threads = libs.threads
    odt = out_dtype(spec)
    feed = {"x": x}
    out = []

    def add(label, nodes, how, result=np.asarray, inits=()):
        try:
            sess = _ort_session(ort, threads, nodes, spec.dtype, odt, inits)
        except Exception as e:  # the CPU provider has no kernel for this op and dtype
            out.append(skipped(label, _short(e)))
            return
        run = sess.run
        out.append(Contender(label, lambda: run(None, feed)[0], result, str(threads), how + "; session.run"))

    if spec.kind in ("pool", "adaptive"):
        if spec.kind == "adaptive":
            k = tuple(spec.shape[a] // o for a, o in zip(spec.spatial, spec.output_size))
            if any(spec.shape[a] % o for a, o in zip(spec.spatial, spec.output_size)):
                return [skipped("onnxruntime", "bins of unequal size: no ONNX pooling op")]
            s, p = k, (0,) * len(k)
        else:
            k, s, p = spec.kernel, spec.stride, spec.pad
        op = "MaxPool" if spec.op == "max" else "AveragePool"
        attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p) * 2)
        if spec.op == "avg":
            attrs["count_include_pad"] = 1
        desc = f"{op}(kernel_shape={list(k)}, strides={list(s)}, pads={list(p) * 2}" + (
            ", count_include_pad=1)" if spec.op == "avg" else ")")
        if spec.layout != "NHWC":
            add("onnxruntime", [helper.make_node(op, ["x"], ["y"], **attrs)], desc)
        elif spec.dtype == "uint8" and spec.op == "max":
            add("onnxruntime NhwcMaxPool", [helper.make_node("NhwcMaxPool", ["x"], ["y"], domain="com.microsoft",
                                                             **attrs)],
                f"com.microsoft.NhwcMaxPool on the NHWC input ({desc[len(op):]})")
        else:
            nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
                     helper.make_node(op, ["t"], ["u"], **attrs),
                     helper.make_node("Transpose", ["u"], ["y"], perm=[0, 2, 3, 1])]
            add("onnxruntime (Transpose + pool)", nodes,
                f"Transpose -> {desc} -> Transpose in one graph (ONNX pools NCHW only)")
    elif spec.kind == "global":
        axes = numpy_helper.from_array(np.array(spec.spatial, np.int64), "axes")
        n, c = x.shape[0], x.shape[spec.layout.index("C")]
        if spec.layout == "NCHW":
            add("onnxruntime GlobalAveragePool", [helper.make_node("GlobalAveragePool", ["x"], ["y"])],
                "GlobalAveragePool", result=lambda r: r.reshape(n, c))
        add("onnxruntime ReduceMean", [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)],
            f"ReduceMean(axes={list(spec.spatial)}, keepdims=0)", inits=[axes])
    return out


# ---------------------------------------------------------------- OpenCV


def opencv_peers(spec, x, cv2, libs, g=None, idx=None):
    threads = str(cv2.getNumThreads())
    if spec.kind == "global":
        return _opencv_global(spec, x, cv2, threads)
    if len(spec.spatial) == 3:
        return [skipped("OpenCV", "no 3-D pooling, morphology or area resize")]
    if spec.kind == "adaptive":
        if any(spec.shape[a] % o for a, o in zip(spec.spatial, spec.output_size)):
            return [skipped("OpenCV", "bins of unequal size")]
        k = tuple(spec.shape[a] // o for a, o in zip(spec.spatial, spec.output_size))
        geo = (k, k, (0, 0))
    elif len(spec.spatial) == 1:  # a 1-D case is a 2-D image of one row per (n, c)
        geo = ((1, *spec.kernel), (1, *spec.stride), (0, *spec.pad))
    else:
        geo = (spec.kernel, spec.stride, spec.pad)
    (kh, kw), (sh, sw), (ph, pw) = geo
    if spec.layout == "NHWC":
        n, h, w, c = x.shape
        cn_max = getattr(cv2, "CV_CN_MAX", 512)
        if c > cn_max:
            return [skipped("OpenCV", f"{c} channels: more than OpenCV's {cn_max}")]
        planes = x  # N images of H x W x C
        tall = x.reshape(n * h, w, c)
    else:
        h, w = x.shape[-2:] if len(spec.spatial) == 2 else (1, x.shape[-1])
        planes = x.reshape(-1, h, w)
        tall = x.reshape(-1, w)
    oh, ow = ((spec.out_sizes()[0], spec.out_sizes()[1]) if len(spec.spatial) == 2 else (1, spec.out_sizes()[0]))
    ref_shape = tuple(np.empty(0).shape)  # placeholder, replaced below
    out_shape = list(x.shape)
    for a, o in zip(spec.spatial, spec.out_sizes()):
        out_shape[a] = o
    ref_shape = tuple(out_shape)
    odt = out_dtype(spec)
    # planes stacked along H never share a window when there is no padding and every plane's
    # windows tile its rows exactly: then one call on the tall image does all planes
    stackable = ph == 0 and h % sh == 0 and oh == h // sh
    rows, cols = slice(0, (oh - 1) * sh + 1, sh), slice(0, (ow - 1) * sw + 1, sw)
    if spec.op == "max":
        kern = np.ones((kh, kw), np.uint8)
        f = lambda img: cv2.dilate(img, kern, anchor=(pw, ph))  # noqa: E731  (border never wins)
        how = f"cv2.dilate(ones({kh}x{kw}), anchor=({pw}, {ph})) + slicing [::{sh}, ::{sw}]"
        label = "OpenCV dilate"
    elif odt == np.dtype(spec.dtype) and stackable and (kh, kw) == (sh, sw):
        used = tall[:, :ow * kw]  # the columns the windows cover (a view: OpenCV takes strided rows)
        return [_opencv_call("OpenCV resize INTER_AREA", threads, ref_shape, used, None,
                             functools.partial(cv2.resize, dsize=(ow, used.shape[0] // kh),
                                               interpolation=cv2.INTER_AREA),
                             f"cv2.resize(INTER_AREA) by {kw}x{kh} on the planes stacked into one tall image"
                             + ("" if used.shape[1] == tall.shape[1] else f", its first {ow * kw} columns"))]
    else:
        ddepth = -1 if odt == np.dtype(spec.dtype) else cv2.CV_64F
        f = lambda img: cv2.boxFilter(img, ddepth, (kw, kh), anchor=(pw, ph), normalize=True,  # noqa: E731
                                      borderType=cv2.BORDER_CONSTANT)
        how = (f"cv2.boxFilter({kw}x{kh}, normalize, BORDER_CONSTANT zeros = count_include_pad"
               + (", ddepth=CV_64F" if ddepth != -1 else "") + f") + slicing [::{sh}, ::{sw}]")
        label = "OpenCV boxFilter" + (" (float64)" if ddepth != -1 else "")
    if stackable:
        return [_opencv_call(label, threads, ref_shape, tall, None, lambda img: f(img)[::sh, cols],
                             how + ", on the planes stacked into one tall image")]
    return [_opencv_call(label, threads, ref_shape, None, planes, lambda img: f(img)[rows, cols],
                         how + ", one call per " + ("image" if spec.layout == "NHWC" else "plane"), odt,
                         (oh, ow, x.shape[-1]) if spec.layout == "NHWC" else (oh, ow))]


def _opencv_call(label, threads, ref_shape, tall, planes, f, how, odt=None, plane_out=()):
    """A contender that calls `f` once on the `tall` image, or once per image of `planes` into an
    (n, *plane_out) array of dtype `odt`; its result reshaped to poolkit's `ref_shape`."""
    if tall is not None:
        return Contender(label, functools.partial(f, tall), lambda r: np.asarray(r).reshape(ref_shape), threads, how)
    n = planes.shape[0]

    def per_plane():
        out = np.empty((n, *plane_out), odt)
        for i in range(n):
            out[i] = f(planes[i])
        return out

    return Contender(label, per_plane, lambda r: r.reshape(ref_shape), threads, how)


def _opencv_global(spec, x, cv2, threads):
    odt = out_dtype(spec)
    depth = {np.dtype(np.float32): cv2.CV_32F, np.dtype(np.float64): cv2.CV_64F}.get(odt)
    if depth is None:
        return [skipped("OpenCV", f"cv2.reduce has no {odt} result")]
    if spec.layout == "NCHW":
        n, c, h, w = x.shape
        flat, tall = x.reshape(n * c, h * w), x.reshape(n * c * h, w)
        return [Contender("OpenCV reduce AVG", lambda: cv2.reduce(flat, 1, cv2.REDUCE_AVG, dtype=depth),
                          lambda r: r.reshape(n, c), threads, "cv2.reduce(x.reshape(N*C, H*W), 1, REDUCE_AVG)"),
                Contender("OpenCV resize INTER_AREA",
                          lambda: cv2.resize(tall, (1, n * c), interpolation=cv2.INTER_AREA),
                          lambda r: r.reshape(n, c), threads,
                          f"cv2.resize(INTER_AREA) by {w}x{h} of the planes stacked into one tall image")]
    n, h, w, c = x.shape
    imgs = x.reshape(n, h * w, c)

    def per_image():
        out = np.empty((n, c), odt)
        for i in range(n):
            out[i] = cv2.reduce(imgs[i], 0, cv2.REDUCE_AVG, dtype=depth)[0]
        return out

    return [Contender("OpenCV reduce AVG", per_image, np.asarray, threads,
                      "cv2.reduce(x[n].reshape(H*W, C), 0, REDUCE_AVG), one call per image")]


# ---------------------------------------------------------------- scipy.ndimage


def scipy_peers(spec, x, ndimage, libs, g=None, idx=None):
    if spec.kind != "pool":
        return [skipped("scipy.ndimage", "no such filter")]
    size, origin, sl = [1] * x.ndim, [0] * x.ndim, [slice(None)] * x.ndim
    for a, k, s, p, o in zip(spec.spatial, spec.kernel, spec.stride, spec.pad, spec.out_sizes()):
        size[a], origin[a], sl[a] = k, p - k // 2, slice(0, (o - 1) * s + 1, s)
        if not -(k // 2) <= origin[a] <= (k - 1) // 2:
            return [skipped("scipy.ndimage", "padding a filter's origin cannot express")]
    sl = tuple(sl)
    odt = out_dtype(spec)
    geo = f"size={tuple(size)}, origin={tuple(origin)}, mode='constant'"
    if spec.op == "max":
        fill = -np.inf if np.dtype(spec.dtype).kind == "f" else np.iinfo(spec.dtype).min
        call = lambda: ndimage.maximum_filter(x, size=size, origin=origin, mode="constant", cval=fill)[sl]  # noqa: E731
        how = f"maximum_filter({geo}, cval={fill}) + slicing"
        label = "scipy.ndimage maximum_filter"
    else:
        output = None if odt == np.dtype(spec.dtype) else odt
        call = lambda: ndimage.uniform_filter(x, size=size, origin=origin, mode="constant", cval=0.0,  # noqa: E731
                                              output=output)[sl]
        how = f"uniform_filter({geo}, cval=0 = count_include_pad" + (f", output={odt})" if output else ")") + \
            " + slicing"
        label = "scipy.ndimage uniform_filter"
    return [Contender(label, call, np.asarray, "1 (no thread option; holds the GIL)", how)]


# ---------------------------------------------------------------- JAX


def jax_peers(spec, x, jax, libs, g=None, idx=None):
    import jax.numpy as jnp
    from jax import lax

    odt = out_dtype(spec)
    acc = np.float64 if odt == np.float64 else np.float32  # float16 sums in float32, as torch does
    xj = jax.device_put(x)
    if spec.kind == "global":
        fn = jax.jit(lambda a: jnp.mean(a.astype(acc), axis=spec.spatial).astype(odt))
        how = f"jit(jnp.mean(x, axis={spec.spatial}))"
    else:
        dims, strides, pads = [1] * x.ndim, [1] * x.ndim, [(0, 0)] * x.ndim
        if spec.kind == "adaptive":
            if any(spec.shape[a] % o for a, o in zip(spec.spatial, spec.output_size)):
                return [skipped("jax", "bins of unequal size")]
            geo = [(a, spec.shape[a] // o, spec.shape[a] // o, 0) for a, o in zip(spec.spatial, spec.output_size)]
        else:
            geo = list(zip(spec.spatial, spec.kernel, spec.stride, spec.pad))
        for a, k, s, p in geo:
            dims[a], strides[a], pads[a] = k, s, (p, p)
        n = math.prod(dims)
        if spec.op == "max":
            dt = np.dtype(spec.dtype)
            init = np.array(-np.inf if dt.kind == "f" else np.iinfo(dt).min, dt)
            fn = jax.jit(lambda a: lax.reduce_window(a, init, lax.max, dims, strides, pads))
            how = f"jit(lax.reduce_window(x, -inf, lax.max, {tuple(dims)}, {tuple(strides)}, pads))"
        else:
            zero = np.array(0, acc)
            fn = jax.jit(lambda a: (lax.reduce_window(a.astype(acc), zero, lax.add, dims, strides, pads) / n)
                         .astype(odt))
            how = f"jit(lax.reduce_window(x, 0, lax.add, {tuple(dims)}, {tuple(strides)}, pads) / {n})"
            if acc != np.dtype(spec.dtype) and odt != acc:
                how += " summed in float32"
    threads = f"{libs.threads} (XLA_FLAGS, see machine)"
    if spec.kind == "backward":
        gj = jax.device_put(g)
        fwd = fn
        bwd = jax.jit(lambda a, gg: jax.vjp(fwd, a)[1](gg)[0])
        return [Contender("jax vjp", lambda: bwd(xj, gj).block_until_ready(), np.asarray, threads,
                          f"jit(vjp of {how})(g) (XLA recomputes the forward pass inside); inputs placed on the "
                          "device before timing")]
    return [Contender("jax", lambda: fn(xj).block_until_ready(), np.asarray, threads,
                      how + "; input placed on the device before timing")]


# ---------------------------------------------------------------- NumPy


def numpy_peers(spec, x, poolkit, libs, g=None, idx=None):
    if spec.kind == "global":
        ax = spec.spatial
        return [Contender("numpy mean", lambda: x.mean(axis=ax), np.asarray, "1", f"x.mean(axis={ax})")]
    if spec.kind == "adaptive":
        if any(spec.shape[a] % o for a, o in zip(spec.spatial, spec.output_size)):
            return [skipped("numpy", "bins of unequal size")]
        k = tuple(spec.shape[a] // o for a, o in zip(spec.spatial, spec.output_size))
        geo = (k, k, (0,) * len(k))
    else:
        geo = (spec.kernel, spec.stride, spec.pad)
    odt = out_dtype(spec)
    dt = np.dtype(spec.dtype)
    acc = odt if odt.kind == "f" and odt.itemsize >= 4 else np.dtype(np.float32)
    fill = (-np.inf if dt.kind == "f" else np.iinfo(dt).min) if spec.op == "max" else 0
    pads = [(0, 0)] * x.ndim
    for a, p in zip(spec.spatial, geo[2]):
        pads[a] = (p, p)
    padded = any(geo[2])
    nk = math.prod(geo[0])

    def strided(part):
        """Reduce the k**d strided views of the (padded) input, one ufunc pass each."""
        xp = np.pad(part, pads, constant_values=fill) if padded else part
        res = None
        for offs in itertools.product(*(range(k) for k in geo[0])):
            sl = [slice(None)] * part.ndim
            for a, o, s, n in zip(spec.spatial, offs, geo[1], spec.out_sizes()):
                sl[a] = slice(o, o + (n - 1) * s + 1, s)
            v = xp[tuple(sl)]
            if res is None:
                res = v.astype(acc if spec.op == "avg" else dt)
            elif spec.op == "max":
                np.maximum(res, v, out=res)
            else:
                np.add(res, v, out=res)
        if spec.op == "avg":
            res /= nk
            res = res.astype(odt, copy=False)
        return res

    threads = libs.threads
    nb = x.shape[0]
    bounds = [(i * nb // threads, (i + 1) * nb // threads) for i in range(threads)]
    bounds = [b for b in bounds if b[1] > b[0]]

    def split():
        if len(bounds) == 1:
            return strided(x)
        return np.concatenate(list(libs.pool.map(lambda b: strided(x[b[0]:b[1]]), bounds)))

    acc_note = f", summed in {np.dtype(acc)}" if spec.op == "avg" else ""
    out = [Contender("numpy strided slices", split, np.asarray, f"{len(bounds)} (batch split over threads)",
                     f"np.{'maximum' if spec.op == 'max' else 'add'} over the {nk} strided views of the "
                     f"{'padded ' if padded else ''}input{acc_note}; the batch split over a thread pool")]
    kk, ss = geo[0], geo[1]
    if tuple(kk) == tuple(ss) and not padded and all(x.shape[a] % k == 0 for a, k in zip(spec.spatial, kk)):
        # windows that tile the input: split each pooled axis into (blocks, k) and reduce the k axes
        split_shape: list[int] = []
        red = []
        for a, n in enumerate(x.shape):
            if a in spec.spatial:
                k = kk[spec.spatial.index(a)]
                split_shape += [n // k, k]
                red.append(len(split_shape) - 1)
            else:
                split_shape.append(n)
        blocks = x.reshape(split_shape)
        red_axes = tuple(red)
        if spec.op == "max":
            rr = lambda: blocks.max(axis=red_axes)  # noqa: E731
        elif odt == dt:
            rr = lambda: blocks.mean(axis=red_axes)  # noqa: E731
        else:
            rr = lambda: blocks.mean(axis=red_axes, dtype=odt)  # noqa: E731
        out.append(Contender("numpy reshape-reduce", rr, np.asarray, "1",
                             f"x.reshape({tuple(split_shape)}).{'max' if spec.op == 'max' else 'mean'}"
                             f"(axis={red_axes}) (a view: the windows tile the input)"))
    return out


ADAPTERS = {"torch": torch_peers, "onnxruntime": onnxruntime_peers, "opencv": opencv_peers, "scipy": scipy_peers,
            "jax": jax_peers, "numpy": numpy_peers}


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    for marker in ("error: (", "Error: ", "NOT_IMPLEMENTED : ", "INVALID_GRAPH : "):
        if marker in text:
            text = text[text.index(marker) + len(marker) - (1 if marker.endswith("(") else 0):]
    return (type(e).__name__ + ": " + text)[:160]


def import_module(name: str):
    return importlib.import_module(name)
