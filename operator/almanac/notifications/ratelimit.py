"""The per-namespace limit on e-mails: at most ``mails`` in any ``period`` (a sliding
window), so that no namespace can make the operator's relay send mail in bulk.

A mail over the limit is not dropped: :meth:`MailRateLimiter.acquire` says how long
until the namespace may send again, and the delivery waits that long (the run's
notification stays Pending, with a message; see
:func:`almanac.notifications.state.rate_limited`).

The count lives in the memory of the acting replica: a restart or a fail-over starts
it afresh, which lets a namespace send at most one more window's worth. Pure apart from
that memory: the caller passes the time, so a test moves the clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["DEFAULT_MAILS_PER_HOUR", "MailRateLimiter", "RateLimit"]

DEFAULT_MAILS_PER_HOUR = 60


@dataclass(frozen=True)
class RateLimit:
    """At most ``mails`` e-mails per namespace in any ``period``; 0 mails: no limit."""

    mails: int = DEFAULT_MAILS_PER_HOUR
    period: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.mails < 0:
            raise ValueError(f"a mail rate limit is 0 (none) or more, not {self.mails}")
        if self.period <= timedelta(0):
            raise ValueError(f"a mail rate limit's period is positive, not {self.period}")

    def __str__(self) -> str:
        if not self.mails:
            return "no limit"
        per = "hour" if self.period == timedelta(hours=1) else f"{self.period.total_seconds():g}s"
        return f"{self.mails} e-mail{'s' if self.mails != 1 else ''} per {per}"


class MailRateLimiter:
    """The e-mails each namespace was allowed in the last period, oldest first."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._sent: dict[str, deque[datetime]] = {}

    def acquire(self, namespace: str, now: datetime) -> timedelta | None:
        """Counts one e-mail of ``namespace`` at ``now`` and returns None if it is within
        the limit; otherwise counts nothing and returns how long until one is."""
        if not self.limit.mails:
            return None
        sent = self._sent.setdefault(namespace, deque())
        while sent and sent[0] <= now - self.limit.period:
            sent.popleft()
        if len(sent) < self.limit.mails:
            sent.append(now)
            return None
        # A clock that went back (another replica's) still waits at most one period.
        return min(sent[0] + self.limit.period - now, self.limit.period)

    def release(self, namespace: str, taken_at: datetime) -> None:
        """Gives back an e-mail counted at ``taken_at`` that was not sent after all."""
        sent = self._sent.get(namespace)
        if sent is not None and taken_at in sent:
            sent.remove(taken_at)
        if not sent:
            self._sent.pop(namespace, None)
