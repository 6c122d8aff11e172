"""The watch loop (controller/watches.py) over a scripted API: where each watch starts
again after a bookmark, the server's end of a request, a cut, a 410 Gone (as an ERROR
event or as the answer) and a bug; what a list after expiry reports as deleted, and
only within its own collection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from almanac.controller import watches
from almanac.controller.controller import Controller
from almanac.controller.store import Kind, Store, key_of
from almanac.kube import Collection, Expired, Kube

Body = dict[str, Any]
JOBS_IN_NS = Collection("ScheduledJob", "almanac.dev/v1alpha1", "scheduledjobs", "ns")


def job(name: str, version: int, namespace: str = "ns") -> Body:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(version)},
    }


def event(type_: str, body: Body) -> dict[str, Any]:
    return {"type": type_, "object": body}


class ScriptedKube:
    """Answers each watch with the next item of ``script`` (a list of events, or an
    exception raised after them) and each list with ``listed``; records where every
    watch started. Once the script is done, ``done`` is set and the next watch waits."""

    def __init__(self, script: list[Any], listed: list[Body], version: str = "50") -> None:
        self.script = script
        self.listed = listed
        self.list_version = version
        self.watched_from: list[str] = []
        self.lists = 0
        self.done = asyncio.Event()

    async def list_pages(self, collection: Collection) -> AsyncIterator[tuple[list[Body], str]]:
        self.lists += 1
        yield self.listed, self.list_version

    async def watch(self, collection: Collection, version: str) -> AsyncIterator[tuple[str, Body]]:
        self.watched_from.append(version)
        if not self.script:
            self.done.set()
            await asyncio.Event().wait()
        step = self.script.pop(0)
        events, failure = (step, None) if isinstance(step, list) else (step[0], step[1])
        for each in events:
            yield each["type"], each["object"]
        if failure is not None:
            raise failure


class Recorder:
    """The controller as the watch sees it: a store, and every event observed."""

    def __init__(self, *bodies: Body, fail_on: str = "") -> None:
        self.store = Store()
        for body in bodies:
            self.store.put(Kind.JOB, body)
        self.seen: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def observe(self, kind: Kind, event_type: str, body: Body) -> None:
        self.seen.append(
            (event_type, f"{body['metadata']['namespace']}/{body['metadata']['name']}")
        )
        if body["metadata"]["name"] == self.fail_on:
            raise KeyError("a bug")
        if event_type == "DELETED":
            self.store.delete(kind, key_of(body))
        else:
            self.store.put(kind, body)


def follow(kube: ScriptedKube, controller: Recorder, collection: Collection = JOBS_IN_NS) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(
            watches.follow(cast(Kube, kube), collection, cast(Controller, controller), "10")
        )
        await asyncio.wait_for(kube.done.wait(), timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watches, "BACKOFFS", (0.0,))


def test_each_watch_starts_from_the_last_version_seen_bookmarks_included() -> None:
    kube = ScriptedKube(
        [
            [
                event("ADDED", job("a", 11)),
                event("BOOKMARK", {"metadata": {"resourceVersion": "15"}}),
            ],
            ([event("MODIFIED", job("a", 16))], aiohttp.ClientConnectionError("cut")),
            [],
        ],
        listed=[],
    )
    controller = Recorder()
    follow(kube, controller)
    assert kube.watched_from == ["10", "15", "16", "16"]
    assert controller.seen == [("ADDED", "ns/a"), ("MODIFIED", "ns/a")]
    assert kube.lists == 0


@pytest.mark.parametrize(
    "expiry",
    [
        ([event("BOOKMARK", {"metadata": {"resourceVersion": "20"}})], Expired("...")),
        ([], Expired("/apis/almanac.dev/v1alpha1/namespaces/ns/scheduledjobs")),
    ],
    ids=["after events", "at once"],
)
def test_an_expired_watch_lists_again_and_what_is_gone_is_deleted_in_its_namespace_only(
    expiry: tuple[list[Any], Exception | None],
) -> None:
    kept, gone, elsewhere = job("kept", 3), job("gone", 4), job("other", 5, namespace="ns2")
    ours = job("ours", 61)  # our own write, answered after the list's snapshot
    kube = ScriptedKube([expiry], listed=[job("kept", 3), job("new", 40)], version="60")
    controller = Recorder(kept, gone, elsewhere, ours)
    follow(kube, controller)
    assert kube.lists == 1
    assert kube.watched_from == ["10", "60"]
    assert sorted(controller.seen) == [
        ("ADDED", "ns/kept"),
        ("ADDED", "ns/new"),
        ("DELETED", "ns/gone"),
    ]
    assert sorted(controller.store.keys(Kind.JOB)) == [
        ("ns", "kept"),
        ("ns", "new"),
        ("ns", "ours"),
        ("ns2", "other"),
    ]


def test_another_api_error_is_retried_from_the_same_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = b'{"kind": "Status", "code": 403, "message": "scheduledjobs is forbidden"}'
    kube = ScriptedKube([([event("ADDED", job("a", 12))], forbidden)], listed=[])
    follow(kube, Recorder())
    assert kube.watched_from == ["10", "12"]
    assert "scheduledjobs is forbidden" in caplog.text


def test_an_event_that_breaks_its_handling_does_not_stop_the_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = ScriptedKube(
        [[event("ADDED", job("bad", 11)), event("ADDED", job("good", 12))]], listed=[]
    )
    controller = Recorder(fail_on="bad")
    follow(kube, controller)
    assert controller.seen == [("ADDED", "ns/bad"), ("ADDED", "ns/good")]
    assert kube.watched_from == ["10", "12"]
    assert "ns/bad: skipped a watch event that could not be handled" in caplog.text


def test_a_bug_in_the_stream_is_logged_whole_and_the_collection_listed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = ScriptedKube([([], ValueError("Expecting value: line 1"))], listed=[job("a", 1)])
    controller = Recorder()
    follow(kube, controller)
    assert kube.lists == 1 and kube.watched_from == ["10", "50"]
    assert controller.seen == [("ADDED", "ns/a")]
    assert "Traceback" in caplog.text and "listing again" in caplog.text
