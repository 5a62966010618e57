"""Database engine and migrations. SQLite (WAL) by default; PostgreSQL 15+ by URL (driver: psycopg 3)."""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.files import exclusive_lock, make_private_dir

# Alembic takes about a quarter of a second to import. A database that is at the newest revision already
# (every CLI command after the first, every worker after the first) is recognised without it; alembic loads
# only to migrate, or when the revisions cannot be read plainly.
if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x48414C4C  # "HALL": the PostgreSQL advisory lock held while migrating
# PostgreSQL hands out sequence numbers before commit, so a row can commit after one with a higher seq. Every
# ledger append holds this advisory lock shared until it commits; the sealer takes it exclusively for a
# moment to learn which seqs are final (app/store/audit.py), and never seals past them.
APPEND_LOCK_KEY = 0x4C454447  # "LEDG"
LEDGER_TABLES = frozenset({"signatures", "key_events", "ledger_events"})


# The database holds the ledger and API key names and hashes: owner-only, like the keys.
DB_FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        file = _sqlite_file(url)
        if file is not None:
            make_private_dir(file.parent)
            _private_file(file)
        engine = sa.create_engine(url, connect_args={"timeout": 15, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.close()
            if file is not None:
                _restrict_side_files(file)

        return engine
    engine = sa.create_engine(driver_url(url), pool_pre_ping=True)
    _guard_ledger_appends(engine)
    return engine


def _guard_ledger_appends(engine: sa.Engine) -> None:
    """Every INSERT into a ledger table, whichever code path issues it, first takes the append lock shared
    for its transaction (PostgreSQL; SQLite's single writer commits in seq order already)."""

    @sa.event.listens_for(engine, "before_execute")
    def _append_lock(conn: sa.Connection, clause: Any, *_args: Any) -> None:
        if isinstance(clause, sa.Insert) and clause.table.name in LEDGER_TABLES:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": APPEND_LOCK_KEY})


def driver_url(url: str) -> str:
    """`postgresql://user@host:port/db` (or `postgres://`) gets the driver the service ships, psycopg 3; a URL
    that names its driver keeps it."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for in-memory and `file:` URI databases."""
    database = sa.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _private_file(file: Path) -> None:
    """Create the database file owner-only before SQLite does (it would use 0644); SQLite then gives its
    -wal and -shm files the database file's mode. An existing file readable by others is tightened."""
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE)
    except FileExistsError:
        _restrict(file)
        return
    try:
        os.fchmod(fd, DB_FILE_MODE)  # whatever the umask
    finally:
        os.close(fd)


def _restrict_side_files(file: Path) -> None:
    """SQLite's side files, made by an older version or before the database was tightened."""
    for suffix in SQLITE_SIDE_FILES:
        _restrict(file.with_name(file.name + suffix))


def _restrict(path: Path) -> None:
    try:
        info = path.stat()
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.getuid():
            os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    except FileNotFoundError:
        pass  # not made yet, or removed by a checkpoint meanwhile


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the note at the imports

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Worker processes start together; only one may migrate an SQLite file at a time."""
    if not url.startswith("sqlite:///"):
        yield
        return
    with exclusive_lock(Path(url.split("///", 1)[1] + ".migrate.lock")):
        yield


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    if _at_plain_head(engine):
        return
    from alembic import command  # noqa: PLC0415 - see the note at the imports

    url = engine.url.render_as_string(hide_password=False)
    with _migration_lock(url), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Workers start together: one migrates, the others wait here and then find the schema current.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def is_current(engine: sa.Engine) -> bool:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - see the note at the imports
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == script.get_current_head()


_REVISION = re.compile(r"""^revision(?:\s*:[^=\n]*)?\s*=\s*["']([^"'\n]+)["']\s*$""", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"""^down_revision(?:\s*:[^=\n]*)?\s*=\s*(?:None|["']([^"'\n]+)["'])\s*$""", re.MULTILINE
)


@functools.cache
def plain_head() -> str | None:
    """The newest revision of Hallmark's migrations, read without alembic (None: ask alembic)."""
    return head_of(MIGRATIONS / "versions")


def head_of(versions: Path) -> str | None:
    """The newest revision, read from the migration files without alembic: each file must name exactly one
    `revision` and one `down_revision` (a string or None) in the plain form, and they must make one line
    with one head. Anything else (a merge, a branch, a form this does not read) gives None: ask alembic."""
    revisions: dict[str, str | None] = {}
    for file in sorted(versions.glob("*.py")):
        text = file.read_text(encoding="utf-8")
        revision = _REVISION.findall(text)
        down = _DOWN_REVISION.findall(text)
        if len(revision) != 1 or len(down) != 1 or revision[0] in revisions:
            return None
        revisions[revision[0]] = down[0] or None
    parents = [down for down in revisions.values() if down is not None]
    heads = set(revisions) - set(parents)
    if len(heads) != 1 or len(set(parents)) != len(parents) or not set(parents) <= set(revisions):
        return None
    return heads.pop()


def _at_plain_head(engine: sa.Engine) -> bool:
    """Whether the database is at the newest revision already, answered without alembic (False whenever
    that cannot be told plainly: no version table yet, an unreadable revision list)."""
    head = plain_head()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return False
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    except sa.exc.SQLAlchemyError:
        return False
    return rows == [head]
