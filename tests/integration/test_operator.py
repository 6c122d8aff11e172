"""The real operator against the real control plane: firing, orchestration, policies.

Assertions are on what `kubectl` shows: objects, status, Events. Waits poll for a
condition with a bound; none stands in for one with a sleep.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import Operator
from tests.integration.objects import calendar, scheduled_job, service
from tests.kube import Kubectl, wait_until


def runs_of(k: Kubectl, job: str) -> list[dict[str, Any]]:
    return k.items("sjr", "-l", f"almanac.dev/scheduled-job={job}")


def finished_run(k: Kubectl, name: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        run = k.get("sjr", name)
        phase = (run or {}).get("status", {}).get("phase")
        return run if phase in ("Succeeded", "Failed") else None

    return wait_until(f"run {name} to finish", check, timeout)


def service_phases(run: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["phase"] for s in run["status"]["services"]}


def reasons(k: Kubectl, name: str) -> list[str]:
    return [e["reason"] for e in k.events(name)]


def run_now(k: Kubectl, job: str) -> dict[str, Any]:
    """Annotates the job with almanac.dev/run-now and returns the new run (trigger RunNow)."""
    before = {r["metadata"]["name"] for r in runs_of(k, job)}
    k.run("annotate", "sj", job, "almanac.dev/run-now=now", "--overwrite")
    return wait_until(
        f"a new manual run of {job}",
        lambda: next(
            (
                r
                for r in runs_of(k, job)
                if r["spec"].get("trigger") == "RunNow" and r["metadata"]["name"] not in before
            ),
            None,
        ),
    )


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_an_every_minute_job_fires_on_time_not_after_a_resync(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("tick", "* * * * *"))
    status = wait_until(
        "nextScheduleTime", lambda: k.get("sj", "tick").get("status", {}).get("nextScheduleTime")
    )
    fire = utc(status)
    run = wait_until(
        "the run of the next fire",
        lambda: k.get("sjr", f"tick-{int(fire.timestamp()) // 60}"),
        timeout=90,
    )
    created = utc(run["metadata"]["creationTimestamp"])
    assert run["spec"]["scheduledTime"] == status
    # Creation timestamps have one-second resolution; a resync would be minutes late.
    assert timedelta(0) <= created - fire < timedelta(seconds=5)
    assert run["metadata"]["ownerReferences"][0]["name"] == "tick"
    assert "RunCreated" in reasons(k, "tick")


def test_a_failing_mandatory_service_skips_the_rest_and_fails_the_run(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(
        scheduled_job(
            "pipeline",
            services=[
                service("extract"),
                service("transform", mandatory=True, exit_code=2),
                service("load"),
            ],
        )
    )
    run = finished_run(k, run_now(k, "pipeline")["metadata"]["name"])
    assert run["status"]["phase"] == "Failed"
    assert service_phases(run) == {"extract": "Succeeded", "transform": "Failed", "load": "Skipped"}
    name = run["metadata"]["name"]
    jobs = {
        j["metadata"]["labels"]["almanac.dev/service"]: j
        for j in k.items("jobs", "-l", f"almanac.dev/run={name}")
    }
    assert sorted(jobs) == ["extract", "transform"]  # load never got a Job
    assert jobs["extract"]["metadata"]["name"] == f"{name}-extract"
    assert {"ServiceFailed", "ServiceSkipped"} <= set(reasons(k, name))
    assert "RunFailed" in reasons(k, "pipeline")  # the run's end is told on its job


def test_a_failing_non_mandatory_service_lets_the_rest_run(k: Kubectl, operator: Operator) -> None:
    k.apply(
        scheduled_job(
            "lenient",
            services=[service("extract"), service("transform", exit_code=1), service("load")],
        )
    )
    run = finished_run(k, run_now(k, "lenient")["metadata"]["name"])
    assert service_phases(run) == {
        "extract": "Succeeded",
        "transform": "Failed",
        "load": "Succeeded",
    }
    assert run["status"]["phase"] == "Failed"


def test_async_services_start_together_and_the_run_waits_for_all(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(
        scheduled_job(
            "fanout",
            services=[
                service("a", async_=True, duration="6s"),
                service("b", async_=True, duration="6s"),
                service("report"),
            ],
        )
    )
    run = finished_run(k, run_now(k, "fanout")["metadata"]["name"])
    assert run["status"]["phase"] == "Succeeded"
    starts = {s["name"]: utc(s["startTime"]) for s in run["status"]["services"]}
    ends = {s["name"]: utc(s["completionTime"]) for s in run["status"]["services"]}
    # a, b and the first sequential service start at once, not one after another.
    assert max(starts.values()) - min(starts.values()) < timedelta(seconds=3)
    assert utc(run["status"]["completionTime"]) >= max(ends["a"], ends["b"])


def test_editing_the_schedule_moves_the_next_fire_at_once(k: Kubectl, operator: Operator) -> None:
    def next_at(hour: int) -> set[str]:
        """The next hour:00 UTC after now, as it may be read a moment before or after."""
        now = datetime.now(UTC)
        today = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        return {
            (today if today > t else today + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for t in (now, now + timedelta(seconds=30))
        }

    expected = next_at(3)
    k.apply(scheduled_job("edit", "0 3 * * *", timeZone="UTC"))
    first = wait_until(
        "nextScheduleTime", lambda: k.get("sj", "edit")["status"].get("nextScheduleTime")
    )
    assert first in expected
    expected = next_at(5)
    k.run("patch", "sj", "edit", "--type=merge", "-p", '{"spec":{"schedule":"0 5 * * *"}}')
    moved = wait_until(
        "the next fire at 05:00",
        lambda: (
            (n := k.get("sj", "edit")["status"].get("nextScheduleTime"))
            and n.endswith("T05:00:00Z")
            and n
        ),
    )
    assert moved in expected


def test_a_calendar_edit_moves_every_job_that_refers_to_it(k: Kubectl, operator: Operator) -> None:
    now = datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).date()
    k.apply(
        calendar("holidays", holiday=[]),
        scheduled_job("daily", "0 12 * * *", timeZone="UTC", calendarRefs=[{"name": "holidays"}]),
    )
    expected_first = now.date() if now.hour < 12 else tomorrow
    first = wait_until(
        "nextScheduleTime", lambda: k.get("sj", "daily")["status"].get("nextScheduleTime")
    )
    assert first == f"{expected_first.isoformat()}T12:00:00Z"
    excluded = utc(first).date()
    k.apply(calendar("holidays", holiday=[excluded.strftime("%d.%m.%Y")]))
    later = excluded + timedelta(days=1)
    wait_until(
        "the next fire to skip the new holiday",
        lambda: (
            k.get("sj", "daily")["status"].get("nextScheduleTime")
            == f"{later.isoformat()}T12:00:00Z"
        ),
    )


def test_suspend_stops_firing_and_resume_reports_what_was_skipped(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("pausable", "* * * * *", suspend=True))
    status = wait_until(
        "the Suspended condition",
        lambda: next(
            (
                c
                for c in (k.get("sj", "pausable").get("status") or {}).get("conditions", [])
                if c["reason"] == "Suspended"
            ),
            None,
        ),
    )
    assert status["status"] == "True"
    sj = k.get("sj", "pausable")
    assert "nextScheduleTime" not in sj["status"]
    # Over a minute boundary, nothing fires while suspended...
    boundary = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=2, microsecond=0)
    wait_until("a minute boundary to pass", lambda: datetime.now(UTC) >= boundary, 70)
    assert runs_of(k, "pausable") == []
    # ...and resuming does not replay it: it is reported as missed instead.
    k.run("patch", "sj", "pausable", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    missed = wait_until(
        "missedSchedules", lambda: k.get("sj", "pausable")["status"].get("missedSchedules")
    )
    assert missed["count"] >= 1 and "suspended" in missed["message"]
    assert runs_of(k, "pausable") == []
    assert "MissedSchedule" in reasons(k, "pausable")


def test_deleting_a_job_garbage_collects_its_runs_and_their_jobs(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("doomed"))
    run = finished_run(k, run_now(k, "doomed")["metadata"]["name"])
    name = run["metadata"]["name"]
    assert k.items("jobs", "-l", f"almanac.dev/run={name}")
    k.run("delete", "sj", "doomed", "--wait=true", "--timeout=30s")  # no finalizer to hang
    wait_until("the run to be collected", lambda: k.get("sjr", name) is None)
    wait_until(
        "its Jobs to be collected", lambda: not k.items("jobs", "-l", f"almanac.dev/run={name}")
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "61 * * * *", "spec.schedule"),
        ("timeZone", "Mars/Olympus_Mons", "spec.timeZone"),
    ],
    ids=["a bad cron expression", "an unknown time zone"],
)
def test_an_invalid_schedule_is_not_ready_with_one_warning_and_others_keep_firing(
    k: Kubectl, operator: Operator, field: str, value: str, message: str
) -> None:
    k.apply(
        scheduled_job("bad", **{field: value})
        if field != "schedule"
        else scheduled_job("bad", value)
    )
    k.apply(scheduled_job("good", "0 3 * * *"))
    ready = wait_until(
        "Ready=False",
        lambda: next(
            (
                c
                for c in (k.get("sj", "bad").get("status") or {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "False"
            ),
            None,
        ),
    )
    assert ready["reason"] == "InvalidSchedule"
    assert message in ready["message"]
    assert wait_until(
        "the good job scheduled",
        lambda: k.get("sj", "good").get("status", {}).get("nextScheduleTime"),
    )
    # Our own status writes come back as events: they must not post the warning again.
    warnings = [e for e in k.events("bad") if e["reason"] == "InvalidSchedule"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"


def test_a_job_that_can_never_fire_says_why(k: Kubectl, operator: Operator) -> None:
    k.apply(scheduled_job("never", "0 0 30 2 *"))
    ready = wait_until(
        "Ready=False",
        lambda: next(
            (
                c
                for c in (k.get("sj", "never").get("status") or {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "False"
            ),
            None,
        ),
    )
    assert ready["reason"] == "NoSuchDate"
    assert "never" in ready["message"].lower() or "no" in ready["message"].lower()
    assert "NeverFires" in reasons(k, "never")


def test_a_one_digit_day_is_reported_in_the_two_digit_form(k: Kubectl, operator: Operator) -> None:
    k.apply(scheduled_job("leap", "0 0 29 2 *", exclusions={"annual": ["29.2"]}))
    ready = wait_until(
        "Ready=False",
        lambda: next(
            (
                c
                for c in (k.get("sj", "leap").get("status") or {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "False"
            ),
            None,
        ),
    )
    assert 'annual "29.02" (spec.exclusions.annual[0])' in ready["message"]


def test_forbid_refuses_a_run_now_while_a_run_is_active(k: Kubectl, operator: Operator) -> None:
    """docs/api.md "Reruns and manual runs": a run-now obeys concurrencyPolicy; refused, it
    is a RunNowRefused Warning that names the policy, not a missed fire of the schedule."""
    k.apply(
        scheduled_job(
            "single", services=[service("slow", duration="60s")], concurrencyPolicy="Forbid"
        )
    )
    first = run_now(k, "single")
    wait_until(
        "the first run Running",
        lambda: (
            (k.get("sjr", first["metadata"]["name"]) or {}).get("status", {}).get("phase")
            == "Running"
        ),
    )
    k.run("annotate", "sj", "single", "almanac.dev/run-now=again", "--overwrite")
    refused = wait_until(
        "the run-now refused",
        lambda: [e for e in k.events("single") if e["reason"] == "RunNowRefused"],
    )
    assert "concurrencyPolicy Forbid" in refused[0]["message"]
    assert "missedSchedules" not in k.get("sj", "single")["status"]
    assert len(runs_of(k, "single")) == 1


def test_a_killed_operator_neither_duplicates_nor_loses_a_run(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(
        scheduled_job(
            "sturdy", "* * * * *", services=[service("first", duration="5s"), service("second")]
        )
    )
    fire = utc(
        wait_until(
            "nextScheduleTime",
            lambda: k.get("sj", "sturdy").get("status", {}).get("nextScheduleTime"),
        )
    )
    name = f"sturdy-{int(fire.timestamp()) // 60}"
    # Kill it in the middle of the run: after the first Job exists, before it ends.
    wait_until("the first service's Job", lambda: k.get("job", f"{name}-first"), 90)
    operator.kill()
    operator.start()
    run = finished_run(k, name)
    assert run["status"]["phase"] == "Succeeded"
    assert sorted(
        j["metadata"]["name"] for j in k.items("jobs", "-l", f"almanac.dev/run={name}")
    ) == [f"{name}-first", f"{name}-second"]
    # Killed across the next fire too: down over the minute boundary, then back.
    operator.kill()
    after = fire + timedelta(minutes=1)
    wait_until(
        "the next fire to pass while down",
        lambda: datetime.now(UTC) > after + timedelta(seconds=2),
        70,
    )
    operator.start()
    wait_until(
        "the missed fire started on return",
        lambda: k.get("sjr", f"sturdy-{int(after.timestamp()) // 60}"),
        30,
    )
    names = [r["metadata"]["name"] for r in runs_of(k, "sturdy")]
    assert len(names) == len(set(names))
    assert names.count(name) == 1


def test_a_job_that_ended_and_was_removed_while_the_operator_was_away_is_not_run_again(
    k: Kubectl, operator: Operator
) -> None:
    """api.md: each service runs once. Its Job (ttlSecondsAfterFinished: 0) ends and the
    TTL controller removes it while no operator runs: the restarted operator reads how
    it ended from the Job controller's Event, and does not create it again."""
    first = service("first", duration="3s")
    first["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] = 0
    k.apply(scheduled_job("brief", "0 0 1 1 *", services=[first, service("second")]))
    name = run_now(k, "brief")["metadata"]["name"]

    def first_running() -> bool:
        services = ((k.get("sjr", name) or {}).get("status") or {}).get("services") or []
        return {"name": "first", "phase": "Running"}.items() <= next(
            (s.items() for s in services if s["name"] == "first"), {}.items()
        )

    wait_until("the first service recorded Running", first_running, 60)
    operator.stop()
    job = f"{name}-first"
    wait_until(
        "the Job to end and be removed while the operator is away",
        lambda: not k.get("job", job) and any(e["reason"] == "Completed" for e in k.events(job)),
        60,
    )
    operator.start()
    run = finished_run(k, name)
    assert service_phases(run) == {"first": "Succeeded", "second": "Succeeded"}
    # Created once: one Job, so one Completed Event from the Job controller.
    assert [e["reason"] for e in k.events(job)].count("Completed") == 1
    assert [e["reason"] for e in k.events(job)].count("SuccessfulCreate") == 1


def test_catch_up_all_starts_a_run_for_each_fire_missed_while_down(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("backlog", "* * * * *", catchUp="All"))
    first = utc(
        wait_until(
            "nextScheduleTime",
            lambda: k.get("sj", "backlog").get("status", {}).get("nextScheduleTime"),
        )
    )
    operator.kill()  # down before its first fire, and over two more
    missed = [first + timedelta(minutes=m) for m in range(3)]
    wait_until(
        "three fires to pass while the operator is down",
        lambda: datetime.now(UTC) > missed[-1] + timedelta(seconds=2),
        200,
    )
    operator.start()
    expected = {f"backlog-{int(t.timestamp()) // 60}": t for t in missed}
    wait_until(
        "a run for each missed fire",
        lambda: expected.keys() <= {r["metadata"]["name"] for r in runs_of(k, "backlog")},
        60,
    )
    runs = {r["metadata"]["name"]: r for r in runs_of(k, "backlog")}
    for name, instant in expected.items():
        assert utc(runs[name]["spec"]["scheduledTime"]) == instant
    assert len(runs) == len({r["spec"]["scheduledTime"] for r in runs.values()})
    assert "missedSchedules" not in k.get("sj", "backlog")["status"]


def test_replace_deletes_the_active_run_for_the_new_one(k: Kubectl, operator: Operator) -> None:
    k.apply(
        scheduled_job(
            "fresh", services=[service("slow", duration="60s")], concurrencyPolicy="Replace"
        )
    )
    first = run_now(k, "fresh")["metadata"]["name"]
    wait_until(
        "the first run Running",
        lambda: (k.get("sjr", first) or {}).get("status", {}).get("phase") == "Running",
    )
    second = run_now(k, "fresh")["metadata"]["name"]
    wait_until("the replaced run gone", lambda: k.get("sjr", first) is None)
    assert [r["metadata"]["name"] for r in runs_of(k, "fresh")] == [second]
    assert "RunReplaced" in reasons(k, "fresh")


def test_history_limits_prune_the_oldest_finished_runs(k: Kubectl, operator: Operator) -> None:
    k.apply(scheduled_job("tidy", successfulRunsHistoryLimit=1, failedRunsHistoryLimit=0))
    names = [
        finished_run(k, run_now(k, "tidy")["metadata"]["name"])["metadata"]["name"]
        for _ in range(3)
    ]
    wait_until(
        "only the newest success kept",
        lambda: [r["metadata"]["name"] for r in runs_of(k, "tidy")] == names[-1:],
    )
    status = k.get("sj", "tidy")["status"]
    assert {k: v for k, v in status["lastRun"].items() if k != "scheduledTime"} == {
        "name": names[-1],
        "phase": "Succeeded",
    }
    assert "lastSuccessfulTime" in status and "active" not in status


def test_a_job_the_api_server_refuses_fails_its_service_with_the_servers_message(
    k: Kubectl, operator: Operator
) -> None:
    broken = service("broken", mandatory=True)
    del broken["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    k.apply(scheduled_job("refused", services=[broken, service("after")]))
    run = finished_run(k, run_now(k, "refused")["metadata"]["name"])
    [first, after] = run["status"]["services"]
    assert first["phase"] == "Failed" and "image" in first["message"]
    assert "refused" in first["message"]
    assert after["phase"] == "Skipped"
    assert k.items("jobs", "-l", f"almanac.dev/run={run['metadata']['name']}") == []


def test_kubectl_get_shows_the_printer_columns_of_the_contract(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("columns", timeZone="Europe/Bucharest"))
    name = finished_run(k, run_now(k, "columns")["metadata"]["name"])["metadata"]["name"]
    sj = k.run("get", "sj").stdout.splitlines()
    assert sj[0].split() == [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "NEXT",
        "LAST",
        "RESULT",
        "AGE",
    ]
    assert "Europe/Bucharest" in sj[1] and "Succeeded" in sj[1]
    # NEXT is in the future: a date-typed column would show "<invalid>" there.
    next_fire = k.get("sj", "columns")["status"]["nextScheduleTime"]
    assert next_fire in sj[1].split()
    sjr = k.run("get", "sjr").stdout.splitlines()
    assert sjr[0].split()[:4] == ["NAME", "JOB", "SCHEDULED", "PHASE"]
    assert sjr[1].split()[:2] == [name, "columns"]


def test_the_crds_refuse_what_schema_and_cel_can_with_the_api_servers_message(
    k: Kubectl, crds: Kubectl
) -> None:
    twice = scheduled_job("dup", services=[service("same"), service("same")])
    assert "service names must be unique" in k.apply_expecting_error(twice)
    bad_day = scheduled_job("badday", exclusions={"annual": ["25.12", "31.02"]})
    error = k.apply_expecting_error(bad_day)
    assert 'spec.exclusions.annual[1]: Invalid value: "31.02"' in error
    assert "is not a day of the year" in error
    none = scheduled_job("empty")
    none["spec"]["services"] = []
    assert "spec.services" in k.apply_expecting_error(none)
    long_name = scheduled_job("a" * 29)
    assert "at most 28 characters" in k.apply_expecting_error(long_name)


def test_the_crds_take_one_digit_days_and_monthly_numbers(k: Kubectl, crds: Kubectl) -> None:
    lists: dict[str, Any] = {
        "annual": ["5.1", "25.12", "1.10"],
        "monthly": [1, "2", "03", 31],
        "holiday": ["1.5.2027", "29.2.2028"],
    }
    k.apply(scheduled_job("short", exclusions=lists), calendar("short", **lists))
    assert k.get("sj", "short")["spec"]["exclusions"]["monthly"] == [1, "2", "03", 31]
    assert k.get("cal", "short")["spec"]["annual"] == ["5.1", "25.12", "1.10"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("annual", "31.2", '"31.2" is not a day of the year'),
        ("annual", "0.1", '"0.1" is not a day of the year'),
        ("monthly", 0, '"0" is not a day of the month'),
        ("monthly", 32, '"32" is not a day of the month'),
        ("monthly", "32", '"32" is not a day of the month'),
        ("holiday", "29.2.2027", '"29.2.2027" is not a date'),
    ],
)
def test_the_crds_still_refuse_what_is_not_a_day(
    k: Kubectl, crds: Kubectl, field: str, value: object, message: str
) -> None:
    for kind, path, obj in [
        ("sj", f"spec.exclusions.{field}[0]", scheduled_job("bad", exclusions={field: [value]})),
        ("cal", f"spec.{field}[0]", calendar("bad", **{field: [value]})),
    ]:
        error = k.apply_expecting_error(obj)
        assert f"{path}: Invalid value" in error, (kind, error)
        assert message in error, (kind, error)


def test_one_run_is_a_handful_of_log_lines_each_naming_its_object(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("quiet"))
    wait_until("the job's next fire", lambda: (k.get("sj", "quiet") or {}).get("status"))
    before = len(operator.log())
    name = finished_run(k, run_now(k, "quiet")["metadata"]["name"])["metadata"]["name"]
    # The last decision's line is written before its Event (on the job) is posted.
    wait_until(
        "RunSucceeded",
        lambda: any(
            e["reason"] == "RunSucceeded" and name in e["message"] for e in k.events("quiet")
        ),
    )
    lines = operator.log()[before:].splitlines()
    assert 1 <= len(lines) <= 6, "\n".join(lines)
    for line in lines:
        assert f"{k.namespace}/" in line and "quiet" in line, line
    assert not [line for line in lines if "succeeded." in line], "kopf's chatter is DEBUG"


def test_a_pod_refused_by_pod_security_shows_its_reason_in_the_run(
    k: Kubectl, restricted: str, operator: Operator
) -> None:
    """The namespace enforces the restricted level; the service's Pod (no
    securityContext) is refused, so its Job makes no Pod: the run says why."""
    k.apply(scheduled_job("psa"))
    name = run_now(k, "psa")["metadata"]["name"]

    def message() -> str | None:
        services = (k.get("sjr", name) or {}).get("status", {}).get("services") or []
        text = str(services[0].get("message") or "") if services else ""
        return text if "PodSecurity" in text else None

    text = wait_until("the refusal in the run's status", message, timeout=60)
    assert text.startswith("no Pod created yet: ") and "restricted" in text
    assert "ServicePodsRefused" in reasons(k, name)
