"""The service layer (store, decisions, executor, delivery) against a fake API gateway
with an injected clock: firing, missed fires, concurrency, run-now, orchestration,
refused Jobs, reruns, pruning, conflicts, echoes, notification claims and fencing.

Each scenario drives the real :class:`~almanac.controller.controller.Controller` as the
watches would (every stored object observed again, echoes included) until it is quiet.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import re
import threading
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from almanac.controller import controller as controller_module
from almanac.controller import metrics
from almanac.controller.controller import Bookkeeping, Controller, CreatesFirst
from almanac.controller.settings import Settings
from almanac.controller.store import Kind
from almanac.controller.timers import TimerQueue
from almanac.controller.workqueue import WorkQueue
from almanac.notifications import smtp as notify
from almanac.notifications import state as notification_state
from almanac.notifications.ratelimit import RateLimit
from almanac.notifications.recipients import AllowList
from almanac.rules import calendars
from almanac.rules.calendars import Fetched
from almanac.schedule.explain import NEVER_FIRES_REASONS
from almanac.times import timestamp
from tests.integration.objects import scheduled_job, service
from tests.unit.fake_kube import FakeKube

Body = dict[str, Any]
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # a Monday
KINDS = {"scheduledjobs": Kind.JOB, "scheduledjobruns": Kind.RUN, "jobs": Kind.BATCH_JOB}


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Runs an async scenario on an event loop of its own."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class World:
    """A controller on a fake API server, with a clock the test moves."""

    def __init__(self, smtp: notify.SmtpSettings | None = None, **settings: Any) -> None:
        self.now = T0
        self.kube = FakeKube()
        self.settings = Settings(rerun_delay=timedelta(minutes=1), **settings)
        self.controller = self.replica(smtp)

    def replica(self, smtp: notify.SmtpSettings | None = None) -> Controller:
        return Controller(
            self.kube,  # type: ignore[arg-type]
            self.settings,
            clock=lambda: self.now,
            smtp=smtp,
        )

    def start_from_list(self, controller: Controller) -> None:
        """A replica's start: the store filled from a LIST, every object decided."""
        for (plural, _, _), body in self.kube.objects.items():
            if plural in KINDS:
                controller.store.put(KINDS[plural], copy.deepcopy(body))
        controller.decide_all()

    def apply(self, body: Body, plural: str = "scheduledjobs") -> Body:
        existing = self.kube.stored(plural, body["metadata"]["name"])
        if existing is not None:  # an edit keeps status and metadata, bumps generation
            body = {
                **existing,
                "spec": body.get("spec", existing.get("spec")),
                "metadata": {**existing["metadata"], **body["metadata"]},
            }
        return self.kube.put(plural, body)

    async def settle(self, *controllers: Controller) -> None:
        """Watch events for everything stored (echoes included) until nothing is left
        to do, then the due timers; repeated until quiet."""
        controllers = controllers or (self.controller,)
        for _ in range(20):
            for c in controllers:
                for (plural, _, _), body in list(self.kube.objects.items()):
                    if plural in KINDS:
                        c.observe(KINDS[plural], "ADDED", copy.deepcopy(body))
                for key in list(c.store.keys(Kind.RUN)):
                    if self.kube.stored("scheduledjobruns", key[1], key[0]) is None:
                        c.observe(Kind.RUN, "DELETED", c.store.get(Kind.RUN, key) or {})
                await c.queue.idle()
                while c.delivery._tasks:
                    await asyncio.gather(*list(c.delivery._tasks))
                    await c.queue.idle()
            due = [e for c in controllers for e in c.timers._pop_due(self.now)]
            if not due and all(len(c.queue) == 0 for c in controllers):
                return
            for _, callback in due:
                await callback()

    async def at(self, when: datetime) -> None:
        self.now = when
        await self.settle()

    def finish_job(self, name: str, ok: bool = True, message: str = "") -> None:
        job = self.kube.objects[("jobs", "ns", name)]
        condition = {"type": "Complete" if ok else "Failed", "status": "True"}
        if message:
            condition["message"] = message
        job["status"] = {
            "startTime": "2027-01-04T09:00:00Z",
            "completionTime": "2027-01-04T09:00:30Z",
            "conditions": [condition],
        }
        self.kube._bump(job)

    def run(self, name: str) -> Body:
        body = self.kube.stored("scheduledjobruns", name)
        assert body is not None, f"no run {name}; runs: {self.kube.names('scheduledjobruns')}"
        return body

    def job_status(self, name: str = "j") -> Body:
        return (self.kube.stored("scheduledjobs", name) or {}).get("status") or {}


SMTP = notify.SmtpSettings(host="127.0.0.1", sender="almanac@example.com", port=2525)


def accept_mail(monkeypatch: pytest.MonkeyPatch, header: str = "To") -> list[str]:
    """The SMTP server accepts every message; returns the list of their ``header``s."""
    sent: list[str] = []

    async def deliver(settings: notify.SmtpSettings, message: Any) -> notify.DeliveryResult:
        sent.append(message[header])
        return notify.DeliveryResult("Sent", "250 OK", tuple(message["To"].split(", ")))

    monkeypatch.setattr(notify, "deliver", deliver)
    return sent


def minute(m: int) -> datetime:
    return T0 + timedelta(minutes=m)


def run_of(m: int, job: str = "j") -> str:
    return f"{job}-{int(minute(m).timestamp()) // 60}"


def job(created: str = "2027-01-04T08:59:30Z", **spec: Any) -> Body:
    body = scheduled_job("j", spec.pop("schedule", "* * * * *"), **spec)
    body["metadata"]["creationTimestamp"] = created
    return body


@sync
async def test_a_due_fire_creates_one_run_and_writes_the_status_once() -> None:
    w = World()
    w.apply(job())
    await w.at(minute(1) + timedelta(seconds=0.5))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    status = w.job_status()
    assert status["lastScheduleTime"] == "2027-01-04T09:01:00Z"
    assert status["nextScheduleTime"] == "2027-01-04T09:02:00Z"
    assert "RunCreated" in w.kube.reasons()
    # Settled: watching everything again (the echoes of our writes) writes nothing.
    writes = len(w.kube.writes)
    await w.settle()
    assert len(w.kube.writes) == writes


@sync
async def test_each_event_of_a_decision_is_posted_on_the_object_its_plan_names() -> None:
    """A run's decision posts its own Events on the run and the run's end on its job
    (the Bookkeeping packs both identities, and the job's only when it is needed)."""
    w = World()
    w.apply(job(services=[service("a")]))
    await w.at(minute(1))
    w.finish_job(f"{run_of(1)}-a")
    await w.settle()
    on = {e["reason"]: e["on"] for e in w.kube.events.values()}
    assert on["RunCreated"] == "j"
    assert on["ServiceStarted"] == run_of(1)
    assert on["RunSucceeded"] == "j"


@sync
async def test_a_run_whose_create_answer_was_lost_is_run_when_the_retry_finds_it() -> None:
    """The API server stored the run but its answer was lost (etcd away: a 500). The
    retry meets AlreadyExists and reads the run, before any watch event for it: the run
    is decided all the same, and its first Job created. (In CI the watch event then
    found the run already stored and unchanged, and nothing decided it.)"""
    w = World()
    w.apply(job())
    await w.settle()
    created = w.kube.create
    lost: list[str] = []

    async def create_losing_the_first_answer(plural: str, namespace: str, body: Body) -> Any:
        result = await created(plural, namespace, body)
        if plural == "scheduledjobruns" and not lost:
            lost.append(body["metadata"]["name"])
            raise TimeoutError()
        return result

    w.kube.create = create_losing_the_first_answer  # type: ignore[method-assign]
    w.now = minute(1) + timedelta(seconds=0.5)
    key = (Kind.JOB, ("ns", "j"))
    with pytest.raises(TimeoutError):
        await w.controller._decide(key)
    await w.controller._decide(key)  # the retry, with no watch event in between
    await w.controller.queue.idle()
    assert lost == [run_of(1)]
    assert f"{run_of(1)}-main" in w.kube.names("jobs"), w.kube.names("jobs")


@sync
async def test_a_run_whose_watch_event_comes_before_its_create_answer_reads_no_events() -> None:
    """The run's ADDED event can beat the answer to the POST that created it, and its
    decision then runs first: this operator created it, so its Jobs not yet in view
    are not looked up in the Job controller's Events (a LIST per fire in a burst)."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a"), service("b")]))
    await w.at(T0 + timedelta(seconds=30))
    created = w.kube.create

    async def watch_event_first(plural: str, namespace: str, body: Body) -> Any:
        result = await created(plural, namespace, body)
        if plural == "scheduledjobruns":
            w.controller.observe(Kind.RUN, "ADDED", copy.deepcopy(result.body))
            for _ in range(20):  # the run's decision runs while this answer is on its way
                await asyncio.sleep(0)
        return result

    w.kube.create = watch_event_first  # type: ignore[method-assign]
    lists = w.kube.lists
    await w.at(minute(1))
    assert w.kube.names("jobs") == [f"{run_of(1)}-a"]
    assert w.kube.lists == lists


def job_controller_step(w: World, name: str, status: Body) -> None:
    """What the Job controller and the kubelet write on a Job, one status at a time."""
    job = w.kube.objects[("jobs", "ns", name)]
    job["status"] = {**(job.get("status") or {}), **status}
    w.kube._bump(job)


async def job_controller_runs(w: World, name: str) -> None:
    """The Job controller's three status writes of a Job that succeeds (a Pod and a start
    time, the Pod ready, the outcome), each decided upon before the next."""
    started = {"startTime": "2027-01-04T09:01:01Z", "active": 1, "ready": 0}
    job_controller_step(w, name, started)
    await w.settle()
    job_controller_step(w, name, {"ready": 1})
    await w.settle()
    w.finish_job(name)
    await w.settle()


#: Issue 14's budget for one fire that succeeds (run, Job, status patches; Events).
FIRE_BUDGET = {1: (6, 3), 3: (10, 5)}


@pytest.mark.parametrize("count", sorted(FIRE_BUDGET))
@sync
async def test_a_fire_that_succeeds_stays_within_its_write_and_event_budget(count: int) -> None:
    """From the due instant to the job's status after the run: at most 6 object writes
    and 3 Events for one service (10 writes for three in order), whatever the Job
    controller writes in between (startTime, active, ready), and no LIST."""
    w = World()
    names = [f"s{i}" for i in range(count)]
    w.apply(job(schedule="1 9 * * *", services=[service(n) for n in names]))
    await w.at(minute(1) - timedelta(seconds=30))
    before = len(w.kube.writes)
    await w.at(minute(1))
    run = run_of(1)
    for n in names:
        await w.settle()
        await job_controller_runs(w, f"{run}-{n}")
    assert w.run(run)["status"]["phase"] == "Succeeded"
    assert w.job_status()["lastRun"] == {
        "name": run,
        "phase": "Succeeded",
        "scheduledTime": "2027-01-04T09:01:00Z",
    }
    done = w.kube.writes[before:]
    objects = [wr for wr in done if wr[0] != "event"]
    events = [wr for wr in done if wr[0] == "event"]
    writes_budget, events_budget = FIRE_BUDGET[count]
    assert len(objects) <= writes_budget, objects
    assert len(events) <= events_budget, events
    assert w.kube.lists == 0


@sync
async def test_missed_fires_beyond_the_deadline_are_counted_not_started() -> None:
    w = World()
    w.apply(job(startingDeadlineSeconds=30))
    await w.at(minute(3) + timedelta(seconds=45))
    assert w.kube.names("scheduledjobruns") == []
    missed = w.job_status()["missedSchedules"]
    assert missed["count"] == 4  # 09:00 to 09:03: the job was created at 08:59:30
    assert missed["lastMissedTime"] == "2027-01-04T09:03:00Z"


@sync
async def test_after_a_month_away_the_latest_fire_starts_without_listing_every_minute() -> None:
    """43,200 minutes were missed; the first 1,000 are counted one by one, the latest
    fire starts, and the message says the count is a lower bound."""
    w = World()
    w.apply(job())
    await w.at(minute(30 * 24 * 60) + timedelta(seconds=1))
    assert w.kube.names("scheduledjobruns") == [run_of(30 * 24 * 60)]
    missed = w.job_status()["missedSchedules"]
    assert 1000 <= missed["count"] < 30 * 24 * 60
    assert missed["message"].startswith(f"more than {missed['count']} fire(s) not started")
    assert missed["lastMissedTime"] == "2027-02-03T08:59:00Z"


@sync
async def test_forbid_counts_every_missed_fire_while_a_run_is_active() -> None:
    w = World()
    w.apply(job("2027-01-04T09:00:30Z", concurrencyPolicy="Forbid", services=[service("slow")]))
    await w.at(minute(1))
    first = run_of(1)
    assert w.run(first)["status"]["phase"] == "Running"
    for m in (2, 3, 4):
        await w.at(minute(m))
    assert w.kube.names("scheduledjobruns") == [first]
    missed = w.job_status()["missedSchedules"]
    assert (missed["count"], missed["lastMissedTime"]) == (3, "2027-01-04T09:04:00Z")
    assert w.job_status()["active"] == [first]
    # LAST (lastScheduleTime) is the fire that ran, as a CronJob's: not a missed one.
    assert w.job_status()["lastScheduleTime"] == "2027-01-04T09:01:00Z"


@sync
async def test_catch_up_all_starts_every_fire_missed_within_the_deadline() -> None:
    w = World()
    w.apply(job(catchUp="All", startingDeadlineSeconds=150))
    await w.at(minute(3) + timedelta(seconds=45))  # 09:00 to 09:03 fell while nothing ran
    assert w.kube.names("scheduledjobruns") == [run_of(m) for m in (2, 3)]
    status = w.job_status()
    assert status["lastScheduleTime"] == "2027-01-04T09:03:00Z"
    assert (status["missedSchedules"]["count"], status["missedSchedules"]["lastMissedTime"]) == (
        2,
        "2027-01-04T09:01:00Z",
    )
    await w.at(minute(4))  # and the next fire is an ordinary one
    assert w.kube.names("scheduledjobruns") == [run_of(m) for m in (2, 3, 4)]


def lateness(job: str = "j") -> tuple[float, float]:
    """The job's almanac_fire_lateness_seconds as scraped: (observations, their sum)."""
    from prometheus_client import REGISTRY

    labels = {"namespace": "ns", "scheduledjob": job}
    count = REGISTRY.get_sample_value("almanac_fire_lateness_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("almanac_fire_lateness_seconds_sum", labels) or 0.0
    return count, total


@sync
async def test_each_caught_up_fire_is_late_by_its_own_scheduled_instant() -> None:
    """almanac_fire_lateness_seconds is "run created minus the scheduled instant"
    (install.md): with catchUp All, the run of 09:02 created at 09:03:45 is 105 s late,
    the one of 09:03 is 45 s late, not both 45 s (the latest fire's)."""
    metrics.forget_job("ns", "j")
    w = World()
    w.apply(job(catchUp="All", startingDeadlineSeconds=150))
    await w.at(minute(3) + timedelta(seconds=45))
    assert w.kube.names("scheduledjobruns") == [run_of(m) for m in (2, 3)]
    assert lateness() == (2, 105 + 45)


@sync
async def test_catch_up_all_with_forbid_runs_the_missed_fires_one_after_another() -> None:
    w = World()
    w.apply(job(catchUp="All", concurrencyPolicy="Forbid", schedule="*/10 * * * *"))
    await w.at(minute(20) + timedelta(seconds=5))  # 09:00, 09:10, 09:20 are due
    assert w.kube.names("scheduledjobruns") == [run_of(0)]
    for done, following in ((0, 10), (10, 20)):
        w.finish_job(f"{run_of(done)}-main")
        await w.settle()
        assert w.run(run_of(done))["status"]["phase"] == "Succeeded"
        assert run_of(following) in w.kube.names("scheduledjobruns")
    assert w.kube.names("scheduledjobruns") == [run_of(m) for m in (0, 10, 20)]
    assert "missedSchedules" not in w.job_status()


@sync
async def test_catch_up_none_records_the_fires_that_fell_while_no_operator_served() -> None:
    w = World()
    w.apply(job(catchUp="None"))
    w.now = minute(3) + timedelta(seconds=30)  # the operator was down from 08:59:30 to now
    replica = w.replica()
    w.start_from_list(replica)
    await w.settle(replica)
    assert w.kube.names("scheduledjobruns") == []
    assert w.job_status()["missedSchedules"]["count"] == 4
    assert "no operator was serving" in w.job_status()["missedSchedules"]["message"]
    w.now = minute(4) + timedelta(seconds=2)  # late, but the operator was there: it starts
    await w.settle(replica)
    assert w.kube.names("scheduledjobruns") == [run_of(4)]


@sync
async def test_replace_deletes_the_active_run_for_the_new_one() -> None:
    w = World()
    w.apply(job(concurrencyPolicy="Replace", services=[service("slow")]))
    await w.at(minute(1))
    await w.at(minute(2))
    assert w.kube.names("scheduledjobruns") == [run_of(2)]
    assert "RunReplaced" in w.kube.reasons()


@sync
async def test_run_now_is_consumed_and_fires_once() -> None:
    w = World()
    body = job(schedule="0 0 1 1 *")
    body["metadata"]["annotations"] = {"almanac.dev/run-now": "true"}
    w.apply(body)
    await w.at(minute(0) + timedelta(seconds=7))
    await w.settle()
    runs = w.kube.names("scheduledjobruns")
    assert runs == [f"{run_of(0)}-m070"]
    assert "almanac.dev/run-now" not in (w.kube.stored("scheduledjobs", "j") or {})["metadata"].get(
        "annotations", {}
    )


RUN_NOW_BESIDE_AN_ACTIVE_RUN = [
    # (id, concurrencyPolicy, runs after the run-now, its Events)
    ("allow runs it beside the active run", "Allow", ["fire", "manual"], ["RunCreated"]),
    ("replace deletes the active run for it", "Replace", ["manual"],
     ["RunReplaced", "RunCreated"]),
    ("forbid refuses it, and no fire of the schedule was missed", "Forbid", ["fire"],
     ["RunNowRefused"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "runs", "reasons"),
    [c[1:] for c in RUN_NOW_BESIDE_AN_ACTIVE_RUN],
    ids=[c[0] for c in RUN_NOW_BESIDE_AN_ACTIVE_RUN],
)
@sync
async def test_a_run_now_honours_the_concurrency_policy_and_is_never_a_missed_fire(
    policy: str, runs: list[str], reasons: list[str]
) -> None:
    """api.md "Reruns and manual runs": run-now fires the job once, outside its
    schedule, and its concurrencyPolicy applies. "Missed fires": a fire is missed when
    its instant passes without a run; a refused run-now is not a fire of the schedule, so
    it is a RunNowRefused Warning, not a MissedSchedule (nor counted in
    status.missedSchedules or almanac_missed_fires_total). The annotation is consumed."""
    w = World()
    w.apply(job(schedule="1 9 * * *", concurrencyPolicy=policy, services=[service("a")]))
    await w.at(minute(1))
    assert w.run(run_of(1))["status"]["phase"] == "Running"
    before = set(w.kube.events)
    w.apply({"metadata": {"name": "j", "annotations": {"almanac.dev/run-now": "now"}}})
    await w.at(minute(1) + timedelta(seconds=7))
    named = {"fire": run_of(1), "manual": f"{run_of(1)}-m070"}
    assert w.kube.names("scheduledjobruns") == [named[r] for r in runs]
    new = [e for k, e in w.kube.events.items() if k not in before]
    assert sorted(e["reason"] for e in new if e["reason"] != "ServiceStarted") == sorted(reasons)
    if policy == "Forbid":
        [refused] = new
        assert refused["message"] == (
            f"not run: run {run_of(1)} is still active (concurrencyPolicy Forbid)"
        )
    assert "missedSchedules" not in w.job_status()
    annotations = (w.kube.stored("scheduledjobs", "j") or {})["metadata"].get("annotations", {})
    assert "almanac.dev/run-now" not in annotations


@pytest.mark.parametrize(
    ("services", "outcomes", "phases", "run_phase"),
    [
        # in order: b starts only when a succeeded
        (
            [service("a"), service("b")],
            {"a": True, "b": True},
            ["Succeeded", "Succeeded"],
            "Succeeded",
        ),
        # a mandatory failure skips what follows
        (
            [service("a", mandatory=True), service("b")],
            {"a": False},
            ["Failed", "Skipped"],
            "Failed",
        ),
        # a non-mandatory failure does not
        ([service("a"), service("b")], {"a": False, "b": True}, ["Failed", "Succeeded"], "Failed"),
        # async services start with the run, beside the first in order
        (
            [service("x", async_=True), service("a")],
            {"x": True, "a": True},
            ["Succeeded", "Succeeded"],
            "Succeeded",
        ),
    ],
)
@sync
async def test_services_run_in_order_async_beside_mandatory_stops(
    services: list[Body], outcomes: dict[str, bool], phases: list[str], run_phase: str
) -> None:
    w = World()
    w.apply(job(schedule="1 9 * * *", services=services))
    await w.at(minute(1))
    name = run_of(1)
    for service_name, ok in outcomes.items():
        await w.settle()
        w.finish_job(f"{name}-{service_name}", ok, "BackoffLimitExceeded")
        await w.settle()
    status = w.run(name)["status"]
    assert [s["phase"] for s in status["services"]] == phases
    assert status["phase"] == run_phase
    assert w.job_status()["lastRun"] == {
        "name": name,
        "phase": run_phase,
        "scheduledTime": "2027-01-04T09:01:00Z",
    }


@sync
async def test_a_refused_job_fails_its_service_with_the_api_servers_message() -> None:
    w = World()
    w.kube.refuse_jobs["a"] = "jobs.batch is forbidden: exceeded quota"
    w.apply(job(schedule="1 9 * * *", services=[service("a", mandatory=True), service("b")]))
    await w.at(minute(1))
    status = w.run(run_of(1))["status"]
    assert status["phase"] == "Failed"
    assert status["services"][0]["message"].endswith("exceeded quota")
    assert status["services"][1]["phase"] == "Skipped"


@sync
async def test_a_job_deleted_while_its_service_runs_is_created_again_at_once() -> None:
    """api.md "ScheduledJobRun": "A Job deleted while its service runs is created again,
    as a Job controller would" (which replaces a deleted Pod on its watch event, not at
    its next resync): the Job's DELETED event decides its run."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a")]))
    await w.at(minute(1))
    name = f"{run_of(1)}-a"
    deleted = w.kube.objects.pop(("jobs", "ns", name))  # kubectl delete job
    w.controller.observe(Kind.BATCH_JOB, "DELETED", copy.deepcopy(deleted))
    await w.at(minute(1) + timedelta(seconds=5))  # well before the 5-minute resync
    assert name in w.kube.names("jobs")
    assert w.run(run_of(1))["status"]["services"][0]["phase"] == "Running"


@sync
async def test_a_job_removed_as_soon_as_it_finished_does_not_run_its_service_again() -> None:
    """api.md "ScheduledJobRun": each service "runs once"; removing its Job
    (`ttlSecondsAfterFinished` in its `jobTemplate`) changes nothing. With
    `ttlSecondsAfterFinished: 0` the Job's deletion may be seen before the run is decided
    on its completion: the DELETED event's last state (Complete) decides the service, it
    is not read as a Job deleted while it ran and created again."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a"), service("b")]))
    await w.at(minute(1))
    name = run_of(1)
    w.finish_job(f"{name}-a")
    finished = w.kube.objects.pop(("jobs", "ns", f"{name}-a"))  # the TTL controller
    w.controller.observe(Kind.BATCH_JOB, "MODIFIED", copy.deepcopy(finished))
    w.controller.observe(Kind.BATCH_JOB, "DELETED", copy.deepcopy(finished))
    await w.settle()
    assert w.kube.names("jobs") == [f"{name}-b"]
    assert [s["phase"] for s in w.run(name)["status"]["services"]] == ["Succeeded", "Running"]
    assert not w.controller._ended_jobs  # recorded in the run's status: nothing kept


def _job_controller_event(job: str, type_: str, reason: str, message: str) -> Body:
    """A core/v1 Event as Kubernetes' job controller posts it when a Job ends."""
    return {
        "metadata": {"namespace": "ns", "name": f"{job}.17f0"},
        "involvedObject": {"kind": "Job", "namespace": "ns", "name": job, "apiVersion": "batch/v1"},
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": "job-controller"},
        "reportingComponent": "job-controller",
        "lastTimestamp": "2027-01-04T09:01:40Z",
    }


@pytest.mark.parametrize(
    ("events", "phases", "jobs"),
    [
        pytest.param(
            [("Normal", "Completed", "Job completed")],
            ["Succeeded", "Running"],
            ["b"],
            id="it succeeded: the next service starts, it does not run again",
        ),
        pytest.param(
            [("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")],
            ["Failed", "Skipped"],
            [],
            id="it failed: the run fails, the mandatory failure skips the next",
        ),
        pytest.param(
            [("Normal", "SuccessfulCreate", "Created pod: x"), ("Normal", "Suspended", "s")],
            ["Running", "Pending"],
            ["a"],
            id="nothing says it ended (deleted while it ran): created again",
        ),
    ],
)
@sync
async def test_a_job_that_ended_and_was_removed_while_no_operator_ran_is_not_run_again(
    events: list[tuple[str, str, str]], phases: list[str], jobs: list[str]
) -> None:
    """api.md: each service runs once. A Job that finished and was removed
    (ttlSecondsAfterFinished: 0) while no operator ran is gone with its status; the
    Job controller's Event on it says how it ended, and the restarted operator reads it
    rather than taking the Job for one deleted while it ran and running it again."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a", mandatory=True), service("b")]))
    await w.at(minute(1))
    name = run_of(1)
    assert w.kube.names("jobs") == [f"{name}-a"]
    # The operator stops; meanwhile Job a ends and the TTL controller removes it.
    w.kube.objects.pop(("jobs", "ns", f"{name}-a"))
    w.kube.foreign_events = [_job_controller_event(f"{name}-a", *e) for e in events]
    w.controller = w.replica()
    w.start_from_list(w.controller)
    await w.settle()
    assert [s["phase"] for s in w.run(name)["status"]["services"]] == phases
    assert w.kube.names("jobs") == [f"{name}-{j}" for j in jobs]
    if phases[0] == "Failed":
        assert "backoff limit" in w.run(name)["status"]["services"][0]["message"]
        assert w.run(name)["status"]["phase"] == "Failed"


@sync
async def test_a_job_whose_start_went_unrecorded_and_that_ended_while_away_is_not_run_again() -> (
    None
):
    """The operator created the run's first Job and stopped before the run's status
    recorded it (in a burst the bookkeeping trails the creates by seconds); the Job ended
    and was removed while it was away. The restarted operator, deciding a run it did not
    create for the first time, reads the Job controller's Events for the Jobs it cannot
    see: the service is done, not started a second time."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a"), service("b")]))
    await w.at(minute(1))
    name = run_of(1)
    w.kube.objects[("scheduledjobruns", "ns", name)].pop("status")  # never written
    w.kube.objects.pop(("jobs", "ns", f"{name}-a"))
    w.kube.foreign_events = [_job_controller_event(f"{name}-a", "Normal", "Completed", "done")]
    w.controller = w.replica()
    w.start_from_list(w.controller)
    await w.settle()
    assert [s["phase"] for s in w.run(name)["status"]["services"]] == ["Succeeded", "Running"]
    assert w.kube.names("jobs") == [f"{name}-b"]
    # Looked up once, for the run it did not create; its own Job b is in view.
    lists = w.kube.lists
    w.kube.objects.pop(("jobs", "ns", f"{name}-b"))  # deleted while it runs
    w.controller.observe(
        Kind.BATCH_JOB,
        "DELETED",
        {
            "metadata": {
                "name": f"{name}-b",
                "namespace": "ns",
                "labels": {"almanac.dev/run": name, "almanac.dev/service": "b"},
            }
        },
    )
    await w.settle()
    assert w.kube.names("jobs") == [f"{name}-b"]  # created again: nothing said it ended
    assert w.kube.lists == lists + 1


@sync
async def test_a_rerun_creates_one_child_and_a_second_request_is_refused() -> None:
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a")]))
    await w.at(minute(1))
    parent = run_of(1)
    w.finish_job(f"{parent}-a", ok=False)
    await w.settle()
    for _ in range(2):
        w.apply(
            {"metadata": {"name": parent, "annotations": {"almanac.dev/rerun": "failed"}}},
            "scheduledjobruns",
        )
        await w.settle()
    child = f"{parent}-r1"
    assert w.run(child)["spec"]["parentRun"] == parent
    assert w.run(child)["spec"]["scheduledTime"] == "2027-01-04T09:02:00Z"
    assert w.kube.reasons().count("RerunCreated") == 1
    assert w.kube.reasons().count("RerunRefused") == 1
    assert "almanac.dev/rerun" not in w.run(parent)["metadata"].get("annotations", {})


@sync
async def test_fires_while_suspended_are_missed_on_resume_and_none_starts() -> None:
    """api.md "Missed fires": "A suspended job's fires are always
    recorded as missed on resume, whatever `catchUp` says"; `suspend: true` = the job
    does not fire."""
    w = World()
    w.apply(job(services=[service("a")]))
    await w.at(minute(1))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    before = w.job_status()["missedSchedules"]["count"]  # 09:00, before the World began
    spec = w.kube.objects[("scheduledjobs", "ns", "j")]["spec"]
    w.apply({"metadata": {"name": "j"}, "spec": {**spec, "suspend": True}})
    await w.at(minute(1) + timedelta(seconds=30))
    for m in (2, 3, 4):
        await w.at(minute(m) + timedelta(seconds=1))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    assert w.job_status().get("nextScheduleTime") is None
    spec = w.kube.objects[("scheduledjobs", "ns", "j")]["spec"]
    w.apply({"metadata": {"name": "j"}, "spec": {**spec, "suspend": False}})
    await w.at(minute(4) + timedelta(seconds=30))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    missed = w.job_status()["missedSchedules"]
    assert (missed["count"] - before, missed["lastMissedTime"]) == (3, "2027-01-04T09:04:00Z")
    assert "suspended" in missed["message"]
    await w.at(minute(5))  # the next fire after the resume is an ordinary one
    assert run_of(5) in w.kube.names("scheduledjobruns")


@sync
async def test_a_rerun_runs_its_parents_services_not_the_jobs_edited_ones() -> None:
    """api.md "Reruns": the rerun "runs the parent's service
    snapshot", once, one minute later."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a"), service("b")]))
    await w.at(minute(1))
    parent = run_of(1)
    w.finish_job(f"{parent}-a")
    await w.settle()
    w.finish_job(f"{parent}-b", ok=False)
    await w.settle()
    spec = w.kube.objects[("scheduledjobs", "ns", "j")]["spec"]
    w.apply({"metadata": {"name": "j"}, "spec": {**spec, "services": [service("z")]}})
    w.apply(
        {"metadata": {"name": parent, "annotations": {"almanac.dev/rerun": "failed"}}},
        "scheduledjobruns",
    )
    await w.at(minute(1) + timedelta(seconds=40))
    child = f"{parent}-r1"
    assert [s["name"] for s in w.run(child)["spec"]["services"]] == ["b"]
    assert w.run(child)["spec"]["scheduledTime"] == "2027-01-04T09:02:40Z"
    assert "jobs" not in {p for (p, _, n) in w.kube.objects if n.startswith(child)}
    await w.at(minute(2) + timedelta(seconds=41))
    assert w.kube.names("jobs").count(f"{child}-b") == 1
    assert f"{child}-z" not in w.kube.names("jobs")


@sync
async def test_reruns_of_a_fire_and_of_a_run_now_of_the_same_minute_both_run() -> None:
    """api.md "Reruns and manual runs": `almanac.dev/rerun=now` on a failed run "creates
    a new run with `spec.parentRun` set to that run". A run-now made in the minute of a
    fire (`<job>-<min>-m070`) and that fire (`<job>-<min>`) are two parents: each gets
    its own child (`-n070`, `-r1`), and their children's reruns stay apart too."""
    w = World()
    w.apply(job(schedule="1 9 * * *", failedRunsHistoryLimit=9, services=[service("a")]))
    await w.at(minute(1))  # the fire of 09:01
    w.apply({"metadata": {"name": "j", "annotations": {"almanac.dev/run-now": "now"}}})
    await w.at(minute(1) + timedelta(seconds=7))  # and a run-now in the same minute
    fire, manual = run_of(1), f"{run_of(1)}-m070"
    lineages = {
        fire: [f"{fire}-r1", f"{fire}-r2"],
        manual: [f"{run_of(1)}-n070", f"{run_of(1)}-o070"],
    }
    for depth in range(2):  # each parent fails, is rerun, and its child starts
        for origin, children in lineages.items():
            parent = [origin, *children][depth]
            w.finish_job(f"{parent}-a", ok=False)
            await w.settle()
            w.apply(
                {"metadata": {"name": parent, "annotations": {"almanac.dev/rerun": "now"}}},
                "scheduledjobruns",
            )
            await w.settle()
        await w.at(minute(3 + 2 * depth))
    for origin, children in lineages.items():
        parents = [origin, *children[:-1]]
        assert [w.run(c)["spec"]["parentRun"] for c in children] == parents
    assert "RerunRefused" not in w.kube.reasons()


@sync
async def test_history_limits_prune_the_oldest_finished_runs() -> None:
    w = World()
    w.apply(job(successfulRunsHistoryLimit=1, services=[service("a")]))
    for m in (1, 2, 3):
        await w.at(minute(m))
        w.finish_job(f"{run_of(m)}-a")
        await w.settle()
    assert w.kube.names("scheduledjobruns") == [run_of(3)]


@pytest.mark.parametrize(
    ("limits", "outcomes", "kept"),
    [
        ({"successfulRunsHistoryLimit": 0}, [True], []),
        ({"successfulRunsHistoryLimit": 0}, [True, False], [2]),
        ({"failedRunsHistoryLimit": 0}, [True, False], [1]),
        ({"successfulRunsHistoryLimit": 0, "failedRunsHistoryLimit": 0}, [True, False], []),
    ],
)
@sync
async def test_the_jobs_status_keeps_its_last_run_and_success_when_pruning_removes_them(
    limits: Body, outcomes: list[bool], kept: list[int]
) -> None:
    """api.md "ScheduledJob" status `lastRun` ("the run as its job sees it ... then
    `Succeeded` or `Failed`") and `lastSuccessfulTime`, "History limits": a limit of 0
    prunes the latest run in the decision that sees it finish; the status still names
    it, and CronJob keeps lastSuccessfulTime whatever it prunes. Not once: every later
    decision (here a resync) keeps them too."""
    w = World()
    w.apply(job(schedule="1,2 9 * * *", services=[service("a")], **limits))
    for m, ok in enumerate(outcomes, start=1):
        await w.at(minute(m))
        w.finish_job(f"{run_of(m)}-a", ok)
        await w.settle()
    for _ in range(2):
        assert w.kube.names("scheduledjobruns") == [run_of(m) for m in kept]
        last = len(outcomes)
        assert w.job_status()["lastRun"] == {
            "name": run_of(last),
            "phase": "Succeeded" if outcomes[-1] else "Failed",
            "scheduledTime": timestamp(minute(last)),
        }
        assert w.job_status()["lastSuccessfulTime"] == "2027-01-04T09:01:00Z"
        w.controller.decide_all()
        await w.settle()


@sync
async def test_a_decision_from_a_stale_body_never_overwrites_a_newer_status() -> None:
    w = World()
    w.apply(job(concurrencyPolicy="Forbid", services=[service("slow")]))
    await w.at(minute(1))
    # Someone else's write lands between our read and our patch: the patch conflicts,
    # the job is read again and decided again, and nothing is lost or doubled.
    stored = w.kube.objects[("scheduledjobs", "ns", "j")]
    stored["status"]["missedSchedules"] = {"count": 5, "lastMissedTime": "2027-01-04T08:00:00Z"}
    w.kube._bump(stored)
    await w.at(minute(2))
    assert w.job_status()["missedSchedules"]["count"] == 6
    assert w.kube.names("scheduledjobruns") == [run_of(1)]


@sync
async def test_a_failed_write_is_retried_until_it_succeeds() -> None:
    w = World()
    w.apply(job())
    w.kube.fail_next = [RuntimeError("504 Gateway Timeout")] * 3
    await w.at(minute(1))
    assert w.kube.names("scheduledjobruns") == []
    for seconds in (1, 3, 7):  # retried after 1, 2, 4 s
        await w.at(minute(1) + timedelta(seconds=seconds))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    assert w.job_status()["lastScheduleTime"] == "2027-01-04T09:01:00Z"


@pytest.mark.parametrize("failed_status_writes", [2, 3])
@sync
async def test_a_fire_is_never_created_twice_when_its_run_is_pruned_before_its_status_lands(
    monkeypatch: pytest.MonkeyPatch, failed_status_writes: int
) -> None:
    """api.md "ScheduledJobRun": "a fire can never be created twice (not across
    restarts, not across replicas)". The run of 09:01 fails at once and its history
    limit is 0, while the status write recording the fire (lastScheduleTime) fails:
    the run, the only record of the fire until that write lands, is not pruned, so no
    decision sees 09:01 due again."""
    w = World()
    w.kube.refuse_jobs["a"] = "jobs.batch is forbidden: exceeded quota"  # fails at once
    w.apply(job(schedule="1 9 * * *", failedRunsHistoryLimit=0, services=[service("a")]))
    await w.settle()
    real = w.kube.patch_status
    failures = {"left": failed_status_writes}

    async def flaky(plural: str, namespace: str, name: str, status: Body, rv: Any = None) -> Any:
        if plural == "scheduledjobs" and "lastScheduleTime" in status and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("503 Service Unavailable")
        return await real(plural, namespace, name, status, rv)

    monkeypatch.setattr(w.kube, "patch_status", flaky)
    created: list[str] = []
    create = w.kube.create

    async def counting(plural: str, namespace: str, body: Body) -> Any:
        if plural == "scheduledjobruns":
            created.append(body["metadata"]["name"])
        return await create(plural, namespace, body)

    monkeypatch.setattr(w.kube, "create", counting)
    await w.at(minute(1))
    for seconds in (1, 3, 7, 15):  # the retries' back-off
        await w.at(minute(1) + timedelta(seconds=seconds))
    assert w.job_status().get("lastScheduleTime") == "2027-01-04T09:01:00Z"
    assert created == [run_of(1)], created
    w.controller.decide_all()  # the next decision (a resync) prunes it: recorded now
    await w.settle()
    assert w.kube.names("scheduledjobruns") == []


async def succeeded_with_its_e_mail_pending(
    w: World, monkeypatch: pytest.MonkeyPatch, to: str
) -> None:
    """A job that e-mails ``to`` on success fires at minute 1 and succeeds, its e-mail
    held Pending (not delivered yet), as a replica leaves it that stops before sending."""
    w.apply(
        job(
            schedule="1 9 * * *",
            services=[service("a")],
            notifications={"onSuccess": True, "to": [to]},
        )
    )
    await w.at(minute(1))
    w.finish_job(f"{run_of(1)}-a")
    with monkeypatch.context() as held:  # the run ends; its notification stays Pending
        held.setattr(w.controller.delivery, "consider", lambda key, run: None)
        await w.settle()
    assert w.run(run_of(1))["status"]["notification"]["state"] == "Pending"


@sync
async def test_two_replicas_deliver_a_notification_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = accept_mail(monkeypatch)
    w = World(SMTP)
    other = w.replica(SMTP)
    await succeeded_with_its_e_mail_pending(w, monkeypatch, "ops@example.com")
    # Both replicas hold the Pending run and deliver at once (a frozen leader and the
    # new one): only the claim written with the current resourceVersion proceeds.
    for c in (w.controller, other):
        c.store.put(Kind.JOB, w.kube.stored("scheduledjobs", "j") or {})
        c.delivery._sending.clear()
        c.delivery.consider(("ns", run_of(1)), w.run(run_of(1)))
    await w.settle(w.controller, other)
    notification = w.run(run_of(1))["status"]["notification"]
    assert (notification["state"], notification["attempts"]) == ("Sent", 1)
    assert sent == ["ops@example.com"]


@sync
async def test_a_notification_that_failed_for_now_is_retried_after_its_back_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes = ["Temporary", "Sent"]

    async def deliver(settings: notify.SmtpSettings, message: Any) -> notify.DeliveryResult:
        return notify.DeliveryResult(outcomes.pop(0), "server said so", ("ops@example.com",))

    monkeypatch.setattr(notify, "deliver", deliver)
    w = World(SMTP)
    w.apply(
        job(
            schedule="1 9 * * *",
            services=[service("a")],
            notifications={"onFailure": True, "to": ["ops@example.com"]},
        )
    )
    await w.at(minute(1))
    w.finish_job(f"{run_of(1)}-a", ok=False)
    await w.settle()
    notification = w.run(run_of(1))["status"]["notification"]
    assert (notification["state"], notification["attempts"]) == ("Pending", 1)
    await w.at(minute(1) + timedelta(seconds=11))  # the first back-off is 10 s
    notification = w.run(run_of(1))["status"]["notification"]
    assert (notification["state"], notification["attempts"]) == ("Sent", 2)
    assert w.kube.reasons().count("NotificationRetrying") == 1


@pytest.mark.parametrize("once_back", ["Sent", "Permanent"])
@sync
async def test_a_run_is_not_pruned_while_its_notification_is_pending_and_is_once_it_is_final(
    monkeypatch: pytest.MonkeyPatch, once_back: str
) -> None:
    """notifications.md "Guarantee": "A notification that is due cannot be forgotten";
    the state lives in the run's status. With the default failedRunsHistoryLimit (1),
    the next failure would prune the first run while its e-mail is still retrying
    (Pending): the run stays until the e-mail is final, then the history limit
    applies."""
    tried: list[str] = []
    down = {"on": True}

    async def deliver(settings: notify.SmtpSettings, message: Any) -> notify.DeliveryResult:
        if down["on"]:
            return notify.DeliveryResult("Temporary", "451 try again", ())
        tried.append(message["X-Almanac-Run"])
        return notify.DeliveryResult(once_back, "the server's answer", ("ops@example.com",))

    monkeypatch.setattr(notify, "deliver", deliver)
    w = World(SMTP)
    w.apply(
        job(
            schedule="*/2 * * * *",
            services=[service("a")],
            notifications={"onFailure": True, "to": ["ops@example.com"]},
        )
    )
    await w.at(minute(0) + timedelta(seconds=1))
    w.finish_job(f"{run_of(0)}-a", ok=False)
    await w.settle()
    assert w.run(run_of(0))["status"]["notification"]["state"] == "Pending"
    await w.at(minute(2) + timedelta(seconds=1))
    w.finish_job(f"{run_of(2)}-a", ok=False)
    await w.settle()
    assert w.kube.names("scheduledjobruns") == [run_of(0), run_of(2)]  # beyond the limit
    down["on"] = False  # the mail server is back within the retry window
    await w.at(minute(3))
    assert sorted(tried) == [run_of(0), run_of(2)]
    assert w.kube.names("scheduledjobruns") == [run_of(2)]  # final: pruned now


@sync
async def test_a_new_leader_delivers_a_notification_its_predecessor_left_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A successor starts from a LIST (the watch's first events are then no news): the
    finished run with a Pending notification is still decided, and mailed once."""
    sent = accept_mail(monkeypatch)
    w = World(SMTP)
    w.apply(
        job(
            schedule="1 9 * * *",
            services=[service("a")],
            notifications={"onSuccess": True, "to": ["ops@example.com"]},
        )
    )
    await w.at(minute(1))
    w.finish_job(f"{run_of(1)}-a")
    with monkeypatch.context() as dead:  # the leader dies before it sends
        dead.setattr(w.controller.delivery, "consider", lambda key, run: None)
        await w.settle()
    successor = w.replica(SMTP)
    w.start_from_list(successor)
    await w.settle(successor)
    assert w.run(run_of(1))["status"]["notification"]["state"] == "Sent"
    assert len(sent) == 1


@sync
async def test_an_object_that_breaks_its_decision_is_reported_and_the_others_still_fire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unforeseen exception for one job: a Warning Event on it (once, however often
    the retry fails the same way), its timer disarmed; the other job fires on time."""
    from almanac.controller import controller as module

    real = module.decide_job

    def decide(job: Body, *args: Any, **kwargs: Any) -> Any:
        if job["metadata"]["name"] == "bad":
            raise OverflowError("date value out of range")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(module, "decide_job", decide)
    w = World()
    w.apply(job())
    bad = job()
    bad["metadata"]["name"] = "bad"
    w.apply(bad)
    await w.at(minute(1))
    for seconds in (2, 4, 8):  # the retries fail alike
        await w.at(minute(1) + timedelta(seconds=seconds))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    assert w.kube.reasons().count("ReconcileFailed") == 1
    [event] = [e for e in w.kube.events.values() if e["reason"] == "ReconcileFailed"]
    assert event["on"] == "bad"
    assert "OverflowError: date value out of range" in event["message"]
    assert ("job", ("ns", "bad")) not in w.controller.timers._entries


@sync
async def test_a_squatted_run_name_runs_nothing_and_is_reported_on_the_job() -> None:
    """Someone pre-creates the run of the next fire, with other services: the fire
    creates nothing, the squatter's services never run, RunNameTaken says so."""
    from almanac.rules.jobs import run_body

    w = World()
    victim = w.apply(job(services=[service("a")]))
    squatter = run_body(victim, run_of(1), minute(1), "Schedule", [service("evil")])
    w.kube.put("scheduledjobruns", squatter)
    await w.at(minute(1))
    assert w.kube.names("jobs") == []
    assert w.kube.reasons().count("RunNameTaken") == 1
    conditions = {c["type"]: c for c in w.job_status()["conditions"]}
    assert conditions["RunNameTaken"]["status"] == "True"
    assert run_of(1) in conditions["RunNameTaken"]["message"]
    assert "status" not in w.run(run_of(1))
    # Once it is deleted, the condition goes and the next fire runs.
    del w.kube.objects[("scheduledjobruns", "ns", run_of(1))]
    await w.at(minute(2))
    assert w.kube.names("jobs") == [f"{run_of(2)}-a"]
    assert "RunNameTaken" not in {c["type"] for c in w.job_status()["conditions"]}


@sync
async def test_deleted_objects_leave_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timers, retries, failure counts and indexes of deleted objects are released."""
    from almanac.controller import controller as module

    real = module.decide_job

    def decide(job: Body, *args: Any, **kwargs: Any) -> Any:
        if job["metadata"]["name"] == "j-bad":
            raise ValueError("broken")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(module, "decide_job", decide)
    w = World()
    names = [f"j-{i}" for i in range(200)] + ["j-bad"]
    for name in names:
        body = job(schedule="0 12 * * *", services=[service("a")])
        body["metadata"]["name"] = name
        w.apply(body)
    await w.at(minute(1))
    c = w.controller
    assert len(c.timers) == 201  # 200 next fires and one retry
    for name in names:
        del w.kube.objects[("scheduledjobs", "ns", name)]
        c.observe(Kind.JOB, "DELETED", c.store.get(Kind.JOB, ("ns", name)) or {})
    await c.queue.idle()
    assert len(c.timers) == 0
    assert len(c.timers._heap) <= 64
    assert not c.queue._failures and not c.store.keys(Kind.JOB)


@sync
async def test_a_job_deleted_while_its_decision_writes_leaves_no_series_and_no_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job deleted between its decision and its status write (the patch finds it
    gone) is forgotten; the decision's bookkeeping must not bring back its next-fire
    series (install.md: a deleted job leaves no series behind) nor arm its timer."""
    from prometheus_client import REGISTRY

    from almanac.controller import controller as module

    real = module.decide_job
    w = World()

    def decide_then_deleted(job: Body, *args: Any, **kwargs: Any) -> Any:
        plan = real(job, *args, **kwargs)
        w.kube.objects.pop(("scheduledjobs", "ns", "j"), None)  # kubectl delete, meanwhile
        return plan

    metrics.forget_job("ns", "j")  # what earlier scenarios left
    monkeypatch.setattr(module, "decide_job", decide_then_deleted)
    w.apply(job(schedule="0 12 * * *"))  # its first decision writes its status
    await w.at(minute(1))
    labels = {"namespace": "ns", "scheduledjob": "j"}
    assert w.controller.store.get(Kind.JOB, ("ns", "j")) is None
    assert REGISTRY.get_sample_value("almanac_next_fire_timestamp_seconds", labels) is None
    assert REGISTRY.get_sample_value("almanac_missed_fires_total", labels) is None
    assert w.controller.timers.when(("job", ("ns", "j"))) is None


@sync
async def test_a_job_deleted_and_created_again_does_not_take_its_predecessors_runs() -> None:
    """A ScheduledJob deleted (its runs left to the garbage collector, or orphaned) and
    created again under the same name is a new object (a new UID): as a CronJob does not
    adopt the Jobs of an earlier CronJob of its name, the predecessor's running run is
    not the new job's active run, and Forbid does not skip the new job's fire for it."""
    w = World()
    w.apply(job())
    await w.at(minute(1))
    assert w.run(run_of(1))["status"]["phase"] == "Running"
    del w.kube.objects[("scheduledjobs", "ns", "j")]
    w.controller.observe(Kind.JOB, "DELETED", w.controller.store.get(Kind.JOB, ("ns", "j")) or {})
    w.apply(job(concurrencyPolicy="Forbid", created="2027-01-04T09:01:10Z"))
    await w.at(minute(2))
    assert run_of(2) in w.kube.names("scheduledjobruns")
    assert "missedSchedules" not in w.job_status()


def _recreated(w: World, **spec: Any) -> Body:
    """Deletes ScheduledJob j (its runs left behind, as for the garbage collector or
    --cascade=orphan) and creates it again under the same name: a new UID."""
    del w.kube.objects[("scheduledjobs", "ns", "j")]
    w.controller.observe(Kind.JOB, "DELETED", w.controller.store.get(Kind.JOB, ("ns", "j")) or {})
    return w.apply(job(created="2027-01-04T09:01:10Z", **spec))


@sync
async def test_a_predecessors_run_is_decided_as_a_run_whose_job_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run of a deleted ScheduledJob goes on from its own snapshot of services, as it
    did before a job of the same name was created again: the new job's spec (its
    notifications, its runDeadline) and its Events are not the old run's."""
    sent = accept_mail(monkeypatch)
    w = World(SMTP)
    w.apply(job(schedule="1 9 * * *", services=[service("a"), service("b")]))
    await w.at(minute(1))
    assert w.kube.names("jobs") == [f"{run_of(1)}-a"]
    _recreated(
        w,
        schedule="0 12 * * *",
        services=[service("x")],
        runDeadline="1s",
        notifications={"onSuccess": True, "onFailure": True, "to": ["new@example.com"]},
    )
    w.finish_job(f"{run_of(1)}-a")
    await w.at(minute(1) + timedelta(seconds=30))
    assert w.kube.names("jobs") == [f"{run_of(1)}-a", f"{run_of(1)}-b"]
    w.finish_job(f"{run_of(1)}-b")
    await w.at(minute(2))
    status = w.run(run_of(1))["status"]
    assert status["phase"] == "Succeeded"
    assert (status.get("notification") or {}).get("state") != "Pending"
    assert "conditions" not in status or not status["conditions"]
    assert sent == []
    on_new_job = [e["reason"] for e in w.kube.events.values() if e["on"] == "j"]
    assert "RunSucceeded" not in on_new_job and "RunLate" not in on_new_job


@sync
async def test_a_fire_whose_name_a_predecessors_run_holds_is_a_taken_name() -> None:
    """A fire of the new job whose derived name a run of its deleted predecessor holds
    (the old job fired that instant on a cache that had not seen it deleted) is not
    started: as for a squatted name, RunNameTaken, and the run is not the new job's."""
    from almanac.rules.jobs import run_body

    w = World()
    old = w.apply(job(schedule="0 12 * * *", services=[service("a")]))
    await w.at(minute(1))
    stale = run_body(old, run_of(2), minute(2), "Schedule", [service("a")])
    stale["status"] = {"phase": "Running"}
    _recreated(w, services=[service("b")])
    w.kube.put("scheduledjobruns", stale)
    untrusted = metrics.UNTRUSTED_RUNS.labels("ns")._value.get()
    await w.at(minute(2))
    assert w.kube.reasons().count("RunNameTaken") == 1
    created = [e for e in w.kube.events.values() if e["reason"] == "RunCreated"]
    assert all(run_of(2) not in e["message"] for e in created)
    conditions = {c["type"]: c for c in w.job_status()["conditions"]}
    assert run_of(2) in conditions["RunNameTaken"]["message"]
    assert f"{run_of(2)}-b" not in w.kube.names("jobs")
    # The operator created that run, and runs it as an orphan: it is not an untrusted
    # run (the metric an alert watches), and neither message says it is not executed.
    assert metrics.UNTRUSTED_RUNS.labels("ns")._value.get() == untrusted
    [taken] = [e for e in w.kube.events.values() if e["reason"] == "RunNameTaken"]
    for message in (taken["message"], conditions["RunNameTaken"]["message"]):
        assert "deleted earlier ScheduledJob" in message and "not started" in message
        assert "not executed" not in message and "not created by Almanac" not in message


@sync
async def test_a_predecessors_pending_notification_is_not_sent_to_the_new_jobs_recipients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run of a deleted job whose e-mail is still to deliver is not sent to the
    recipients of a job created again under its name: those are another job's."""
    sent = accept_mail(monkeypatch)
    w = World(SMTP)
    await succeeded_with_its_e_mail_pending(w, monkeypatch, "old@example.com")
    _recreated(
        w,
        schedule="0 12 * * *",
        services=[service("a")],
        notifications={"onSuccess": True, "to": ["new@example.com"]},
    )
    await w.settle()
    w.controller.delivery.consider(("ns", run_of(1)), w.run(run_of(1)))
    await w.settle()
    assert "new@example.com" not in sent


@sync
async def test_a_notification_to_a_domain_no_longer_allowed_fails_at_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run ended while any domain was allowed; the operator that delivers allows
    only its own: nothing is sent, the state is Failed and an Event names the address."""
    sent = accept_mail(monkeypatch)
    w = World(replace(SMTP, allowed_domains=AllowList.parse("*")))
    w.apply(
        job(
            schedule="1 9 * * *",
            services=[service("a")],
            notifications={"onFailure": True, "to": ["ops@example.com", "x@elsewhere.org"]},
        )
    )
    await w.at(minute(1))
    w.finish_job(f"{run_of(1)}-a", ok=False)
    with monkeypatch.context() as dead:  # the old operator stops before it sends
        dead.setattr(w.controller.delivery, "consider", lambda key, run: None)
        await w.settle()
    assert w.run(run_of(1))["status"]["notification"]["state"] == "Pending"
    successor = w.replica(SMTP)  # ALMANAC_MAIL_ALLOWED_DOMAINS unset: example.com only
    w.start_from_list(successor)
    await w.settle(successor)
    notification = w.run(run_of(1))["status"]["notification"]
    assert notification["state"] == "Failed"
    assert 'spec.notifications.to[1]: "x@elsewhere.org"' in notification["message"]
    [event] = [e for e in w.kube.events.values() if e["reason"] == "NotificationRecipientRefused"]
    assert (event["type"], event["on"]) == ("Warning", run_of(1))
    assert "x@elsewhere.org" in event["message"]
    assert sent == []


@sync
async def test_notifications_over_the_namespace_rate_limit_wait_pending_then_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = accept_mail(monkeypatch, "X-Almanac-Run")
    w = World(SMTP, mail_rate_limit=RateLimit(1))
    for name in ("j", "k"):
        body = job(
            schedule="1 9 * * *",
            services=[service("a")],
            notifications={"onFailure": True, "to": ["ops@example.com"]},
        )
        body["metadata"]["name"] = name
        w.apply(body)
    await w.at(minute(1))
    for name in ("j", "k"):
        w.finish_job(f"{run_of(1, name)}-a", ok=False)
    await w.settle()
    assert len(sent) == 1
    [waiting] = [run_of(1, n) for n in ("j", "k") if run_of(1, n) not in sent]
    notification = w.run(waiting)["status"]["notification"]
    assert (notification["state"], notification.get("attempts", 0)) == ("Pending", 0)
    assert notification["message"] == (
        "Waiting: namespace ns has reached its limit of 1 e-mail per hour; "
        "this e-mail is sent as soon as it is under the limit again."
    )
    assert w.kube.reasons().count("NotificationRateLimited") == 1
    await w.at(minute(31))  # still within the hour: it keeps waiting, quietly
    assert len(sent) == 1
    assert w.kube.reasons().count("NotificationRateLimited") == 1
    await w.at(minute(1) + timedelta(hours=1))
    assert sorted(sent) == sorted([run_of(1, "j"), run_of(1, "k")])
    assert w.run(waiting)["status"]["notification"]["state"] == "Sent"


@sync
async def test_a_fenced_replica_writes_nothing() -> None:
    w = World()
    w.apply(job())
    leader = [True]
    w.kube.fence = lambda: leader[0]
    await w.at(minute(1))
    leader[0] = False
    writes = len(w.kube.writes)
    await w.at(minute(2))
    assert len(w.kube.writes) == writes
    assert w.controller.queue.stopped
    assert w.kube.names("scheduledjobruns") == [run_of(1)]


def test_the_scenarios_cover_the_table(request: pytest.FixtureRequest) -> None:
    """The issue's table: fire, missed, Forbid, Replace, run-now, rerun, order, async,
    mandatory stop, pruning, notification state: one scenario (at least) each."""
    names = " ".join(
        item.name for item in request.session.items if item.module.__name__ == __name__
    )
    for word in (
        "fire",
        "missed",
        "forbid",
        "replace",
        "run_now",
        "rerun",
        "order",
        "async",
        "mandatory",
        "prune",
        "notification",
    ):
        assert word in names, word


@sync
async def test_events_and_status_patches_wait_while_a_create_is_on_its_way() -> None:
    """Many fires at one instant: Jobs first, bookkeeping after (CreatesFirst)."""
    lanes, order = CreatesFirst(), []
    release = asyncio.Event()

    async def create() -> None:
        async with lanes.create():
            await release.wait()
            order.append("create")

    async def bookkeeping() -> None:
        await lanes.bookkeeping()
        order.append("event")

    creating = asyncio.create_task(create())
    await asyncio.sleep(0)  # the create is on its way
    waiting = asyncio.create_task(bookkeeping())
    await asyncio.sleep(0)
    assert order == []
    release.set()
    await asyncio.gather(creating, waiting)
    assert order == ["create", "event"]
    await asyncio.wait_for(lanes.bookkeeping(), 1)  # nothing on its way: no wait


@sync
async def test_at_most_the_queues_concurrency_of_decisions_run_at_once() -> None:
    """10,000 keys queued at a start: a bounded number decide at once, and all do."""
    running, most, done = 0, 0, []

    async def work(key: Any) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1
        done.append(key)

    queue = WorkQueue(work, TimerQueue(lambda: T0), concurrency=3)
    for key in range(50):
        queue.add(key)
    await queue.idle()
    assert sorted(done) == list(range(50))
    assert most == 3


@sync
async def test_each_lane_has_its_own_slots() -> None:
    """A thousand jobs holding every slot of their lane leave the runs' lane free."""
    blocked = asyncio.Event()
    done: list[Any] = []

    async def work(key: Any) -> None:
        if key[0] == "job":
            await blocked.wait()  # a job decision that holds its slot
        done.append(key)

    queue = WorkQueue(work, TimerQueue(lambda: T0), concurrency=2, lane=lambda key: key[0])
    for i in range(5):
        queue.add(("job", i))
    queue.add(("run", 0))
    await asyncio.wait_for(_until(lambda: ("run", 0) in done), 1)
    assert not [key for key in done if key[0] == "job"]
    blocked.set()
    await queue.idle()
    assert len(done) == 6


@sync
async def test_a_feed_is_checked_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetched feed is parsed, checked and a year of it expanded (up to 5 MiB of text,
    seconds): in a worker thread, so that no fire, watch or webhook answer waits."""
    w = World()
    w.kube.put(
        "calendars",
        {
            "apiVersion": "almanac.dev/v1alpha1",
            "kind": "Calendar",
            "metadata": {"name": "team", "namespace": "ns", "generation": 1},
            "spec": {"source": {"configMapKeyRef": {"name": "days-off", "key": "cal.ics"}}},
        },
    )
    w.controller.store.put(Kind.CALENDAR, w.kube.stored("calendars", "team") or {})
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:a@t\r\n"
        "DTSTART;VALUE=DATE:20270501\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    threads: list[threading.Thread] = []
    decide = calendars.decide_feed

    def recording(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return decide(*args)

    async def fetch(*_: Any) -> Fetched:
        return Fetched(text)

    monkeypatch.setattr(calendars, "decide_feed", recording)
    monkeypatch.setattr(controller_module.feeds, "fetch", fetch)
    await w.controller._reconcile_feed(Kind.CALENDAR, ("ns", "team"))
    assert threads and threads[0] is not threading.main_thread()
    kept = (w.kube.stored("calendars", "team") or {}).get("status", {}).get("source", {})
    assert kept.get("events") == 1, kept


def test_a_busy_api_server_is_one_line_in_the_log_and_a_bug_is_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A timeout says what it was, in one WARNING line; an unexpected exception keeps its
    traceback at ERROR. Both are retried."""

    async def work(key: Any) -> None:
        raise TimeoutError() if key == "busy" else KeyError("spec")

    async def scenario() -> WorkQueue:
        queue = WorkQueue(work, TimerQueue(lambda: T0))
        queue.add("busy")
        queue.add("bug")
        await queue.idle()
        return queue

    with caplog.at_level(logging.WARNING, logger="almanac.controller.workqueue"):
        asyncio.run(scenario())
    busy, bug = (
        next(r for r in caplog.records if r.getMessage().startswith(f"{key}:"))
        for key in ("busy", "bug")
    )
    assert (busy.levelno, busy.exc_info) == (logging.WARNING, None)
    assert busy.getMessage() == (
        "busy: decision failed: no answer from the API server within 20 s; trying again in 1s"
    )
    assert bug.levelno == logging.ERROR and bug.exc_info is not None


@sync
async def test_a_decision_waiting_behind_the_creates_gives_its_slot_to_another() -> None:
    """One slot. The first decision waits to write its bookkeeping while a create is on
    its way; the second, which ends that create, still runs: the first gave its slot up
    while waiting (holding it, the two would wait for each other forever)."""
    from almanac.controller.controller import CreatesFirst

    lanes = CreatesFirst()
    creating = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def a_create() -> None:
        async with lanes.create():
            creating.set()
            await release.wait()

    async def work(key: Any) -> None:
        if key == "waits":
            await lanes.bookkeeping()
            order.append("bookkeeping written")
        else:
            release.set()
            order.append("create answered")

    outside = asyncio.create_task(a_create())
    await creating.wait()
    queue = WorkQueue(work, TimerQueue(lambda: T0), concurrency=1)
    queue.add("waits")
    await asyncio.sleep(0)
    queue.add("ends the create")
    await asyncio.wait_for(queue.idle(), 2)
    await outside
    assert order == ["create answered", "bookkeeping written"]


def _reachable(root: object) -> list[object]:
    """What a parked rest keeps alive of its own: the values its partial, closures and
    containers refer to (not the controller behind its bound methods)."""
    found: list[object] = []
    todo, seen = [root], set()
    while todo:
        value = todo.pop()
        if id(value) in seen or isinstance(value, (Controller, type)):
            continue
        seen.add(id(value))
        found.append(value)
        if isinstance(value, functools.partial):
            todo += [value.func, *value.args, *value.keywords.values()]
        elif isinstance(value, Bookkeeping):
            todo += [value.data, value.done]
        elif callable(value) and hasattr(value, "__closure__"):
            todo += [cell.cell_contents for cell in value.__closure__ or ()]
        elif isinstance(value, dict):
            todo += [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set)):
            todo += list(value)
    return found


@sync
async def test_a_decision_that_must_wait_to_write_is_parked_without_its_bodies() -> None:
    """While another create is on its way, the job's decision (it created its run) and
    the run's (it created its Job) must wait to write their Events and status: each is
    parked as data, with the objects' identities only and no task. 10,000 fires at once
    held 10,000 jobs, runs and answers while waiting (989 MB), then 20,000 suspended
    tasks (issue 14). The writes follow when the create ends."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a")]))
    await w.settle()
    w.now = minute(1)
    release = asyncio.Event()

    async def another_create() -> None:
        async with w.controller.lanes.create():
            await release.wait()

    outside = asyncio.create_task(another_create())
    await asyncio.sleep(0)
    queue = w.controller.queue
    queue.add((Kind.JOB, ("ns", "j")))
    await asyncio.wait_for(_until(lambda: len(queue._parked) == 2 and not queue._tasks), 2)
    assert w.kube.names("jobs") == [f"{run_of(1)}-a"]  # both creates went out
    assert {key for key, _ in queue._parked} == {
        (Kind.JOB, ("ns", "j")),
        (Kind.RUN, ("ns", run_of(1))),
    }
    for _, rest in queue._parked:
        kept = _reachable(rest)
        assert [type(v) for v in kept if isinstance(v, Bookkeeping)] == [Bookkeeping]
        assert not [v for v in kept if isinstance(v, dict) and "metadata" in v]
        target, status, events = next(v for v in kept if isinstance(v, Bookkeeping)).unpack()
        assert set(target["metadata"]) == {"name", "namespace", "uid", "resourceVersion"}
        assert status and events
    release.set()
    await outside
    await w.settle()
    assert w.job_status()["lastScheduleTime"] == "2027-01-04T09:01:00Z"
    assert w.run(run_of(1))["status"]["phase"] == "Running"


@sync
async def test_a_parked_key_stays_taken_and_is_decided_again_after_its_rest() -> None:
    """A decision that returns a rest is parked, without a task, until the gate opens;
    its key, added again meanwhile, is not decided a second time at once but right after
    the rest, from the newest state."""
    gate = asyncio.Event()
    calls: list[str] = []

    async def rest() -> None:
        calls.append("rest")

    async def work(key: Any) -> Any:
        calls.append("decide")
        return rest if len(calls) == 1 else None

    queue = WorkQueue(work, TimerQueue(lambda: T0), gate=gate.wait)
    queue.add("k")
    await asyncio.wait_for(_until(lambda: len(queue._parked) == 1 and not queue._tasks), 1)
    queue.add("k")
    assert calls == ["decide"]
    gate.set()
    await asyncio.wait_for(queue.idle(), 1)
    assert calls == ["decide", "rest", "decide"]


@sync
async def test_a_stopped_queue_cancels_its_decisions_and_drops_the_parked_ones() -> None:
    """At a stop the client closes: a decision still on its way would fail on it (a
    stop during a burst's bookkeeping logged 7,283 tracebacks). Stopping the queue
    cancels them and drops the parked rests; a restarted operator decides again."""
    gate = asyncio.Event()
    started = asyncio.Event()
    calls: list[str] = []

    async def rest() -> None:
        calls.append("rest")

    async def work(key: Any) -> Any:
        if key == "parks":
            return rest
        started.set()
        await asyncio.Event().wait()  # a request that never answers
        calls.append("answered")

    queue = WorkQueue(work, TimerQueue(lambda: T0), gate=gate.wait)
    queue.add("parks")
    queue.add("on its way")
    await asyncio.wait_for(_until(lambda: len(queue._parked) == 1 and started.is_set()), 1)
    queue.stop()
    gate.set()
    await asyncio.wait_for(queue.idle(), 1)
    queue.add("after the stop")
    assert (calls, len(queue._parked), len(queue)) == ([], 0, 0)


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0)


@sync
async def test_a_run_is_late_when_its_deadline_timer_fires_and_both_e_mails_go_out_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deadline is a timer (nothing happens before it, everything at it); the late
    e-mail and then the outcome's are delivered on their own, each once."""
    sent = accept_mail(monkeypatch, header="Subject")
    w = World(SMTP)
    w.apply(
        job(
            schedule="1 9 * * *",
            services=[service("a")],
            runDeadline="10m",
            notifications={"onLate": True, "onFailure": True, "to": ["ops@example.com"]},
        )
    )
    await w.at(minute(1))
    name = run_of(1)
    assert w.controller.timers.when(("run", ("ns", name))) == minute(11)
    await w.at(minute(10))
    assert "conditions" not in w.run(name)["status"]
    await w.at(minute(11))
    [late] = w.run(name)["status"]["conditions"]
    assert (late["type"], late["lastTransitionTime"]) == ("Late", "2027-01-04T09:11:00Z")
    assert w.run(name)["status"]["lateNotification"]["state"] == "Sent"
    assert w.kube.reasons().count("RunLate") == 1
    w.finish_job(f"{name}-a", ok=False)
    await w.at(minute(12))
    status = w.run(name)["status"]
    assert (status["phase"], status["notification"]["state"]) == ("Failed", "Sent")
    assert [s.split()[1] for s in sent] == ["LATE", "FAILED"]
    assert w.kube.reasons().count("RunLate") == 1


@sync
async def test_a_shortened_deadline_applies_to_a_run_already_going() -> None:
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a")], runDeadline="2h"))
    await w.at(minute(1))
    await w.at(minute(31))
    assert "conditions" not in w.run(run_of(1))["status"]
    w.apply(job(schedule="1 9 * * *", services=[service("a")], runDeadline="10m"))
    await w.settle()  # no timer is due: the edit itself has the run decided again
    [late] = w.run(run_of(1))["status"]["conditions"]
    assert (
        late["message"] == "not finished by 2027-01-04T09:11:00Z: runDeadline 10m after it was due"
    )


@sync
async def test_a_run_is_decided_again_only_for_the_job_changes_it_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Job controller writes a Job's status three times on its way to success (a
    Pod and a start time, the Pod ready, the outcome); the run is decided again for the
    first and the last, not for the ready count (issue 14: a decision costs about half
    a millisecond, seven of them a fire)."""
    from almanac.controller import controller as module

    decided: list[str] = []

    def counting(run: Body, *args: Any, **kwargs: Any) -> Any:
        decided.append(run["metadata"]["name"])
        return decide_run(run, *args, **kwargs)

    decide_run = module.decide_run
    monkeypatch.setattr(module, "decide_run", counting)
    w = World()
    w.apply(job(schedule="1 9 * * *"))
    await w.at(minute(1))
    run = run_of(1)
    started = {"startTime": "2027-01-04T09:01:01Z", "active": 1, "ready": 0}
    steps: dict[str, list[str]] = {}
    for step, write in (
        ("started", lambda: job_controller_step(w, f"{run}-main", started)),
        ("ready", lambda: job_controller_step(w, f"{run}-main", {"ready": 1})),
        ("done", lambda: w.finish_job(f"{run}-main")),
    ):
        decided.clear()
        write()
        await w.settle()
        steps[step] = list(decided)
    assert steps == {"started": [run], "ready": [], "done": [run]}
    assert w.run(run)["status"]["phase"] == "Succeeded"


@sync
async def test_a_job_is_not_decided_again_for_the_run_its_own_decision_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a fire the job is decided when it is due and again when its run's phase moves
    (its history follows the runs), not once more for the run it has just created: its
    status already counted that run."""
    from almanac.controller import controller as module

    seen: list[list[tuple[str, object]]] = []

    def counting(job: Body, runs: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append([(r["metadata"]["name"], (r.get("status") or {}).get("phase")) for r in runs])
        return decide_job(job, runs, *args, **kwargs)

    decide_job = module.decide_job
    monkeypatch.setattr(module, "decide_job", counting)
    w = World()
    w.apply(job())
    await w.at(minute(1) - timedelta(seconds=30))
    seen.clear()
    await w.at(minute(1) + timedelta(seconds=0.5))
    earlier = (run_of(0), "Running")  # the fire at 09:00, still running
    assert seen == [[earlier], [earlier, (run_of(1), "Running")]]  # none sees run 1 unstarted


def decision_count(kind: Kind, family: str = "almanac_decisions_total") -> float:
    """The operator's counter of decisions (or of failed ones) about ``kind``, as scraped."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(family, {"kind": kind.value}) or 0.0


@sync
async def test_the_decisions_counter_moves_once_for_each_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """almanac_decisions_total{kind}: over a single-service fire from due to success, with
    the Job controller's three writes, it moves as often as the decisions were made."""
    from almanac.controller import controller as module

    made = {Kind.JOB: 0, Kind.RUN: 0}

    def counting(kind: Kind, decide: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            made[kind] += 1
            return decide(*args, **kwargs)

        return counted

    monkeypatch.setattr(module, "decide_job", counting(Kind.JOB, module.decide_job))
    monkeypatch.setattr(module, "decide_run", counting(Kind.RUN, module.decide_run))
    w = World()
    w.apply(job(schedule="1 9 * * *"))
    await w.at(minute(1) - timedelta(seconds=30))
    before = {kind: decision_count(kind) for kind in made}
    made.update(dict.fromkeys(made, 0))
    await w.at(minute(1))
    run = run_of(1)
    await job_controller_runs(w, f"{run}-main")
    assert w.run(run)["status"]["phase"] == "Succeeded"
    assert made[Kind.JOB] > 0 and made[Kind.RUN] > 0
    assert {kind: decision_count(kind) - before[kind] for kind in made} == made


@sync
async def test_failed_decisions_are_counted_and_a_lost_lease_is_not() -> None:
    """almanac_decision_failures_total{kind}: a write the API server refuses and an error
    nobody foresaw each count one (the queue retries them); losing the Lease is no
    failure of a decision."""
    from kubernetes_asyncio.client.exceptions import ApiException

    from almanac.kube import NotLeader

    failures = "almanac_decision_failures_total"
    w = World()
    w.apply(job())
    before = decision_count(Kind.JOB, failures)
    w.kube.fail_next = [ApiException(status=503, reason="Service Unavailable"), KeyError("x")]
    await w.at(minute(1))
    assert decision_count(Kind.JOB, failures) - before == 1
    await w.at(minute(1) + timedelta(seconds=1))  # retried after 1 s: fails again
    assert decision_count(Kind.JOB, failures) - before == 2
    await w.at(minute(1) + timedelta(seconds=3))  # and after 2 s more: done
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    assert decision_count(Kind.JOB, failures) - before == 2

    lost = World()
    lost.apply(job())
    before = decision_count(Kind.JOB, failures)
    lost.kube.fail_next = [NotLeader("the Lease is another replica's")]
    await lost.at(minute(1))
    assert lost.kube.names("scheduledjobruns") == []
    assert decision_count(Kind.JOB, failures) == before


@sync
async def test_a_job_held_by_a_changed_feed_says_why_its_new_source_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """api.md "Calendar": a Calendar whose ``configMapKeyRef`` changed and whose new one
    has not been fetched holds its jobs with ``Calendar team has not been fetched yet
    (last error: ...)``. The old copy's revision is still in the status, and a failed
    fetch changed only ``lastError``: the jobs must be decided again at once, not at the
    next resync, so that their condition names the error."""
    w = World()
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:a@t\r\n"
        "DTSTART;VALUE=DATE:20270501\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    outcomes: list[Any] = [Fetched(text), calendars.FetchFailed("ConfigMap ns/other not found")]

    def held() -> bool:
        ready = [c for c in w.job_status().get("conditions") or [] if c["type"] == "Ready"]
        return bool(ready) and ready[0]["reason"] == "CalendarNotFetched"

    async def fetch(*_: Any) -> Any:
        # A fetch takes longer than a job's decision: the jobs are held (the spec
        # changed) before its answer comes.
        await asyncio.wait_for(_until(held), 1)
        return outcomes.pop(0)

    monkeypatch.setattr(controller_module.feeds, "fetch", fetch)

    async def feed_changed(source: Body) -> None:
        body = w.apply(
            {
                "apiVersion": "almanac.dev/v1alpha1",
                "kind": "Calendar",
                "metadata": {"name": "team"},
                "spec": {"source": source},
            },
            "calendars",
        )
        w.controller.observe(Kind.CALENDAR, "MODIFIED", body)
        await w.settle()  # the fetch, then its status write's echo
        w.controller.observe(Kind.CALENDAR, "MODIFIED", w.kube.stored("calendars", "team") or {})
        await w.settle()

    w.apply(job(schedule="0 12 * * *", calendarRefs=[{"name": "team"}]))
    await feed_changed({"configMapKeyRef": {"name": "days-off", "key": "cal.ics"}})
    assert w.job_status().get("nextScheduleTime") is not None
    await feed_changed({"configMapKeyRef": {"name": "other", "key": "cal.ics"}})
    ready = next(c for c in w.job_status()["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], w.job_status().get("nextScheduleTime")) == (
        "CalendarNotFetched",
        None,
    )
    assert "(last error: ConfigMap ns/other not found)" in ready["message"], ready["message"]


def end_job(w: World, name: str, at: datetime) -> None:
    """The Job controller records the Job's success at ``at``."""
    job = w.kube.objects[("jobs", "ns", name)]
    job["status"] = {
        "startTime": timestamp(minute(1)),
        "completionTime": timestamp(at),
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    w.kube._bump(job)


async def _late_mail_retried_after_the_run_succeeded(w: World, name: str) -> None:
    await w.at(minute(11))  # late; its first attempt is refused for now
    end_job(w, f"{name}-a", minute(11) + timedelta(seconds=5))
    await w.at(minute(11) + timedelta(seconds=6))  # the run succeeds before the retry
    assert w.run(name)["status"]["phase"] == "Succeeded"
    await w.at(minute(11) + timedelta(seconds=11))  # the retry, after the 10 s back-off


async def _found_late_after_the_run_had_ended(w: World, name: str) -> None:
    # The operator was away at the deadline; the run's Job ended after it.
    end_job(w, f"{name}-a", minute(20))
    await w.at(minute(25))


async def _late_while_running(w: World, name: str) -> None:
    await w.at(minute(11))


@pytest.mark.parametrize(
    ("story", "refused_first"),
    [
        (_late_mail_retried_after_the_run_succeeded, True),
        (_found_late_after_the_run_had_ended, False),
        (_late_while_running, False),
    ],
    ids=["retried-after-the-run-succeeded", "found-late-after-it-ended", "late-while-running"],
)
@sync
async def test_the_late_e_mail_tells_the_run_as_it_stood_when_it_became_late(
    monkeypatch: pytest.MonkeyPatch,
    story: Callable[[World, str], Coroutine[Any, Any, None]],
    refused_first: bool,
) -> None:
    """notifications.md: the e-mail about lateness has phase Pending or Running, and a
    resend is byte-identical. It tells the run at its deadline, not as it is when the
    e-mail (or its retry) leaves: a run that succeeded meanwhile is still Running in it."""
    late_mails: list[bytes] = []

    async def deliver(settings: notify.SmtpSettings, message: Any) -> notify.DeliveryResult:
        if message["X-Almanac-Late"]:
            late_mails.append(message.as_bytes())
            if refused_first and len(late_mails) == 1:
                return notify.DeliveryResult("Temporary", "451 try again", ())
        return notify.DeliveryResult("Sent", "250 OK", ("ops@example.com",))

    monkeypatch.setattr(notify, "deliver", deliver)
    w = World(SMTP)
    w.apply(
        job(
            schedule="1 9 * * *",
            services=[service("a")],
            runDeadline="10m",
            notifications={"onLate": True, "to": ["ops@example.com"]},
        )
    )
    await w.at(minute(1))
    name = run_of(1)
    await story(w, name)
    assert w.run(name)["status"]["lateNotification"]["state"] == "Sent"
    assert len(late_mails) == (2 if refused_first else 1)
    assert len(set(late_mails)) == 1, "a resend differs from the first attempt"
    text = late_mails[0].decode()
    assert "X-Almanac-Phase: Running" in text
    assert "Phase:         Running" in text
    assert f"  a        Running  {name}-a" in text
    assert "Succeeded" not in text


# --- What `kubectl get events` and `kubectl describe` show: every reason in the contract ---

_OPERATOR = Path(controller_module.__file__).resolve().parent.parent
_DOCS = _OPERATOR.parent.parent / "docs"

# Reasons made at run time, not written as a literal beside the Event's type: a job's
# Ready=False reason is its Warning's (rules/jobs.py warn_once), a Backfill's refusal or
# wait is its Warning's (rules/backfill.py stop), BackfillSucceeded/BackfillFailed are
# f"Backfill{phase}", RunNotTrusted is chosen by the object it is posted on, and some
# notification reasons come from the recipients' and webhooks' checks.
_COMPUTED_EVENT_REASONS = {
    ("Warning", "InvalidSchedule"),
    ("Warning", "CalendarNotFetched"),
    ("Warning", "CalendarNotFound"),
    ("Warning", "NeverFires"),
    ("Warning", "InvalidSpec"),
    ("Warning", "ScheduledJobNotFound"),
    ("Warning", "ScheduledJobInvalid"),
    ("Warning", "ScheduledJobDeleting"),
    ("Warning", "RangeInFuture"),
    ("Warning", "TooManyInstants"),
    ("Normal", "BackfillSucceeded"),
    ("Warning", "BackfillFailed"),
    ("Warning", "RunNotTrusted"),
    ("Warning", "NotificationNotConfigured"),
    ("Warning", "NotificationNoRecipients"),
    ("Warning", "NotificationRecipientRefused"),
    ("Warning", "NotificationWebhookRefused"),
}


def _event_reasons_in_the_code() -> set[tuple[str, str]]:
    """Every (type, reason) the operator posts."""
    found: set[tuple[str, str]] = set()
    literal = re.compile(r'"(Normal|Warning)",\s*"([A-Z][A-Za-z]+)"')
    for path in _OPERATOR.rglob("*.py"):
        found |= {(t, r) for t, r in literal.findall(path.read_text()) if r != "Warning"}
    constant = re.compile(r'NotificationEvent\(\s*"(Normal|Warning)",\s*(REASON_[A-Z_]+)')
    for t, name in constant.findall(Path(notification_state.__file__).read_text()):
        found.add((t, getattr(notification_state, name)))
    return found | _COMPUTED_EVENT_REASONS


def test_every_event_reason_the_operator_posts_is_in_the_contract() -> None:
    """api.md's Events table (with notifications.md's for the e-mail and webhook
    reasons) names every reason a user can filter on (`kubectl get events
    --field-selector reason=...`) with its type."""
    documented = (_DOCS / "api.md").read_text() + (_DOCS / "notifications.md").read_text()
    rows = set(re.findall(r"\| (Normal|Warning) \| `([A-Za-z]+)` \|", documented))
    posted = _event_reasons_in_the_code()
    assert ("Normal", "RunCreated") in posted and ("Warning", "RunLate") in posted
    assert sorted(posted - rows) == []
    assert sorted(rows - posted) == []


def test_every_ready_reason_of_a_scheduled_job_is_in_the_contract() -> None:
    """api.md names every reason a ScheduledJob's Ready condition can have."""
    written = {"Scheduled", "Suspended", "InvalidSchedule", "CalendarNotFetched"}
    written |= {"CalendarNotFound", *NEVER_FIRES_REASONS}
    api = (_DOCS / "api.md").read_text()
    section = api[api.index("### Conditions") :]
    assert sorted(r for r in written if f"`{r}`" not in section) == []


@sync
async def test_a_run_being_deleted_creates_no_job_again_when_its_jobs_go_first() -> None:
    """A run deleted with ``--cascade=foreground`` (or a job deleted so, as Argo CD
    deletes) stays, with a deletionTimestamp, while the garbage collector deletes its
    Jobs first. Those Jobs are not "deleted while the service runs" and created again
    (each a second Job of the service, which the collector deletes in turn): an object
    being deleted starts nothing, as a ReplicaSet or CronJob being deleted."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a"), service("b")]))
    await w.at(minute(1))
    name = f"{run_of(1)}-a"
    run = w.kube.objects[("scheduledjobruns", "ns", run_of(1))]
    run["metadata"]["deletionTimestamp"] = "2027-01-04T09:01:10Z"
    run["metadata"]["finalizers"] = ["foregroundDeletion"]
    w.kube._bump(run)
    w.controller.observe(Kind.RUN, "MODIFIED", copy.deepcopy(run))
    deleted = w.kube.objects.pop(("jobs", "ns", name))  # the garbage collector
    w.controller.observe(Kind.BATCH_JOB, "DELETED", copy.deepcopy(deleted))
    await w.at(minute(1) + timedelta(seconds=15))
    assert w.kube.writes.count(("create", "jobs", name)) == 1
    assert w.kube.names("jobs") == []


@sync
async def test_a_job_being_deleted_fires_no_more() -> None:
    """A ScheduledJob deleted in the foreground (``--cascade=foreground``, Argo CD)
    stays, with a deletionTimestamp, while the garbage collector deletes its runs and
    their Jobs. It starts no run meanwhile (each would be deleted in turn, after its Job
    had started), as a CronJob being deleted creates no Job."""
    w = World()
    w.apply(job(services=[service("a")]))
    await w.at(minute(1))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]
    body = w.kube.objects[("scheduledjobs", "ns", "j")]
    body["metadata"]["deletionTimestamp"] = "2027-01-04T09:01:30Z"
    body["metadata"]["finalizers"] = ["foregroundDeletion"]
    w.kube._bump(body)
    await w.at(minute(2))
    await w.at(minute(3))
    assert w.kube.names("scheduledjobruns") == [run_of(1)]


@sync
async def test_a_run_deleted_mid_way_gets_no_job_again_when_its_jobs_deletion_is_seen_first() -> (
    None
):
    """``kubectl delete sjr`` while a service runs: the garbage collector then deletes
    the run's Jobs. The runs and the Jobs are two watches: a Job's DELETED event may be
    seen before its run's (a burst of run events ahead of it). The Job is not created
    again for a run that is gone (the collector would delete it, after its Pod had
    started): each service of a run runs once."""
    w = World()
    w.apply(job(schedule="1 9 * * *", services=[service("a")]))
    await w.at(minute(1))
    name = f"{run_of(1)}-a"
    w.kube.objects.pop(("scheduledjobruns", "ns", run_of(1)))  # kubectl delete sjr
    deleted = w.kube.objects.pop(("jobs", "ns", name))  # the garbage collector
    w.controller.observe(Kind.BATCH_JOB, "DELETED", copy.deepcopy(deleted))
    await w.controller.queue.idle()
    await w.settle()  # the run's DELETED event
    assert w.kube.writes.count(("create", "jobs", name)) == 1
    assert w.kube.names("jobs") == []


async def _a_failed_run_asked_to_rerun(w: World) -> str:
    """The name of job j's first run, failed, with ``almanac.dev/rerun: failed`` set."""
    w.apply(job(schedule="1 9 * * *", services=[service("a")]))
    await w.at(minute(1))
    parent = run_of(1)
    w.finish_job(f"{parent}-a", ok=False)
    await w.settle()
    w.apply(
        {"metadata": {"name": parent, "annotations": {"almanac.dev/rerun": "failed"}}},
        "scheduledjobruns",
    )
    return parent


@sync
async def test_a_rerun_asked_for_while_no_operator_ran_is_created_by_the_next_one() -> None:
    """``almanac.dev/rerun`` set on a finished run while the operator was away (an
    upgrade, a restart): the next operator, which lists the run with its annotation and
    watches on from that list, creates the rerun, once, and consumes the annotation."""
    w = World()
    parent = await _a_failed_run_asked_to_rerun(w)
    w.controller = w.replica()  # the operator restarts: its store is the LIST
    w.start_from_list(w.controller)
    await w.controller.queue.idle()
    await w.settle()
    assert f"{parent}-r1" in w.kube.names("scheduledjobruns")
    assert w.kube.writes.count(("create", "scheduledjobruns", f"{parent}-r1")) == 1
    assert "almanac.dev/rerun" not in w.run(parent)["metadata"].get("annotations", {})
    assert w.kube.reasons().count("RerunCreated") == 1


@pytest.mark.parametrize("restart", [False, True], ids=["retried", "after a restart"])
@sync
async def test_a_rerun_whose_annotation_was_not_consumed_is_not_refused_when_retried(
    restart: bool,
) -> None:
    """The child was created and consuming the parent's rerun annotation failed (the
    API server away, or the operator stopped). The retry, or the next operator, meets
    the child its own request made (``almanac.dev/rerun-request``): the request was
    answered (RerunCreated), not refused as a second one ("already rerun")."""
    w = World()
    parent = await _a_failed_run_asked_to_rerun(w)
    real = w.kube.patch_annotations

    async def lost(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("503 Service Unavailable")

    w.kube.patch_annotations = lost  # type: ignore[method-assign]
    await w.settle()  # the child is created; consuming the annotation fails
    assert f"{parent}-r1" in w.kube.names("scheduledjobruns")
    w.kube.patch_annotations = real  # type: ignore[method-assign]
    if restart:
        w.controller = w.replica()
        w.start_from_list(w.controller)
    await w.at(minute(1) + timedelta(seconds=2))  # the queue's retry
    assert w.kube.writes.count(("create", "scheduledjobruns", f"{parent}-r1")) == 2
    assert "almanac.dev/rerun" not in w.run(parent)["metadata"].get("annotations", {})
    assert "RerunRefused" not in w.kube.reasons()
    assert w.kube.reasons().count("RerunCreated") == 1


def job_status_writes_fail(w: World) -> dict[str, bool]:
    """The job's status patches fail (503) while ``["fail"]`` is true; every other write
    (its runs, their Jobs, Events) goes through."""
    state = {"fail": True}
    real = w.kube.patch_status

    async def patch(plural: str, namespace: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if plural == "scheduledjobs" and state["fail"]:
            raise RuntimeError("503 Service Unavailable")
        return await real(plural, namespace, name, *args, **kwargs)

    w.kube.patch_status = patch  # type: ignore[method-assign]
    return state


@pytest.mark.parametrize(
    ("spec", "created", "first", "failing_until", "runs", "missed"),
    [
        # catchUp All, decided first at 09:03:45: 09:00 and 09:01 are past the deadline,
        # 09:02 and 09:03 start. The retry found both runs and dropped the two missed
        # fires with them: no count, no metric.
        (
            {"catchUp": "All", "startingDeadlineSeconds": 150},
            "2027-01-04T08:59:30Z",
            minute(3) + timedelta(seconds=45),
            minute(3) + timedelta(seconds=45),
            [2, 3],
            (2, "2027-01-04T09:01:00Z"),
        ),
        # catchUp Latest: 09:01's run was created but the job's status did not land
        # until after 09:02; the retry counted 09:01 as missed beside its run.
        ({}, "2027-01-04T09:00:30Z", minute(1), minute(2) + timedelta(seconds=10), [1, 2], None),
    ],
    ids=["all-keeps-the-missed-fires", "latest-does-not-miss-a-fire-that-ran"],
)
@sync
async def test_a_fire_is_recorded_once_as_what_it_was_when_the_jobs_status_write_failed(
    spec: Body,
    created: str,
    first: datetime,
    failing_until: datetime,
    runs: list[int],
    missed: tuple[int, str] | None,
) -> None:
    """api.md "Missed fires": every missed fire is recorded, never silently dropped, and
    a fire is missed when its instant passes *without a run*. A decision creates its
    runs before it writes the job's status; when that write fails and the retry that
    lands comes later (the API server away for a while), the retry must still tell the
    fires that have a run (started) from those that have none (missed), whatever
    ``catchUp`` is."""
    w = World()
    w.apply(job(created, **spec))
    failing = job_status_writes_fail(w)
    when = first
    await w.at(when)
    while when < failing_until:  # the retries fail meanwhile
        when += timedelta(seconds=5)
        await w.at(when)
    failing["fail"] = False
    for _ in range(2):  # the retry after the back-off lands
        when += timedelta(seconds=5)
        await w.at(when)
    assert w.kube.names("scheduledjobruns") == [run_of(m) for m in runs]
    status = w.job_status()
    assert status["lastScheduleTime"] == timestamp(minute(runs[-1]))
    recorded = status.get("missedSchedules") or {}
    assert (recorded.get("count"), recorded.get("lastMissedTime")) == (missed or (None, None))


@sync
async def test_a_fire_whose_run_the_api_server_refuses_is_recorded_as_missed() -> None:
    """api.md "Missed fires": a fire is missed when its instant passes without a run,
    and every missed fire is recorded (MissedSchedule, ``status.missedSchedules``,
    ``almanac_missed_fires_total``). A ResourceQuota on runs (or a policy webhook)
    refusing the run's create is such a fire: it was a RunRefused Event only, counted
    nowhere, and the job's status listed the run that was never made as active."""
    from prometheus_client import REGISTRY

    metrics.forget_job("ns", "j")
    w = World()
    w.apply(job("2027-01-04T09:00:30Z"))
    _refuse_run(w, run_of(1), "exceeded quota: runs, requested: count/scheduledjobruns=1")
    await w.at(minute(1))
    assert w.kube.names("scheduledjobruns") == []
    status = w.job_status()
    missed = status["missedSchedules"]
    assert (missed["count"], missed["lastMissedTime"]) == (1, "2027-01-04T09:01:00Z")
    assert "exceeded quota" in missed["message"]
    assert not status.get("active") and not status.get("lastRun")
    assert not status.get("lastScheduleTime")  # LAST: no fire ran
    assert {"RunRefused", "MissedSchedule"} <= set(w.kube.reasons())
    labels = {"namespace": "ns", "scheduledjob": "j"}
    assert REGISTRY.get_sample_value("almanac_missed_fires_total", labels) == 1
    await w.at(minute(2))  # the next fire is an ordinary one
    assert w.kube.names("scheduledjobruns") == [run_of(2)]
    assert w.job_status()["missedSchedules"]["count"] == 1


def _refuse_run(w: World, name: str, message: str) -> None:
    """The fake API server refuses to create run ``name`` (a quota, a policy webhook)."""
    from almanac.kube import Refused

    real = w.kube.create

    async def create(plural: str, namespace: str, body: Body) -> Any:
        if plural == "scheduledjobruns" and body["metadata"]["name"] == name:
            return Refused(message)
        return await real(plural, namespace, body)

    w.kube.create = create  # type: ignore[method-assign]


@sync
async def test_a_replace_fire_whose_run_is_refused_still_says_it_deleted_the_active_run() -> None:
    """The decision is made again once a run is refused (to record its fire as missed);
    the active run the first one deleted (concurrencyPolicy Replace) is gone by then, and
    its RunReplaced Event must not go with it."""

    w = World()
    w.apply(job("2027-01-04T09:00:30Z", concurrencyPolicy="Replace", services=[service("s")]))
    _refuse_run(w, run_of(2), "exceeded quota: runs")
    await w.at(minute(1))
    await w.at(minute(2))
    assert w.kube.names("scheduledjobruns") == []
    assert {"RunReplaced", "RunRefused", "MissedSchedule"} <= set(w.kube.reasons())
    assert w.job_status()["missedSchedules"]["count"] == 1
