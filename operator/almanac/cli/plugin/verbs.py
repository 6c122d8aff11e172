"""The verbs: each fetches what it needs, calls the pure parts, prints, and returns the
exit code.

``runs``, ``rerun``, ``run``, ``next`` and ``describe`` are ``async (Context, args) ->
int``; :func:`almanac.cli.plugin.build_parser` sets one's name as ``args.verb`` (so
that ``--help`` and a usage error import neither this module nor the client), and
:mod:`.cluster` runs it within the deadline. ``rerun`` and ``run`` set the annotation the
operator consumes, then poll, boundedly, for its answer (:mod:`.outcomes`).

At the edge: the cluster through :class:`almanac.kube.Kube`, the clock, stdout and
stderr. Imports :mod:`almanac.kube`, :mod:`almanac.api.names`, :mod:`almanac.errors`
and, of the plugin, :mod:`.errors`, :mod:`.views`, :mod:`.fires` and :mod:`.outcomes`.

The verbs that work out fires (``next``, ``calendar``, ``calendar-diff``, ``backfill``)
import :mod:`.fires` (the schedule engine, the API's pydantic models) when they run, not
here: ``runs``, ``describe``, ``rerun`` and ``run`` start 0.13 s sooner without them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from almanac.api.names import (
    ANNOTATION_RERUN,
    ANNOTATION_RUN_NOW,
    BACKFILLS,
    CALENDARS,
    CLUSTER_CALENDARS,
    LABEL_JOB,
    RUNS,
    SCHEDULED_JOBS,
    rerun_name,
)
from almanac.cli.plugin.errors import EXIT_ERROR, EXIT_OK, NotFound, PluginError
from almanac.cli.plugin.outcomes import event_key, rerun_outcome, run_now_outcome, unseen
from almanac.cli.plugin.views import format_run, format_runs, name_of
from almanac.errors import quote
from almanac.kube import Body, Created, Exists, Kube, api_message
from almanac.lean_client import ApiException

__all__ = [
    "Context",
    "backfill",
    "calendar",
    "calendar_diff",
    "describe",
    "next_fires",
    "rerun",
    "run_now",
    "runs",
]

#: How often the wait after a rerun or run-now annotation polls.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Context:
    """What every verb is given: the cluster and the namespace it works in."""

    kube: Kube
    namespace: str

    async def get(self, plural: str, kind: str, name: str) -> Body:
        """The object, or :class:`NotFound` in kubectl's words (``kind`` as kubectl
        names it)."""
        body = await self.kube.get(plural, self.namespace, name)
        if body is None:
            raise NotFound(kind, name, self.namespace)
        return body

    async def event_keys(self, name: str, kind: str) -> set[str]:
        """The Events about the object so far: those the operator posts later are new."""
        return {event_key(e) for e in await self.kube.list_events(self.namespace, name, kind)}

    def watch_hint(self, job: str) -> str:
        """The command that watches ``job``'s runs."""
        return f"kubectl -n {shlex.quote(self.namespace)} get sjr -l {LABEL_JOB}={job} -w"


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------
# runs, next, describe: read and print


async def runs(c: Context, args: argparse.Namespace) -> int:
    """``runs JOB [--limit N]``."""
    await c.get(SCHEDULED_JOBS, "scheduledjob", args.job)
    found = await c.kube.list_objects(RUNS, c.namespace, f"{LABEL_JOB}={args.job}")
    if not found:
        print(
            f"No runs of scheduledjob {quote(args.job)} in namespace {quote(c.namespace)} yet.",
            file=sys.stderr,
        )
        return EXIT_OK
    print("\n".join(format_runs(found, _now(), args.limit)))
    if args.limit and len(found) > args.limit:
        print(
            f"({len(found) - args.limit} older runs not shown; --limit 0 shows all)",
            file=sys.stderr,
        )
    return EXIT_OK


async def next_fires(c: Context, args: argparse.Namespace) -> int:
    """``next JOB [--count N] [--default-timezone ZONE]``: the live job, the Calendars it
    refers to that exist (:func:`format_next` names those that do not)."""
    from almanac.cli.plugin.fires import format_next

    job, calendars = await _job_and_calendars(c, args.job)
    print("\n".join(format_next(job, calendars, _now(), args.count, args.default_timezone)))
    return EXIT_OK


async def _job_and_calendars(c: Context, name: str) -> tuple[Body, list[Body]]:
    """The live job and the Calendars it refers to that exist (the pure parts name
    those that do not)."""
    job = await c.get(SCHEDULED_JOBS, "scheduledjob", name)
    refs = (job.get("spec") or {}).get("calendarRefs") or []
    wanted = dict.fromkeys(
        (str(r.get("kind") or "Calendar"), str(r.get("name")))
        for r in refs
        if isinstance(r, dict) and r.get("name")
    )
    found = []
    for kind, name in wanted:
        if kind == "ClusterCalendar":
            body = await c.kube.get(CLUSTER_CALENDARS, "", name)
        else:
            body = await c.kube.get(CALENDARS, c.namespace, name)
        if body is not None:
            body.setdefault("kind", kind)
            found.append(body)
    return job, found


async def calendar(c: Context, args: argparse.Namespace) -> int:
    """``calendar JOB [--months N] [--color WHEN]``: month grids of the live job."""
    from almanac.cli.options import use_color
    from almanac.cli.plugin.fires import format_calendar

    job, calendars = await _job_and_calendars(c, args.job)
    color = use_color(args.color, sys.stdout)
    grids = format_calendar(job, calendars, _now(), args.months, args.default_timezone, color=color)
    print("\n".join(grids.lines))
    return EXIT_ERROR if grids.never else EXIT_OK


async def calendar_diff(c: Context, args: argparse.Namespace) -> int:
    """``calendar-diff -f FILE [--days N]``: what applying the Calendar in FILE would move,
    for the ScheduledJobs of its namespace (the file's, else ``-n``'s) as they are now;
    for a ClusterCalendar, for those of every namespace."""
    from datetime import timedelta

    from almanac.api.impact import calendar_impact, refers_to_a_cluster_calendar
    from almanac.api.names import CALENDAR_KINDS
    from almanac.cli.impactview import format_impact
    from almanac.cli.manifests import ManifestError, read_objects
    from almanac.errors import InvalidSpec

    try:
        source, objects = read_objects(args.filename)
    except ManifestError as e:
        raise PluginError(str(e)) from None
    edited = [o for o in objects if o.get("kind") in CALENDAR_KINDS]
    if len(edited) != 1:
        raise PluginError(
            f"{source} holds {len(edited)} Calendars and ClusterCalendars; expected exactly one"
        )
    kind = str(edited[0]["kind"])
    if kind == CALENDAR_KINDS[0]:
        namespace = (edited[0].get("metadata") or {}).get("namespace") or c.namespace
        where = f"namespace {namespace}"
    else:
        namespace, where = "", "all namespaces"  # "": every namespace's
    try:
        jobs = await c.kube.list_objects(SCHEDULED_JOBS, namespace)
        calendars = await c.kube.list_objects(CALENDARS, namespace)  # items carry their kind
        # ClusterCalendars only when needed: a namespace's user may not list them.
        if kind == CALENDAR_KINDS[1] or any(map(refers_to_a_cluster_calendar, jobs)):
            calendars += await c.kube.list_cluster_calendars()
    except ApiException as e:
        if e.status != 403:
            raise
        raise PluginError(
            f"calendar-diff lists the ScheduledJobs and Calendars of {where} and the "
            f"ClusterCalendars, which you may not (403: {api_message(e)}); compare offline "
            "instead: almanac calendar-diff -f FILE --jobs MANIFEST"
        ) from None
    since = _now()
    until = since + timedelta(days=args.days)
    try:
        impacts = calendar_impact(edited[0], jobs, calendars, since, until, args.default_timezone)
    except InvalidSpec as e:
        raise PluginError(f"{source}: the {kind} is invalid:\n{e}") from None
    title = f"{kind} {name_of(edited[0])}"
    print("\n".join(format_impact(title, where, impacts, since, until)))
    return EXIT_OK


async def describe(c: Context, args: argparse.Namespace) -> int:
    """``describe RUN``: with its child run when that names it as its parent."""
    run = await c.get(RUNS, "scheduledjobrun", args.run)
    events = await c.kube.list_events(c.namespace, args.run, "ScheduledJobRun")
    # The run's creation and its end are told on its ScheduledJob (`kubectl describe
    # sj` keeps the history there); the story of one run shows them too.
    job = str((run.get("spec") or {}).get("scheduledJob") or "")
    if job:
        about = re.compile(rf"\brun {re.escape(args.run)}(?![\w.-])")
        on_job = await c.kube.list_events(c.namespace, job, "ScheduledJob")
        events = [*events, *(e for e in on_job if about.search(str(e.get("message") or "")))]
    child_name = rerun_name(args.run)
    child = await c.kube.get(RUNS, c.namespace, child_name) if child_name else None
    if child is not None and (child.get("spec") or {}).get("parentRun") != args.run:
        child = None
    owner = await c.kube.get(SCHEDULED_JOBS, c.namespace, job) if job else None
    print("\n".join(format_run(run, events, c.namespace, _now(), child, owner)))
    return EXIT_OK


# --------------------------------------------------------------------------------------
# rerun, run: annotate, then relay the operator's answer


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


async def rerun(c: Context, args: argparse.Namespace) -> int:
    """``rerun RUN [--failed-only] [--wait S]``."""
    run = await c.get(RUNS, "scheduledjobrun", args.run)
    value = "failed" if args.failed_only else "now"
    child_name = rerun_name(args.run)  # None: too deep, the operator refuses it
    child_before = await c.kube.get(RUNS, c.namespace, child_name) if child_name else None
    seen = await c.event_keys(args.run, "ScheduledJobRun")
    patched = await c.kube.patch_annotations(RUNS, c.namespace, args.run, {ANNOTATION_RERUN: value})
    if patched is None:
        raise NotFound("scheduledjobrun", args.run, c.namespace)

    async def check() -> tuple[int, str] | None:
        events = await c.kube.list_events(c.namespace, args.run, "ScheduledJobRun")
        child = (
            await c.kube.get(RUNS, c.namespace, child_name)
            if child_name and not child_before
            else None
        )
        return rerun_outcome(args.run, unseen(events, seen), child, _now())

    job = str((run.get("spec") or {}).get("scheduledJob") or "")
    pending = _pending(
        f"{ANNOTATION_RERUN}={value}", f"scheduledjobrun {args.run}", "rerun", args.wait
    )
    return _relay(await _wait(args.wait, check), f"{pending}{c.watch_hint(job)}")


async def run_now(c: Context, args: argparse.Namespace) -> int:
    """``run JOB [--wait S]``."""
    await c.get(SCHEDULED_JOBS, "scheduledjob", args.job)
    selector = f"{LABEL_JOB}={args.job}"
    before = {name_of(r) for r in await c.kube.list_objects(RUNS, c.namespace, selector)}
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
        current = await c.kube.list_objects(RUNS, c.namespace, selector)
        events = await c.kube.list_events(c.namespace, args.job, "ScheduledJob")
        return run_now_outcome(args.job, before, current, unseen(events, seen))

    pending = _pending(
        f"{ANNOTATION_RUN_NOW}={value}", f"scheduledjob {args.job}", "run", args.wait
    )
    return _relay(await _wait(args.wait, check), f"{pending}{c.watch_hint(args.job)}")


# --------------------------------------------------------------------------------------
# backfill: a dry run prints, otherwise the Backfill is created


async def backfill(c: Context, args: argparse.Namespace) -> int:
    """``backfill JOB --from T --to T [--parallelism N] [--order O] [--name NAME]
    [--dry-run]``: the instants as a table, or the Backfill created (the operator runs
    it; ``kubectl get bf NAME -w`` follows it)."""
    from almanac.cli.plugin.fires import backfill_body, check_backfill, format_backfill

    body = backfill_body(args.job, args.start, args.end, args.parallelism, args.order, args.name)
    if args.dry_run:
        job, calendars = await _job_and_calendars(c, args.job)
        found = await c.kube.list_objects(RUNS, c.namespace, f"{LABEL_JOB}={args.job}")
        lines = format_backfill(job, calendars, body, found, _now(), args.default_timezone)
        print("\n".join(lines))
        return EXIT_OK
    check_backfill(body, _now())
    await c.get(SCHEDULED_JOBS, "scheduledjob", args.job)
    name = body["metadata"]["name"]
    result = await c.kube.create(BACKFILLS, c.namespace, body)
    if isinstance(result, Exists):
        raise PluginError(
            f"backfill {quote(name)} already exists in namespace {quote(c.namespace)}: "
            f"kubectl -n {shlex.quote(c.namespace)} get bf {name}"
        )
    if not isinstance(result, Created):
        raise PluginError(f"backfill {quote(name)} refused: {result.message}")
    print(f"backfill.almanac.dev/{name} created")
    print(
        f"follow it: kubectl -n {shlex.quote(c.namespace)} get bf {name} -w; its runs: "
        f"kubectl -n {shlex.quote(c.namespace)} get sjr -l almanac.dev/backfill={name}",
        file=sys.stderr,
    )
    return EXIT_OK
