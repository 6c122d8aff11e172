"""The ``almanac`` command line.

Where it sits: at the edge, like the kopf handlers: it reads files and the clock, the pure
modules do the rest. Each verb is a subcommand that registers itself in
:func:`build_parser` and returns an exit code from its handler (``args.handler(args)``).

``almanac next -f MANIFEST [--after RFC3339] [-n COUNT] [-o wide] [--default-timezone ZONE]``
prints the next fire instants of the one ScheduledJob in MANIFEST (with the Calendars it
refers to from the same file), as docs/api.md "Command line" says::

    exit 0  one UTC instant a line, YYYY-MM-DDTHH:MM:SSZ (fewer than COUNT when the
            window ends first)
    exit 1  the schedule never fires (after --after): the reason on stderr
    exit 2  the manifest or the command line is invalid: every bad field on stderr,
            e.g. spec.exclusions.annual[1]: "31.02" is not a day of the year (dd.MM)

``-o wide`` is for humans: local time beside UTC, DST notes, and the days an exclusion
removed between fires, with the rule and where it was written.

``almanac calendar -f MANIFEST [--months N] [--from YYYY-MM] [--color WHEN]`` draws the
same job's months as ``cal``-like grids (:mod:`almanac.cli.monthgrid`): the days it
fires and how often, the days it skips and why, a legend; exit codes as ``next`` (2 for
an invalid manifest; a job that never fires is drawn, with the reason, and exits 1).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from almanac import __version__
from almanac.api.bounds import year_error
from almanac.api.models import Calendar, ScheduledJob
from almanac.api.names import CALENDAR_KINDS, calendar_key
from almanac.api.resolve import resolve
from almanac.cli import reader_gone
from almanac.cli.manifests import ManifestError, name_of, read_objects, with_feed_copies
from almanac.cli.options import (
    OFFLINE_ZONE_HELP,
    add_default_timezone,
    add_edited_calendar_options,
    add_feed_files,
    add_grid_options,
    count,
    use_color,
)
from almanac.errors import InvalidSpec, quote
from almanac.schedule.engine import NeverFires, OnExcludedDay, Schedule
from almanac.schedule.explain import SkippedDay, first_fires, format_local
from almanac.times import format_instant, parse_instant

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_NEVER_FIRES, EXIT_INVALID = 0, 1, 2
#: ``almanac run --log-format``: kopf's log formats (almanac.controller.runner maps them).
LOG_FORMATS = ("full", "json", "plain")
# Skipped days listed between two fires in -o wide; more are counted.
_SKIPPED_SHOWN = 10


class _Usage(ManifestError):
    """A problem with the command line or the manifest file as a whole (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``almanac`` parser; add a verb with ``commands.add_parser`` and set
    ``handler`` (``Callable[[argparse.Namespace], int]``) with ``set_defaults``."""
    parser = argparse.ArgumentParser(
        prog="almanac", description="Almanac: calendar-aware scheduled jobs for Kubernetes."
    )
    parser.add_argument("--version", action="version", version=f"almanac {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_next(commands)
    _add_calendar(commands)
    _add_calendar_diff(commands)
    _add_run(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse's usage errors give 2)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors: argparse has printed them
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_INVALID)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        return reader_gone()
    return code


# --------------------------------------------------------------------------------------
# almanac next


def _after(text: str) -> datetime:
    """``--after``: an RFC 3339 instant with an offset, read and bounded as a Backfill's
    ``from`` and ``to`` are (:func:`almanac.times.parse_instant`, fractions and lower-case
    t/z too; years 1970-2200): outside them the engine's answers mean nothing (year 1
    printed local mean time) or overflow."""
    try:
        after = parse_instant(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    problem = year_error(after.year)
    if problem:
        raise argparse.ArgumentTypeError(f"{problem} (got {quote(text)})")
    return after


def _add_next(commands: Any) -> None:
    next_ = commands.add_parser(
        "next",
        help="print the next fire instants of a ScheduledJob",
        description=(
            "Print the next fire instants of the ScheduledJob in MANIFEST (a YAML file with "
            "one ScheduledJob and the Calendars it refers to), one per line, in UTC. "
            "Exit 1 if it never fires, 2 if the manifest is invalid."
        ),
    )
    next_.add_argument(
        "-f",
        "--filename",
        metavar="MANIFEST",
        required=True,
        help="YAML file with one ScheduledJob and its Calendars; - for standard input",
    )
    next_.add_argument(
        "--after",
        metavar="RFC3339",
        type=_after,
        help="print instants strictly after this one, e.g. 2027-01-01T00:00:00Z (default: now)",
    )
    next_.add_argument(
        "-n",
        "--count",
        metavar="COUNT",
        type=count,
        default=10,
        help="how many instants (1 to 10000, default: 10)",
    )
    next_.add_argument(
        "-o",
        "--output",
        choices=["wide"],
        help="wide: local time beside UTC, DST notes, and the days exclusions skipped",
    )
    add_default_timezone(next_, OFFLINE_ZONE_HELP)
    add_feed_files(next_)
    next_.set_defaults(handler=_next)


def _next(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        job, schedule = _load(args.filename, args.default_timezone, args.feed)
    except ManifestError as e:
        print(f"almanac next: {e}", file=err)
        return EXIT_INVALID
    after: datetime = args.after or datetime.now(UTC)
    name = f"ScheduledJob {job.metadata.name}"
    if job.spec.suspend:
        print(
            f"almanac next: note: {name} has spec.suspend: true; the operator does not fire "
            f"it until it is resumed",
            file=err,
        )
    if args.output == "wide":
        printed = _wide(out, name, schedule, after, args.count)
    else:
        printed = 0
        for instant in itertools.islice(schedule.fires(after), args.count):
            print(format_instant(instant), file=out)
            printed += 1
    if printed:
        return EXIT_OK
    never = schedule.next_fire(after)
    assert isinstance(never, NeverFires)
    when = "" if schedule.never_fires else f" after {format_instant(after)}"
    print(f"almanac next: {name} never fires{when}: {never.message}", file=err)
    return EXIT_NEVER_FIRES


def _wide(out: TextIO, name: str, schedule: Schedule, after: datetime, count: int) -> int:
    start, end = schedule.window
    kind = "fixed-time" if schedule.cron.fixed_time else "wildcard"
    window = (
        ""
        if start is None and end is None
        else f", window [{'-' if start is None else format_instant(start)}, "
        f"{'-' if end is None else format_instant(end)}]"
    )
    shift = ""
    if schedule.days.on_excluded is not OnExcludedDay.SKIP:
        shift = (
            f", onExcludedDay {schedule.days.on_excluded.value} "
            f"(maxShiftDays {schedule.days.max_shift})"
        )
    print(
        f"# {name}: {quote(schedule.cron.text)} ({kind}) in {schedule.zone.key}{window}{shift}",
        file=out,
    )
    printed = 0
    pad = " " * len("YYYY-MM-DDTHH:MM:SSZ  ")
    if schedule.never_fires is not None:
        return 0
    skipped = 0
    for item in first_fires(schedule.timeline(after), count):
        if isinstance(item, SkippedDay):
            skipped += 1
            if skipped <= _SKIPPED_SHOWN:
                rules = "; ".join(str(r) for r in item.excluded_by)
                note = f"; {item.note}" if item.note else ""
                print(f"{pad}skipped {item.day:%a} {item.day.isoformat()}: {rules}{note}", file=out)
            continue
        if skipped > _SKIPPED_SHOWN:
            print(f"{pad}... and {skipped - _SKIPPED_SHOWN} more skipped days", file=out)
        skipped = 0
        printed += 1
        why = f"  {'; '.join(item.reasons)}" if item.reasons else ""
        print(f"{format_instant(item.instant)}  {format_local(item)}{why}", file=out)
        for note in item.notes:
            print(f"{pad}  note: {note}", file=out)
    if printed and printed < count and end is not None:
        print(f"{pad}the window ends at {format_instant(end)}", file=out)
    return printed


# --------------------------------------------------------------------------------------
# almanac calendar


def _month(text: str) -> tuple[int, int]:
    """``--from YYYY-MM``, in the years of ``--after`` (1970-2200): outside them the
    grids overflowed the calendar."""
    year, _, month = text.partition("-")
    if len(year) == 4 and year.isdigit() and month.isdigit() and 1 <= int(month) <= 12:
        problem = year_error(int(year))
        if problem:
            raise argparse.ArgumentTypeError(f"{problem} (got {quote(text)})")
        return int(year), int(month)
    raise argparse.ArgumentTypeError(f"{quote(text)} is not a month (YYYY-MM, e.g. 2027-01)")


def _add_calendar(commands: Any) -> None:
    grid = commands.add_parser(
        "calendar",
        help="draw a ScheduledJob's months: the days it fires and the days it skips, and why",
        description=(
            "Draw month grids like cal(1) for the ScheduledJob in MANIFEST (with the "
            "Calendars it refers to): the days it fires (+N: N fires that local date), the "
            "days an exclusion skips (-a, explained under the month) and the rest blank."
        ),
    )
    grid.add_argument(
        "-f",
        "--filename",
        metavar="MANIFEST",
        required=True,
        help="YAML file with one ScheduledJob and its Calendars; - for standard input",
    )
    grid.add_argument(
        "--from",
        dest="first",
        metavar="YYYY-MM",
        type=_month,
        help="the first month (default: the current month in the job's zone)",
    )
    add_grid_options(
        grid, zone_help="IANA zone for a ScheduledJob without spec.timeZone (default: UTC)"
    )
    add_feed_files(grid)
    grid.set_defaults(handler=_calendar)


def _calendar(args: argparse.Namespace) -> int:
    from almanac.cli.monthgrid import render_months

    out, err = sys.stdout, sys.stderr
    try:
        job, schedule = _load(args.filename, args.default_timezone, args.feed)
    except ManifestError as e:
        print(f"almanac calendar: {e}", file=err)
        return EXIT_INVALID
    now = datetime.now(UTC)
    if args.first is None:
        today = now.astimezone(schedule.zone)
        year, month = today.year, today.month
    else:
        year, month = args.first
    grids = render_months(
        schedule,
        f"ScheduledJob {job.metadata.name}",
        year,
        month,
        args.months,
        now=now,
        color=use_color(args.color, out),
    )
    for line in grids.lines:
        print(line, file=out)
    return EXIT_NEVER_FIRES if grids.never else EXIT_OK


def _load(
    filename: str, default_time_zone: str, feeds: Sequence[str] = ()
) -> tuple[ScheduledJob, Schedule]:
    """The manifest's one ScheduledJob and its schedule (built by :func:`resolve`, as the
    operator builds it, with the ``--feed`` copies); _Usage with every problem."""
    source, objects = read_objects(filename)
    objects = with_feed_copies(objects, feeds, datetime.now(UTC))
    jobs = [o for o in objects if o.get("kind") == "ScheduledJob"]
    if len(jobs) != 1:
        raise _Usage(f"{source} holds {len(jobs)} ScheduledJobs; expected exactly one")
    problems: list[str] = []
    job: ScheduledJob | None = None
    try:
        job = ScheduledJob.parse(jobs[0])
    except InvalidSpec as e:
        problems.append(_invalid(f"ScheduledJob {name_of(jobs[0])}", e))
    # Every Calendar in the file is checked, referred to or not; those of the job's
    # namespace are its namespace's, by name, as the operator holds them (and every
    # ClusterCalendar, as ClusterCalendar/<name>).
    calendars: dict[str, dict[str, Any]] = {}
    # Calendars reported invalid above: a reference to one is not also "not found".
    invalid: set[str] = set()
    for body in (o for o in objects if o.get("kind") in CALENDAR_KINDS):
        kind = str(body["kind"])
        try:
            calendar = Calendar.parse(body)
        except InvalidSpec as e:
            problems.append(_invalid(f"{kind} {name_of(body)}", e))
            metadata = body.get("metadata")
            theirs = metadata.get("namespace") if isinstance(metadata, dict) else None
            ours = job.metadata.namespace if job is not None else None
            if kind != "Calendar" or not ours or not theirs or ours == theirs:
                invalid.add(calendar_key(kind, name_of(body)))
            continue
        if kind == "Calendar" and job is not None and not _same_namespace(job, calendar):
            continue
        key = calendar_key(kind, calendar.metadata.name)
        if key in calendars:
            problems.append(f"{source} holds two {kind}s named {calendar.metadata.name}")
        calendars[key] = body
    if job is not None:
        try:
            schedule = resolve(job, calendars, default_time_zone)
        except InvalidSpec as e:
            unfetched = {x.path for x in e.errors if x.reason == "CalendarNotFetched"}
            if unfetched and len(unfetched) == len(e.errors):
                # Offline, nothing is fetched: a feed is not evaluated (its copy is in
                # the live Calendar's status, which `kubectl almanac next` reads).
                unread = [
                    f"{ref.kind} {ref.name} (spec.calendarRefs[{i}])"
                    for i, ref in enumerate(job.spec.calendar_refs)
                    if f"spec.calendarRefs[{i}]" in unfetched
                ]
                raise _Usage(
                    f"{source}: not evaluated offline: {', '.join(unread)} takes its days "
                    "from a feed (spec.source), which almanac does not fetch; give its text "
                    "with --feed CALENDAR=FILE, or `kubectl almanac next JOB` uses the "
                    "operator's copy"
                ) from None
            invalid_refs = {
                f"spec.calendarRefs[{i}].name"
                for i, ref in enumerate(job.spec.calendar_refs)
                if ref.key() in invalid
            }
            errors = [
                x
                for x in e.errors
                if not (x.reason == "CalendarNotFound" and x.path in invalid_refs)
            ]
            if errors:
                problems.append(_invalid(f"ScheduledJob {job.metadata.name}", InvalidSpec(errors)))
    if problems:
        raise _Usage(f"{source} is invalid:\n" + "\n".join(problems))
    assert job is not None
    return job, schedule


def _same_namespace(job: ScheduledJob, calendar: Calendar) -> bool:
    ours, theirs = job.metadata.namespace, calendar.metadata.namespace
    return ours is None or theirs is None or ours == theirs


def _invalid(what: str, error: InvalidSpec) -> str:
    return f"{what}:\n" + "\n".join(f"  {e}" for e in error.errors)


# --------------------------------------------------------------------------------------
# almanac calendar-diff


def _add_calendar_diff(commands: Any) -> None:
    diff = commands.add_parser(
        "calendar-diff",
        help="the fires a (Cluster)Calendar edit adds and removes, for each ScheduledJob "
        "that refers to it",
        description=(
            "Compare the Calendar or ClusterCalendar in FILE with the current one of the same "
            "kind and name in JOBS (a YAML file with the ScheduledJobs, Calendars and "
            "ClusterCalendars as they are now) and print, for each ScheduledJob that refers "
            "to it, the fires over the next DAYS days that appear or disappear. Exit 2 if a "
            "file is invalid."
        ),
    )
    add_edited_calendar_options(diff)
    diff.add_argument(
        "--jobs",
        metavar="JOBS",
        required=True,
        help="YAML file with the ScheduledJobs and the current Calendars and ClusterCalendars "
        "(kind: List or several documents)",
    )
    diff.add_argument(
        "--after",
        metavar="RFC3339",
        type=_after,
        help="compare the fires after this instant (default: now)",
    )
    add_default_timezone(diff, OFFLINE_ZONE_HELP)
    add_feed_files(diff)
    diff.set_defaults(handler=_calendar_diff)


def _calendar_diff(args: argparse.Namespace) -> int:
    from almanac.api.impact import calendar_impact, parse_calendar
    from almanac.cli.impactview import format_impact

    try:
        source, objects = read_objects(args.filename)
        edited = [o for o in objects if o.get("kind") in CALENDAR_KINDS]
        if len(edited) != 1:
            raise _Usage(
                f"{source} holds {len(edited)} Calendars and ClusterCalendars; expected exactly one"
            )
        kind = str(edited[0]["kind"])
        try:
            new = parse_calendar(edited[0])
        except InvalidSpec as e:
            what = f"{kind} {name_of(edited[0])}"
            raise _Usage(f"{source} is invalid:\n{_invalid(what, e)}") from None
        where, current = read_objects(args.jobs)
        # A feed's text serves the edited version and the current one alike.
        both = with_feed_copies([edited[0], *current], args.feed, datetime.now(UTC))
        edited, current = both[:1], both[1:]
    except ManifestError as e:
        print(f"almanac calendar-diff: {e}", file=sys.stderr)
        return EXIT_INVALID
    # A Calendar's jobs are those of its namespace (all, when either side says none); a
    # ClusterCalendar's, those of every namespace.
    namespace = new.metadata.namespace if kind == CALENDAR_KINDS[0] else None

    def ours(body: dict[str, Any]) -> bool:
        theirs = (body.get("metadata") or {}).get("namespace")
        return namespace is None or theirs is None or theirs == namespace

    jobs = [o for o in current if o.get("kind") == "ScheduledJob" and ours(o)]
    calendars = [o for o in current if o.get("kind") in CALENDAR_KINDS]
    since = args.after or datetime.now(UTC)
    until = since + timedelta(days=args.days)
    impacts = calendar_impact(edited[0], jobs, calendars, since, until, args.default_timezone)
    for line in format_impact(f"{kind} {new.metadata.name}", where, impacts, since, until):
        print(line)
    return EXIT_OK


# --------------------------------------------------------------------------------------
# almanac run


def _add_run(commands: Any) -> None:
    """`almanac run`: the operator, in the foreground."""
    run = commands.add_parser(
        "run",
        help="run the operator against the current kubeconfig (or in-cluster)",
        description="Run the Almanac operator in the foreground until SIGINT or SIGTERM. "
        "Outside a cluster it uses the current kubeconfig and context, like kubectl.",
    )
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        metavar="NS",
        help="serve only this namespace (repeat for several; default: all, or ALMANAC_NAMESPACES)",
    )
    run.add_argument(
        "--default-timezone",
        metavar="ZONE",
        help="IANA zone for jobs without spec.timeZone (default: UTC, or ALMANAC_DEFAULT_TIMEZONE)",
    )
    run.add_argument(
        "--rerun-delay",
        type=float,
        metavar="SECONDS",
        help="how long after a rerun request the child run starts (default 60)",
    )
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="full",
        help="log line format (default: full)",
    )
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        metavar="URL",
        help="liveness endpoint (default: %(default)s; empty to disable)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        metavar="PORT",
        help="serve Prometheus /metrics on this port (default: %(default)s; 0 to disable)",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="act only while holding a Lease, so that several replicas never both act",
    )
    run.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        help="namespace of the Lease (default: POD_NAMESPACE, else default)",
    )
    run.add_argument(
        "--leader-election-id",
        default="almanac-operator",
        metavar="NAME",
        help="name of the Lease (default: %(default)s)",
    )
    run.add_argument(
        "--webhook-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve the validating admission webhook (HTTPS) on this port (default: off)",
    )
    run.add_argument(
        "--webhook-cert-dir",
        default="",
        metavar="DIR",
        help="folder with the webhook's tls.crt and tls.key, e.g. a Secret cert-manager "
        "fills (default: none; see --webhook-secret)",
    )
    run.add_argument(
        "--webhook-secret",
        metavar="NAME",
        help="without --webhook-cert-dir: make the webhook's CA and certificate and keep "
        "them in this Secret (of --webhook-namespace), shared by every replica",
    )
    run.add_argument(
        "--webhook-namespace",
        metavar="NS",
        help="namespace of the webhook's Secret and Service (default: POD_NAMESPACE, else default)",
    )
    run.add_argument(
        "--webhook-service",
        default="",
        metavar="NAME",
        help="with --webhook-secret: the Service the API server calls the webhook through "
        "(the certificate is made for its DNS names)",
    )
    run.add_argument(
        "--webhook-configuration",
        metavar="NAME",
        help="with --webhook-secret: the ValidatingWebhookConfiguration whose caBundle gets the CA",
    )
    run.add_argument(
        "--webhook-dns-name",
        action="append",
        default=[],
        metavar="NAME",
        help="with --webhook-secret: another name the certificate is valid for (repeatable)",
    )
    run.add_argument(
        "--mail-allowed-domains",
        type=_allowed_domains,
        metavar="LIST",
        help="recipient domains spec.notifications.to may name, comma-separated: example.com "
        "(exactly), .example.com (its subdomains), * (any) (default: "
        "ALMANAC_MAIL_ALLOWED_DOMAINS, else only the domains of ALMANAC_SMTP_FROM and "
        "ALMANAC_SMTP_TO)",
    )
    run.add_argument(
        "--mail-rate-limit",
        type=_rate_limit,
        metavar="N",
        help="e-mails per namespace per hour; more wait (default: 60, or "
        "ALMANAC_MAIL_RATE_LIMIT; 0: no limit)",
    )
    run.add_argument(
        "--notify-allowed-hosts",
        type=_allowed_hosts,
        metavar="LIST",
        help="hosts spec.notifications.webhooks may post to, comma-separated: "
        "hooks.example.com (that host, https), *.example.com (its subdomains, https), "
        "http://host (that host, plain http too) (default: ALMANAC_NOTIFY_ALLOWED_HOSTS; "
        "empty: webhooks are off)",
    )
    run.add_argument(
        "--feed-allowed-hosts",
        type=functools.partial(_allowed_hosts, flag="--feed-allowed-hosts"),
        metavar="LIST",
        help="hosts a Calendar's spec.source.url may be fetched from, comma-separated, "
        "written as for --notify-allowed-hosts (default: ALMANAC_FEED_ALLOWED_HOSTS; empty: "
        "feeds from URLs are off, configMapKeyRef still works)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    run.set_defaults(handler=_run)


def _allowed_domains(text: str) -> Any:
    """An AllowList (loaded only for `almanac run`, like the rest of the operator)."""
    from almanac.notifications.recipients import AllowList

    try:
        return AllowList.parse(text, "--mail-allowed-domains")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _allowed_hosts(text: str, flag: str = "--notify-allowed-hosts") -> Any:
    """A HostAllowList, or "" for an empty list (off, even if the variable names hosts)."""
    from almanac.hosts import HostAllowList

    try:
        return HostAllowList.parse(text, flag) or ""
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _rate_limit(text: str) -> Any:
    from almanac.controller.settings import parse_rate_limit

    try:
        return parse_rate_limit(text, "--mail-rate-limit")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _run(args: argparse.Namespace) -> int:
    """Loads the operator (kopf, the Kubernetes client) only now: ``almanac next`` and
    ``--help`` stay as quick as the interpreter. The client without its generated models
    (:mod:`almanac.lean_client`), before kopf imports it whole."""
    from almanac import lean_client

    lean_client.load()
    from almanac.controller.runner import run_from_args

    return run_from_args(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
