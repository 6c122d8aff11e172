"""What a run does next: a pure function from a run's state to a plan.

A ScheduledJobRun holds a snapshot of services. Each service is one batch/v1 Job named
``<run>-<service>``. Given the services, what the cluster shows of their Jobs, what the
run's status already records and the time, :func:`plan` says which Jobs to create now,
every service's phase, the run's phase and times, and when to look again. The handler
executes the plan; a restarted operator recomputes the same plan from the cluster, which
is what makes orchestration restart-safe.

The rules (``docs/api.md``, "ScheduledJobRun"):

- Nothing starts before the run's scheduled time (reruns are scheduled a minute ahead).
- Async services start when the run starts, beside everything else, order ignored.
- Non-async services run one at a time, in list order.
- A failed mandatory service (async or not) stops every non-async service that has not
  started: those become Skipped. A failed non-mandatory service stops nothing.
- The run ends when nothing runs and nothing is left to start: Succeeded when every
  service it started succeeded, Failed otherwise.
- A service runs once: the outcome its run's status records stands when its Job is gone
  (removed by ``ttlSecondsAfterFinished`` or by hand after it finished).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Phase(StrEnum):
    """Phases of a run and of each of its services."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


DONE = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.SKIPPED})


class Service(Protocol):
    """What orchestration needs of a service in the run's snapshot."""

    @property
    def name(self) -> str: ...
    @property
    def mandatory(self) -> bool: ...
    @property
    def async_(self) -> bool: ...


@dataclass(frozen=True)
class JobState:
    """What the cluster shows of one service's Job."""

    phase: Phase  # Running, Succeeded or Failed
    message: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None


@dataclass(frozen=True)
class ServiceStatus:
    """One entry of the run's ``status.services``."""

    name: str
    phase: Phase
    job_name: str | None = None
    message: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None


@dataclass(frozen=True)
class RunState:
    """Everything the plan depends on. ``recorded`` is the run's current status.services:
    it keeps what no Job shows, a service whose Job could not be created (Failed) or
    whose Job was removed after it finished."""

    run_name: str
    services: Sequence[Service]
    scheduled_time: datetime
    now: datetime
    jobs: Mapping[str, JobState] = field(default_factory=dict)  # by service name
    recorded: Mapping[str, ServiceStatus] = field(default_factory=dict)
    start_time: datetime | None = None
    completion_time: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """What to do now and what the run's status becomes."""

    phase: Phase
    services: list[ServiceStatus]
    create: list[str]  # services whose Job to create now, in this order
    start_time: datetime | None
    completion_time: datetime | None
    wake_at: datetime | None = None  # look again then, even if nothing changes

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.SUCCEEDED, Phase.FAILED)


def job_name(run_name: str, service_name: str) -> str:
    """The Job of a service: derived from what it is, so AlreadyExists means done."""
    return f"{run_name}-{service_name}"


def plan(state: RunState) -> Plan:
    """The next step of a run. See the module docstring for the rules."""
    if state.now < state.scheduled_time and state.start_time is None:
        pending = [ServiceStatus(s.name, Phase.PENDING) for s in state.services]
        return Plan(Phase.PENDING, pending, [], None, None, wake_at=state.scheduled_time)

    statuses: dict[str, ServiceStatus] = {}
    for service in state.services:
        statuses[service.name] = _observed(state, service.name)

    def failed_mandatory() -> bool:
        return any(s.mandatory and statuses[s.name].phase == Phase.FAILED for s in state.services)

    create: list[str] = []

    def start(name: str) -> None:
        create.append(name)
        statuses[name] = ServiceStatus(
            name, Phase.RUNNING, job_name(state.run_name, name), start_time=state.now
        )

    for service in state.services:
        if service.async_ and statuses[service.name].phase == Phase.PENDING:
            start(service.name)

    sequential = [s for s in state.services if not s.async_]
    for service in sequential:
        phase = statuses[service.name].phase
        if phase in DONE:
            continue
        if phase == Phase.RUNNING:
            break  # one at a time: the rest wait for it
        if failed_mandatory() and not _started(state, service.name):
            break  # the rest are marked Skipped below
        start(service.name)
        break

    if failed_mandatory():
        for service in sequential:
            if statuses[service.name].phase == Phase.PENDING:
                statuses[service.name] = ServiceStatus(
                    service.name, Phase.SKIPPED, message=_skip_reason(state, statuses)
                )

    ordered = [statuses[s.name] for s in state.services]
    start_time = state.start_time or state.now
    if all(s.phase in DONE for s in ordered):
        # Skipped services exist only when a mandatory one failed: the run failed then too.
        ok = all(s.phase == Phase.SUCCEEDED for s in ordered)
        phase = Phase.SUCCEEDED if ok else Phase.FAILED
        return Plan(phase, ordered, create, start_time, state.completion_time or state.now)
    return Plan(Phase.RUNNING, ordered, create, start_time, None)


def _observed(state: RunState, name: str) -> ServiceStatus:
    """A service's status from its Job, else from what the run's status recorded."""
    job = state.jobs.get(name)
    recorded = state.recorded.get(name)
    if job is not None:
        # The service started when its Job was created (recorded then); the Job
        # controller's own startTime, a moment later, is not worth a status write.
        started = recorded.start_time if recorded is not None else None
        return ServiceStatus(
            name,
            job.phase,
            job_name(state.run_name, name),
            job.message,
            started or job.start_time,
            job.completion_time,
        )
    if recorded is not None and recorded.phase in DONE:
        # A recorded outcome is final: its Job was refused by the API server, or removed
        # after it finished (ttlSecondsAfterFinished, `kubectl delete job`). A service
        # that succeeded and whose Job is gone is done, not due again.
        return recorded
    if recorded is not None and recorded.phase == Phase.RUNNING:
        # Created but not yet seen (or deleted behind our back): creating it again is
        # harmless, AlreadyExists means it is there.
        return ServiceStatus(name, Phase.PENDING)
    return ServiceStatus(name, Phase.PENDING)


def _started(state: RunState, name: str) -> bool:
    """The run started the service (its status records it Running) though no Job of it
    is in view: deleted while it ran, or created and not seen yet. A failed mandatory
    service does not skip it: it has started, and its Job is created again."""
    recorded = state.recorded.get(name)
    return recorded is not None and recorded.phase == Phase.RUNNING


def _skip_reason(state: RunState, statuses: Mapping[str, ServiceStatus]) -> str:
    failed = [
        s.name for s in state.services if s.mandatory and statuses[s.name].phase == Phase.FAILED
    ]
    return f"not started: mandatory service {', '.join(failed)} failed"
