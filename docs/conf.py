"""Sphinx configuration of the stn_numba site: ``sphinx-build -W -b html docs <out>``.

Kept lean for CI (2 busy cores): autodoc + numpydoc for the API pages, myst-parser for
the Markdown pages that also live on their own (conventions, errors, the benchmark
table); no autosummary stubs, no gallery, no plots, no intersphinx (builds offline).
"""

import os
import sys

# The package of this checkout, not an installed copy.
sys.path.insert(0, os.path.abspath(".."))

project = "stn_numba"
author = "stn_numba developers"
copyright = "stn_numba developers"
from stn_numba import __version__ as release  # noqa: E402

version = release

extensions = ["sphinx.ext.autodoc", "numpydoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown: GitHub-style tables and headings that links can point to.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
# numpydoc lists class members itself; without autosummary stubs that would be a
# toctree of missing pages, so the class docstrings' own sections suffice.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "Spatial transformers for NumPy, on Numba"}
