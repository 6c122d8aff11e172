"""Table tests of the run orchestration plan: state in, plan out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from almanac.rules.orchestration import JobState, Phase, RunState, ServiceStatus, job_name, plan

T0 = datetime(2027, 1, 4, 0, 30, tzinfo=UTC)
R, S, OK, KO, SK = Phase.RUNNING, Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.FAILED, Phase.SKIPPED
P = Phase.PENDING


@dataclass(frozen=True)
class Svc:
    name: str
    mandatory: bool = False
    async_: bool = False


def seq(*specs: str) -> list[Svc]:
    """'a' plain, 'a!' mandatory, 'a~' async, 'a!~' both."""
    return [Svc(s.rstrip("!~"), "!" in s, "~" in s) for s in specs]


def jobs(**phases: Phase) -> dict[str, JobState]:
    return {name: JobState(phase, "boom" if phase == KO else "") for name, phase in phases.items()}


CASES = [
    # (id, services, job phases, expected creates, expected service phases, run phase)
    (
        "a new run starts only the first sequential service",
        seq("a", "b", "c"),
        {},
        ["a"],
        [R, P, P],
        R,
    ),
    (
        "the next sequential service waits while the previous one runs",
        seq("a", "b"),
        jobs(a=R),
        [],
        [R, P],
        R,
    ),
    (
        "the next sequential service starts when the previous one succeeded",
        seq("a", "b"),
        jobs(a=OK),
        ["b"],
        [OK, R],
        R,
    ),
    (
        "a failed mandatory service skips every later sequential service",
        seq("a", "b!", "c", "d"),
        jobs(a=OK, b=KO),
        [],
        [OK, KO, SK, SK],
        KO,
    ),
    (
        "a failed non-mandatory service lets the next one run",
        seq("a", "b", "c"),
        jobs(a=OK, b=KO),
        ["c"],
        [OK, KO, R],
        R,
    ),
    (
        "a run with a failed non-mandatory service fails once the rest are done",
        seq("a", "b", "c"),
        jobs(a=OK, b=KO, c=OK),
        [],
        [OK, KO, OK],
        KO,
    ),
    (
        "every service succeeded: the run succeeded",
        seq("a!", "b"),
        jobs(a=OK, b=OK),
        [],
        [OK, OK],
        S,
    ),
    (
        "async services start with the run, beside the first sequential one",
        seq("a", "x~", "b", "y~"),
        {},
        ["x", "y", "a"],
        [R, R, P, R],
        R,
    ),
    (
        "the run waits for a slow async service after the sequential ones are done",
        seq("a", "x~"),
        jobs(a=OK, x=R),
        [],
        [OK, R],
        R,
    ),
    (
        "a failed mandatory async service skips sequential services not yet started",
        seq("a", "b", "x!~"),
        jobs(a=R, x=KO),
        [],
        [R, SK, KO],
        R,
    ),
    (
        "... and the run fails when the running one ends",
        seq("a", "b", "x!~"),
        jobs(a=OK, x=KO),
        [],
        [OK, SK, KO],
        KO,
    ),
    (
        "a failed mandatory sequential service does not stop async services already running",
        seq("a!", "b", "x~"),
        jobs(a=KO, x=R),
        [],
        [KO, SK, R],
        R,
    ),
    (
        "only async services: all start at once, order ignored",
        seq("x~", "y~"),
        {},
        ["x", "y"],
        [R, R],
        R,
    ),
]


@pytest.mark.parametrize(
    ("services", "observed", "creates", "phases", "run_phase"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan(
    services: list[Svc],
    observed: dict[str, JobState],
    creates: list[str],
    phases: list[Phase],
    run_phase: Phase,
) -> None:
    result = plan(RunState("nightly-1", services, T0, T0 + timedelta(seconds=1), observed))
    assert result.create == creates
    assert [s.phase for s in result.services] == phases
    assert result.phase == run_phase


def test_a_run_scheduled_in_the_future_waits_for_its_time() -> None:
    result = plan(RunState("nightly-1", seq("a"), T0, T0 - timedelta(seconds=59)))
    assert (result.phase, result.create, result.wake_at) == (P, [], T0)


def test_jobs_are_named_after_run_and_service() -> None:
    result = plan(RunState("nightly-1", seq("extract"), T0, T0))
    assert result.services[0].job_name == "nightly-1-extract"


def test_a_service_whose_job_was_refused_stays_failed_and_is_not_recreated() -> None:
    refused = ServiceStatus("a", Phase.FAILED, message="Job.batch is invalid: ...")
    result = plan(RunState("nightly-1", seq("a!", "b"), T0, T0, recorded={"a": refused}))
    assert result.create == []
    assert [(s.phase, s.message) for s in result.services] == [
        (KO, "Job.batch is invalid: ..."),
        (SK, "not started: mandatory service a failed"),
    ]
    assert result.phase == KO


@pytest.mark.parametrize(
    ("recorded", "creates", "phases", "run_phase"),
    [
        # its Job removed after it succeeded (ttlSecondsAfterFinished, kubectl delete job)
        (OK, ["b"], [OK, R], R),
        # refused by the API server, or its Job removed after it failed
        (KO, ["b"], [KO, R], R),
        # created but not seen yet (or deleted while it ran): created again, AlreadyExists
        # says it is there
        (R, ["a"], [R, P], R),
    ],
)
def test_a_services_recorded_outcome_is_final_when_its_job_is_gone(
    recorded: Phase, creates: list[str], phases: list[Phase], run_phase: Phase
) -> None:
    """api.md "ScheduledJobRun": each service is one Job and runs once; a finished
    service whose Job is gone is not started again."""
    was = {"a": ServiceStatus("a", recorded, job_name("nightly-1", "a"))}
    result = plan(RunState("nightly-1", seq("a", "b"), T0, T0, recorded=was))
    assert result.create == creates
    assert [s.phase for s in result.services] == phases
    assert result.phase == run_phase


def test_start_and_completion_times_are_set_once() -> None:
    started = T0 + timedelta(seconds=2)
    first = plan(RunState("r", seq("a"), T0, started))
    assert first.start_time == started and first.completion_time is None
    done_at = T0 + timedelta(seconds=9)
    last = plan(RunState("r", seq("a"), T0, done_at, jobs(a=OK), start_time=started))
    assert (last.start_time, last.completion_time, last.finished) == (started, done_at, True)


def test_a_started_service_whose_job_is_not_seen_is_not_skipped_by_a_failed_async_one() -> None:
    """api.md "ScheduledJobRun": a failed mandatory service stops every non-async
    service "that has not started"; "a Job deleted while its service runs is created
    again". Sequential b was started (recorded Running) but its Job is not in view
    (deleted, or not seen yet) when mandatory async x fails: b is not Skipped (its Job
    may be running: the run must not end under it), its Job is created again."""
    started = {"b": ServiceStatus("b", R, job_name("nightly-1", "b"), start_time=T0)}
    state = RunState(
        "nightly-1", seq("x!~", "b", "c"), T0, T0, jobs(x=KO), recorded=started, start_time=T0
    )
    result = plan(state)
    assert [s.phase for s in result.services] == [KO, R, SK]
    assert result.create == ["b"]
    assert result.phase == R
