"""Has the operator answered an annotation yet? Pure functions of what the plugin saw.

After ``rerun`` or ``run`` sets its annotation, the verb polls the cluster and asks
:func:`rerun_outcome` / :func:`run_now_outcome` whether what appeared since is the
operator's answer: ``(exit code, message)`` once it is, None while it is not.

Pure: no client, no clock, no I/O. Imports the ``Body`` alias of
:mod:`almanac.rules.plans` and, of the plugin, :mod:`.errors` and :mod:`.views`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from almanac.api.names import TRIGGER_RUN_NOW, trigger_of
from almanac.cli.plugin.errors import EXIT_ERROR, EXIT_OK
from almanac.cli.plugin.views import event_order, instant_text, name_of
from almanac.rules.plans import Body

__all__ = ["event_key", "rerun_outcome", "run_now_outcome", "unseen"]


def unseen(events: Iterable[Body], seen: set[str]) -> list[Body]:
    """The ``events`` whose :func:`event_key` is not in ``seen``, oldest first."""
    return sorted((e for e in events if event_key(e) not in seen), key=event_order)


def event_key(event: Body) -> str:
    """What tells one Event from another: its UID, else its name."""
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
        starts = instant_text((child.get("spec") or {}).get("scheduledTime"), now)
        return EXIT_OK, f"run {name_of(child)} created from {run}, starts at {starts}"
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
        if trigger_of(r.get("spec") or {}) == TRIGGER_RUN_NOW and name_of(r) not in before
    ]
    if manual:
        newest = max(
            manual, key=lambda r: (r["metadata"].get("creationTimestamp") or "", name_of(r))
        )
        return EXIT_OK, f"run {name_of(newest)} created from scheduledjob {job}"
    for event in new_events:
        # The operator refuses a run-now (concurrencyPolicy Forbid with a run active, a
        # job that is not Ready); the API server may refuse the run itself.
        if event.get("reason") in ("RunNowRefused", "RunRefused"):
            return EXIT_ERROR, f"run-now of {job} refused: {event.get('message') or ''}"
    return None
