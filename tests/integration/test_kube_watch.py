"""Kube.watch and Kube.list_pages against the real API server: a watch starts where its
list ended and sees every change after it, an object larger than aiohttp's line reader
(64 KB) arrives whole, and a resourceVersion the API server no longer keeps is Expired
(what controller/watches.py lists again on)."""

from __future__ import annotations

import asyncio
from typing import Any

from almanac.api.names import API_VERSION
from almanac.kube import Body, Collection, Expired, Kube
from tests.kube import Kubectl

BIG = 200_000  # bytes of one ConfigMap's data: one watch line over three times 64 KB


def config_map(name: str, size: int = 10) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"x": "a" * size},
    }


async def _changes(
    k: Kubectl, collection: Collection, after: Any
) -> tuple[list[Body], list[tuple[str, Body]]]:
    """The collection's list, then the changes ``after`` (a function of kubectl, run
    once the watch is open) makes, until two have come."""
    kube, _ = await Kube.connect_kubeconfig(str(k.kubeconfig))
    try:
        version = ""
        listed: list[Body] = []
        async for page, listed_at in kube.list_pages(collection):
            listed.extend(page)
            version = listed_at
        seen: list[tuple[str, Body]] = []

        async def watch() -> None:
            async for event_type, body in kube.watch(collection, version):
                seen.append((event_type, body))
                if len(seen) == 2:
                    return

        # The changes may be made before the watch request reaches the API server: it
        # starts from the list's version, so it sees them all the same.
        watching = asyncio.create_task(watch())
        await asyncio.to_thread(after)
        await asyncio.wait_for(watching, timeout=30)
        return listed, seen
    finally:
        await kube.close()


def test_a_watch_starts_where_its_list_ended_and_a_large_object_arrives_whole(k: Kubectl) -> None:
    k.apply(config_map("before"))
    collection = Collection("ConfigMap", "v1", "configmaps", k.namespace or "")

    def changes() -> None:
        k.apply(config_map("big", BIG))
        k.run("delete", "configmap", "before")

    listed, seen = asyncio.run(_changes(k, collection, changes))
    assert "before" in [b["metadata"]["name"] for b in listed]
    assert [(t, b["metadata"]["name"]) for t, b in seen] == [
        ("ADDED", "big"),
        ("DELETED", "before"),
    ]
    assert seen[0][1]["data"]["x"] == "a" * BIG


def test_a_version_the_api_server_no_longer_keeps_is_expired(k: Kubectl, crds: Kubectl) -> None:
    # The API server's watch cache of a CRD's objects starts when the CRD is created,
    # long after resourceVersion 1: it answers "too old resource version", 410 Gone.
    collection = Collection("ScheduledJob", API_VERSION, "scheduledjobs", k.namespace or "")

    async def watch_from_the_start() -> str:
        kube, _ = await Kube.connect_kubeconfig(str(k.kubeconfig))
        try:
            async for event_type, _ in kube.watch(collection, "1"):
                return event_type
            return "ended"
        except Expired as expired:
            return f"expired: {expired}"
        finally:
            await kube.close()

    assert asyncio.run(watch_from_the_start()) == f"expired: {collection.path}"
