"""Every public name is documented: classes with a docstring, functions with their shapes, a
runnable example and what they return; and the API reference lists every public name."""

import inspect
import re

import pytest

from tests.docs._walk import DOCS, PUBLIC_MODULES, public_modules

NAMESPACES = public_modules()
PUBLIC = list({id(f): f for f in (getattr(m, n) for m in NAMESPACES for n in m.__all__)
               if inspect.isfunction(f)}.values())
CLASSES = list({id(c): c for c in (getattr(m, n) for m in NAMESPACES for n in m.__all__)
                if inspect.isclass(c)}.values())


@pytest.mark.parametrize("cls", CLASSES, ids=[f"{c.__module__}.{c.__name__}" for c in CLASSES])
def test_public_classes_have_a_docstring(cls):
    assert len((cls.__doc__ or "").strip()) > 20, f"{cls.__name__} needs a docstring"


@pytest.mark.parametrize("fn", PUBLIC, ids=[f"{f.__module__}.{f.__name__}" for f in PUBLIC])
def test_public_functions_are_documented_with_an_example(fn):
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 80, f"{fn.__name__} needs a docstring"
    assert "Example" in doc, f"{fn.__name__}: add a runnable example"
    assert "Returns" in doc or "returns" in doc, f"{fn.__name__}: document what it returns (shapes)"


_ENTRY = re.compile(r"^\s{3}~?(?:[\w.]*\.)?(?P<name>\w+)\s*$")
_SUBMODULE = re.compile(r"^- \[`[\w.]+\.(?P<name>\w+)`\]\(\w+\.md\)")


def _listed(page: str) -> list[str]:
    """The names a docs/api page lists: its autosummary entries and submodule links."""
    names, in_autosummary = [], False
    for line in (DOCS / "api" / page).read_text().splitlines():
        if line.startswith(".. autosummary::"):
            in_autosummary = True
        elif line.startswith("```"):
            in_autosummary = False
        elif in_autosummary and (m := _ENTRY.match(line)):
            names.append(m["name"])
        elif m := _SUBMODULE.match(line):
            names.append(m["name"])
    return names


@pytest.mark.parametrize("module", NAMESPACES, ids=[m.__name__ for m in NAMESPACES])
def test_the_api_reference_lists_every_public_name(module):
    listed = _listed(PUBLIC_MODULES[module.__name__])
    assert sorted(listed) == sorted(module.__all__), (
        f"docs/api/{PUBLIC_MODULES[module.__name__]} must list exactly {module.__name__}.__all__: "
        f"missing {sorted(set(module.__all__) - set(listed))}, extra {sorted(set(listed) - set(module.__all__))}; "
        "run `python docs/api/update.py`")
