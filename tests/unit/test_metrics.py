"""The per-job metrics (issue 14: compact, rendered at scrape time): what Prometheus
reads is what prometheus_client's own Counter, Gauge and Histogram would show for the
same calls, checked against them side by side in a registry of their own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from almanac.controller import metrics


def samples(text: str, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample whose name starts with prefix, without the creation times."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(prefix) and not s.name.endswith("_created")
    }


def ours(prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(generate_latest().decode(), prefix)


@pytest.mark.parametrize("values", [[], [0.05], [0.3, 0.3, 7], [1, 1000], [0.1, 0.25, 300, 301]])
def test_a_histogram_shows_what_the_librarys_would(values: list[float]) -> None:
    job = f"h{len(values)}-{sum(values)}".replace(".", "-")
    registry = CollectorRegistry()
    library = Histogram(
        "almanac_fire_lateness_seconds",
        "x",
        ["namespace", "scheduledjob"],
        buckets=metrics._LATENESS_BUCKETS,
        registry=registry,
    )
    for value in values:
        library.labels("ns", job).observe(value)
        metrics.FIRE_LATENESS.labels("ns", job).observe(value)
    expected = samples(generate_latest(registry).decode(), "almanac_fire_lateness")
    mine = {k: v for k, v in ours("almanac_fire_lateness").items() if ("scheduledjob", job) in k[1]}
    assert mine == {k: v for k, v in expected.items() if ("scheduledjob", job) in k[1]}


def test_counters_and_gauges_show_what_the_librarys_would() -> None:
    registry = CollectorRegistry()
    runs = Counter("almanac_runs", "x", ["namespace", "scheduledjob", "result"], registry=registry)
    following = Gauge(
        "almanac_next_fire_timestamp_seconds", "x", ["namespace", "scheduledjob"], registry=registry
    )
    for result in ("Succeeded", "Failed"):
        runs.labels("ns", "cg", result)
    runs.labels("ns", "cg", "Failed").inc(2)
    following.labels("ns", "cg").set(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    metrics.track_job("ns", "cg")
    metrics.RUNS.labels("ns", "cg", "Failed").inc(2)
    metrics.set_time(metrics.NEXT_FIRE, "ns", "cg", datetime(2027, 1, 1, tzinfo=UTC))
    expected = samples(generate_latest(registry).decode(), "almanac_")
    mine = {k: v for k, v in ours("almanac_").items() if ("scheduledjob", "cg") in k[1]}
    assert {k: v for k, v in mine.items() if k[0] in {n for n, _ in expected}} == expected
    assert mine[("almanac_missed_fires_total", (("namespace", "ns"), ("scheduledjob", "cg")))] == 0


def test_a_gauge_set_to_nothing_and_a_forgotten_job_leave_no_series() -> None:
    metrics.track_job("ns", "gone")
    metrics.SERVICE_DURATION.labels("ns", "gone", "a", "Succeeded").observe(3)
    metrics.SERVICE_DURATION.labels("ns", "gone", "b", "Failed").observe(3)
    metrics.set_time(metrics.LAST_SUCCESS, "ns", "gone", datetime(2027, 1, 1, tzinfo=UTC))
    metrics.set_time(metrics.LAST_SUCCESS, "ns", "gone", None)
    left = {k for k in ours("almanac_") if ("scheduledjob", "gone") in k[1]}
    assert not any(name.startswith("almanac_last_success") for name, _ in left)
    assert any(name.startswith("almanac_service_duration") for name, _ in left)
    metrics.forget_job("ns", "gone")
    assert not any(("scheduledjob", "gone") in k[1] for k in ours("almanac_"))


def test_labels_must_match_the_family() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        metrics.RUNS.labels("ns", "j")


def test_every_family_of_a_job_shares_one_key_until_the_job_is_forgotten() -> None:
    """Nine families each kept a (namespace, name) tuple of their own per job."""
    metrics.track_job("ns-k", "shared")
    metrics.NEXT_FIRE.labels("ns-k", "shared").set(1.0)
    keys = [k for m in metrics._PER_JOB for k in m._jobs if k == ("ns-k", "shared")]
    assert len(keys) >= 5
    assert len({id(k) for k in keys}) == 1
    metrics.forget_job("ns-k", "shared")
    assert ("ns-k", "shared") not in metrics._JOB_KEYS
    assert not [k for m in metrics._PER_JOB for k in m._jobs if k == ("ns-k", "shared")]
