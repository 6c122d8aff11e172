"""Table tests of what decide_run reads of a run's Jobs: those that make no Pod (Pod Security,
quota), and which changes of a Job decide its run again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from almanac.rules.jobs import run_body
from almanac.rules.runs import batch_job_body, decide_run, job_view, jobs_without_pods
from almanac.times import timestamp
from tests.integration.objects import scheduled_job, service
from tests.unit.test_service_layer import T0

Body = dict[str, Any]


def job() -> Body:
    body = scheduled_job("j", services=[service("a")])
    body["metadata"].update(uid="uid-j", namespace="ns")
    return body


def run() -> Body:
    body = run_body(job(), "j-1", T0, "Schedule", job()["spec"]["services"])
    body["metadata"]["uid"] = "uid-r"
    body["status"] = {
        "phase": "Running",
        "services": [{"name": "a", "phase": "Running", "jobName": "j-1-a"}],
    }
    return body


def batch_job(age: float, **status: Any) -> Body:
    body = batch_job_body(run(), job()["spec"]["services"][0])
    body["metadata"]["creationTimestamp"] = timestamp(T0 - timedelta(seconds=age))
    body["status"] = status
    return body


#: What the Job controller's first sync writes on a Job whose Pods are refused.
SYNCED = {"startTime": "2027-01-04T08:59:00Z", "active": 0, "ready": 0}


@pytest.mark.parametrize(
    ("age", "status", "looked_into"),
    [
        (5, SYNCED, False),  # young: the Job controller may still be making its Pod
        (11, SYNCED, True),  # synced, and no Pod after 10 s
        (11, {}, False),  # not synced yet: the controller is busy, not refusing
        (11, {"active": 1}, False),
        # its Pod ended, not counted yet: the Job controller is finishing it
        (11, {**SYNCED, "uncountedTerminatedPods": {"succeeded": ["uid-p"]}}, False),
        (11, {**SYNCED, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}, False),
        (11, {"failed": 1}, False),
        (11, {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}, False),
    ],
)
def test_jobs_without_pods(age: float, status: Body, looked_into: bool) -> None:
    found = jobs_without_pods([batch_job(age, **status)], T0)
    assert found == ({"a": "j-1-a"} if looked_into else {})


def test_a_refused_pod_shows_in_the_service_and_an_event_and_is_looked_at_again() -> None:
    refusal = 'pods "j-1-a-x" is forbidden: violates PodSecurity "restricted:latest"'
    plan = decide_run(run(), [batch_job(11, **SYNCED)], job(), T0, no_pods={"a": refusal})
    [item] = plan.status["services"]
    assert item["phase"] == "Running" and item["message"] == f"no Pod created yet: {refusal}"
    assert [e.reason for e in plan.events] == ["ServicePodsRefused"]
    assert plan.wake_at == T0 + timedelta(seconds=30)
    young = decide_run(run(), [batch_job(4, **SYNCED)], job(), T0)
    assert young.wake_at == T0 + timedelta(seconds=6)


STARTED = {"startTime": "2027-01-04T09:00:01Z", "active": 1, "ready": 0}
SUCCEEDED = {"uncountedTerminatedPods": {"succeeded": ["pod-uid"]}, "active": 0, "ready": 0}
COMPLETE = {
    "startTime": "2027-01-04T09:00:01Z",
    "completionTime": "2027-01-04T09:00:30Z",
    "succeeded": 1,
    "conditions": [{"type": "Complete", "status": "True"}],
}


@pytest.mark.parametrize(
    ("before", "after", "decides"),
    [
        ({}, STARTED, True),  # the controller's first sync: a Pod and a start time
        (STARTED, {**STARTED, "ready": 1}, False),  # the Pod is ready
        (STARTED, {**STARTED, **SUCCEEDED}, False),  # its Pod ended, not counted yet
        ({**STARTED, **SUCCEEDED}, {**STARTED, "succeeded": 1}, False),  # counted
        ({**STARTED, "succeeded": 1}, COMPLETE, True),  # the Job's outcome
        ({"startTime": "2027-01-04T09:00:01Z"}, STARTED, True),  # no Pod, then a Pod
        (STARTED, {**STARTED, "conditions": [{"type": "Failed", "status": "True"}]}, True),
    ],
)
def test_a_job_change_decides_its_run_only_when_it_changes_what_the_run_reads(
    before: Body, after: Body, decides: bool
) -> None:
    """job_view holds what decide_run reads of a batch Job; a change outside it (the Job
    controller's Pod counts) does not decide the run again."""
    assert (job_view(batch_job(1, **before)) != job_view(batch_job(1, **after))) is decides


def test_a_succeeded_service_whose_job_was_deleted_is_not_started_again() -> None:
    """api.md "ScheduledJobRun": "the non-async services run one at a time in list
    order" and "Each service is one batch/v1 Job": a service that succeeded is done. A
    Job removed after it finished (ttlSecondsAfterFinished in its jobTemplate, or
    `kubectl delete job`) must not make the operator run that service a second time."""
    j = scheduled_job("j", services=[service("a"), service("b")])
    j["metadata"].update(uid="uid-j", namespace="ns")
    r = run_body(j, "j-1", T0, "Schedule", j["spec"]["services"])
    r["metadata"].update(uid="uid-r", resourceVersion="7")
    r["status"] = {
        "phase": "Running",
        "startTime": timestamp(T0),
        "services": [
            {"name": "a", "phase": "Succeeded", "jobName": "j-1-a"},
            {"name": "b", "phase": "Running", "jobName": "j-1-b"},
        ],
    }
    b = batch_job_body(r, j["spec"]["services"][1])
    b["metadata"]["creationTimestamp"] = timestamp(T0)
    b["status"] = {"startTime": timestamp(T0), "active": 1}
    plan = decide_run(r, [b], j, T0 + timedelta(minutes=1))  # a's Job is gone
    assert list(plan.creates) == []
    phases = {s["name"]: s["phase"] for s in plan.status.get("services", r["status"]["services"])}
    assert phases == {"a": "Succeeded", "b": "Running"}


@pytest.mark.parametrize(
    ("parent", "child"),
    [
        ("j-29983710-y070", "j-29983710-z070"),
        ("j-29983710-z070", None),
        ("j-29983710-r998", "j-29983710-r999"),
        ("j-29983710-r999", None),
    ],
    ids=["a run-now's 11th rerun", "its 12th", "a fire's 998th rerun", "its 999th"],
)
def test_a_rerun_deeper_than_a_run_name_can_tell_is_refused(parent: str, child: str | None) -> None:
    """docs/crds.md "Name lengths": a run's suffix has at most 5 characters (`-r999`,
    `-z480`); a rerun one deeper would have no name of its own, so it is refused with the
    way out, and never created under a name that is too long or another run's."""
    body = run_body(job(), parent, T0, "Rerun", job()["spec"]["services"], parent="p")
    body["metadata"].update(uid="uid-r", annotations={"almanac.dev/rerun": "now"})
    body["status"] = {"phase": "Failed", "services": [{"name": "a", "phase": "Failed"}]}
    plan = decide_run(body, [], job(), T0)
    assert (plan.rerun or {}).get("metadata", {}).get("name") == child
    if child is None:
        [refused] = [e for e in plan.events if e.reason == "RerunRefused"]
        assert refused.message == (
            f"run {parent} is as deep a rerun as a run's name can tell (a run-now's reruns "
            "end at -z, a fire's at -r999): run the job again instead (almanac.dev/run-now)"
        )


@pytest.mark.parametrize(
    ("conditions", "phase"),
    [
        (["SuccessCriteriaMet"], "Running"),  # its last Pods are still terminating
        (["FailureTarget"], "Running"),
        (["SuccessCriteriaMet", "Complete"], "Succeeded"),
        (["FailureTarget", "Failed"], "Failed"),
        (["Suspended"], "Running"),  # spec.suspend: waits to be resumed
    ],
)
def test_a_service_ends_with_its_jobs_terminal_condition_not_before(
    conditions: list[str], phase: str
) -> None:
    """api.md "ScheduledJobRun": a service ends when its Job is Complete or Failed, as
    CronJob and `kubectl wait` read a Job; SuccessCriteriaMet and FailureTarget come
    first, while the Job's Pods terminate, and start nothing."""
    status = {**SYNCED, "conditions": [{"type": t, "status": "True"} for t in conditions]}
    plan = decide_run(run(), [batch_job(30, **status)], job(), T0)
    assert plan.status.get("services", run()["status"]["services"])[0]["phase"] == phase
    assert plan.finished_now == (phase != "Running")


def _ended_event(reason: str, type_: str = "Warning", at: str = "09:01:40", **changes: Any) -> Any:
    event = {
        "involvedObject": {"kind": "Job", "name": "r-a"},
        "type": type_,
        "reason": reason,
        "message": reason,
        "source": {"component": "job-controller"},
        "lastTimestamp": f"2027-01-04T{at}Z",
    }
    return {**event, **changes}


@pytest.mark.parametrize(
    ("events", "outcome"),
    [
        ([], None),
        ([_ended_event("Completed", "Normal")], "Complete"),
        ([_ended_event("BackoffLimitExceeded")], "Failed"),
        ([_ended_event("DeadlineExceeded")], "Failed"),
        ([_ended_event("FailedCreate"), _ended_event("SuccessfulCreate", "Normal")], None),
        ([_ended_event("Completed", "Normal", source={"component": "someone"})], None),
        (
            [_ended_event("Completed", "Normal", involvedObject={"kind": "Pod", "name": "r-a"})],
            None,
        ),
        (
            [_ended_event("Completed", "Normal", involvedObject={"kind": "Job", "name": "r-b"})],
            None,
        ),
        (
            [
                _ended_event("BackoffLimitExceeded"),
                _ended_event("Completed", "Normal", at="09:05:00"),
            ],
            "Complete",
        ),
    ],
    ids=[
        "no Events",
        "Completed",
        "backoff limit",
        "active deadline",
        "not an end",
        "not the job controller's",
        "not on a Job",
        "another Job",
        "the latest end decides",
    ],
)
def test_the_job_controllers_events_tell_how_a_removed_job_ended(
    events: list[Any], outcome: str | None
) -> None:
    from almanac.rules.runs import job_ended_by_events, job_state

    stand_in = job_ended_by_events(run(), "a", "r-a", events)
    if outcome is None:
        assert stand_in is None
        return
    assert stand_in is not None
    assert [c["type"] for c in stand_in["status"]["conditions"]] == [outcome]
    state = job_state(stand_in)
    assert state.phase.value == ("Succeeded" if outcome == "Complete" else "Failed")
