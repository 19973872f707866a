"""The lessons of ``docs/lessons`` run, top to bottom, and their own checks hold.

Each notebook is executed afresh with nbclient (a Jupyter kernel); a failing ``assert`` in a lesson
fails here.  The committed notebooks are the ones ``docs/lessons/make_lessons.py`` writes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parents[1] / "docs" / "lessons"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NEEDS = {
    "01-maximum-pooling.ipynb": ("matplotlib", "PIL", "sklearn"),
    "02-max-pooling-backward.ipynb": ("torch",),
    "03-one-layer-four-frameworks.ipynb": ("torch", "tensorflow", "keras", "onnx", "onnxruntime"),
    "04-what-pooling-is-for.ipynb": ("sklearn",),
}


def _make_lessons():
    spec = importlib.util.spec_from_file_location("make_lessons", LESSONS / "make_lessons.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_lessons"] = module
    spec.loader.exec_module(module)
    return module


def test_every_lesson_is_listed():
    assert sorted(p.name for p in LESSONS.glob("*.ipynb")) == sorted(NEEDS) == sorted(_make_lessons().LESSONS)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_committed_notebook_is_the_generated_one(name):
    committed = nbformat.read(LESSONS / name, as_version=4)
    built = _make_lessons().build(_make_lessons().LESSONS[name])
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in built.cells]
    for c in committed.cells:  # committed with their outputs, none of them an error
        if c.cell_type == "code":
            assert c.outputs is not None and all(o.get("output_type") != "error" for o in c.outputs)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_lesson_runs(name, tmp_path, monkeypatch):
    for module in NEEDS[name]:
        pytest.importorskip(module)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(LESSONS / name, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = []
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not any(o.get("output_type") == "error" for o in outputs)


def test_sphinx_site_builds_without_warnings(tmp_path):
    """``python -m sphinx -W -b html -c docs/site docs OUT``: the lessons, the API reference (numpydoc)
    and the pictures, with every warning an error."""
    import subprocess

    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("numpydoc")
    docs = LESSONS.parent
    out = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-c", str(docs / "site"), str(docs), str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for page in ("index.html", "site/index.html", "site/api.html", "site/explore.html",
                 "lessons/01-maximum-pooling.html", "lessons/04-what-pooling-is-for.html", "lab/claims.html"):
        assert (out / page).is_file(), page
    api = (out / "site" / "api.html").read_text(encoding="utf-8")
    for name in ("poolkit.pooling.max_pool", "poolkit.explanation.explain", "poolkit.serve.make_server",
                 "poolkit.viz.page_html"):
        assert f'id="{name}"' in api, name
    lesson = (out / "lessons" / "02-max-pooling-backward.html").read_text(encoding="utf-8")
    assert "PyTorch and poolkit agree" in lesson  # rendered with its outputs
    index = (out / "site" / "index.html").read_text(encoding="utf-8")
    assert "page-light.png" in index and "max-pool.gif" in index
