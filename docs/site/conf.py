"""Sphinx configuration of poolkit's site.

Build it from the repository root (the source directory is ``docs/`` so that the lessons, the lab
report and the README's pictures are pages of the site; this file is its configuration)::

    python -m sphinx -W --keep-going -b html -c docs/site docs build/site

The lessons are rendered by myst-nb from the committed notebooks, with their stored outputs
(``tests/test_lessons.py`` executes them); the API reference is autodoc with numpydoc.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))

project = "poolkit"
author = "the poolkit authors"
copyright = "the poolkit authors"

import poolkit  # noqa: E402

release = version = poolkit.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
]

root_doc = "site/index"
exclude_patterns = ["site/_build", "**/.ipynb_checkpoints", "lessons/make_lessons.py", "README*"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# notebooks: rendered with the outputs they were committed with (tests/test_lessons.py runs them)
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set = set()

html_theme = "alabaster"
html_title = f"poolkit {release}"
html_static_path: list = []
suppress_warnings = ["myst.header"]


def _escape_shapes(app, what, name, obj, options, lines):
    """Shapes such as ``(..., *spatial)`` in numpydoc types are text, not reST emphasis."""
    for i, line in enumerate(lines):
        if "*spatial" in line and "\\*spatial" not in line and " : " in line:
            lines[i] = line.replace("*spatial", "\\*spatial")


def _front_door(app, exception):
    """An ``index.html`` at the top of the build that leads to the site's index."""
    if exception is None and app.builder.format == "html":
        with open(os.path.join(app.outdir, "index.html"), "w", encoding="utf-8") as f:
            f.write('<!DOCTYPE html><meta charset="utf-8"><title>poolkit</title>'
                    '<meta http-equiv="refresh" content="0; url=site/index.html">'
                    '<a href="site/index.html">poolkit</a>\n')


def setup(app):
    app.connect("autodoc-process-docstring", _escape_shapes, priority=100)
    app.connect("build-finished", _front_door)
