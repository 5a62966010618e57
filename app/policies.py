"""Per-API-key policies on POST /v1/sign (set with `hallmark apikey policy`, kept as api_key.policy ledger
events, app/store/apikeys.py): allowed digital source types and formats (403), a request rate (429 +
Retry-After, counted in the database so it holds across service processes) and a monthly quota of
signatures (429 + Retry-After until the next calendar month, UTC, counted from the ledger).

A policy change reaches a process within HALLMARK_API_KEY_CACHE_SECONDS (the API-key cache); the counters
have no cache."""

from __future__ import annotations

import math
from typing import IO

from app.store.apikeys import ApiKey, KeyPolicy
from app.store.key_limits import KeyLimits
from signing import (
    SUPPORTED_MEDIA,
    GenerationInfo,
    InvalidMetadataError,
    PolicyRefusedError,
    QuotaExceededError,
    RateLimitedError,
    expand_source_type,
    sniff,
)


def check_rate(limits: KeyLimits, key: ApiKey | None) -> None:
    """Counts this request against the key's rate; raises `RateLimitedError` past it."""
    if key is None or key.policy.rate_per_minute is None:
        return
    wait = limits.take(key.id, key.policy.rate_per_minute)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise RateLimitedError(
            f"This API key may make {key.policy.rate_per_minute} sign requests per minute; retry in "
            f"{seconds} s.",
            details={"retry_after_seconds": seconds, "rate_per_minute": key.policy.rate_per_minute},
        )


def check_request(limits: KeyLimits, key: ApiKey | None, info: GenerationInfo, upload: IO[bytes]) -> None:
    """Refuses what the key's policy does not allow: the source type, the format, the month's quota."""
    if key is None:
        return
    policy = key.policy
    if policy.source_types is not None and info.digital_source_type not in policy.source_types:
        allowed = ", ".join(_short(t) for t in sorted(policy.source_types)) or "none"
        raise PolicyRefusedError(
            f"This API key may not sign the digital source type {_short(info.digital_source_type)}; it "
            f"may sign: {allowed}.",
            details={"allowed_source_types": sorted(policy.source_types)},
        )
    if policy.formats is not None:
        media = sniff(upload)
        if media.mime not in policy.formats:
            allowed = ", ".join(sorted(policy.formats)) or "none"
            raise PolicyRefusedError(
                f"This API key may not sign {media.mime} files; it may sign: {allowed}.",
                details={"allowed_formats": sorted(policy.formats)},
            )
    if policy.monthly_quota is not None:
        used = limits.signed_this_month(key.id)
        if used >= policy.monthly_quota:
            wait = limits.seconds_to_next_month()
            raise QuotaExceededError(
                f"This API key's monthly quota of {policy.monthly_quota} signatures is used up ({used} this "
                "calendar month, UTC); it renews on the first of next month.",
                details={"retry_after_seconds": wait, "monthly_quota": policy.monthly_quota, "used": used},
            )


def _short(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def parse_source_types(values: list[str]) -> frozenset[str]:
    """IPTC codes or URIs -> full URIs; raises `InvalidMetadataError` naming an unknown one."""
    out = set()
    for value in values:
        uri = expand_source_type(value)
        if uri is None:
            raise InvalidMetadataError(f"{value!r} is not an IPTC digital source type.")
        out.add(uri)
    return frozenset(out)


def parse_formats(values: list[str]) -> frozenset[str]:
    """Media types (image/jpeg) or extensions (jpg, jpeg, png, mp4, ...) -> media types."""
    out = set()
    for value in values:
        name = value.strip().lower().lstrip(".")
        found = [m.mime for m in SUPPORTED_MEDIA if name in (m.mime, m.extension, m.mime.split("/", 1)[1])]
        if not found:
            known = ", ".join(m.mime for m in SUPPORTED_MEDIA)
            raise InvalidMetadataError(f"{value!r} is not a supported format; use one of: {known}.")
        out.update(found)
    return frozenset(out)


def describe(policy: KeyPolicy) -> str:
    """One line for `hallmark apikey list`."""
    parts = []
    if policy.source_types is not None:
        parts.append("source-types=" + ",".join(_short(t) for t in sorted(policy.source_types)))
    if policy.formats is not None:
        parts.append("formats=" + ",".join(sorted(policy.formats)))
    if policy.rate_per_minute is not None:
        parts.append(f"rate={policy.rate_per_minute}/min")
    if policy.monthly_quota is not None:
        parts.append(f"quota={policy.monthly_quota}/month")
    return " ".join(parts) or "no policy"
