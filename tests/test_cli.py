"""The ``poolkit`` command line: ``demo``, ``explain``, ``show``, their errors, the installed console
script and the README's quickstart.

Commands run in temporary directories, both in-process (``main([...])``) and through the installed
console script.  Pictures are checked for existence, content (not blank) and structure (panels,
frames); that they show exactly the engine's numbers is checked on ``poolkit.viz`` in
``test_viz.py``.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import poolkit
from poolkit.cli import format_matrix, load_matrix, main

from support.data import X44
from support.media import gif_frames, serving

pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

from poolkit import viz  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
X33 = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def pixels(path) -> np.ndarray:
    with PIL_Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float64)


def window_centre(frame: np.ndarray):
    """Centre of the highlighted window (amber cells and the orange winner) on the input panel (left)."""
    mask = np.zeros(frame.shape[:2], dtype=bool)
    for colour in (viz._WINDOW, viz._WINNER):
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        mask |= np.abs(frame - rgb).sum(axis=2) <= 6
    mask[:, int(0.6 * frame.shape[1]):] = False
    ys, xs = np.nonzero(mask)
    assert len(ys) > 50, "no highlighted window in this frame"
    return ys.mean(), xs.mean()


# ---------------------------------------------------------------------------------------------
# help and argument errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["explain", "--help"], ["show", "--help"]])
def test_help(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 0
    assert out.startswith("usage: poolkit")
    assert err == ""


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"poolkit {poolkit.__version__}"


BAD = [
    [],
    ["bogus"],
    ["explain", "[[1,2],[3,4]]"],  # --kernel missing
    ["explain", "--kernel", "0", "[[1,2],[3,4]]"],
    ["explain", "--kernel", "3", "[[1,2],[3,4]]"],  # larger than the input: the engine's ValueError
    ["explain", "--kernel", "2", "[[1,2],[3]]"],
    ["explain", "--kernel", "2", "open('pwned', 'w')"],  # never eval'd
    ["explain", "--kernel", "2", "[[[1]]]"],
    ["explain", "--kernel", "2", "['a', 'b']"],
    ["explain", "--kernel", "2", "missing.npy"],
    ["explain", "--kernel", "2x2x2", "[[1,2],[3,4]]"],
    ["explain", "--kernel", "two", "[[1,2],[3,4]]"],
    ["explain", "--op", "median", "--kernel", "2", "[1,2]"],
    ["explain", "--kernel", "2", "--padding", "sideways", "[[1,2],[3,4]]"],
    ["explain", "--kernel", "2", "--padding", "5", "[[1,2],[3,4]]"],
    ["explain", "--kernel", "2", "--padding", "-1", "[[1,2],[3,4]]"],
    ["explain", "--kernel", "2", "--p", "3", "[1,2]"],
    ["explain", "--op", "lp", "--p", "-1", "--kernel", "2", "[1,2]"],
    ["explain", "--kernel", "2", "--backward", "--grad", "[1,2,3]", "[1,2]"],
    ["explain", "--kernel", "1", "--gif", "no/such/dir/x.gif", "[1,2]"],
    ["show", "missing.png", "-o", "fig.png"],
    ["show", "not-an-image.png", "-o", "fig.png"],
    ["show", "image.png", "-o", "fig.png", "--filter", "blurry"],
    ["show", "image.png", "-o", "fig.png", "--kernel", "0"],
    ["show", "image.png", "-o", "fig.unknownformat"],
    ["demo", "--out", "a-file"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) or "<none>" for a in BAD])
def test_bad_arguments_one_line_exit_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-an-image.png").write_text("hello")
    (tmp_path / "a-file").write_text("hello")
    PIL_Image.fromarray((viz.sample_image(32) * 255).astype(np.uint8)).save(tmp_path / "image.png")
    code, out, err = run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err and not (tmp_path / "pwned").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    assert not (tmp_path / "fig.png").exists()


def test_show_without_display_says_to_use_o(tmp_path, monkeypatch, capsys):
    if sys.platform != "linux":
        pytest.skip("display detection is only tested on Linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    PIL_Image.fromarray((viz.sample_image(32) * 255).astype(np.uint8)).save(tmp_path / "image.png")
    code, _, err = run(["show", str(tmp_path / "image.png")], capsys)
    assert code == 2 and "-o" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("demo") / "pictures"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out_dir)])
    return code, buf.getvalue(), out_dir


def test_demo_prints_the_worked_examples(demo):
    code, out, _ = demo
    assert code == 0
    s = squash(out)
    assert "[[9,2],[6,3]]" in s
    assert "[[3.75,1.25],[4,2]]" in s
    assert "[[5,6],[8,9]]" in s
    assert "[[0,0,2,0],[0,1,0,0],[0,0,0,4],[0,3,0,0]]" in s
    # the printed numbers are the engine's
    assert squash(format_matrix(poolkit.max_pool(X44, (2, 2)))) in s
    assert squash(format_matrix(poolkit.avg_pool(X44, (2, 2)))) in s
    assert squash(format_matrix(poolkit.max_pool(X33, (2, 2), 1))) in s
    assert squash(format_matrix(poolkit.max_pool_backward(np.array([[1., 2], [3, 4]]), X44, (2, 2)))) in s


def test_demo_says_where_it_wrote_each_file(demo):
    _, out, out_dir = demo
    for name in ("feature-extraction.png", "max-pool.gif"):
        path = (out_dir / name).resolve()
        assert path.is_file()
        assert f"wrote {path}" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["feature-extraction.png", "max-pool.gif"]


def test_demo_figure_is_a_labelled_picture(demo):
    _, _, out_dir = demo
    px = pixels(out_dir / "feature-extraction.png")
    assert px.shape[1] > 2.5 * px.shape[0]  # one row of panels
    assert px.var() > 100
    assert px.min() < 30 and px.max() > 250


def test_demo_gif_one_frame_per_window_and_the_window_moves(demo):
    _, _, out_dir = demo
    frames = gif_frames(out_dir / "max-pool.gif")
    assert len(frames) == 4  # 2x2 output cells
    for f in frames:
        assert f.var() > 100
    centres = [window_centre(f) for f in frames]
    # the window walks row-major: right, then down-left, then right
    (y0, x0), (y1, x1), (y2, x2), (y3, x3) = centres
    assert x1 > x0 + 20 and abs(y1 - y0) < 5  # to the right, same row
    assert y2 > y0 + 20 and x2 < x1 - 20  # next row, back to the left
    assert x3 > x2 + 20 and abs(y3 - y2) < 5
    assert all(np.abs(frames[i] - frames[i + 1]).sum() > 0 for i in range(3))
    with PIL_Image.open(out_dir / "max-pool.gif") as im:
        assert im.info.get("loop") == 0


# ---------------------------------------------------------------------------------------------
# explain: every window, the engine's results, the gradient's routes
# ---------------------------------------------------------------------------------------------


def test_explain_prints_each_window_and_the_output(capsys):
    code, out, err = run(["explain", "--op", "max", "--kernel", "2", "--stride", "2",
                          "[[1,3,2,1],[2,9,1,1],[1,4,2,3],[5,6,1,2]]"], capsys)
    assert code == 0 and err == ""
    assert out.count("window (") == 4
    for line in ("max(1, 3, 2, 9) = 9 at (1, 1)", "max(2, 1, 1, 1) = 2 at (0, 2)",
                 "max(1, 4, 5, 6) = 6 at (3, 1)", "max(2, 3, 1, 2) = 3 at (2, 3)",
                 "window (1, 0): rows 2..3, cols 0..1"):
        assert line in out
    assert squash(out).endswith("[[9,2],[6,3]]")


def test_explain_backward_shows_where_the_gradient_goes(capsys):
    code, out, _ = run(["explain", "--op", "max", "--kernel", "2", "--stride", "2", "--backward",
                        "--grad", "[[1,2],[3,4]]", "[[1,3,2,1],[2,9,1,1],[1,4,2,3],[5,6,1,2]]"], capsys)
    assert code == 0
    assert "gradient 1 -> (1, 1)" in out and "gradient 4 -> (2, 3)" in out
    assert squash(out).endswith("[[0,0,2,0],[0,1,0,0],[0,0,0,4],[0,3,0,0]]")


def test_explain_avg_with_padding_and_ceil(capsys):
    code, out, _ = run(["explain", "--op", "avg", "--kernel", "3", "--stride", "2", "--padding", "1", "--ceil",
                        "[[1,2,3,4],[5,6,7,8],[9,10,11,12]]"], capsys)
    assert code == 0
    x = np.arange(1, 13).reshape(3, 4)
    engine = poolkit.avg_pool(x, (3, 3), 2, 1, ceil_mode=True)
    assert squash(out).endswith(squash(format_matrix(engine)))
    assert "pad" in out and "--" in out  # padding cells and the ceil-mode overhang
    assert "(0 + 0 + 0 + 0 + 1 + 2 + 0 + 5 + 6) / 9" in out


def test_explain_reads_npy_and_csv(tmp_path, capsys):
    np.save(tmp_path / "m.npy", X33)
    np.savetxt(tmp_path / "m.csv", X33, delimiter=",")
    for name in ("m.npy", "m.csv"):
        code, out, _ = run(["explain", "--kernel", "2", "--stride", "1", str(tmp_path / name)], capsys)
        assert code == 0 and squash(out).endswith("[[5,6],[8,9]]")
    np.testing.assert_array_equal(load_matrix(str(tmp_path / "m.csv")), X33)


def test_explain_one_dimensional_lp(capsys):
    code, out, _ = run(["explain", "--op", "lp", "--p", "2", "--kernel", "2", "--backward", "[3,-4,1,0]"], capsys)
    assert code == 0
    assert "(|3|^2 + |-4|^2)^(1/2) = 5" in out
    assert squash(out).endswith("[0.6,-0.8,2,0]")


def test_explain_gif_has_one_frame_per_window(tmp_path, capsys):
    gif = tmp_path / "walk.gif"
    code, out, _ = run(["explain", "--op", "max", "--kernel", "2", "--stride", "1", "--padding", "1",
                        "--gif", str(gif), "[[1,2,3],[4,5,6],[7,8,9]]"], capsys)
    assert code == 0
    n_windows = int(np.prod(poolkit.output_shape((3, 3), (2, 2), 1, 1)))
    frames = gif_frames(gif)
    assert len(frames) == n_windows == 16
    assert all(f.var() > 100 for f in frames)
    assert f"wrote {gif.resolve()} (16 frames" in out


# ---------------------------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------------------------


def test_show_writes_the_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rgb = (np.stack([viz.sample_image(80)] * 3, axis=-1) * 255).astype(np.uint8)
    PIL_Image.fromarray(rgb).save("photo.jpg")
    code, out, err = run(["show", "photo.jpg", "-o", "fig.png"], capsys)
    assert code == 0, err
    assert "6 panels" in out and "wrote" in out
    assert pixels("fig.png").var() > 100
    code, out, _ = run(["show", "photo.jpg", "-o", "max.png", "--op", "max", "--filter", "sobel-x",
                        "--kernel", "3", "--stride", "2"], capsys)
    assert code == 0 and "5 panels" in out and "max 38x38" in out
    code, out, _ = run(["show", "photo.jpg", "-o", "custom.svg", "--filter", "[[0,1,0],[1,-4,1],[0,1,0]]"], capsys)
    assert code == 0 and Path("custom.svg").read_text().lstrip().startswith("<?xml")


# ---------------------------------------------------------------------------------------------
# the installed console script
# ---------------------------------------------------------------------------------------------


def _console_script() -> str:
    try:
        eps = importlib.metadata.entry_points(group="console_scripts")
    except Exception:  # pragma: no cover
        eps = ()
    if not any(ep.name == "poolkit" and ep.value == "poolkit.cli:main" for ep in eps):
        pytest.skip("poolkit is not installed (pip install -e .)")
    found = shutil.which("poolkit", path=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))
    assert found, "the poolkit console script is declared but not on PATH"
    return found


def _env():
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def test_console_script_demo(tmp_path):
    exe = _console_script()
    proc = subprocess.run([exe, "demo"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "[[9,2],[6,3]]" in squash(proc.stdout)
    for name in ("feature-extraction.png", "max-pool.gif"):
        path = tmp_path / "poolkit-demo" / name
        assert path.is_file() and f"wrote {path.resolve()}" in proc.stdout
    assert pixels(tmp_path / "poolkit-demo" / "feature-extraction.png").var() > 100
    assert len(gif_frames(tmp_path / "poolkit-demo" / "max-pool.gif")) == 4


def test_console_script_explain_and_errors(tmp_path):
    exe = _console_script()
    proc = subprocess.run([exe, "explain", "--kernel", "2", "--stride", "1", "[[1,2,3],[4,5,6],[7,8,9]]"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and squash(proc.stdout).endswith("[[5,6],[8,9]]")
    for argv in (["explain", "--kernel", "9", "[[1,2],[3,4]]"], ["show", "nope.png", "-o", "x.png"], ["nope"]):
        proc = subprocess.run([exe, *argv], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# the README tells the truth
# ---------------------------------------------------------------------------------------------


def test_readme_quickstart_and_examples():
    readme = REPO / "README.md"
    if not readme.is_file():  # pragma: no cover - an installed copy without the repository
        pytest.skip("README.md not found")
    text = readme.read_text(encoding="utf-8")
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert 'pip install -e ".[plot,lab]" && poolkit demo' in quick
    commands = quick.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(commands) == 2 and commands[1].startswith('pip install -e ".[test]" && python -m pytest -q')
    assert commands[1] in (REPO / ".ci" / "run").read_text(encoding="utf-8")  # CI runs the README's command
    for picture in ("docs/feature-extraction.png", "docs/max-pool.gif"):
        assert picture in text and (REPO / picture).is_file()
    result = doctest.testfile(str(readme), module_relative=False, verbose=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 5 and result.failed == 0


# ---------------------------------------------------------------------------------------------
# explain --html and serve
# ---------------------------------------------------------------------------------------------


def test_explain_html_writes_the_page(tmp_path, capsys):
    page = tmp_path / "page.html"
    code, out, _ = run(["explain", "--op", "avg", "--kernel", "3", "--stride", "2", "--padding", "same",
                        "--backward", "--html", str(page), "[[1,2,3,4],[5,6,7,8],[9,10,11,12]]"], capsys)
    assert code == 0 and f"wrote {page.resolve()} (the interactive page" in out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "https://" not in text
    engine = poolkit.avg_pool(np.arange(1, 13).reshape(3, 4), (3, 3), 2, "same")
    for v in engine.ravel():
        assert f'"{viz.format_number(v, 4)}"' in text
    code, _, err = run(["explain", "--kernel", "2", "--html", str(tmp_path / "no" / "p.html"), "[1,2]"], capsys)
    assert code == 2 and "does not exist" in err


@pytest.fixture()
def server():
    with serving() as srv:
        yield srv


def _post(url, payload, raw=None):
    import json
    import urllib.error
    import urllib.request

    body = raw if raw is not None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_page_and_api(server):
    import urllib.request

    with urllib.request.urlopen(server.url, timeout=60) as resp:
        page = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/html")
    assert 'data-live="1"' in page and "connect-src 'self'" in page
    status, res = _post(server.url + "api/explain", {"matrix": "1 2 3\n4 5 6\n7 8 9", "op": "avg", "kernel": "2",
                                                     "stride": "1", "padding": "((0,1),(1,0))", "backward": False})
    assert status == 200 and res["ok"], res
    engine = poolkit.avg_pool(X33.astype(float), (2, 2), 1, ((0, 1), (1, 0)))
    assert res["data"]["out"] == [[viz.format_number(v, 4) for v in row] for row in engine]
    assert [d["key"] for d in res["data"]["dialects"]] == ["torch", "tf", "onnx"]
    # a bad parameter is an answer with the engine's message
    status, res = _post(server.url + "api/explain", {"matrix": "1 2\n3 4", "kernel": "3"})
    assert status == 200 and not res["ok"] and "larger than the padded input" in res["error"]
    status, res = _post(server.url + "api/explain", {"matrix": "1 2\n3", "kernel": "1"})
    assert not res["ok"] and "rectangular" in res["error"]
    status, res = _post(server.url + "api/explain", {"matrix": "1 2\n3 4", "padding": "sideways"})
    assert not res["ok"] and "padding must be" in res["error"]


def test_serve_rejects_oversized_inputs(server):
    from poolkit.serve import MAX_BODY_BYTES, MAX_SERVE_CELLS

    big = "\n".join(" ".join(["1"] * 40) for _ in range(40))
    status, res = _post(server.url + "api/explain", {"matrix": big, "kernel": "2"})
    assert not res["ok"] and f"more than the {MAX_SERVE_CELLS}" in res["error"]
    status, res = _post(server.url + "api/explain", None, raw=b" " * (MAX_BODY_BYTES + 1))
    assert status == 413 and "MB the app accepts" in res["error"]
    status, res = _post(server.url + "api/nothing", {})
    assert status == 404


def test_serve_loads_npy_csv_and_images(server, tmp_path):
    import base64

    np.save(tmp_path / "m.npy", X33)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    _, res = _post(server.url + "api/load", {"name": "m.npy", "data": b64((tmp_path / "m.npy").read_bytes())})
    assert res["ok"] and squash(res["matrix"]) == "[[1,2,3],[4,5,6],[7,8,9]]"
    _, res = _post(server.url + "api/load", {"name": "m.csv", "data": b64(b"1,2\n3,4\n")})
    assert res["ok"] and squash(res["matrix"]) == "[[1,2],[3,4]]"
    PIL_Image.fromarray(np.full((40, 20), 255, np.uint8)).save(tmp_path / "w.png")
    _, res = _post(server.url + "api/load", {"name": "w.png", "data": b64((tmp_path / "w.png").read_bytes())})
    assert res["ok"] and squash(res["matrix"]).startswith("[[1,1,") and "16x8 cells" in res["note"]
    _, res = _post(server.url + "api/load", {"name": "x.bin", "data": b64(b"nonsense")})
    assert not res["ok"] and "neither .npy, .csv nor an image" in res["error"]


def test_serve_arguments(capsys):
    code, out, _ = run(["serve", "--help"], capsys)
    assert code == 0 and "--port" in out and "127.0.0.1" in out
    code, _, err = run(["serve", "--port", "70000"], capsys)
    assert code == 2 and "--port must be in [0, 65535]" in err


def test_console_script_serve_listens_on_loopback_and_stops(tmp_path):
    import json
    import signal
    import urllib.request

    exe = _console_script()
    proc = subprocess.Popen([exe, "serve", "--port", "0"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(match.group(1) + "api/health", timeout=60) as resp:
            assert json.loads(resp.read()) == {"ok": True, "version": poolkit.__version__}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 130 and "interrupted" in err and "still working" not in err
