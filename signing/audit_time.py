"""RFC 3161 timestamps on audit checkpoints (pure: bytes in, findings out).

A checkpoint's signature proves who sealed the ledger, not when. A timestamp authority's token over that
signature does: whoever later holds the signing key cannot rewrite the ledger and pass the new checkpoints
off as older than their token. The service asks for the token when it seals (app/sealing.py); the
verifier here checks that the token covers this checkpoint's signature and, given the TSA's trust anchors,
that the TSA signed it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

# Bounds what the sealer accepts from a TSA (a granted reply with its chain is a few KB).
MAX_TIMESTAMP_BYTES = 64 * 1024


def timestamp_query(signature_b64: str) -> bytes:
    """The DER TimeStampReq for a checkpoint signature (SHA-256 imprint, a nonce, the TSA's certificate
    asked for so that the token is verifiable offline)."""
    builder = TimestampRequestBuilder().data(base64.b64decode(signature_b64))
    builder = builder.hash_algorithm(HashAlgorithm.SHA256).nonce(nonce=True).cert_request(cert_request=True)
    return builder.build().as_bytes()


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """One DER header at `at`: (tag, start of the value, end of the value); ValueError if malformed."""
    if at + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[at], data[at + 1]
    start = at + 2
    if first >= 0x80:
        count = first & 0x7F
        if not 1 <= count <= 4 or start + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    else:
        length = first
    if start + length > len(data):
        raise ValueError("truncated")
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, header start, end) of each element between `start` and `end`."""
    out = []
    at = start
    while at < end:
        tag, _, stop = _tlv(data, at)
        out.append((tag, at, stop))
        at = stop
    return out


def der_ordered(reply: bytes) -> bytes:
    """`reply` with the token's certificate SET in DER order. OpenSSL's `ts` (and TSAs built on it) write the
    certificates in chain order, which strict DER parsers refuse; the set is outside what the TSA signs
    (RFC 5652 5.4), so sorting it changes nothing that is verified. Anything unexpected: `reply` as is."""
    try:
        _, resp_start, resp_end = _tlv(reply, 0)
        token = _children(reply, resp_start, resp_end)[1]  # TimeStampResp: status, timeStampToken
        _, ci_start, ci_end = _tlv(reply, token[1])
        explicit = _children(reply, ci_start, ci_end)[1]  # ContentInfo: contentType, [0] content
        _, sd_outer, _ = _tlv(reply, explicit[1])
        _, sd_start, sd_end = _tlv(reply, sd_outer)  # SignedData SEQUENCE
        for tag, at, _ in _children(reply, sd_start, sd_end):
            if tag == 0xA0:  # [0] IMPLICIT CertificateSet
                _, start, end = _tlv(reply, at)
                certs = sorted(reply[a:b] for _, a, b in _children(reply, start, end))
                return reply[:start] + b"".join(certs) + reply[end:]
    except (ValueError, IndexError):
        pass
    return reply


def timestamp_reply_problem(reply: bytes, signature_b64: str) -> str | None:
    """Why `reply` is not a granted token over this signature (None when it is). Used by the sealer before
    it stores a reply; the TSA's signature itself is checked by `timestamp_finding` with the TSA's roots."""
    if len(reply) > MAX_TIMESTAMP_BYTES:
        return f"the reply is larger than {MAX_TIMESTAMP_BYTES} bytes"
    try:
        response = decode_timestamp_response(der_ordered(reply))
        if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
            return f"the timestamp authority refused the request (PKIStatus {response.status})"
        imprint = response.tst_info.message_imprint.message
    except (ValueError, VerificationError) as exc:
        return f"the reply is not an RFC 3161 timestamp response ({exc})"
    if imprint != _sha256(signature_b64):
        return "the token does not cover this checkpoint's signature"
    return None


@dataclass(frozen=True)
class TimestampFinding:
    """What a checkpoint's token says: the time, whether the TSA was checked against a trust anchor, and
    why it is not acceptable (None when it is)."""

    time: datetime | None
    tsa_checked: bool
    problem: str | None


def timestamp_finding(
    token_b64: str, signature_b64: str, tsa_roots: Sequence[x509.Certificate] | None
) -> TimestampFinding:
    """Check a stored token against its checkpoint signature. Without `tsa_roots` only the binding is
    checked (the token names this signature); the time is then the TSA's claim, not yet trusted."""
    try:
        reply = base64.b64decode(token_b64, validate=True)
    except ValueError:
        return TimestampFinding(None, False, "its timestamp is not base64")
    problem = timestamp_reply_problem(reply, signature_b64)
    if problem is not None:
        return TimestampFinding(None, False, f"its timestamp is not valid: {problem}")
    response = decode_timestamp_response(der_ordered(reply))
    when = response.tst_info.gen_time
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not tsa_roots:
        return TimestampFinding(when, False, None)
    builder = VerifierBuilder()
    for root in tsa_roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(response, _sha256(signature_b64))
    except (ValueError, VerificationError) as exc:
        return TimestampFinding(when, False, f"its timestamp is not signed by a trusted TSA ({exc})")
    return TimestampFinding(when, True, None)


def _sha256(signature_b64: str) -> bytes:
    return sha256(base64.b64decode(signature_b64)).digest()
