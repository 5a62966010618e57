"""The sweep of temporary files and directories left by killed processes (app/temp_sweep.py), on real files.

Every test points tempfile at its own directory (tempfile.tempdir), so the machine's /tmp is not touched.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.isolation.service import private_copy
from app.main import create_app
from app.metrics import prepare_multiprocess_dir
from app.settings import Settings
from app.temp_sweep import KINDS, prefix, sweep, sweep_and_log

AGE = 3600.0
OLD = 2 * AGE  # seconds before now


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    assert tempfile.gettempdir() == str(folder)
    return folder


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The PID of a process that ran and was reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)
    return child.pid


def aged(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def file(folder: Path, name: str, age: float = OLD) -> Path:
    path = folder / name
    path.write_bytes(b"an upload's bytes")
    return aged(path, age)


def tree(folder: Path, name: str, age: float = OLD) -> Path:
    """A TemporaryDirectory-style folder with a file and a subfolder inside."""
    path = folder / name
    (path / "inner").mkdir(parents=True)
    (path / "upload.wav").write_bytes(b"RIFF")
    (path / "inner" / "signature.bin").write_bytes(b"\0" * 16)
    return aged(path, age)


def test_a_dead_process_s_old_file_is_removed_a_younger_one_kept(tmp: Path, dead_pid: int) -> None:
    stale = file(tmp, f"hallmark-upload-{dead_pid}-abc123")
    young = file(tmp, f"hallmark-signed-{dead_pid}-def456", age=AGE - 60)
    assert sweep(AGE) == (1, 0)
    assert not stale.exists()
    assert young.exists()  # negative control: same dead PID, younger than the age


def test_every_kind_of_a_dead_process_is_removed(tmp: Path, dead_pid: int) -> None:
    made = [file(tmp, f"hallmark-{kind}-{dead_pid}-x{i}") for i, kind in enumerate(KINDS)]
    assert sweep(AGE).removed == len(KINDS)
    assert not any(p.exists() for p in made)


def test_a_live_process_s_file_is_kept_however_old(tmp: Path, dead_pid: int) -> None:
    parent = os.getppid()  # alive, and not this process either
    mine = file(tmp, f"hallmark-upload-{os.getpid()}-abc123", age=30 * 24 * 3600)
    parents = file(tmp, f"hallmark-upload-{parent}-abc123", age=30 * 24 * 3600)
    stale = file(tmp, f"hallmark-upload-{dead_pid}-abc123")  # positive control beside them
    assert sweep(AGE).removed == 1
    assert mine.exists()
    assert parents.exists()
    assert not stale.exists()


def test_other_names_are_kept(tmp: Path, dead_pid: int) -> None:
    others = [
        file(tmp, f"hallmark-other-{dead_pid}-abc"),  # not one of our kinds
        file(tmp, f"upload-{dead_pid}-abc"),
        file(tmp, f"xhallmark-upload-{dead_pid}-abc"),
        file(tmp, "hallmark-upload-abc12345"),  # the name before PIDs (no PID: whose it is cannot be told)
        file(tmp, f"hallmark-upload-{dead_pid}"),  # no random part: not a name tempfile makes
        file(tmp, "hallmark-upload-0-abc"),  # PID 0 would signal this process group
    ]
    stale = file(tmp, f"hallmark-upload-{dead_pid}-abc")
    assert sweep(AGE) == (1, 0)
    assert all(p.exists() for p in others)
    assert not stale.exists()


def test_a_symlink_named_like_ours_is_neither_followed_nor_removed(
    tmp: Path, tmp_path: Path, dead_pid: int
) -> None:
    target_file = tmp_path / "precious.txt"
    target_file.write_text("keep me")
    target_dir = tmp_path / "precious-dir"
    target_dir.mkdir()
    (target_dir / "inside.txt").write_text("keep me too")
    aged(target_file, OLD)
    aged(target_dir, OLD)
    link_file = aged(_symlink(tmp / f"hallmark-upload-{dead_pid}-lnk1", target_file), OLD)
    link_dir = aged(_symlink(tmp / f"hallmark-metrics-{dead_pid}-lnk2", target_dir), OLD)
    stale = file(tmp, f"hallmark-upload-{dead_pid}-real")
    assert sweep(AGE) == (1, 0)
    assert link_file.is_symlink()
    assert link_dir.is_symlink()
    assert target_file.read_text() == "keep me"
    assert (target_dir / "inside.txt").read_text() == "keep me too"
    assert not stale.exists()


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def test_a_dead_process_s_directory_is_removed_with_its_contents(
    tmp: Path, tmp_path: Path, dead_pid: int
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not in the tree")
    stale = tree(tmp, f"hallmark-av-{dead_pid}-k2j3h4")
    (stale / "inner" / "link").symlink_to(outside)  # a link inside is removed, its target is not
    aged(stale, OLD)
    young = tree(tmp, f"hallmark-media-{dead_pid}-q9w8e7", age=60)
    live = tree(tmp, f"hallmark-metrics-{os.getpid()}-z1x2c3")
    assert sweep(AGE) == (1, 0)
    assert not stale.exists()
    assert outside.read_text() == "not in the tree"
    assert (young / "inner" / "signature.bin").exists()
    assert (live / "upload.wav").exists()


def test_age_zero_sweeps_nothing(tmp: Path, dead_pid: int) -> None:
    stale = file(tmp, f"hallmark-upload-{dead_pid}-abc123", age=30 * 24 * 3600)
    folder = tree(tmp, f"hallmark-av-{dead_pid}-abc123", age=30 * 24 * 3600)
    assert sweep(0) == (0, 0)
    assert stale.exists()
    assert folder.exists()
    assert sweep(AGE) == (2, 0)  # the control: the same entries go once the sweep is on


def test_a_file_removed_meanwhile_is_not_an_error(
    tmp: Path, dead_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers start at once and sweep the same directory: each entry is removed once, no failure."""
    names = [file(tmp, f"hallmark-upload-{dead_pid}-r{i}") for i in range(20)]
    listing = os.listdir(tmp)
    for path in names[::2]:
        path.unlink()  # "the other worker" removed these after this one listed the directory
    with monkeypatch.context() as patch:
        patch.setattr(os, "listdir", lambda _path: listing)
        result = sweep(AGE)
    assert result == (10, 0)
    assert os.listdir(tmp) == []


def test_names_carry_this_process_s_pid_and_the_sweep_recognises_them(tmp: Path, dead_pid: int) -> None:
    assert prefix("upload") == f"hallmark-upload-{os.getpid()}-"
    with pytest.raises(ValueError, match="unknown"):
        prefix("other")
    with private_copy(io.BytesIO(b"bytes")) as path:
        assert Path(path).parent == tmp
        assert Path(path).name.startswith(prefix("upload"))
        assert sweep(1, now=time.time() + OLD) == (0, 0)  # its owner (this process) runs: kept
        assert Path(path).exists()
    directory, made = prepare_multiprocess_dir(2)
    assert made
    assert directory is not None
    assert directory.parent == tmp
    assert directory.name.startswith(prefix("metrics"))
    # The same name with a dead PID, as a killed `serve` leaves it: removed.
    left = aged(directory.rename(tmp / directory.name.replace(str(os.getpid()), str(dead_pid), 1)), OLD)
    assert sweep(AGE) == (1, 0)
    assert not left.exists()


def test_the_app_sweeps_when_it_starts_and_logs_only_a_count(
    tmp: Path, dead_pid: int, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    stale = [file(tmp, f"hallmark-upload-{dead_pid}-secretname{i}") for i in range(3)]
    stale_dir = tree(tmp, f"hallmark-av-{dead_pid}-secretdir")
    young = file(tmp, f"hallmark-signed-{dead_pid}-young", age=10)
    caplog.set_level(logging.INFO, logger="hallmark")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert not any(p.exists() for p in stale)
        assert not stale_dir.exists()
        assert young.exists()
    [line] = [r.getMessage() for r in caplog.records if "temporary" in r.getMessage()]
    assert line.startswith("removed 4 temporary")
    assert "secret" not in caplog.text


def test_the_app_with_age_zero_leaves_everything(tmp: Path, dead_pid: int, settings: Settings) -> None:
    stale = file(tmp, f"hallmark-upload-{dead_pid}-abc")
    off = settings.model_copy(update={"temp_sweep_age_seconds": 0})
    with TestClient(create_app(off)) as client:
        assert client.get("/healthz").status_code == 200
    assert stale.exists()
    assert sweep_and_log(AGE).removed == 1  # the control: swept once turned on


def test_another_user_s_entries_are_kept(tmp: Path, dead_pid: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep removes only what belongs to its own uid. Files of another user cannot be made without root,
    so the service's uid is moved instead: the same files then belong to "someone else"."""
    stale = file(tmp, f"hallmark-upload-{dead_pid}-abc")
    folder = tree(tmp, f"hallmark-metrics-{dead_pid}-def")
    real_uid = os.getuid()
    with monkeypatch.context() as patch:
        patch.setattr(os, "getuid", lambda: real_uid + 1)
        assert sweep(AGE) == (0, 0)
    assert stale.exists()
    assert folder.exists()
    assert sweep(AGE) == (2, 0)  # the control: the owner's own sweep removes them
