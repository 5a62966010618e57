"""Rotation drill: a real two-worker server keeps signing at a steady rate while the active key is rotated
several times through the CLI (tests/e2e/rotation.py). No request may fail, every output must verify trusted,
and the certificate in each output must be the one of the key its ledger row names."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

import signing
from app.trust import load_trust_dir
from tests.e2e.rotation import SIGNS_PER_KEY, run_drill
from tests.e2e.server import hallmark_env, key_lines, serve

pytestmark = pytest.mark.e2e

ROTATIONS = 3


def test_rotation_under_load_loses_nothing(tmp_path: Path, interop_dir: Path) -> None:
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    data_dir = tmp_path / "var"
    env = hallmark_env(data_dir)
    poll = {"HALLMARK_KEYRING_POLL_SECONDS": "0.5"}
    with serve(data_dir, tmp_path / "logs", "--dev", "--workers", "2", **poll) as server:
        server.wait_until_ready()
        [api_key] = key_lines(server)
        drill = run_drill(server, env, api_key, jpeg, ROTATIONS)
        trust = load_trust_dir(data_dir / "trust")

    failures = [(r.status, r.body[:200]) for r in drill.results if r.status != 200]
    assert not failures, f"{len(failures)} of {len(drill.results)} requests failed: {failures[:3]}"
    assert len(drill.activated) == ROTATIONS + 1

    engine = signing.Engine(signing.EngineConfig(trust=trust))
    used: list[str] = []
    for result in drill.results:
        report = signing.inspect_asset(engine, io.BytesIO(result.body))
        assert report.outcome is signing.Outcome.TRUSTED, report.summary
        assert report.manifest_id == result.manifest_id
        row = drill.ledger[result.manifest_id]
        assert row["key_id"] == result.key_id  # the response header names the key the ledger names
        key = drill.keyring[row["key_id"]]
        # The certificate inside the output is the one of the key the ledger names.
        assert row["certificate_sha256"] == key["certificate_sha256"]
        assert report.signer is not None
        assert f"CN={report.signer.common_name}" in key["subject"]
        used.append(row["key_id"])

    for key_id in drill.activated:
        assert used.count(key_id) >= SIGNS_PER_KEY, f"{key_id} signed {used.count(key_id)} outputs"
    assert used[-1] == drill.activated[-1]
    # Keys only move forward: once a newer key signs, an older one never signs again (per worker, the
    # switch happens once); allow the two workers to switch a poll interval apart.
    order = {k: i for i, k in enumerate(drill.activated)}
    regressions = sum(1 for a, b in itertools.pairwise(used) if order[b] < order[a])
    assert regressions <= 2 * ROTATIONS, f"keys went backwards {regressions} times: {used}"
    assert all(drill.keyring[k]["state"] == "retired" for k in drill.activated[:-1])
    assert drill.keyring[drill.activated[-1]]["state"] == "active"
