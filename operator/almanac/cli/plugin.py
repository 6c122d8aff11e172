"""The ``kubectl almanac`` plugin (the ``kubectl-almanac`` console script).

Where it sits: at the edge, like :mod:`almanac.cli.main`. It finds the cluster as kubectl
does (``--kubeconfig``, else $KUBECONFIG, else ~/.kube/config; ``--context``, else the
current one; ``-n``, else the context's namespace, else ``default``), reads and annotates
objects through :mod:`almanac.kube`, and prints. Every table and report comes from a
pure ``format_*`` function of API dicts and ``now``, and every "did the operator act
yet?" decision from a pure ``*_outcome`` function, so tests pin the words without a
cluster. The verbs only fetch, call those, and pick the exit code::

    kubectl almanac [-n NS] [--kubeconfig FILE] [--context NAME] VERB ...

    runs JOB [--limit N]                  recent runs, newest first, phase per service
    rerun RUN [--failed-only] [--wait S]  almanac.dev/rerun=now|failed, then the child
    run JOB [--wait S]                    almanac.dev/run-now=<now>, then the manual run
    next JOB [-n COUNT]                   the live job's next fires, skipped days and why
    describe RUN                          a run: services, notification, Events, what next

Exit codes: 0 done (also: a rerun or run-now annotation set but not yet acted on within
``--wait``); 1 an object is missing, the cluster cannot be used, the operator refused the
rerun or run-now, or the job does not fire (``next``); 2 bad usage (argparse).

The operator decides; the plugin only relays. A rerun or a run-now is the annotation
the operator consumes (docs/api.md, "Reruns and manual runs"); the plugin then watches,
boundedly, for what the operator answers: the new run, or a refusing Event.

Errors::

    PluginError          one message for the user: "Error: <message>" on stderr, exit 1
     ├── NotFound        kubectl's words: scheduledjob "x" not found in namespace "y"
     └── Unreachable     one line naming the server and pointing to kubectl cluster-info
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException

from almanac import __version__
from almanac.api.models import Calendar, ScheduledJob
from almanac.api.names import (
    ANNOTATION_RERUN,
    ANNOTATION_RUN_NOW,
    CALENDARS,
    LABEL_JOB,
    RUNS,
    SCHEDULED_JOBS,
    rerun_name,
)
from almanac.errors import InvalidSpec, quote
from almanac.kube import (
    Body,
    Kube,
    api_message,
)
from almanac.rules.policy import TERMINAL
from almanac.schedule.engine import NeverFires
from almanac.schedule.explain import Fire, SkippedDay, first_fires, format_local
from almanac.schedule.zones import parse_time_zone
from almanac.times import format_duration, format_instant, parse_time

__all__ = [
    "NotFound",
    "PluginError",
    "Unreachable",
    "build_parser",
    "format_next",
    "format_run",
    "format_runs",
    "format_table",
    "human_duration",
    "main",
    "rerun_outcome",
    "run_now_outcome",
]

EXIT_OK, EXIT_ERROR = 0, 1

#: How long the API server may take over all of a verb's requests (besides ``--wait``).
#: The client has no timeout of its own, and a firewalled server would hang forever.
API_DEADLINE_SECONDS = 30.0
#: The default bound of the wait after a rerun or run-now annotation: the operator acts
#: within about a second, so 10 s means it is not running (or not for this namespace).
DEFAULT_WAIT_SECONDS = 10.0
#: How often the wait polls.
POLL_SECONDS = 0.5
#: Runs shown by ``runs`` without ``--limit``.
DEFAULT_LIMIT = 20

NONE = "<none>"


class PluginError(Exception):
    """A problem to show the user as one ``Error: ...`` message (exit 1)."""


class NotFound(PluginError):
    """An object is missing, said as kubectl says it."""

    def __init__(self, kind: str, name: str, namespace: str) -> None:
        super().__init__(f"{kind} {quote(name)} not found in namespace {quote(namespace)}")


class Unreachable(PluginError):
    """No answer from the API server; one line that names it and says what to try."""

    def __init__(self, server: str, why: str) -> None:
        super().__init__(
            f"cannot reach the Kubernetes API server at {server} ({why}); is the cluster "
            f"running and is this the right context? Check with: kubectl cluster-info"
        )


# --------------------------------------------------------------------------------------
# Pure formatting: API dicts and `now` in, lines out


def human_duration(delta: timedelta) -> str:
    """kubectl's AGE (apimachinery ``duration.HumanDuration``): 45s, 3m12s, 5h7m, 3d4h."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = divmod(hours // 24, 365)
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def format_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = ""
) -> list[str]:
    """Columns as kubectl prints them: left-aligned, three spaces apart."""
    table = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return [
        indent + "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]


def _time(value: object) -> datetime | None:
    """An API time (``...Z`` or ``+00:00``); None when absent or unreadable."""
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _age(value: object, now: datetime) -> str:
    when = _time(value)
    return "<unknown>" if when is None else human_duration(now - when)


def _relative(when: datetime, now: datetime) -> str:
    """``in 59s`` or ``3m ago``."""
    return f"in {human_duration(when - now)}" if when > now else f"{human_duration(now - when)} ago"


def _instant_text(value: object, now: datetime) -> str:
    """``2027-01-04T00:30:00Z (3m ago)``, or <none>."""
    when = _time(value)
    return NONE if when is None else f"{format_instant(when)} ({_relative(when, now)})"


def _name(body: Body) -> str:
    return str(body.get("metadata", {}).get("name", ""))


def _phase(run: Body) -> str:
    return str((run.get("status") or {}).get("phase") or "Pending")


def _services(run: Body) -> list[Body]:
    """The run's services with their status; those without one yet are Pending."""
    status = {s.get("name"): s for s in (run.get("status") or {}).get("services") or []}
    named = [s.get("name") for s in (run.get("spec") or {}).get("services") or []]
    names = named + [n for n in status if n not in named]
    return [status.get(n) or {"name": n, "phase": "Pending"} for n in names]


def _scheduled(run: Body) -> str:
    return str((run.get("spec") or {}).get("scheduledTime") or "")


def format_runs(runs: Sequence[Body], now: datetime, limit: int = 0) -> list[str]:
    """``runs``: newest first (by scheduled time, then creation), ``limit`` 0 = all.

    SERVICES lists ``name:Phase`` in the run's service order.
    """
    ordered = sorted(
        runs,
        key=lambda r: (_scheduled(r), r["metadata"].get("creationTimestamp") or "", _name(r)),
        reverse=True,
    )
    if limit:
        ordered = ordered[:limit]
    rows = [
        [
            _name(run),
            _scheduled(run) or NONE,
            str(run.get("spec", {}).get("trigger") or "Schedule"),
            _phase(run),
            str(run.get("spec", {}).get("parentRun") or NONE),
            ",".join(f"{s.get('name')}:{s.get('phase') or 'Pending'}" for s in _services(run))
            or NONE,
            _age(run["metadata"].get("creationTimestamp"), now),
        ]
        for run in ordered
    ]
    headers = ["NAME", "SCHEDULED", "TRIGGER", "PHASE", "PARENT", "SERVICES", "AGE"]
    return format_table(headers, rows)


def _event_time(event: Body) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or event.get("metadata", {}).get("creationTimestamp")
        or ""
    )


def _event_order(event: Body) -> tuple[str, int]:
    """Oldest first. Times have one-second resolution and an operator posts several
    Events in one second; the resourceVersion (etcd's revision, in practice a growing
    integer) keeps them in the order they were posted."""
    version = str(event.get("metadata", {}).get("resourceVersion") or "")
    return _event_time(event), int(version) if version.isdigit() else 0


def _event_age(event: Body, now: datetime) -> str:
    age = _age(_event_time(event), now)
    count = int(event.get("count") or 1)
    first = event.get("firstTimestamp")
    return f"{age} (x{count} over {_age(first, now)})" if count > 1 and first else age


def _commands(
    lines: list[str], commands: Sequence[tuple[str, str]], indent: str = "  "
) -> list[str]:
    width = max(len(c) for c, _ in commands)
    lines.extend(
        f"{indent}{c.ljust(width)}   # {why}" if why else f"{indent}{c}" for c, why in commands
    )
    return lines


def format_run(
    run: Body, events: Sequence[Body], namespace: str, now: datetime, child: Body | None = None
) -> list[str]:
    """``describe``: the run, its services, its notification, its Events (oldest first)
    and the commands to act on it. ``child`` is its rerun, when there is one."""
    spec, status = run.get("spec") or {}, run.get("status") or {}
    name, phase = _name(run), _phase(run)
    started, completed = _time(status.get("startTime")), _time(status.get("completionTime"))
    if started is None:
        duration = NONE
    elif completed is None:
        duration = f"{format_duration(now - started)} (running)"
    else:
        duration = format_duration(completed - started)
    fields = [
        ("Name", name),
        ("Namespace", namespace),
        ("ScheduledJob", str(spec.get("scheduledJob") or NONE)),
        ("Scheduled", _instant_text(spec.get("scheduledTime"), now)),
        ("Trigger", str(spec.get("trigger") or "Schedule")),
        ("Parent", str(spec.get("parentRun") or NONE)),
        ("Rerun", NONE if child is None else f"{_name(child)} ({_phase(child)})"),
        ("Phase", phase),
        ("Started", _instant_text(status.get("startTime"), now)),
        ("Completed", _instant_text(status.get("completionTime"), now)),
        ("Duration", duration),
        ("Notification", _notification(status.get("notification"))),
    ]
    width = max(len(label) for label, _ in fields) + 2
    lines = [f"{label + ':':<{width}}{value}" for label, value in fields]

    services = _services(run)
    lines.append("Services:")
    if services:
        rows = [
            [
                str(s.get("name")),
                str(s.get("phase") or "Pending"),
                str(s.get("jobName") or NONE),
                " ".join(str(s.get("message") or NONE).split()),
            ]
            for s in services
        ]
        lines += format_table(["NAME", "PHASE", "JOB", "MESSAGE"], rows, indent="  ")
    else:
        lines.append(f"  {NONE}")

    lines.append("Events:")
    if events:
        rows = [
            [
                str(e.get("type") or ""),
                str(e.get("reason") or ""),
                _event_age(e, now),
                " ".join(str(e.get("message") or "").split()),
            ]
            for e in sorted(events, key=_event_order)
        ]
        lines += format_table(["TYPE", "REASON", "AGE", "MESSAGE"], rows, indent="  ")
    else:
        lines.append(f"  {NONE}")

    lines.append("What next:")
    return _commands(lines, _next_steps(run, services, namespace, child))


def _notification(value: object) -> str:
    if not isinstance(value, dict) or not value.get("state"):
        return NONE
    attempts = int(value.get("attempts") or 0)
    text = str(value["state"])
    if attempts:
        text += f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    message = " ".join(str(value.get("message") or "").split())
    return f"{text}: {message}" if message else text


def _next_steps(
    run: Body, services: Sequence[Body], namespace: str, child: Body | None
) -> list[tuple[str, str]]:
    name, phase = _name(run), _phase(run)
    ns = shlex.quote(namespace)
    steps: list[tuple[str, str]] = []
    for s in services:
        if s.get("phase") == "Failed" and s.get("jobName"):
            job = shlex.quote(str(s["jobName"]))
            steps.append((f"kubectl -n {ns} logs job/{job}", f"why {s.get('name')} failed"))
    if phase not in TERMINAL:
        steps.append((f"kubectl -n {ns} get sjr {name} -w", "wait for it to finish"))
    elif child is not None:
        child_name = _name(child)
        steps.append(
            (f"kubectl almanac -n {ns} describe {child_name}", f"it was rerun as {child_name}")
        )
    else:
        steps.append((f"kubectl almanac -n {ns} rerun {name}", "a new run of every service"))
        redo = [str(s.get("name")) for s in services if s.get("phase") in ("Failed", "Skipped")]
        if redo:
            steps.append(
                (
                    f"kubectl almanac -n {ns} rerun {name} --failed-only",
                    f"a new run of {', '.join(redo)} only",
                )
            )
    return steps


# --------------------------------------------------------------------------------------
# Pure: the next fires of a live ScheduledJob


def format_next(
    job_body: Body,
    calendar_bodies: Sequence[Body],
    now: datetime,
    count: int,
    default_time_zone: str = "UTC",
) -> list[str]:
    """``next``: the next ``count`` fires after ``now`` (UTC, and local time in the job's
    zone), and between them the days an exclusion skipped, with the rule and where it is
    written (``spec.exclusions...`` or ``Calendar <name>``).

    ``calendar_bodies`` are the Calendars found of those the job refers to. Raises
    :class:`PluginError` when the job or a Calendar is invalid (every bad field), a
    referenced Calendar is missing, the job is suspended, or it never fires.
    """
    name = _name(job_body)
    namespace = str(job_body.get("metadata", {}).get("namespace") or "")
    problems: list[str] = []
    job: ScheduledJob | None = None
    try:
        job = ScheduledJob.parse(job_body)
    except InvalidSpec as e:
        problems.append(_invalid(f"scheduledjob {quote(name)}", e))
    calendars: dict[str, Calendar] = {}
    for body in calendar_bodies:
        try:
            calendar = Calendar.parse(body)
        except InvalidSpec as e:
            problems.append(_invalid(f"calendar {quote(_name(body))}", e))
        else:
            calendars[calendar.metadata.name] = calendar
    if job is not None and not problems:
        try:
            schedule = job.spec.build_schedule(calendars, default_time_zone=default_time_zone)
        except InvalidSpec as e:
            problems.append(_invalid(f"scheduledjob {quote(name)}", e))
    if problems:
        raise PluginError("\n".join(problems))
    assert job is not None
    if job.spec.suspend:
        patch = """'{"spec":{"suspend":false}}'"""
        resume = f"kubectl -n {namespace} patch sj {name} --type=merge -p {patch}"
        raise PluginError(
            f"scheduledjob {quote(name)} is suspended (spec.suspend: true): it does not fire "
            f"until it is resumed: {resume}"
        )

    kind = "fixed-time" if schedule.cron.fixed_time else "wildcard"
    zone = schedule.zone.key
    head = f"ScheduledJob {name}: {quote(schedule.cron.text)} ({kind}) in {zone}"
    if job.spec.time_zone is None:
        head += " (spec.timeZone not set: the default zone, see --default-timezone)"
    refs = [ref.name for ref in job.spec.calendar_refs]
    if refs:
        head += f", calendars {', '.join(refs)}"
    start, end = schedule.window
    if start is not None or end is not None:
        head += (
            f", window [{NONE if start is None else format_instant(start)}, "
            f"{NONE if end is None else format_instant(end)}]"
        )

    rows: list[list[str]] = []
    fires: list[Fire] = []
    for item in first_fires(schedule.timeline(now), count):
        if isinstance(item, SkippedDay):
            rules = "; ".join(str(rule) for rule in item.excluded_by)
            rows.append(["skipped", _day(item.day), f"excluded by {rules}"])
        else:
            fires.append(item)
            rows.append([format_instant(item.instant), format_local(item), "; ".join(item.notes)])
    if not fires:
        never = schedule.next_fire(now)
        assert isinstance(never, NeverFires)
        when = "" if schedule.never_fires else f" after {format_instant(now)}"
        raise PluginError(f"scheduledjob {quote(name)} never fires{when}: {never.message}")

    lines = [head, *format_table(["UTC", f"LOCAL ({zone})", "NOTE"], rows)]
    if len(fires) < count and end is not None:
        lines.append(f"the window ends at {format_instant(end)} (spec.endTime): no fire after it")
    reported = _time((job_body.get("status") or {}).get("nextScheduleTime"))
    if reported is not None and reported > now and reported != fires[0].instant:
        lines.append(
            f"note: the operator reports the next fire at {format_instant(reported)}; its "
            f"default time zone or its view of the Calendars may differ from this one"
        )
    return lines


def _day(day: date) -> str:
    return f"{day:%a} {day.isoformat()}"


def _invalid(what: str, error: InvalidSpec) -> str:
    return f"{what} is invalid:\n" + "\n".join(f"  {e}" for e in error.errors)


# --------------------------------------------------------------------------------------
# Pure: has the operator answered an annotation yet?


def _new(events: Iterable[Body], seen: set[str]) -> list[Body]:
    return sorted((e for e in events if _event_key(e) not in seen), key=_event_order)


def _event_key(event: Body) -> str:
    meta = event.get("metadata") or {}
    return str(meta.get("uid") or meta.get("name"))


def rerun_outcome(
    run: str, new_events: Sequence[Body], child: Body | None, now: datetime
) -> tuple[int, str] | None:
    """After ``almanac.dev/rerun`` on ``run``: (exit code, message) once the operator has
    answered, None while it has not. ``new_events`` are the run's Events that appeared
    since the annotation; ``child`` is the child run if it appeared since."""
    for event in new_events:
        if event.get("reason") == "RerunRefused":
            return EXIT_ERROR, f"rerun of {run} refused: {event.get('message')}"
    if child is not None:
        when = _time((child.get("spec") or {}).get("scheduledTime"))
        starts = NONE if when is None else f"{format_instant(when)} ({_relative(when, now)})"
        return EXIT_OK, f"run {_name(child)} created from {run}, starts at {starts}"
    return None


def run_now_outcome(
    job: str, before: set[str], runs: Sequence[Body], new_events: Sequence[Body]
) -> tuple[int, str] | None:
    """After ``almanac.dev/run-now`` on ``job``: (exit code, message) once the operator has
    answered, None while it has not. ``before`` are the names of the job's runs before
    the annotation, ``runs`` its runs now, ``new_events`` the job's Events since."""
    manual = [
        r
        for r in runs
        if (r.get("spec") or {}).get("trigger") == "Manual" and _name(r) not in before
    ]
    if manual:
        newest = max(manual, key=lambda r: (r["metadata"].get("creationTimestamp") or "", _name(r)))
        return EXIT_OK, f"run {_name(newest)} created from scheduledjob {job}"
    for event in new_events:
        message = str(event.get("message") or "")
        # concurrencyPolicy Forbid turns the fire into a missed one; the API server may
        # refuse the run itself.
        if event.get("reason") == "RunRefused" or (
            event.get("reason") == "MissedSchedule" and "concurrencyPolicy Forbid" in message
        ):
            return EXIT_ERROR, f"run-now of {job} refused: {message}"
    return None


# --------------------------------------------------------------------------------------
# The verbs: fetch, call the pure parts, print


@dataclass(frozen=True)
class _Context:
    kube: Kube
    namespace: str

    async def get(self, plural: str, kind: str, name: str) -> Body:
        body = await self.kube.get(plural, self.namespace, name)
        if body is None:
            raise NotFound(kind, name, self.namespace)
        return body

    async def event_keys(self, name: str, kind: str) -> set[str]:
        return {_event_key(e) for e in await self.kube.list_events(self.namespace, name, kind)}

    def watch_hint(self, job: str) -> str:
        return f"kubectl -n {shlex.quote(self.namespace)} get sjr -l {LABEL_JOB}={job} -w"


def _now() -> datetime:
    return datetime.now(UTC)


async def _runs(c: _Context, args: argparse.Namespace) -> int:
    await c.get(SCHEDULED_JOBS, "scheduledjob", args.job)
    runs = await c.kube.list_objects(RUNS, c.namespace, f"{LABEL_JOB}={args.job}")
    if not runs:
        print(
            f"No runs of scheduledjob {quote(args.job)} in namespace {quote(c.namespace)} yet.",
            file=sys.stderr,
        )
        return EXIT_OK
    print("\n".join(format_runs(runs, _now(), args.limit)))
    if args.limit and len(runs) > args.limit:
        print(
            f"({len(runs) - args.limit} older runs not shown; --limit 0 shows all)", file=sys.stderr
        )
    return EXIT_OK


async def _wait(
    seconds: float, check: Callable[[], Awaitable[tuple[int, str] | None]]
) -> tuple[int, str] | None:
    """Polls ``check`` until it answers or ``seconds`` pass (checking once at the end)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        outcome = await check()
        if outcome is not None or asyncio.get_running_loop().time() >= deadline:
            return outcome
        await asyncio.sleep(POLL_SECONDS)


def _pending(annotation: str, target: str, what: str, wait: float) -> str:
    """What to say when the operator did not answer within ``wait``: the request stands."""
    waited = f"no {what} appeared within {wait:g}s (is the operator running?)"
    return (
        f"annotation {annotation} is set on {target}; {waited if wait else 'not waiting'}. "
        f"The operator creates the {what} when it sees the annotation; watch with: "
    )


def _relay(outcome: tuple[int, str] | None, pending: str) -> int:
    """Prints the operator's answer (raising a refusal as an error), or what is pending."""
    if outcome is None:
        print(pending)
        return EXIT_OK
    code, message = outcome
    if code != EXIT_OK:
        raise PluginError(message)
    print(message)
    return EXIT_OK


async def _rerun(c: _Context, args: argparse.Namespace) -> int:
    run = await c.get(RUNS, "scheduledjobrun", args.run)
    value = "failed" if args.failed_only else "now"
    child_name = rerun_name(args.run)
    child_before = await c.kube.get(RUNS, c.namespace, child_name)
    seen = await c.event_keys(args.run, "ScheduledJobRun")
    patched = await c.kube.patch_annotations(RUNS, c.namespace, args.run, {ANNOTATION_RERUN: value})
    if patched is None:
        raise NotFound("scheduledjobrun", args.run, c.namespace)

    async def check() -> tuple[int, str] | None:
        events = await c.kube.list_events(c.namespace, args.run, "ScheduledJobRun")
        child = None if child_before else await c.kube.get(RUNS, c.namespace, child_name)
        return rerun_outcome(args.run, _new(events, seen), child, _now())

    job = str((run.get("spec") or {}).get("scheduledJob") or "")
    pending = _pending(
        f"{ANNOTATION_RERUN}={value}", f"scheduledjobrun {args.run}", "rerun", args.wait
    )
    return _relay(await _wait(args.wait, check), f"{pending}{c.watch_hint(job)}")


async def _run_now(c: _Context, args: argparse.Namespace) -> int:
    await c.get(SCHEDULED_JOBS, "scheduledjob", args.job)
    selector = f"{LABEL_JOB}={args.job}"
    before = {_name(r) for r in await c.kube.list_objects(RUNS, c.namespace, selector)}
    seen = await c.event_keys(args.job, "ScheduledJob")
    # The current time as the value, so that every call changes the object (and the
    # operator hears of it) even when an earlier value was never consumed.
    value = _now().isoformat(timespec="microseconds").replace("+00:00", "Z")
    patched = await c.kube.patch_annotations(
        SCHEDULED_JOBS, c.namespace, args.job, {ANNOTATION_RUN_NOW: value}
    )
    if patched is None:
        raise NotFound("scheduledjob", args.job, c.namespace)

    async def check() -> tuple[int, str] | None:
        runs = await c.kube.list_objects(RUNS, c.namespace, selector)
        events = await c.kube.list_events(c.namespace, args.job, "ScheduledJob")
        return run_now_outcome(args.job, before, runs, _new(events, seen))

    pending = _pending(
        f"{ANNOTATION_RUN_NOW}={value}", f"scheduledjob {args.job}", "run", args.wait
    )
    return _relay(await _wait(args.wait, check), f"{pending}{c.watch_hint(args.job)}")


async def _next(c: _Context, args: argparse.Namespace) -> int:
    job = await c.get(SCHEDULED_JOBS, "scheduledjob", args.job)
    refs = (job.get("spec") or {}).get("calendarRefs") or []
    names = list(dict.fromkeys(str(r.get("name")) for r in refs if isinstance(r, dict)))
    found = [await c.kube.get(CALENDARS, c.namespace, n) for n in names if n]
    calendars = [body for body in found if body is not None]
    print("\n".join(format_next(job, calendars, _now(), args.count, args.default_timezone)))
    return EXIT_OK


async def _describe(c: _Context, args: argparse.Namespace) -> int:
    run = await c.get(RUNS, "scheduledjobrun", args.run)
    events = await c.kube.list_events(c.namespace, args.run, "ScheduledJobRun")
    child = await c.kube.get(RUNS, c.namespace, rerun_name(args.run))
    if child is not None and (child.get("spec") or {}).get("parentRun") != args.run:
        child = None
    print("\n".join(format_run(run, events, c.namespace, _now(), child)))
    return EXIT_OK


# --------------------------------------------------------------------------------------
# The command line


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a whole number of at least 1")
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a whole number (0 = all)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a number of seconds (0-3600)")
    return value


def _zone(text: str) -> str:
    try:
        parse_time_zone(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _connection_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    """kubectl's own options, with kubectl's meaning: ``-n`` is the namespace everywhere."""
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        default=default,
        help="the namespace (default: the context's, else default)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=default,
        help="the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        default=default,
        help="the kubeconfig context (default: current)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``kubectl almanac`` parser; each verb sets ``verb`` (an async handler)."""
    parser = argparse.ArgumentParser(
        prog="kubectl almanac",
        description="Almanac's kubectl plugin: runs, reruns, manual runs, next fires.",
        epilog="-n/--namespace, --kubeconfig and --context may also follow the verb.",
    )
    parser.add_argument("--version", action="version", version=f"kubectl-almanac {__version__}")
    _connection_options(parser, default=None)
    # Given after the verb, these must not reset what was given before it: SUPPRESS
    # leaves the attribute alone unless the option is present.
    after = argparse.ArgumentParser(add_help=False)
    _connection_options(after, default=argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="command", required=True, metavar="VERB")

    runs = verbs.add_parser(
        "runs",
        parents=[after],
        help="recent runs of a ScheduledJob",
        description=("A table of the runs of JOB, newest first, with the phase of each service."),
    )
    runs.add_argument("job", metavar="JOB", help="the ScheduledJob")
    runs.add_argument(
        "--limit",
        metavar="N",
        type=_limit,
        default=DEFAULT_LIMIT,
        help=f"show at most N runs (default: {DEFAULT_LIMIT}; 0: all)",
    )
    runs.set_defaults(verb=_runs)

    wait_help = (
        "how long to wait for the operator's answer, in seconds "
        f"(default: {DEFAULT_WAIT_SECONDS:g}; 0: do not wait)"
    )
    rerun = verbs.add_parser(
        "rerun",
        parents=[after],
        help="rerun a finished run",
        description=(
            "Annotate RUN with almanac.dev/rerun=now (or =failed) and wait for the operator "
            "to create the child run, scheduled one minute later. Exit 1 if it refuses "
            "(the run has not finished, or was already rerun); exit 0 if it has not "
            "answered within --wait (the annotation stays and is acted on later)."
        ),
    )
    rerun.add_argument("run", metavar="RUN", help="the ScheduledJobRun")
    rerun.add_argument(
        "--failed-only",
        action="store_true",
        help="rerun only the services that failed or were skipped (almanac.dev/rerun=failed)",
    )
    rerun.add_argument(
        "--wait", metavar="SECONDS", type=_seconds, default=DEFAULT_WAIT_SECONDS, help=wait_help
    )
    rerun.set_defaults(verb=_rerun)

    run = verbs.add_parser(
        "run",
        parents=[after],
        help="run a ScheduledJob once, now",
        description=(
            "Annotate JOB with almanac.dev/run-now and wait for the operator to create the "
            "manual run (concurrencyPolicy applies). Exit 1 if it refuses; exit 0 if it has "
            "not answered within --wait."
        ),
    )
    run.add_argument("job", metavar="JOB", help="the ScheduledJob")
    run.add_argument(
        "--wait", metavar="SECONDS", type=_seconds, default=DEFAULT_WAIT_SECONDS, help=wait_help
    )
    run.set_defaults(verb=_run_now)

    next_ = verbs.add_parser(
        "next",
        parents=[after],
        help="the next fire times of a ScheduledJob, and the days skipped",
        description=(
            "The next fires of the live ScheduledJob JOB with the Calendars it refers to, in "
            "UTC and local time, and the days an exclusion skipped in between, with the rule "
            "and where it is written. Exit 1 if the job is suspended, invalid, or never fires."
        ),
    )
    next_.add_argument("job", metavar="JOB", help="the ScheduledJob")
    next_.add_argument(
        "--count",
        metavar="COUNT",
        type=_count,
        default=10,
        help="how many fires (default: 10)",
    )
    next_.add_argument(
        "--default-timezone",
        metavar="ZONE",
        type=_zone,
        default="UTC",
        help="the zone of a job without spec.timeZone: the operator's "
        "ALMANAC_DEFAULT_TIMEZONE (default: UTC)",
    )
    next_.set_defaults(verb=_next)

    describe = verbs.add_parser(
        "describe",
        parents=[after],
        help="a run: services, notification, Events, what to do",
        description=(
            "Show RUN, its services, its notification, its Events, and the commands to act on it."
        ),
    )
    describe.add_argument("run", metavar="RUN", help="the ScheduledJobRun")
    describe.set_defaults(verb=_describe)
    return parser


def _kubeconfig_files(kubeconfig: str | None) -> list[str]:
    """The files kubectl would read, as the client will: --kubeconfig, else $KUBECONFIG
    (a list), else ~/.kube/config."""
    paths = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [os.path.expanduser(p) for p in paths.split(os.pathsep) if p]


async def _connect(kubeconfig: str | None, context: str | None) -> tuple[Kube, str | None]:
    files = _kubeconfig_files(kubeconfig)
    if not any(os.path.isfile(f) for f in files):
        where = (
            f"kubeconfig {quote(kubeconfig)}"
            if kubeconfig
            else f"no kubeconfig ({', '.join(files)})"
        )
        raise PluginError(
            f"{where} does not exist"
            if kubeconfig
            else f"{where}; pass --kubeconfig or set "
            f"KUBECONFIG, then check with: kubectl cluster-info"
        )
    try:
        # The files as found here, so that the client reads the same ones (it would
        # take an empty $KUBECONFIG literally).
        return await Kube.connect_kubeconfig(os.pathsep.join(files), context)
    except ConfigException as e:
        if context and f"name {context} in" in str(e):
            raise PluginError(
                f"context {quote(context)} is not in the kubeconfig; kubectl config "
                f"get-contexts lists those that are"
            ) from None
        raise PluginError(
            f"cannot use the kubeconfig: {e}; check it with: kubectl config view"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise PluginError(
            f"cannot use the kubeconfig: {e or type(e).__name__}; check it with: "
            f"kubectl config view"
        ) from None


def _why(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {API_DEADLINE_SECONDS:g}s"
    os_error = getattr(error, "os_error", error)
    if isinstance(os_error, ssl.SSLError):
        return f"TLS: {os_error.reason or os_error}"  # e.g. CERTIFICATE_VERIFY_FAILED
    if isinstance(os_error, OSError) and os_error.errno:
        return os.strerror(os_error.errno).lower()  # "connection refused", not aiohttp's prose
    return str(error) or type(error).__name__


async def _execute(args: argparse.Namespace) -> int:
    kube, context_namespace = await _connect(args.kubeconfig, args.context)
    server = str(kube.api.configuration.host)
    context = _Context(kube, args.namespace or context_namespace or "default")
    try:
        async with asyncio.timeout(API_DEADLINE_SECONDS + getattr(args, "wait", 0.0)):
            code: int = await args.verb(context, args)
            return code
    except BrokenPipeError:
        raise  # our reader went away (| head), not the server
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        raise Unreachable(server, _why(e)) from None
    except ApiException as e:
        if e.status == 401:
            raise PluginError(
                f"the API server at {server} did not accept the credentials (401 Unauthorized);"
                f" check the kubeconfig's user with: kubectl cluster-info"
            ) from None
        if e.status == 404:
            raise PluginError(
                f"the API server at {server} has no Almanac resources (404: {api_message(e)}); "
                f"are the CRDs installed? kubectl get crd scheduledjobs.almanac.dev"
            ) from None
        raise PluginError(f"the API server answered {e.status}: {api_message(e)}") from None
    finally:
        await kube.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the plugin; returns the exit code (argparse's usage errors give 2)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors: argparse has printed them
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    # The client logs warnings (a missing kubeconfig file) that would add a second,
    # less clear line to ours.
    logging.getLogger("kubernetes_asyncio").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_execute(args))
    except PluginError as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`| head`): as any Unix tool, stop quietly;
        # point stdout at devnull so that flushing it at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
