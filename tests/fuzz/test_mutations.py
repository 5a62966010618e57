"""The hostile-input corpus, fast tier: 1000 structure-aware mutations of signed JPEG, PNG, MP4, WAV and PDF
files, plus box/chunk/segment storms and deep nesting, each sent through POST /v1/verify (a share also through
POST /v1/sign). Never a 500; every status one the OpenAPI document lists for the operation; every error a
problem+json with a message. The long tier is `python -m bench.mutations` (a real server, 10,000 mutants).

Signed inputs are made in the session by the real engine through the app. Audio and video recovery runs
fpcalc/ffmpeg (~0.2 s a file on this machine), so three in four MP4/WAV mutants go to an app with recovery off
and the fourth to one with it on; images and PDFs always go to the one with recovery on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import make_data_dir
from tests.fuzz.inputs import SIGN_FORM, sign_all
from tests.fuzz.mutations import FORMATS, Mutant, corpus, find_store, mutant
from tests.pki import TestPki as Pki

SEED = 942
COUNT = 1000
SIGN_SHARE = 10  # every tenth mutant is also sent to /v1/sign
OUTCOMES = {"trusted", "valid_untrusted", "invalid", "none", "recovered"}


def _app(tmp: Path, pki: Pki, *, recovery: bool) -> Settings:
    return Settings(
        data_dir=make_data_dir(tmp, pki),
        default_provider="Example AI",
        public_rate_limit=0,
        recovery=recovery,
    )


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[dict[str, TestClient]]:
    full = _app(tmp_path_factory.mktemp("fuzz-full"), pki, recovery=True)
    lean = _app(tmp_path_factory.mktemp("fuzz-lean"), pki, recovery=False)
    # raise_server_exceptions=False: an unhandled error comes back as the 500 a real client would see.
    with (
        TestClient(create_app(full), raise_server_exceptions=False) as a,
        TestClient(create_app(lean), raise_server_exceptions=False) as b,
    ):
        yield {"full": a, "lean": b}


@pytest.fixture(scope="module")
def token(clients: dict[str, TestClient]) -> str:
    _, secret = clients["full"].app.state.runtime.api_keys.create("fuzz", {"sign"})  # type: ignore[attr-defined]
    return str(secret)


@pytest.fixture(scope="module")
def signed(clients: dict[str, TestClient], token: str) -> dict[str, bytes]:
    return sign_all(clients["full"].post, token)


@pytest.fixture(scope="module")
def documented(clients: dict[str, TestClient]) -> dict[str, set[int]]:
    paths = clients["full"].app.openapi()["paths"]  # type: ignore[attr-defined]
    return {op: {int(s) for s in paths[f"/v1/{op}"]["post"]["responses"]} for op in ("verify", "sign")}


def problems_with(response: Any, allowed: set[int]) -> list[str]:
    """What is wrong with an answer to a hostile file (empty: nothing)."""
    status = response.status_code
    found = []
    if status >= 500 and status != 503:
        found.append(f"status {status}")
    if status not in allowed:
        found.append(f"status {status} is not documented for the operation")
    if status == 200:
        return found
    if response.headers.get("content-type") != "application/problem+json":
        return [*found, f"content-type {response.headers.get('content-type')!r}"]
    try:
        body = response.json()
    except json.JSONDecodeError:
        return [*found, "body is not JSON"]
    if body.get("status") != status or not str(body.get("type", "")).startswith("/problems/"):
        found.append(f"problem body does not match: {body}")
    if len(str(body.get("detail", "")).strip()) < 10 or not str(body.get("title", "")).strip():
        found.append(f"problem without a message: {body}")
    return found


def verify(client: TestClient, m: Mutant) -> Any:
    return client.post("/v1/verify", files={"file": (f"{m.name.split('/')[0]}.bin", m.data)})


def client_for(clients: dict[str, TestClient], index: int, m: Mutant) -> TestClient:
    fmt = m.name.split("/")[0]
    if fmt in ("mp4", "wav") and index % 4:
        return clients["lean"]
    return clients["full"]


def test_the_signed_inputs_are_trusted_before_mutation(
    clients: dict[str, TestClient], signed: dict[str, bytes]
) -> None:
    """The positive control: every format verifies as trusted unmutated, so the corpus mutates real
    credentials, and the manifest store the JUMBF operators work on is where they look for it."""
    for fmt in FORMATS:
        response = verify(clients["full"], Mutant(f"{fmt}/original", signed[fmt]))
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "trusted", (fmt, response.json()["summary"])
        start, end = find_store(signed[fmt])
        assert signed[fmt][start + 4 : start + 8] == b"jumb"
        assert end - start > 1000


def test_the_corpus_is_seeded_and_mutates(signed: dict[str, bytes]) -> None:
    first = [mutant(signed, SEED, i).data for i in range(50)]
    assert [mutant(signed, SEED, i).data for i in range(50)] == first
    assert [mutant(signed, SEED + 1, i).data for i in range(50)] != first
    changed = sum(mutant(signed, SEED, i).data != signed[FORMATS[i % len(FORMATS)]] for i in range(500))
    assert changed >= 475, changed  # a few operators can land as no-ops (a box swapped with itself)


def test_no_mutant_breaks_verify(
    clients: dict[str, TestClient], signed: dict[str, bytes], documented: dict[str, set[int]]
) -> None:
    failures: list[str] = []
    seen: Counter[tuple[str, str]] = Counter()
    total = 0
    for index, m in enumerate(corpus(signed, COUNT, SEED)):
        response = verify(client_for(clients, index, m), m)
        failures += [f"{m.name}: {p}" for p in problems_with(response, documented["verify"])]
        fmt = m.name.split("/")[0]
        if response.status_code == 200:
            outcome = response.json().get("outcome")
            if outcome not in OUTCOMES:
                failures.append(f"{m.name}: outcome {outcome!r}")
            seen[fmt, str(outcome)] += 1
        else:
            seen[fmt, str(response.status_code)] += 1
        total += 1
    assert not failures, "\n".join(failures[:50])
    assert total >= COUNT + 30  # the seeded mutants plus the storms and nesting cases
    # The mutants reach the engine's validation: every format has mutants it reads and finds altered, and
    # mutants it refuses as malformed.
    for fmt in FORMATS:
        assert seen[fmt, "invalid"] > 20, (fmt, seen)
        assert seen[fmt, "422"] > 5, (fmt, seen)


def test_no_mutant_breaks_sign(
    clients: dict[str, TestClient], signed: dict[str, bytes], token: str, documented: dict[str, set[int]]
) -> None:
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for index in range(0, COUNT, SIGN_SHARE):
        m = mutant(signed, SEED, index)
        response = clients["full"].post(
            "/v1/sign",
            files={"file": ("upload.bin", m.data)},
            data=SIGN_FORM,
            headers={"Authorization": f"Bearer {token}"},
        )
        failures += [f"{m.name}: {p}" for p in problems_with(response, documented["sign"])]
        statuses[response.status_code] += 1
    assert not failures, "\n".join(failures[:50])
    assert statuses[200] > 10, statuses  # mutants the engine still reads are signed again
    assert statuses[422] > 10, statuses  # and the others refused
