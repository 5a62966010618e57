"""The counters behind per-API-key limits, shared by every service process through the database.

Rate: requests per API key per UTC minute, in `api_key_rate` (one row per key and minute). A request is
admitted when the sliding-window estimate `previous minute's count x (share of the minute still to run) +
this minute's count` stays within the limit; a refused request's increment is rolled back, so waiting for
Retry-After works. There is no cache: every process reads and updates the same row in one transaction.

Quota: signatures per API key in the current calendar month (UTC), counted from the ledger's signature rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from app.store.tables import api_key_rate, signatures
from signing import LedgerError


class _RefusedError(Exception):
    def __init__(self, wait: float):
        self.wait = wait


class KeyLimits:
    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time):
        self._engine = engine
        self._clock = clock

    def take(self, api_key_id: str, per_minute: int) -> float:
        """Counts one request: 0.0 when it is within `per_minute`, else the seconds to wait (nothing
        counted)."""
        now = self._clock()
        window = int(now // 60)
        into = now - window * 60  # seconds into this minute
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(api_key_rate).values(api_key_id=api_key_id, minute=window, count=1)
        upsert = upsert.on_conflict_do_update(
            index_elements=[api_key_rate.c.api_key_id, api_key_rate.c.minute],
            set_={"count": api_key_rate.c.count + 1},
        )
        mine = api_key_rate.c.api_key_id == api_key_id
        try:
            with self._engine.begin() as conn:
                conn.execute(upsert)
                counts = dict(
                    conn.execute(
                        sa.select(api_key_rate.c.minute, api_key_rate.c.count).where(
                            mine & api_key_rate.c.minute.in_((window - 1, window))
                        )
                    ).all()
                )
                current, previous = counts.get(window, 1), counts.get(window - 1, 0)
                if previous * (1 - into / 60) + current > per_minute:
                    raise _RefusedError(_wait(per_minute, current, previous, into))
                conn.execute(api_key_rate.delete().where(mine & (api_key_rate.c.minute < window - 1)))
        except _RefusedError as refused:
            return refused.wait
        except SQLAlchemyError as exc:
            raise LedgerError(
                "The API key's request rate could not be checked in the database.",
                details={"database_error": type(exc).__name__},
            ) from None
        return 0.0

    def signed_this_month(self, api_key_id: str) -> int:
        """Ledger rows (signatures) of this API key since the start of the calendar month, UTC."""
        start = month_start(datetime.fromtimestamp(self._clock(), UTC))
        query = (
            sa.select(sa.func.count())
            .select_from(signatures)
            .where((signatures.c.api_key_id == api_key_id) & (signatures.c.created_at >= start))
        )
        try:
            with self._engine.connect() as conn:
                return int(conn.execute(query).scalar_one())
        except SQLAlchemyError as exc:
            raise LedgerError(
                "The API key's monthly quota could not be checked in the ledger.",
                details={"database_error": type(exc).__name__},
            ) from None

    def seconds_to_next_month(self) -> int:
        now = datetime.fromtimestamp(self._clock(), UTC)
        start = month_start(now)
        following = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return max(1, math.ceil((following - now).total_seconds()))


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _wait(limit: int, current: int, previous: int, into: float) -> float:
    """Seconds until the estimate, with this request counted, would fit the limit."""
    left = 60 - into
    if current <= limit and previous > 0:
        # previous x (1 - t/60) + current <= limit  =>  t >= 60 x (1 - (limit - current) / previous)
        return max(1.0, 60 * (1 - (limit - current) / previous) - into)
    # This minute alone is over: wait for the next one, where this minute's count weighs as `previous`.
    need = 60 * (1 - (limit - 1) / current) if current > 0 else 0.0
    return max(1.0, left + max(0.0, need))
