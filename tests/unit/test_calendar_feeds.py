"""Calendar feeds, ClusterCalendars and the calendars a run records (issue 17, parts
3-5), without a cluster: the pure parts as tables (interval, kept copy, revision,
model validation, when to fetch, what a fetch makes of the status, the job's reason,
the run's record, the store's index), and the fetcher against a loopback HTTP server.
"""

from __future__ import annotations

import asyncio
import copy
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from almanac.api import bounds, feeds
from almanac.api.models import (
    Calendar,
    CalendarNotFetched,
    CalendarSource,
    ClusterCalendar,
    ScheduledJob,
)
from almanac.api.resolve import resolve
from almanac.controller import feeds as fetcher
from almanac.controller.admission import feed_url_errors, review_calendar, review_scheduled_job
from almanac.controller.store import Kind, Store
from almanac.errors import InvalidSpec
from almanac.hosts import HostAllowList
from almanac.rules.backfill import decide_backfill
from almanac.rules.calendars import Fetched, FetchFailed, decide_feed, fetch_due
from almanac.rules.jobs import decide_job
from almanac.rules.runs import decide_run
from almanac.times import timestamp
from tests.integration.objects import scheduled_job, service

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
URL = "https://calendar.example.com/secret-token/holidays.ics"
CRDS = Path(__file__).resolve().parent.parent.parent / "crds"


def ics(*days: date, summary: str = "Day off") -> str:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:{d.isoformat()}@t\r\nSUMMARY:{summary}\r\n"
        f"DTSTART;VALUE=DATE:{d.strftime('%Y%m%d')}\r\nEND:VEVENT\r\n"
        for d in days
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{events}END:VCALENDAR\r\n"


def _without_events(components: int) -> str:
    """iCalendar text of ``components`` VTODOs and no VEVENT (well under a ConfigMap's
    1 MiB at 12,000)."""
    body = "".join(
        f"BEGIN:VTODO\r\nUID:t{i}@x\r\nSUMMARY:t\r\nEND:VTODO\r\n" for i in range(components)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{body}END:VCALENDAR\r\n"


def _one_event_of_lines(lines: int) -> str:
    """One event with ``lines`` extra (X-) properties: a few short lines each."""
    extra = "".join(f"X-A{i}:b\r\n" for i in range(lines))
    event = f"BEGIN:VEVENT\r\nUID:a@t\r\nDTSTART;VALUE=DATE:20270501\r\n{extra}END:VEVENT\r\n"
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{event}END:VCALENDAR\r\n"


def feed_calendar(
    source: dict[str, Any] | None = None,
    *,
    kind: str = "Calendar",
    name: str = "team",
    status: dict[str, Any] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "generation": generation, "resourceVersion": "7"}
    if kind == "Calendar":
        meta["namespace"] = "ns"
    body: dict[str, Any] = {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": kind,
        "metadata": meta,
        "spec": {"source": source if source is not None else {"url": URL}},
    }
    if status is not None:
        body["status"] = status
    return body


def fetched(body: dict[str, Any], text: str, at: datetime = NOW) -> dict[str, Any]:
    """``body`` with the status a successful fetch of ``text`` at ``at`` writes."""
    source = CalendarSource.model_validate(body["spec"]["source"])
    plan = decide_feed(body, source, Fetched(text), at)
    merged = copy.deepcopy(body)
    status = merged.setdefault("status", {})
    status.setdefault("source", {}).update(plan.status.get("source") or {})
    if "conditions" in plan.status:
        status["conditions"] = plan.status["conditions"]
    return merged


# --------------------------------------------------------------------------------------
# Pure helpers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("10s", 10), ("168h", 604800)],
)
def test_refresh_intervals_read_as_kubernetes_writes_durations(text: str, seconds: int) -> None:
    interval = feeds.parse_interval(text, minimum=10, maximum=604800)
    assert interval == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a duration"),
        ("1d", "is not a duration"),
        ("5 m", "is not a duration"),
        ("9s", '"9s" is 9 s; it must be from 10 s to 604800 s (7 days)'),
        ("169h", "it must be from 10 s"),
    ],
)
def test_bad_refresh_intervals_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        feeds.parse_interval(text, minimum=10, maximum=604800)


def test_the_kept_copy_round_trips_and_one_text_packs_one_way() -> None:
    text = ics(date(2027, 5, 1))
    assert feeds.unpack(feeds.pack(text)) == text
    assert feeds.pack(text) == feeds.pack(text)  # no timestamp: an unchanged feed writes nothing
    assert len(feeds.pack(text * 50)) < len(text * 50) / 5
    with pytest.raises(feeds.FeedCopyUnreadable, match="the kept copy of the feed is unreadable"):
        feeds.unpack("not base64!")


def test_the_unpacked_copies_kept_are_bounded_by_their_size() -> None:
    """A kept copy is compressed: 64 Calendars whose ConfigMap feeds are 5 MiB of
    repetitive text (a few KiB each in their status) must not keep 320 MiB of text."""
    feeds._UNPACKED.clear()
    largest = bounds.FEED_MAX_BYTES
    packed = [feeds.pack(chr(ord("a") + i) * largest) for i in range(8)]
    assert all(len(p) < 16 * 1024 for p in packed)
    for copy_ in packed:
        assert len(feeds.unpack(copy_)) == largest
    kept = len(feeds._UNPACKED)
    assert 1 <= kept <= 16 * 1024 * 1024 // largest
    # The latest is kept (a decision reads the same copy again and again).
    assert feeds._UNPACKED.get(packed[-1], lambda: "not kept") == "h" * largest
    feeds._UNPACKED.clear()


def test_a_revision_is_the_content_hash() -> None:
    one, two = feeds.revision("a"), feeds.revision("b")
    assert one.startswith("sha256:") and len(one) == 7 + 64 and one != two


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"url": URL}, {"url": URL, "refreshInterval": "5m"}, True),
        ({"url": URL}, {"url": URL, "caBundleSecretRef": {"name": "ca", "key": "ca.crt"}}, True),
        ({"url": URL}, {"url": URL + "?v=2"}, False),
        ({"configMapKeyRef": {"name": "a", "key": "k"}}, {"url": URL}, False),
    ],
)
def test_a_copy_belongs_to_its_url_or_config_map_key(
    a: dict[str, Any], b: dict[str, Any], same: bool
) -> None:
    assert (feeds.location(a) == feeds.location(b)) is same
    assert "secret-token" not in feeds.location(a)


def test_the_dates_counted_are_those_of_the_next_365_days() -> None:
    text = ics(date(2027, 2, 28), date(2027, 3, 1), date(2027, 12, 25), date(2028, 2, 29))
    # 1 March and 25 December; 28 February is past, 29 February 2028 the 366th day.
    assert feeds.count_dates(text, date(2027, 3, 1)) == 2
    assert feeds.count_dates(text, date(2027, 3, 2)) == 2  # 29 February 2028 is the 365th
    assert feeds.count_dates(text, date(2029, 1, 1)) == 0


# --------------------------------------------------------------------------------------
# Models and admission


@pytest.mark.parametrize(
    ("kind", "source", "message"),
    [
        ("Calendar", {}, "spec.source: give exactly one of url"),
        (
            "Calendar",
            {"url": URL, "configMapKeyRef": {"name": "a", "key": "k"}},
            "spec.source: give exactly one of url",
        ),
        (
            "Calendar",
            {"url": "ftp://x/y.ics"},
            "spec.source.url: is not an http:// or https:// URL",
        ),
        ("Calendar", {"url": "https://"}, "spec.source.url: is not an http"),
        ("Calendar", {"url": URL, "refreshInterval": "2s"}, "spec.source.refreshInterval:"),
        (
            "Calendar",
            {"url": "http://x/y.ics", "caBundleSecretRef": {"name": "ca", "key": "k"}},
            "spec.source.caBundleSecretRef: is only for an https:// url",
        ),
        (
            "Calendar",
            {"configMapKeyRef": {"name": "a", "key": "k", "namespace": "other"}},
            "spec.source.configMapKeyRef.namespace: is not allowed in a Calendar",
        ),
        (
            "ClusterCalendar",
            {"configMapKeyRef": {"name": "a", "key": "k"}},
            "spec.source.configMapKeyRef.namespace: is required in a ClusterCalendar",
        ),
        (
            "ClusterCalendar",
            {"url": URL, "caBundleSecretRef": {"name": "ca", "key": "k"}},
            "spec.source.caBundleSecretRef.namespace: is required in a ClusterCalendar",
        ),
        ("Calendar", {"url": URL, "bogus": 1}, "spec.source.bogus: is not a known field"),
    ],
)
def test_a_bad_source_is_refused_naming_the_field(
    kind: str, source: dict[str, Any], message: str
) -> None:
    review = review_calendar(feed_calendar(source, kind=kind))
    assert not review.allowed
    assert any(message in e for e in review.errors), review.errors
    assert not any("secret-token" in e for e in review.errors)  # the URL is not echoed


@pytest.mark.parametrize(
    ("kind", "source"),
    [
        ("Calendar", {"url": URL, "refreshInterval": "10s"}),
        ("Calendar", {"configMapKeyRef": {"name": "a", "key": "k"}}),
        ("ClusterCalendar", {"configMapKeyRef": {"name": "a", "key": "k", "namespace": "ops"}}),
        (
            "ClusterCalendar",
            {"url": URL, "caBundleSecretRef": {"name": "ca", "key": "k", "namespace": "ops"}},
        ),
    ],
)
def test_good_sources_are_admitted(kind: str, source: dict[str, Any]) -> None:
    assert review_calendar(feed_calendar(source, kind=kind)).allowed


def test_a_calendar_without_a_copy_from_its_source_is_not_fetched() -> None:
    never = Calendar.parse(feed_calendar())
    with pytest.raises(CalendarNotFetched, match="Calendar team has not been fetched yet"):
        never.exclusions()
    body = fetched(feed_calendar(), ics(date(2027, 5, 1)))
    assert Calendar.parse(body).exclusions().dated  # the copy is read
    moved = copy.deepcopy(body)
    moved["spec"]["source"]["url"] = URL + "?moved"
    with pytest.raises(CalendarNotFetched):  # a copy of the old URL is not the new one's
        Calendar.parse(moved).exclusions()
    with_interval = copy.deepcopy(body)
    with_interval["spec"]["source"]["refreshInterval"] = "5m"
    assert Calendar.parse(with_interval).exclusions().dated  # still the same place


def job(*refs: dict[str, Any], schedule: str = "0 12 * * *", **spec: Any) -> dict[str, Any]:
    body = scheduled_job(
        "report", schedule, services=[service("main")], timeZone="UTC",
        calendarRefs=list(refs), **spec,
    )  # fmt: skip
    body["metadata"].update(
        namespace="ns", uid="uid-1", generation=1, creationTimestamp="2027-01-01T00:00:00Z"
    )
    return body


def ready(status: dict[str, Any]) -> dict[str, Any]:
    [condition] = [c for c in status["conditions"] if c["type"] == "Ready"]
    return condition


def test_a_cluster_calendar_is_found_by_kind_and_name() -> None:
    holiday = date(2027, 3, 1)
    cluster = fetched(feed_calendar(kind="ClusterCalendar", name="ro"), ics(holiday))
    plain = feed_calendar(name="ro", status=None)  # same name, other kind: never fetched
    body = job({"kind": "ClusterCalendar", "name": "ro"})
    plan = decide_job(body, [], {"ro": plain, "ClusterCalendar/ro": cluster}, NOW)
    assert plan.status["nextScheduleTime"] == "2027-03-02T12:00:00Z"
    missing = decide_job(body, [], {"ro": plain}, NOW)
    condition = ready(missing.status)
    assert (condition["reason"], condition["message"]) == (
        "CalendarNotFound",
        'spec.calendarRefs[0].name: ClusterCalendar "ro" not found',
    )


@pytest.mark.parametrize(
    ("calendars", "reason"),
    [
        ({"team": feed_calendar()}, "CalendarNotFetched"),
        ({}, "CalendarNotFound"),
        ({"team": feed_calendar(), "ClusterCalendar/x": None}, "CalendarNotFetched"),
    ],
    ids=["not fetched", "missing", "not fetched beside missing"],
)
def test_a_job_whose_calendar_was_never_fetched_does_not_fire_and_says_why(
    calendars: dict[str, Any], reason: str
) -> None:
    calendars = {k: v for k, v in calendars.items() if v is not None}
    body = job({"name": "team"}, {"kind": "ClusterCalendar", "name": "x"}, schedule="* * * * *")
    plan = decide_job(body, [], calendars, NOW)
    condition = ready(plan.status)
    assert (condition["status"], condition["reason"]) == ("False", reason)
    assert plan.status.get("nextScheduleTime") is None and not plan.creates
    assert [e.reason for e in plan.events] == [reason]


def test_a_bad_spec_outranks_an_unfetched_calendar() -> None:
    body = job({"name": "team"}, startTime="2027-02-01T00:00:00", endTime="2027-01-01T00:00:00")
    plan = decide_job(body, [], {"team": feed_calendar()}, NOW)
    assert ready(plan.status)["reason"] == "InvalidSchedule"


SUSPENDED_WITH_A_PROBLEM = [
    ("a calendar that does not exist", {}, {}, "CalendarNotFound"),
    ("a feed not fetched yet", {"team": feed_calendar()}, {}, "CalendarNotFetched"),
    ("an invalid spec", {"team": "fetched"},
     {"startTime": "2027-04-01T00:00:00Z", "endTime": "2027-01-01T00:00:00Z"}, "InvalidSchedule"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("calendars", "wrong", "problem"),
    [c[1:] for c in SUSPENDED_WITH_A_PROBLEM],
    ids=[c[0] for c in SUSPENDED_WITH_A_PROBLEM],
)
def test_fires_that_fell_while_suspended_never_start_on_resume_whatever_else_was_wrong(
    calendars: dict[str, Any], wrong: dict[str, Any], problem: str
) -> None:
    """api.md "Missed fires": "A suspended job's fires are always recorded as missed on
    resume, whatever catchUp says". Suspension is known (Ready reason Suspended, the
    problem in its message and in one Warning) even when the job could not be scheduled;
    resumed and fixed, the hourly fires that fell meanwhile are missed, none starts."""
    good = fetched(feed_calendar(), ics(date(2027, 5, 1)))
    body = job({"name": "team"}, schedule="0 * * * *", suspend=True, **wrong)
    body["metadata"]["creationTimestamp"] = timestamp(NOW)
    held = {k: good if v == "fetched" else v for k, v in calendars.items()}
    suspended = decide_job(body, [], held, NOW + timedelta(minutes=5))
    condition = ready(suspended.status)
    assert (condition["status"], condition["reason"]) == ("False", "Suspended")
    assert f"({problem})" in condition["message"]
    assert [e.reason for e in suspended.events] == [problem]
    body["status"] = suspended.status
    again = decide_job(body, [], held, NOW + timedelta(minutes=6))
    assert again.events == ()  # the condition says it already
    for field in wrong:
        del body["spec"][field]
    body["spec"]["suspend"] = False
    body["metadata"]["generation"] = 2
    resumed = decide_job(body, [], {"team": good}, NOW + timedelta(hours=3, minutes=1))
    assert [c.body["spec"]["scheduledTime"] for c in resumed.creates] == []
    assert resumed.missed == 3  # 10:00, 11:00, 12:00
    assert "the job was suspended" in resumed.status["missedSchedules"]["message"]


def test_the_webhook_admits_a_job_whose_feed_is_not_fetched_yet_with_a_warning() -> None:
    review = review_scheduled_job(
        job({"name": "team"}), {"team": feed_calendar()}, default_time_zone="UTC", now=NOW
    )
    assert review.allowed
    assert review.warnings == [
        "spec.calendarRefs[0]: Calendar team has not been fetched yet; the job does not fire "
        "until it is"
    ]
    missing = review_scheduled_job(
        job({"kind": "ClusterCalendar", "name": "ro"}), {}, default_time_zone="UTC", now=NOW
    )
    assert missing.allowed
    assert missing.warnings == [
        'spec.calendarRefs[0].name: ClusterCalendar "ro" does not exist yet; the job will '
        "not fire until it does"
    ]


def test_explanations_name_the_feed() -> None:
    body = fetched(feed_calendar(), ics(date(2027, 3, 2), summary="Offsite"))
    schedule = resolve(ScheduledJob.parse(job({"name": "team"})), {"team": body})
    explanation = schedule.explain_day(date(2027, 3, 2))
    assert not explanation.fires
    assert 'iCalendar event "Offsite" (Calendar team, spec.source)' in explanation.message


# --------------------------------------------------------------------------------------
# A run's record


def test_a_scheduled_run_records_each_calendar_with_its_version() -> None:
    feed = fetched(feed_calendar(), ics(date(2027, 5, 1)))
    cluster = {
        "kind": "ClusterCalendar",
        "metadata": {"name": "ro", "resourceVersion": "42"},
        "spec": {"holidays": [{"country": "RO"}]},
    }
    body = job({"name": "team"}, {"kind": "ClusterCalendar", "name": "ro"}, schedule="* * * * *")
    calendars = {"team": feed, "ClusterCalendar/ro": cluster}
    plan = decide_job(body, [], calendars, NOW + timedelta(seconds=1))
    [create] = plan.creates
    record = create.body["spec"]["calendars"]
    assert record == [
        {
            "kind": "Calendar",
            "name": "team",
            "resourceVersion": "7",
            "revision": feed["status"]["source"]["revision"],
        },
        {"kind": "ClusterCalendar", "name": "ro", "resourceVersion": "42"},
    ]
    # The run's first status repeats it, for audits that read status.
    run = copy.deepcopy(create.body)
    run["metadata"].update(uid="uid-r", creationTimestamp=timestamp(NOW))
    run_plan = decide_run(run, [], body, NOW + timedelta(seconds=2))
    assert run_plan.status["calendars"] == record


def test_a_manual_run_records_no_calendars() -> None:
    body = job({"name": "team"})
    body["metadata"]["annotations"] = {"almanac.dev/run-now": "now"}
    plan = decide_job(body, [], {"team": fetched(feed_calendar(), ics())}, NOW)
    by_trigger = {c.body["spec"]["trigger"]: c.body["spec"] for c in plan.creates}
    assert "calendars" not in by_trigger["RunNow"]
    assert by_trigger["Schedule"]["calendars"][0]["name"] == "team"


def test_a_backfilled_run_records_the_calendars_its_instant_obeyed() -> None:
    # Its instants are the schedule's, exclusions and Calendars included (api.md
    # "Backfill"): the audit record says which holiday list chose them, as a fire's does.
    feed = fetched(feed_calendar(), ics(date(2027, 2, 2)))
    body = job({"name": "team"})
    backfill = {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": "bf", "namespace": "ns", "generation": 1, "uid": "uid-bf"},
        "spec": {"scheduledJob": "report", "from": "2027-02-01T00:00:00Z", "to": timestamp(NOW)},
    }
    plan = decide_backfill(backfill, body, [], {"team": feed}, NOW)
    [create] = plan.creates
    assert create.body["spec"]["trigger"] == "Backfill"
    assert create.body["spec"]["calendars"] == [
        {
            "kind": "Calendar",
            "name": "team",
            "resourceVersion": "7",
            "revision": feed["status"]["source"]["revision"],
        }
    ]


# --------------------------------------------------------------------------------------
# When to fetch, and what a fetch makes of the status


def test_a_feed_is_fetched_at_once_then_every_interval_and_again_on_a_spec_change() -> None:
    source = CalendarSource.model_validate({"url": URL, "refreshInterval": "10m"})
    never = feed_calendar({"url": URL, "refreshInterval": "10m"})
    assert fetch_due(never, source, NOW) == NOW
    done = fetched(never, ics(date(2027, 5, 1)))
    assert fetch_due(done, source, NOW) == NOW + timedelta(minutes=10)
    edited = copy.deepcopy(done)
    edited["metadata"]["generation"] = 2
    assert fetch_due(edited, source, NOW) == NOW


def test_a_first_fetch_keeps_the_copy_and_says_what_it_holds() -> None:
    body = feed_calendar()
    source = CalendarSource.model_validate(body["spec"]["source"])
    plan = decide_feed(body, source, Fetched(ics(date(2027, 5, 1), date(2027, 5, 2))), NOW)
    kept = plan.status["source"]
    assert feeds.unpack(kept["content"]) == ics(date(2027, 5, 1), date(2027, 5, 2))
    assert (kept["events"], kept["dates"]) == (2, 2)
    assert kept["lastFetchTime"] == kept["lastAttemptTime"] == "2027-03-01T09:00:00Z"
    assert kept["observedGeneration"] == 1 and plan.revision_changed
    condition = plan.status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("True", "Fetched")
    assert [e.reason for e in plan.events] == ["Fetched"]
    assert URL not in str(plan.status) and "secret-token" not in str(plan.events)


def test_an_unchanged_feed_writes_only_the_times() -> None:
    body = fetched(feed_calendar(), ics(date(2027, 5, 1)))
    source = CalendarSource.model_validate(body["spec"]["source"])
    later = NOW + timedelta(hours=1)
    plan = decide_feed(body, source, Fetched(ics(date(2027, 5, 1))), later)
    assert plan.status == {
        "source": {"lastAttemptTime": timestamp(later), "lastFetchTime": timestamp(later)}
    }
    assert not plan.events and not plan.revision_changed


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (FetchFailed("HTTP 503 Service Unavailable"), "HTTP 503 Service Unavailable"),
        (
            Fetched("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VTODO\nEND:VCALENDAR\n"),
            "not valid iCalendar (RFC 5545): line 3: END:VTODO closes BEGIN:VEVENT of line 2",
        ),
        (
            Fetched(ics(*(date(2027, 1, 1) + timedelta(days=i) for i in range(2001)))),
            "the feed has 2001 events (VEVENT); at most 2000 are allowed",
        ),
        (
            # Half a MiB of VTODOs and no event: each was parsed and kept in the parse
            # cache, and the events' bounds counted none of them.
            Fetched(_without_events(12_000)),
            f"the feed has 12001 components (BEGIN lines); at most "
            f"{bounds.ICAL_MAX_COMPONENTS} are allowed: the events (VEVENT), an alarm "
            "(VALARM) each and the time zones (VTIMEZONE) they use. Almanac reads only the "
            "events: leave out the rest (VTODO, VJOURNAL, X- components)",
        ),
        (
            Fetched(_one_event_of_lines(bounds.ICAL_MAX_CONTENT_LINES)),
            f"the feed has more than {bounds.ICAL_MAX_CONTENT_LINES} content lines; at most "
            f"{bounds.ICAL_MAX_CONTENT_LINES} are allowed",
        ),
    ],
    ids=[
        "unreachable",
        "not iCalendar",
        "too many events",
        "too many components of other kinds",
        "too many content lines",
    ],
)
def test_a_failed_fetch_keeps_the_last_copy_and_says_so(outcome: Any, message: str) -> None:
    body = fetched(feed_calendar(), ics(date(2027, 5, 1)))
    before = body["status"]["source"]
    source = CalendarSource.model_validate(body["spec"]["source"])
    later = NOW + timedelta(hours=1)
    plan = decide_feed(body, source, outcome, later)
    assert plan.status["source"] == {
        "lastAttemptTime": timestamp(later),
        "lastError": {"time": timestamp(later), "message": message},
    }
    condition = plan.status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("True", "FetchFailed")
    assert before["revision"] in condition["message"]
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "FetchFailed")]
    # The same error again: no second Event, the condition unchanged.
    body["status"]["source"] |= plan.status["source"]
    body["status"]["conditions"] = plan.status["conditions"]
    again = decide_feed(body, source, outcome, later + timedelta(hours=1))
    assert not again.events and "conditions" not in again.status


def test_a_feed_never_fetched_is_not_ready() -> None:
    body = feed_calendar()
    source = CalendarSource.model_validate(body["spec"]["source"])
    plan = decide_feed(body, source, FetchFailed("cannot connect: Connection refused"), NOW)
    condition = plan.status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "NotFetched")
    assert "content" not in plan.status["source"]
    # The Event names what happened, as with a copy kept: one reason finds every failure.
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "FetchFailed")]
    assert "not fetched yet" in plan.events[0].message


def test_a_copy_too_big_for_the_status_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounds, "FEED_KEPT_MAX_LENGTH", 100)
    body = feed_calendar()
    source = CalendarSource.model_validate(body["spec"]["source"])
    plan = decide_feed(body, source, Fetched(ics(date(2027, 5, 1))), NOW)
    assert "can be kept in the Calendar's status" in plan.status["source"]["lastError"]["message"]


# --------------------------------------------------------------------------------------
# The store: which jobs a calendar moves


def test_a_cluster_calendar_moves_the_jobs_of_every_namespace_that_refer_to_it() -> None:
    store = Store()
    for namespace, name, refs in [
        ("a", "one", [{"kind": "ClusterCalendar", "name": "ro"}]),
        ("b", "two", [{"kind": "ClusterCalendar", "name": "ro"}]),
        ("b", "three", [{"name": "ro"}]),  # the namespace's Calendar ro, not the cluster's
    ]:
        body = job(*refs)
        body["metadata"].update(namespace=namespace, name=name, resourceVersion="1")
        store.put(Kind.JOB, body)
    cluster = {"kind": "ClusterCalendar", "metadata": {"name": "ro", "resourceVersion": "1"}}
    store.put(Kind.CLUSTER_CALENDAR, cluster)
    assert sorted(store.jobs_referring_to(Kind.CLUSTER_CALENDAR, "", "ro")) == [
        ("a", "one"),
        ("b", "two"),
    ]
    assert list(store.jobs_referring_to(Kind.CALENDAR, "b", "ro")) == [("b", "three")]
    assert store.calendars_in("a") == {"ClusterCalendar/ro": cluster}


# --------------------------------------------------------------------------------------
# CRDs


def _schema(kind: str) -> dict[str, Any]:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            version = crd["spec"]["versions"][0]
            return dict(version["schema"]["openAPIV3Schema"]["properties"])
    raise AssertionError(kind)


def _without(node: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [_without(v, keys) for v in node]
    return node


def test_the_cluster_calendar_crd_has_the_calendars_spec_and_status() -> None:
    ignored = ("description", "x-kubernetes-validations")
    calendar, cluster = _schema("Calendar"), _schema("ClusterCalendar")
    for part in ("spec", "status"):
        assert _without(cluster[part], ignored) == _without(calendar[part], ignored)


def test_the_cluster_calendar_model_refuses_another_kind() -> None:
    with pytest.raises(InvalidSpec, match='kind: "Calendar" is not ClusterCalendar'):
        ClusterCalendar.parse(feed_calendar(kind="Calendar"))


# --------------------------------------------------------------------------------------
# The fetcher, against a real HTTP server on loopback


class _Server:
    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.paths: list[str] = []
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                status, headers, body = server.routes.get(self.path, (404, {}, b"no"))
                if server.delay:
                    threading.Event().wait(server.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:  # the fetcher gave up first (the timeout test)
                    return

            def log_message(self, *_: Any) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.http.shutdown()
    s.http.server_close()


LOOPBACK = HostAllowList.parse("http://127.0.0.1", "--feed-allowed-hosts")


def _get(url: str, allowed: HostAllowList | None = LOOPBACK) -> Any:
    return asyncio.run(fetcher.fetch_url(url, allowed))


def test_the_fetcher_reads_a_feed_and_follows_a_few_redirects(server: _Server) -> None:
    text = ics(date(2027, 5, 1))
    server.routes["/feed.ics"] = (200, {}, text.encode())
    for i in range(bounds.FEED_MAX_REDIRECTS):
        target = "/feed.ics" if i == 0 else f"/r{i - 1}"
        server.routes[f"/r{i}"] = (302, {"Location": target}, b"")
    assert _get(server.base + "/feed.ics") == Fetched(text)
    assert _get(server.base + f"/r{bounds.FEED_MAX_REDIRECTS - 1}") == Fetched(text)
    server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    assert _get(server.base + "/loop") == FetchFailed(
        f"more than {bounds.FEED_MAX_REDIRECTS} redirects"
    )


def test_the_fetcher_bounds_size_and_time_and_never_says_the_url(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounds, "FEED_MAX_BYTES", 1024)
    server.routes["/big"] = (200, {}, b"x" * 2048)
    assert _get(server.base + "/big") == FetchFailed("the feed is larger than 1,024 bytes")
    assert _get(server.base + "/missing?token=s3cret") == FetchFailed("HTTP 404 Not Found")
    monkeypatch.setattr(bounds, "FEED_TIMEOUT_SECONDS", 0.3)
    server.routes["/slow"] = (200, {}, b"late")
    server.delay = 1.0
    assert _get(server.base + "/slow") == FetchFailed("timed out after 0.3 s")
    server.delay = 0
    closed = _get("http://127.0.0.1:9/token-in-path.ics")
    assert isinstance(closed, FetchFailed) and closed.message.startswith("cannot connect")
    assert "token" not in closed.message and "127.0.0.1" not in closed.message


def test_the_fetcher_goes_only_to_allowed_hosts_redirects_included(server: _Server) -> None:
    """A feed on an allowed host cannot bounce the operator elsewhere: the redirect's
    target is checked before it is connected to (localhost is not 127.0.0.1 here)."""
    port = server.http.server_address[1]
    elsewhere = {"Location": f"http://localhost:{port}/feed.ics"}
    server.routes["/bounce?token=s3cret"] = (302, elsewhere, b"")
    server.routes["/feed.ics"] = (200, {}, ics(date(2027, 5, 1)).encode())
    assert _get(server.base + "/bounce?token=s3cret") == FetchFailed(
        f"redirected to http://localhost:{port}: localhost is not a host the operator fetches "
        "feeds from (allowed: http://127.0.0.1; set by the operator's --feed-allowed-hosts)"
    )
    assert server.paths == ["/bounce?token=s3cret"]
    assert _get(server.base + "/feed.ics", None) == FetchFailed(feeds.OFF)
    https_only = HostAllowList.parse("127.0.0.1", "--feed-allowed-hosts")
    refused = _get(server.base + "/feed.ics", https_only)
    assert refused == FetchFailed(
        f"http://127.0.0.1:{port}: plain http is allowed only to hosts the operator lists as "
        "http://host; use https (set by the operator's --feed-allowed-hosts)"
    )
    assert server.paths == ["/bounce?token=s3cret"]  # neither of the last two connected


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://calendar.example.com/a.ics", None),
        ("https://eu.feeds.example.org/x/y.ics?k=1", None),
        ("http://10.0.0.7:8080/days.ics", None),
        ("https://10.0.0.7/days.ics", None),
        ("http://calendar.example.com/a.ics", "plain http is allowed only to hosts"),
        ("https://feeds.example.org/a.ics", "feeds.example.org is not a host the operator"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is not a host"),
        ("https://Calendar.EXAMPLE.com/a.ics", None),
        ("https://calendar.example.com.evil.test/a.ics", "is not a host the operator"),
        ("ftp://calendar.example.com/a.ics", "not an http(s) URL"),
    ],
)
def test_a_feed_url_is_checked_against_the_allowed_hosts(url: str, refusal: str | None) -> None:
    allowed = HostAllowList.parse(
        "calendar.example.com, *.feeds.example.org, http://10.0.0.7", "--feed-allowed-hosts"
    )
    if refusal is None:
        feeds.check_url(url, allowed)
        return
    with pytest.raises(ValueError, match=re.escape(refusal)) as error:
        feeds.check_url(url, allowed)
    assert "/a.ics" not in str(error.value) and "meta-data" not in str(error.value)


def test_a_feed_url_is_refused_at_admission_unless_allowed_or_unchanged() -> None:
    allowed = HostAllowList.parse("calendar.example.com", "--feed-allowed-hosts")
    inside = feed_calendar({"url": URL})
    outside = feed_calendar({"url": "https://169.254.169.254/latest/meta-data"})
    assert feed_url_errors(inside, allowed) == []
    assert feed_url_errors(outside, allowed) == [
        "spec.source.url: https://169.254.169.254: 169.254.169.254 is not a host the operator "
        "fetches feeds from (allowed: calendar.example.com; set by the operator's "
        "--feed-allowed-hosts)"
    ]
    assert feed_url_errors(inside, None) == [f"spec.source.url: {feeds.OFF}"]
    # Stored before the list narrowed: still editable (the fetch says why it fails).
    assert feed_url_errors(outside, allowed, old=outside) == []
    config_map = feed_calendar({"configMapKeyRef": {"name": "days", "key": "k"}})
    assert feed_url_errors(config_map, None) == []
    assert feed_url_errors({"spec": {"source": "https://x"}}, None) == []  # the model's to say


# --------------------------------------------------------------------------------------
# Offline


def test_almanac_next_reports_a_feed_as_not_evaluated_offline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from almanac.cli.main import main

    example = Path(__file__).resolve().parent.parent.parent / "docs/examples/company-feed.yaml"
    code = main(["next", "-f", str(example), "--after", "2027-01-04T00:00:00Z"])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "not evaluated offline: Calendar acme-days-off (spec.calendarRefs[0]) takes its days "
        "from a feed (spec.source), which almanac does not fetch"
    ) in err
    assert "3f9c0a7e" not in err  # nor the feed's address


EXAMPLES = Path(__file__).resolve().parent.parent.parent / "docs" / "examples"


def test_almanac_next_evaluates_a_feed_given_as_a_local_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--feed CALENDAR=FILE``: the fires are those of the same Calendar with the file's
    text pasted as ``spec.ical`` (the operator's copy of a fetch is read the same way)."""
    from almanac.cli.main import main

    manifest = EXAMPLES / "company-feed.yaml"
    ics = EXAMPLES / "acme-days-off.ics"
    after = ["-n", "12", "--after", "2026-12-20T00:00:00Z"]
    assert main(["next", "-f", str(manifest), "--feed", f"acme-days-off={ics}", *after]) == 0
    with_feed = capsys.readouterr().out.splitlines()
    pasted = []
    for body in yaml.safe_load_all(manifest.read_text()):
        if body["kind"] == "Calendar":
            body["spec"] = {"ical": ics.read_text()}
        pasted.append(body)
    inline = tmp_path / "inline.yaml"
    inline.write_text(yaml.safe_dump_all(pasted))
    assert main(["next", "-f", str(inline), *after]) == 0
    assert with_feed == capsys.readouterr().out.splitlines()
    assert "2026-12-28T08:00:00Z" not in with_feed  # a Monday of the feed's change freeze


@pytest.mark.parametrize(
    ("feed", "says"),
    [
        ("nope={ics}", "--feed nope: no Calendar of that name with spec.source here"),
        ("acme-days-off", "--feed acme-days-off: expected CALENDAR=FILE"),
        ("acme-days-off={missing}", "cannot read"),
        (
            "acme-days-off={bad}",
            "not valid iCalendar (RFC 5545): line 2: BEGIN:VEVENT is never closed",
        ),
    ],
    ids=["no such feed", "no file", "unreadable file", "invalid text"],
)
def test_a_feed_file_that_cannot_be_used_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], feed: str, says: str
) -> None:
    from almanac.cli.main import main

    bad = tmp_path / "bad.ics"
    bad.write_text("BEGIN:VCALENDAR\nBEGIN:VEVENT\n")
    paths = {"ics": EXAMPLES / "acme-days-off.ics", "missing": tmp_path / "none", "bad": bad}
    argv = ["next", "-f", str(EXAMPLES / "company-feed.yaml"), "--feed", feed.format(**paths)]
    assert main(argv) == 2
    assert says in capsys.readouterr().err


def test_calendar_diff_offline_reads_a_feed_from_a_local_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The feed's text serves both versions: an edit of the Calendar's other lists is
    compared with the feed's days in place."""
    from almanac.cli.main import main

    manifest = EXAMPLES / "company-feed.yaml"
    [current] = [b for b in yaml.safe_load_all(manifest.read_text()) if b["kind"] == "Calendar"]
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        yaml.safe_dump({**current, "spec": {**current["spec"], "holiday": ["04.01.2027"]}})
    )
    argv = ["calendar-diff", "-f", str(edited), "--jobs", str(manifest), "--days", "30"]
    argv += [
        "--after",
        "2026-12-20T00:00:00Z",
        "--feed",
        f"acme-days-off={EXAMPLES / 'acme-days-off.ics'}",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[:3] == ["acme-deploy", "disappears", "2027-01-04T08:00:00Z"]
    assert out[-1] == "1 ScheduledJob(s) refer to it: 0 fire(s) appear, 1 disappear."
