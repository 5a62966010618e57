"""On PostgreSQL the service's role cannot UPDATE or DELETE ledger rows (`hallmark audit pg-grants`): a real
server (tests/postgres.py), the schema migrated by its owner, the service run as the restricted role signs,
seals and authenticates, and every UPDATE or DELETE of a ledger row by that role is refused by PostgreSQL."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.exc import ProgrammingError

from app.main import create_app
from app.settings import Settings
from app.store.audit import Sealer
from app.store.db import make_engine, migrate
from app.store.grants import APPEND_ONLY, service_role_grants
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*
from tests.postgres import SUPERUSER, PostgresServer


def refused(engine: sa.Engine, statement: str) -> bool:
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    except ProgrammingError as exc:
        return isinstance(exc.orig, psycopg.errors.InsufficientPrivilege)
    return False


def test_the_service_role_appends_to_the_ledger_but_cannot_change_it(
    postgres: PostgresServer, tmp_path: Path, pki: Pki, interop_dir: Path
) -> None:
    owner_url = postgres.new_database()
    owner = make_engine(owner_url)
    migrate(owner)
    role = f"svc_{uuid.uuid4().hex[:12]}"
    with owner.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        for statement in service_role_grants(role):
            conn.execute(sa.text(statement))
    service_url = owner_url.replace(f"//{SUPERUSER}@", f"//{role}@")
    assert service_url != owner_url

    settings = Settings(data_dir=make_data_dir(tmp_path / "var", pki), database_url=service_url)
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    with TestClient(create_app(settings)) as client:
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        assert rt.db.url.username == role
        _, token = rt.api_keys.create("grants", {"sign"})
        signed = client.post(
            "/v1/sign",
            headers={"Authorization": f"Bearer {token}"},
            data={"model_name": "m", "model_version": "1"},
            files={"file": ("a.jpg", jpeg, "image/jpeg")},
        )
        assert signed.status_code == 200, signed.text
        # A job too: the row and its Procrastinate task, then the sign by Procrastinate's worker.
        job = client.post(
            "/v1/jobs",
            headers={"Authorization": f"Bearer {token}"},
            data={"model_name": "m", "model_version": "1"},
            files={"file": ("a.jpg", jpeg, "image/jpeg")},
        )
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 60
        state = job.json()["state"]
        while state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            state = client.get(job.headers["Location"], headers={"Authorization": f"Bearer {token}"}).json()[
                "state"
            ]
        assert state == "succeeded"
        # The sealer works under the grants too (the app's own run or this one, both as the role): the API
        # key's creation event and the signature are in the chain.
        result = Sealer(rt.db).seal(rt.sign_ctx.signer.key)
        assert result.tree_size == 3
        assert Sealer(rt.db).status().unsealed == 0
        service = rt.db
        for table in APPEND_ONLY:
            column = {"ledger_links": "position", "ledger_checkpoint_timestamps": "token"}.get(table, "seq")
            assert refused(service, f"UPDATE {table} SET {column} = {column}"), table
            assert refused(service, f"DELETE FROM {table}"), table
        # API-key state is read from the ledger's events: its table's rows may change, its events may not.
        assert refused(service, "UPDATE ledger_events SET data = '{}'")

    # The control: the owner (a superuser) may do what the service's role may not; it is the grant that
    # refuses, not a missing row or a trigger.
    with owner.begin() as conn:
        assert conn.execute(sa.text("UPDATE signatures SET model_name = model_name")).rowcount == 2
    owner.dispose()


def test_a_hostile_role_name_is_refused() -> None:
    with pytest.raises(ValueError, match="role name"):
        service_role_grants("x; DROP TABLE signatures")
