"""The Dockerfile and .dockerignore, checked as text (no Docker engine needed): a slim glibc Python 3.11 base,
a non-root user, no keys or data baked in, the wheel `make wheel` builds, a healthcheck on /healthz, the app
factory as the command. `make lint` runs hadolint on it too; no image is built here."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
MAKEFILE = REPO / "Makefile"
BUILT = ("dist/",)  # made by `make wheel` before `docker build`, never committed
BASE_IMAGE = re.compile(
    r"^(docker\.io/(library/)?)?python:3\.11(\.\d+)?-slim(-bookworm)?(@sha256:[0-9a-f]{64})?$"
)
ROOT_USERS = {"root", "0"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list), self
        assert all(isinstance(v, str) for v in value), self
        return value


def parse(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped (enough for this Dockerfile)."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"
    return instructions


def copy_sources(ins: Instruction) -> list[str]:
    """Source paths of a COPY/ADD, flags (--from, --chown, ...) removed; the last word is the destination."""
    words = ins.exec_form() or shlex.split(ins.args)
    words = [w for w in words if not w.startswith("--")]
    assert len(words) >= 2, f"line {ins.line}: {ins.keyword} needs a source and a destination"
    return [w.removeprefix("./") for w in words[:-1]]


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule, approximately: a pattern matches a path or any of its parent directories."""
    pattern = pattern.strip("/").removeprefix("./")
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("**/"):
        tail = pattern[3:]
        return any(fnmatchcase(c.rsplit("/", 1)[-1], tail) or fnmatchcase(c, tail) for c in candidates)
    return any(fnmatchcase(c, pattern) for c in candidates)


def ignored(path: str) -> bool:
    """Last matching pattern wins; `!pattern` re-includes."""
    result = False
    for pattern in ignore_patterns():
        negated = pattern.startswith("!")
        if _matches(pattern.removeprefix("!"), path):
            result = not negated
    return result


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    assert DOCKERFILE.is_file(), "Dockerfile is missing at the repository root"
    parsed = parse(DOCKERFILE.read_text(encoding="utf-8"))
    assert parsed, "the Dockerfile has no instructions"
    return parsed


def only(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def test_base_image_is_python_311_slim(instructions: list[Instruction]) -> None:
    froms = only(instructions, "FROM")
    assert froms, "no FROM instruction"
    for ins in froms:
        image = next(w for w in ins.args.split() if not w.startswith("--"))
        assert BASE_IMAGE.match(image), (
            f"line {ins.line}: FROM {image}: use python:3.11-slim or python:3.11-slim-bookworm "
            "(Debian, glibc: the c2pa-python wheels do not run on musl/Alpine)"
        )


def test_runs_as_a_non_root_user_before_cmd(instructions: list[Instruction]) -> None:
    cmd_at = max(n for n, i in enumerate(instructions) if i.keyword == "CMD")
    users = [(n, i) for n, i in enumerate(instructions) if i.keyword == "USER"]
    assert users, "no USER instruction: the container would run as root"
    before_cmd = [i for n, i in users if n < cmd_at]
    assert before_cmd, "USER must come before CMD"
    final = users[-1][1]
    user, _, group = final.args.strip().partition(":")
    assert user not in ROOT_USERS, f"line {final.line}: USER {final.args} is root"
    assert group not in ROOT_USERS, f"line {final.line}: USER {final.args} has the root group"


def test_no_keys_data_or_pem_copied_into_the_image(instructions: list[Instruction]) -> None:
    forbidden = re.compile(r"^(keys|var|keys\.example|\.venv|\.git)(/|$)|\.pem$|\.db$")
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        for source in copy_sources(ins):
            assert not forbidden.search(source), (
                f"line {ins.line}: {ins.keyword} {source} puts keys or data in the image"
            )
            assert source not in (".", "*"), f"line {ins.line}: copy named paths, not the whole build context"


def test_copied_sources_exist_and_are_not_ignored(instructions: list[Instruction]) -> None:
    """A COPY of a file that is missing or excluded by .dockerignore fails the build."""
    for ins in only(instructions, "COPY"):
        if any(w.startswith("--from") for w in ins.args.split()):
            continue
        for source in copy_sources(ins):
            if not source.startswith(BUILT):
                assert (REPO / source).exists(), (
                    f"line {ins.line}: COPY {source}: no such path in the repository"
                )
            assert not ignored(source), f"line {ins.line}: COPY {source} is excluded by .dockerignore"


def wheel_name() -> str:
    """The file name setuptools gives the project's (pure Python) wheel."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"


def test_installs_the_wheel_make_wheel_builds(instructions: list[Instruction]) -> None:
    copied = [source for ins in only(instructions, "COPY") for source in copy_sources(ins)]
    assert f"dist/{wheel_name()}" in copied, f"COPY dist/{wheel_name()} (from `make wheel`); copied: {copied}"
    assert "dist/constraints.txt" in copied, "COPY dist/constraints.txt: the tested dependency versions"
    runs = " ".join(i.args for i in only(instructions, "RUN"))
    install = re.search(r"pip install\b[^&;]*", runs)
    assert install, "no pip install"
    assert wheel_name() in install.group(0), f"the image must install the wheel: {install.group(0)}"
    assert re.search(r"(--constraint|-c)\s+\S*constraints\.txt", install.group(0)), install.group(0)
    assert not re.search(r"pip install\b[^&;]*\s\.(\s|$)", runs), "no `pip install .` from a source tree"
    assert "[dev]" not in runs, "dev extras (pytest, ruff, mypy, ...) do not belong in the image"
    for path in ("src/app", "pyproject.toml", "signing", "app"):  # negative control: sources stay out
        assert path not in copied, f"COPY {path}: the image installs the wheel, not sources"


def test_make_wheel_builds_what_the_dockerfile_copies() -> None:
    target = MAKEFILE.read_text(encoding="utf-8").split("\nwheel:", 1)
    assert len(target) == 2, "the Makefile has no `wheel` target"
    recipe = target[1].split("\n\n", 1)[0]
    assert re.search(r"\$\(PIP\) wheel --no-deps --wheel-dir dist \.", recipe), recipe
    assert re.search(r"freeze --exclude-editable > dist/constraints\.txt", recipe), recipe


def test_healthcheck_probes_healthz_with_python(instructions: list[Instruction]) -> None:
    checks = only(instructions, "HEALTHCHECK")
    assert len(checks) == 1, "exactly one HEALTHCHECK"
    args = checks[0].args
    assert not args.upper().startswith("NONE"), "HEALTHCHECK NONE disables the check"
    assert "/healthz" in args, "the healthcheck must probe /healthz"
    for tool in ("curl", "wget"):
        assert tool not in args, f"slim images have no {tool}; probe with python's urllib"
    command = Instruction("CMD", args.partition("CMD")[2].strip(), checks[0].line).exec_form()
    if command is not None and command[:2] == ["python", "-c"]:
        compile(command[2], "<healthcheck>", "exec")  # the probe is valid Python


def test_cmd_runs_the_app_factory(instructions: list[Instruction]) -> None:
    cmds = only(instructions, "CMD")
    assert cmds, "no CMD"
    command = cmds[-1].exec_form()
    assert command is not None, "CMD must use the exec form (signals reach uvicorn, no shell)"
    assert command[0] == "uvicorn", command
    assert "app.main:create_app" in command, command
    assert "--factory" in command, command
    assert "--host" in command, command
    assert command[command.index("--host") + 1] == "0.0.0.0", command


def test_exposes_8000_and_uses_data_dir(instructions: list[Instruction]) -> None:
    exposed = {p.split("/")[0] for i in only(instructions, "EXPOSE") for p in i.args.split()}
    assert "8000" in exposed
    env = " ".join(i.args for i in only(instructions, "ENV"))
    assert re.search(r"\bHALLMARK_DATA_DIR[= ]/data\b", env), "ENV HALLMARK_DATA_DIR=/data"


@pytest.mark.parametrize("path", [".venv", "var", "keys", ".git", "var/hallmark.db", "keys/signing-key.pem"])
def test_dockerignore_excludes(path: str) -> None:
    assert DOCKERIGNORE.is_file(), ".dockerignore is missing at the repository root"
    assert ignored(path), f".dockerignore does not exclude {path}"


def test_dockerignore_excludes_pem_files_anywhere() -> None:
    assert ignored("some/dir/leaked-key.pem")
    assert ignored("leaked.pem")


def test_parser_joins_continuations_and_skips_comments() -> None:
    parsed = parse('# c\nFROM python:3.11-slim\nRUN a \\\n    # inner\n    && b\nCMD ["x", "y"]\n')
    assert [(i.keyword, i.args) for i in parsed] == [
        ("FROM", "python:3.11-slim"),
        ("RUN", "a  && b"),
        ("CMD", '["x", "y"]'),
    ]
    assert parsed[2].exec_form() == ["x", "y"]


HADOLINT = Path(sys.executable).with_name("hadolint")


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.is_file(), f"hadolint not found at {HADOLINT}: install the dev extras (make install)"
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_known_mistake(tmp_path: Path) -> None:
    """Negative control: the linter runs and reports (DL3003: `cd` inside RUN instead of WORKDIR)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim-bookworm\nRUN cd /tmp && echo hi\n", encoding="utf-8")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3003" in result.stdout


def apt_packages(instructions: list[Instruction]) -> dict[str, str | None]:
    """name -> pinned version (None when unpinned) of every `apt-get install` in a RUN."""
    found: dict[str, str | None] = {}
    for ins in only(instructions, "RUN"):
        for command in re.split(r"&&|;", ins.args):
            words = shlex.split(command)
            if words[:2] != ["apt-get", "install"]:
                continue
            for word in words[2:]:
                if not word.startswith("-"):
                    name, _, version = word.partition("=")
                    found[name] = version or None
    return found


def test_installs_the_media_tools_the_soft_binding_runs(instructions: list[Instruction]) -> None:
    # app/media_features.py runs `fpcalc` (Debian's libchromaprint-tools) and `ffmpeg` for the ISCC
    # audio/video codes; an image without them signs audio and video with no soft binding.
    packages = apt_packages(instructions)
    for name in ("ffmpeg", "libchromaprint-tools"):
        assert name in packages, f"the image does not install {name}"
        assert packages[name], f"{name} is not pinned to a version"


def test_apt_package_parser_reads_pins_and_misses_nothing() -> None:
    parsed = parse("FROM x\nRUN apt-get update \\\n && apt-get install -y --no-install-recommends a=1 b \\\n"
                   " && rm -rf /var/lib/apt/lists/*\nRUN echo apt-get install c\n")  # fmt: skip
    assert apt_packages(parsed) == {"a": "1", "b": None}
