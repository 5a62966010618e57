"""The built wheel carries the public page and the vendored API-docs assets (package data), so an installed
service serves `/` and `/docs` offline, and it carries every migration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 300


def test_wheel_contains_every_web_asset_and_migration(tmp_path: Path) -> None:
    # Built from a clean copy: a `build/` left in the checkout would leak stale files into the wheel.
    source = tmp_path / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("app", "signing"):
        shutil.copytree(REPO / folder, source / folder, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    out = tmp_path / "dist"
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        str(out),
        str(source),
    ]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    [wheel] = out.glob("hallmark-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    wanted = {
        p.relative_to(REPO).as_posix()
        for folder in ("app/web", "app/store/migrations/versions")
        for p in (REPO / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {"app/web/index.html", "app/web/vendor/swagger-ui/swagger-ui-bundle.js"} <= wanted
    assert wanted - packed == set(), (
        "files missing from the wheel: add them to [tool.setuptools.package-data]"
    )
    assert not any(name.startswith("tests/") for name in packed)  # control: the wheel is not the whole tree
