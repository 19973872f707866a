"""poolkit.nn layers against PyTorch 2.13 with the same weights.

Each test builds a layer in both libraries, loads torch's ``state_dict`` (as NumPy arrays) into
poolkit's through ``load_state_dict`` -- so the keys must be torch's -- runs the forward on the same
float32 input and the backward on the same random ``grad_output``, and compares the output
(rtol 1e-5), the input gradient and every parameter gradient (rtol 1e-4).  Each comparison also
allows an absolute error of ``rtol * max|reference|``: a float32 sum that cancels has no relative
precision left, in PyTorch or here.  Max-type outputs and indices must be exactly equal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from poolkit import nn  # noqa: E402

torch.set_num_threads(1)

# PyTorch warns that 'same' padding with an even kernel copies the input; that is its business
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def close(actual, expected, rtol, what=""):
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.nanmax(np.abs(expected))) if expected.size and np.isfinite(expected).any() else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)


def to_numpy_state(module) -> dict:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def compare(tm, pm, x, *, rng, args=(), exact=False, grad_input=True):
    """Forward, input gradient and parameter gradients of torch module ``tm`` and poolkit module ``pm``."""
    state = to_numpy_state(tm)
    assert list(pm.state_dict()) == list(state), "state_dict keys differ from torch's"
    pm.load_state_dict(state)
    xt = torch.tensor(x, requires_grad=grad_input and x.dtype.kind == "f")
    yt = tm(xt, *[torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args])
    yt0 = yt[0] if isinstance(yt, tuple) else yt
    g = rng.standard_normal(tuple(yt0.shape)).astype(np.float32)
    yt0.backward(torch.tensor(g))
    y = pm(x, *args)
    y0 = y[0] if isinstance(y, tuple) else y
    if exact:
        np.testing.assert_array_equal(y0, yt0.detach().numpy())
    else:
        close(y0, yt0.detach().numpy(), 1e-5, "forward")
    if isinstance(y, tuple):
        np.testing.assert_array_equal(y[1], yt[1].numpy())
    gx = pm.backward(g)
    if grad_input and x.dtype.kind == "f":
        close(gx, xt.grad.numpy(), 1e-4, "input gradient")
    tparams = dict(tm.named_parameters())
    assert [n for n, _ in pm.named_parameters()] == list(tparams)
    for name, p in pm.named_parameters():
        close(p.grad, tparams[name].grad.numpy(), 1e-4, f"gradient of {name}")
    return y, gx


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------------------------


@st.composite
def conv_cases(draw, n):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 4)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2)) for _ in range(n))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if kind == "same":
        s = (1,) * n
        padding = "same"
        pads = [(di * (ki - 1)) for ki, di in zip(k, d)]
        pads = [(t // 2, t - t // 2) for t in pads]
    else:
        s = tuple(draw(st.integers(1, 3)) for _ in range(n))
        if kind == "valid":
            padding, pads = "valid", [(0, 0)] * n
        elif kind == "int":
            p = draw(st.integers(0, 2))
            padding, pads = p, [(p, p)] * n
        else:
            ps = tuple(draw(st.integers(0, 2)) for _ in range(n))
            padding, pads = ps, [(p, p) for p in ps]
    sizes = []
    for ki, di, (b, a) in zip(k, d, pads):
        span = di * (ki - 1) + 1
        lo = max(span - b - a, 1, (max(b, a) + 1) if mode != "zeros" else 1)
        sizes.append(draw(st.integers(lo, lo + 6)))
    batch = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    unbatched = draw(st.booleans()) and batch == 1
    return dict(cin=cin, cout=cout, k=k, s=s, padding=padding, d=d, groups=groups, bias=bias, mode=mode,
                shape=((cin,) if unbatched else (batch, cin)) + tuple(sizes))


def _conv_pair(n, c):
    T = torch.nn.Conv1d if n == 1 else torch.nn.Conv2d
    P = nn.Conv1d if n == 1 else nn.Conv2d
    kw = dict(stride=c["s"], padding=c["padding"], dilation=c["d"], groups=c["groups"], bias=c["bias"],
              padding_mode=c["mode"])
    return T(c["cin"], c["cout"], c["k"], **kw), P(c["cin"], c["cout"], c["k"], **kw)


@settings(max_examples=60)
@given(c=conv_cases(2), seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(c, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tm, pm = _conv_pair(2, c)
    compare(tm, pm, randn(rng, *c["shape"]), rng=rng)


@settings(max_examples=40)
@given(c=conv_cases(1), seed=st.integers(0, 2**16))
def test_conv1d_matches_torch(c, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tm, pm = _conv_pair(1, c)
    compare(tm, pm, randn(rng, *c["shape"]), rng=rng)


@pytest.mark.parametrize("opts", [
    dict(), dict(stride=2), dict(padding=1), dict(padding=(2, 0)), dict(dilation=2, padding=2),
    dict(groups=4), dict(groups=2, stride=(1, 2)), dict(padding="same", dilation=(1, 2)), dict(padding="valid"),
    dict(bias=False), dict(padding=1, padding_mode="reflect"), dict(padding=2, padding_mode="circular"),
    dict(padding=(1, 2), padding_mode="replicate"),
])
def test_conv2d_options(opts, rng):
    torch.manual_seed(0)
    compare(torch.nn.Conv2d(4, 8, 3, **opts), nn.Conv2d(4, 8, 3, **opts), randn(rng, 2, 4, 9, 8), rng=rng)


# ---------------------------------------------------------------------------------------------
# linear, activations, flatten, dropout, embedding, sequential
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7), (7,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(shape, bias, rng):
    torch.manual_seed(0)
    compare(torch.nn.Linear(7, 4, bias=bias), nn.Linear(7, 4, bias=bias), randn(rng, *shape), rng=rng)


def test_relu_flatten_identity(rng):
    x = randn(rng, 2, 3, 4, 5)
    compare(torch.nn.ReLU(), nn.ReLU(), x, rng=rng, exact=True)
    compare(torch.nn.Identity(), nn.Identity(), x, rng=rng, exact=True)
    for s, e in ((1, -1), (0, 1), (2, 3), (-2, -1)):
        compare(torch.nn.Flatten(s, e), nn.Flatten(s, e), x, rng=rng, exact=True)


def test_dropout_eval_and_p0_are_identity(rng):
    x = randn(rng, 3, 4)
    compare(torch.nn.Dropout(0.3).eval(), nn.Dropout(0.3).eval(), x, rng=rng, exact=True)
    compare(torch.nn.Dropout(0.0), nn.Dropout(0.0), x, rng=rng, exact=True)


def test_dropout_train_statistics_and_backward():
    drop = nn.Dropout(0.25, rng=np.random.default_rng(0))
    y = drop(np.ones((200, 200), dtype=np.float32))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    g = drop.backward(np.full((200, 200), 2.0, dtype=np.float32))
    np.testing.assert_array_equal(g, 2 * y)
    assert not nn.Dropout(1.0)(np.ones(5)).any()


@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
def test_embedding(padding_idx, rng):
    torch.manual_seed(0)
    tm = torch.nn.Embedding(10, 4, padding_idx=padding_idx)
    pm = nn.Embedding(10, 4, padding_idx=padding_idx)
    ids = rng.integers(0, 10, size=(3, 7))
    ids[0, :3] = 3  # repeated ids accumulate
    compare(tm, pm, ids, rng=rng, exact=True)
    if padding_idx is not None:
        fresh = nn.Embedding(10, 4, padding_idx=padding_idx)
        assert not fresh.weight.data[padding_idx].any()


def test_sequential_state_dict_keys_and_grads(rng):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                             torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                             torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10))
    pm = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    assert list(pm.state_dict()) == list(tm.state_dict())
    assert [(n, tuple(p.shape)) for n, p in pm.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    compare(tm, pm, randn(rng, 4, 1, 28, 28), rng=rng)


def test_nested_state_dict_keys():
    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.ReLU())
            self.emb = torch.nn.Embedding(5, 2)
            self.head = torch.nn.Linear(3, 1, bias=False)

    class PNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU())
            self.emb = nn.Embedding(5, 2)
            self.head = nn.Linear(3, 1, bias=False)

    assert list(PNet().state_dict()) == list(TNet().state_dict())


def test_default_initialisation_distributions():
    """kaiming_uniform_(a=sqrt(5)) weights and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases; N(0, 1) embeddings."""
    nn.manual_seed(0)
    conv = nn.Conv2d(16, 64, 3, groups=2)
    bound = 1 / math.sqrt(8 * 9)
    for arr in (conv.weight.data, conv.bias.data):
        assert np.abs(arr).max() <= bound and np.abs(arr).max() > 0.9 * bound
    w = conv.weight.data.ravel()
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # std of U(-b, b)
    lin = nn.Linear(100, 50)
    assert np.abs(lin.weight.data).max() <= 0.1 and np.abs(lin.bias.data).max() <= 0.1
    emb = nn.Embedding(1000, 20).weight.data
    assert abs(emb.mean()) < 0.02 and abs(emb.std() - 1) < 0.02
    assert conv.weight.dtype == np.float32 and nn.Linear(2, 2, dtype=np.float64).weight.dtype == np.float64
    # seeded: the same weights again
    a = nn.Conv2d(3, 4, 3, rng=np.random.default_rng(7)).weight.data
    b = nn.Conv2d(3, 4, 3, rng=np.random.default_rng(7)).weight.data
    np.testing.assert_array_equal(a, b)
    nn.manual_seed(5)
    c = nn.Linear(3, 3).weight.data
    nn.manual_seed(5)
    np.testing.assert_array_equal(c, nn.Linear(3, 3).weight.data)


# ---------------------------------------------------------------------------------------------
# pooling layers PyTorch has
# ---------------------------------------------------------------------------------------------


def _max_cases(n):
    cases = []
    for k, s, p, d, ceil in [(2, None, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 1, 1, True), (2, 1, 0, 1, False),
                             (3, 1, 1, 2, False), (3, 3, 0, 1, True), (4, 2, 2, 1, True), (2, 3, 1, 2, True)]:
        if n == 2:
            cases.append((k, s, p, d, ceil))
            cases.append(((k, 2), (s or k, 1), (p, 1), (d, 1), ceil))
        else:
            cases.append((k, s, p, d, ceil))
    return cases


@pytest.mark.parametrize("case", _max_cases(2))
@pytest.mark.parametrize("return_indices", [False, True])
def test_maxpool2d(case, return_indices, rng):
    k, s, p, d, ceil = case
    kw = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=return_indices)
    compare(torch.nn.MaxPool2d(k, **kw), nn.MaxPool2d(k, **kw), randn(rng, 2, 3, 9, 11), rng=rng, exact=True)


@pytest.mark.parametrize("case", _max_cases(1))
@pytest.mark.parametrize("shape", [(2, 3, 13), (3, 10)])
def test_maxpool1d(case, shape, rng):
    k, s, p, d, ceil = case
    kw = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)
    compare(torch.nn.MaxPool1d(k, **kw), nn.MaxPool1d(k, **kw), randn(rng, *shape), rng=rng, exact=True)


def test_maxpool_overlapping_ties_follow_torch(rng):
    x = rng.integers(0, 3, size=(2, 2, 8, 8)).astype(np.float32)  # many ties
    compare(torch.nn.MaxPool2d(3, 1, 1), nn.MaxPool2d(3, 1, 1), x, rng=rng, exact=True)


_AVG_CASES = [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), dict(kernel_size=2, stride=1),
]


@pytest.mark.parametrize("opts", _AVG_CASES + [dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0)),
                                               dict(kernel_size=3, padding=1, divisor_override=5)])
def test_avgpool2d(opts, rng):
    compare(torch.nn.AvgPool2d(**opts), nn.AvgPool2d(**opts), randn(rng, 2, 3, 9, 10), rng=rng)


@pytest.mark.parametrize("opts", _AVG_CASES)
def test_avgpool1d(opts, rng):
    compare(torch.nn.AvgPool1d(**opts), nn.AvgPool1d(**opts), randn(rng, 2, 3, 11), rng=rng)


@pytest.mark.parametrize("p", [1, 2, 3, 1.5, math.inf])
@pytest.mark.parametrize("opts", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                  dict(kernel_size=3, stride=2, ceil_mode=True),
                                  dict(kernel_size=(2, 3), stride=(1, 2), ceil_mode=True)])
def test_lppool2d(p, opts, rng):
    x = np.abs(randn(rng, 2, 3, 8, 9)) + 0.1  # positive: PyTorch's signed formula has NaN gradients otherwise
    compare(torch.nn.LPPool2d(p, **opts), nn.LPPool2d(p, **opts), x, rng=rng)


@pytest.mark.parametrize("p", [1, 2, 3, math.inf])
@pytest.mark.parametrize("opts", [dict(kernel_size=2), dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_lppool1d(p, opts, rng):
    x = np.abs(randn(rng, 2, 3, 11)) + 0.1
    compare(torch.nn.LPPool1d(p, **opts), nn.LPPool1d(p, **opts), x, rng=rng)


def test_lppool_signed_and_zero_windows_follow_torch(rng):
    """Windows summing to 0 pass no gradient; odd p with a negative window sum is NaN; both as PyTorch."""
    x = randn(rng, 1, 2, 6, 6)
    x[0, 0, :2, :2] = 0
    tm, pm = torch.nn.LPPool2d(2, 2), nn.LPPool2d(2, 2)
    compare(tm, pm, x, rng=rng)
    compare(torch.nn.LPPool2d(3, 2), nn.LPPool2d(3, 2), x, rng=rng)


@pytest.mark.parametrize("size", [1, 3, 4, 7, 12, (3, None), (None, 5), (2, 9)])
def test_adaptive_pool2d(size, rng):
    x = randn(rng, 2, 3, 7, 9)
    compare(torch.nn.AdaptiveAvgPool2d(size), nn.AdaptiveAvgPool2d(size), x, rng=rng)
    compare(torch.nn.AdaptiveMaxPool2d(size, return_indices=True), nn.AdaptiveMaxPool2d(size, return_indices=True),
            x, rng=rng, exact=True)


@pytest.mark.parametrize("size", [1, 3, 5, 11, 20])
def test_adaptive_pool1d(size, rng):
    x = randn(rng, 2, 3, 11)
    compare(torch.nn.AdaptiveAvgPool1d(size), nn.AdaptiveAvgPool1d(size), x, rng=rng)
    compare(torch.nn.AdaptiveMaxPool1d(size), nn.AdaptiveMaxPool1d(size), x, rng=rng, exact=True)
    compare(torch.nn.AdaptiveMaxPool1d(size), nn.AdaptiveMaxPool1d(size), x[0], rng=rng, exact=True)  # unbatched


@pytest.mark.parametrize("opts", [dict(kernel_size=2, output_size=4), dict(kernel_size=3, output_size=(5, 3)),
                                  dict(kernel_size=(2, 3), output_ratio=0.5),
                                  dict(kernel_size=2, output_ratio=(0.7, 0.4))])
def test_fractional_maxpool2d(opts, rng):
    x = randn(rng, 2, 3, 11, 10)
    samples = rng.random((2, 3, 2)).astype(np.float32)
    tm = torch.nn.FractionalMaxPool2d(**opts, return_indices=True, _random_samples=torch.tensor(samples))
    pm = nn.FractionalMaxPool2d(**opts, return_indices=True, _random_samples=samples)
    compare(tm, pm, x, rng=rng, exact=True)


def test_fractional_maxpool2d_draws_reproducibly(rng):
    x = randn(rng, 2, 3, 12, 12)
    a = nn.FractionalMaxPool2d(2, output_ratio=0.6, rng=np.random.default_rng(3))(x)
    b = nn.FractionalMaxPool2d(2, output_ratio=0.6, rng=np.random.default_rng(3))(x)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 3, 7, 7)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("k, s, p, spatial, out", [(2, None, 0, (8, 6), None), (3, 2, 1, (9, 8), "input"),
                                                   (2, 2, 0, (9, 7), "input")])
def test_max_unpool(n, k, s, p, spatial, out, rng):
    shape = (2, 3) + spatial[:n]
    x = randn(rng, *shape)
    Tp, Tu = (torch.nn.MaxPool1d, torch.nn.MaxUnpool1d) if n == 1 else (torch.nn.MaxPool2d, torch.nn.MaxUnpool2d)
    Pu = nn.MaxUnpool1d if n == 1 else nn.MaxUnpool2d
    vals, idx = Tp(k, s, p, return_indices=True)(torch.tensor(x))
    size = None if out is None else list(shape[2:])
    tm, pm = Tu(k, s, p), Pu(k, s, p)
    v = vals.numpy()
    vt = torch.tensor(v, requires_grad=True)
    yt = tm(vt, idx, size)
    y = pm(v, idx.numpy(), size)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    g = randn(rng, *y.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(pm.backward(g), vt.grad.numpy())


def test_unbatched_inputs(rng):
    x = randn(rng, 3, 8, 8)
    compare(torch.nn.MaxPool2d(2), nn.MaxPool2d(2), x, rng=rng, exact=True)
    compare(torch.nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1), x, rng=rng)
    torch.manual_seed(0)
    compare(torch.nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1), x, rng=rng)


# ---------------------------------------------------------------------------------------------
# beyond PyTorch: against PyTorch reference implementations
# ---------------------------------------------------------------------------------------------


class TorchBlurPool(torch.nn.Module):
    """antialiased_cnns.BlurPool (Zhang 2019, reference implementation), for 2-D."""

    def __init__(self, channels, pad_type="reflect", filt_size=4, stride=2, pad_off=0):
        super().__init__()
        self.filt_size, self.stride = filt_size, stride
        pads = [int(1. * (filt_size - 1) / 2), int(np.ceil(1. * (filt_size - 1) / 2))] * 2
        self.pad_sizes = [p + pad_off for p in pads]
        a = np.array([math.comb(filt_size - 1, i) for i in range(filt_size)], dtype=np.float64)
        filt = torch.Tensor(a[:, None] * a[None, :])
        filt = filt / torch.sum(filt)
        self.register_buffer("filt", filt[None, None, :, :].repeat((channels, 1, 1, 1)))
        self.pad = {"reflect": torch.nn.ReflectionPad2d, "replicate": torch.nn.ReplicationPad2d,
                    "zero": torch.nn.ZeroPad2d}[pad_type](self.pad_sizes)

    def forward(self, inp):
        if self.filt_size == 1:
            return self.pad(inp)[:, :, ::self.stride, ::self.stride]
        return torch.nn.functional.conv2d(self.pad(inp), self.filt, stride=self.stride, groups=inp.shape[1])


@pytest.mark.parametrize("filt_size", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("pad_type", ["reflect", "replicate", "zero"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_blurpool2d_matches_reference(filt_size, pad_type, stride, rng):
    x = randn(rng, 2, 3, 9, 10)
    compare(TorchBlurPool(3, pad_type, filt_size, stride), nn.BlurPool2d(3, pad_type, filt_size, stride), x, rng=rng)


def test_blurpool2d_pad_off(rng):
    x = randn(rng, 2, 3, 9, 10)
    compare(TorchBlurPool(3, "zero", 4, 2, pad_off=1), nn.BlurPool2d(3, "zero", 4, 2, pad_off=1), x, rng=rng)


@pytest.mark.parametrize("kernel_size, filt_size", [(2, 4), (3, 3), (2, 1)])
def test_maxblurpool2d_matches_reference(kernel_size, filt_size, rng):
    tm = torch.nn.Sequential(torch.nn.MaxPool2d(kernel_size, stride=1), TorchBlurPool(4, filt_size=filt_size))
    pm = nn.MaxBlurPool2d(4, kernel_size=kernel_size, filt_size=filt_size)
    compare(tm, pm, randn(rng, 2, 4, 12, 11), rng=rng)


def test_blurpool_rejects_another_filter():
    b = nn.BlurPool2d(2)
    state = b.state_dict()
    state["filt"] = np.ones_like(state["filt"])
    with pytest.raises(ValueError, match="binomial"):
        b.load_state_dict(state)


class TorchSPP(torch.nn.Module):
    def __init__(self, levels, mode):
        super().__init__()
        self.levels, self.mode = levels, mode

    def forward(self, x):
        f = torch.nn.functional.adaptive_max_pool2d if self.mode == "max" else torch.nn.functional.adaptive_avg_pool2d
        return torch.cat([f(x, lv).flatten(1) for lv in self.levels], dim=1)


@pytest.mark.parametrize("levels", [(1, 2, 4), (3,), (1, 5)])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("hw", [(7, 9), (4, 4), (13, 5)])
def test_spatial_pyramid_pool(levels, mode, hw, rng):
    compare(TorchSPP(levels, mode), nn.SpatialPyramidPool(levels, mode), randn(rng, 2, 3, *hw), rng=rng,
            exact=mode == "max")


class TorchMasked(torch.nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, x, lengths):
        valid = torch.arange(x.shape[2])[None, :] < lengths[:, None]
        m = valid[:, None, :]
        if self.mode == "max":
            out = x.masked_fill(~m, -math.inf).amax(dim=2)
        elif self.mode == "min":
            out = x.masked_fill(~m, math.inf).amin(dim=2)
        elif self.mode == "sum":
            out = (x * m).sum(dim=2)
        else:
            out = (x * m).sum(dim=2) / lengths.clamp(min=1)[:, None]
        return torch.where(lengths[:, None] > 0, out, torch.zeros_like(out))


@pytest.mark.parametrize("mode", ["max", "mean", "sum", "min"])
def test_masked_pool1d(mode, rng):
    x = randn(rng, 4, 3, 9)
    lengths = np.array([9, 4, 1, 0])
    x[1, :, 4:] = 1e6  # padding must not matter
    compare(TorchMasked(mode), nn.MaskedPool1d(mode), x, rng=rng, args=(lengths,))
    mask = np.arange(9)[None] < lengths[:, None]
    pm = nn.MaskedPool1d(mode)
    np.testing.assert_array_equal(pm(x, mask=mask), nn.MaskedPool1d(mode)(x, lengths=lengths))


def test_global_avg_pool(rng):
    class T(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    compare(T(), nn.GlobalAvgPool(), randn(rng, 2, 5, 6, 7), rng=rng)
    assert nn.GlobalAvgPool(keepdims=True)(np.ones((2, 3, 4, 4))).shape == (2, 3, 1, 1)
