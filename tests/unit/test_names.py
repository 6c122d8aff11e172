"""Names derived from what things are: the lock against doing a thing twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from almanac.api.names import manual_run_name, rerun_name, run_name

FIRE = datetime(
    2027, 1, 4, 0, 30, tzinfo=UTC
)  # unix minute 29983710 (date -u -d "2027-01-04 00:30" +%s, divided by 60)


def test_a_scheduled_run_is_named_after_its_job_and_unix_minute() -> None:
    assert run_name("nightly", FIRE) == "nightly-29983710"


@pytest.mark.parametrize(
    ("now", "name"),
    [
        (FIRE.replace(second=37, microsecond=250_000), "nightly-29983710-m372"),
        (FIRE.replace(second=37, microsecond=940_000), "nightly-29983710-m379"),
        (FIRE.replace(second=5), "nightly-29983710-m050"),
    ],
    ids=["37.25 s", "37.94 s: same second, another name", "5 s"],
)
def test_a_manual_run_is_named_to_the_tenth_of_a_second(now: datetime, name: str) -> None:
    assert manual_run_name("nightly", now) == name
    assert len(name) - len(run_name("nightly", now)) <= 5  # the CRD's budget


@pytest.mark.parametrize(
    ("parent", "child"),
    [
        ("nightly-29983710", "nightly-29983710-r1"),
        ("nightly-29983710-r1", "nightly-29983710-r2"),
        ("nightly-29983710-m372", "nightly-29983710-r1"),
        ("x-r1-29983710", "x-r1-29983710-r1"),
    ],
    ids=["a scheduled run", "a rerun, one deeper", "a manual run", "a job named like a rerun"],
)
def test_a_rerun_is_named_after_its_parent(parent: str, child: str) -> None:
    assert rerun_name(parent) == child
