"""The core's public surface: `signing.__all__` is exactly what signing/__init__.py defines, and app/ imports
nothing from the core that is not in it."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import signing

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "signing" / "__init__.py"
APP = REPO / "app"


# What signing/__init__.py binds for its own machinery, not for export.
MACHINERY = {"importlib", "TYPE_CHECKING", "_LAZY"}


def lazy_names(tree: ast.Module) -> set[str]:
    """The keys of the `_LAZY` table: names loaded on first use (PEP 562 `__getattr__`)."""
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "_LAZY"
            and isinstance(node.value, ast.Dict)
        ):
            return {
                k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
    return set()


def type_checking_names(tree: ast.Module) -> set[str]:
    """Names imported under `if TYPE_CHECKING:`: what mypy sees of the lazy names."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for sub in node.body:
                if isinstance(sub, ast.ImportFrom):
                    names |= {a.asname or a.name for a in sub.names}
    return names


def bound_names(tree: ast.Module) -> set[str]:
    """Names bound at the top level of a module (imports, assignments, defs, the lazy table), except dunders
    and the module's own machinery."""
    names: set[str] = lazy_names(tree)
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not (n.startswith("__") and n.endswith("__")) and n not in MACHINERY}


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


def test_lazy_names_are_what_mypy_sees_and_resolve() -> None:
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    lazy = lazy_names(tree)
    assert lazy, "no lazy names found: the scan is broken"
    assert lazy == type_checking_names(tree)
    assert [name for name in sorted(lazy) if getattr(signing, name, None) is None] == []


def test_importing_the_core_does_not_load_the_soft_binding_stack() -> None:
    """numpy, scipy, faiss and iscc-core load on first use: a CLI call needing none of them pays nothing."""
    heavy = "('numpy', 'scipy', 'faiss', 'iscc_core')"
    code = f"import sys, signing; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    control = "import sys, signing; signing.image_fingerprints; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", control], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


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
