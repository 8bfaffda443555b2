"""Every ```python block of every docs page (and the README) runs.

A page's blocks run in order, in one fresh Python process (as a reader pasting them would),
so a later block may use an earlier one's names. ``{code-cell}``s are run by the docs build
instead; a ``{code-block} python`` is for code that cannot run on one machine.
"""

import os
import subprocess
import sys

import pytest

from tests.docs._walk import ROOT, doc_pages, python_blocks

PAGES = [p for p in doc_pages() if python_blocks(p.read_text())]


def test_the_walk_finds_the_pages():
    names = {str(p.relative_to(ROOT)) for p in PAGES}
    assert {"README.md", "docs/getting_started.md", "docs/guides/pytorch.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_python_blocks_run(page, tmp_path):
    code = "\n\n".join(python_blocks(page.read_text()))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{page.relative_to(ROOT)}:\n{run.stderr[-10_000:]}"
