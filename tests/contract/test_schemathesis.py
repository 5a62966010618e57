"""schemathesis against the committed openapi/openapi.json, every operation, on the ASGI app in-process:
its examples, coverage (boundary and negative values of every parameter, undeclared methods) and fuzzing
phases, with positive and negative data and a valid API key. Every default check passes: no 5xx, only
documented statuses and content types, responses that match their schemas, invalid data refused, valid
data accepted, undeclared methods answered 405 with `Allow`.

Positive-data acceptance is not asked where a schema cannot say what valid data is: an uploaded file
(any bytes match `format: binary`, few are media; POST /v1/sign, /v1/jobs, /v1/verify,
/sbr/v1/matches/byContent), a job id (any string; only the ids of this key's jobs are found),
and the C2PA Soft Binding Resolution API's lookups, which type `alg` and `value` as plain strings and
answer 400 to an algorithm the service does not resolve or a value not in its format. Their refusals must
be problem+json with a documented status (the other checks) and, for the lookups, one of those problems.

Bounded: MAX_EXAMPLES fuzzed cases per operation, no shrinking, derandomised (same cases every run).
The app is made at import (schemathesis parametrises at collection) with a fresh test PKI.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis import Case
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.main import create_app
from app.schemas import FeedbackIn
from app.settings import Settings
from tests.conftest import make_data_dir
from tests.pki import make_test_pki

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 15
SBR_LOOKUPS = ("/sbr/v1/matches/byBinding", "/sbr/v1/matches/byContent")
UPLOADS = ("/v1/sign", "/v1/jobs", "/v1/verify", "/sbr/v1/matches/byContent")
# A job id is any string to the schema; one that names no job of this API key is 404, as documented.
JOB_PATHS = ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result")
SBR_REFUSALS = {
    "/problems/unsupported-algorithm",
    "/problems/invalid-query",
    "/problems/invalid-request",
    "/problems/http-400",  # a body that is not JSON
}

_TMP = Path(tempfile.mkdtemp(prefix="hallmark-schemathesis-"))
APP = create_app(
    Settings(
        data_dir=make_data_dir(_TMP / "var", make_test_pki(_TMP / "pki")),
        default_provider="Example AI",
        public_rate_limit=0,
    )
)
schema = schemathesis.openapi.from_path(REPO / "openapi" / "openapi.json")
schema.app = APP
schema.config.generation.update(max_examples=MAX_EXAMPLES, no_shrink=True, deterministic=True)


@pytest.fixture(scope="module")
def token() -> Iterator[str]:
    with TestClient(APP) as client:  # runs the lifespan: keys, trust, the store
        _, secret = client.app.state.runtime.api_keys.create("schemathesis", {"sign"})  # type: ignore[attr-defined]
        yield str(secret)


FEEDBACK = "/v1/feedback"


@schema.parametrize()
def test_the_api_keeps_its_documented_contract(case: Case[Any], token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    if case.path in SBR_LOOKUPS or case.path in UPLOADS or case.path in JOB_PATHS:
        response = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
        if case.path in SBR_LOOKUPS and response.status_code == 400:
            assert response.json()["type"] in SBR_REFUSALS, response.text
    elif case.path == FEEDBACK:
        # A body over the endpoint's byte limit is refused with 413 before it is parsed (schemathesis counts
        # only 400/422-like statuses as refusals); anything it accepted must be valid feedback.
        response = case.call_and_validate(headers=headers, excluded_checks=[negative_data_rejection])
        if response.status_code < 300:
            FeedbackIn.model_validate(case.body)
    else:
        case.call_and_validate(headers=headers)
