"""A throw-away PostgreSQL server for tests: Debian's PostgreSQL binaries, a cluster in a temporary directory,
listening on 127.0.0.1 only (a free port) with trust authentication for its one local superuser, stopped at
the end of the session. Each test gets a database of its own. PostgreSQL refuses to run as root, so under
root the server runs as the `postgres` system user (made by Debian's package). A missing PostgreSQL fails the
test with the install hint: it never skips."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

INSTALL_HINT = "PostgreSQL is not installed ({missing}): run `make test-deps` (installs postgresql)."
SUPERUSER = "hallmark"
START_TIMEOUT_S = 30


def pg_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian keeps them in /usr/lib/postgresql/<major>/bin)."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        pytest.fail(INSTALL_HINT.format(missing="no /usr/lib/postgresql/*/bin/initdb"), pytrace=False)
    return versions[-1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin: Path
    _names = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        init = self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--no-sync", "--locale=C.UTF-8",
        )  # fmt: skip
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}", pytrace=False)
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        started = self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip
        if started.returncode != 0:
            log_file = self.root / "server.log"
            log = log_file.read_text(errors="replace") if log_file.exists() else ""
            pytest.fail(
                f"PostgreSQL did not start:\n{started.stdout}\n{started.stderr}\n{log}", pytrace=False
            )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The URL the service is given (it picks its driver, psycopg 3, itself)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"test_{next(self._names)}_{os.getpid()}"
        dsn = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_postgres() -> PostgresServer:
    """Under root the cluster lives in a directory of its own under the system's temporary directory: the
    `postgres` user must be able to reach it, and pytest's temporary directories are private to root."""
    root = Path(tempfile.mkdtemp(prefix="hallmark-postgres-"))
    server = PostgresServer(root, _free_port(), pg_bin())
    server.start()
    return server
