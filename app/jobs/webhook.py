"""The optional webhook of a job: when it ends (succeeded, failed, cancelled), its final state is POSTed as
JSON to the `webhook_url` the client gave, signed so the receiver can tell it came from this service.

`Hallmark-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the MAC is keyed with
HALLMARK_WEBHOOK_SECRET over `<t>.<raw body>` (the Stripe-style scheme: the timestamp is covered, so a
receiver rejects old deliveries replayed later). Delivery goes through the URL-fetch policy (public
addresses only, or HALLMARK_URL_ALLOWLIST hosts; the address is pinned after the check), is tried once,
and its outcome is logged; it never changes the job. Off unless HALLMARK_WEBHOOKS=true.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from app.runtime import HALLMARK_VERSION
from app.settings import Settings
from app.store.jobs import Job
from app.url_fetch import FetchPolicy, post
from app.url_policy import AllowList
from signing import ConfigError, HallmarkError

log = logging.getLogger("hallmark")

HEADER = "Hallmark-Signature"
MIN_SECRET_CHARS = 32


def check_settings(settings: Settings) -> None:
    """At start-up: webhooks on need a secret worth the name."""
    if not settings.webhooks:
        return
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"HALLMARK_WEBHOOKS=true needs HALLMARK_WEBHOOK_SECRET of at least {MIN_SECRET_CHARS} "
            "characters.",
            hint="Generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
        )


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def payload(job: Job) -> bytes:
    body = {"job_id": job.id, "state": job.state}
    if job.state == "succeeded":
        body["result"] = f"/v1/jobs/{job.id}/result"
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def deliver(settings: Settings, job: Job) -> int | None:
    """POST the job's final state; the receiver's status, or None when it could not be delivered."""
    if not settings.webhooks or not job.webhook_url or settings.webhook_secret is None:
        return None
    body = payload(job)
    headers = {
        "Content-Type": "application/json",
        HEADER: signature(settings.webhook_secret.get_secret_value(), int(time.time()), body),
    }
    policy = FetchPolicy(
        allowlist=AllowList(settings.url_allowlist),
        timeout=settings.webhook_timeout,
        max_redirects=0,
        max_bytes=0,
        user_agent=f"Hallmark/{HALLMARK_VERSION} (webhook)",
    )
    try:
        status = post(job.webhook_url, body, headers, policy)
    except HallmarkError as exc:
        log.warning("webhook of job %s not delivered: %s", job.id[:8], exc.message)
        return None
    log.info("webhook of job %s delivered: HTTP %d", job.id[:8], status)
    return status
