"""A calendar feed's pure parts: its refresh interval, the copy kept in the status, its
revision, where it comes from, and how many dates it takes.

Where it sits: beside :mod:`almanac.api.models` (which checks ``spec.source`` with
:func:`parse_interval` and reads the kept copy with :func:`unpack`) and below
:mod:`almanac.rules.calendars` (which decides a fetch's status). No clock, no network:
the fetch itself is :mod:`almanac.controller.feeds`.

The fetched text is kept in the Calendar's own status (``status.source.content``),
gzip-compressed and base64-encoded, so that a restarted operator, or a new leader, has
the last good copy without fetching: an unreachable feed at start-up still excludes its
days (docs/design.md, "Calendar feeds").
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from almanac.hosts import HostAllowList
from almanac.schedule import ical
from almanac.shared import Kept

__all__ = [
    "ALLOWED_HOSTS_VARIABLE",
    "OFF",
    "FeedCopyUnreadable",
    "check_url",
    "count_dates",
    "location",
    "pack",
    "parse_interval",
    "revision",
    "unpack",
]

ALLOWED_HOSTS_VARIABLE = "ALMANAC_FEED_ALLOWED_HOSTS"
OFF = (
    "feeds from a URL are off: the operator fetches from no host (its "
    f"{ALLOWED_HOSTS_VARIABLE}, --feed-allowed-hosts, chart value calendarFeeds.allowedHosts, "
    "is empty); keep the text in a ConfigMap (configMapKeyRef) or ask the administrator to "
    "allow the feed's host"
)
"""Why a feed URL is refused, or not fetched, while no host is allowed."""

_INTERVAL = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_interval(text: str, *, minimum: int, maximum: int) -> timedelta:
    """A refresh interval as Kubernetes writes durations (``1h``, ``30m``, ``1h30m``,
    ``90s``) between ``minimum`` and ``maximum`` seconds; ValueError says what is
    expected."""
    match = _INTERVAL.fullmatch(text)
    if not text or match is None:
        raise ValueError(
            f"{json.dumps(text)} is not a duration (hours, minutes and seconds, "
            'for example "1h", "30m", "1h30m" or "90s")'
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not minimum <= total <= maximum:
        raise ValueError(
            f"{json.dumps(text)} is {total} s; it must be from {minimum} s to {maximum} s "
            f"({maximum // 86400} days)"
        )
    return timedelta(seconds=total)


def pack(text: str) -> str:
    """The copy kept in the status: gzip (mtime 0, so that one text always packs to one
    string and an unchanged feed writes nothing) and base64."""
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode("ascii")


class FeedCopyUnreadable(ValueError):
    """The kept copy is not what :func:`pack` writes (the status was edited by hand)."""


def unpack(content: str) -> str:
    """The text of a kept copy; cached, as every decision of every referring job reads
    it (the store holds one string per Calendar, whose hash Python keeps). The cache is
    bounded by the texts' size as well as their number: a copy kept in the status is
    compressed, its text up to 5 MiB (FEED_MAX_BYTES), so 64 Calendars of one namespace
    with ConfigMap feeds of repetitive text could otherwise hold 320 MiB."""
    return _UNPACKED.get(content, lambda: _unpack(content))


def _unpack(content: str) -> str:
    try:
        return gzip.decompress(base64.b64decode(content, validate=True)).decode()
    except (binascii.Error, OSError, EOFError, UnicodeDecodeError) as error:
        raise FeedCopyUnreadable(f"the kept copy of the feed is unreadable ({error})") from None


# Texts by the copy they were unpacked from: about 16 MiB of text (a str of ASCII is a
# byte a character), three of the largest feeds or hundreds of a company's.
_UNPACKED: Kept[str, str] = Kept(64, 16 * 1024 * 1024, lambda _, text: len(text))


def revision(text: str) -> str:
    """The content revision a run records and the status shows: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def location(source: Mapping[str, Any]) -> str:
    """Where a copy came from, as a digest (the URL may hold a token and is never
    written anywhere but the spec): a copy from another URL or ConfigMap key is not
    the source's. ``refreshInterval`` and the CA bundle do not change where."""
    where = {k: source.get(k) for k in ("url", "configMapKeyRef") if source.get(k)}
    digest = hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def count_dates(text: str, today: date, days: int = 365) -> int:
    """How many dates the feed's events take in the ``days`` from ``today`` (UTC): the
    status's ``dates``, a sanity check a user reads ("0" says the feed is empty or in
    the past)."""
    last = today + timedelta(days=days - 1)
    dates = ical.ICalendarDates("", "", text, today.year, last.year)
    return sum(
        1
        for year in range(today.year, last.year + 1)
        for day in dates.dates_in(year)
        if today <= day <= last
    )


def check_url(url: str, allowed: HostAllowList | None) -> None:
    """ValueError unless the operator may fetch ``url`` (an absolute http(s) URL, or a
    redirect's target): its host on ``allowed``, plain http only where listed. The
    message shows at most ``scheme://host``: a published calendar's path is its secret."""
    if allowed is None:
        raise ValueError(OFF)
    allowed.check_url(url, "fetches feeds from")
