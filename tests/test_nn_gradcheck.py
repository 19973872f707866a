"""Finite differences in float64: every layer's ``backward`` is the derivative of its ``forward``.

For a random ``g``, the input gradient and every parameter gradient of ``sum(g * layer(x))`` are
compared with central differences (step 1e-6) at every entry.  Inputs are drawn so that no max
ties and no ReLU input sits at 0, where the derivative does not exist.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from poolkit import nn

F64 = np.float64


def numeric_grad(f, arr, eps=1e-6):
    out = np.zeros_like(arr, dtype=F64)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        out[i] = (fp - fm) / (2 * eps)
    return out


def gradcheck(layer, x, *args, rng, input_grad=True, rtol=1e-5, atol=1e-7):
    x = np.array(x)
    layer.zero_grad()
    y = layer(x, *args)
    y0 = y[0] if isinstance(y, tuple) else y
    g = rng.standard_normal(np.shape(y0))
    gx = layer.backward(g)

    def f():
        out = layer(x, *args)
        out = out[0] if isinstance(out, tuple) else out
        return float(np.sum(g * out))

    if input_grad:
        assert gx.dtype == F64, f"input gradient dtype {gx.dtype}"
        np.testing.assert_allclose(gx, numeric_grad(f, x), rtol=rtol, atol=atol, err_msg="input gradient")
    for name, p in layer.named_parameters():
        analytic = p.grad.copy()
        np.testing.assert_allclose(analytic, numeric_grad(f, p.data), rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def distinct(rng, *shape, low=-2.0, high=2.0):
    """Values at least ~1e-3 apart and away from 0 (no ties, no kinks)."""
    n = math.prod(shape)
    vals = np.linspace(low, high, n)
    vals = vals[np.abs(vals) > 1e-3]
    while vals.size < n:
        vals = np.append(vals, high + 0.01 * (vals.size + 1))
    return rng.permutation(vals[:n]).reshape(shape)


@pytest.mark.parametrize("opts", [
    dict(), dict(stride=2, padding=1), dict(dilation=2, padding=(2, 1)), dict(groups=2, padding="same"),
    dict(padding=1, padding_mode="reflect"), dict(padding=2, padding_mode="circular", bias=False),
    dict(padding=(1, 2), padding_mode="replicate", stride=(2, 1)),
])
def test_conv2d(opts, rng):
    layer = nn.Conv2d(2, 4, 3, dtype=F64, rng=rng, **opts)
    gradcheck(layer, rng.standard_normal((2, 2, 6, 5)), rng=rng)


@pytest.mark.parametrize("opts", [dict(), dict(stride=2, padding=2, dilation=2), dict(groups=2, padding="same"),
                                  dict(padding=1, padding_mode="reflect")])
def test_conv1d(opts, rng):
    gradcheck(nn.Conv1d(2, 4, 3, dtype=F64, rng=rng, **opts), rng.standard_normal((2, 2, 7)), rng=rng)


def test_linear_relu_flatten_sequential(rng):
    model = nn.Sequential(nn.Linear(5, 4, dtype=F64, rng=rng), nn.ReLU(), nn.Linear(4, 3, dtype=F64, rng=rng))
    gradcheck(model, distinct(rng, 3, 5), rng=rng)
    gradcheck(nn.Flatten(1, 2), rng.standard_normal((2, 3, 4, 2)), rng=rng)
    gradcheck(nn.Linear(4, 2, bias=False, dtype=F64, rng=rng), rng.standard_normal((2, 3, 4)), rng=rng)


def test_dropout_with_its_mask(rng):
    drop = nn.Dropout(0.5, rng=np.random.default_rng(0)).eval()
    gradcheck(drop, rng.standard_normal((3, 4)), rng=rng)


def test_embedding_weight_gradient(rng):
    emb = nn.Embedding(6, 3, padding_idx=1, dtype=F64, rng=rng)
    ids = np.array([[0, 1, 2, 2], [5, 1, 0, 3]])
    layer = emb
    layer.zero_grad()
    y = layer(ids)
    g = rng.standard_normal(y.shape)
    assert layer.backward(g) is None
    num = numeric_grad(lambda: float(np.sum(g * layer(ids))), emb.weight.data)
    num[1] = 0  # padding_idx gets no gradient (as in PyTorch)
    np.testing.assert_allclose(emb.weight.grad, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("layer", [
    nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.MaxPool2d(2, 1, dilation=2),
    nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    nn.AvgPool2d(2, divisor_override=3),
    nn.LPPool2d(2, 2), nn.LPPool2d(3, 3, 2, ceil_mode=True), nn.LPPool2d(1.5, 2), nn.LPPool2d(math.inf, 2),
    nn.AdaptiveMaxPool2d((3, 2)), nn.AdaptiveAvgPool2d(4), nn.AdaptiveAvgPool2d((None, 3)),
    nn.FractionalMaxPool2d(2, output_size=3, _random_samples=np.full((2, 2, 2), 0.4)),
    nn.SpatialPyramidPool((1, 2, 3)), nn.SpatialPyramidPool((1, 2), mode="avg"), nn.GlobalAvgPool(),
    nn.BlurPool2d(2), nn.BlurPool2d(2, "zero", 3, 1), nn.BlurPool2d(2, "replicate", 5, 3), nn.MaxBlurPool2d(2),
], ids=repr)
def test_pooling_2d(layer, rng):
    x = distinct(rng, 2, 2, 7, 6, low=0.1, high=2.0) if isinstance(layer, nn.LPPool2d) else distinct(rng, 2, 2, 7, 6)
    gradcheck(layer, x, rng=rng)


@pytest.mark.parametrize("layer", [
    nn.MaxPool1d(3, 2, 1), nn.AvgPool1d(3, 2, 1, ceil_mode=True), nn.LPPool1d(2, 3, 2),
    nn.AdaptiveMaxPool1d(4), nn.AdaptiveAvgPool1d(3),
], ids=repr)
def test_pooling_1d(layer, rng):
    x = distinct(rng, 2, 3, 9, low=0.1) if isinstance(layer, nn.LPPool1d) else distinct(rng, 2, 3, 9)
    gradcheck(layer, x, rng=rng)


@pytest.mark.parametrize("mode", ["max", "mean", "sum", "min"])
def test_masked_pool(mode, rng):
    gradcheck(nn.MaskedPool1d(mode), distinct(rng, 3, 2, 6), np.array([6, 2, 0]), rng=rng)


@pytest.mark.parametrize("n", [1, 2])
def test_max_unpool(n, rng):
    shape = (2, 2, 8, 6)[:n + 2]
    pool = (nn.MaxPool1d if n == 1 else nn.MaxPool2d)(2, return_indices=True)
    v, idx = pool(distinct(rng, *shape))
    unpool = (nn.MaxUnpool1d if n == 1 else nn.MaxUnpool2d)(2)
    gradcheck(unpool, v, idx, rng=rng)


@pytest.mark.parametrize("opts", [dict(), dict(weight=[1.0, 2.0, 0.5, 1.0]), dict(label_smoothing=0.1),
                                  dict(reduction="sum", ignore_index=1)])
def test_cross_entropy(opts, rng):
    loss = nn.CrossEntropyLoss(**opts)
    x = rng.standard_normal((5, 4))
    y = np.array([0, 1, 3, 2, 1])
    loss(x, y)
    g = loss.backward()
    num = numeric_grad(lambda: float(loss(x, y)), x)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_mse(rng):
    loss = nn.MSELoss()
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss(x, t)
    np.testing.assert_allclose(loss.backward(), numeric_grad(lambda: float(loss(x, t)), x), rtol=1e-6)


def test_text_model_gradient(rng):
    """A custom Module chaining Embedding, Conv1d, ReLU, MaskedPool1d and Linear (the lab's text model)."""
    from poolkit.nn.lab.models import TextCNN

    model = TextCNN(7, 3, dim=4, channels=5, rng=rng)
    for p in model.parameters():
        p.data = p.data.astype(F64)
    tokens = np.array([[1, 2, 3, 4, 0], [5, 6, 1, 0, 0]])
    lengths = np.array([4, 3])
    model.zero_grad()
    y = model(tokens, lengths)
    g = rng.standard_normal(y.shape)
    model.backward(g)
    for name, p in model.named_parameters():
        num = numeric_grad(lambda: float(np.sum(g * model(tokens, lengths))), p.data)
        if name == "embedding.weight":
            num[0] = 0
        np.testing.assert_allclose(p.grad, num, rtol=1e-5, atol=1e-7, err_msg=name)
