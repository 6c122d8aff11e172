"""What the store keeps of a body (issue 14: memory): what the decisions read, no more."""

from __future__ import annotations

import copy
from typing import Any

from almanac.controller.store import Kind, Packed, Store, slim

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def body(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "resourceVersion": "7",
            "labels": {"almanac.dev/run": "r"},
            "annotations": {LAST_APPLIED: "{...the whole object...}", "team": "ops"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}},
        "status": {"active": 1},
        **extra,
    }


def test_no_kind_keeps_managed_fields_or_kubectls_applied_copy() -> None:
    for kind in Kind:
        kept = slim(kind, body(kind.value))
        assert "managedFields" not in kept["metadata"], kind
        assert LAST_APPLIED not in (kept["metadata"].get("annotations") or {}), kind
        assert kept["metadata"]["labels"] == {"almanac.dev/run": "r"}, kind
        assert kept["status"] == {"active": 1}, kind
        if kind is not Kind.BATCH_JOB:
            assert kept["metadata"]["annotations"] == {"team": "ops"}, kind


def test_a_batch_job_keeps_metadata_and_status_only_and_the_rest_keep_their_spec() -> None:
    assert "spec" not in slim(Kind.BATCH_JOB, body("Job"))
    for kind in (Kind.JOB, Kind.RUN, Kind.CALENDAR):
        assert slim(kind, body(kind.value))["spec"] == body(kind.value)["spec"], kind


def test_a_batch_job_keeps_its_identity_and_almanacs_labels_only() -> None:
    """The Job controller's labels, the owner and the annotations are not read."""
    job = body("Job")
    job["metadata"].update(
        uid="u-1",
        creationTimestamp="2027-01-04T09:01:00Z",
        generation=1,
        ownerReferences=[{"kind": "ScheduledJobRun", "name": "r", "uid": "u-0"}],
    )
    job["metadata"]["labels"].update(
        {"almanac.dev/service": "a", "job-name": "a", "batch.kubernetes.io/controller-uid": "u-1"}
    )
    assert slim(Kind.BATCH_JOB, job)["metadata"] == {
        "name": "a",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "7",
        "creationTimestamp": "2027-01-04T09:01:00Z",
        "labels": {"almanac.dev/run": "r", "almanac.dev/service": "a"},
    }


def test_the_body_given_is_not_changed_and_the_store_holds_the_slim_one() -> None:
    given = body("Job")
    before = copy.deepcopy(given)
    store = Store()
    store.put(Kind.BATCH_JOB, given)
    assert given == before, "a watch event's body is kopf's too"
    assert store.get(Kind.BATCH_JOB, ("ns", "a")) == slim(Kind.BATCH_JOB, before)
    assert store.batch_jobs_of("ns", "r") == [slim(Kind.BATCH_JOB, before)]


def test_a_body_with_nothing_to_drop_is_kept_as_it_is() -> None:
    plain = body("ScheduledJob")
    del plain["metadata"]["managedFields"]
    del plain["metadata"]["annotations"][LAST_APPLIED]
    assert slim(Kind.JOB, plain) is plain


def job_body(name: str, version: int, *calendars: str) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)},
        "spec": {"calendarRefs": [{"name": c} for c in calendars]},
    }


def test_the_many_kinds_are_kept_as_json_and_each_read_gets_its_own_body() -> None:
    store = Store()
    store.put(Kind.JOB, job_body("j", 1, "bank"))
    kept = store._objects[Kind.JOB][("ns", "j")]
    assert isinstance(kept, Packed) and kept.version == 1 and kept.refs == ("bank",)
    first = store.get(Kind.JOB, ("ns", "j"))
    assert first == job_body("j", 1, "bank")
    assert first is not None
    first["spec"]["calendarRefs"].append({"name": "changed by a reader"})
    assert store.get(Kind.JOB, ("ns", "j")) == job_body("j", 1, "bank")
    calendar = {**body("Calendar"), "spec": {"holiday": ["24.12.2027"]}}
    store.put(Kind.CALENDAR, calendar)
    assert not isinstance(store._objects[Kind.CALENDAR][("ns", "a")], Packed)


def test_an_echo_is_no_change_and_a_newer_body_replaces_the_old_one() -> None:
    store = Store()
    assert store.put(Kind.JOB, job_body("j", 5, "a")).changed
    echo = store.put(Kind.JOB, job_body("j", 5, "a"))
    assert not echo.changed and echo.old == job_body("j", 5, "a")
    assert not store.put(Kind.JOB, job_body("j", 4, "b")).changed  # older: ignored
    newer = store.put(Kind.JOB, job_body("j", 6, "b"))
    assert newer.changed and newer.old == job_body("j", 5, "a")
    assert store.get(Kind.JOB, ("ns", "j")) == job_body("j", 6, "b")


def test_the_calendar_index_follows_each_jobs_references() -> None:
    store = Store()
    store.put(Kind.JOB, job_body("x", 1, "bank", "acme"))
    store.put(Kind.JOB, job_body("y", 1, "bank"))
    assert list(store.jobs_referring_to(Kind.CALENDAR, "ns", "bank")) == [("ns", "x"), ("ns", "y")]
    store.put(Kind.JOB, job_body("x", 2, "acme"))  # x no longer refers to bank
    assert list(store.jobs_referring_to(Kind.CALENDAR, "ns", "bank")) == [("ns", "y")]
    assert list(store.jobs_referring_to(Kind.CALENDAR, "ns", "acme")) == [("ns", "x")]
    assert list(store.jobs_referring_to(Kind.CALENDAR, "other", "acme")) == []
    store.delete(Kind.JOB, ("ns", "x"))
    assert list(store.jobs_referring_to(Kind.CALENDAR, "ns", "acme")) == []


def test_a_cluster_calendar_is_indexed_for_the_jobs_of_every_namespace() -> None:
    store = Store()
    for namespace in ("a", "b"):
        body = job_body("j", 1)
        body["metadata"]["namespace"] = namespace
        body["spec"]["calendarRefs"] = [{"kind": "ClusterCalendar", "name": "ro"}, {"name": "ro"}]
        store.put(Kind.JOB, body)
    everywhere = store.jobs_referring_to(Kind.CLUSTER_CALENDAR, "", "ro")
    assert list(everywhere) == [("a", "j"), ("b", "j")]
    assert list(store.jobs_referring_to(Kind.CALENDAR, "a", "ro")) == [("a", "j")]


def test_keys_share_their_namespace_and_a_parent_files_its_children_in_a_tuple() -> None:
    """Tens of thousands of keys, a handful of namespaces; most parents have one child."""
    store = Store()
    for name in ("a", "b"):
        job = body("Job")
        job["metadata"]["name"] = name
        job["metadata"]["namespace"] = "".join(["n", "s"])  # a string of its own
        store.put(Kind.BATCH_JOB, job)
    first, second = store.keys(Kind.BATCH_JOB)
    assert first[0] is second[0]
    assert store._jobs_of_run[("ns", "r")] == ("a", "b")
    store.delete(Kind.BATCH_JOB, ("ns", "a"))
    assert store._jobs_of_run[("ns", "r")] == ("b",)
    store.delete(Kind.BATCH_JOB, ("ns", "b"))
    assert ("ns", "r") not in store._jobs_of_run
