"""Sphinx configuration: the API reference built from the docstrings (Google style, KaTeX-free MathJax).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (the ``docs`` extra).
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "losslab_jax"
author = "losslab_jax developers"
copyright = "2026, losslab_jax developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.header"]

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_custom_sections = [("Notes", "notes_style"), ("References", "notes_style")]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "imported-members": True, "undoc-members": False}
# Type aliases from jax/optax are not documented here; don't fail the build on their references.
nitpicky = False

html_theme = "alabaster"
html_static_path: list[str] = []
