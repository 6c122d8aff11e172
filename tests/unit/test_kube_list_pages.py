"""The LISTs in pages (Kube.list_pages over kube.collections): every object of every page,
in order, one page at a time, each request carrying ``limit`` and the previous page's
``continue``, each page with the list's resourceVersion (where the watch starts)."""

from __future__ import annotations

import asyncio
from typing import Any

from almanac.kube import LIST_PAGE, Kube, collections


class PagedKube(Kube):
    """A Kube whose requests are answered from ``pages``: path -> the pages of its LIST."""

    def __init__(self, pages: dict[str, list[list[str]]]) -> None:
        self.pages = pages
        self.asked: list[tuple[str, dict[str, str]]] = []

    async def _json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        query = dict(kwargs.get("query") or [])
        self.asked.append((path, query))
        pages = self.pages.get(path, [[]])
        index = int(query.get("continue", "0"))
        token = str(index + 1) if index + 1 < len(pages) else ""
        items = [{"metadata": {"name": n}} for n in pages[index]]
        return {"metadata": {"continue": token, "resourceVersion": "77"}, "items": items}


def listed(kube: Kube, namespace: str) -> list[tuple[str, list[str]]]:
    async def collect() -> list[tuple[str, list[str]]]:
        return [
            (bodies[0]["kind"] if bodies else c.kind, [b["metadata"]["name"] for b in bodies])
            for c in collections(namespace)
            async for bodies, version in kube.list_pages(c)
            if version == "77"
        ]

    return asyncio.run(collect())


def test_every_page_of_every_kind_is_yielded_in_order_with_its_kind() -> None:
    jobs = "/apis/almanac.dev/v1alpha1/namespaces/ns/scheduledjobs"
    batch = "/apis/batch/v1/namespaces/ns/jobs"
    kube = PagedKube({jobs: [["a", "b"], ["c"], ["d"]], batch: [["j1"], ["j2"]]})
    assert listed(kube, "ns") == [
        ("ScheduledJob", ["a", "b"]),
        ("ScheduledJob", ["c"]),
        ("ScheduledJob", ["d"]),
        ("Calendar", []),
        ("ScheduledJobRun", []),
        ("Backfill", []),
        ("Job", ["j1"]),
        ("Job", ["j2"]),
    ]
    asked = [(p, q) for p, q in kube.asked if p == jobs]
    assert [q.get("continue") for _, q in asked] == [None, "1", "2"]
    assert all(q["limit"] == str(LIST_PAGE) for _, q in kube.asked)
    assert all(q["labelSelector"] == "almanac.dev/run" for p, q in kube.asked if p == batch)


def test_all_namespaces_are_listed_without_a_namespace_in_the_path() -> None:
    kube = PagedKube({"/apis/almanac.dev/v1alpha1/scheduledjobs": [["a"]]})
    assert listed(kube, "")[0] == ("ScheduledJob", ["a"])
    assert kube.asked[-1][0] == "/apis/batch/v1/jobs"
