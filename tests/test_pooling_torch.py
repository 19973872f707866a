"""Differential tests against PyTorch 2.13.0 (CPU): the oracle first, then poolkit, forward and
gradient, over 1-, 2- and 3-D pooling with every option torch has.

PyTorch's restrictions shape the parameter space: symmetric padding of at most half the kernel,
no dilation for average pooling, Lp pooling without padding (and signed, so nonnegative inputs).
NaN is not compared with torch: its CPU max kernel reports the *last* NaN, poolkit the first.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import reference as R

torch = pytest.importorskip("torch")
F = torch.nn.functional
torch.set_num_threads(1)

import poolkit  # noqa: E402

FMAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
FAVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
FLP = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: getattr(F, "lp_pool3d", None)}


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------


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
    # returns -inf there; poolkit rejects it, so such geometries are tested in test_errors.
    assume(R.ref_windows_ok(sizes, ks, ss, ps, ds, cm, tuple(range(dim))))
    return (n, c, *sizes), tuple(ks), tuple(ss), tuple(ps), tuple(ds), cm


def _data(seed, shape, ties, dtype=np.float64):
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(-3, 4, size=shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    return x, rng


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
        out = F.avg_pool2d(xt[:, :, None, :], (1,) + tuple(k), (1,) + tuple(s), (0,) + tuple(p), ceil_mode=cm,
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
    out, idx = F.max_pool2d(xt, 3, 2, 1, return_indices=True)
    t_un = F.max_unpool2d(out, idx, 3, 2, 1, output_size=(7, 6)).numpy()
    np.testing.assert_array_equal(R.ref_max_unpool(out.numpy(), idx.numpy(), (7, 6)), t_un)


# ---------------------------------------------------------------------------------------------
# poolkit agrees with torch
# ---------------------------------------------------------------------------------------------


@settings(max_examples=80)
@given(geo=torch_geometry(), seed=st.integers(0, 2**32 - 1), ties=st.booleans())
def test_max_pool_matches_torch(geo, seed, ties):
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
def test_avg_pool_matches_torch(geo, seed, cip, dov):
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
    # torch's max_unpool is a scatter into a zero plane; F.max_unpoolNd also checks output_size
    # against an undilated geometry, so do its scatter directly.
    t_un = torch.zeros(shape[:2] + (int(np.prod(shape[2:])),), dtype=torch.float64)
    t_un = t_un.scatter_(2, t_idx.flatten(2), t_out.flatten(2)).reshape(shape).numpy()
    if d == (1,) * len(k) and len(k) > 1:
        t_un2 = {2: F.max_unpool2d, 3: F.max_unpool3d}[len(k)](t_out, t_idx, k, s, p, output_size=shape[2:])
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
