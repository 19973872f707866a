"""``poolkit.viz``, the pictures and explanations behind ``poolkit demo``, ``explain`` and ``show``:
through the arrays and labels the drawing functions return, each shows exactly the engine's
numbers, compared with independent NumPy computations.  The commands themselves: ``test_cli.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import poolkit

from support.data import X44
from support.media import gif_frames

pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

from poolkit import viz  # noqa: E402

# ---------------------------------------------------------------------------------------------
# independent NumPy computations (no poolkit)
# ---------------------------------------------------------------------------------------------


def np_correlate_valid(image, kernel):
    kh, kw = kernel.shape
    h, w = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = np.zeros((h, w))
    for i in range(kh):
        for j in range(kw):
            out += kernel[i, j] * image[i:i + h, j:j + w]
    return out


def np_block(x, k, reduce):
    h, w = x.shape[0] // k, x.shape[1] // k
    blocks = x[: h * k, : w * k].reshape(h, k, w, k)
    return reduce(blocks, axis=(1, 3))


# ---------------------------------------------------------------------------------------------
# the feature-extraction figure draws the engine's numbers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ops", [("max", "avg"), ("max",), ("avg",)])
def test_feature_figure_panels_and_numbers(ops):
    image = viz.sample_image(64)
    kernel = viz.get_filter("edge")
    fig, stages = viz.feature_figure(image, kernel, kernel_name="edge", ops=ops)
    assert len(fig.axes) == 4 + len(ops)
    drawn = [np.asarray(ax.images[0].get_array()) for ax in fig.axes]
    expected_filter = np_correlate_valid(image, kernel)
    expected_detect = np.maximum(expected_filter, 0)
    np.testing.assert_array_equal(drawn[0], image)
    np.testing.assert_array_equal(drawn[1], kernel)
    np.testing.assert_allclose(drawn[2], expected_filter, atol=1e-12)
    np.testing.assert_allclose(drawn[3], expected_detect, atol=1e-12)
    for ax, arr, op in zip(fig.axes[4:], drawn[4:], ops):
        reduce = np.max if op == "max" else np.mean
        np.testing.assert_allclose(arr, np_block(expected_detect, 2, reduce), atol=1e-12)
        np.testing.assert_array_equal(arr, stages[op])  # exactly what the engine returned
        assert ("max pool" if op == "max" else "average pool") in ax.get_title()
        assert "31×31" in ax.get_title()
    titles = [ax.get_title() for ax in fig.axes]
    assert "64×64" in titles[0] and "62×62" in titles[2] and "ReLU" in titles[3]
    assert sorted(t.get_text() for t in fig.axes[1].texts) == sorted(["-1"] * 8 + ["8"])


def test_feature_stages_with_stride_and_kernel():
    image = viz.sample_image(40)
    st = viz.feature_stages(image, viz.get_filter("sobel-y"), pool_kernel=3, stride=2, ops=("max",))
    det = np.maximum(np_correlate_valid(image, viz.get_filter("sobel-y")), 0)
    n = (det.shape[0] - 3) // 2 + 1
    expected = np.array([[det[2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(n)] for i in range(n)])
    np.testing.assert_allclose(st["max"], expected, atol=1e-12)


def test_convolve2d_is_cross_correlation():
    rng = np.random.default_rng(0)
    img, ker = rng.normal(size=(9, 7)), rng.normal(size=(3, 2))
    np.testing.assert_allclose(viz.convolve2d(img, ker), np_correlate_valid(img, ker), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# explanations: every window, the engine's results, the gradient's routes
# ---------------------------------------------------------------------------------------------


CASES = [
    ("max", dict(kernel_size=2, stride=2)),
    ("max", dict(kernel_size=2, stride=1)),
    ("max", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max", dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1))),
    ("max", dict(kernel_size=3, stride=2, padding="same")),
    ("avg", dict(kernel_size=2, stride=1)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg", dict(kernel_size=2, stride=2, padding=((0, 1), (1, 0)), dilation=2)),
    ("lp", dict(kernel_size=2, stride=1, p=2.0)),
    ("lp", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, p=3.0)),
    ("lp", dict(kernel_size=2, stride=2, p=1.0)),
]


@pytest.mark.parametrize("op,kw", CASES)
def test_explanation_matches_engine_and_numpy(op, kw):
    rng = np.random.default_rng(42)
    x = rng.integers(-9, 10, size=(5, 6)).astype(np.float64)
    ex = viz.explain_pooling(x, op, backward=True, **kw)
    k = ex.kernel_size
    # positions: window o covers o*stride - pad_before + j*dilation along each axis
    for w in ex.windows:
        for a in range(2):
            start = w.index[a] * ex.stride[a] - ex.pads[a][0]
            assert w.taps[a] == tuple(start + j * ex.dilation[a] for j in range(k[a]))
    # results are the engine's, and an independent NumPy reduction over the displayed cells agrees
    for w in ex.windows:
        assert w.result == ex.output[w.index]
        vals = np.array([v for v, r in zip(w.values, w.regions) if r == "input"], dtype=np.float64)
        if op == "max":
            assert w.result == vals.max() and x[w.argmax] == vals.max()
        elif op == "avg":
            counted = sum(r == "input" or (r == "pad" and kw.get("count_include_pad", True)) for r in w.regions)
            assert w.result == pytest.approx(vals.sum() / counted)
        else:
            assert w.result == pytest.approx((np.abs(vals) ** kw["p"]).sum() ** (1 / kw["p"]))
    # the per-window gradient routes add up to the engine's backward
    np.testing.assert_allclose(ex.gradient_from_windows(), ex.grad_input, rtol=1e-12, atol=1e-12)


def test_explanation_limits():
    with pytest.raises(ValueError, match="windows"):
        viz.explain_pooling(np.zeros((60, 60)), "max", 1, max_windows=100)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        viz.explain_pooling(np.zeros((2, 2, 2)), "max", 1)


# ---------------------------------------------------------------------------------------------
# the animation draws the engine's numbers
# ---------------------------------------------------------------------------------------------


def _panel_texts(ax) -> list:
    return [t.get_text() for t in ax.texts]


def test_animation_frames_show_engine_values():
    ex = viz.explain_pooling(X44, "avg", 2, 1, backward=True)
    fig = viz.animation_figure(ex)  # the last frame
    assert len(fig.axes) == 3
    ax_in, ax_out, ax_grad = fig.axes
    assert ax_out.get_title().startswith("output 3×3")
    expected_out = [viz.format_number(v, 4) for v in poolkit.avg_pool(X44, (2, 2), 1).ravel()]
    assert _panel_texts(ax_out) == expected_out
    assert _panel_texts(ax_in) == [str(v) for v in X44.ravel()]
    g = np.arange(1, 10, dtype=np.float64).reshape(3, 3)
    expected_grad = poolkit.avg_pool_backward(g, X44.astype(float), (2, 2), 1)
    assert _panel_texts(ax_grad) == [viz.format_number(v, 4) for v in expected_grad.ravel()]
    # an early frame: only the first windows filled in
    first = viz.animation_figure(ex, 0)
    texts = _panel_texts(first.axes[1])
    assert texts[0] == expected_out[0] and texts[1:] == [""] * 8


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def test_load_image_grayscale_and_shrinks(tmp_path):
    PIL_Image.fromarray(np.full((600, 300, 3), 255, np.uint8)).save(tmp_path / "big.png")
    img = viz.load_image(tmp_path / "big.png", max_side=256)
    assert img.shape == (256, 128) and img.dtype == np.float64 and np.allclose(img, 1.0)


# ---------------------------------------------------------------------------------------------
# poolkit.explain: the object of Jupyter, the page's data, the fast GIF
# ---------------------------------------------------------------------------------------------


def test_poolkit_explain_is_the_function_and_its_text_is_the_cli_text(capsys):
    from poolkit.cli import main

    assert callable(poolkit.explain) and "explain" in poolkit.__all__
    ex = poolkit.explain(X44, "avg", 3, stride=2, padding=1, ceil_mode=True, backward=True)
    main(["explain", "--op", "avg", "--kernel", "3", "--stride", "2", "--padding", "1", "--ceil", "--backward",
          "[[1,3,2,1],[2,9,1,1],[1,4,2,3],[5,6,1,2]]"])
    out = capsys.readouterr().out
    assert repr(ex) == str(ex) == out.rstrip("\n")
    html = ex._repr_html_()
    assert html.startswith("<iframe") and "srcdoc=" in html and "&lt;!DOCTYPE html&gt;" in html


@pytest.mark.parametrize("op,kw", CASES[:8])
def test_page_data_numbers_are_the_engines(op, kw):
    from poolkit.viz.html import CELL_DIGITS

    rng = np.random.default_rng(7)
    x = rng.integers(-9, 10, size=(5, 6)).astype(np.float64) / 4
    ex = poolkit.explain(x, op, backward=True, **kw)
    d = viz.page_data(ex)
    fn = {"max": poolkit.max_pool, "avg": poolkit.avg_pool, "lp": poolkit.lp_pool}[op]
    args = dict(kw)
    k = args.pop("kernel_size")
    if op == "lp":
        engine = fn(x, args.pop("p"), (k, k) if isinstance(k, int) else k, **args)
    else:
        engine = fn(x, (k, k) if isinstance(k, int) else k, **args)
    label = lambda v: viz.format_number(v, CELL_DIGITS)  # noqa: E731
    assert d["out"] == [[label(v) for v in row] for row in engine]
    assert d["x"] == [[label(v) for v in row] for row in x]
    assert [w["r"] for w in d["windows"]] == [label(v) for v in engine.ravel()]
    assert d["grad_input"] == [[label(v) for v in row] for row in ex.grad_input]
    # every window's cells lie where the stride and padding put them
    for w in d["windows"]:
        r0 = w["i"][0] * ex.stride[0] - ex.pads[0][0]
        assert w["cells"][0][0] == r0
    if op == "avg":
        for w, win in zip(d["windows"], ex.windows):
            counted = sum(r == "input" or (r == "pad" and kw.get("count_include_pad", True)) for r in win.regions)
            assert w["dv"] == counted


def test_page_is_self_contained(tmp_path):
    ex = poolkit.explain(X44, "max", 2, stride=1, padding=1, backward=True)
    path = ex.to_html(tmp_path / "page.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "connect-src" not in page
    for needle in ("http://", "https://", "<script src", "<link", "@import", "url("):
        assert needle not in page, needle
    # the data survives its trip through the page
    import json
    import re

    blob = re.search(r'<script type="application/json" id="poolkit-data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(blob)
    assert data["out"] == viz.page_data(ex)["out"]
    with pytest.raises(OSError, match="does not exist"):
        ex.to_html(tmp_path / "missing" / "page.html")


def test_page_text_is_escaped():
    ex = poolkit.explain([1, 2, 3, 4], "max", 2)
    page = viz.page_html(ex)
    data = viz.page_data(ex)
    data["title"] = "</script><script>alert(1)</script>"
    page = viz.page_html(None, data=data)
    assert "</script><script>alert(1)" not in page


def _colour_mask(frame, colour):
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return np.abs(frame - rgb).sum(axis=2) <= 6


def test_gif_frames_match_the_matplotlib_frames(tmp_path):
    """The fast GIF draws what animation_figure draws: the same window cells lit, the same output
    cells filled, frame by frame (compared by the area of each highlight colour)."""
    ex = poolkit.explain(X44, "max", 2, stride=1, padding=1, backward=True)
    frames = gif_frames(ex.to_gif(tmp_path / "a.gif", dpi=80))
    assert len(frames) == len(ex.windows) == 25
    for step in (0, 7, 24):
        fig = viz.animation_figure(ex, step)
        fig.set_dpi(80)
        fig.canvas.draw()
        ref = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.int64)
        assert ref.shape == frames[step].shape
        for colour in (viz._WINNER, "#bbdefb"):
            a, b = _colour_mask(frames[step], colour).sum(), _colour_mask(ref, colour).sum()
            assert a == pytest.approx(b, rel=0.25, abs=40), (step, colour, a, b)


def test_gif_of_a_20x20_stride_1_is_fast_and_small(tmp_path):
    import time

    x = np.random.default_rng(0).integers(0, 10, size=(20, 20))
    ex = poolkit.explain(x, "max", 2, stride=1)
    start = time.perf_counter()
    path = ex.to_gif(tmp_path / "big.gif")
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    assert seconds < 30, seconds  # about 6 s on a quiet machine; the budget is 15 s for the command
    assert size < 5e6, size
    with PIL_Image.open(path) as im:
        assert im.n_frames == 361


@pytest.mark.parametrize("kw,error,match", [
    (dict(op="min"), ValueError, "op must be one of"),
    (dict(kernel_size="2"), TypeError, "kernel_size must be an int"),
    (dict(kernel_size=2.5), TypeError, "kernel_size must be an int"),
    (dict(kernel_size=(2, 2, 2)), ValueError, "kernel_size needs 2 values"),
    (dict(stride=(1, True)), TypeError, "stride must be an int"),
    (dict(ceil_mode=1), TypeError, "ceil_mode must be a bool"),
    (dict(count_include_pad="no"), TypeError, "count_include_pad must be a bool"),
    (dict(op="lp", p=0), ValueError, "p must be a finite number > 0"),
    (dict(op="lp", p=10**400), ValueError, "p must be a finite number > 0"),
    (dict(grad_output=[[1.0]]), ValueError, "grad_output needs backward=True"),
    (dict(backward=True, grad_output=[[1.0, 2.0]]), ValueError, "grad_output must have the forward output's shape"),
    (dict(x=[[1, 2], [3]]), ValueError, "rectangular"),
    (dict(x=["a", "b"]), TypeError, "real numbers"),
    (dict(x=np.zeros((2, 2, 2))), ValueError, "1-D or 2-D"),
    (dict(kernel_size=5), ValueError, "larger than the padded input"),
])
def test_explain_bad_arguments_name_themselves(kw, error, match):
    kw = dict(kw)
    x = kw.pop("x", [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(error, match=match):
        poolkit.explain(x, **kw)
