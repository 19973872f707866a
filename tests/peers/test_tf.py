"""poolkit.compat.tf against TensorFlow itself (tensorflow-cpu): values, indices and errors.

Expected values always come from TensorFlow.  TensorFlow's CPU kernels only take channels-last
input, so channels-first cases are compared through a transpose.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

tf = pytest.importorskip("tensorflow")

from poolkit.compat import tf as ptf  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def T(x):
    return tf.constant(x)


def cf_to_cl(x):
    return np.moveaxis(x, 1, -1)


def cl_to_cf(x):
    return np.moveaxis(x, -1, 1)


@st.composite
def pool_cases(draw, max_n=3):
    n = draw(st.integers(1, max_n))
    k = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    s = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    lo = [kk if padding == "VALID" else 1 for kk in k]
    spatial = [draw(st.integers(lo[i], lo[i] + 6)) for i in range(n)]
    batch = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    ties = draw(st.booleans())
    rng = np.random.default_rng(seed)
    shape = (batch, *spatial, channels)
    x = rng.integers(-3, 4, shape).astype(np.float32) if ties else rng.standard_normal(shape).astype(np.float32)
    return x, k, s, padding


@SETTINGS
@given(pool_cases())
def test_max_pool_matches_tf(case):
    x, k, s, padding = case
    want = tf.nn.max_pool(T(x), k, s, padding).numpy()
    got = ptf.max_pool(x, k, s, padding)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    # channels-first gives the transposed result
    fmt = {3: "NCW", 4: "NCHW", 5: "NCDHW"}[x.ndim]
    np.testing.assert_array_equal(cf_to_cl(ptf.max_pool(cl_to_cf(x), k, s, padding, data_format=fmt)), want)


@SETTINGS
@given(pool_cases())
def test_avg_pool_matches_tf(case):
    x, k, s, padding = case
    want = tf.nn.avg_pool(T(x), k, s, padding).numpy()
    got = ptf.avg_pool(x, k, s, padding)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    fmt = {3: "NCW", 4: "NCHW", 5: "NCDHW"}[x.ndim]
    np.testing.assert_allclose(cf_to_cl(ptf.avg_pool(cl_to_cf(x), k, s, padding, data_format=fmt)), want,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n,fn", [(1, "max_pool1d"), (2, "max_pool2d"), (3, "max_pool3d"),
                                  (1, "avg_pool1d"), (2, "avg_pool2d"), (3, "avg_pool3d")])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_fixed_rank_functions(n, fn, padding):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2,) + (7, 6, 5)[:n] + (3,)).astype(np.float32)
    want = getattr(tf.nn, fn)(T(x), 3, 2, padding).numpy()
    got = getattr(ptf, fn)(x, 3, 2, padding)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # full-rank ksize/strides, as TF also accepts
    ks = [1] + [3] * n + [1]
    np.testing.assert_allclose(getattr(ptf, fn)(x, ks, [1] + [2] * n + [1], padding), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_max_pool_dtypes(dtype):
    x = (np.random.default_rng(0).standard_normal((1, 6, 5, 2)) * 20).astype(dtype)
    want = tf.nn.max_pool2d(T(x), 3, 2, "SAME").numpy()
    got = ptf.max_pool2d(x, 3, 2, "SAME")
    assert got.dtype == want.dtype == dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_avg_pool_dtypes(dtype):
    x = np.random.default_rng(0).standard_normal((1, 6, 5, 2)).astype(dtype)
    want = tf.nn.avg_pool2d(T(x), 3, 2, "SAME").numpy()
    got = ptf.avg_pool2d(x, 3, 2, "SAME")
    assert got.dtype == want.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-3 if dtype == np.float16 else 1e-12)


@pytest.mark.parametrize("pads", [[[1, 1], [1, 1]], [[0, 2], [1, 0]], [[2, 0], [0, 1]]])
def test_explicit_padding_2d(pads):
    x = np.random.default_rng(1).standard_normal((2, 6, 7, 2)).astype(np.float32) - 5  # padding never wins
    full = [[0, 0], *pads, [0, 0]]
    want = tf.nn.max_pool2d(T(x), 3, 2, full).numpy()
    np.testing.assert_array_equal(ptf.max_pool2d(x, 3, 2, full), want)
    np.testing.assert_array_equal(ptf.max_pool(x, 3, 2, full), want)


def test_explicit_padding_1d():
    x = np.random.default_rng(2).standard_normal((2, 9, 3)).astype(np.float32) - 5
    full = [[0, 0], [2, 1], [0, 0]]
    want = tf.nn.max_pool1d(T(x), 3, 2, full).numpy()
    np.testing.assert_array_equal(ptf.max_pool1d(x, 3, 2, full), want)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("ptype", ["MAX", "AVG"])
def test_pool_with_dilation_matches_tf(n, ptype):
    rng = np.random.default_rng(10 + n)
    x = rng.standard_normal((2,) + (9, 8, 7)[:n] + (2,)).astype(np.float32)
    window = [2, 3, 2][:n]
    dil = [2, 1, 3][:n]
    want = tf.nn.pool(T(x), window, ptype, padding="VALID", dilations=dil).numpy()
    got = ptf.pool(x, window, ptype, padding="VALID", dilations=dil)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # strides without dilation, SAME
    want = tf.nn.pool(T(x), window, ptype, strides=[2] * n, padding="SAME").numpy()
    got = ptf.pool(x, window, ptype, strides=[2] * n, padding="SAME")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_pool_channels_first():
    x = np.random.default_rng(3).standard_normal((2, 3, 8)).astype(np.float32)
    want = tf.nn.pool(T(cf_to_cl(x)), [3], "AVG", strides=[2], padding="SAME").numpy()
    got = ptf.pool(x, [3], "AVG", strides=[2], padding="SAME", data_format="NCW")
    np.testing.assert_allclose(cf_to_cl(got), want, rtol=1e-6)


@SETTINGS
@given(pool_cases(max_n=2), st.booleans())
def test_max_pool_with_argmax_matches_tf(case, include_batch):
    x, k, s, padding = case
    if x.ndim == 3:
        x = x[:, :, None, :]
        k, s = k + [1], s + [2]
    want_v, want_i = tf.nn.max_pool_with_argmax(T(x), k, s, padding, include_batch_in_index=include_batch)
    got_v, got_i = ptf.max_pool_with_argmax(x, k, s, padding, include_batch_in_index=include_batch)
    np.testing.assert_array_equal(got_v, want_v.numpy())
    assert got_i.dtype == np.int64
    np.testing.assert_array_equal(got_i, want_i.numpy())


def test_max_pool_with_argmax_int32_and_ties():
    x = np.zeros((2, 4, 4, 3), np.float32)
    want = tf.nn.max_pool_with_argmax(T(x), 2, 2, "VALID", output_dtype=tf.int32)[1].numpy()
    got = ptf.max_pool_with_argmax(x, 2, 2, "VALID", output_dtype=np.int32)[1]
    assert got.dtype == want.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    got = ptf.max_pool_with_argmax(x, 2, 2, "VALID", output_dtype=tf.int32)[1]  # a TF dtype works too
    np.testing.assert_array_equal(got, want)


def test_nan_and_infinity_as_tf():
    nan, inf = np.nan, np.inf
    x = np.array([[1, nan, 3, 2], [nan, nan, nan, nan], [-inf, -inf, -inf, -inf], [nan, 1, -inf, 2],
                  [-inf, nan, -inf, -inf]], np.float32)
    x = x.reshape(5, 2, 2, 1)
    for fn, args in [("max_pool2d", (2, 2, "VALID")), ("max_pool", (2, 1, "SAME"))]:
        want = getattr(tf.nn, fn)(T(x), *args).numpy()
        np.testing.assert_array_equal(getattr(ptf, fn)(x, *args), want)
    want = tf.nn.pool(T(x), [2, 2], "MAX", padding="VALID").numpy()
    np.testing.assert_array_equal(ptf.pool(x, [2, 2], "MAX", padding="VALID"), want)
    for padding in ("VALID", "SAME"):
        wv, wi = tf.nn.max_pool_with_argmax(T(x), 2, 1, padding)
        gv, gi = ptf.max_pool_with_argmax(x, 2, 1, padding)
        np.testing.assert_array_equal(gv, wv.numpy())
        np.testing.assert_array_equal(gi, wi.numpy())
    # MaxPool3D: on some CPUs TensorFlow runs oneDNN's kernel, which gives NaN for a window of NaN
    # only and -inf for a window of -inf (seen on an AMD EPYC of family 25, without AVX-512),
    # where its reference kernel gives the lowest finite value for both (seen on an AMD EPYC of
    # family 26); poolkit gives the reference kernel's, whichever this machine's TensorFlow runs
    x3 = x.reshape(5, 1, 2, 2, 1)
    want = tf.nn.max_pool3d(T(x3), [1, 2, 2], [1, 2, 2], "VALID").numpy()
    lowest = np.finfo(np.float32).min
    assert np.isnan(want.ravel()[1]) or want.ravel()[1] == lowest
    assert np.isin(want.ravel()[[2, 4]], [-inf, lowest]).all()
    np.testing.assert_array_equal(want.ravel()[[0, 3]], [3, 2])
    np.testing.assert_array_equal(ptf.max_pool3d(x3, [1, 2, 2], [1, 2, 2], "VALID"),
                                  np.where(np.isnan(want) | np.isneginf(want), lowest, want))
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(ptf.max_pool2d(x64, 2, 2, "VALID"), tf.nn.max_pool2d(T(x64), 2, 2, "VALID").numpy())
    # float16: TensorFlow's reference (Eigen) kernel clamps to the lowest finite value, -65504, as for
    # every dtype; on CPUs where it routes float16 through oneDNN a window of -inf stays -inf.
    # poolkit follows the reference kernel, whichever path this machine's TensorFlow takes.
    x16 = x.astype(np.float16)
    want16 = tf.nn.max_pool2d(T(x16), 2, 2, "VALID").numpy()
    lowest = np.finfo(np.float16).min
    assert np.isin(want16.ravel()[[1, 2, 4]], [-np.inf, lowest]).all()  # the all -inf / NaN windows
    np.testing.assert_array_equal(ptf.max_pool2d(x16, 2, 2, "VALID"), np.where(np.isneginf(want16), lowest, want16))
    want = tf.nn.avg_pool2d(T(x), 2, 2, "VALID").numpy()
    np.testing.assert_array_equal(ptf.avg_pool2d(x, 2, 2, "VALID"), want)


def test_depthwise_max_pool():
    x = np.random.default_rng(4).standard_normal((2, 4, 5, 6)).astype(np.float32)
    for padding in ("VALID", "SAME"):
        want = tf.nn.max_pool2d(T(x), [1, 1, 1, 3], [1, 1, 1, 3], padding).numpy()
        np.testing.assert_array_equal(ptf.max_pool2d(x, [1, 1, 1, 3], [1, 1, 1, 3], padding), want)
    want = tf.nn.max_pool1d(T(x[:, 0]), [1, 1, 2], [1, 1, 2], "VALID").numpy()
    np.testing.assert_array_equal(ptf.max_pool1d(x[:, 0], [1, 1, 2], [1, 1, 2], "VALID"), want)
    # a channel stride with a channel window of 1 is ignored
    want = tf.nn.max_pool2d(T(x), [1, 2, 2, 1], [1, 2, 2, 2], "VALID").numpy()
    np.testing.assert_array_equal(ptf.max_pool2d(x, [1, 2, 2, 1], [1, 2, 2, 2], "VALID"), want)


ERRORS = [
    ("stride above window", lambda m, x: m.pool(x, [2, 2], "MAX", strides=[3, 3], padding="VALID")),
    ("SAME with dilation", lambda m, x: m.pool(x, [2, 2], "MAX", padding="SAME", dilations=[2, 2])),
    ("stride and dilation", lambda m, x: m.pool(x, [2, 2], "AVG", strides=[2, 2], padding="VALID", dilations=[2, 2])),
    ("pooling type", lambda m, x: m.pool(x, [2, 2], "MIN", padding="VALID")),
    ("lower-case padding", lambda m, x: m.max_pool2d(x, 2, 2, "same")),
    ("explicit pad too big", lambda m, x: m.max_pool2d(x, 2, 2, [[0, 0], [2, 0], [0, 0], [0, 0]])),
    ("explicit batch pad", lambda m, x: m.max_pool2d(x, 2, 2, [[1, 0], [0, 0], [0, 0], [0, 0]])),
    ("explicit negative pad", lambda m, x: m.max_pool2d(x, 2, 2, [[0, 0], [-1, 0], [0, 0], [0, 0]])),
    ("explicit pad wrong length", lambda m, x: m.max_pool2d(x, 2, 2, [[1, 1], [1, 1]])),
    ("explicit avg pad", lambda m, x: m.avg_pool2d(x, 2, 2, [[0, 0], [1, 1], [1, 1], [0, 0]])),
    ("explicit 3d pad", lambda m, x: m.max_pool(x[..., None], 2, 2, [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0]])),
    ("ksize length", lambda m, x: m.max_pool2d(x, [2, 2, 2], 1, "VALID")),
    ("zero ksize", lambda m, x: m.max_pool2d(x, 0, 1, "VALID")),
    ("zero stride", lambda m, x: m.max_pool2d(x, 1, 0, "VALID")),
    ("batch window", lambda m, x: m.max_pool2d(x, [2, 1, 1, 1], [2, 1, 1, 1], "VALID")),
    ("depth and spatial", lambda m, x: m.max_pool2d(x, [1, 2, 2, 2], [1, 2, 2, 2], "VALID")),
    ("depth window != stride", lambda m, x: m.max_pool2d(x, [1, 1, 1, 2], [1, 1, 1, 1], "VALID")),
    ("depth 3d", lambda m, x: m.max_pool3d(x[:, None], [1, 1, 1, 1, 2], [1, 1, 1, 1, 2], "VALID")),
    ("argmax NCHW", lambda m, x: m.max_pool_with_argmax(x, 2, 2, "SAME", data_format="NCHW")),
    ("rank 6", lambda m, x: m.max_pool(x[None, None], 2, 2, "VALID")),
    ("window rank 4", lambda m, x: m.pool(x[None], [2, 2, 2, 2], "MAX", padding="VALID")),
]


@pytest.mark.parametrize("name,call", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_where_tf_errors(name, call):
    x = np.random.default_rng(5).standard_normal((1, 4, 4, 4)).astype(np.float32)
    with pytest.raises(Exception):  # noqa: B017 -- TensorFlow raises several error types
        r = call(tf.nn, T(x))
        if hasattr(r, "numpy"):
            r.numpy()
    with pytest.raises(ValueError):
        call(ptf, x)


def test_window_larger_than_input_is_a_clear_error():
    # TensorFlow 2.21 may crash (SIGFPE) on this; poolkit refuses it.
    with pytest.raises(ValueError, match="larger than the padded input"):
        ptf.max_pool2d(np.zeros((1, 4, 4, 1), np.float32), 6, 1, "VALID")
