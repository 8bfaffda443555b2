"""The documentation site builds with warnings as errors (its code cells run in the build)."""

import importlib.util
import subprocess
import sys
import time

import pytest

from tests.docs._walk import DOCS

NEEDED = ("sphinx", "myst_nb", "sphinx_book_theme")


def test_docs_build_with_warnings_as_errors(tmp_path):
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"the docs extra is not installed (missing {', '.join(missing)}): "
                    "run `pip install -e '.[docs]'` (scripts/test.sh does)", pytrace=False)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                          str(DOCS), str(tmp_path / "html")],
                         capture_output=True, text=True, timeout=900)
    took = time.perf_counter() - start
    log = "\n".join(line for line in (run.stdout + run.stderr).splitlines()
                    if "IPKernelApp" not in line)  # the kernel's own start-up notice
    assert run.returncode == 0, f"sphinx -W failed after {took:.0f} s:\n{log[-20_000:]}"
    assert (tmp_path / "html" / "index.html").exists()
    print(f"docs built in {took:.1f} s")
