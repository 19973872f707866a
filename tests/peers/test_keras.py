"""poolkit.compat.keras against Keras 3 (TensorFlow backend): outputs and input gradients.

Expected values and gradients come from ``keras.layers`` and ``tf.GradientTape``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from poolkit.compat import keras as pk  # noqa: E402

pytestmark = pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="compared with the TensorFlow backend")


def keras_forward_backward(layer, x, g, **kwargs):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, **kwargs)
        loss = tf.reduce_sum(y * tf.constant(g, dtype=y.dtype))
    return y.numpy(), tape.gradient(loss, xt).numpy()


def check(name, kwargs, x, call_kwargs=None, rtol=1e-6):
    call_kwargs = call_kwargs or {}
    ours = getattr(pk, name)(**kwargs)
    y = ours(x, **call_kwargs)
    g = np.random.default_rng(99).standard_normal(y.shape).astype(np.float32)
    want_y, want_g = keras_forward_backward(getattr(keras.layers, name)(**kwargs), x, g, **call_kwargs)
    assert y.dtype == want_y.dtype and y.shape == want_y.shape, (y.dtype, want_y.dtype, y.shape, want_y.shape)
    np.testing.assert_allclose(y, want_y, rtol=rtol, atol=1e-6)
    got_g = ours.backward(g)
    assert got_g.shape == want_g.shape and got_g.dtype == want_g.dtype
    np.testing.assert_allclose(got_g, want_g, rtol=rtol, atol=1e-6)


def data(shape, seed=0):
    # distinct values: no ties, so the max gradient has one right answer
    rng = np.random.default_rng(seed)
    return rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32) / 7.0 - 3.0


SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["MaxPooling", "AveragePooling"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_layers(n, kind, padding, data_format):
    if data_format == "channels_last":
        shape = (2, *SPATIAL[n], 3)
    else:
        shape = (2, 3, *SPATIAL[n])
    x = data(shape, seed=n)
    pool = (3, 2, 2)[:n] if n > 1 else 3
    strides = (2, 1, 2)[:n] if n > 1 else 2
    check(f"{kind}{n}D", dict(pool_size=pool, strides=strides, padding=padding, data_format=data_format), x)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pooling_default_strides(n):
    x = data((1, *SPATIAL[n], 2), seed=5)
    check(f"MaxPooling{n}D", {}, x)
    check(f"AveragePooling{n}D", dict(pool_size=2, padding="same"), x)


def test_aliases():
    assert pk.MaxPool2D is pk.MaxPooling2D and pk.AvgPool1D is pk.AveragePooling1D
    assert pk.GlobalAvgPool3D is pk.GlobalAveragePooling3D and pk.GlobalMaxPool1D is pk.GlobalMaxPooling1D
    x = data((1, 6, 6, 2))
    check("MaxPool2D", dict(pool_size=3, strides=2, padding="same"), x)
    check("AvgPool2D", dict(pool_size=3, strides=2, padding="same"), x)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["GlobalMaxPooling", "GlobalAveragePooling"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_layers(n, kind, keepdims, data_format):
    shape = (2, *SPATIAL[n], 3) if data_format == "channels_last" else (2, 3, *SPATIAL[n])
    check(f"{kind}{n}D", dict(keepdims=keepdims, data_format=data_format), data(shape, seed=n))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_1d_mask(keepdims, data_format):
    x = data((3, 5, 2) if data_format == "channels_last" else (3, 2, 5), seed=3)
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=bool)
    check("GlobalAveragePooling1D", dict(keepdims=keepdims, data_format=data_format), x, dict(mask=mask))


def test_global_average_1d_empty_mask_is_nan_like_keras():
    x = data((2, 4, 3), seed=4)
    mask = np.array([[0, 0, 0, 0], [1, 0, 1, 0]], dtype=bool)
    ours = pk.GlobalAveragePooling1D()
    y = ours(x, mask=mask)
    want_y, want_g = keras_forward_backward(keras.layers.GlobalAveragePooling1D(), x, np.ones(y.shape, np.float32),
                                            mask=mask)
    np.testing.assert_allclose(y, want_y, rtol=1e-6, equal_nan=True)
    assert np.isnan(y[0]).all()
    np.testing.assert_allclose(ours.backward(np.ones(y.shape, np.float32)), want_g, rtol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["AdaptiveMaxPooling", "AdaptiveAveragePooling"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_adaptive_layers(n, kind, data_format):
    shape = (2, *SPATIAL[n], 3) if data_format == "channels_last" else (2, 3, *SPATIAL[n])
    out = {1: 4, 2: (3, 4), 3: (2, 4, 3)}[n]
    check(f"{kind}{n}D", dict(output_size=out, data_format=data_format), data(shape, seed=n + 7))


def test_compute_dtype_like_keras():
    x = data((1, 6, 6, 2)).astype(np.float64)
    for name in ("MaxPooling2D", "GlobalAveragePooling2D"):
        want = getattr(keras.layers, name)()(x)
        got = getattr(pk, name)()(x)
        assert got.dtype == want.dtype == np.float32
    xi = (x * 10).astype(np.int32)
    want = keras.layers.MaxPooling2D()(xi)
    got = pk.MaxPooling2D()(xi)
    assert got.dtype == want.dtype == np.int32
    np.testing.assert_array_equal(got, want.numpy())
    assert pk.MaxPooling2D(dtype=None)(x).dtype == np.float64


def test_nan_like_keras():
    x = data((1, 4, 4, 1))
    x[0, 0, 0, 0] = x[0, 2, 3, 0] = np.nan
    for name, kwargs in [("MaxPooling2D", dict(pool_size=2)), ("AdaptiveMaxPooling2D", dict(output_size=3))]:
        want = getattr(keras.layers, name)(**kwargs)(x).numpy()
        np.testing.assert_array_equal(getattr(pk, name)(**kwargs)(x), want)


def test_validation():
    with pytest.raises(ValueError, match="pool_size"):
        pk.MaxPooling2D(pool_size=(2, 2, 2))
    with pytest.raises(ValueError, match="pool_size"):
        pk.AveragePooling1D(pool_size=0)
    with pytest.raises(ValueError, match="padding"):
        pk.MaxPooling1D(padding="full")
    with pytest.raises(ValueError, match="data_format"):
        pk.GlobalMaxPooling2D(data_format="nhwc")
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        pk.MaxPooling2D()(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(RuntimeError, match="before backward"):
        pk.MaxPooling2D().backward(np.zeros((1, 2, 2, 1)))
    with pytest.raises(TypeError):
        pk.AveragePooling2D()  # pool_size is required, as in Keras 3
    layer = pk.MaxPooling2D(pool_size=3, strides=2, padding="same")
    want = keras.layers.MaxPooling2D(3, 2, "same").compute_output_shape((None, 7, 6, 3))
    assert layer.compute_output_shape((None, 7, 6, 3)) == want
