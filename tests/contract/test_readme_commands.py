"""The README's commands work as written: every `hallmark ...` line names a real command and real options,
the `hallmark` it calls is the virtual environment's (activated once, as the README says), every `make`
target exists, and the exit-code table is the CLI's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.cli.exitcodes import ExitCode

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")
ACTIVATE = ". .venv/bin/activate"


def shell_lines() -> list[str]:
    """The lines of the README's sh blocks, continuations joined, comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)  # shell continuations
        joined = re.sub(r"\n {4}(?=\[)", " ", joined)  # a synopsis's options continued on indented lines
        lines += [ln.split("  #", 1)[0].strip() for ln in joined.splitlines() if ln.strip()]
    return lines


def hallmark_lines() -> list[str]:
    out: list[str] = []
    for line in shell_lines():
        out += [part.strip() for part in line.split("&&") if part.strip().startswith("hallmark ")]
    return out


def command_paths(line: str) -> list[list[str]]:
    """The command words of a synopsis (`keys activate|retire ID` -> [keys, activate], [keys, retire])."""
    paths: list[list[str]] = [[]]
    for word in line.split()[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", word):  # verify-bundle is one command
            break
        paths = [[*p, alt] for p in paths for alt in word.split("|")]
    return paths


def options_in(line: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", line))


def help_text(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (
        f"hallmark {' '.join(path)} --help: exit {result.exit_code}\n{result.output}"
    )
    return result.output


def test_the_readme_has_hallmark_commands() -> None:
    assert len(hallmark_lines()) > 20


@pytest.mark.parametrize("line", hallmark_lines())
def test_each_hallmark_command_and_option_exists(line: str) -> None:
    for path in command_paths(line):
        text = help_text(path)
        for option in options_in(line):
            assert re.search(rf"(?<![\w-]){re.escape(option)}\b", text), (
                f"`{line}`: `hallmark {' '.join(path)}` has no option {option}"
            )


def test_the_checker_notices_a_wrong_command_or_option() -> None:
    """Negative control: a misspelled command fails, an unknown option is not found."""
    with pytest.raises(AssertionError):
        help_text(["keys", "rotate"])
    assert not re.search(r"(?<![\w-])--colour\b", help_text(["verify"]))


def test_hallmark_is_called_the_same_way_everywhere() -> None:
    """One convention: activate the virtual environment once, then a bare `hallmark` (not .venv/bin/...)."""
    assert ".venv/bin/hallmark" not in README
    lines = shell_lines()
    first_use = next(i for i, ln in enumerate(lines) if ln.startswith("hallmark "))
    assert ACTIVATE in lines[:first_use], f"`{ACTIVATE}` must come before the first hallmark command"
    assert "VENV ?= .venv" in MAKEFILE  # where `make install` puts the environment the README activates


def test_every_make_target_in_the_readme_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))
    used = set(re.findall(r"`make ([a-z][a-z-]*)", README)) | {
        m for ln in shell_lines() for m in re.findall(r"^make ([a-z][a-z-]*)", ln)
    }
    assert used, "the README names no make target"
    assert used <= targets, f"README names make targets the Makefile lacks: {sorted(used - targets)}"


def test_the_exit_code_table_is_the_clis() -> None:
    table = README.split("Exit codes (one table", 1)[1].split("\n\n", 2)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}
