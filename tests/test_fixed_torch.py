"""The fixed-length family against PyTorch 2.13: adaptive pooling (values, indices, gradients over
1/2/3-D), spatial pyramid pooling (concatenated adaptive pooling), fractional max pooling (exact
given the samples), global pooling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

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

ADAPTIVE = {1: (F.adaptive_max_pool1d, F.adaptive_avg_pool1d),
            2: (F.adaptive_max_pool2d, F.adaptive_avg_pool2d),
            3: (F.adaptive_max_pool3d, F.adaptive_avg_pool3d)}

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


def _torch(a, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.requires_grad_(True) if grad else t


@pytest.mark.parametrize("spatial,osize", ADAPTIVE_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adaptive_matches_torch(spatial, osize, dtype, rng):
    d = len(spatial)
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)
    tmax, tavg = ADAPTIVE[d]
    tsize = osize[0] if d == 1 else osize
    xt = _torch(x, grad=True)
    tout, tidx = tmax(xt, tsize, return_indices=True)
    out, idx = adaptive_max_pool(x, osize, return_indices=True)
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(out.shape).astype(dtype)
    (tgrad,) = torch.autograd.grad(tout, xt, _torch(g))
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize), tgrad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(adaptive_max_pool_backward(g, x, osize, indices=idx), tgrad.numpy(), rtol=1e-6)

    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    xt = _torch(x, grad=True)
    tout = tavg(xt, tsize)
    out = adaptive_avg_pool(x, osize)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, tout.detach().numpy(), **tol)
    (tgrad,) = torch.autograd.grad(tout, xt, _torch(g))
    np.testing.assert_allclose(adaptive_avg_pool_backward(g, x, osize), tgrad.numpy(), **tol)


def test_adaptive_channels_last_matches_torch(rng):
    x = rng.standard_normal((2, 9, 7, 4))  # NHWC
    out, idx = adaptive_max_pool(x, (4, 3), axes=(1, 2), return_indices=True)
    tout, tidx = F.adaptive_max_pool2d(_torch(x.transpose(0, 3, 1, 2)), (4, 3), return_indices=True)
    np.testing.assert_array_equal(out, tout.numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(idx, tidx.numpy().transpose(0, 2, 3, 1))


def test_global_matches_torch(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    np.testing.assert_array_equal(global_max_pool(x), F.adaptive_max_pool2d(_torch(x), 1).numpy()[..., 0, 0])
    np.testing.assert_allclose(global_avg_pool(x, keepdims=True), F.adaptive_avg_pool2d(_torch(x), 1).numpy(),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_spp_equals_concatenated_torch_adaptive(mode, rng):
    levels = (1, 2, 3, 6)
    tpool = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
    lengths = set()
    for hw in [(13, 13), (7, 10), (6, 6), (4, 5), (2, 3)]:
        x = rng.standard_normal((2, 5) + hw)
        xt = _torch(x, grad=True)
        tout = torch.cat([tpool(xt, level).flatten(1) for level in levels], dim=1)
        out = spatial_pyramid_pool(x, levels, mode=mode)
        lengths.add(out.shape)
        np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-15)
        g = rng.standard_normal(out.shape)
        (tgrad,) = torch.autograd.grad(tout, xt, _torch(g))
        np.testing.assert_allclose(spatial_pyramid_pool_backward(g, x, levels, mode=mode), tgrad.numpy(),
                                   rtol=1e-12, atol=1e-14)
    assert lengths == {(2, 5 * (1 + 4 + 9 + 36))}


def test_spp_3d_equals_concatenated_torch_adaptive(rng):
    x = rng.standard_normal((2, 3, 5, 4, 6))
    tout = torch.cat([F.adaptive_max_pool3d(_torch(x), level).flatten(1) for level in (1, 2)], dim=1)
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
    f = F.fractional_max_pool2d if len(kernel) == 2 else F.fractional_max_pool3d
    return f(xt, kernel, output_size=osize, return_indices=True, _random_samples=samples)


@pytest.mark.parametrize("spatial,kernel,osize", FRACTIONAL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_fractional_exact_given_samples(spatial, kernel, osize, dtype, rng):
    n = int(np.prod(spatial)) * 6
    # distinct values (no ties), exactly representable in float16
    x = ((rng.permutation(n) % 2000) - 1000).reshape((2, 3) + spatial).astype(dtype)
    u = rng.random((2, 3, len(kernel))).astype(dtype)
    xt = _torch(x, grad=dtype != np.float16)
    tout, tidx = _torch_fractional(xt, kernel, osize, _torch(u))
    out, idx = fractional_max_pool(x, kernel, osize, random_samples=u, return_indices=True)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    if dtype != np.float16:
        g = rng.standard_normal(out.shape).astype(dtype)
        (tgrad,) = torch.autograd.grad(tout, xt, _torch(g))
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
    _, tidx = _torch_fractional(_torch(x), (1, 2), (1, 103), _torch(u))
    _, idx = fractional_max_pool(x, (1, 2), (1, 103), random_samples=u, return_indices=True)
    np.testing.assert_array_equal(idx, tidx.numpy())


def test_fractional_output_ratio_matches_torch(rng):
    x = rng.standard_normal((2, 3, 17, 23))
    u = rng.random((2, 3, 2))
    tout = F.fractional_max_pool2d(_torch(x), 3, output_ratio=(0.6, 0.45), _random_samples=_torch(u))
    np.testing.assert_array_equal(fractional_max_pool(x, 3, output_ratio=(0.6, 0.45), random_samples=u), tout.numpy())
    # unbatched (C, H, W) input with PyTorch's (1, C, 2) samples
    tout = F.fractional_max_pool2d(_torch(x[0]), 2, output_size=(9, 11), _random_samples=_torch(u[:1]))
    np.testing.assert_array_equal(fractional_max_pool(x[0], (2, 2), (9, 11), random_samples=u[:1]), tout.numpy())
