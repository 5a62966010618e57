"""The timestamp authority adapters: the deadline relay the engine talks to, and the thread-safe breaker.

The decisions (policy, breaker rules, the per-sign guard) are the core's: `signing.TimestampGuard`.
"""

from app.tsa.breaker import CircuitBreaker
from app.tsa.relay import RelayStats, TsaRelay
from app.tsa.reply import reply_problem
from app.tsa.upstream import RelayError

__all__ = ["CircuitBreaker", "RelayError", "RelayStats", "TsaRelay", "reply_problem"]
