"""What a run's Jobs are told about their run: the scheduled instant and its local date
(the business date a nightly settlement settles), the zone, the job, the run, the
service, what created the run and its parent.

Each container and init container of each service's Job gets these as environment
variables, unless it defines the same name itself (the user's value wins), and the Job
carries the instant as the annotation ``almanac.dev/scheduled-time`` (as CronJob's
``batch.kubernetes.io/cronjob-scheduled-timestamp``, KEP-4026).

The instant is the run's ``spec.scheduledTime``, except for a rerun: it keeps the instant
of the run it descends from (``spec.originalScheduledTime``), so that a settlement rerun
three days later settles the same night. The zone is the one the run was created in
(``spec.timeZone``, copied from parent to rerun), so that an edit of the job's zone does
not move an existing run's date; runs created before that field fall back to the job's
zone, then the operator's default.

Pure: no clock, no Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from almanac.api.names import trigger_of
from almanac.schedule.zones import parse_time_zone
from almanac.times import format_instant, parse_time

__all__ = [
    "RunDate",
    "run_date",
    "run_variables",
    "scheduled_instant",
    "with_variables",
]

Body = dict[str, Any]


def scheduled_instant(spec: Mapping[str, Any]) -> datetime | None:
    """The instant a run stands for: its parent's for a rerun, else its own."""
    return parse_time(spec.get("originalScheduledTime") or spec.get("scheduledTime"))


@dataclass(frozen=True)
class RunDate:
    """A run's scheduled instant and the zone its local date is read in."""

    instant: datetime
    time_zone: str

    @property
    def date(self) -> str:
        """``YYYY-MM-DD``: the instant's local date in the zone."""
        return self.instant.astimezone(ZoneInfo(self.time_zone)).date().isoformat()


def run_date(run: Body, job: Body | None, default_time_zone: str) -> RunDate | None:
    """The run's :class:`RunDate`; None when its spec holds no instant (an invalid run
    executes nothing anyway). A zone that is no longer known (an old run of a zone the
    tz database dropped) is read as the operator's default rather than failing the run."""
    spec = run.get("spec") or {}
    instant = scheduled_instant(spec)
    if instant is None:
        return None
    for zone in (
        spec.get("timeZone"),
        ((job or {}).get("spec") or {}).get("timeZone"),
        default_time_zone,
    ):
        if zone:
            try:
                parse_time_zone(zone)
            except ValueError:
                continue
            return RunDate(instant, zone)
    return RunDate(instant, "UTC")


def run_variables(run: Body, service: str, when: RunDate) -> dict[str, str]:
    """The environment every container of ``service``'s Job gets, in this order."""
    spec = run.get("spec") or {}
    return {
        "ALMANAC_SCHEDULED_TIME": format_instant(when.instant),
        "ALMANAC_SCHEDULED_DATE": when.date,
        "ALMANAC_TIME_ZONE": when.time_zone,
        "ALMANAC_SCHEDULED_JOB": str(spec.get("scheduledJob") or ""),
        "ALMANAC_RUN": str(run["metadata"]["name"]),
        "ALMANAC_SERVICE": service,
        "ALMANAC_TRIGGER": trigger_of(spec),
        "ALMANAC_PARENT_RUN": str(spec.get("parentRun") or ""),
    }


def _container(container: Body, variables: Mapping[str, str]) -> Body:
    env: Sequence[Body] = container.get("env") or []
    own = {e.get("name") for e in env}
    added = [{"name": n, "value": v} for n, v in variables.items() if n not in own]
    return {**container, "env": [*env, *added]} if added else container


def with_variables(pod_spec: Body, variables: Mapping[str, str]) -> Body:
    """``pod_spec`` (a copy) with ``variables`` added to each container and init
    container that does not define the name already: a user's own ALMANAC_RUN (a test
    harness replaying a run) is left as written."""
    spec = dict(pod_spec)
    for field in ("initContainers", "containers"):
        if spec.get(field):
            spec[field] = [_container(c, variables) for c in spec[field]]
    return spec
