"""Command-line options that both ``almanac`` and ``kubectl almanac`` take.

Where it sits: the edge. ``almanac calendar -f FILE`` and ``kubectl almanac calendar JOB``
draw the same grids, and ``calendar-diff`` compares the same way offline and live, so
they take the same ``--months``, ``--color``, ``--default-timezone``, ``-f`` and
``--days`` with the same checks and messages; they are declared once, here.
Imports only the standard library and :mod:`almanac.schedule.zones` (both command lines
stay quick to start).
"""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from almanac.errors import quote
from almanac.schedule.zones import parse_time_zone


def months(text: str) -> int:
    """``--months N``: 1 to 24 month grids."""
    if not text.isdigit() or not 1 <= int(text) <= 24:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a number of months (1 to 24)")
    return int(text)


#: ``--default-timezone`` of the offline verbs (``almanac``) and of the live ones.
OFFLINE_ZONE_HELP = (
    "IANA zone for a ScheduledJob without spec.timeZone, as the operator's setting (default: UTC)"
)
LIVE_ZONE_HELP = (
    "the zone of a job without spec.timeZone: the operator's ALMANAC_DEFAULT_TIMEZONE "
    "(default: UTC)"
)


#: The most ``--count`` (fires), ``--days`` and ``--parallelism`` take: a Backfill's
#: range and calendar-diff's comparison stop at 10,000 fires too. Unbounded, a huge
#: number overflowed (``islice``, ``timedelta``) into a traceback.
COUNT_MAX = 10_000


def count(text: str) -> int:
    """A whole number from 1 to :data:`COUNT_MAX` (``--count``, ``--days``,
    ``--parallelism``)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a whole number of at least 1")
    if int(text) > COUNT_MAX:
        raise argparse.ArgumentTypeError(f"{quote(text)} is more than {COUNT_MAX}")
    return int(text)


def zone(text: str) -> str:
    """An IANA zone name, checked the way the operator checks ``spec.timeZone``."""
    try:
        parse_time_zone(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_grid_options(parser: argparse.ArgumentParser, *, zone_help: str) -> None:
    """``--months``, ``--color`` and ``--default-timezone`` of a ``calendar`` verb."""
    parser.add_argument(
        "--months",
        metavar="N",
        type=months,
        default=3,
        help="how many months (1 to 24, default: 3)",
    )
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the marks: auto (default) on a terminal unless NO_COLOR is set",
    )
    add_default_timezone(parser, zone_help)


def add_default_timezone(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--default-timezone ZONE``, checked as the operator checks ``spec.timeZone``."""
    parser.add_argument(
        "--default-timezone", metavar="ZONE", type=zone, default="UTC", help=help_text
    )


def add_feed_files(parser: argparse.ArgumentParser) -> None:
    """``--feed CALENDAR=FILE`` (repeatable): offline, a feed's text from a local file."""
    parser.add_argument(
        "--feed",
        metavar="CALENDAR=FILE",
        action="append",
        default=[],
        help="the iCalendar text of the feed (spec.source) of Calendar CALENDAR "
        "(ClusterCalendar/NAME for a ClusterCalendar), read from FILE as if the operator "
        "had fetched it; repeat for each feed",
    )


def add_edited_calendar_options(parser: argparse.ArgumentParser) -> None:
    """``-f FILE`` (the edited Calendar) and ``--days N`` of a ``calendar-diff`` verb."""
    parser.add_argument(
        "-f",
        "--filename",
        metavar="FILE",
        required=True,
        help="YAML file with the edited Calendar or ClusterCalendar; - for standard input",
    )
    parser.add_argument(
        "--days",
        metavar="DAYS",
        type=count,
        default=90,
        help="how far ahead (1 to 10000, default: 90)",
    )


def use_color(choice: str, stream: TextIO) -> bool:
    """``--color``: always, never, or (auto) when ``stream`` is a terminal and the
    NO_COLOR convention (no-color.org) does not say otherwise."""
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")
