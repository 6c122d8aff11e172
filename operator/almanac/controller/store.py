"""One in-memory store of what the operator needs, fed by the watches.

The decisions read only from here: the hot path never LISTs. The handlers put every
watch body in, the executor puts in every body the API server answered a write with,
and a body never replaces a newer one of the same object (resourceVersions of one
object grow), so a late watch event cannot undo what we just wrote.

Indexes answer the decisions' questions directly: the runs of a job, the batch Jobs of
a run, the jobs that refer to a Calendar.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from almanac.api.names import LABEL_RUN, calendar_key

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


class Kind(StrEnum):
    """The kinds the store holds."""

    JOB = "ScheduledJob"
    RUN = "ScheduledJobRun"
    CALENDAR = "Calendar"
    CLUSTER_CALENDAR = "ClusterCalendar"
    BATCH_JOB = "Job"


#: The kinds whose objects ScheduledJobs refer to in ``calendarRefs``.
CALENDAR_KINDS = (Kind.CALENDAR, Kind.CLUSTER_CALENDAR)


def key_of(body: Body) -> Key:
    """(namespace, name); the namespace of a cluster-scoped object (ClusterCalendar) is ""."""
    return body["metadata"].get("namespace") or "", body["metadata"]["name"]


#: Metadata no decision reads, and the largest part of many bodies: the field managers'
#: record, and kubectl's copy of the whole applied object.
_UNREAD_METADATA = ("managedFields",)
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(kind: Kind, body: Body) -> Body:
    """What the store keeps of a body: everything a decision reads, nothing else.

    managedFields and kubectl's last-applied copy are dropped from every kind (together
    often larger than the spec); a batch Job keeps its metadata and status only (the
    decisions read its labels, creation time and outcome, never its Pod template). The
    body given is not changed: it may be a watch event's, shared with kopf."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    unread = any(f in meta for f in _UNREAD_METADATA) or any(
        a in annotations for a in _UNREAD_ANNOTATIONS
    )
    if not unread and kind is not Kind.BATCH_JOB:
        return body
    meta = {k: v for k, v in meta.items() if k not in _UNREAD_METADATA}
    if any(a in annotations for a in _UNREAD_ANNOTATIONS):
        meta["annotations"] = {k: v for k, v in annotations.items() if k not in _UNREAD_ANNOTATIONS}
    if kind is Kind.BATCH_JOB:
        return {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": meta,
            "status": body.get("status") or {},
        }
    return {**body, "metadata": meta}


def _version(body: Body) -> int | None:
    value = body["metadata"].get("resourceVersion")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # opaque: treat as newer


@dataclass(frozen=True)
class Change:
    """What a put did: ``changed`` is False for an echo or an older body."""

    changed: bool
    old: Body | None = None


@dataclass
class Store:
    """Bodies by kind and key, with the indexes the decisions use."""

    _objects: dict[Kind, dict[Key, Body]] = field(
        default_factory=lambda: {kind: {} for kind in Kind}
    )
    _runs_of_job: defaultdict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))
    _jobs_of_run: defaultdict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))

    # --- writes ----------------------------------------------------------------------

    def put(self, kind: Kind, body: Body) -> Change:
        """Stores body (:func:`slim`) unless the store holds the same or a newer version."""
        body = slim(kind, body)
        key = key_of(body)
        old = self._objects[kind].get(key)
        if old is not None:
            new_version, old_version = _version(body), _version(old)
            if new_version is not None and old_version is not None and new_version <= old_version:
                return Change(False, old)
        self._objects[kind][key] = body
        self._index(kind, key, body, add=True)
        return Change(True, old)

    def delete(self, kind: Kind, key: Key) -> Body | None:
        """Forgets an object (its DELETED event, or a 404 on a write)."""
        old = self._objects[kind].pop(key, None)
        if old is not None:
            self._index(kind, key, old, add=False)
        return old

    def _index(self, kind: Kind, key: Key, body: Body, *, add: bool) -> None:
        namespace, name = key
        if kind is Kind.RUN:
            owner = (body.get("spec") or {}).get("scheduledJob")
            index, parent = self._runs_of_job, owner
        elif kind is Kind.BATCH_JOB:
            index, parent = self._jobs_of_run, (body["metadata"].get("labels") or {}).get(LABEL_RUN)
        else:
            return
        if not parent:
            return
        if add:
            index[(namespace, parent)].add(name)
        else:
            index[(namespace, parent)].discard(name)
            if not index[(namespace, parent)]:
                del index[(namespace, parent)]

    # --- reads -----------------------------------------------------------------------

    def get(self, kind: Kind, key: Key) -> Body | None:
        return self._objects[kind].get(key)

    def keys(self, kind: Kind) -> list[Key]:
        return list(self._objects[kind])

    def runs_of(self, namespace: str, job: str) -> list[Body]:
        """The ScheduledJobRuns of a ScheduledJob."""
        runs = self._objects[Kind.RUN]
        names = self._runs_of_job.get((namespace, job), ())
        return [runs[(namespace, name)] for name in sorted(names)]

    def batch_jobs_of(self, namespace: str, run: str) -> list[Body]:
        """The batch/v1 Jobs of a ScheduledJobRun."""
        jobs = self._objects[Kind.BATCH_JOB]
        names = self._jobs_of_run.get((namespace, run), ())
        return [jobs[(namespace, name)] for name in sorted(names)]

    def calendars_in(self, namespace: str) -> dict[str, Body]:
        """What a job of the namespace may refer to, by
        :func:`~almanac.api.names.calendar_key`: its Calendars by name, and every
        ClusterCalendar as ``ClusterCalendar/<name>``."""
        found = {n: b for (ns, n), b in self._objects[Kind.CALENDAR].items() if ns == namespace}
        for (_, name), body in self._objects[Kind.CLUSTER_CALENDAR].items():
            found[calendar_key(Kind.CLUSTER_CALENDAR.value, name)] = body
        return found

    def jobs_referring_to(self, kind: Kind, namespace: str, calendar: str) -> Iterable[Key]:
        """ScheduledJobs whose spec.calendarRefs name the Calendar (of their namespace)
        or the ClusterCalendar (``namespace`` ""; jobs of every namespace)."""
        for (ns, name), body in self._objects[Kind.JOB].items():
            if kind is Kind.CALENDAR and ns != namespace:
                continue
            refs = (body.get("spec") or {}).get("calendarRefs") or []
            if any(
                isinstance(r, dict)
                and r.get("name") == calendar
                and (r.get("kind") or Kind.CALENDAR.value) == kind.value
                for r in refs
            ):
                yield ns, name

    def __len__(self) -> int:
        return sum(len(objects) for objects in self._objects.values())
