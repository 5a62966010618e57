"""The optional webhook of a job: when it ends (succeeded, failed, cancelled, or failed because the process
running it stopped too often), its final state is POSTed as JSON to the `webhook_url` the client gave, signed
so the receiver can tell it came from this service.

`Hallmark-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the MAC is keyed with
HALLMARK_WEBHOOK_SECRET over `<t>.<raw body>` (the Stripe-style scheme: the timestamp is covered, so a
receiver rejects old deliveries replayed later). Every attempt is signed afresh (a new `t`, the same body).
Delivery goes through the URL-fetch policy (public addresses only, or HALLMARK_URL_ALLOWLIST hosts; the
address is pinned after the check, no redirects). Off unless HALLMARK_WEBHOOKS=true.

Retries: a connection error, a timeout, a 5xx or a 429 is tried again, up to HALLMARK_WEBHOOK_ATTEMPTS
attempts in all, after HALLMARK_WEBHOOK_RETRY_BASE_SECONDS doubled after each failure (a 429's or 503's
Retry-After is honoured instead), every wait capped at HALLMARK_WEBHOOK_RETRY_MAX_SECONDS. Any other answer
(2xx, 3xx, another 4xx) and a destination the policy refuses end the delivery. Deliveries run on the
`WebhookSender`'s own threads: neither a request nor the job runner waits for a receiver, nor for a retry.
Outcomes are logged; they never change the job. Pending retries are dropped when the service stops.
"""

from __future__ import annotations

import collections
import email.utils
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from app.runtime import HALLMARK_VERSION
from app.settings import Settings
from app.store.jobs import Job
from app.url_fetch import FetchPolicy, post
from app.url_policy import AllowList
from signing import ConfigError, HallmarkError, UrlFetchDisabledError, UrlRefusedError

log = logging.getLogger("hallmark")

HEADER = "Hallmark-Signature"
MIN_SECRET_CHARS = 32
SENDER_THREADS = 4  # receivers answered at once; more deliveries wait their turn, none waits on the runner


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


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: the receiver's status (None: no answer), and whether to try again after
    `retry_after` seconds (the receiver's own wish, None: the backoff decides)."""

    status: int | None
    retry: bool
    retry_after: float | None = None


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def attempt(settings: Settings, job_id: str, url: str, body: bytes) -> Attempt:
    """POST the body once, signed now."""
    assert settings.webhook_secret is not None
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
        answer = post(url, body, headers, policy)
    except (UrlRefusedError, UrlFetchDisabledError) as exc:
        log.warning("webhook of job %s refused: %s", job_id[:8], exc.message)
        return Attempt(None, retry=False)
    except HallmarkError as exc:  # connection failed or timed out
        log.info("webhook of job %s not delivered: %s", job_id[:8], exc.message)
        return Attempt(None, retry=True)
    status = answer.status
    if status == 429 or status >= 500:
        wait = retry_after_seconds(answer.retry_after, time.time()) if status in (429, 503) else None
        return Attempt(status, retry=True, retry_after=wait)
    return Attempt(status, retry=False)


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    job_id: str = field(compare=False)
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    attempts: int = field(default=0, compare=False)


class WebhookSender:
    """Deliveries and their retries, on threads of their own: `send()` only queues."""

    def __init__(self, settings: Settings, threads: int = SENDER_THREADS):
        self.settings = settings
        self._due: list[_Delivery] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"hallmark-webhook-{i}", daemon=True)
            for i in range(threads)
        ]
        self._started = False
        # The last deliveries' (job id, attempts, last status or None), newest last.
        self.outcomes: collections.deque[tuple[str, int, int | None]] = collections.deque(maxlen=1000)

    @property
    def enabled(self) -> bool:
        return self.settings.webhooks and self.settings.webhook_secret is not None

    def send(self, job: Job) -> None:
        """Queue the webhook of a job that has just ended (nothing when it has none)."""
        if not self.enabled or not job.webhook_url:
            return
        with self._wake:
            if self._stopping:
                log.warning("webhook of job %s not sent: the service is stopping", job.id[:8])
                return
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()
            delivery = _Delivery(time.monotonic(), next(self._seq), job.id, job.webhook_url, payload(job))
            heapq.heappush(self._due, delivery)
            self._wake.notify()

    def delay(self, failures: int, wish: float | None) -> float:
        """The wait before the next attempt after `failures` failed ones: the receiver's Retry-After, else
        the base doubled per failure; capped either way."""
        cap = self.settings.webhook_retry_max_seconds
        if wish is not None:
            return min(cap, wish)
        return min(cap, self.settings.webhook_retry_base_seconds * math.pow(2, failures - 1))

    def stop(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            dropped = len(self._due)
            self._due.clear()
            self._wake.notify_all()
        if dropped:
            log.warning("%d webhook deliveries dropped: the service is stopping", dropped)
        if self._started:  # an attempt under way ends within HALLMARK_WEBHOOK_TIMEOUT; wait `timeout` in all
            deadline = time.monotonic() + timeout
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _next(self) -> _Delivery | None:
        with self._wake:
            while not self._stopping:
                if self._due:
                    wait = self._due[0].due - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._due)
                    self._wake.wait(wait)
                else:
                    self._wake.wait()
            return None

    def _work(self) -> None:
        while (delivery := self._next()) is not None:
            try:
                self._deliver(delivery)
            except Exception:
                log.exception("webhook of job %s: delivery failed", delivery.job_id[:8])

    def _deliver(self, delivery: _Delivery) -> None:
        delivery.attempts += 1
        result = attempt(self.settings, delivery.job_id, delivery.url, delivery.body)
        short = delivery.job_id[:8]
        if result.retry and delivery.attempts < self.settings.webhook_attempts:
            wait = self.delay(delivery.attempts, result.retry_after)
            log.info(
                "webhook of job %s: attempt %d failed (%s); next in %.3g s",
                short, delivery.attempts, result.status or "no answer", wait,
            )  # fmt: skip
            with self._wake:
                if self._stopping:
                    return
                delivery.due = time.monotonic() + wait
                heapq.heappush(self._due, delivery)
                self._wake.notify()
            return
        self.outcomes.append((delivery.job_id, delivery.attempts, result.status))
        if result.status is not None and 200 <= result.status < 300:
            log.info("webhook of job %s delivered: HTTP %d (try %d)", short, result.status, delivery.attempts)
        else:
            log.warning(
                "webhook of job %s not delivered after %d attempt(s): %s",
                short, delivery.attempts, result.status or "no answer",
            )  # fmt: skip
