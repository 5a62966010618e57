"""The core's public surface: `signing.__all__` is exactly what signing/__init__.py defines, and app/ imports
nothing from the core that is not in it."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import signing

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "signing" / "__init__.py"
APP = REPO / "app"


def bound_names(tree: ast.Module) -> set[str]:
    """Names bound at the top level of a module (imports, assignments, defs), except dunders."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))}


def test_all_has_no_duplicates() -> None:
    duplicates = [name for name, count in Counter(signing.__all__).items() if count > 1]
    assert duplicates == []


def test_all_matches_the_names_defined() -> None:
    defined = bound_names(ast.parse(INIT.read_text(encoding="utf-8")))
    exported = set(signing.__all__)
    assert sorted(defined - exported) == [], "defined in signing/__init__.py but missing from __all__"
    assert sorted(exported - defined) == [], "in __all__ but not defined in signing/__init__.py"
    unresolved = [name for name in signing.__all__ if not hasattr(signing, name)]
    assert unresolved == []


def app_imports_from_signing() -> Iterator[tuple[str, int, str]]:
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = str(path.relative_to(REPO))
        signing_aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "signing":
                    for alias in node.names:
                        yield where, node.lineno, alias.name
                elif node.module.startswith("signing."):
                    yield where, node.lineno, node.module  # a private module: never in __all__
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "signing":
                        signing_aliases.add(alias.asname or "signing")
                    elif alias.name.startswith("signing."):
                        yield where, node.lineno, alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in signing_aliases
            ):
                yield where, node.lineno, node.attr


def test_app_imports_only_exported_names() -> None:
    imports = list(app_imports_from_signing())
    assert imports, "found no imports from signing in app/: the scan is broken"
    offenders = [f"{where}:{line} {name}" for where, line, name in imports if name not in signing.__all__]
    assert offenders == [], "app/ must import only names re-exported by signing/__init__.py (__all__)"
