"""The outer shape of an RFC 3161 reply, checked before the engine sees it (pure DER walking)."""

from __future__ import annotations


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """One DER header at `at`: (tag, start of the value, end of the value). Raises ValueError."""
    if at + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[at], data[at + 1]
    start = at + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or start + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("truncated")
    return tag, start, end


def reply_problem(body: bytes) -> str | None:
    """Why `body` is not a granted RFC 3161 TimeStampResp, or None if its outer shape is right.

    Only the envelope is checked (the engine validates the token): SEQUENCE { PKIStatusInfo SEQUENCE {
    status INTEGER 0|1, ... }, timeStampToken SEQUENCE } with nothing after it. A reply that fails here is
    turned into a 502, so the engine reports a TSA failure instead of a vague decode error.
    """
    try:
        tag, start, end = _tlv(body, 0)
        if tag != 0x30 or end != len(body):
            return "reply is not a DER TimeStampResp"
        tag, status_start, status_end = _tlv(body, start)
        if tag != 0x30:
            return "reply has no PKIStatusInfo"
        tag, int_start, int_end = _tlv(body, status_start)
        if tag != 0x02 or not 0 < int_end - int_start <= 4 or int_end > status_end:
            return "reply has no PKIStatus"
        status = int.from_bytes(body[int_start:int_end], "big", signed=True)
        if status not in (0, 1):
            return f"the TSA refused the request (PKIStatus {status})"
        if status_end >= end:
            return "reply has no timeStampToken"
        tag, _, _ = _tlv(body, status_end)
    except ValueError as exc:
        return f"reply is not DER ({exc})"
    if tag != 0x30:
        return "reply has no timeStampToken"
    return None
