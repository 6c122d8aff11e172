"""CronJob's policies, as pure functions: missed fires, run history, what to prune.

These decide; the controller does. Times are arguments, never read from the clock.

Missed fires (``docs/api.md``, "Missed fires"): fires that were due while nothing could start
them (the operator was down) are found from the last fire the job's status records.
``catchUp`` says which start: the latest within ``startingDeadlineSeconds`` (``Latest``,
CronJob's rule), every one within it (``All``), or none of those that fell before the
operator began serving (``None``); every other one is recorded as missed. Fires that
fell while the job was suspended are never started on resume: all are recorded as missed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from almanac.times import timestamp

TERMINAL = frozenset({"Succeeded", "Failed"})


#: At most this many missed fires start at once with ``catchUp: All`` (the latest ones).
CATCH_UP_MAX = 1000


@dataclass(frozen=True)
class FireDecision:
    """What to do with the fires due since the last one recorded."""

    starts: list[datetime]  # fires to start now, oldest first
    missed: list[datetime]  # fires that will never start, oldest first
    reason: str = ""  # why they were missed, for the Event and status
    waiting: list[datetime] = field(default_factory=list)
    """Fires that start later, in turn (``catchUp: All`` with ``Forbid``): neither
    started nor missed, so they stay due."""

    @property
    def start(self) -> datetime | None:
        """The latest fire started now, if any."""
        return self.starts[-1] if self.starts else None


def decide(
    due: Sequence[datetime],
    now: datetime,
    deadline_seconds: int | None,
    *,
    resumed: bool = False,
    catch_up: str = "Latest",
    serving_since: datetime | None = None,
    concurrency: str = "Allow",
    busy: bool = False,
) -> FireDecision:
    """Which of the due fires (oldest first, all <= now) to start and which are missed.

    ``serving_since`` is when this operator began serving: with ``catch_up`` "None",
    fires before it fell while nobody served. ``busy``: a run of the job is active
    (``concurrency`` "Forbid" makes ``All``'s fires wait for their turn)."""
    if not due:
        return FireDecision([], [])
    if resumed:
        return FireDecision([], list(due), "the job was suspended")
    if catch_up == "None" and serving_since is not None:
        unserved = [t for t in due if t < serving_since]
        if unserved:
            rest = _latest(due[len(unserved) :], now, deadline_seconds)
            return FireDecision(
                rest.starts,
                unserved + rest.missed,
                "catchUp is None: it fell while no operator was serving",
            )
    if catch_up != "All" or concurrency == "Replace":
        decision = _latest(due, now, deadline_seconds)
        if catch_up == "All" and decision.missed and decision.reason.startswith("no operator"):
            reason = (
                "catchUp All with concurrencyPolicy Replace: each fire would replace the "
                "one before, so only the latest starts"
            )
            return FireDecision(decision.starts, decision.missed, reason)
        return decision
    expired = [t for t in due if not _within(t, now, deadline_seconds)]
    within = list(due[len(expired) :])
    overflow, within = within[:-CATCH_UP_MAX], within[-CATCH_UP_MAX:]
    missed = expired + overflow
    reason = ""
    if expired:
        reason = f"not started within startingDeadlineSeconds ({deadline_seconds}s)"
    elif overflow:
        reason = f"catchUp All starts at most the latest {CATCH_UP_MAX}"
    if concurrency == "Forbid":
        if busy:
            return FireDecision([], missed, reason, waiting=within)
        return FireDecision(within[:1], missed, reason, waiting=within[1:])
    return FireDecision(within, missed, reason)


def _within(instant: datetime, now: datetime, deadline_seconds: int | None) -> bool:
    return deadline_seconds is None or now - instant <= timedelta(seconds=deadline_seconds)


def _latest(due: Sequence[datetime], now: datetime, deadline_seconds: int | None) -> FireDecision:
    """CronJob's rule: the latest due fire starts within the deadline; the rest are missed."""
    if not due:
        return FireDecision([], [])
    latest, earlier = due[-1], list(due[:-1])
    if not _within(latest, now, deadline_seconds):
        return FireDecision(
            [],
            [*earlier, latest],
            f"no operator ran to start it within startingDeadlineSeconds ({deadline_seconds}s)",
        )
    reason = "no operator ran to start it; only the latest missed fire starts" if earlier else ""
    return FireDecision([latest], earlier, reason)


@dataclass(frozen=True)
class RunSummary:
    """The part of a ScheduledJob's status that follows from its runs."""

    active: list[str]
    last_run: dict[str, str] | None
    last_successful_time: str | None

    def as_status(self) -> dict[str, Any]:
        return {
            "active": self.active or None,
            "lastRun": self.last_run,
            "lastSuccessfulTime": self.last_successful_time,
        }


def _scheduled(run: dict[str, Any]) -> str:
    # RFC 3339 UTC strings with a Z sort in time order.
    return str(run.get("spec", {}).get("scheduledTime", ""))


def _phase(run: dict[str, Any]) -> str:
    return str(run.get("status", {}).get("phase") or "Pending")


def _summary_phase(run: dict[str, Any], now: str) -> str:
    """A run as its ScheduledJob tells it: Pending before its scheduled time (a rerun a
    minute ahead), then Running until it ends. The run's own Pending -> Running step at
    a fire is not the job's news: it would cost the job a status write per fire for an
    instant's difference."""
    phase = _phase(run)
    if phase in TERMINAL:
        return phase
    return "Pending" if _scheduled(run) > now else "Running"


def summarize(
    runs: Iterable[dict[str, Any]], now: datetime, recorded: dict[str, Any] | None = None
) -> RunSummary:
    """Active runs, the latest run (phase as :func:`_summary_phase` tells it, and its
    scheduled time) and when the latest success was scheduled.

    ``runs`` are all the job's runs, those pruned by the same decision included: a
    history limit of 0 prunes the latest run in the decision that sees it finish.
    ``recorded`` is the job's stored status: what it says of runs no longer there
    stands, as CronJob keeps ``lastSuccessfulTime`` whatever it prunes. Its ``lastRun``
    stays while it is finished and no run sorts after it (one deleted unfinished is
    not the job's news); its ``lastSuccessfulTime`` while no success is later."""
    ordered = sorted(runs, key=lambda r: (_scheduled(r), r["metadata"]["name"]))
    active = [r["metadata"]["name"] for r in ordered if _phase(r) not in TERMINAL]
    last_run: dict[str, str] | None = None
    if ordered:
        last = ordered[-1]
        last_run = {
            "name": last["metadata"]["name"],
            "phase": _summary_phase(last, timestamp(now) or ""),
            "scheduledTime": _scheduled(last),
        }
    gone = _gone_last_run(recorded, {r["metadata"]["name"] for r in ordered})
    if gone is not None and (
        last_run is None
        or (last_run["scheduledTime"], last_run["name"]) < (gone["scheduledTime"], gone["name"])
    ):
        last_run = gone
    successes = [_scheduled(r) for r in ordered if _phase(r) == "Succeeded"]
    stored_success = (recorded or {}).get("lastSuccessfulTime")
    if stored_success:
        successes.append(str(stored_success))
    return RunSummary(active, last_run, max(successes) if successes else None)


def _gone_last_run(recorded: dict[str, Any] | None, names: set[str]) -> dict[str, str] | None:
    """The ``lastRun`` the status recorded, if its run is no longer there and had
    finished, with the scheduled time to compare it by (a status written before
    ``lastRun`` had one is told from the runs there are)."""
    stored = (recorded or {}).get("lastRun")
    if not isinstance(stored, dict):
        return None
    fields = {k: stored.get(k) for k in ("name", "phase", "scheduledTime")}
    if not all(isinstance(v, str) and v for v in fields.values()):
        return None
    if fields["name"] in names or fields["phase"] not in TERMINAL:
        return None
    return {k: str(v) for k, v in fields.items()}


#: A run's status fields holding the states of its notifications (docs/notifications.md),
#: named here once for the rules that write them, the delivery that sends them and the
#: pruning that waits for them: the e-mails' (one state each) about the run's outcome and
#: about its lateness, and the webhooks' (a list, one state per webhook of the job).
NOTIFICATION = "notification"
LATE_NOTIFICATION = "lateNotification"
WEBHOOK_NOTIFICATIONS = "webhookNotifications"
LATE_WEBHOOK_NOTIFICATIONS = "lateWebhookNotifications"
NOTIFICATION_FIELDS = (
    NOTIFICATION,
    LATE_NOTIFICATION,
    WEBHOOK_NOTIFICATIONS,
    LATE_WEBHOOK_NOTIFICATIONS,
)


def notifying(run: dict[str, Any]) -> bool:
    """Whether a notification of the run is still to be delivered: one of its states is
    Pending (not sent yet, rate-limited, or retrying after a temporary failure). Every
    Pending state becomes final within a day of the run's end (the retry policy's age)."""
    status = run.get("status") or {}
    for name in NOTIFICATION_FIELDS:
        value = status.get(name)
        states = value if isinstance(value, list) else [value]
        if any(isinstance(s, dict) and s.get("state") == "Pending" for s in states):
            return True
    return False


def to_prune(
    runs: Iterable[dict[str, Any]],
    keep_succeeded: int,
    keep_failed: int,
    *,
    held: Collection[str] = (),
) -> list[str]:
    """Names of finished runs beyond the history limits, oldest first (as CronJob).

    ``held`` names runs that must stay whatever the limits, because deleting them now
    would lose something (:mod:`almanac.rules.jobs` says what). They are left out of the
    answer without taking a place within the limits (the newest runs are the ones kept
    beside them), and the first decision after one is released prunes it."""
    ordered = sorted(runs, key=lambda r: (_scheduled(r), r["metadata"]["name"]))
    prune: set[str] = set()
    for phase, keep in (("Succeeded", keep_succeeded), ("Failed", keep_failed)):
        finished = [r["metadata"]["name"] for r in ordered if _phase(r) == phase]
        prune.update(finished[: max(0, len(finished) - keep)])
    prune.difference_update(held)
    return [r["metadata"]["name"] for r in ordered if r["metadata"]["name"] in prune]
