"""Bounds (almanac.api.bounds, docs/api.md "Bounds"): every limit, at it and one past it,
and every edge value of the integration fuzz (tests/integration/test_fuzz.py).

For each value: either the models and the admission webhook refuse it, naming the field,
or the schedule resolves and the engine answers quickly; and the operator's decision
never fails: the job gets a Ready condition with a message. The CRDs carry the same
numbers (hack/crd-bounds.py writes them) and refuse out-of-range years by themselves.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib.util
import random
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from almanac import kube
from almanac.api import bounds
from almanac.api.models import Backfill, Calendar, ScheduledJob
from almanac.api.resolve import resolve
from almanac.controller.admission import review_calendar, review_scheduled_job
from almanac.errors import InvalidSpec
from almanac.rules.jobs import decide_job
from almanac.rules.plans import ready_condition
from almanac.rules.runs import decide_run
from almanac.schedule.engine import NeverFires
from tests.integration.objects import calendar, scheduled_job, service
from tests.integration.test_fuzz import EDGES, SEED, manifests

REPO = Path(__file__).resolve().parent.parent.parent
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
QUICK = 1.0  # seconds: what "answers quickly" means here (a decision takes milliseconds)


def _load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "hack" / file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load("crd_bounds", "crd-bounds.py")


def job_body(name: str = "bounds", **spec: Any) -> dict[str, Any]:
    """A ScheduledJob as the API server stores it (namespace, uid, generation)."""
    body = scheduled_job(name, "0 3 * * *")
    body["spec"].update(spec)
    body["metadata"].update(
        namespace="team", uid="uid-1", generation=1, creationTimestamp="2026-12-01T00:00:00Z"
    )
    return body


def with_field(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with ``spec.<path>`` (dotted) set to ``value``."""
    body = copy.deepcopy(body)
    target = body["spec"]
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return body


def ready(plan_status: dict[str, Any]) -> dict[str, Any]:
    [condition] = [c for c in plan_status.get("conditions") or [] if c["type"] == "Ready"]
    return condition


def calendars_for(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A Calendar (empty) for every calendarRef the body names."""
    refs = body["spec"].get("calendarRefs") or []
    names = [r.get("name") for r in refs if isinstance(r, dict) and isinstance(r.get("name"), str)]
    return {n: {**calendar(n), "metadata": {"name": n, "namespace": "team"}} for n in names}


def decided_quickly(body: dict[str, Any]) -> dict[str, Any]:
    """The decision's Ready condition; it must not fail, and must be quick."""
    started = time.perf_counter()
    plan = decide_job(body, [], calendars_for(body), NOW)
    assert time.perf_counter() - started < QUICK
    condition = ready(plan.status)
    assert condition["status"] in ("True", "False") and condition["message"]
    return condition


def review(body: dict[str, Any]) -> list[str]:
    return review_scheduled_job(body, calendars_for(body), default_time_zone="UTC", now=NOW).errors


def assert_accepted(body: dict[str, Any]) -> None:
    """The models and the webhook accept it; the engine answers quickly."""
    assert review(body) == []
    started = time.perf_counter()
    schedule = resolve(ScheduledJob.parse(body), calendars_for(body))
    upcoming = schedule.next_fire(NOW)
    assert time.perf_counter() - started < QUICK
    assert isinstance(upcoming, datetime | NeverFires)
    assert decided_quickly(body)["reason"] != "InvalidSchedule"


def assert_refused(body: dict[str, Any], path: str, words: str) -> None:
    """The models and the webhook refuse it, naming the field; the job is not Ready."""
    with pytest.raises(InvalidSpec) as refused:
        ScheduledJob.parse(body)
    messages = [str(e) for e in refused.value.errors]
    assert any(m.startswith(f"{path}: ") and words in m for m in messages), messages
    errors = review(body)
    assert any(e.startswith(f"{path}: ") and words in e for e in errors), errors
    condition = decided_quickly(body)
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSchedule")
    assert path in condition["message"]


def days(first: date, count: int) -> list[str]:
    return [(first + timedelta(days=i)).strftime("%d.%m.%Y") for i in range(count)]


# --------------------------------------------------------------------------------------
# every limit: the value at it is accepted, one past it refused with the field path

ALL_YEAR = [
    f"{d.day:02d}.{d.month:02d}" for d in (date(2028, 1, 1) + timedelta(i) for i in range(366))
]
SERVICES = [service(f"s{i}") for i in range(bounds.SERVICES_MAX_ITEMS)]
RECIPIENTS = [f"ops{i}@example.com" for i in range(bounds.RECIPIENTS_MAX_ITEMS)]
LONG_ADDRESS = "o" * 64 + "@" + ".".join(["d" * 60] * 3) + "." + "e" * 6  # 254 characters
assert len(LONG_ADDRESS) == bounds.RECIPIENT_MAX_LENGTH
REFS = [{"name": f"cal-{i}"} for i in range(bounds.CALENDAR_REFS_MAX_ITEMS)]

LIMITS: list[tuple[str, str, Any, Any, str]] = [
    # (field, path of the error, the value at the limit, one past it, words of the error)
    (
        "startTime",
        "spec.startTime",
        "1970-01-01T00:00:00",
        "1969-12-31T23:59:59",
        "year 1969 is outside 1970-2200",
    ),
    (
        "startTime",
        "spec.startTime",
        "2200-12-31T23:59:59",
        "2201-01-01T00:00:00",
        "year 2201 is outside 1970-2200",
    ),
    (
        "startTime",
        "spec.startTime",
        "2027-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00",
        "year 1 is outside 1970-2200",
    ),
    (
        "endTime",
        "spec.endTime",
        "2200-12-31T23:59:59Z",
        "9999-12-31T23:59:59",
        "year 9999 is outside 1970-2200",
    ),
    (
        "endTime",
        "spec.endTime",
        "2027-01-01T00:00:00",
        "1970-01-01T00:00:00" + " " * 7,
        "at most 25",
    ),
    (
        "exclusions.holiday",
        "spec.exclusions.holiday[0]",
        ["01.01.1970"],
        ["31.12.1969"],
        "year 1969 is outside 1970-2200 (dd.MM.yyyy)",
    ),
    (
        "exclusions.holiday",
        "spec.exclusions.holiday[0]",
        ["31.12.2200"],
        ["01.01.2201"],
        "year 2201 is outside",
    ),
    (
        "exclusions.holiday",
        "spec.exclusions.holiday",
        days(date(2027, 1, 1), 4096),
        days(date(2027, 1, 1), 4097),
        "has 4097 items; at most 4096",
    ),
    ("exclusions.annual", "spec.exclusions.annual", ALL_YEAR, [*ALL_YEAR, "25.12"], "at most 366"),
    (
        "exclusions.annual",
        "spec.exclusions.annual[0]",
        [" " * 27 + "25.12"],
        [" " * 28 + "25.12"],
        "at most 32 are allowed",
    ),
    (
        "exclusions.monthly",
        "spec.exclusions.monthly",
        list(range(1, 32)),
        [*range(1, 32), 1],
        "at most 31",
    ),
    (
        "exclusions.weekly",
        "spec.exclusions.weekly",
        ["Mon", "Tue"] * 7,
        ["Mon", "Tue"] * 7 + ["Wed"],
        "at most 14",
    ),
    (
        "startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
        31_536_000,
        31_536_001,
        "must be at most 31536000",
    ),
    ("startingDeadlineSeconds", "spec.startingDeadlineSeconds", 0, -1, "must be at least 0"),
    (
        "successfulRunsHistoryLimit",
        "spec.successfulRunsHistoryLimit",
        1000,
        1001,
        "must be at most 1000",
    ),
    ("failedRunsHistoryLimit", "spec.failedRunsHistoryLimit", 1000, 10**9, "must be at most 1000"),
    ("failedRunsHistoryLimit", "spec.failedRunsHistoryLimit", 0, -5, "must be at least 0"),
    ("calendarRefs", "spec.calendarRefs", REFS, [*REFS, {"name": "one-more"}], "at most 32"),
    (
        "calendarRefs",
        "spec.calendarRefs[0].name",
        [{"name": "c" * 253}],
        [{"name": "c" * 254}],
        "at most 253",
    ),
    (
        "notifications",
        "spec.notifications.to",
        {"to": RECIPIENTS},
        {"to": [*RECIPIENTS, "x@example.com"]},
        "at most 64",
    ),
    (
        "notifications",
        "spec.notifications.to[0]",
        {"to": [LONG_ADDRESS]},
        {"to": ["o" + LONG_ADDRESS]},
        "254",
    ),
    (
        "services",
        "spec.services",
        SERVICES,
        [*SERVICES, service("one-more")],
        "has 51 items; at most 50",
    ),
    ("services", "spec.services", SERVICES[:1], [], "needs at least 1 item"),
    (
        "services",
        "spec.services[0].name",
        [service("s" * 20)],
        [service("s" * 21)],
        "at most 20 characters",
    ),
    ("schedule", "spec.schedule", " " * 119 + "0 0 * * *", " " * 120 + "0 0 * * *", "at most 128"),
    ("maxShiftDays", "spec.maxShiftDays", 31, 32, "must be at most 31"),
    ("maxShiftDays", "spec.maxShiftDays", 1, 0, "must be at least 1"),
    (
        "timeZone",
        "spec.timeZone",
        "America/Argentina/ComodRivadavia",
        "Europe/" + "x" * 58,
        "at most 64",
    ),
]


@pytest.mark.parametrize(
    ("field", "path", "at_limit", "past_limit", "words"),
    LIMITS,
    ids=[f"{row[1]} {str(row[4])[:30]}" for row in LIMITS],
)
def test_a_value_at_its_limit_is_accepted_and_one_past_it_refused_naming_the_field(
    field: str, path: str, at_limit: Any, past_limit: Any, words: str
) -> None:
    assert_accepted(with_field(job_body(), field, at_limit))
    assert_refused(with_field(job_body(), field, past_limit), path, words)


def test_the_engine_handles_every_shift_the_bounds_admit() -> None:
    from almanac.schedule.days import MAX_SHIFT_DAYS

    assert bounds.MAX_SHIFT_DAYS_MAX == MAX_SHIFT_DAYS
    assert bounds.MAX_SHIFT_DAYS_MIN <= bounds.MAX_SHIFT_DAYS_DEFAULT <= MAX_SHIFT_DAYS


def test_a_scheduledjob_name_has_at_most_28_characters() -> None:
    assert_accepted(job_body("j" * 28))
    assert_refused(job_body("j" * 29), "metadata.name", "at most 28 are allowed")


def test_a_calendar_is_refused_past_its_bounds_naming_the_field() -> None:
    fine = calendar("c", holiday=days(date(2027, 1, 1), 4096), annual=ALL_YEAR)
    fine["spec"]["description"] = "d" * 256
    assert review_calendar(fine).errors == []
    Calendar.parse(fine)
    bad = calendar("c", holiday=["01.01.2201"])
    bad["spec"]["description"] = "d" * 257
    assert sorted(review_calendar(bad).errors) == [
        'spec.description: is 257 characters long; at most 256 are allowed (got "'
        + "d" * 40
        + '...")',
        'spec.holiday[0]: "01.01.2201": year 2201 is outside 1970-2200 (dd.MM.yyyy)',
    ]


def test_a_referenced_calendar_out_of_bounds_makes_the_job_not_ready_naming_it() -> None:
    body = job_body(calendarRefs=[{"name": "hol"}])
    bad = {**calendar("hol", holiday=["01.01.0001"]), "metadata": {"name": "hol"}}
    plan = decide_job(body, [], {"hol": bad}, NOW)
    condition = ready(plan.status)
    assert condition["status"] == "False"
    assert 'Calendar hol: spec.holiday[0]: "01.01.0001": year 1 is outside' in condition["message"]


# --------------------------------------------------------------------------------------
# the names: every Job name the operator derives fits in a label value


def test_the_name_arithmetic_keeps_every_job_name_within_63_characters() -> None:
    run = (
        bounds.SCHEDULED_JOB_NAME_MAX_LENGTH
        + 1
        + bounds.RUN_MINUTES_DIGITS
        + bounds.RUN_SUFFIX_MAX_LENGTH
    )
    assert run == bounds.RUN_NAME_MAX_LENGTH == 42
    assert run + 1 + bounds.SERVICE_NAME_MAX_LENGTH == bounds.JOB_LABEL_MAX_LENGTH == 63
    # Unix minutes have 8 digits until 2160-02-18 (docs: the fires after that are refused).
    last = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(minutes=10**bounds.RUN_MINUTES_DIGITS - 1)
    assert last.date() == date(2160, 2, 18)


@functools.cache
def crd(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "crds" / name).read_text())
    return loaded


def root(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = crd(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_the_crds_name_rules_use_the_bounds() -> None:
    [job_rule] = root("almanac.dev_scheduledjobs.yaml")["x-kubernetes-validations"]
    [run_rule] = root("almanac.dev_scheduledjobruns.yaml")["x-kubernetes-validations"]
    assert (
        job_rule["rule"] == f"self.metadata.name.size() <= {bounds.SCHEDULED_JOB_NAME_MAX_LENGTH}"
    )
    assert run_rule["rule"] == f"self.metadata.name.size() <= {bounds.RUN_NAME_MAX_LENGTH}"


# --------------------------------------------------------------------------------------
# the CRDs: written from the same constants


def test_the_crds_hold_the_bounds_hack_crd_bounds_writes() -> None:
    stale = [p.name for p, text in gen.generate().items() if p.read_text() != text]
    assert stale == [], "run `make crd-schemas` (then `make manifests`)"
    for path, nodes in gen.BOUNDS.items():
        schema = root(path.name)
        for node, keywords in nodes.items():
            found = gen.schema_node(schema, node)
            assert {k: found.get(k) for k in keywords} == keywords, f"{path.name} {node}"


def test_the_year_regex_admits_exactly_the_years_in_bounds() -> None:
    pattern = re.compile(f"({gen.YEARS})")
    admitted = [y for y in range(10000) if pattern.fullmatch(f"{y:04d}")]
    assert admitted == list(range(bounds.YEAR_MIN, bounds.YEAR_MAX + 1))
    for lo, hi in [(0, 9999), (1, 9999), (1999, 2000), (123, 4567), (2027, 2027)]:
        other = re.compile(f"({gen.year_regex(lo, hi)})")
        assert [y for y in range(10000) if other.fullmatch(f"{y:04d}")] == list(range(lo, hi + 1))


def cel_matches(rule: str, value: str) -> bool:
    """A year rule as the API server evaluates it: `!self.matches(a) || self.matches(b)`
    (RE2 searches, as Python's re.search does; `$` is the end of the text in RE2)."""
    m = re.fullmatch(r"!self\.matches\('(.+)'\) \|\| self\.matches\('(.+)'\)", rule.strip())
    assert m, rule
    guard, year = (re.sub(r"\$$", r"\\Z", p) for p in m.groups())
    return not re.search(guard, value) or bool(re.search(year, value))


def year_rules(name: str, node: str) -> list[str]:
    rules = gen.schema_node(root(name), node).get("x-kubernetes-validations", [])
    return [r["rule"] for r in rules if "year" in r.get("messageExpression", "")]


@pytest.mark.parametrize(
    ("value", "admitted"),
    [
        ("1970-01-01T00:00:00", True),
        ("2200-12-31T23:59:59+02:00", True),
        ("2027-01-01T00:00:00Z", True),
        ("0001-01-01T00:00:00", False),
        ("1969-12-31T23:59:59", False),
        ("2201-01-01T00:00:00", False),
        ("9999-12-31T23:59:59", False),
        ("not a time", True),  # the pattern refuses it, with its own message
    ],
)
def test_the_crd_refuses_start_and_end_times_outside_the_years(value: str, admitted: bool) -> None:
    for node in ("spec.startTime", "spec.endTime"):
        [rule] = year_rules("almanac.dev_scheduledjobs.yaml", node)
        assert cel_matches(rule, value) is admitted


@pytest.mark.parametrize(
    ("value", "admitted"),
    [
        ("01.01.1970", True),
        ("31.12.2200", True),
        ("1.5.2027", True),
        ("01.01.0001", False),
        ("31.12.1969", False),
        ("01.01.2201", False),
        ("31.12.9999", False),
        ("25.12", True),  # not a date at all: the date rule refuses it
    ],
)
def test_the_crds_refuse_holidays_outside_the_years(value: str, admitted: bool) -> None:
    for name, node in (
        ("almanac.dev_scheduledjobs.yaml", "spec.exclusions.holiday[]"),
        ("almanac.dev_calendars.yaml", "spec.holiday[]"),
    ):
        [rule] = year_rules(name, node)
        assert cel_matches(rule, value) is admitted


def cel_instant_within(rule: str, value: str) -> bool:
    """A `format: date-time` field's year rule as the API server evaluates it: the field
    is a timestamp in CEL, `self >= timestamp(a) && self < timestamp(b)` (the API server
    refuses `matches` on it when the CRD is applied)."""
    m = re.fullmatch(r"self >= timestamp\('(.+)'\) && self < timestamp\('(.+)'\)", rule.strip())
    assert m, rule
    first, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in m.groups())
    return first <= datetime.fromisoformat(value.replace("Z", "+00:00")) < end


@pytest.mark.parametrize(
    ("value", "crd", "model"),
    [
        ("1970-01-01T00:00:00Z", True, True),
        ("1970-01-01T00:30:00+02:00", True, True),  # 1969 in UTC: the year as written
        ("2200-12-31T23:59:59-05:00", True, True),  # 2201 in UTC
        ("2027-01-01T00:00:00.5Z", True, True),
        ("1969-12-31T23:59:59Z", True, False),  # within the CRD's day of margin
        ("2201-01-01T00:00:00Z", True, False),
        ("0001-01-01T00:00:00Z", False, False),
        ("9999-12-31T23:59:59-01:00", False, False),
    ],
)
def test_the_backfill_crd_refuses_from_and_to_outside_the_years_as_the_model_does(
    value: str, crd: bool, model: bool
) -> None:
    """docs/api.md "Bounds": Backfill `from`, `to` in 1970-2200, refused by the webhook
    and the operator (the model) and, more than a day outside them, at kubectl apply by
    the CRD, which never refuses what the model admits."""
    for node, spec in (
        ("spec.from", {"from": value, "to": "2200-12-31T23:59:59Z"}),
        ("spec.to", {"from": "1970-01-01T00:00:00Z", "to": value}),
    ):
        rules = year_rules("almanac.dev_backfills.yaml", node)
        assert len(rules) == 1, f"{node}: no CEL rule on the years"
        assert cel_instant_within(rules[0], value) is crd
        admitted = model
        body = {"metadata": {"name": "b"}, "spec": {"scheduledJob": "j", **spec}}
        try:
            Backfill.parse(body)
            model_admits = True
        except InvalidSpec as e:
            model_admits = not any(
                error.path == node and "outside 1970-2200" in error.message for error in e.errors
            )
        assert model_admits is admitted


@pytest.mark.parametrize(
    "value",
    [
        "2027-01-04T00:00:00Z",
        "2027-01-04T00:00:00.5+02:00",
        "2027-01-04T00:00:00.123456Z",
        "2027-01-04T00:00:00.1234567Z",  # more digits than Python keeps: cut to microseconds
        "2027-01-04T00:00:00.123456789Z",  # Go's RFC3339Nano, as a Go client writes it
        "2027-01-04T00:00:00.123456+02:00",  # 32 characters, the CRD's maxLength
    ],
)
def test_a_backfill_instant_the_crd_admits_the_model_admits(value: str) -> None:
    """RFC 3339 allows any number of fraction digits, and the CRD's `format: date-time`
    admits them within `maxLength: 32`: the operator must not then refuse the Backfill
    saying the value "is not an RFC 3339 instant"."""
    assert len(value) <= 32
    spec = {"scheduledJob": "j", "from": value, "to": "2027-02-01T00:00:00Z"}
    backfill = Backfill.parse({"metadata": {"name": "b"}, "spec": spec})
    assert backfill.spec.start == datetime(2027, 1, 4, tzinfo=UTC) - timedelta(
        hours=2 if value.endswith("+02:00") else 0
    )


# --------------------------------------------------------------------------------------
# the fuzz's edge values: refused with a field path, or decided quickly, never failing

EDGE_CASES = [(path, value) for path in sorted(EDGES) for value in EDGES[path]]


@pytest.mark.parametrize(
    ("path", "value"), EDGE_CASES, ids=[f"{p}={str(v)[:40]!r}" for p, v in EDGE_CASES]
)
def test_every_fuzz_edge_value_is_refused_with_its_field_or_decided_quickly(
    path: str, value: Any
) -> None:
    body = with_field(job_body(), path, value)
    errors = review(body)
    condition = decided_quickly(body)
    if errors:
        assert all(re.match(r"(spec|metadata)\.", e) for e in errors), errors
    else:
        assert_accepted(body)
    if condition["reason"] == "InvalidSchedule":
        assert re.match(r"(spec|metadata)\.", condition["message"]), condition["message"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("exclusions.annual", EDGES["exclusions.annual"][-1]),  # 336 entries
        ("exclusions.holiday", EDGES["exclusions.holiday"][-1]),  # 384 entries
        ("timeZone", "Etc/GMT+12"),
        ("schedule", "0 0 29 2 1"),
        ("schedule", "0 0 30 2 *"),
    ],
    ids=["annual 336", "holiday 384", "Etc/GMT+12", "0 0 29 2 1", "0 0 30 2 *"],
)
def test_the_fuzz_values_that_must_be_accepted_are(path: str, value: Any) -> None:
    body = with_field(job_body(), path, value)
    assert_accepted(body)


def test_the_fuzz_manifests_are_each_refused_with_a_field_or_decided() -> None:
    for generated in manifests(random.Random(SEED)):
        body = job_body(generated["metadata"]["name"])
        body["spec"] = generated["spec"]
        errors = review(body)
        assert all(re.match(r"(spec|metadata)\.", e) for e in errors), errors
        decided_quickly(body)


# --------------------------------------------------------------------------------------
# a run whose scheduled time is out of bounds fails, saying why; it never starts


def run_body(scheduled: Any) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJobRun",
        "metadata": {"name": "bounds-29000000", "namespace": "team", "uid": "run-1"},
        "spec": {"scheduledJob": "bounds", "scheduledTime": scheduled, "services": [service("a")]},
    }


@pytest.mark.parametrize(
    ("scheduled", "message"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-01 is outside 1969-12-31 to 2201-01-01"),
        ("9999-12-31T23:59:59Z", "9999-12-31 is outside"),
        ("2201-01-02T00:00:00Z", "2201-01-02 is outside"),
        ("2027-01-04T00:30:00", "'2027-01-04T00:30:00' is not an RFC 3339 instant"),
        ("garbage", "'garbage' is not an RFC 3339 instant"),
        (None, "is required"),
    ],
)
def test_a_run_scheduled_out_of_bounds_fails_with_an_invalid_run_event(
    scheduled: Any, message: str
) -> None:
    plan = decide_run(run_body(scheduled), [], job_body(), NOW)
    assert plan.status["phase"] == "Failed" and plan.creates == ()
    assert plan.status["message"].startswith(f"not executed: spec.scheduledTime: {message}")
    assert plan.status["completionTime"] == "2026-12-05T12:00:00Z"
    [event] = plan.events
    assert (event.type, event.reason) == ("Warning", "InvalidRun")
    assert message in event.message
    assert plan.finished_now and plan.wake_at is None


@pytest.mark.parametrize(
    "scheduled", ["1969-12-31T00:00:00Z", "2026-12-05T11:00:00+14:00", "2201-01-01T23:59:59Z"]
)
def test_a_run_scheduled_within_a_day_of_the_years_runs(scheduled: str) -> None:
    plan = decide_run(run_body(scheduled), [], job_body(), NOW)
    assert plan.status["phase"] in ("Pending", "Running")
    assert not any(e.reason == "InvalidRun" for e in plan.events)


def test_a_failed_invalid_run_is_not_decided_again() -> None:
    run = run_body("0001-01-01T00:00:00Z")
    run["status"] = decide_run(run, [], job_body(), NOW).status
    assert decide_run(run, [], job_body(), NOW + timedelta(minutes=5)).status == {}


# --------------------------------------------------------------------------------------
# messages the operator writes are bounded, and say so when cut


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("short", 1024),
        ("x" * 1024, 1024),
        ("x" * 1025, 1024),
        ("ä" * 600, 1024),  # 1200 bytes
        ("€" * 20_000, bounds.CONDITION_MESSAGE_MAX_BYTES),
        ("y" * 100_000, bounds.CONDITION_MESSAGE_MAX_BYTES),
    ],
    ids=["short", "at the limit", "one past", "two-byte characters", "three-byte", "long"],
)
def test_truncate_keeps_a_message_within_its_bytes_and_marks_the_cut(text: str, limit: int) -> None:
    cut = bounds.truncate(text, limit)
    assert len(cut.encode()) <= limit
    if len(text.encode()) <= limit:
        assert cut == text
    else:
        assert cut.endswith(bounds.TRUNCATED) and text.startswith(cut[: -len(bounds.TRUNCATED)])
        assert len(cut.encode()) > limit - 4  # nothing cut that did not need to be


def test_a_condition_message_is_cut_at_32_kib() -> None:
    condition = ready_condition("False", "InvalidSchedule", "e" * 40_000, 1, [], NOW)
    assert len(condition["message"].encode()) <= bounds.CONDITION_MESSAGE_MAX_BYTES
    assert condition["message"].endswith("… (truncated)")


def test_an_invalid_spec_with_thousands_of_errors_gives_a_bounded_ready_message() -> None:
    body = job_body(exclusions={"holiday": ["01.01.0001"] * 4096})
    condition = decided_quickly(body)
    assert condition["reason"] == "InvalidSchedule"
    assert len(condition["message"].encode()) <= bounds.CONDITION_MESSAGE_MAX_BYTES
    assert condition["message"].endswith(bounds.TRUNCATED)


def test_an_event_message_is_cut_at_1_kib() -> None:
    posted: list[dict[str, Any]] = []

    class Posting(kube.Kube):
        def __init__(self) -> None:
            self.fence = None

        async def _json(self, method: str, path: str, body: Any = None, **_: Any) -> None:
            assert (method, path) == ("POST", "/api/v1/namespaces/team/events"), (method, path)
            posted.append(body)

    api = Posting()
    body = job_body()
    asyncio.run(api.event(body, "Warning", "InvalidSchedule", "m" * 5000, key="k"))
    [event] = posted
    assert len(event["message"].encode()) <= bounds.EVENT_MESSAGE_MAX_BYTES
    assert event["message"].endswith(bounds.TRUNCATED)
