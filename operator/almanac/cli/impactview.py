"""The ``calendar-diff`` report, shared by ``almanac calendar-diff`` (offline) and
``kubectl almanac calendar-diff`` (live): a table of the fires a Calendar edit adds and
removes, job by job, then what else a reader must know (a job that would never fire
again, one that cannot be evaluated, a comparison cut short).

Pure: :class:`almanac.api.impact.JobImpact` in, lines out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from almanac.api.impact import FIRES_COMPARED, JobImpact
from almanac.cli.plugin.views import format_table
from almanac.times import format_instant

__all__ = ["format_impact"]


def _local(when: datetime) -> str:
    return f"{when:%a %Y-%m-%d %H:%M} {when.tzname()}"


def format_impact(
    calendar: str,
    where: str,
    impacts: Sequence[JobImpact],
    since: datetime,
    until: datetime,
) -> list[str]:
    """The report for ``calendar`` ("Calendar bank", "ClusterCalendar ro-banks";
    ``where``: "namespace x", "every namespace", or the file the jobs came from) over
    (since, until]."""
    period = f"{format_instant(since)} to {format_instant(until)}"
    if not impacts:
        return [f"No ScheduledJob in {where} refers to {calendar}: the edit moves no fire."]
    lines = [f"{calendar}: the fires this version moves, {period}"]
    rows = []
    notes = []
    for impact in impacts:
        job = impact.job + (" (suspended)" if impact.suspended else "")
        if impact.error:
            rows.append([job, "unknown", "", "", "see below"])
            notes.append(f"ScheduledJob {impact.job} cannot be evaluated: {impact.error}")
            continue
        if not impact.moved:
            rows.append([job, "no change", "", "", ""])
        for moved in impact.moved:
            rows.append(
                [
                    job,
                    "appears" if moved.appears else "disappears",
                    format_instant(moved.instant) or "",
                    _local(moved.local),
                    moved.why,
                ]
            )
        if impact.never_fires:
            notes.append(
                f"Warning: ScheduledJob {impact.job} would never fire again: {impact.never_fires}"
            )
        if impact.compared_until is not None:
            notes.append(
                f"ScheduledJob {impact.job}: compared up to "
                f"{format_instant(impact.compared_until)} only (the first {FIRES_COMPARED:,} fires)"
            )
    lines += format_table(["SCHEDULEDJOB", "CHANGE", "FIRE (UTC)", "LOCAL", "WHY"], rows)
    appear = sum(m.appears for i in impacts for m in i.moved)
    disappear = sum(not m.appears for i in impacts for m in i.moved)
    lines.append(
        f"{len(impacts)} ScheduledJob(s) refer to it: {appear} fire(s) appear, "
        f"{disappear} disappear."
    )
    return lines + notes
