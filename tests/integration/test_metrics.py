"""/metrics of a running operator, read after it fired and finished a few runs."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from hack.ports import free_port
from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.integration.test_operator import finished_run, run_now, utc
from tests.kube import Kubectl, wait_until


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_metrics_count_runs_by_result_and_show_each_jobs_next_fire(
    k: Kubectl, start_operator: Callable[..., Operator]
) -> None:
    port = free_port()
    start_operator("--metrics-port", str(port))
    ns = k.namespace
    k.apply(
        scheduled_job("good", "0 6 * * *", timeZone="UTC"),
        scheduled_job("bad", services=[service("x", exit_code=1)]),
    )
    for _ in range(2):
        finished_run(k, run_now(k, "good")["metadata"]["name"])
    finished_run(k, run_now(k, "bad")["metadata"]["name"])
    next_fire = utc(
        wait_until(
            "nextScheduleTime", lambda: k.get("sj", "good")["status"].get("nextScheduleTime")
        )
    )

    def runs(job: str, result: str) -> float | None:
        key = ("almanac_runs_total", (("namespace", ns), ("result", result), ("scheduledjob", job)))
        return scrape(port).get(key)

    # The counters move just after the run's final phase is written (and its Events
    # posted), so wait for them rather than for the phases.
    wait_until(
        "the counters", lambda: runs("good", "Succeeded") == 2.0 and runs("bad", "Failed") == 1.0
    )
    samples = scrape(port)
    # A job's counters exist at 0 from the start, so increase() sees its first failure.
    assert runs("good", "Failed") == 0.0
    labels = (("namespace", ns), ("scheduledjob", "good"))
    assert samples[("almanac_missed_fires_total", labels)] == 0.0
    assert samples[("almanac_notification_failures_total", labels)] == 0.0
    assert samples[("almanac_next_fire_timestamp_seconds", labels)] == next_fire.timestamp()
    assert samples[("almanac_last_success_timestamp_seconds", labels)] > 0
    assert samples[("almanac_run_duration_seconds_count", labels)] == 2.0
    assert samples[("almanac_timer_last_tick_timestamp_seconds", ())] > 0
    service_count = (
        "almanac_service_duration_seconds_count",
        (("namespace", ns), ("result", "Failed"), ("scheduledjob", "bad"), ("service", "x")),
    )
    assert samples[service_count] == 1.0
    # Decisions by kind: the fires' jobs and runs were decided, nothing failed, and the
    # kinds nothing happened to are there at 0.
    decisions = {
        kind: samples[("almanac_decisions_total", (("kind", kind),))]
        for kind in ("ScheduledJob", "ScheduledJobRun", "Backfill", "Calendar", "ClusterCalendar")
    }
    assert decisions["ScheduledJob"] >= 3 and decisions["ScheduledJobRun"] >= 3  # 3 runs
    assert decisions["Backfill"] == 0.0
    failures = {
        k: v for (name, k), v in samples.items() if name == "almanac_decision_failures_total"
    }
    assert failures and set(failures.values()) == {0.0}

    k.run("delete", "sj", "good")
    wait_until(
        "the deleted job's series to go",
        lambda: not any(dict(labels).get("scheduledjob") == "good" for _, labels in scrape(port)),
    )
    assert runs("bad", "Failed") == 1.0
