"""The interactive page and ``poolkit serve`` in a real browser (Playwright driving Chromium).

Every number read off the screen is compared with the engine's own result, computed here by a
separate call (``poolkit.max_pool`` & co., ``compare_dialects``), formatted the way the page
formats numbers.  The screenshots of ``docs/`` (the README shows them) are taken here: they are
written there with ``POOLKIT_UPDATE_SCREENSHOTS=1``, into a temporary directory otherwise.

Chromium: Debian's ``/usr/bin/chromium`` (``apt-get install chromium``; CI installs it), or the
browser of ``PLAYWRIGHT_CHROMIUM`` / ``python -m playwright install chromium``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import poolkit
from poolkit.explanation import compare_dialects, format_number

from support.data import X44
from support.media import serving

sync_api = pytest.importorskip("playwright.sync_api")

DOCS = Path(__file__).resolve().parents[1] / "docs"
TIMEOUT_MS = 30_000


def shot(pg, name: str, tmp_path, **kwargs) -> Path:
    """A screenshot ``name`` of ``pg``: into docs/ with POOLKIT_UPDATE_SCREENSHOTS=1, else into tmp_path."""
    where = DOCS if os.environ.get("POOLKIT_UPDATE_SCREENSHOTS") == "1" else tmp_path
    path = where / name
    pg.screenshot(path=str(path), **kwargs)
    assert path.stat().st_size > 10_000  # a picture, not a blank page
    return path


def label(v) -> str:
    return format_number(v, 4)


def labels(a) -> list:
    a = np.asarray(a)
    a = a.reshape(1, -1) if a.ndim == 1 else a
    return [[label(v) for v in row] for row in a]


def _chromium() -> str | None:
    for path in (os.environ.get("PLAYWRIGHT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if path and os.path.exists(path):
            return path
    return None  # Playwright's own download, if installed


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    errors: list = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    context.close()
    assert errors == [], errors


def grid_text(pg, table_id) -> list:
    """The numbers of a grid as rows of strings, as the browser shows them."""
    return pg.eval_on_selector(f"#{table_id}", """t => Array.from(t.querySelectorAll('tr'))
        .map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent))
        .filter(r => r.length)""")


def cell(pg, table_id, r, c):
    return pg.locator(f'#{table_id} td[data-r="{r}"][data-c="{c}"]')


def ready(pg, version=None):
    sel = '#poolkit[data-state="ready"]' if version is None else \
        f'#poolkit[data-state="ready"][data-version="{version}"]'
    pg.wait_for_selector(sel)


# ---------------------------------------------------------------------------------------------
# the written page
# ---------------------------------------------------------------------------------------------


def test_page_steps_through_the_windows_with_the_engines_numbers(page, tmp_path):
    x = X44.astype(np.float64)
    ex = poolkit.explain(x, "max", 2, stride=1, padding=1, backward=True)
    path = ex.to_html(tmp_path / "page.html")
    page.goto(path.as_uri())
    ready(page)
    out = poolkit.max_pool(x, (2, 2), 1, 1)
    g = np.arange(1, out.size + 1, dtype=np.float64).reshape(out.shape)
    gin = poolkit.max_pool_backward(g, x, (2, 2), 1, 1)
    n = out.size
    assert page.inner_text("#pk-pos") == f"window 1 of {n}"
    assert page.inner_text("#pk-formula") == ex.windows[0].formula
    # step with the buttons: the output fills in window by window
    for _ in range(5):
        page.click("#pk-next")
    assert page.inner_text("#pk-pos") == f"window 6 of {n}"
    shown = sum(grid_text(page, "pk-out"), [])
    assert shown[:6] == [label(v) for v in out.ravel()[:6]] and shown[6:] == [""] * (n - 6)
    # padded cells are marked as padding; the window's cells are lit, its maximum as the winner
    assert cell(page, "pk-in", -1, -1).get_attribute("class").split().count("pad") == 1
    w = ex.windows[5]
    assert "winner" in cell(page, "pk-in", *w.argmax).get_attribute("class")
    # the keyboard: End is the last window, where everything is the engine's
    page.locator("body").press("End")
    assert page.inner_text("#pk-pos") == f"window {n} of {n}"
    assert grid_text(page, "pk-out") == labels(out)
    assert grid_text(page, "pk-gin") == labels(gin)
    # the slider
    page.fill("#pk-slider", "3")
    assert page.inner_text("#pk-pos") == f"window 4 of {n}"
    # play and pause with the space bar
    page.locator("body").press("Home")
    page.locator("body").press(" ")
    assert page.get_attribute("#pk-play", "aria-pressed") == "true"
    sync_api.expect(page.locator("#pk-pos")).not_to_have_text("window 1 of 25")
    page.locator("body").press(" ")
    assert page.get_attribute("#pk-play", "aria-pressed") == "false"


def test_hovering_shows_windows_divisors_and_gradient_shares(page, tmp_path):
    x = np.arange(1, 17, dtype=np.float64).reshape(4, 4)
    ex = poolkit.explain(x, "avg", 3, stride=2, padding=1, ceil_mode=True, count_include_pad=True, backward=True)
    page.goto(ex.to_html(tmp_path / "avg.html").as_uri())
    ready(page)
    # an output cell: its window, the cells it reduced and its divisor
    w = ex.windows[0]
    cell(page, "pk-out", 0, 0).hover()
    assert page.inner_text("#pk-divisor").startswith(f"Divisor: {w.divisor} ")
    assert f"= {label(ex.output[0, 0])}" in page.inner_text("#pk-details")
    lit = page.eval_on_selector_all("#pk-in td.share", "tds => tds.map(td => [+td.dataset.r, +td.dataset.c])")
    assert sorted(map(tuple, lit)) == sorted(tuple(int(v) for v in c) for c in w.cells)
    background = "td => getComputedStyle(td).backgroundColor"
    assert cell(page, "pk-in", 0, 0).evaluate(background) == "rgb(165, 214, 167)"  # lit: the share colour
    assert cell(page, "pk-in", 3, 3).evaluate(background) == "rgb(255, 255, 255)"  # not in the window
    # an input cell: every window containing it and its share of each window's gradient
    r, c = 1, 1  # in the overlap of four windows
    cell(page, "pk-in", r, c).hover()
    holders = [v for v in ex.windows if (r, c) in [tuple(map(int, cc)) for cc in v.cells]]
    items = page.locator("#pk-shares li")
    assert items.count() == len(holders) == 4
    for i, v in enumerate(holders):
        share = sum(a for cc, a in v.grad_to if tuple(map(int, cc)) == (r, c))
        assert items.nth(i).inner_text().endswith(f"share of the gradient {label(share)}")
    assert page.inner_text("#pk-total").endswith(label(ex.grad_input[r, c]))
    # ceil mode's extra windows and the cells past the padding are drawn distinctly, with a legend
    assert page.locator("#pk-out td.extra").count() == sum(v.extra for v in ex.windows) > 0
    assert page.locator("#pk-in td.outside").count() > 0
    legend = page.inner_text("#pk-legend")
    assert "only in ceil mode" in legend and "padding" in legend
    cell(page, "pk-out", 1, 1).hover()
    shot(page, "page-light.png", tmp_path, full_page=True)


def test_dark_mode_and_dialects_on_the_written_page(browser, tmp_path):
    x = np.array([1.0, 2, 3, 4])
    ex = poolkit.explain(x, "avg", 3, stride=2, padding="same")
    context = browser.new_context(viewport={"width": 1100, "height": 800}, color_scheme="dark")
    pg = context.new_page()
    pg.goto(ex.to_html(tmp_path / "same.html").as_uri())
    ready(pg)
    bg = pg.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(21, 23, 27)"
    dialects = {d.key: d for d in compare_dialects(ex)}
    pg.check("#pk-dialect-tf")
    assert grid_text(pg, "pk-dialect-out") == labels(dialects["tf"].output)
    assert pg.locator("#pk-dialect-out td.differs").count() == int(dialects["tf"].differs.sum()) == 1
    pg.check("#pk-dialect-torch")
    assert "no torch equivalent" in pg.inner_text("#pk-dialect-error")
    pg.check("#pk-dialect-onnx")
    assert grid_text(pg, "pk-dialect-out") == labels(dialects["onnx"].output)
    pg.check("#pk-dialect-tf")
    cell(pg, "pk-in", 0, 3).hover()
    shot(pg, "page-dark.png", tmp_path, full_page=True)
    context.close()


def test_keyboard_alone_inspects_and_jumps(page, tmp_path):
    x = X44.astype(np.float64)
    ex = poolkit.explain(x, "max", 2, stride=1, backward=True)
    page.goto(ex.to_html(tmp_path / "k.html").as_uri())
    ready(page)
    page.keyboard.press("Tab")  # first the output size's rule, then the toolbar
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "pk-first"
    page.keyboard.press("Enter")  # a button works from the keyboard
    assert page.inner_text("#pk-pos") == "window 1 of 9"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Tab past "previous" and "play" to "next"
    assert page.inner_text("#pk-pos") == "window 2 of 9"
    page.focus('#pk-out td[tabindex="0"]')  # Tab order reaches each grid's one focusable cell
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("[document.activeElement.dataset.r, document.activeElement.dataset.c]") == ["1", "1"]
    assert page.inner_text("#pk-details").startswith(f"Output (1, 1) = {label(ex.output[1, 1])} comes from window 5")
    page.keyboard.press("Enter")
    assert page.inner_text("#pk-pos") == "window 5 of 9"
    # the theme button cycles auto -> light -> dark
    page.click("#pk-theme")
    page.click("#pk-theme")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(21, 23, 27)"


def test_the_jupyter_view_is_the_page_in_a_frame(page):
    ex = poolkit.explain([3.0, 1, 4, 1, 5, 9, 2, 6], "max", 3, stride=2, padding=1, backward=True)
    page.set_content("<!DOCTYPE html><body>" + ex._repr_html_() + "</body>")
    frame = page.frame_locator("iframe")
    sync_api.expect(frame.locator('#poolkit[data-state="ready"]')).to_be_visible()
    rows = frame.locator("#pk-out tr").all()
    frame.locator("#pk-last").click()
    shown = [td.inner_text() for td in frame.locator("#pk-out td").all()]
    assert rows and shown == labels(poolkit.max_pool(np.array([3.0, 1, 4, 1, 5, 9, 2, 6]), (3,), 2, 1))[0]


# ---------------------------------------------------------------------------------------------
# the live app
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app():
    with serving() as srv:
        yield srv


def _set(pg, field, value, version):
    pg.fill(f"#f-{field}", value)
    ready(pg, version)


def test_served_app_recomputes_every_change(page, app, tmp_path):
    page.goto(app.url)
    ready(page, 1)
    x = X44.astype(np.float64)
    g = lambda o: np.arange(1, o.size + 1, dtype=np.float64).reshape(o.shape)  # noqa: E731
    out = poolkit.max_pool(x, (2, 2), 1)
    page.click("#pk-last")
    assert grid_text(page, "pk-out") == labels(out)
    assert grid_text(page, "pk-gin") == labels(poolkit.max_pool_backward(g(out), x, (2, 2), 1))
    # parameters: op, kernel, stride, padding, ceil mode
    page.select_option("#f-op", "avg")
    ready(page, 2)
    _set(page, "kernel", "3", 3)
    _set(page, "stride", "2", 4)
    _set(page, "padding", "1", 5)
    page.check("#f-ceil_mode")
    ready(page, 6)
    out = poolkit.avg_pool(x, (3, 3), 2, 1, ceil_mode=True)
    page.click("#pk-last")
    assert grid_text(page, "pk-out") == labels(out)
    assert grid_text(page, "pk-gin") == labels(poolkit.avg_pool_backward(g(out), x, (3, 3), 2, 1, ceil_mode=True))
    assert page.locator("#pk-out td.extra").count() > 0
    # a new matrix (rows of numbers)
    y = np.array([[0.5, -1, 2, 3, 1], [4, 0, -2, 1, 1], [2, 2, 7, -3, 0]])
    _set(page, "matrix", "\n".join(" ".join(format_number(v) for v in row) for row in y), 7)
    page.uncheck("#f-ceil_mode")
    ready(page, 8)
    _set(page, "padding", "same", 9)
    ex = poolkit.explain(y, "avg", 3, stride=2, padding="same")
    assert grid_text(page, "pk-out") != [] and page.locator("#pk-out td").count() == ex.output.size
    page.click("#pk-last")
    assert grid_text(page, "pk-out") == labels(poolkit.avg_pool(y, (3, 3), 2, "same"))
    # the dialect switch shows each framework's numbers for the current input
    dialects = {d.key: d for d in compare_dialects(ex)}
    page.check("#pk-dialect-tf")
    assert grid_text(page, "pk-dialect-out") == labels(dialects["tf"].output)
    assert page.locator("#pk-dialect-out td.differs").count() == int(dialects["tf"].differs.sum()) > 0
    page.check("#pk-dialect-onnx")
    assert grid_text(page, "pk-dialect-out") == labels(dialects["onnx"].output)
    page.check("#pk-dialect-torch")  # SAME pads (1, 1) here: torch has it, with its own call
    assert page.inner_text("#pk-call") == dialects["torch"].call
    assert grid_text(page, "pk-dialect-out") == labels(dialects["torch"].output)
    page.check("#pk-dialect-tf")
    assert "(avg_pool and avg_pool_backward)" in page.inner_text("#pk-footer")
    page.mouse.move(5, 5)
    shot(page, "serve.png", tmp_path, full_page=True)


def test_served_app_shows_bad_parameters_inline(page, app, tmp_path):
    page.goto(app.url)
    ready(page, 1)
    page.fill("#f-kernel", "9")
    page.wait_for_selector('#poolkit[data-state="error"]')
    error = page.locator("#pk-error")
    assert error.is_visible()
    assert "larger than the padded input" in error.inner_text()
    # the last good result stays on the page, dimmed
    assert grid_text(page, "pk-out") == [[label(poolkit.max_pool(X44, (2, 2), 1)[0, 0]), "", ""], ["", "", ""],
                                          ["", "", ""]]
    shot(page, "serve-error.png", tmp_path)
    page.fill("#f-padding", "((1,2),(3,)")
    page.fill("#f-kernel", "2")
    sync_api.expect(page.locator("#pk-error")).to_contain_text("padding")
    page.fill("#f-padding", "0")
    ready(page, 2)
    assert page.locator("#pk-error").is_hidden()
    # an oversized matrix is refused with a clear message
    page.fill("#f-matrix", "\n".join(" ".join("1" * 1 for _ in range(40)) for _ in range(40)))
    sync_api.expect(page.locator("#pk-error")).to_contain_text("cells")
    assert "more than the 1024 the app explains" in page.inner_text("#pk-error")


def test_served_app_loads_a_csv_file(page, app, tmp_path):
    page.goto(app.url)
    ready(page, 1)
    csv = tmp_path / "m.csv"
    csv.write_text("1,2,3\n4,5,6\n7,8,9\n")
    page.set_input_files("#f-file", str(csv))
    ready(page, 2)
    page.click("#pk-last")
    assert grid_text(page, "pk-out") == labels(poolkit.max_pool(np.arange(1, 10.0).reshape(3, 3), (2, 2), 1))
