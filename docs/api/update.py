"""Rewrites the API reference pages (docs/api/<module>.md) from the public faces' ``__all__``.

    python docs/api/update.py

Run it after adding or removing a public name; ``tests/docs`` fails until the pages list
exactly each ``__all__``. A class that ``ei_jax.errors`` exports is documented there once and
linked from the other pages (documenting one class under two names would duplicate it).
"""

import importlib
import inspect
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

PAGES = {"ei_jax": "ei_jax", "core": "ei_jax.core", "exact": "ei_jax.exact",
         "errors": "ei_jax.errors", "bridges": "bridges", "deep_ei": "bridges.deep_ei"}


def page(modname: str, in_errors: set[int]) -> str:
    module = importlib.import_module(modname)
    groups = {k: [] for k in ("Functions", "Classes", "Constants", "Exceptions", "Warnings")}
    aliases, submodules = [], []
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            submodules.append(name)
        elif modname != "ei_jax.errors" and id(obj) in in_errors:
            aliases.append(name)
        elif inspect.isclass(obj) and issubclass(obj, Warning):
            groups["Warnings"].append(name)
        elif inspect.isclass(obj) and issubclass(obj, BaseException):
            groups["Exceptions"].append(name)
        elif inspect.isclass(obj):
            groups["Classes"].append(name)
        elif callable(obj):
            groups["Functions"].append(name)
        else:
            groups["Constants"].append(name)
    out = [f"# `{modname}`", "", "```{eval-rst}", f".. automodule:: {modname}", "   :no-members:", "```", ""]
    for title, names in groups.items():
        if names:
            out += [f"## {title}", "", "```{eval-rst}", f".. currentmodule:: {modname}", "",
                    ".. autosummary::", "   :toctree: ../_autosummary", ""]
            out += [f"   {n}" for n in names] + ["```", ""]
    if aliases:
        prefix = "errors" if modname == "ei_jax" else "ei_jax.errors"
        out += ["## Errors and warnings from `ei_jax.errors`", "",
                f"`{modname}.X` is `ei_jax.errors.X` (the same class), documented on the "
                "[`ei_jax.errors`](errors.md) page:", "", "```{eval-rst}", ".. autosummary::", ""]
        out += [f"   ~{prefix}.{n}" for n in aliases] + ["```", ""]
    if submodules:
        out += ["## Submodules", ""]
        for n in submodules:
            target = f"{n}.md" if f"{n}" in PAGES else f"../_autosummary/{modname}.{n}"
            out.append(f"- [`{modname}.{n}`]({target})")
        out.append("")
    return "\n".join(out)


def main():
    errors = importlib.import_module("ei_jax.errors")
    in_errors = {id(getattr(errors, n)) for n in errors.__all__}
    for stem, modname in PAGES.items():
        (HERE / f"{stem}.md").write_text(page(modname, in_errors))


if __name__ == "__main__":
    main()
