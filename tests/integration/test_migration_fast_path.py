"""`migrate` recognises a database at the newest revision without importing alembic (a quarter of a second
every CLI command and worker would pay), and still migrates, through alembic, whatever is not there yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from app.store.db import alembic_config, head_of, is_current, make_engine, migrate, plain_head

MIGRATE_AND_REPORT = """
import sys
from app.store.db import make_engine, migrate
engine = make_engine(sys.argv[1])
migrate(engine)
print("alembic" in sys.modules)
"""


def alembic_loaded_by_migrate(url: str) -> bool:
    argv = [sys.executable, "-c", MIGRATE_AND_REPORT, url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {"True": True, "False": False}[done.stdout.strip()]


def test_the_plain_head_is_alembics_head() -> None:
    alembic_head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert plain_head() == alembic_head
    assert plain_head() is not None


def test_a_current_database_is_recognised_without_alembic_and_an_old_one_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert alembic_loaded_by_migrate(url) is True  # control: a new database is migrated by alembic
    assert alembic_loaded_by_migrate(url) is False  # now current: no alembic
    engine = make_engine(url)
    try:
        assert is_current(engine)
        command.downgrade(alembic_config(url), "0003")
        assert not is_current(engine)
        assert alembic_loaded_by_migrate(url) is True  # behind: alembic runs the missing migrations
        assert is_current(engine)
        migrate(engine)
        assert is_current(engine)
    finally:
        engine.dispose()


def write(versions: Path, name: str, text: str) -> None:
    versions.mkdir(exist_ok=True)
    (versions / name).write_text(text, encoding="utf-8")


def test_head_of_a_plain_line_of_revisions(tmp_path: Path) -> None:
    write(tmp_path, "a.py", 'revision = "0001"\ndown_revision = None\n')
    write(tmp_path, "b.py", 'revision: str = "0002"\ndown_revision: str | None = "0001"\n')
    assert head_of(tmp_path) == "0002"


@pytest.mark.parametrize(
    ("second", "why"),
    [
        ('revision = "0002"\ndown_revision = None\n', "two roots, two heads"),
        ('revision = "0002"\ndown_revision = ("0001", "0003")\n', "a merge"),
        ('revision = "0002"  # a comment\ndown_revision = "0001"\n', "a form it does not read"),
        ('down_revision = "0001"\n', "no revision"),
        ('revision = "0001"\ndown_revision = None\n', "a repeated revision"),
        ('revision = "0002"\ndown_revision = "0009"\n', "a parent that is not there"),
    ],
)
def test_head_of_gives_up_on_anything_but_a_plain_line(tmp_path: Path, second: str, why: str) -> None:
    write(tmp_path, "a.py", 'revision = "0001"\ndown_revision = None\n')
    write(tmp_path, "b.py", second)
    assert head_of(tmp_path) is None, why
