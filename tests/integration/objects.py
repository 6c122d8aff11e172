"""Builders for the objects integration tests apply, as a user would write them."""

from __future__ import annotations

from typing import Any

API_VERSION = "almanac.dev/v1alpha1"


def service(
    name: str,
    *,
    mandatory: bool = False,
    async_: bool = False,
    exit_code: int | None = None,
    duration: str | None = None,
) -> dict[str, Any]:
    """A service whose Pod the kwok stages end as asked (hack/kwok/job-pods.yaml)."""
    annotations = {}
    if exit_code is not None:
        annotations["sim.almanac.dev/exit-code"] = str(exit_code)
    if duration is not None:
        annotations["sim.almanac.dev/duration"] = duration
    return {
        "name": name,
        "mandatory": mandatory,
        "async": async_,
        "jobTemplate": {
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "busybox",
                                "command": ["sh", "-c", f"echo {name}"],
                            }
                        ],
                    },
                },
            }
        },
    }


def scheduled_job(
    name: str,
    schedule: str = "0 0 1 1 *",
    *,
    services: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A ScheduledJob; by default yearly (it fires in tests only when asked to)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ScheduledJob",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "services": services or [service("main")], **spec},
    }


def calendar(name: str, **lists: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Calendar",
        "metadata": {"name": name},
        "spec": lists,
    }


def scheduled_job_run(
    name: str,
    job: str,
    *,
    scheduled_time: str = "2027-01-01T00:00:00Z",
    services: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ScheduledJobRun of ``job``, as the operator would write one: tests make one by
    hand to see the webhook or the API server refuse it, or to stand in for an operator
    that is not running."""
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = labels
    return {
        "apiVersion": API_VERSION,
        "kind": "ScheduledJobRun",
        "metadata": metadata,
        "spec": {
            "scheduledJob": job,
            "scheduledTime": scheduled_time,
            "services": services or [service("main")],
        },
    }


def first_rerun_of_a_run_now(name: str) -> str:
    """The name docs/api.md gives the first rerun of the run-now ``name``
    (``<job>-<minutes>-m354`` is rerun as ``<job>-<minutes>-n354``)."""
    base, _, suffix = name.rpartition("-")
    assert suffix.startswith("m"), f"{name} is not a run-now's name"
    return f"{base}-n{suffix[1:]}"
