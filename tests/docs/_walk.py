"""What the docs tests walk: the public namespaces, the modules, the pages and their code."""

import importlib
import pkgutil
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: The public faces whose every ``__all__`` name the API reference lists, with their page.
PUBLIC_MODULES = {
    "ei_jax": "ei_jax.md",
    "ei_jax.core": "core.md",
    "ei_jax.exact": "exact.md",
    "ei_jax.errors": "errors.md",
    "bridges": "bridges.md",
    "bridges.deep_ei": "deep_ei.md",
}


def public_modules():
    return [importlib.import_module(name) for name in PUBLIC_MODULES]


def all_module_names(packages=("ei_jax", "bridges")) -> list[str]:
    """Every module of the packages, found by pkgutil.walk_packages. ``__main__`` modules are
    left out: importing one runs the command."""
    names = []
    for package in packages:
        pkg = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
            if info.name.rpartition(".")[2] != "__main__":
                names.append(info.name)
    return sorted(names)


def doc_pages() -> list[Path]:
    """Every MyST page of docs/ (not the generated ones), and the README."""
    skip = {"_build", "_autosummary", "jupyter_execute", ".jupyter_cache"}
    pages = [p for p in sorted(DOCS.rglob("*.md")) if not skip & set(p.relative_to(DOCS).parts)]
    return pages + [ROOT / "README.md"]


_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)(?:\s.*)?$")


def python_blocks(text: str) -> list[str]:
    """The fenced blocks whose info string is exactly ``python`` (not ``{code-cell}``,
    ``{code-block} python`` or ``bash``), in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, body = m["fence"], m["info"], []
        i += 1
        while i < len(lines) and not (lines[i].startswith(fence) and not lines[i].strip(fence[0]).strip()):
            body.append(lines[i])
            i += 1
        i += 1
        if info == "python":
            blocks.append("\n".join(body))
    return blocks
