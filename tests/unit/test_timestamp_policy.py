"""The timestamp policy without the engine: circuit breaker states, the guard's decisions, reply checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.tsa import CircuitBreaker, RelayError, TsaRelay, reply_problem
from app.tsa.upstream import MAX_REPLY_BYTES
from signing.errors import ConfigError, MalformedAssetError, TimestampAuthorityError
from signing.timestamp import BreakerState, TimestampGuard, TimestampOutcome, TimestampPolicy
from tests.waiting import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call: mypy does not narrow it across breaker calls


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(threshold=3, open_seconds=30, clock=clock)


# --- circuit breaker ------------------------------------------------------------------------------------


def test_breaker_starts_closed_and_allows(breaker: CircuitBreaker) -> None:
    assert state(breaker) is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))
    assert breaker.retry_after() == 0


def test_breaker_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    breaker.failure()
    breaker.failure()
    assert state(breaker) is BreakerState.CLOSED
    breaker.failure()
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == 30


def test_a_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


def test_open_breaker_becomes_half_open_and_lets_one_probe_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        breaker.failure()
    clock.advance(29.9)
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.advance(0.1)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everybody else waits for the probe
    assert not breaker.allow()


def test_successful_probe_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.advance(30)
    assert breaker.allow()
    breaker.success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow()
    assert breaker.allow()


def test_failed_probe_reopens_for_a_full_interval(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.advance(31)
    assert breaker.allow()
    breaker.failure()  # one failure is enough in half-open state
    assert state(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == 30
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_released_probe_frees_the_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.advance(30)
    assert breaker.allow()
    breaker.release()
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_a_lost_probe_expires(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.advance(30)
    assert breaker.allow()  # this caller never reports back
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_breaker_rejects_nonsense_configuration() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError, match="open_seconds"):
        CircuitBreaker(open_seconds=0)


def test_breaker_is_thread_safe() -> None:
    breaker = CircuitBreaker(threshold=1000, open_seconds=30)

    def hammer() -> None:
        for _ in range(100):
            breaker.failure()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.consecutive_failures == 800
    assert state(breaker) is BreakerState.CLOSED


def test_only_one_of_many_concurrent_callers_probes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.advance(30)
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        allowed = breaker.allow()
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


# --- the guard ------------------------------------------------------------------------------------------


class FakeSigns:
    """`with_tsa` / `without_tsa` fakes that count calls; `with_tsa` fails while `tsa_down`."""

    def __init__(self) -> None:
        self.tsa_down = False
        self.other_error: Exception | None = None
        self.with_calls = 0
        self.without_calls = 0

    def with_tsa(self) -> str:
        self.with_calls += 1
        if self.other_error is not None:
            raise self.other_error
        if self.tsa_down:
            raise TimestampAuthorityError("tsa down", details={"engine": "HTTP 502"})
        return "stamped"

    def without_tsa(self) -> str:
        self.without_calls += 1
        return "plain"


@pytest.fixture
def fakes() -> FakeSigns:
    return FakeSigns()


def run(guard: TimestampGuard, fakes: FakeSigns) -> tuple[str, TimestampOutcome]:
    return guard.sign(fakes.with_tsa, fakes.without_tsa)


def test_guard_timestamps_when_the_tsa_works(breaker: CircuitBreaker, fakes: FakeSigns) -> None:
    for policy in TimestampPolicy:
        assert run(TimestampGuard(policy, breaker), fakes) == ("stamped", TimestampOutcome(timestamped=True))
    assert fakes.without_calls == 0


def test_require_raises_on_tsa_failure_and_counts_it(breaker: CircuitBreaker, fakes: FakeSigns) -> None:
    guard = TimestampGuard(TimestampPolicy.REQUIRE, breaker)
    fakes.tsa_down = True
    with pytest.raises(TimestampAuthorityError) as raised:
        run(guard, fakes)
    assert raised.value.details["reason"] == "tsa_failed"
    assert raised.value.details["engine"] == "HTTP 502"  # the cause is kept
    assert raised.value.details["retry_after_seconds"] >= 1
    assert breaker.consecutive_failures == 1
    assert fakes.without_calls == 0


def test_best_effort_falls_back_on_tsa_failure(breaker: CircuitBreaker, fakes: FakeSigns) -> None:
    guard = TimestampGuard(TimestampPolicy.BEST_EFFORT, breaker)
    fakes.tsa_down = True
    assert run(guard, fakes) == ("plain", TimestampOutcome(timestamped=False, reason="tsa_failed"))
    assert breaker.consecutive_failures == 1


def test_open_breaker_skips_the_tsa(breaker: CircuitBreaker, fakes: FakeSigns, clock: FakeClock) -> None:
    require = TimestampGuard(TimestampPolicy.REQUIRE, breaker)
    best_effort = TimestampGuard(TimestampPolicy.BEST_EFFORT, breaker)
    fakes.tsa_down = True
    for _ in range(3):
        with pytest.raises(TimestampAuthorityError):
            run(require, fakes)
    assert fakes.with_calls == 3
    clock.advance(10)
    with pytest.raises(TimestampAuthorityError) as raised:
        run(require, fakes)
    assert raised.value.details == {"reason": "breaker_open", "retry_after_seconds": 20}
    assert run(best_effort, fakes) == ("plain", TimestampOutcome(timestamped=False, reason="breaker_open"))
    assert fakes.with_calls == 3  # the TSA was not asked again


def test_recovery_through_half_open(breaker: CircuitBreaker, fakes: FakeSigns, clock: FakeClock) -> None:
    guard = TimestampGuard(TimestampPolicy.BEST_EFFORT, breaker)
    fakes.tsa_down = True
    for _ in range(3):
        run(guard, fakes)
    assert state(breaker) is BreakerState.OPEN
    clock.advance(30)
    fakes.tsa_down = False
    assert run(guard, fakes) == ("stamped", TimestampOutcome(timestamped=True))
    assert state(breaker) is BreakerState.CLOSED


def test_retry_after_rounds_up_and_is_never_zero(
    breaker: CircuitBreaker, fakes: FakeSigns, clock: FakeClock
) -> None:
    guard = TimestampGuard(TimestampPolicy.REQUIRE, breaker)
    fakes.tsa_down = True
    for _ in range(3):
        with pytest.raises(TimestampAuthorityError):
            run(guard, fakes)
    clock.advance(29.5)
    with pytest.raises(TimestampAuthorityError) as raised:
        run(guard, fakes)
    assert raised.value.details["retry_after_seconds"] == 1


def test_other_errors_propagate_and_say_nothing_about_the_tsa(
    breaker: CircuitBreaker, fakes: FakeSigns, clock: FakeClock
) -> None:
    guard = TimestampGuard(TimestampPolicy.BEST_EFFORT, breaker)
    fakes.other_error = MalformedAssetError("bad file")
    with pytest.raises(MalformedAssetError):
        run(guard, fakes)
    assert breaker.consecutive_failures == 0
    assert fakes.without_calls == 0  # a bad file is not retried without a timestamp
    # ...and a probe that fails for another reason hands the probe slot back
    for _ in range(3):
        breaker.failure()
    clock.advance(30)
    with pytest.raises(MalformedAssetError):
        run(guard, fakes)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_policy_values_are_the_setting_strings() -> None:
    assert TimestampPolicy("require") is TimestampPolicy.REQUIRE
    assert TimestampPolicy("best_effort") is TimestampPolicy.BEST_EFFORT


# --- reply envelope -------------------------------------------------------------------------------------


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def ts_reply(status: int, token: bytes | None = b"\x06\x09" + b"\x2a" * 9) -> bytes:
    info = der(0x30, der(0x02, bytes([status])))
    return der(0x30, info + (der(0x30, token) if token is not None else b""))


@pytest.mark.parametrize("status", [0, 1])
def test_granted_reply_passes(status: int) -> None:
    assert reply_problem(ts_reply(status)) is None
    assert reply_problem(ts_reply(status, token=b"\x00" * 3000)) is None  # long-form lengths


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "not DER"),
        (b"<html>busy</html>", "not DER"),
        (b"\x30\x03\x02\x01\x07not a timestamp", "not a DER TimeStampResp"),
        (ts_reply(0) + b"x", "not a DER TimeStampResp"),
        (ts_reply(2, token=None), "refused the request (PKIStatus 2)"),
        (ts_reply(0, token=None), "no timeStampToken"),
        (der(0x30, der(0x02, b"\x00")), "no PKIStatusInfo"),
        (b"\x30\x85\x01\x02\x03\x04\x05", "not DER"),
    ],
)
def test_bad_replies_are_named(body: bytes, problem: str) -> None:
    found = reply_problem(body)
    assert found is not None
    assert problem in found


# --- relay against a fake upstream (no engine, no openssl) ----------------------------------------------


class FakeUpstream:
    """An HTTP server answering every POST with `body` (status 200) after an optional `delay`."""

    def __init__(self, body: bytes, delay: float = 0.0) -> None:
        self.body = body
        self.delay = delay
        self.requests = 0
        self.released = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests += 1
                if fake.delay and fake.released.wait(fake.delay):
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/tsa"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def upstream() -> Iterator[Callable[..., FakeUpstream]]:
    made: list[FakeUpstream] = []

    def make(body: bytes, delay: float = 0.0) -> FakeUpstream:
        made.append(FakeUpstream(body, delay))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def test_relay_passes_a_granted_reply(upstream: Callable[..., FakeUpstream]) -> None:
    fake = upstream(ts_reply(0))
    with TsaRelay(fake.url, deadline=2) as relay:
        assert relay.forward(b"\x30\x00") == ts_reply(0)
        assert fake.requests == 1


def test_relay_caps_the_reply_size(upstream: Callable[..., FakeUpstream]) -> None:
    fake = upstream(ts_reply(0, token=b"\x00" * MAX_REPLY_BYTES))
    with TsaRelay(fake.url, deadline=2) as relay, pytest.raises(RelayError, match="too large"):
        relay.forward(b"\x30\x00")


def test_relay_deadline_covers_a_slow_tsa(upstream: Callable[..., FakeUpstream]) -> None:
    slow = 30.0
    fake = upstream(ts_reply(0), delay=slow)
    with TsaRelay(fake.url, deadline=0.3) as relay:
        start = time.monotonic()
        # Which of the relay's wait and its socket timeout (both the deadline) fires first varies, and
        # with it the message: the error type is the answer.
        with pytest.raises(RelayError):
            relay.forward(b"\x30\x00")
        elapsed = time.monotonic() - start
        assert wait_for(lambda: fake.requests == 1)  # it reached the TSA, whose slowness the deadline cut
    # A timing property under a generous bound: the relay gave up long before the TSA would have answered.
    assert 0.3 * 0.9 <= elapsed < slow / 3


@pytest.mark.parametrize(
    "url", ["ftp://tsa.example/", "http://user:pw@tsa.example/", "tsa.example", "http://tsa.example:99999/"]
)
def test_relay_rejects_bad_tsa_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        TsaRelay(url)


def test_relay_rejects_a_nonpositive_deadline() -> None:
    with pytest.raises(ConfigError):
        TsaRelay("http://tsa.example/", deadline=0)
