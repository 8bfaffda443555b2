"""Sphinx configuration of the ei_jax documentation (MyST pages executed by myst-nb).

Build: ``pip install '.[docs]'`` then ``python -m sphinx -W --keep-going -b html docs OUT``.
"""

import importlib
import os
import shutil
import sys

sys.path.insert(0, os.path.abspath(".."))  # a source checkout builds without installing it

import ei_jax  # noqa: E402

project = "ei_jax"
author = "ei_jax contributors"
copyright = "2026, ei_jax contributors"
release = ei_jax.__version__
version = release

extensions = [
    "myst_nb",                      # MyST markdown pages, executed {code-cell}s
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",          # Google-style Args / Returns / Example sections
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# --- API reference -------------------------------------------------------------------------
# autosummary writes one page per public name into docs/_autosummary (gitignored); start
# afresh so that a name removed from an ``__all__`` leaves no stale page behind.
shutil.rmtree(os.path.join(os.path.dirname(__file__), "_autosummary"), ignore_errors=True)
autosummary_generate = True          # one page per public name, written to docs/_autosummary
autosummary_ignore_module_all = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
add_module_names = False

# --- MyST and execution --------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# Every build executes the pages' {code-cell}s afresh (small sample counts: the whole build
# takes ~2 minutes on 2 cores); no cache is needed, so a fresh clone builds the same way.
nb_execution_mode = "force"
nb_execution_timeout = 180
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# --- HTML ----------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "ei_jax"
html_theme_options = {
    "show_toc_level": 2,
}


# --- Constants re-exported by a public face ------------------------------------------------
# autodoc reads a constant's ``#:`` comment only from the module it is documented in, so a
# re-exported int (``ei_jax.core.BLOCK``) would show int's own docstring. Take the comment
# from the module that defines it instead.
def _constant_doc(app, what, name, obj, options, lines):
    if what != "data" or not isinstance(obj, (int, float, str, tuple)):
        return
    from sphinx.pycode import ModuleAnalyzer

    module = importlib.import_module(name.rpartition(".")[0])
    for source in _constant_sources(module, name.rpartition(".")[2]):
        docs = ModuleAnalyzer.for_module(source).find_attr_docs()
        if ("", name.rpartition(".")[2]) in docs:
            lines[:] = list(docs[("", name.rpartition(".")[2])])
            return


def _constant_sources(module, attr):
    """The modules a public face imported ``attr`` from (its ``from X import attr`` lines)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    return [node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and any(a.name == attr for a in node.names)]


def setup(app):
    app.connect("autodoc-process-docstring", _constant_doc)
