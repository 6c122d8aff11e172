"""One in-memory store of what the operator needs, fed by the watches.

The decisions read only from here: the hot path never LISTs. The handlers put every
watch body in, the executor puts in every body the API server answered a write with,
and a body never replaces a newer one of the same object (resourceVersions of one
object grow), so a late watch event cannot undo what we just wrote.

Indexes answer the decisions' questions directly: the runs of a job, the batch Jobs of
a run, the jobs that refer to a Calendar, the last phase of a Backfill's deleted runs.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from almanac import wire
from almanac.api.names import GROUP, LABEL_BACKFILL, LABEL_RUN, calendar_key

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


class Kind(StrEnum):
    """The kinds the store holds."""

    JOB = "ScheduledJob"
    RUN = "ScheduledJobRun"
    CALENDAR = "Calendar"
    CLUSTER_CALENDAR = "ClusterCalendar"
    BATCH_JOB = "Job"
    BACKFILL = "Backfill"


#: The kinds whose objects ScheduledJobs refer to in ``calendarRefs``.
CALENDAR_KINDS = (Kind.CALENDAR, Kind.CLUSTER_CALENDAR)


def key_of(body: Body) -> Key:
    """(namespace, name); the namespace of a cluster-scoped object (ClusterCalendar) is "".
    The namespace is interned: tens of thousands of keys share a handful of them."""
    return sys.intern(body["metadata"].get("namespace") or ""), body["metadata"]["name"]


#: Metadata no decision reads, and the largest part of many bodies: the field managers'
#: record, and kubectl's copy of the whole applied object.
_UNREAD_METADATA = ("managedFields",)
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
#: The prefix of Almanac's own labels.
ALMANAC_LABELS = f"{GROUP}/"
#: What the decisions read of a batch Job's metadata (its labels: only Almanac's).
_BATCH_JOB_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
)


def slim(kind: Kind, body: Body) -> Body:
    """What the store keeps of a body: everything a decision reads, nothing else.

    managedFields and kubectl's last-applied copy are dropped from every kind (together
    often larger than the spec); a batch Job keeps its identity, creation time, Almanac's
    labels and its status only (the decisions read its labels, creation time and
    outcome; never its Pod template, owner or the Job controller's labels: 10,000 Jobs
    held 3.6 MB of those). The body given is not changed: it may be a watch event's."""
    meta = body.get("metadata") or {}
    if kind is Kind.BATCH_JOB:
        kept = {f: meta[f] for f in _BATCH_JOB_METADATA if f in meta}
        labels = meta.get("labels") or {}
        kept["labels"] = {k: v for k, v in labels.items() if k.startswith(ALMANAC_LABELS)}
        return {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": kept,
            "status": body.get("status") or {},
        }
    annotations = meta.get("annotations") or {}
    unread = any(f in meta for f in _UNREAD_METADATA) or any(
        a in annotations for a in _UNREAD_ANNOTATIONS
    )
    if not unread:
        return body
    meta = {k: v for k, v in meta.items() if k not in _UNREAD_METADATA}
    if any(a in annotations for a in _UNREAD_ANNOTATIONS):
        meta["annotations"] = {k: v for k, v in annotations.items() if k not in _UNREAD_ANNOTATIONS}
    return {**body, "metadata": meta}


def _version(body: Body) -> int | None:
    value = body["metadata"].get("resourceVersion")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # opaque: treat as newer


#: The kinds kept as :class:`Packed` JSON: those there are thousands of.
PACKED = frozenset({Kind.JOB, Kind.RUN, Kind.BATCH_JOB})


@dataclass(frozen=True, slots=True)
class Packed:
    """A body as compact JSON, with the resourceVersion the store compares and the
    names its indexes need (so that neither needs the body decoded)."""

    data: bytes
    version: int | None
    refs: tuple[str, ...]
    """RUN: its ScheduledJob; BATCH_JOB: its run; JOB: the calendars it refers to (by
    :func:`~almanac.api.names.calendar_key`)."""

    def body(self) -> Body:
        body: Body = wire.loads(self.data)
        return body


def _pack(kind: Kind, body: Body) -> Packed:
    return Packed(wire.dumps(body), _version(body), _refs(kind, body))


def _refs(kind: Kind, body: Body) -> tuple[str, ...]:
    if kind is Kind.RUN:
        owner = (body.get("spec") or {}).get("scheduledJob")
        return (owner,) if isinstance(owner, str) and owner else ()
    if kind is Kind.BATCH_JOB:
        run = (body["metadata"].get("labels") or {}).get(LABEL_RUN)
        return (run,) if isinstance(run, str) and run else ()
    if kind is Kind.JOB:
        refs = (body.get("spec") or {}).get("calendarRefs") or []
        keys = (
            calendar_key(str(r.get("kind") or Kind.CALENDAR.value), r["name"])
            for r in refs
            if isinstance(r, dict) and isinstance(r.get("name"), str)
        )
        return tuple(dict.fromkeys(keys))
    return ()


def _calendar_index(kind: Kind, namespace: str, name: str) -> Key:
    """Where the index keeps the jobs that refer to a calendar: a Calendar under its
    namespace, a ClusterCalendar (which jobs of every namespace may name) under ""."""
    if kind is Kind.CLUSTER_CALENDAR:
        return "", calendar_key(kind.value, name)
    return namespace, name


def _file(index: dict[Key, tuple[str, ...]], where: Key, what: str, add: bool) -> None:
    """Adds a run (or batch Job) ``what`` under its parent ``where``, or takes it out
    (and an empty entry). A tuple rather than a set: a parent has a few children, most
    often one (a set of one takes 216 bytes, a tuple 48; 10,000 fires file 20,000)."""
    found = index.get(where, ())
    if add:
        if what not in found:
            index[where] = (*found, what)
        return
    rest = tuple(x for x in found if x != what)
    if rest:
        index[where] = rest
    else:
        index.pop(where, None)


def _unpack(kept: Packed | Body | None) -> Body | None:
    return kept.body() if isinstance(kept, Packed) else kept


@dataclass(frozen=True)
class Change:
    """What a put did: ``changed`` is False for an echo or an older body. ``old`` (the
    body it replaced) is decoded only when asked for."""

    changed: bool
    _old: Packed | Body | None = None

    @property
    def old(self) -> Body | None:
        return _unpack(self._old)


@dataclass
class Store:
    """Bodies by kind and key, with the indexes the decisions use."""

    _objects: dict[Kind, dict[Key, Packed | Body]] = field(
        default_factory=lambda: {kind: {} for kind in Kind}
    )
    _runs_of_job: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    _jobs_of_run: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    _jobs_of_calendar: defaultdict[Key, set[Key]] = field(default_factory=lambda: defaultdict(set))
    """A set: one calendar may be named by every job of the cluster."""
    _gone_of_backfill: defaultdict[Key, dict[str, str]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    """The last phase of each deleted run of a Backfill, by Backfill: the job's history
    limits may prune a run before its Backfill has counted its outcome."""

    # --- writes ----------------------------------------------------------------------

    def put(self, kind: Kind, body: Body) -> Change:
        """Stores body (:func:`slim`) unless the store holds the same or a newer version."""
        body = slim(kind, body)
        key = key_of(body)
        old = self._objects[kind].get(key)
        if old is not None:
            new_version = _version(body)
            old_version = old.version if isinstance(old, Packed) else _version(old)
            if new_version is not None and old_version is not None and new_version <= old_version:
                return Change(False, old)
        kept: Packed | Body = _pack(kind, body) if kind in PACKED else body
        if old is not None:
            self._index(kind, key, old, add=False)
        self._objects[kind][key] = kept
        self._index(kind, key, kept, add=True)
        return Change(True, old)

    def delete(self, kind: Kind, key: Key) -> Body | None:
        """Forgets an object (its DELETED event, or a 404 on a write)."""
        kept = self._objects[kind].pop(key, None)
        old = _unpack(kept)
        if kept is not None and old is not None:
            self._index(kind, key, kept, add=False)
            backfill = (old["metadata"].get("labels") or {}).get(LABEL_BACKFILL)
            if kind is Kind.RUN and backfill:
                phase = (old.get("status") or {}).get("phase") or "Pending"
                self._gone_of_backfill[(key[0], backfill)][key[1]] = phase
        if kind is Kind.BACKFILL:
            self._gone_of_backfill.pop(key, None)
        return old

    def forget_gone(self, backfill: Key, keep: Iterable[str]) -> None:
        """Forgets the deleted runs of a Backfill but those in ``keep``: its status has
        counted the others."""
        gone = self._gone_of_backfill.get(backfill)
        if gone is None:
            return
        kept = {name: gone[name] for name in keep if name in gone}
        if kept:
            self._gone_of_backfill[backfill] = kept
        else:
            del self._gone_of_backfill[backfill]

    def _index(self, kind: Kind, key: Key, kept: Packed | Body, *, add: bool) -> None:
        if not isinstance(kept, Packed):
            return
        namespace, name = key
        if kind is Kind.JOB:
            for ref in kept.refs:
                cluster = ref.startswith(f"{Kind.CLUSTER_CALENDAR.value}/")
                where = ("" if cluster else namespace, ref)
                if add:
                    self._jobs_of_calendar[where].add(key)
                else:
                    self._jobs_of_calendar[where].discard(key)
                    if not self._jobs_of_calendar[where]:
                        del self._jobs_of_calendar[where]
            return
        index = {Kind.RUN: self._runs_of_job, Kind.BATCH_JOB: self._jobs_of_run}.get(kind)
        if index is not None:
            for parent in kept.refs:
                _file(index, (namespace, parent), name, add)

    # --- reads -----------------------------------------------------------------------

    def get(self, kind: Kind, key: Key) -> Body | None:
        """The object (a body of the caller's own for the packed kinds)."""
        return _unpack(self._objects[kind].get(key))

    def holds(self, kind: Kind, key: Key) -> bool:
        """Whether the object is known (not deleted), without decoding its body."""
        return key in self._objects[kind]

    def keys(self, kind: Kind) -> list[Key]:
        return list(self._objects[kind])

    def runs_of(self, namespace: str, job: str) -> list[Body]:
        """The ScheduledJobRuns of a ScheduledJob."""
        names = self._runs_of_job.get((namespace, job), ())
        return [self._body(Kind.RUN, (namespace, name)) for name in sorted(names)]

    def batch_jobs_of(self, namespace: str, run: str) -> list[Body]:
        """The batch/v1 Jobs of a ScheduledJobRun."""
        names = self._jobs_of_run.get((namespace, run), ())
        return [self._body(Kind.BATCH_JOB, (namespace, name)) for name in sorted(names)]

    def _body(self, kind: Kind, key: Key) -> Body:
        body = _unpack(self._objects[kind][key])
        assert body is not None
        return body

    def gone_runs_of(self, backfill: Key) -> dict[str, str]:
        """The last phase of each deleted run of a Backfill not yet counted, by name."""
        return dict(self._gone_of_backfill.get(backfill) or {})

    def backfills_of(self, namespace: str, job: str) -> list[Key]:
        """The Backfills of a ScheduledJob."""
        return [
            (ns, name)
            for (ns, name), body in self._objects[Kind.BACKFILL].items()
            if ns == namespace
            and isinstance(body, dict)
            and (body.get("spec") or {}).get("scheduledJob") == job
        ]

    def calendars_in(self, namespace: str) -> dict[str, Body]:
        """What a job of the namespace may refer to, by
        :func:`~almanac.api.names.calendar_key`: its Calendars by name, and every
        ClusterCalendar as ``ClusterCalendar/<name>``."""
        found = {
            n: b
            for (ns, n), b in self._objects[Kind.CALENDAR].items()
            if ns == namespace and isinstance(b, dict)
        }
        for (_, name), body in self._objects[Kind.CLUSTER_CALENDAR].items():
            if isinstance(body, dict):
                found[calendar_key(Kind.CLUSTER_CALENDAR.value, name)] = body
        return found

    def jobs_referring_to(self, kind: Kind, namespace: str, calendar: str) -> Iterable[Key]:
        """ScheduledJobs whose spec.calendarRefs name the Calendar (of their namespace)
        or the ClusterCalendar (``namespace`` ""; jobs of every namespace)."""
        where = _calendar_index(kind, namespace, calendar)
        jobs: set[Key] = self._jobs_of_calendar.get(where, set())
        return sorted(jobs)

    def __len__(self) -> int:
        return sum(len(objects) for objects in self._objects.values())
