"""PyTorch 2.13.0 (CPU) as the peer: every expected value here comes from torch.

1. The slow oracle (``support/oracle.py``) itself agrees with torch.
2. poolkit's sliding-window ops agree with ``torch.nn.functional``, forward and gradient, over 1-, 2-
   and 3-D pooling with every option torch has.  PyTorch's restrictions shape the parameter space:
   symmetric padding of at most half the kernel, no dilation for average pooling, Lp pooling
   without padding (and signed, so nonnegative inputs).  NaN is not compared with torch here: its
   CPU max kernel reports the *last* NaN, poolkit the first.
3. The fixed-length family: adaptive pooling (values, indices, gradients over 1/2/3-D), spatial
   pyramid pooling (concatenated adaptive pooling), fractional max pooling (exact given the
   samples), global pooling.
4. ``poolkit.compat.torch`` against ``torch.nn.functional``: values, indices, shapes, errors --
   including torch's own NaN index.

``TF`` is ``torch.nn.functional`` throughout; ``F`` is ``poolkit.compat.torch``, imported under the
name torch code gives ``torch.nn.functional``, since it is a drop-in for it.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from support import oracle as R
from support.data import random_input

torch = pytest.importorskip("torch")
TF = torch.nn.functional
torch.set_num_threads(1)

import poolkit  # noqa: E402
from poolkit import (  # noqa: E402
    adaptive_avg_pool,
    adaptive_avg_pool_backward,
    adaptive_max_pool,
    adaptive_max_pool_backward,
    fractional_max_pool,
    fractional_max_pool_backward,
    global_avg_pool,
    global_max_pool,
    spatial_pyramid_pool,
    spatial_pyramid_pool_backward,
)
from poolkit.compat import torch as F  # noqa: E402


def T(x, grad=False):
    """x as a torch tensor (contiguous), with requires_grad if ``grad``."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.requires_grad_(True) if grad else t


# ---------------------------------------------------------------------------------------------
# sliding-window ops: strategies and torch calls
# ---------------------------------------------------------------------------------------------


FMAX = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
FAVG = {1: TF.avg_pool1d, 2: TF.avg_pool2d, 3: TF.avg_pool3d}
FLP = {1: TF.lp_pool1d, 2: TF.lp_pool2d, 3: getattr(TF, "lp_pool3d", None)}


@st.composite
def torch_geometry(draw, dilation=True, padding=True, ceil=True, max_len=None, fit3d=False):
    """(shape N,C,*spatial; kernel; stride; pad; dilation; ceil_mode) that torch accepts.

    ``fit3d``: torch's avg_pool3d also insists that the kernel fits the *unpadded* input."""
    dim = draw(st.integers(1, 3))
    if max_len is None:
        max_len = {1: 12, 2: 8, 3: 5}[dim]
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 2))
    sizes, ks, ss, ps, ds = [], [], [], [], []
    for _ in range(dim):
        L = draw(st.integers(1, max_len))
        d = draw(st.integers(1, 3)) if dilation else 1
        kmax = max(1, min(4, (L + 2 - 1) // d + 1))
        k = draw(st.integers(1, kmax))
        s = draw(st.integers(1, 3))
        p = draw(st.integers(0, k // 2)) if padding else 0
        sizes.append(L), ks.append(k), ss.append(s), ps.append(p), ds.append(d)
    cm = draw(st.booleans()) if ceil else False
    if fit3d and dim == 3:
        assume(all(k <= L for k, L in zip(ks, sizes)))
    for L, k, s, p, d in zip(sizes, ks, ss, ps, ds):
        assume(R.ref_output_size(L, k, s, p, p, d, cm) >= 1)
    # torch accepts a window with no input cell (dilation can step over a short input) and
    # returns -inf there; poolkit rejects it, so such geometries are tested with the errors in
    # test_pooling.py.
    assume(R.ref_windows_ok(sizes, ks, ss, ps, ds, cm, tuple(range(dim))))
    return (n, c, *sizes), tuple(ks), tuple(ss), tuple(ps), tuple(ds), cm


def _data(seed, shape, ties, dtype=np.float64):
    return random_input(seed, shape, "ties" if ties else "normal", dtype, tie_values=(-3, 4))


def _torch_max(x, k, s, p, d, cm, g=None):
    dim = len(k)
    xt = torch.from_numpy(x.copy()).requires_grad_(g is not None)
    out, idx = FMAX[dim](xt, k, s, p, d, ceil_mode=cm, return_indices=True)
    grad = None
    if g is not None:
        out.backward(torch.from_numpy(g))
        grad = xt.grad.numpy()
    return out.detach().numpy(), idx.numpy(), grad


def _torch_avg(x, k, s, p, cm, cip, dov, g=None):
    dim = len(k)
    xt = torch.from_numpy(x.copy()).requires_grad_(g is not None)
    if dim == 1:  # avg_pool1d has no divisor_override: pool (1, L) with a (1, k) window instead
        out = TF.avg_pool2d(xt[:, :, None, :], (1,) + tuple(k), (1,) + tuple(s), (0,) + tuple(p), ceil_mode=cm,
                           count_include_pad=cip, divisor_override=dov)[:, :, 0, :]
    else:
        out = FAVG[dim](xt, k, s, p, ceil_mode=cm, count_include_pad=cip, divisor_override=dov)
    grad = None
    if g is not None:
        out.backward(torch.from_numpy(g))
        grad = xt.grad.numpy()
    return out.detach().numpy(), grad


def _torch_lp(x, p_norm, k, s, g=None):
    dim = len(k)
    xt = torch.from_numpy(x.copy()).requires_grad_(g is not None)
    if dim == 1:  # lp_pool1d wants plain ints
        k, s = k[0], s[0]
    out = FLP[dim](xt, p_norm, k, s)
    grad = None
    if g is not None:
        out.backward(torch.from_numpy(g))
        grad = xt.grad.numpy()
    return out.detach().numpy(), grad


def _axes(dim):
    return tuple(range(2, 2 + dim))


# ---------------------------------------------------------------------------------------------
# the oracle itself agrees with torch
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(geo=torch_geometry(max_len=None), seed=st.integers(0, 2**32 - 1), ties=st.booleans())
def test_oracle_max_pool_matches_torch(geo, seed, ties):
    shape, k, s, p, d, cm = geo
    x, rng = _data(seed, shape, ties)
    t_out, t_idx, _ = _torch_max(x, k, s, p, d, cm)
    out, idx = R.ref_max_pool(x, k, s, p, d, cm, _axes(len(k)))
    assert out.shape == t_out.shape
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    g = rng.standard_normal(out.shape)
    _, _, t_grad = _torch_max(x, k, s, p, d, cm, g)
    np.testing.assert_allclose(R.ref_max_pool_backward(g, x, k, s, p, d, cm, _axes(len(k))), t_grad,
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=60)
@given(geo=torch_geometry(dilation=False, fit3d=True), seed=st.integers(0, 2**32 - 1), cip=st.booleans(),
       dov=st.sampled_from([None, None, 1, 3, 7]))
def test_oracle_avg_pool_matches_torch(geo, seed, cip, dov):
    shape, k, s, p, d, cm = geo
    x, rng = _data(seed, shape, False)
    t_out, _ = _torch_avg(x, k, s, p, cm, cip, dov)
    out = R.ref_avg_pool(x, k, s, p, d, cm, _axes(len(k)), cip, dov)
    assert out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    _, t_grad = _torch_avg(x, k, s, p, cm, cip, dov, g)
    np.testing.assert_allclose(R.ref_avg_pool_backward(g, x, k, s, p, d, cm, _axes(len(k)), cip, dov), t_grad,
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=40)
@given(geo=torch_geometry(dilation=False, padding=False, ceil=False), seed=st.integers(0, 2**32 - 1),
       p_norm=st.sampled_from([1.0, 2.0, 3.0, 1.5]))
def test_oracle_lp_pool_matches_torch(geo, seed, p_norm):
    shape, k, s, p, d, cm = geo
    if FLP[len(k)] is None:  # pragma: no cover
        pytest.skip("torch has no lp_pool3d")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 2.0, size=shape)
    t_out, _ = _torch_lp(x, p_norm, k, s)
    out = R.ref_lp_pool(x, p_norm, k, s, p, d, cm, _axes(len(k)))
    np.testing.assert_allclose(out, t_out, rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    _, t_grad = _torch_lp(x, p_norm, k, s, g)
    np.testing.assert_allclose(R.ref_lp_pool_backward(g, x, p_norm, k, s, p, d, cm, _axes(len(k))), t_grad,
                               rtol=1e-8, atol=1e-10)


def test_oracle_max_unpool_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    xt = torch.from_numpy(x)
    out, idx = TF.max_pool2d(xt, 3, 2, 1, return_indices=True)
    t_un = TF.max_unpool2d(out, idx, 3, 2, 1, output_size=(7, 6)).numpy()
    np.testing.assert_array_equal(R.ref_max_unpool(out.numpy(), idx.numpy(), (7, 6)), t_un)


# ---------------------------------------------------------------------------------------------
# poolkit's sliding-window ops agree with torch
# ---------------------------------------------------------------------------------------------


@settings(max_examples=80)
@given(geo=torch_geometry(), seed=st.integers(0, 2**32 - 1), ties=st.booleans())
def test_max_pool_and_backward_match_torch(geo, seed, ties):
    shape, k, s, p, d, cm = geo
    x, rng = _data(seed, shape, ties)
    t_out, t_idx, _ = _torch_max(x, k, s, p, d, cm)
    out, idx = poolkit.max_pool(x, k, s, p, dilation=d, ceil_mode=cm, return_indices=True)
    assert out.dtype == np.float64 and idx.dtype == np.int64
    assert out.shape == t_out.shape
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    assert poolkit.output_shape(shape, k, s, p, dilation=d, ceil_mode=cm) == t_out.shape
    g = rng.standard_normal(out.shape)
    _, _, t_grad = _torch_max(x, k, s, p, d, cm, g)
    grad = poolkit.max_pool_backward(g, x, k, s, p, dilation=d, ceil_mode=cm)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, t_grad, rtol=1e-12, atol=1e-12)
    grad2 = poolkit.max_pool_backward(g, x, k, s, p, dilation=d, ceil_mode=cm, indices=t_idx)
    np.testing.assert_allclose(grad2, t_grad, rtol=1e-12, atol=1e-12)


@settings(max_examples=80)
@given(geo=torch_geometry(dilation=False, fit3d=True), seed=st.integers(0, 2**32 - 1), cip=st.booleans(),
       dov=st.sampled_from([None, None, 1, 3, 7]))
def test_avg_pool_and_backward_match_torch(geo, seed, cip, dov):
    shape, k, s, p, d, cm = geo
    x, rng = _data(seed, shape, False)
    t_out, _ = _torch_avg(x, k, s, p, cm, cip, dov)
    out = poolkit.avg_pool(x, k, s, p, ceil_mode=cm, count_include_pad=cip, divisor_override=dov)
    assert out.dtype == np.float64 and out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    _, t_grad = _torch_avg(x, k, s, p, cm, cip, dov, g)
    grad = poolkit.avg_pool_backward(g, x, k, s, p, ceil_mode=cm, count_include_pad=cip, divisor_override=dov)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, t_grad, rtol=1e-12, atol=1e-12)


@settings(max_examples=50)
@given(geo=torch_geometry(dilation=False, padding=False, ceil=False), seed=st.integers(0, 2**32 - 1),
       p_norm=st.sampled_from([1.0, 2.0, 3.0, 1.5, 4]))
def test_lp_pool_matches_torch_on_nonnegative_input(geo, seed, p_norm):
    shape, k, s, p, d, cm = geo
    if FLP[len(k)] is None:  # pragma: no cover
        pytest.skip("torch has no lp_pool3d")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 2.0, size=shape)
    t_out, _ = _torch_lp(x, p_norm, k, s)
    out = poolkit.lp_pool(x, p_norm, k, s)
    assert out.dtype == np.float64 and out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    _, t_grad = _torch_lp(x, p_norm, k, s, g)
    grad = poolkit.lp_pool_backward(g, x, p_norm, k, s)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, t_grad, rtol=1e-8, atol=1e-10)


@settings(max_examples=40)
@given(geo=torch_geometry(), seed=st.integers(0, 2**32 - 1))
def test_max_unpool_matches_torch(geo, seed):
    shape, k, s, p, d, cm = geo
    x, _ = _data(seed, shape, False)
    xt = torch.from_numpy(x)
    t_out, t_idx = FMAX[len(k)](xt, k, s, p, d, ceil_mode=cm, return_indices=True)
    # torch's max_unpool is a scatter into a zero plane; TF.max_unpoolNd also checks output_size
    # against an undilated geometry, so do its scatter directly.
    t_un = torch.zeros(shape[:2] + (int(np.prod(shape[2:])),), dtype=torch.float64)
    t_un = t_un.scatter_(2, t_idx.flatten(2), t_out.flatten(2)).reshape(shape).numpy()
    if d == (1,) * len(k) and len(k) > 1:
        t_un2 = {2: TF.max_unpool2d, 3: TF.max_unpool3d}[len(k)](t_out, t_idx, k, s, p, output_size=shape[2:])
        np.testing.assert_array_equal(t_un2.numpy(), t_un)
    un = poolkit.max_unpool(t_out.numpy(), t_idx.numpy(), shape[2:])
    assert un.shape == x.shape and un.dtype == np.float64
    np.testing.assert_array_equal(un, t_un)


@settings(max_examples=40)
@given(geo=torch_geometry(), seed=st.integers(0, 2**32 - 1))
def test_max_pool_float32_matches_torch(geo, seed):
    shape, k, s, p, d, cm = geo
    x, rng = _data(seed, shape, False, np.float32)
    t_out, t_idx, _ = _torch_max(x, k, s, p, d, cm)
    out, idx = poolkit.max_pool(x, k, s, p, dilation=d, ceil_mode=cm, return_indices=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    g = rng.standard_normal(out.shape).astype(np.float32)
    _, _, t_grad = _torch_max(x, k, s, p, d, cm, g)
    grad = poolkit.max_pool_backward(g, x, k, s, p, dilation=d, ceil_mode=cm)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, t_grad, rtol=1e-6, atol=1e-6)


@settings(max_examples=40)
@given(geo=torch_geometry(dilation=False, fit3d=True), seed=st.integers(0, 2**32 - 1), cip=st.booleans(),
       dov=st.sampled_from([None, 2]))
def test_avg_pool_float32_matches_torch(geo, seed, cip, dov):
    shape, k, s, p, d, cm = geo
    x, rng = _data(seed, shape, False, np.float32)
    t_out, _ = _torch_avg(x, k, s, p, cm, cip, dov)
    out = poolkit.avg_pool(x, k, s, p, ceil_mode=cm, count_include_pad=cip, divisor_override=dov)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, t_out, rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(out.shape).astype(np.float32)
    _, t_grad = _torch_avg(x, k, s, p, cm, cip, dov, g)
    grad = poolkit.avg_pool_backward(g, x, k, s, p, ceil_mode=cm, count_include_pad=cip, divisor_override=dov)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, t_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_nchw_fixed_cases_match_torch(dim):
    """A few classic configurations, deterministic (ResNet stem 3x3/2 pad 1, 2x2/2, ceil)."""
    rng = np.random.default_rng(dim)
    size = {1: 17, 2: 11, 3: 7}[dim]
    x = rng.standard_normal((2, 3) + (size,) * dim)
    for k, s, p, cm in [(3, 2, 1, False), (2, 2, 0, False), (3, 2, 1, True), (2, 2, 1, True), (3, 1, 1, False)]:
        kk, ss, pp = (k,) * dim, (s,) * dim, (p,) * dim
        t_out, t_idx, _ = _torch_max(x, kk, ss, pp, (1,) * dim, cm)
        out, idx = poolkit.max_pool(x, kk, ss, pp, ceil_mode=cm, return_indices=True)
        np.testing.assert_array_equal(out, t_out)
        np.testing.assert_array_equal(idx, t_idx)
        t_avg, _ = _torch_avg(x, kk, ss, pp, cm, True, None)
        np.testing.assert_allclose(poolkit.avg_pool(x, kk, ss, pp, ceil_mode=cm), t_avg, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# the fixed-length family: adaptive, global, spatial pyramid pooling
# ---------------------------------------------------------------------------------------------


ADAPTIVE = {1: (TF.adaptive_max_pool1d, TF.adaptive_avg_pool1d),
            2: (TF.adaptive_max_pool2d, TF.adaptive_avg_pool2d),
            3: (TF.adaptive_max_pool3d, TF.adaptive_avg_pool3d)}


ADAPTIVE_CASES = [
    # spatial input, output size: In smaller than, equal to, a multiple of and not a multiple of Out
    ((7,), (3,)),
    ((3,), (7,)),
    ((8,), (8,)),
    ((12,), (4,)),
    ((5, 7), (3, 2)),
    ((4, 9), (6, 9)),
    ((13, 10), (4, 7)),
    ((6, 11), (None, 3)),
    ((5, 6, 7), (2, 3, 4)),
    ((3, 4, 5), (5, 4, 3)),
    ((4, 6, 5), (None, 4, None)),
]


@pytest.mark.parametrize("spatial,osize", ADAPTIVE_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adaptive_pools_and_backwards_match_torch(spatial, osize, dtype, rng):
    d = len(spatial)
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)
    tmax, tavg = ADAPTIVE[d]
    tsize = osize[0] if d == 1 else osize
    xt = T(x, grad=True)
    tout, tidx = tmax(xt, tsize, return_indices=True)
    out, idx = adaptive_max_pool(x, osize, return_indices=True)
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(out.shape).astype(dtype)
    (tgrad,) = torch.autograd.grad(tout, xt, T(g))
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize), tgrad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize, indices=idx), tgrad.numpy(), rtol=1e-6)

    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    xt = T(x, grad=True)
    tout = tavg(xt, tsize)
    out = adaptive_avg_pool(x, osize)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, tout.detach().numpy(), **tol)
    (tgrad,) = torch.autograd.grad(tout, xt, T(g))
    np.testing.assert_allclose(adaptive_avg_pool_backward(g, x, osize), tgrad.numpy(), **tol)


def test_adaptive_channels_last_matches_torch(rng):
    x = rng.standard_normal((2, 9, 7, 4))  # NHWC
    out, idx = adaptive_max_pool(x, (4, 3), axes=(1, 2), return_indices=True)
    tout, tidx = TF.adaptive_max_pool2d(T(x.transpose(0, 3, 1, 2)), (4, 3), return_indices=True)
    np.testing.assert_array_equal(out, tout.numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(idx, tidx.numpy().transpose(0, 2, 3, 1))


def test_global_matches_torch(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    np.testing.assert_array_equal(global_max_pool(x), TF.adaptive_max_pool2d(T(x), 1).numpy()[..., 0, 0])
    np.testing.assert_allclose(global_avg_pool(x, keepdims=True), TF.adaptive_avg_pool2d(T(x), 1).numpy(),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_spp_equals_concatenated_torch_adaptive(mode, rng):
    levels = (1, 2, 3, 6)
    tpool = TF.adaptive_max_pool2d if mode == "max" else TF.adaptive_avg_pool2d
    lengths = set()
    for hw in [(13, 13), (7, 10), (6, 6), (4, 5), (2, 3)]:
        x = rng.standard_normal((2, 5) + hw)
        xt = T(x, grad=True)
        tout = torch.cat([tpool(xt, level).flatten(1) for level in levels], dim=1)
        out = spatial_pyramid_pool(x, levels, mode=mode)
        lengths.add(out.shape)
        np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-15)
        g = rng.standard_normal(out.shape)
        (tgrad,) = torch.autograd.grad(tout, xt, T(g))
        np.testing.assert_allclose(spatial_pyramid_pool_backward(g, x, levels, mode=mode), tgrad.numpy(),
                                   rtol=1e-12, atol=1e-14)
    assert lengths == {(2, 5 * (1 + 4 + 9 + 36))}


def test_spp_3d_equals_concatenated_torch_adaptive(rng):
    x = rng.standard_normal((2, 3, 5, 4, 6))
    tout = torch.cat([TF.adaptive_max_pool3d(T(x), level).flatten(1) for level in (1, 2)], dim=1)
    np.testing.assert_array_equal(spatial_pyramid_pool(x, (1, 2)), tout.numpy())


# ---------------------------------------------------------------------------------------------
# fractional max pooling: exact given the samples
# ---------------------------------------------------------------------------------------------


FRACTIONAL_CASES = [
    # spatial, kernel, output
    ((11, 9), (2, 3), (5, 4)),
    ((32, 32), (2, 2), (22, 22)),
    ((10, 7), (3, 2), (8, 6)),
    ((25, 17), (2, 2), (7, 5)),
    ((9, 11, 13), (2, 2, 2), (4, 4, 4)),
    ((7, 9, 9), (2, 3, 2), (5, 6, 3)),
    ((7, 6, 6), (1, 2, 3), (6, 4, 1)),  # PyTorch 3-D wants Out + k - 1 < In
]


def _torch_fractional(xt, kernel, osize, samples):
    f = TF.fractional_max_pool2d if len(kernel) == 2 else TF.fractional_max_pool3d
    return f(xt, kernel, output_size=osize, return_indices=True, _random_samples=samples)


@pytest.mark.parametrize("spatial,kernel,osize", FRACTIONAL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_fractional_exact_given_samples(spatial, kernel, osize, dtype, rng):
    n = int(np.prod(spatial)) * 6
    # distinct values (no ties), exactly representable in float16
    x = ((rng.permutation(n) % 2000) - 1000).reshape((2, 3) + spatial).astype(dtype)
    u = rng.random((2, 3, len(kernel))).astype(dtype)
    xt = T(x, grad=dtype != np.float16)
    tout, tidx = _torch_fractional(xt, kernel, osize, T(u))
    out, idx = fractional_max_pool(x, kernel, osize, random_samples=u, return_indices=True)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    if dtype != np.float16:
        g = rng.standard_normal(out.shape).astype(dtype)
        (tgrad,) = torch.autograd.grad(tout, xt, T(g))
        got = fractional_max_pool_backward(g, x, kernel, osize, random_samples=u)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, tgrad.numpy(), rtol=1e-6)
        np.testing.assert_allclose(fractional_max_pool_backward(g, x, kernel, osize, indices=idx), tgrad.numpy(),
                                   rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fractional_interval_precision(dtype):
    # In=110, Out=103, k=2: the float32 and float64 interval rules disagree for this sample
    u = np.array([[[0.49999773502349854, 0.5]]], dtype=dtype)
    x = np.arange(110, dtype=dtype).reshape(1, 1, 1, 110)
    _, tidx = _torch_fractional(T(x), (1, 2), (1, 103), T(u))
    _, idx = fractional_max_pool(x, (1, 2), (1, 103), random_samples=u, return_indices=True)
    np.testing.assert_array_equal(idx, tidx.numpy())


def test_fractional_output_ratio_matches_torch(rng):
    x = rng.standard_normal((2, 3, 17, 23))
    u = rng.random((2, 3, 2))
    tout = TF.fractional_max_pool2d(T(x), 3, output_ratio=(0.6, 0.45), _random_samples=T(u))
    np.testing.assert_array_equal(fractional_max_pool(x, 3, output_ratio=(0.6, 0.45), random_samples=u), tout.numpy())
    # unbatched (C, H, W) input with PyTorch's (1, C, 2) samples
    tout = TF.fractional_max_pool2d(T(x[0]), 2, output_size=(9, 11), _random_samples=T(u[:1]))
    np.testing.assert_array_equal(fractional_max_pool(x[0], (2, 2), (9, 11), random_samples=u[:1]), tout.numpy())


# ---------------------------------------------------------------------------------------------
# poolkit.compat.torch against torch.nn.functional
# ---------------------------------------------------------------------------------------------


SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


def same(got, want, exact=True):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6, equal_nan=True)


@st.composite
def window_cases(draw, with_dilation=True):
    n = draw(st.integers(1, 3))
    k = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    s = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    d = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)) if with_dilation else [1] * n
    p = [draw(st.integers(0, kk // 2)) for kk in k]
    eff = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    spatial = [draw(st.integers(max(1, eff[i] - 2 * p[i]), max(1, eff[i] - 2 * p[i]) + 5)) for i in range(n)]
    lead = draw(st.sampled_from([(), (1,), (2,)]))  # () = unbatched (C, ...)
    channels = draw(st.integers(1, 3))
    ceil_mode = draw(st.booleans())
    ties = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    shape = (*lead, channels, *spatial)
    x = rng.integers(-2, 3, shape).astype(np.float32) if ties else rng.standard_normal(shape).astype(np.float32)
    return n, x, k, s, p, d, ceil_mode


@SETTINGS
@given(window_cases())
def test_max_pool_matches_torch(case):
    n, x, k, s, p, d, ceil_mode = case
    ours = getattr(F, f"max_pool{n}d")
    theirs = getattr(TF, f"max_pool{n}d")
    want_v, want_i = theirs(T(x), k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    got_v, got_i = ours(x, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    same(got_v, want_v)
    same(got_i, want_i)
    same(ours(x, k, s, p, d, ceil_mode), theirs(T(x), k, s, p, d, ceil_mode))


@SETTINGS
@given(window_cases(with_dilation=False), st.booleans(), st.sampled_from([None, 3, -2]))
def test_avg_pool_matches_torch(case, count_include_pad, divisor):
    n, x, k, s, p, _, ceil_mode = case
    kwargs = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    if n > 1:
        kwargs["divisor_override"] = divisor
    try:
        want = getattr(TF, f"avg_pool{n}d")(T(x), k, s, p, **kwargs)
    except RuntimeError as exc:  # avg_pool3d refuses an input smaller than the kernel: so must we
        with pytest.raises(ValueError, match=re.escape(str(exc).splitlines()[0][:40])):
            getattr(F, f"avg_pool{n}d")(x, k, s, p, **kwargs)
        return
    got = getattr(F, f"avg_pool{n}d")(x, k, s, p, **kwargs)
    same(got, want, exact=False)


def test_avg_pool_integer_input_truncates_like_torch():
    x = np.random.default_rng(0).integers(-50, 50, (2, 3, 7, 6))
    for kwargs in [dict(), dict(padding=1, count_include_pad=False), dict(ceil_mode=True), dict(divisor_override=4)]:
        same(F.avg_pool2d(x, 3, 2, **kwargs), TF.avg_pool2d(T(x), 3, 2, **kwargs))
    same(F.avg_pool1d(x[0], 2), TF.avg_pool1d(T(x[0]), 2))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("norm_type", [1, 2, 3, 1.5, 0.5, math.inf])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_lp_pool_matches_torch(n, norm_type, ceil_mode):
    rng = np.random.default_rng(n * 10 + int(ceil_mode))
    x = rng.standard_normal((2, 2) + (7, 6, 5)[:n]).astype(np.float32)
    k, s = [3, 2, 2][:n], [2, 2, 3][:n]
    if n == 1:
        k = 3  # torch's lp_pool1d needs an int kernel_size
    want = getattr(TF, f"lp_pool{n}d")(T(x), norm_type, k, s, ceil_mode=ceil_mode)
    got = getattr(F, f"lp_pool{n}d")(x, norm_type, k, s, ceil_mode=ceil_mode)
    same(got, want, exact=False)
    # unbatched, stride defaulting to the kernel
    want = getattr(TF, f"lp_pool{n}d")(T(x[0]), norm_type, 2, ceil_mode=ceil_mode)
    same(getattr(F, f"lp_pool{n}d")(x[0], norm_type, 2, ceil_mode=ceil_mode), want, exact=False)


def test_lp_pool_float64():
    x = np.random.default_rng(7).standard_normal((1, 2, 9)).astype(np.float64)
    same(F.lp_pool1d(x, 2, 4, 3, ceil_mode=True), TF.lp_pool1d(T(x), 2, 4, 3, ceil_mode=True), exact=False)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("sizes", [(3, 5, 4), (1, 2, 3), (7, 6, 5), (None, 2, None)])
def test_adaptive_matches_torch(n, sizes):
    rng = np.random.default_rng(n)
    x = rng.integers(-3, 4, (2, 3) + (7, 6, 5)[:n]).astype(np.float32)  # ties included
    out = sizes[0] if n == 1 else sizes[:n]
    if n == 1 and out is None:
        out = 4
    want_v, want_i = getattr(TF, f"adaptive_max_pool{n}d")(T(x), out, return_indices=True)
    got_v, got_i = getattr(F, f"adaptive_max_pool{n}d")(x, out, return_indices=True)
    same(got_v, want_v)
    same(got_i, want_i)
    same(getattr(F, f"adaptive_avg_pool{n}d")(x, out), getattr(TF, f"adaptive_avg_pool{n}d")(T(x), out), exact=False)
    # unbatched
    same(getattr(F, f"adaptive_max_pool{n}d")(x[0], out), getattr(TF, f"adaptive_max_pool{n}d")(T(x[0]), out))
    same(getattr(F, f"adaptive_avg_pool{n}d")(x[0], out), getattr(TF, f"adaptive_avg_pool{n}d")(T(x[0]), out),
         exact=False)


def test_adaptive_zero_output_is_empty_like_torch():
    x = np.ones((1, 2, 5, 5), np.float32)
    same(F.adaptive_max_pool2d(x, 0), TF.adaptive_max_pool2d(T(x), 0))
    same(F.adaptive_avg_pool2d(x, (0, 2)), TF.adaptive_avg_pool2d(T(x), (0, 2)))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_max_unpool_roundtrip_matches_torch(n):
    rng = np.random.default_rng(20 + n)
    x = rng.standard_normal((2, 2) + (7, 6, 5)[:n]).astype(np.float32)
    k, s, p = [3, 2, 2][:n], [2, 2, 1][:n], [1, 0, 1][:n]
    v, i = getattr(TF, f"max_pool{n}d")(T(x), k, s, p, return_indices=True)
    for output_size in (None, x.shape[2:], x.shape):
        want = getattr(TF, f"max_unpool{n}d")(v, i, k, s, p, output_size=output_size)
        got = getattr(F, f"max_unpool{n}d")(v.numpy(), i.numpy(), k, s, p, output_size=output_size)
        same(got, want)
    # unbatched
    want = getattr(TF, f"max_unpool{n}d")(v[0], i[0], k, s, p)
    same(getattr(F, f"max_unpool{n}d")(v[0].numpy(), i[0].numpy(), k, s, p), want)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fractional_max_pool_matches_torch(n, dtype):
    rng = np.random.default_rng(30 + n)
    x = rng.standard_normal((2, 3) + (11, 9, 8)[:n]).astype(dtype)
    samples = rng.random((2, 3, n)).astype(dtype)
    ours = getattr(F, f"fractional_max_pool{n}d")
    theirs = getattr(TF, f"fractional_max_pool{n}d")
    for kwargs in (dict(output_size=[5, 4, 3][:n]), dict(output_ratio=[0.5, 0.6, 0.7][:n])):
        want_v, want_i = theirs(T(x), 2, return_indices=True, _random_samples=T(samples), **kwargs)
        got_v, got_i = ours(x, 2, return_indices=True, _random_samples=samples, **kwargs)
        same(got_v, want_v)
        same(got_i, want_i)
    want = theirs(T(x[0]), 3, output_size=4, _random_samples=T(samples[:1]))
    same(ours(x[0], 3, output_size=4, _random_samples=samples[:1]), want)
    got = ours(x, 2, output_size=4)  # drawn samples: shape only
    assert got.shape == x.shape[:2] + (4,) * n


def _torch_error(call):
    try:
        call()
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        return str(e).split("\n")[0]
    return None


ERRORS = [
    ("pad > half effective kernel", lambda m, x: m.max_pool2d(x, 3, 1, 2),
     "pad should be at most half of effective kernel size"),
    ("avg pad > half kernel", lambda m, x: m.avg_pool2d(x, 3, 1, 2),
     "pad should be at most half of effective kernel size"),
    ("3d pad > half kernel", lambda m, x: m.avg_pool3d(x[None], 3, 1, 2),
     "pad should be at most half of effective kernel size"),
    ("pad > half raw kernel with dilation", lambda m, x: m.max_pool2d(x, 2, 1, 2, dilation=3),
     "pad should be smaller than or equal to half of kernel size"),
    ("negative pad", lambda m, x: m.max_pool2d(x, 2, 1, -1), "pad must be non-negative"),
    ("zero kernel", lambda m, x: m.max_pool2d(x, (0, 2), 1), "kernel size should be greater than zero"),
    ("zero stride", lambda m, x: m.avg_pool2d(x, 2, 0), "stride should not be zero"),
    ("negative stride", lambda m, x: m.max_pool2d(x, 2, -1), "stride should be greater than zero"),
    ("zero dilation", lambda m, x: m.max_pool2d(x, 2, dilation=0), "dilation should be greater than zero"),
    ("output too small", lambda m, x: m.max_pool2d(x, 6), "Output size is too small"),
    ("avg output too small", lambda m, x: m.avg_pool2d(x, 6), "Output size is too small"),
    ("lp output too small", lambda m, x: m.lp_pool2d(x, 2, 6), "Output size is too small"),
    ("bad rank", lambda m, x: m.max_pool2d(x[None], 2), "3D or 4D"),
    ("zero-size channel", lambda m, x: m.max_pool2d(x[:, :0], 2), "3D or 4D"),
    ("kernel of 3 for 2d", lambda m, x: m.max_pool2d(x, (2, 2, 2)),
     "kernel_size must either be a single int, or a tuple of two ints"),
    ("stride of 3 for 2d", lambda m, x: m.avg_pool2d(x, 2, (1, 1, 1)),
     "stride must either be omitted, a single int, or a tuple of two ints"),
    ("divisor zero", lambda m, x: m.avg_pool2d(x, 2, divisor_override=0), "divisor must be not zero"),
    ("adaptive rank", lambda m, x: m.adaptive_avg_pool2d(x[0, 0], 2), "Expected 3D or 4D tensor"),
    ("adaptive empty", lambda m, x: m.adaptive_max_pool2d(x[:, :, :0], 2), "non-zero size for non-batch dimensions"),
    ("unpool output size", lambda m, x: m.max_unpool2d(*_pool_with_indices(m, x), 2, output_size=(9, 9)),
     "invalid output_size"),
    ("fractional no size", lambda m, x: m.fractional_max_pool2d(x, 2),
     "requires specifying either an output_size or an output_ratio"),
    ("fractional too large", lambda m, x: m.fractional_max_pool2d(x, 2, output_size=5), "too large relative to input"),
]


def _pool_with_indices(m, x):
    return m.max_pool2d(x, 2, return_indices=True)


@pytest.mark.parametrize("name,call,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_torch_validation_as_value_error(name, call, message):
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(np.float32)
    theirs = _torch_error(lambda: call(TF, T(x)))
    assert theirs is not None and message in theirs, theirs
    with pytest.raises(ValueError, match=message):
        call(F, x)


def test_zero_batch_is_fine():
    x = np.zeros((0, 2, 5, 5), np.float32)
    same(F.max_pool2d(x, 2), TF.max_pool2d(T(x), 2))
    same(F.avg_pool2d(x, 2, padding=1), TF.avg_pool2d(T(x), 2, padding=1))


def test_nan_index_is_the_last_nan_like_torch():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 2, 7, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    for args in [(3, 2, 1), (2, 1, 0, 2)]:
        want = TF.max_pool2d(T(x), *args, return_indices=True)
        got = F.max_pool2d(x, *args, return_indices=True)
        np.testing.assert_array_equal(got[0], want[0].numpy())
        same(got[1], want[1])
    want = TF.adaptive_max_pool2d(T(x), (3, 4), return_indices=True)
    got = F.adaptive_max_pool2d(x, (3, 4), return_indices=True)
    np.testing.assert_array_equal(got[0], want[0].numpy())
    same(got[1], want[1])
    samples = rng.random((2, 2, 2)).astype(np.float32)
    want = TF.fractional_max_pool2d(T(x), 2, (4, 3), return_indices=True, _random_samples=T(samples))
    got = F.fractional_max_pool2d(x, 2, (4, 3), return_indices=True, _random_samples=samples)
    np.testing.assert_array_equal(got[0], want[0].numpy())
    same(got[1], want[1])


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_dilated_window_missing_the_input_like_torch(dtype):
    # taps at -1 and 1 skip the single column: PyTorch gives the lowest value and the index of the
    # first tap at or after 0 (here outside the input)
    x = np.arange(1, 7).reshape(1, 2, 3, 1).astype(dtype)
    for args in [((1, 2), (1, 2), (0, 1), (1, 2)), ((3, 2), 1, 1, 2)]:
        want = TF.max_pool2d(T(x), *args, return_indices=True)
        got = F.max_pool2d(x, *args, return_indices=True)
        same(got[0], want[0])
        same(got[1], want[1])


def test_shape_checks_only_3d_avg_makes():
    x = np.ones((1, 1, 2, 3, 3), np.float32)
    theirs = _torch_error(lambda: TF.avg_pool3d(T(x), (3, 1, 1), 1, (1, 0, 0)))
    assert "smaller than kernel size" in theirs
    with pytest.raises(ValueError, match="smaller than kernel size"):
        F.avg_pool3d(x, (3, 1, 1), 1, (1, 0, 0))
    same(F.avg_pool2d(x[0], (3, 1), 1, (1, 0)), TF.avg_pool2d(T(x[0]), (3, 1), 1, (1, 0)))
    # fractional 3-D needs output + kernel - 1 < input, 2-D only <=
    x = np.ones((1, 1, 3, 3, 3), np.float32)
    assert "too large" in _torch_error(lambda: TF.fractional_max_pool3d(T(x), 2, output_size=2))
    with pytest.raises(ValueError, match="too large"):
        F.fractional_max_pool3d(x, 2, output_size=2)
    same(F.fractional_max_pool2d(x[0], 2, output_size=2, _random_samples=np.zeros((1, 3, 2), np.float32)),
         TF.fractional_max_pool2d(T(x[0]), 2, output_size=2, _random_samples=torch.zeros(1, 3, 2)))
