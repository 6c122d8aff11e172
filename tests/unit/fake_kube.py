"""A small fake of the one API gateway (:class:`almanac.kube.Kube`) for the service layer.

It keeps objects by (plural, namespace, name), gives each write a growing
resourceVersion, honours resourceVersion preconditions (409 as :class:`Conflict`, as the
API server does), answers creates of existing names with :class:`Exists`, refuses Jobs
whose service is listed in ``refuse_jobs``, and keeps Events by name (a repeat of a
named Event is not stored twice). It records every write in ``writes`` so that tests can
count them. Like kopf's ``k8s_mocked`` or the CronJob controller's injection.go: the
integration suite runs the real API server; this runs the decisions in milliseconds.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

from almanac.kube import Conflict, Created, Exists, NotLeader, Refused

Body = dict[str, Any]

KINDS = {
    "scheduledjobs": "ScheduledJob",
    "scheduledjobruns": "ScheduledJobRun",
    "calendars": "Calendar",
    "clustercalendars": "ClusterCalendar",
    "backfills": "Backfill",
    "jobs": "Job",
}


def _merge(target: Body, patch: Body) -> None:
    """A JSON merge patch (RFC 7386), as the API server applies the operator's status
    patches: objects merge field by field at every depth, None removes a field, any
    other value (a list too) replaces it."""
    for field, value in patch.items():
        if value is None:
            target.pop(field, None)
        elif isinstance(value, dict) and isinstance(target.get(field), dict):
            _merge(target[field], value)
        else:
            target[field] = copy.deepcopy(value)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Body] = {}
        self.events: dict[str, Body] = {}
        self.foreign_events: list[Body] = []
        """core/v1 Events other controllers posted (the Job controller's), in API form."""
        self.writes: list[tuple[str, str, str]] = []  # (verb, plural, name)
        self.lists = 0  # LISTs asked for (none on the hot path)
        self.page = 500  # objects per page of list_pages (the operator's LIST_PAGE)
        self.refuse_jobs: dict[str, str] = {}  # service -> message
        self.fail_next: list[Exception] = []  # raised by the next writes, in order
        self.fence: Callable[[], bool] | None = None
        self._rv = itertools.count(100)
        self._uid = itertools.count(1)
        self.allowed: set[tuple[str, str, str, str]] = set()  # see may()
        self.ca_bundles: dict[str, bytes] = {}  # caBundle by webhook configuration

    # --- helpers for tests ---------------------------------------------------------------

    def put(self, plural: str, body: Body) -> Body:
        """Stores an object as a user's apply would; returns the stored body."""
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", "ns")
        meta.setdefault("uid", f"uid-{next(self._uid)}")
        meta.setdefault("creationTimestamp", "2027-01-01T00:00:00Z")
        meta["generation"] = meta.get("generation", 0) + 1
        meta["resourceVersion"] = str(next(self._rv))
        body.setdefault("kind", KINDS[plural])
        self.objects[(plural, meta["namespace"], meta["name"])] = body
        return copy.deepcopy(body)

    def stored(self, plural: str, name: str, namespace: str = "ns") -> Body | None:
        return copy.deepcopy(self.objects.get((plural, namespace, name)))

    def names(self, plural: str) -> list[str]:
        return sorted(n for (p, _, n) in self.objects if p == plural)

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events.values()]

    def _write(self, verb: str, plural: str, name: str) -> None:
        if self.fence is not None and not self.fence():
            raise NotLeader("fenced")
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.writes.append((verb, plural, name))

    def _bump(self, body: Body) -> Body:
        body["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(body)

    # --- the gateway ------------------------------------------------------------------

    async def get(self, plural: str, namespace: str, name: str) -> Body | None:
        return self.stored(plural, name, namespace)

    async def create(self, plural: str, namespace: str, body: Body) -> Any:
        self._write("create", plural, body["metadata"]["name"])
        key = (plural, namespace, body["metadata"]["name"])
        if key in self.objects:
            return Exists()
        return Created(self.put(plural, body))

    async def create_job(self, namespace: str, body: Body) -> Any:
        service = body["metadata"]["labels"]["almanac.dev/service"]
        if service in self.refuse_jobs:
            self._write("refused", "jobs", body["metadata"]["name"])
            return Refused(self.refuse_jobs[service])
        return await self.create("jobs", namespace, body)

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        self._write("delete", plural, name)
        self.objects.pop((plural, namespace, name), None)

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Body,
        resource_version: str | None = None,
    ) -> Any:
        self._write("status", plural, name)
        body = self.objects.get((plural, namespace, name))
        if body is None:
            return None
        if resource_version and resource_version != body["metadata"]["resourceVersion"]:
            return Conflict()
        _merge(body.setdefault("status", {}), status)
        return self._bump(body)

    async def patch_annotations(
        self,
        plural: str,
        namespace: str,
        name: str,
        annotations: dict[str, str | None],
        resource_version: str | None = None,
    ) -> Body | None:
        self._write("annotate", plural, name)
        body = self.objects.get((plural, namespace, name))
        if body is None:
            return None
        if resource_version and resource_version != body["metadata"]["resourceVersion"]:
            return None
        current = body["metadata"].setdefault("annotations", {})
        for field, value in annotations.items():
            if value is None:
                current.pop(field, None)
            else:
                current[field] = value
        return self._bump(body)

    async def event(
        self, obj: Body, type_: str, reason: str, message: str, key: str | None = None
    ) -> None:
        self._write("event", "events", reason)
        meta = obj["metadata"]
        seed = f"{meta.get('uid')}/{reason}/{key if key is not None else len(self.events)}"
        name = f"{meta['name']}.{hashlib.sha256(seed.encode()).hexdigest()[:16]}"
        self.events.setdefault(
            name, {"reason": reason, "type": type_, "message": message, "on": meta["name"]}
        )

    async def list_events(self, namespace: str, name: str, kind: str) -> list[Body]:
        """The Events others posted on ``kind``/``name`` (``foreign_events``), as the
        field selector on involvedObject reads them; a LIST, counted."""
        self.lists += 1
        return [
            copy.deepcopy(e)
            for e in self.foreign_events
            if e["involvedObject"] == {**e["involvedObject"], "kind": kind, "name": name}
            and e["metadata"]["namespace"] == namespace
        ]

    async def list_objects(self, plural: str, namespace: str, selector: str = "") -> list[Body]:
        self.lists += 1
        return [
            copy.deepcopy(b)
            for (p, ns, _), b in self.objects.items()
            if (p, ns) == (plural, namespace)
        ]

    async def list_pages(self, collection: Any) -> AsyncIterator[tuple[list[Body], str]]:
        """A :class:`~almanac.kube.Collection`'s objects (its namespace's, or every
        namespace's for ""), ``page`` at a time in namespace and name order, as the API
        server pages a LIST."""
        self.lists += 1
        found = sorted(
            (ns, name, b)
            for (p, ns, name), b in self.objects.items()
            if p == collection.plural and collection.namespace in ("", ns)
        )
        for start in range(0, len(found), self.page):
            yield [copy.deepcopy(b) for (_, _, b) in found[start : start + self.page]], "1"

    async def list_cluster_calendars(self) -> list[Body]:
        """The ClusterCalendars, stored with the namespace ""."""
        return await self.list_objects("clustercalendars", "")

    # --- what the webhook asks ----------------------------------------------------------

    async def may(
        self, user: dict[str, Any], verb: str, group: str, resource: str, namespace: str
    ) -> bool:
        """``allowed``: (user name, verb, group/resource, namespace) that RBAC grants."""
        return (user.get("username"), verb, f"{group}/{resource}", namespace) in self.allowed

    async def get_secret(self, namespace: str, name: str) -> Body | None:
        return copy.deepcopy(self.objects.get(("secrets", namespace, name)))

    async def put_secret(
        self, namespace: str, name: str, data: dict[str, str], found: Body | None
    ) -> bool:
        current = self.objects.get(("secrets", namespace, name))
        if (found is None) != (current is None) or (
            current is not None
            and found is not None
            and current["metadata"]["resourceVersion"] != found["metadata"]["resourceVersion"]
        ):
            return False
        self.writes.append(("put", "secrets", name))
        self.objects[("secrets", namespace, name)] = {
            "metadata": {"name": name, "resourceVersion": str(next(self._rv))},
            "data": dict(data),
        }
        return True

    async def set_ca_bundle(self, configuration: str, ca: bytes) -> bool:
        changed = self.ca_bundles.get(configuration) != ca
        self.ca_bundles[configuration] = ca
        return changed
