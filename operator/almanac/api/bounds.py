"""Every limit on what users write and on what the operator writes back, in one place.

Why bounds at all: the operator decides every object it watches in one process, so one
object that makes a decision fail (``startTime: 0001-01-01T00:00:00`` used to: "ordinal
must be >= 1") or search for seconds must not be possible. Each value a user can set is
bounded here, with the reason for the number; docs/api.md ("Bounds") lists them.

Who reads them:

- the pydantic models (:mod:`almanac.api.models`), so that the operator, the admission
  webhook and ``almanac next`` refuse an out-of-bounds value with its field path
  (``spec.startTime: year 1 is outside 1970-2200 ...``);
- ``hack/crd-bounds.py`` (``make crd-schemas``), which writes them into the CRDs
  (``maxItems``, ``maxLength``, ``minimum``, ``maximum``, and the CEL rules on years),
  so the API server refuses the same values at ``kubectl apply``; a unit test fails when
  a CRD differs from what it would write;
- the decisions (:mod:`almanac.rules`) and the API gateway (:mod:`almanac.kube`),
  which cut every condition and Event message with :func:`truncate`.

Pure: imports nothing of Almanac. The schedule engine (:mod:`almanac.schedule`) does not
import it either (it is below the API): the engine stays correct for any date it can
represent, and the bounds keep what reaches it cheap.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

__all__ = [
    "ANNUAL_MAX_ITEMS",
    "BACKFILL_MAX_INSTANTS",
    "BACKFILL_PARALLELISM_MAX",
    "CALENDAR_DESCRIPTION_MAX_LENGTH",
    "CALENDAR_REFS_MAX_ITEMS",
    "CONDITION_MESSAGE_MAX_BYTES",
    "DATE_TIME_MAX_LENGTH",
    "END_INSTANT",
    "EVENT_MESSAGE_MAX_BYTES",
    "EXCLUSION_ENTRY_MAX_LENGTH",
    "FEED_KEPT_MAX_LENGTH",
    "FEED_MAX_BYTES",
    "FEED_MAX_REDIRECTS",
    "FEED_TIMEOUT_SECONDS",
    "FEED_URL_MAX_LENGTH",
    "FIRST_INSTANT",
    "HISTORY_LIMIT_MAX",
    "HOLIDAYS_CATEGORIES_MAX_ITEMS",
    "HOLIDAYS_CODE_MAX_LENGTH",
    "HOLIDAYS_MAX_ITEMS",
    "HOLIDAYS_SUBDIVISION_MAX_LENGTH",
    "HOLIDAY_MAX_ITEMS",
    "ICAL_MAX_COMPONENTS",
    "ICAL_MAX_CONTENT_LINES",
    "ICAL_MAX_EVENTS",
    "ICAL_MAX_LENGTH",
    "ICAL_MAX_RECURRING_EVENTS",
    "INSTANT_MAX_LENGTH",
    "JOB_LABEL_MAX_LENGTH",
    "MAX_SHIFT_DAYS_DEFAULT",
    "MAX_SHIFT_DAYS_MAX",
    "MAX_SHIFT_DAYS_MIN",
    "MONTHLY_MAX_ITEMS",
    "NAME_MAX_LENGTH",
    "RECIPIENTS_MAX_ITEMS",
    "RECIPIENT_MAX_LENGTH",
    "REFRESH_INTERVAL_DEFAULT",
    "REFRESH_INTERVAL_MAX_SECONDS",
    "REFRESH_INTERVAL_MIN_SECONDS",
    "RUN_MINUTES_DIGITS",
    "RUN_NAME_MAX_LENGTH",
    "RUN_SUFFIX_MAX_LENGTH",
    "SCHEDULED_JOB_NAME_MAX_LENGTH",
    "SCHEDULE_MAX_LENGTH",
    "SECRET_KEY_MAX_LENGTH",
    "SERVICES_MAX_ITEMS",
    "SERVICES_MIN_ITEMS",
    "SERVICE_NAME_MAX_LENGTH",
    "STARTING_DEADLINE_SECONDS_MAX",
    "TIME_ZONE_MAX_LENGTH",
    "TRUNCATED",
    "WEBHOOKS_MAX_ITEMS",
    "WEBHOOK_URL_MAX_LENGTH",
    "WEEKLY_MAX_ITEMS",
    "YEAR_MAX",
    "YEAR_MIN",
    "instant_error",
    "truncate",
    "year_error",
    "years",
]

# --------------------------------------------------------------------------------------
# Time

YEAR_MIN: Final = 1970
"""The first year of ``startTime``, ``endTime`` and holiday dates (``dd.MM.yyyy``).

The Unix epoch: run names count Unix minutes from it (:func:`almanac.api.names.run_name`),
and every Kubernetes timestamp is after it. An earlier year is a typo (``0001``, ``1027``),
and it was the one input that made a decision fail (``date.fromordinal(0)``)."""

YEAR_MAX: Final = 2200
"""The last year of ``startTime``, ``endTime`` and holiday dates.

Far beyond any plan a cluster holds, and a bound on how far the engine may have to look:
it proves that a schedule never fires by looking 400 years (one Gregorian cycle) past the
latest of the last holiday and 2100 (when every time zone follows its last rule), so a
holiday in 9999 used to make it scan eight thousand years (3.4 s). With holidays up to
2200, no search passes 2600."""

DATE_TIME_MAX_LENGTH: Final = len("2027-01-01T00:00:00+02:00")
"""``startTime``/``endTime``: ``YYYY-MM-DDTHH:MM:SS`` and an optional offset, 25 characters.
In the CRD it also bounds the cost the API server estimates for their CEL rules."""

FIRST_INSTANT: Final = datetime(YEAR_MIN, 1, 1, tzinfo=UTC) - timedelta(days=1)
END_INSTANT: Final = datetime(YEAR_MAX + 1, 1, 1, tzinfo=UTC) + timedelta(days=1)
"""The instants a wall time of the years' bounds can be, in any offset (within a day):
a run's ``scheduledTime`` and, in the CRD, a Backfill's ``from`` and ``to``."""

STARTING_DEADLINE_SECONDS_MAX: Final = 365 * 24 * 3600
"""``startingDeadlineSeconds`` at most 31,536,000 (one year of 365 days).

A fire missed by more than a year is not worth starting late; and a larger number, up to
2^63 - 1, overflowed Python's ``timedelta`` in the decision."""

RUN_DEADLINE_MIN: Final = timedelta(seconds=1)
"""``runDeadline`` at least one second: zero would make every run late at birth."""

RUN_DEADLINE_MAX: Final = timedelta(days=31)
"""``runDeadline`` at most 31 days (``744h``): a run still going a month after its
scheduled instant is not late, it is lost; and the operator keeps one timer per unfinished
run until its deadline."""

RUN_DEADLINE_MAX_LENGTH: Final = 16
"""``runDeadline``: ``744h`` is 4 characters, ``1h30m15s`` 8; enough for any way of
writing a deadline within the bounds, and it bounds the CEL rule's cost."""

MAX_SHIFT_DAYS_MIN: Final = 1
"""``maxShiftDays`` at least 1: a shift of no day is ``onExcludedDay: Skip``."""

MAX_SHIFT_DAYS_MAX: Final = 31
"""``maxShiftDays`` at most 31 (a month).

A fire moved further than a month is another month's fire, not this date's. The bound also
keeps the engine's work per month small: each month's fires depend only on the dates
within 31 days of it, each looked up once (almanac.schedule.days.MAX_SHIFT_DAYS, which a
unit test keeps equal to this)."""

MAX_SHIFT_DAYS_DEFAULT: Final = 7
"""``maxShiftDays`` when absent: a week, enough to step over a weekend and a holiday
week (Christmas to New Year) without moving a fire into the next month's habits."""

# --------------------------------------------------------------------------------------
# Counts

HISTORY_LIMIT_MAX: Final = 1000
"""``successfulRunsHistoryLimit`` and ``failedRunsHistoryLimit`` at most 1,000 each.

Every run kept is an object (and its Jobs and Pods) in etcd and in the operator's memory,
and each decision of the job sorts them; CronJob users keep a handful."""

ANNUAL_MAX_ITEMS: Final = 366
"""``annual``: every day of a year (29.02 included); more can only repeat a day."""

MONTHLY_MAX_ITEMS: Final = 31
"""``monthly``: every day of a month; more can only repeat a day."""

WEEKLY_MAX_ITEMS: Final = 14
"""``weekly``: the seven names and the seven abbreviations; more can only repeat a day."""

HOLIDAY_MAX_ITEMS: Final = 4096
"""``holiday``: about eleven years of every single day, or a century of national holidays.

Its CEL rules (a real date, a year in range) are evaluated for each item, and the API
server refuses a CRD whose estimated cost (rule cost times ``maxItems``) is over its
budget: 4096 keeps it well within. Building the schedule reads every entry once (about
20 ms for 4,000 entries)."""

EXCLUSION_ENTRY_MAX_LENGTH: Final = 32
"""One exclusion entry: the longest valid one is ``"Wednesday"`` or ``"14.04.2027"``; 32
leaves room for spaces, and bounds the CEL rules' cost per item."""

CALENDAR_REFS_MAX_ITEMS: Final = 32
"""``calendarRefs``: a job combines a few calendars (country, company, team); 32 bounds the
Calendars read for each decision."""

NAME_MAX_LENGTH: Final = 253
"""A Kubernetes object name (DNS subdomain), as ``calendarRefs[].name``."""

CALENDAR_DESCRIPTION_MAX_LENGTH: Final = 256
"""A Calendar's ``description``: one line for ``kubectl get cal``."""

HOLIDAYS_MAX_ITEMS: Final = 16
"""A Calendar's ``holidays``: a calendar combines a few countries, regions and markets (a
bank in two countries, a desk on two exchanges). Each entry adds a year of holidays for
the engine to compute as it reaches that year (well under a millisecond once the
country is loaded, about 80 ms the first time in a process), so a few dozen would still
be cheap; 16 is far more than a calendar needs and keeps the first decision fast."""

HOLIDAYS_CODE_MAX_LENGTH: Final = 16
"""``holidays[].country``, ``market``, ``language`` and each ``categories`` item: the
package's codes are short (``RO``, ``ROU``, ``NYSE``, ``en_US``, ``armed_forces``); 16
leaves room for a mistake to be reported with a suggestion rather than cut."""

HOLIDAYS_SUBDIVISION_MAX_LENGTH: Final = 64
"""``holidays[].subdivision``: a code (``BY``) or one of the package's names for it
(``Baden-Württemberg``, ``United States Minor Outlying Islands``: 36 characters)."""

HOLIDAYS_CATEGORIES_MAX_ITEMS: Final = 16
"""``holidays[].categories``: the package has about twenty categories in all and a country
a handful (``public``, ``bank``, ``optional``...)."""

ICAL_MAX_LENGTH: Final = 256 * 1024
"""A Calendar's ``ical``, in characters: 262,144. A company's calendar of several years
(an event is 200-400 bytes) fits easily; the object is stored in etcd (1.5 MiB per
object, with the rest of the Calendar and its managedFields) and parsed whenever the
Calendar changes (about 10 ms per 100 KB). A calendar bigger than this belongs in a feed
(``spec.source``), not inline."""

ICAL_MAX_EVENTS: Final = 2000
"""``ical``: VEVENTs in the text. A company calendar has tens to hundreds; each is
checked when the Calendar is applied (about 1 ms for one that recurs)."""

ICAL_MAX_RECURRING_EVENTS: Final = 100
"""``ical``: VEVENTs with an RRULE or RDATE. Each is expanded for every year the engine
reaches, once per year, text and zone in a process: at most one occurrence a day (rules
that repeat within a day are refused), so 100 daily events are 36,600 occurrences, about
0.5 s for that year the first time; a company's calendar has a handful (holidays,
release freezes, maintenance windows)."""

ICAL_MAX_COMPONENTS: Final = 2 * ICAL_MAX_EVENTS + 500
"""``ical`` and a feed: components of any kind (BEGIN lines, the VCALENDAR included),
4,500, counted before the text is parsed. The events' bounds alone left the rest
unbounded: a ConfigMap of 25,000 VTODOs and no event cost 1.4 s and 35 MiB to parse.
This is the largest calendar of events admitted, each with an alarm (VALARM), and 500
for the time zones (a VTIMEZONE and its STANDARD and DAYLIGHT parts); Almanac reads
only the events, so other components (VTODO, VJOURNAL, X-) have no place of their own.
4,500 components parse into about 6 MiB, as 2,000 events with an alarm each do."""

ICAL_MAX_CONTENT_LINES: Final = 50_000
"""``ical`` and a feed: content lines (after unfolding), counted before the text is
parsed, since properties are as unbounded as components were (one VEVENT of 150,000
``X-`` lines in 1.8 MiB kept 54 MiB). 25 a event at the 2,000 events: an Outlook
export's event, alarm included, has about 25. 50,000 lines parse into about 18 MiB.
Inline ``ical`` rarely gets near: 256 KiB is about 10,000 lines of an event's length."""

FEED_MAX_BYTES: Final = 5 * 1024 * 1024
"""``spec.source``: the most a fetch reads (5 MiB), from a URL or a ConfigMap key (which
holds at most 1 MiB anyway). A company or country feed of a decade is a few hundred KB;
past this the fetch fails with "larger than 5 MiB" and the last good copy stays."""

FEED_TIMEOUT_SECONDS: Final = 10.0
"""``spec.source.url``: the whole fetch (connect, redirects, body) within 10 s, so that a
slow server holds one slot of the calendars' lane, never the jobs'."""

FEED_MAX_REDIRECTS: Final = 5
"""``spec.source.url``: redirects followed per fetch (a feed behind a CDN or a moved
address takes one or two; a loop stops here)."""

FEED_KEPT_MAX_LENGTH: Final = 1024 * 1024
"""``status.source.content``: the fetched text kept in the Calendar's status, gzip-
compressed and base64-encoded, at most 1 MiB (iCalendar text compresses about tenfold,
so a feed of the full 5 MiB usually fits). etcd holds at most 1.5 MiB per object, with
the spec (an inline ``ical`` of up to 256 KiB) beside it. A feed whose copy would not
fit is refused like an unreachable one: the last good copy stays."""

FEED_URL_MAX_LENGTH: Final = 2048
"""``spec.source.url``: the length browsers and most servers accept."""

REFRESH_INTERVAL_MIN_SECONDS: Final = 10
"""``spec.source.refreshInterval`` at least 10 s: a ConfigMap edited by hand shows within
seconds, and no feed server is polled in a loop."""

REFRESH_INTERVAL_MAX_SECONDS: Final = 7 * 24 * 3600
"""``spec.source.refreshInterval`` at most a week: holiday feeds change rarely, but a
stale copy older than a week is worse than one more request."""

REFRESH_INTERVAL_DEFAULT: Final = "1h"
"""``spec.source.refreshInterval`` when absent: a published feed changes a few times a
year, and an hour brings a change in before the next day's fires."""

RECIPIENTS_MAX_ITEMS: Final = 64
"""``notifications.to``: at most 64 recipients (docs/api.md "E-mail recipients"): a team
list, not a mailing list; one e-mail goes to all of them."""

RECIPIENT_MAX_LENGTH: Final = 254
"""One recipient: RFC 5321's limit on a path (an address), 254 characters."""

WEBHOOKS_MAX_ITEMS: Final = 8
"""``notifications.webhooks``: a team's chat channel and an incident tool or two. Each is
one POST per run and event, with its own state in the run's status."""

WEBHOOK_URL_MAX_LENGTH: Final = 2048
"""``notifications.webhooks[].url`` (and the URL a ``urlSecretRef`` names): the length
browsers and most servers accept; Slack's and Teams' URLs are under 300."""

SECRET_KEY_MAX_LENGTH: Final = 253
"""A key of a Secret's ``data`` (Kubernetes' own limit)."""

SCHEDULE_MAX_LENGTH: Final = 128
"""``schedule``: five cron fields with lists fit easily; bounds the CEL rule's cost."""

TIME_ZONE_MAX_LENGTH: Final = 64
"""``timeZone``: the longest IANA name has 32 characters
(``America/Argentina/ComodRivadavia``)."""

SERVICES_MIN_ITEMS: Final = 1
"""``services``: a fire runs at least one service."""

SERVICES_MAX_ITEMS: Final = 50
"""``services``: at most 50 services (Jobs) per run: each is a Job the operator watches,
and the run's status lists them all."""

INSTANT_MAX_LENGTH: Final = len("2027-01-01T00:00:00.000000+02:00")
"""An RFC 3339 instant a user writes (a Backfill's ``from`` and ``to``): with an offset
and microseconds, or ``Z`` and nanoseconds (Go's RFC3339Nano); digits past the
microsecond are dropped."""

BACKFILL_MAX_INSTANTS: Final = 10_000
"""A Backfill's range holds at most 10,000 instants: a year of an hourly job. Each is a
run (and its Jobs) the cluster must hold until the job's history limits prune it; a
longer range is split into several Backfills, which makes the cost a visible choice."""

BACKFILL_PARALLELISM_MAX: Final = 100
"""``parallelism``: at most 100 runs of one Backfill unfinished at once (each run starts
its services' Jobs: 100 runs of a 50-service job are already 5,000 Jobs)."""

# --------------------------------------------------------------------------------------
# Names. A Job's name is the value of the batch.kubernetes.io/job-name label on its Pods,
# so it has at most 63 characters. The operator derives every name
# (almanac.api.names, almanac.rules.orchestration.job_name):
#
#   run = <scheduledjob> "-" <Unix minutes> [<suffix>]      Job = <run> "-" <service>
#
#   28 + 1 + 8 + 5 = 42 (run)          42 + 1 + 20 = 63 (Job)

JOB_LABEL_MAX_LENGTH: Final = 63
"""A label value, hence a Job's name (``batch.kubernetes.io/job-name``)."""

RUN_MINUTES_DIGITS: Final = 8
"""Unix minutes have 8 digits from 1989-01-05 to 2160-02-18 (minute 99,999,999). A fire
after that (possible only when the clock is there) has a 9-digit run name, one character
over :data:`RUN_NAME_MAX_LENGTH`: the API server refuses that run, which the job reports
(``RunRefused``); nothing fails."""

RUN_SUFFIX_MAX_LENGTH: Final = 5
"""The suffix of a run that is not a plain fire: ``-m375`` (a run-now), ``-r1`` to
``-r999`` (a fire's reruns), ``-n375`` to ``-z375`` (a run-now's reruns;
:func:`almanac.api.names.rerun_name`)."""

SCHEDULED_JOB_NAME_MAX_LENGTH: Final = 28
"""A ScheduledJob's name: 63 - 1 - 20 (service) - 5 (suffix) - 8 (minutes) - 1 = 28."""

RUN_NAME_MAX_LENGTH: Final = (
    SCHEDULED_JOB_NAME_MAX_LENGTH + 1 + RUN_MINUTES_DIGITS + RUN_SUFFIX_MAX_LENGTH
)
"""A ScheduledJobRun's name: 28 + 1 + 8 + 5 = 42."""

SERVICE_NAME_MAX_LENGTH: Final = JOB_LABEL_MAX_LENGTH - RUN_NAME_MAX_LENGTH - 1
"""A service's name, part of its Job's name: 63 - 42 - 1 = 20 (a DNS label)."""

# --------------------------------------------------------------------------------------
# What the operator writes

EVENT_MESSAGE_MAX_BYTES: Final = 1024
"""An Event's message: events.k8s.io/v1 refuses a ``note`` over 1 KiB (core/v1 has no
limit, but ``kubectl describe`` prints every byte); cut with :data:`TRUNCATED`."""

CONDITION_MESSAGE_MAX_BYTES: Final = 32 * 1024
"""A condition's message: metav1.Condition's ``maxLength`` (32,768), as the CRDs say;
an error naming every bad entry of a 4,096-item list can pass it."""

TRUNCATED: Final = "… (truncated)"
"""What ends a message that :func:`truncate` cut."""


def truncate(text: str, limit: int) -> str:
    """``text`` if its UTF-8 form has at most ``limit`` bytes, else its beginning and
    :data:`TRUNCATED`, together at most ``limit`` bytes (so within a limit counted in
    characters too), cut between characters."""
    if len(text) <= limit // 4 or len(text.encode()) <= limit:
        return text
    room = limit - len(TRUNCATED.encode())
    head = text.encode()[: max(0, room)].decode(errors="ignore")
    return head + TRUNCATED


def years() -> str:
    """``1970-2200``, as messages write the range."""
    return f"{YEAR_MIN}-{YEAR_MAX}"


def year_error(year: int) -> str | None:
    """Why ``year`` is out of bounds, or None."""
    if YEAR_MIN <= year <= YEAR_MAX:
        return None
    return f"year {year} is outside {years()}"


def instant_error(instant: datetime) -> str | None:
    """Why an instant (aware) is not one a fire in the years' bounds can have, or None:
    a wall time of 1970-2200 in any zone (offsets are within a day) is within a day of
    those years in UTC."""
    if FIRST_INSTANT <= instant < END_INSTANT:
        return None
    first, end = FIRST_INSTANT.date(), END_INSTANT.date() - timedelta(days=1)
    return f"{instant.date().isoformat()} is outside {_span(first, end)} (years {years()})"


def _span(first: date, last: date) -> str:
    return f"{first.isoformat()} to {last.isoformat()}"
