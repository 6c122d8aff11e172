"""The plugin's text, as pure functions: API dicts and ``now`` in, lines out.

Ages as kubectl prints them (``3m12s``), instants (``2027-01-04T00:30:00Z (3m ago)``),
kubectl-style tables, the ``runs`` table and the ``describe`` report. Tests pin the
words without a cluster.

Pure: no client, no clock, no I/O. Imports :mod:`almanac.times`, the engine's instant
and duration formats, :data:`almanac.rules.policy.TERMINAL` and the ``Body`` alias of
:mod:`almanac.rules.plans`; nothing of the plugin.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from almanac.api.names import trigger_of
from almanac.errors import redact_url
from almanac.rules.deadlines import late_since
from almanac.rules.plans import Body
from almanac.rules.policy import TERMINAL
from almanac.rules.rundate import run_date
from almanac.times import format_duration, format_instant, parse_time

__all__ = [
    "NONE",
    "api_time",
    "event_order",
    "format_run",
    "format_runs",
    "format_table",
    "human_duration",
    "instant_text",
    "name_of",
]

NONE = "<none>"


# --------------------------------------------------------------------------------------
# Ages, instants, tables, and the fields of a run


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


def api_time(value: object) -> datetime | None:
    """An API time (``...Z`` or ``+00:00``); None when absent or unreadable."""
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _age(value: object, now: datetime) -> str:
    when = api_time(value)
    return "<unknown>" if when is None else human_duration(now - when)


def _relative(when: datetime, now: datetime) -> str:
    """``in 59s`` or ``3m ago``."""
    return f"in {human_duration(when - now)}" if when > now else f"{human_duration(now - when)} ago"


def instant_text(value: object, now: datetime) -> str:
    """``2027-01-04T00:30:00Z (3m ago)``, or <none>."""
    when = api_time(value)
    return NONE if when is None else f"{format_instant(when)} ({_relative(when, now)})"


def name_of(body: Body) -> str:
    """``metadata.name``; empty when absent."""
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


# --------------------------------------------------------------------------------------
# runs


def format_runs(runs: Sequence[Body], now: datetime, limit: int = 0) -> list[str]:
    """``runs``: newest first (by scheduled time, then creation), ``limit`` 0 = all.

    SERVICES lists ``name:Phase`` in the run's service order.
    """
    ordered = sorted(
        runs,
        key=lambda r: (_scheduled(r), r["metadata"].get("creationTimestamp") or "", name_of(r)),
        reverse=True,
    )
    if limit:
        ordered = ordered[:limit]
    rows = [
        [
            name_of(run),
            _scheduled(run) or NONE,
            trigger_of(run.get("spec") or {}),
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


# --------------------------------------------------------------------------------------
# describe


def _event_time(event: Body) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or event.get("metadata", {}).get("creationTimestamp")
        or ""
    )


def event_order(event: Body) -> tuple[str, int]:
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
    run: Body,
    events: Sequence[Body],
    namespace: str,
    now: datetime,
    child: Body | None = None,
    job: Body | None = None,
) -> list[str]:
    """``describe``: the run, its date, its services, its lateness and notifications,
    its Events (oldest first) and the commands to act on it. ``child`` is its rerun,
    when there is one; ``job`` its ScheduledJob, whose zone dates a run made before runs
    recorded theirs."""
    spec, status = run.get("spec") or {}, run.get("status") or {}
    name, phase = name_of(run), _phase(run)
    started, completed = api_time(status.get("startTime")), api_time(status.get("completionTime"))
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
        ("Scheduled", instant_text(spec.get("scheduledTime"), now)),
        ("Date", _date(run, job)),
        ("Trigger", trigger_of(spec)),
        ("Parent", str(spec.get("parentRun") or NONE)),
        ("Rerun", NONE if child is None else f"{name_of(child)} ({_phase(child)})"),
        ("Phase", phase),
        ("Started", instant_text(status.get("startTime"), now)),
        ("Completed", instant_text(status.get("completionTime"), now)),
        ("Duration", duration),
        ("Late", _late(run, now)),
        ("Notification", _notification(status.get("notification"))),
        ("Late e-mail", _notification(status.get("lateNotification"))),
        *_webhook_fields(run, job),
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
            for e in sorted(events, key=event_order)
        ]
        lines += format_table(["TYPE", "REASON", "AGE", "MESSAGE"], rows, indent="  ")
    else:
        lines.append(f"  {NONE}")

    lines.append("What next:")
    return _commands(lines, _next_steps(run, services, namespace, child))


def _date(run: Body, job: Body | None) -> str:
    """The run's scheduled date in its zone (what its Jobs get as ALMANAC_SCHEDULED_DATE);
    for a rerun, whose instant that is."""
    when = run_date(run, job, "UTC")
    if when is None:
        return NONE
    text = f"{when.date} ({when.time_zone})"
    spec = run.get("spec") or {}
    if spec.get("originalScheduledTime"):
        text += f", of {format_instant(when.instant)} (the run it reruns)"
    return text


def _late(run: Body, now: datetime) -> str:
    since = late_since(run)
    if since is None:
        return "no"
    conditions = (run.get("status") or {}).get("conditions") or []
    message = next((c.get("message") for c in conditions if c.get("type") == "Late"), "")
    return f"yes, since {instant_text(format_instant(since), now)}: {message}"


def _webhook_fields(run: Body, job: Body | None) -> list[tuple[str, str]]:
    """One line per webhook state of the run (``Webhook 0``, ``Late webhook 0``): where it
    goes, as the job says now (its host, or its Secret; never a URL's path), and its
    delivery."""
    status = run.get("status") or {}
    hooks = (((job or {}).get("spec") or {}).get("notifications") or {}).get("webhooks") or []
    fields = []
    for field, label in (
        ("webhookNotifications", "Webhook"),
        ("lateWebhookNotifications", "Late webhook"),
    ):
        states = status.get(field)
        for i, state in enumerate(states if isinstance(states, list) else []):
            hook = hooks[i] if isinstance(hooks, list) and i < len(hooks) else None
            fields.append((f"{label} {i}", f"{_webhook_target(hook)}: {_notification(state)}"))
    return fields


def _webhook_target(hook: object) -> str:
    if not isinstance(hook, dict):
        return "(no longer in the job)"
    fmt = str(hook.get("format") or "json")
    ref = hook.get("urlSecretRef")
    if isinstance(ref, dict):
        return f"{fmt} to the URL in Secret {ref.get('name')}, key {ref.get('key')}"
    return f"{fmt} to {redact_url(str(hook.get('url') or ''))}"


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
    name, phase = name_of(run), _phase(run)
    ns = shlex.quote(namespace)
    steps: list[tuple[str, str]] = []
    for s in services:
        if s.get("phase") == "Failed" and s.get("jobName"):
            job = shlex.quote(str(s["jobName"]))
            steps.append((f"kubectl -n {ns} logs job/{job}", f"why {s.get('name')} failed"))
    if phase not in TERMINAL:
        steps.append((f"kubectl -n {ns} get sjr {name} -w", "wait for it to finish"))
    elif child is not None:
        child_name = name_of(child)
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
