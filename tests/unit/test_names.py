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


RERUN_NAMES = [
    ("a scheduled run", "nightly-29983710", "nightly-29983710-r1"),
    ("a rerun, one deeper", "nightly-29983710-r1", "nightly-29983710-r2"),
    ("a manual run: its own lineage, not the fire's -r1", "nightly-29983710-m372",
     "nightly-29983710-n372"),
    ("a manual run's rerun, one deeper", "nightly-29983710-n372", "nightly-29983710-o372"),
    ("r is left to the fires' reruns", "nightly-29983710-q372", "nightly-29983710-s372"),
    ("a manual run named to the second (before tenths)", "j-0-m30", "j-0-n30"),
    ("a job named like a rerun", "x-r1-29983710", "x-r1-29983710-r1"),
    ("a job named like a manual run", "x-m372-29983710", "x-m372-29983710-r1"),
    ("the deepest rerun of a fire", "nightly-29983710-r999", None),
    ("the deepest rerun of a manual run", "nightly-29983710-z372", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("parent", "child"), [r[1:] for r in RERUN_NAMES], ids=[r[0] for r in RERUN_NAMES]
)
def test_a_rerun_is_named_after_its_parent(parent: str, child: str | None) -> None:
    assert rerun_name(parent) == child


def test_the_reruns_of_every_run_of_a_minute_have_names_of_their_own() -> None:
    """api.md "Reruns and manual runs": a rerun is a new run with ``spec.parentRun`` set
    to its parent, so no two lineages may share a name: the fire of a minute and every
    run-now of it, each rerun as deep as its name can tell, within the suffix budget."""
    fire = run_name("nightly", FIRE)
    run_nows = {manual_run_name("nightly", FIRE.replace(second=s, microsecond=t * 100_000))
                for s in range(60) for t in range(10)}  # fmt: skip
    names: list[str] = []
    for origin in [fire, *sorted(run_nows)]:
        name: str | None = origin
        for _ in range(1001):  # a lineage ends: no name past the suffix budget
            if name is None:
                break
            names.append(name)
            name = rerun_name(name)
        assert name is None
    assert len(names) == len(set(names))
    assert len(names) == 1 + 999 + len(run_nows) * 13
    assert max(len(n) - len(fire) for n in names) == 5  # the CRD's budget
