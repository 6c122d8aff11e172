"""Which ScheduledJobRuns the operator may execute: only those it created itself.

A run's services run with the operator's permissions, so a run someone else created (a
user with create on scheduledjobruns, or one who squats the derived name of another
job's next fire) must never execute. The webhook refuses such creates and the chart's
roles do not grant them; this is the operator's own check for a cluster without either.

A run the operator created is recognised by what only the operator writes:

- once the operator has written its status (the status subresource, which users are
  not granted), it is the operator's;
- before that, its controlling ownerReference names the live ScheduledJob by UID, and
  its services are the ones the operator would have copied: the job's own for a
  scheduled, manual or backfill run, a subset of the parent run's for a rerun of a
  parent that passes the same test. (A job whose services are edited between a run's
  creation and its first status, a matter of milliseconds unless the operator stops
  exactly then, leaves that run reported and not executed.)

Pure: imports nothing of Almanac.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Body = dict[str, Any]

__all__ = ["of_an_earlier_job", "untrusted"]


def untrusted(run: Body, job: Body | None, lookup: Callable[[str], Body | None]) -> str | None:
    """Why ``run`` was not created by the operator for ``job`` (None: it was).
    ``lookup`` finds another run of the namespace by name (a rerun's parent)."""
    if run.get("status"):
        return None  # the operator wrote its status: it has been ours since
    name = run["metadata"]["name"]
    spec = run.get("spec") or {}
    if job is None:
        return f"run {name} names ScheduledJob {spec.get('scheduledJob')!r}, which does not exist"
    owner = next(
        (
            ref
            for ref in run["metadata"].get("ownerReferences") or []
            if ref.get("controller") and ref.get("kind") == "ScheduledJob"
        ),
        None,
    )
    if owner is None or owner.get("uid") != job["metadata"].get("uid"):
        return f"run {name} is not owned by ScheduledJob {job['metadata']['name']} (its UID)"
    services = spec.get("services") or []
    parent_name = spec.get("parentRun")
    if spec.get("trigger") == "Rerun" and parent_name:
        parent = lookup(parent_name)
        if parent is None or untrusted(parent, job, lookup) is not None:
            return f"rerun {name}: its parent run {parent_name} is not one of the operator's"
        own = (parent.get("spec") or {}).get("services") or []
        if all(s in own for s in services):
            return None
        return f"rerun {name}: its services are not its parent's"
    if services == (job.get("spec") or {}).get("services"):
        return None
    return f"run {name}: its services are not ScheduledJob {job['metadata']['name']}'s"


def of_an_earlier_job(run: Body, job: Body) -> bool:
    """Whether ``run`` is controlled by another ScheduledJob of ``job``'s name: one deleted
    before ``job`` was created (its runs left for the garbage collector, or orphaned). As
    a CronJob does not adopt an earlier CronJob's Jobs, it is not ``job``'s run, whatever
    its status says."""
    uid = job["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("kind") == "ScheduledJob" and ref.get("uid") != uid
        for ref in run["metadata"].get("ownerReferences") or []
    )
