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
    next JOB [--count N]                  the live job's next fires, skipped days and why
    calendar JOB [--months N]             month grids: the days it fires and skips, and why
    calendar-diff -f FILE [--days N]      the fires an edited Calendar adds and removes
    describe RUN                          a run: services, notification, Events, what next
    backfill JOB --from T --to T [--dry-run]  runs for a past range: the instants, or a Backfill

Exit codes: 0 done (also: a rerun or run-now annotation set but not yet acted on within
``--wait``); 1 an object is missing, the cluster cannot be used, the operator refused the
rerun or run-now, or the job does not fire (``next``); 2 bad usage (argparse).

The operator decides; the plugin only relays. A rerun or a run-now is the annotation
the operator consumes (docs/api.md, "Reruns and manual runs"); the plugin then watches,
boundedly, for what the operator answers: the new run, or a refusing Event.

The package, one module a concern; each one's docstring says what it may import, and
none of them imports this one but ``__main__``. This one imports :mod:`.errors`,
:mod:`almanac.errors` and the engine's zone parser (``--default-timezone``), and
:mod:`.cluster` (with :mod:`.verbs`, the client and aiohttp) only once the command line
has parsed: ``--help`` and a usage error need none of them::

    __init__   this: the command line (build_parser) and main, the console script
    __main__   python -m almanac.cli.plugin
    cluster    which cluster; runs a verb within the deadline, client failures as errors
    verbs      the verbs: fetch, call the pure parts, print, pick the exit code
    views      pure: instants, ages, tables, the runs table, the describe report
    fires      pure: the next report (a live job's fires and skipped days)
    outcomes   pure: has the operator answered a rerun or run-now annotation yet?
    errors     PluginError (NotFound, Unreachable) and the exit codes
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from almanac import __version__
from almanac.cli import reader_gone
from almanac.cli.options import (
    LIVE_ZONE_HELP,
    add_default_timezone,
    add_edited_calendar_options,
    add_grid_options,
    count,
)
from almanac.cli.plugin.errors import EXIT_ERROR, PluginError
from almanac.errors import quote

__all__ = ["build_parser", "main"]

#: The default bound of the wait after a rerun or run-now annotation: the operator acts
#: within about a second, so 10 s means it is not running (or not for this namespace).
DEFAULT_WAIT_SECONDS = 10.0
#: Runs shown by ``runs`` without ``--limit``.
DEFAULT_LIMIT = 20


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
        description="Almanac's kubectl plugin: runs, reruns, manual runs, next fires, backfills.",
        epilog="-n/--namespace, --kubeconfig and --context may also follow the verb.",
    )
    parser.add_argument("--version", action="version", version=f"kubectl-almanac {__version__}")
    _connection_options(parser, default=None)
    # Given after the verb, these must not reset what was given before it: SUPPRESS
    # leaves the attribute alone unless the option is present.
    after = argparse.ArgumentParser(add_help=False)
    _connection_options(after, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="VERB")

    runs = commands.add_parser(
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
    runs.set_defaults(verb="runs")

    wait_help = (
        "how long to wait for the operator's answer, in seconds "
        f"(default: {DEFAULT_WAIT_SECONDS:g}; 0: do not wait)"
    )
    rerun = commands.add_parser(
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
    rerun.set_defaults(verb="rerun")

    run = commands.add_parser(
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
    run.set_defaults(verb="run_now")

    next_ = commands.add_parser(
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
        type=count,
        default=10,
        help="how many fires (1 to 10000, default: 10)",
    )
    add_default_timezone(next_, LIVE_ZONE_HELP)
    next_.set_defaults(verb="next_fires")

    grid = commands.add_parser(
        "calendar",
        parents=[after],
        help="month grids of a ScheduledJob: the days it fires and skips, and why",
        description=(
            "Month grids like cal(1) of the live ScheduledJob JOB with the Calendars it "
            "refers to, from the current month: the days it fires (+N: N fires that local "
            "date), the days an exclusion skips (-a, explained under the month)."
        ),
    )
    grid.add_argument("job", metavar="JOB", help="the ScheduledJob")
    add_grid_options(
        grid,
        zone_help=LIVE_ZONE_HELP,
    )
    grid.set_defaults(verb="calendar")

    describe = commands.add_parser(
        "describe",
        parents=[after],
        help="a run: services, notification, Events, what to do",
        description=(
            "Show RUN, its services, its notification, its Events, and the commands to act on it."
        ),
    )
    describe.add_argument("run", metavar="RUN", help="the ScheduledJobRun")
    describe.set_defaults(verb="describe")

    diff = commands.add_parser(
        "calendar-diff",
        parents=[after],
        help="the fires a (Cluster)Calendar edit adds and removes, before you apply it",
        description=(
            "Compare the Calendar or ClusterCalendar in FILE with the live one of the same "
            "kind and name and print, for each ScheduledJob that refers to it (of the "
            "Calendar's namespace; of every namespace for a ClusterCalendar), the fires over "
            "the next DAYS days that appear or disappear if FILE is applied."
        ),
    )
    add_edited_calendar_options(diff)
    add_default_timezone(diff, LIVE_ZONE_HELP)
    diff.set_defaults(verb="calendar_diff")

    fill = commands.add_parser(
        "backfill",
        parents=[after],
        help="run a ScheduledJob for the past instants of a range",
        description=(
            "Create a Backfill: one run of JOB for every instant its schedule would have "
            "fired in [--from, --to), exclusions and Calendars included, at most "
            "--parallelism at once. With --dry-run, print those instants instead (and "
            "which already have their run). Exit 1 if the range is refused."
        ),
    )
    fill.add_argument("job", metavar="JOB", help="the ScheduledJob")
    fill.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        required=True,
        help="the first instant (inclusive), RFC 3339 with an offset: 2027-01-01T00:00:00Z",
    )
    fill.add_argument(
        "--to",
        dest="end",
        metavar="TIME",
        required=True,
        help="the end (exclusive), RFC 3339 with an offset; not later than now",
    )
    fill.add_argument(
        "--parallelism",
        metavar="N",
        type=count,
        default=1,
        help="runs unfinished at once, 1-100 (default: 1)",
    )
    fill.add_argument(
        "--order",
        choices=["Oldest", "Newest"],
        default="Oldest",
        help="which end of the range runs first (default: Oldest)",
    )
    fill.add_argument(
        "--name",
        metavar="NAME",
        help="the Backfill's name (default: JOB-<from>-<to>, in UTC minutes)",
    )
    fill.add_argument(
        "--dry-run",
        action="store_true",
        help="print the instants and run names; create nothing",
    )
    add_default_timezone(fill, LIVE_ZONE_HELP)
    fill.set_defaults(verb="backfill")
    return parser


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
    # Only now: asyncio, the client and aiohttp are most of the start-up, and --help and
    # a usage error need none of them.
    import asyncio

    from almanac.cli.plugin.cluster import execute

    try:
        return asyncio.run(execute(args))
    except PluginError as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return reader_gone()
