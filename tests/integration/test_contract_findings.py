"""Regressions for what schemathesis found (tests/contract/test_schemathesis.py): a 405 must name every
method its path allows, and feedback's `verdict_correct` is a JSON boolean, not a number coerced to one."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_405_names_every_method_of_its_path(client: TestClient) -> None:
    # A path with two routes (GET and POST): Starlette's own Allow named only the first route's methods,
    # and the problem handler dropped the header altogether.
    answer = client.options("/sbr/v1/matches/byBinding", params={"alg": "io.iscc.v0", "value": "x"})
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["allow"] == "GET, POST"
    put = client.put("/v1/verify")
    assert put.headers.get("allow") == "POST", (put.status_code, put.text)
    assert client.get("/v1/verify").headers["allow"] == "POST"
    assert "allow" not in client.get("/healthz").headers  # the negative control: only a 405 carries it


def test_feedback_takes_a_boolean_not_a_number(client: TestClient) -> None:
    refused = client.post("/v1/feedback", json={"outcome": "none", "verdict_correct": 0})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "verdict_correct"
    accepted = client.post("/v1/feedback", json={"outcome": "none", "verdict_correct": False})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["verdict_correct"] is False


def test_an_unparsable_body_is_a_documented_400(client: TestClient) -> None:
    boundary = "a0bb50ff508394dc5a7eccd4f7cd47f7"
    answer = client.post(
        "/v1/verify",
        content=f"--{boundary}\r\n-2424--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    assert "400" in paths["/v1/verify"]["post"]["responses"]
    assert "400" in paths["/v1/feedback"]["post"]["responses"]
    well_formed = client.post("/v1/feedback", json={"outcome": "none", "verdict_correct": True})
    assert well_formed.status_code == 201  # the negative control
