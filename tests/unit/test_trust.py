"""Table tests of which runs the operator executes: only those it created."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from almanac.rules.jobs import run_body
from almanac.rules.trust import untrusted
from tests.integration.objects import scheduled_job, service
from tests.unit.test_service_layer import T0

Body = dict[str, Any]


def job() -> Body:
    body = scheduled_job("j", services=[service("a"), service("b")])
    body["metadata"].update(uid="uid-j", namespace="ns")
    return body


def run(**changes: Any) -> Body:
    body = run_body(job(), "j-1", T0, "Schedule", job()["spec"]["services"])
    for path, value in changes.items():
        target = body
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        target[last] = value
    return body


PARENT = run(**{"metadata.name": "j-0", "status": {"phase": "Failed"}})
RERUN = run(
    **{
        "spec.trigger": "Rerun",
        "spec.parentRun": "j-0",
        "spec.services": [service("b")],
    }
)

CASES: list[tuple[str, Body, Body | None, str | None]] = [
    ("the operator's own run", run(), job(), None),
    (
        "any run with a status (written by the operator)",
        run(status={"phase": "Running"}),
        None,
        None,
    ),
    ("a run for a job that does not exist", run(), None, "does not exist"),
    ("no ownerReference", run(**{"metadata.ownerReferences": []}), job(), "not owned"),
    (
        "an ownerReference to another UID",
        run(
            **{
                "metadata.ownerReferences": [
                    {**run()["metadata"]["ownerReferences"][0], "uid": "x"}
                ]
            }
        ),
        job(),
        "not owned",
    ),
    ("services not the job's", run(**{"spec.services": [service("evil")]}), job(), "services"),
    ("a rerun of failed services of its parent", RERUN, job(), None),
    (
        "a rerun with a service its parent did not have",
        run(**{"spec.trigger": "Rerun", "spec.parentRun": "j-0", "spec.services": [service("x")]}),
        job(),
        "not its parent's",
    ),
    (
        "a rerun of a parent that does not exist",
        run(**{"spec.trigger": "Rerun", "spec.parentRun": "gone"}),
        job(),
        "parent run gone",
    ),
]


@pytest.mark.parametrize(("run", "job", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_untrusted(run: Body, job: Body | None, why: str | None) -> None:
    runs = {"j-0": copy.deepcopy(PARENT)}
    got = untrusted(run, job, runs.get)
    if why is None:
        assert got is None
    else:
        assert got is not None and why in got
