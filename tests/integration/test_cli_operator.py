"""What an operator and a script rely on, through the real `hallmark` console script: the data directory is
the same wherever the command runs, `--version` names it, exit codes per verdict, JSON errors with --json,
a port in use is one line, the doctor's exit code follows its findings, whole-sentence help."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from app.cli.exitcodes import VERIFY_EXIT, ExitCode
from tests.conftest import make_data_dir
from tests.media_samples import flip_jpeg_scan_byte

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect a `TestPki` class
    from tests.pki import TestPki

HALLMARK = Path(sys.executable).parent / "hallmark"
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60


def run(*args: str, cwd: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    """`hallmark ARGS` in `cwd` with no HALLMARK_* setting but those in `env`."""
    assert HALLMARK.is_file(), f"console script not found at {HALLMARK}: install the project (make install)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_") and k != "XDG_DATA_HOME"}
    clean.update(COLUMNS="80", NO_COLOR="1", TERM="dumb", **env)
    return subprocess.run(
        [str(HALLMARK), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean,
        timeout=TIMEOUT_S,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def make_jpeg(path: Path) -> Path:
    Image.new("RGB", (32, 24), (200, 40, 90)).save(path, "JPEG", quality=90)
    return path


def snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")} if root.exists() else {}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A user's home: with no HALLMARK_DATA_DIR the data lives under it, wherever the command runs."""
    path = tmp_path / "home"
    path.mkdir()
    return path


# --- one data directory, wherever the command runs ------------------------------------------------------


def test_version_names_the_per_user_data_dir_from_any_directory(home: Path, tmp_path: Path) -> None:
    expected = home / ".local" / "share" / "hallmark"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outputs = [ok(run("--version", cwd=cwd, HOME=str(home))).stdout for cwd in (REPO, elsewhere, "/")]
    assert outputs[0] == outputs[1] == outputs[2]
    assert re.fullmatch(
        rf"hallmark \d+\.\d+\.\d+\S*\ndata directory: {re.escape(str(expected))}\n", outputs[0]
    )


def test_a_relative_data_dir_is_made_absolute(tmp_path: Path) -> None:
    out = ok(run("--version", cwd=tmp_path, HALLMARK_DATA_DIR="rel/var")).stdout
    assert f"data directory: {tmp_path / 'rel' / 'var'}\n" in out
    other = ok(run("--version", cwd=tmp_path, HALLMARK_DATA_DIR=str(tmp_path / "set"))).stdout
    assert f"data directory: {tmp_path / 'set'}\n" in other  # the variable wins over the default


def test_sign_in_the_repository_verify_from_root_is_trusted(home: Path, tmp_path: Path) -> None:
    """The newcomer's path: keys and sign from the checkout, verify from `/`: one PKI, one answer."""
    data = home / ".local" / "share" / "hallmark"
    repo_var = snapshot(REPO / "var")  # an older checkout's ./var must stay untouched
    ok(run("keys", "init", "--dev", cwd=REPO, HOME=str(home)))
    picture = make_jpeg(tmp_path / "picture.jpg")
    signed = tmp_path / "picture.signed.jpg"
    ok(run("sign", str(picture), "--model-name", "m", "--model-version", "1", cwd=REPO, HOME=str(home)))
    chain = (data / "keys" / "signing-chain.pem").read_bytes()

    for cwd in ("/", tmp_path):
        result = run("verify", "--json", str(signed), cwd=cwd, HOME=str(home))
        assert result.returncode == ExitCode.OK, result.stdout + result.stderr
        assert json.loads(result.stdout)["outcome"] == "trusted"
    assert (data / "keys" / "signing-chain.pem").read_bytes() == chain, "a second PKI was created"
    assert snapshot(REPO / "var") == repo_var, "the CLI wrote into ./var of the checkout"
    assert not (tmp_path / "var").exists(), "a stray data directory in the working directory"
    # Negative control: another user (another home) has no trust in this PKI.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    other = run("verify", "--json", str(signed), cwd="/", HOME=str(stranger))
    assert other.returncode == ExitCode.VALID_UNTRUSTED, other.stdout + other.stderr


# --- exit codes per verdict, JSON always ---------------------------------------------------------------


@pytest.fixture(scope="module")
def verdict_files(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verdicts")
    data = make_data_dir(root / "var", pki)
    plain = make_jpeg(root / "plain.jpg")
    signed = root / "signed.jpg"
    ok(
        run(
            "sign", str(plain), "--model-name", "m", "--model-version", "1", "-o", str(signed),
            cwd=root, HALLMARK_DATA_DIR=str(data),
        )
    )  # fmt: skip
    tampered = root / "tampered.jpg"
    tampered.write_bytes(flip_jpeg_scan_byte(signed.read_bytes()))
    text = root / "notes.txt"
    text.write_text("not media\n")
    return {"data": data, "plain": plain, "signed": signed, "tampered": tampered, "text": text}


@pytest.mark.parametrize(
    ("name", "trusting", "outcome", "code"),
    [
        ("signed", True, "trusted", 0),
        ("signed", False, "valid_untrusted", 3),
        ("tampered", True, "invalid", 4),
        ("plain", True, "none", 5),
    ],
)
def test_verify_exit_code_per_verdict(
    verdict_files: dict[str, Path], tmp_path: Path, name: str, trusting: bool, outcome: str, code: int
) -> None:
    data = verdict_files["data"] if trusting else tmp_path / "no-trust"
    result = run("verify", "--json", str(verdict_files[name]), cwd=tmp_path, HALLMARK_DATA_DIR=str(data))
    assert result.returncode == code, result.stdout + result.stderr
    assert json.loads(result.stdout)["outcome"] == outcome
    text = run("verify", str(verdict_files[name]), cwd=tmp_path, HALLMARK_DATA_DIR=str(data))
    assert text.returncode == code
    assert re.search(rf"^outcome:\s+{outcome}$", text.stdout, re.MULTILINE), text.stdout


def test_the_exit_code_table_is_distinct_per_verdict() -> None:
    codes = [int(c) for c in VERIFY_EXIT.values()]
    assert len(set(codes)) == len(codes) == 4
    assert not {int(ExitCode.ERROR), int(ExitCode.USAGE)} & set(codes)


def test_a_hallmark_error_with_json_is_json_on_stdout(verdict_files: dict[str, Path], tmp_path: Path) -> None:
    env = {"HALLMARK_DATA_DIR": str(verdict_files["data"])}
    result = run("verify", "--json", str(verdict_files["text"]), cwd=tmp_path, **env)
    assert result.returncode == ExitCode.ERROR
    body = json.loads(result.stdout)
    assert body["exit_code"] == 1
    assert body["error"]["code"] == "unsupported-media-type"
    assert body["error"]["message"]
    # Negative control: without --json the error is text on stderr and stdout stays empty.
    text = run("verify", str(verdict_files["text"]), cwd=tmp_path, **env)
    assert text.returncode == ExitCode.ERROR
    assert text.stdout == ""
    assert text.stderr.startswith("error: ")


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "--json", "/nonexistent/file.jpg"),
        ("verify", "--json", "--no-such-option", "x"),
        ("keys", "doctor", "--json", "--chain", "/etc/hostname"),
        ("keys", "list", "--json", "--limit", "3"),
    ],
    ids=["missing-file", "unknown-option", "chain-without-key", "unknown-option-keys"],
)
def test_a_usage_error_with_json_is_json_on_stdout_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(*args, cwd=tmp_path, HALLMARK_DATA_DIR=str(tmp_path / "var"))
    assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert body["exit_code"] == 2
    assert body["error"]["message"]
    plain = run(*[a for a in args if a != "--json"], cwd=tmp_path, HALLMARK_DATA_DIR=str(tmp_path / "var"))
    assert plain.returncode == ExitCode.USAGE
    assert plain.stdout == ""  # negative control: without --json, usage goes to stderr as text
    assert "error" in plain.stderr.lower()


# --- serve: a port in use -----------------------------------------------------------------------------


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "var"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("serve", "--dev", "--port", str(port), cwd=tmp_path, HALLMARK_DATA_DIR=str(data))
    assert result.returncode == ExitCode.ERROR
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [
        f"error: port {port} on 127.0.0.1 is already in use; stop what holds it or choose another --port."
    ]
    assert not data.exists(), "nothing is created before the port is known to be free"


def test_serve_on_a_free_port_announces_the_data_dir(tmp_path: Path, pki: TestPki) -> None:
    """Negative control of the above: on a free port the server starts; its start-up line and each worker's
    ready line name the data directory."""
    from tests.e2e.server import SERVING_LINE, serve

    data = make_data_dir(tmp_path / "var", pki)
    with serve(data, tmp_path / "logs") as server:
        server.wait_until_ready()
        line = server.wait_for_line(SERVING_LINE)
        assert line.startswith(f"Serving on {server.base_url} with data directory {data} "), line
        server.stop()
        assert f"ready: data directory {data}," in server.stderr_path.read_text(), server.output()


# --- keys doctor: findings decide the exit code -------------------------------------------------------


@pytest.fixture
def non_dev_trust_dir(tmp_path: Path, pki: TestPki) -> Path:
    """The test key with a trust profile production accepts (the unrelated, non-development root)."""
    data = make_data_dir(tmp_path / "var", pki)
    (data / "trust" / "test-root.pem").unlink()
    shutil.copyfile(pki.other_root, data / "trust" / "other.pem")
    return data


def test_doctor_dev_only_findings_are_warnings_in_development(
    non_dev_trust_dir: Path, tmp_path: Path
) -> None:
    env = {"HALLMARK_DATA_DIR": str(non_dev_trust_dir)}
    dev = run("keys", "doctor", cwd=tmp_path, HALLMARK_ENV="development", **env)
    assert dev.returncode == ExitCode.OK, dev.stdout + dev.stderr
    assert dev.stdout.startswith(f"Data directory: {non_dev_trust_dir}\n")
    assert not re.search(r"^\s*ERROR ", dev.stdout, re.MULTILINE), dev.stdout
    assert re.search(r"^\s*WARN\s+policy: C2PA policy", dev.stdout, re.MULTILINE), dev.stdout

    prod = run("keys", "doctor", cwd=tmp_path, HALLMARK_ENV="production", **env)
    assert prod.returncode == ExitCode.ERROR, prod.stdout + prod.stderr
    assert re.search(r"^\s*ERROR policy: C2PA policy", prod.stdout, re.MULTILINE), prod.stdout

    report = json.loads(
        run("keys", "doctor", "--json", cwd=tmp_path, HALLMARK_ENV="production", **env).stdout
    )
    assert report["data_dir"] == str(non_dev_trust_dir)
    assert "error" in {f["severity"] for f in report["profile_findings"]}


def test_doctor_exits_non_zero_on_an_engine_error_in_development(tmp_path: Path) -> None:
    data = tmp_path / "var"
    ok(run("keys", "init", "--dev", cwd=tmp_path, HALLMARK_DATA_DIR=str(data)))
    ca = data / "keys" / "dev-ca"
    chain, key = ca / "intermediate-ca.pem", ca / "intermediate-ca.key.pem"  # a CA certificate as the leaf
    bad = run(
        "keys", "doctor", "--chain", str(chain), "--key", str(key), cwd=tmp_path, HALLMARK_DATA_DIR=str(data)
    )
    assert bad.returncode == ExitCode.ERROR
    assert re.search(r"^\s*ERROR ca-flag", bad.stdout, re.MULTILINE), bad.stdout


# --- help: whole sentences ----------------------------------------------------------------------------

GROUPS = ((), ("keys",), ("apikey",), ("audit",), ("trust",))


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.?!])\s", " ".join(text.split()), maxsplit=1)[0]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: " ".join(g) or "hallmark")
def test_help_lists_each_command_with_its_whole_first_sentence(
    tmp_path: Path, group: tuple[str, ...]
) -> None:
    from typer.main import get_command

    from app.cli import app

    command = get_command(app)
    for name in group:
        command = command.commands[name]  # type: ignore[attr-defined]
    listing = " ".join(ok(run(*group, "--help", cwd=tmp_path)).stdout.partition("Commands:")[2].split())
    assert listing, "no command list"
    assert "..." not in listing
    assert "…" not in listing
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        sentence = first_sentence(sub.help or "")
        assert f"{name} {sentence}" in listing, f"{name}: {sentence!r} not whole in:\n{listing}"


def test_help_of_every_command_keeps_whole_words(tmp_path: Path) -> None:
    pages = ["serve", "sign", "verify", "keys doctor", "keys generate", "trust add", "apikey create"]
    for page in pages:
        text = ok(run(*page.split(), "--help", cwd=tmp_path)).stdout
        assert "…" not in text, f"{page}: {text}"
    sign_help = " ".join(ok(run("sign", "--help", cwd=tmp_path)).stdout.split())
    assert "default HALLMARK_DEFAULT_PROVIDER." in sign_help
    assert "--training-mining-constraint" in sign_help


# --- sign: the training/mining preference, as on the API ----------------------------------------------


def training_mining(path: Path) -> dict[str, object] | None:
    """The active manifest's cawg.training-mining assertion, read by the engine."""
    import signing

    with path.open("rb") as fh:
        reading = signing.Engine(signing.EngineConfig()).read("image/jpeg", fh)
    manifest = reading.store["manifests"][reading.store["active_manifest"]]
    found = [a["data"] for a in manifest["assertions"] if a["label"] == "cawg.training-mining"]
    return found[0] if found else None


def test_sign_writes_the_training_mining_preference(tmp_path: Path, pki: TestPki) -> None:
    env = {"HALLMARK_DATA_DIR": str(make_data_dir(tmp_path / "var", pki))}
    picture = make_jpeg(tmp_path / "picture.jpg")
    base = ("sign", str(picture), "--model-name", "m", "--model-version", "1", "-o")
    constrained = tmp_path / "constrained.jpg"
    ok(
        run(
            *base, str(constrained), "--training-mining", "constrained",
            "--training-mining-constraint", "research only", cwd=tmp_path, **env,
        )
    )  # fmt: skip
    data = training_mining(constrained)
    assert data is not None
    entries = list(data["entries"].values())  # type: ignore[attr-defined]
    assert {e["use"] for e in entries} == {"constrained"}
    assert {e.get("constraint_info") for e in entries} == {"research only"}

    plain = tmp_path / "plain.jpg"
    ok(run(*base, str(plain), cwd=tmp_path, **env))
    assert training_mining(plain) is None  # negative control: no option, no assertion

    refused = run(*base, str(tmp_path / "x.jpg"), "--training-mining", "maybe", cwd=tmp_path, **env)
    assert refused.returncode == ExitCode.ERROR
    assert "training_mining" in refused.stderr
