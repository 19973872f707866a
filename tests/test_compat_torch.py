"""poolkit.compat.torch against torch.nn.functional (torch 2.13): values, indices, shapes, errors.

Expected values always come from PyTorch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from poolkit.compat import torch as F  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


def T(x):
    return torch.from_numpy(np.ascontiguousarray(x))


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
    want = getattr(TF, f"avg_pool{n}d")(T(x), k, s, p, **kwargs)
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
    ("pad > half effective kernel", lambda m, x: m.max_pool2d(x, 3, 1, 2), "pad should be at most half of effective kernel size"),
    ("avg pad > half kernel", lambda m, x: m.avg_pool2d(x, 3, 1, 2), "pad should be at most half of effective kernel size"),
    ("3d pad > half kernel", lambda m, x: m.avg_pool3d(x[None], 3, 1, 2), "pad should be at most half of effective kernel size"),
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
    ("kernel of 3 for 2d", lambda m, x: m.max_pool2d(x, (2, 2, 2)), "kernel_size must either be a single int, or a tuple of two ints"),
    ("stride of 3 for 2d", lambda m, x: m.avg_pool2d(x, 2, (1, 1, 1)), "stride must either be omitted, a single int, or a tuple of two ints"),
    ("divisor zero", lambda m, x: m.avg_pool2d(x, 2, divisor_override=0), "divisor must be not zero"),
    ("adaptive rank", lambda m, x: m.adaptive_avg_pool2d(x[0, 0], 2), "Expected 3D or 4D tensor"),
    ("adaptive empty", lambda m, x: m.adaptive_max_pool2d(x[:, :, :0], 2), "non-zero size for non-batch dimensions"),
    ("unpool output size", lambda m, x: m.max_unpool2d(*_pool_with_indices(m, x), 2, output_size=(9, 9)), "invalid output_size"),
    ("fractional no size", lambda m, x: m.fractional_max_pool2d(x, 2), "requires specifying either an output_size or an output_ratio"),
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
