"""The dependency rule (DESIGN.md): import-linter's contracts hold, they cover every core module, only
signing/_c2pa.py talks to c2pa, and the core never reads the environment."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIGNING = REPO / "signing"
APP = REPO / "app"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PUBLIC_NAMES_CONTRACT = "Adapters use only the public names"
ENGINE_WRAPPER = SIGNING / "_c2pa.py"
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def core_modules() -> set[str]:
    """Every importable module or package directly inside signing/, except the package's __init__."""
    modules = {f"signing.{p.stem}" for p in SIGNING.glob("*.py") if p.stem != "__init__"}
    modules |= {f"signing.{d.name}" for d in SIGNING.iterdir() if (d / "__init__.py").is_file()}
    return modules


def test_import_linter_contracts_are_kept() -> None:
    if not LINT_IMPORTS.is_file():
        pytest.fail(f"lint-imports not found at {LINT_IMPORTS}: install the dev extras (make install)")
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "BROKEN" not in output
    assert " 0 broken" in output, output


def test_public_names_contract_lists_every_core_module() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    [contract] = [c for c in contracts if c["name"].startswith(PUBLIC_NAMES_CONTRACT)]
    assert contract["type"] == "forbidden"
    assert contract["source_modules"] == ["app"]
    listed = set(contract["forbidden_modules"])
    missing = sorted(core_modules() - listed)
    stale = sorted(listed - core_modules())
    assert not missing, (
        f"core modules app/ could import unnoticed: {missing}; add them to the forbidden_modules of the "
        f"'{PUBLIC_NAMES_CONTRACT}...' contract in pyproject.toml"
    )
    assert not stale, f"the contract lists modules that do not exist: {stale}"


def imported_modules(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def test_only_the_engine_wrapper_imports_c2pa() -> None:
    offenders = [
        f"{rel(path)}:{line} imports {module}"
        for path in python_files(SIGNING, APP)
        if path != ENGINE_WRAPPER
        for line, module in imported_modules(parse(path))
        if module == "c2pa" or module.startswith("c2pa.")
    ]
    assert offenders == []
    assert any(m == "c2pa" for _, m in imported_modules(parse(ENGINE_WRAPPER))), "the wrapper moved?"


def environment_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    os_aliases = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_aliases |= {a.asname for a in node.names if a.name == "os" and a.asname}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in {"os", "posix", "nt"}:
            for alias in node.names:
                if alias.name in ENV_NAMES:
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ENV_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id in os_aliases
        ):
            yield node.lineno, f"{node.value.id}.{node.attr}"


def test_the_core_never_reads_the_environment() -> None:
    offenders = [
        f"{rel(path)}:{line} {what}"
        for path in python_files(SIGNING)
        for line, what in environment_reads(parse(path))
    ]
    assert offenders == [], "signing/ takes typed configuration; only app/settings.py reads the environment"


def test_the_scanners_see_what_they_look_for() -> None:
    """Guard against a scan that silently finds nothing."""
    sample = ast.parse(
        "import os as o\nfrom os import getenv\nimport c2pa.lib\nx = o.environ['A']\n"
        "import importlib\nimportlib.import_module('c2pa')\n"
    )
    assert {what for _, what in environment_reads(sample)} == {"from os import getenv", "o.environ"}
    assert [m for _, m in imported_modules(sample) if m.startswith("c2pa")] == ["c2pa.lib", "c2pa"]
    assert {"signing._c2pa", "signing.sign", "signing.verify"} <= core_modules()
    assert SIGNING / "__init__.py" in set(python_files(SIGNING))


IO_CONTRACT = "The core does no network, socket or thread work"
# Submodules of stdlib packages the core may otherwise use (urllib.parse): import-linter can only forbid
# an external package as a whole, so these are scanned here.
FORBIDDEN_SUBMODULES = ("urllib.request", "urllib.error")


def test_io_contract_forbids_http_clients_and_threads() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    [contract] = [c for c in contracts if c["name"].startswith(IO_CONTRACT)]
    assert contract["type"] == "forbidden"
    assert contract["source_modules"] == ["signing"]
    assert {
        "threading",
        "http",
        "socket",
        "socketserver",
        "httpx",
        "requests",
        "pkcs11",
        "concurrent",
    } <= set(contract["forbidden_modules"])
    assert config["tool"]["importlinter"]["include_external_packages"] is True


def test_the_core_imports_no_url_opener() -> None:
    offenders = [
        f"{rel(path)}:{line} imports {module}"
        for path in python_files(SIGNING)
        for line, module in imported_modules(parse(path))
        if any(module == m or module.startswith(m + ".") for m in FORBIDDEN_SUBMODULES)
    ]
    assert offenders == []
    sample = ast.parse("import urllib.parse\nfrom urllib.request import urlopen\n")
    assert [m for _, m in imported_modules(sample)] == ["urllib.parse", "urllib.request"]
