"""The pure audit core: canonical rows, the RFC 9162 tree, checkpoints, and the verifier's naming of the
first row altered, removed, inserted or reordered -- each beside an untouched control."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from signing.audit import (
    AuditCheckpoint,
    AuditFaultKind,
    LedgerLink,
    LedgerRow,
    bundle_document,
    encode_row,
    extend_frontier,
    inclusion_document,
    inclusion_problem,
    inclusion_proof,
    leaf_hash,
    link_rows,
    merkle_root,
    node_hash,
    read_bundle,
    root_from_frontier,
    sign_checkpoint,
    verify_inclusion,
    verify_ledger,
)
from signing.certs import public_key_sha256
from signing.devpki import dev_name, issue_ca, issue_leaf, key_pem, new_key, pem
from signing.keys import PemKeySigner

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def make_signer(alg: str = "es256", name: str = "Audit Signer") -> PemKeySigner:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue_ca(dev_name("Audit CA"), ca_key)
    key = new_key(alg)
    leaf = issue_leaf(dev_name(name), key, issuer=ca, issuer_key=ca_key)
    return PemKeySigner.from_pem(
        _key_pem(key), pem(leaf) + pem(ca), key_id=name.lower().replace(" ", "-"), algorithm=None
    )


def _key_pem(key: object) -> bytes:
    return key_pem(key)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def signer() -> PemKeySigner:
    return make_signer()


def rows(n: int = 8) -> list[LedgerRow]:
    out = []
    for seq in range(1, n + 1):
        out.append(
            LedgerRow(
                "signature",
                seq,
                {"id": f"row-{seq}", "created_at": T0 + timedelta(seconds=seq), "model": "m", "parent": None},
            )
        )
    out.append(LedgerRow("key_event", 1, {"at": T0, "key_id": "k1", "event": "activated"}))
    return out


def sealed(signer: PemKeySigner, table: list[LedgerRow]) -> tuple[list[LedgerLink], list[AuditCheckpoint]]:
    links, head = link_rows(table, start_position=1, chain_head=bytes(32))
    root = merkle_root([bytes.fromhex(lk.leaf_hash) for lk in links])
    return links, [sign_checkpoint(signer, len(links), root.hex(), head.hex(), T0)]


def trusted(signer: PemKeySigner) -> list[str]:
    return [public_key_sha256(signer.certificate.public_key())]


# --- encoding ----------------------------------------------------------------------------------------------


def test_encoding_is_canonical_across_zones_and_none() -> None:
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    naive = T0.replace(tzinfo=None)
    a = encode_row("signature", 3, {"b": 1, "a": plus_two, "c": None})
    assert a == encode_row("signature", 3, {"a": naive, "b": 1})
    assert a == b'{"fields":{"a":"2026-01-02T03:04:05.123456Z","b":1},"kind":"signature","seq":3}'
    # Negative controls: another seq, kind or value is another encoding.
    assert a != encode_row("signature", 4, {"a": naive, "b": 1})
    assert a != encode_row("key_event", 3, {"a": naive, "b": 1})
    assert a != encode_row("signature", 3, {"a": naive, "b": True})


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    data = encode_row("k", 1, {})
    assert leaf_hash("k", 1, {}) == hashlib.sha256(b"\x00" + data).digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()


# --- tree ------------------------------------------------------------------------------------------------


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, written as the RFC states it."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31])
def test_tree_root_frontier_and_inclusion(n: int) -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(n)]
    root = merkle_root(leaves)
    assert root == reference_root(leaves)
    # Built in two steps from the frontier, as the sealer does.
    half = extend_frontier([], 0, leaves[: n // 2])
    assert root_from_frontier(extend_frontier(half, n // 2, leaves[n // 2 :])) == root
    for i in range(n):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, n, proof, root)
        # Negative controls: another leaf, another index, another root.
        assert not verify_inclusion(hashlib.sha256(b"x").digest(), i, n, proof, root)
        if n > 1:
            assert not verify_inclusion(leaves[i], (i + 1) % n, n, proof, root)
        assert not verify_inclusion(leaves[i], i, n, proof, hashlib.sha256(b"y").digest())


def test_empty_tree_root() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").digest()


# --- verification ------------------------------------------------------------------------------------------


def test_clean_chain_is_intact(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    report = verify_ledger(table, links, cps, trusted_keys=trusted(signer))
    assert report.intact, report.faults
    assert report.sealed == len(table)
    assert report.checkpointed == len(table)
    assert report.unsealed == {}


def test_unsealed_rows_are_reported_not_faults(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    later = LedgerRow("signature", 9, {"id": "row-9"})
    report = verify_ledger([*table, later], links, cps, trusted_keys=trusted(signer))
    assert report.intact
    assert report.unsealed == {"signature": 1}


def kinds(report: object) -> list[tuple[AuditFaultKind, str | None, int | None]]:
    return [(f.kind, f.row_kind, f.seq) for f in report.faults]  # type: ignore[attr-defined]


def test_altered_row_is_named(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    table[3] = replace(table[3], fields={**table[3].fields, "model": "forged"})
    report = verify_ledger(table, links, cps, trusted_keys=trusted(signer))
    assert kinds(report) == [(AuditFaultKind.ALTERED, "signature", 4)]


def test_removed_row_is_named(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    del table[2]
    report = verify_ledger(table, links, cps, trusted_keys=trusted(signer))
    assert kinds(report) == [(AuditFaultKind.REMOVED, "signature", 3)]


def test_swapped_rows_are_reordered(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    table[4], table[5] = replace(table[5], seq=5), replace(table[4], seq=6)
    report = verify_ledger(table, links, cps, trusted_keys=trusted(signer))
    assert kinds(report) == [
        (AuditFaultKind.REORDERED, "signature", 5),
        (AuditFaultKind.REORDERED, "signature", 6),
    ]


def test_row_inserted_in_the_middle_is_named(signer: PemKeySigner) -> None:
    """The forger shifts rows 4.. up by one and puts a row at 4: the first fault is the insert at 4."""
    table = rows()
    links, cps = sealed(signer, table)
    sigs = [r for r in table if r.kind == "signature"]
    shifted = [
        *sigs[:3],
        LedgerRow("signature", 4, {"id": "forged"}),
        *(replace(r, seq=r.seq + 1) for r in sigs[3:]),
    ]
    report = verify_ledger([*shifted, table[-1]], links, cps, trusted_keys=trusted(signer))
    first = report.first
    assert first is not None
    assert (first.kind, first.seq) == (AuditFaultKind.INSERTED, 4)
    assert {f.kind for f in report.faults[1:]} == {AuditFaultKind.REORDERED}


def test_row_inserted_into_a_gap_is_named(signer: PemKeySigner) -> None:
    table = [r for r in rows() if not (r.kind == "signature" and r.seq == 5)]
    links, cps = sealed(signer, table)
    report = verify_ledger([*table, LedgerRow("signature", 5, {"id": "forged"})], links, cps)
    assert kinds(report) == [(AuditFaultKind.INSERTED, "signature", 5)]


def test_first_fault_is_the_earliest_in_the_chain(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    table[6] = replace(table[6], fields={"id": "changed"})
    del table[1]
    report = verify_ledger(table, links, cps, trusted_keys=trusted(signer))
    assert kinds(report) == [
        (AuditFaultKind.REMOVED, "signature", 2),
        (AuditFaultKind.ALTERED, "signature", 7),
    ]


def test_edited_link_breaks_chain_and_checkpoint(signer: PemKeySigner) -> None:
    """A forger who also re-hashes the altered row's link is caught by the chain and the signed root."""
    table = rows()
    links, cps = sealed(signer, table)
    table[3] = replace(table[3], fields={"id": "forged"})
    links[3] = replace(links[3], leaf_hash=table[3].leaf().hex())
    report = verify_ledger(table, links, cps, trusted_keys=trusted(signer))
    assert {f.kind for f in report.faults} == {AuditFaultKind.LINK, AuditFaultKind.CHECKPOINT}


def test_rebuilt_chain_fails_the_checkpoint_signature(signer: PemKeySigner) -> None:
    table = rows()
    _, cps = sealed(signer, table)
    table[3] = replace(table[3], fields={"id": "forged"})
    relinked, _ = link_rows(table, start_position=1, chain_head=bytes(32))
    report = verify_ledger(table, relinked, cps, trusted_keys=trusted(signer))
    assert {f.kind for f in report.faults} == {AuditFaultKind.CHECKPOINT, AuditFaultKind.LINK}
    # ... and a checkpoint re-signed by another key is not trusted.
    forger = make_signer(name="Forger")
    _, forged_cps = sealed(forger, table)
    report = verify_ledger(table, relinked, forged_cps, trusted_keys=trusted(signer))
    assert AuditFaultKind.CHECKPOINT in {f.kind for f in report.faults}
    assert any("not trusted" in f.message for f in report.faults)
    # Control: with the forger's key trusted the forged ledger is self-consistent.
    assert verify_ledger(table, relinked, forged_cps, trusted_keys=trusted(forger)).intact


def test_links_beyond_the_last_checkpoint_are_faults(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    extra = LedgerRow("signature", 9, {"id": "appended"})
    more, _ = link_rows(
        [extra], start_position=len(links) + 1, chain_head=bytes.fromhex(links[-1].chain_hash)
    )
    report = verify_ledger([*table, extra], [*links, *more], cps, trusted_keys=trusted(signer))
    assert [f.kind for f in report.faults] == [AuditFaultKind.LINK]


@pytest.mark.parametrize("alg", ["es256", "es384", "ed25519", "ps256"])
def test_checkpoint_signature_per_algorithm(alg: str) -> None:
    s = make_signer(alg)
    cp = sign_checkpoint(s, 1, "00" * 32, "11" * 32, T0)
    table = [LedgerRow("signature", 1, {})]
    links, head = link_rows(table, start_position=1, chain_head=bytes(32))
    cp = sign_checkpoint(s, 1, merkle_root([bytes.fromhex(links[0].leaf_hash)]).hex(), head.hex(), T0)
    assert verify_ledger(table, links, [cp], trusted_keys=trusted(s)).intact
    tampered = replace(cp, created_at=T0 + timedelta(seconds=1))
    assert not verify_ledger(table, links, [tampered], trusted_keys=trusted(s)).intact


def test_bundle_round_trip(signer: PemKeySigner) -> None:
    import json

    table = rows()
    links, cps = sealed(signer, table)
    document = json.loads(json.dumps(bundle_document(table, links, cps)))
    r, lk, c = read_bundle(document)
    assert verify_ledger(r, lk, c, trusted_keys=trusted(signer)).intact
    document["rows"][0]["fields"]["model"] = "forged"
    r, lk, c = read_bundle(document)
    assert kinds(verify_ledger(r, lk, c, trusted_keys=trusted(signer))) == [
        (AuditFaultKind.ALTERED, "signature", 1)
    ]
    with pytest.raises(ValueError, match="not a"):
        read_bundle({"format": "other"})
    assert isinstance(signer.certificate, x509.Certificate)


def test_inclusion_document_proves_one_row(signer: PemKeySigner) -> None:
    table = rows()
    links, cps = sealed(signer, table)
    leaves = [bytes.fromhex(lk.leaf_hash) for lk in links]
    for position in (1, 4, len(links)):
        document = inclusion_document(table[position - 1], position, leaves, cps[0])
        assert inclusion_problem(document, trusted(signer)) is None
    document = inclusion_document(table[3], 4, leaves, cps[0])
    # Negative controls: a changed row, another position, an untrusted key, a forged root.
    changed = {**document, "row": {**document["row"], "fields": {"id": "other"}}}  # type: ignore[dict-item]
    assert "not in the tree" in (inclusion_problem(changed, trusted(signer)) or "")
    moved = {**document, "leaf_index": 2}
    assert "not in the tree" in (inclusion_problem(moved, trusted(signer)) or "")
    assert "not trusted" in (inclusion_problem(document, trusted(make_signer(name="Other"))) or "")
    cp = dict(document["checkpoint"])  # type: ignore[call-overload]
    cp["root_hash"] = "00" * 32
    assert "signature does not verify" in (
        inclusion_problem({**document, "checkpoint": cp}, trusted(signer)) or ""
    )
