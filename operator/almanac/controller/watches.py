"""The operator's watches: what fills the store and tells the controller what changed.

Each collection (a kind in a namespace, see :func:`almanac.kube.collections`) is listed
once at start-up, into the store before the first decision (a job is never decided
without its Calendars, nor fired without seeing its active runs), then watched from that
list's resourceVersion: every event goes to :meth:`Controller.observe`, as it came.

Our own loop rather than kopf's event handlers: kopf spent about a third of the
operator's CPU in a burst of fires on each event (a worker task per object, a logger
and a handler invocation per event) to hand us a dict we already knew how to read, and
listed every collection a second time at start-up (10,000 more bodies decoded at once).

A watch cut (the API server restarting, a connection dropped, a timeout) is made again
from the last resourceVersion seen, after 0.5 to 3 s; a resourceVersion the API server
no longer keeps (410 Gone) lists the collection again, and what the list no longer holds
is observed as deleted: nothing removed during an outage stays in the store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from almanac.controller.controller import Controller
from almanac.controller.store import Kind, key_of
from almanac.kube import (
    API_ERRORS,
    Body,
    Collection,
    Expired,
    Kube,
    error_message,
    transient_failure,
)

log = logging.getLogger(__name__)

#: Seconds between attempts to watch again after a failure, then the last one, repeated.
BACKOFFS: Final = (0.5, 1.0, 1.0, 2.0, 2.0, 3.0)


async def fill(kube: Kube, collection: Collection, controller: Controller) -> str:
    """Lists ``collection`` into the store, deciding nothing yet (start-up); returns
    the list's resourceVersion."""
    kind = Kind(collection.kind)
    version = ""
    async for page, listed_at in kube.list_pages(collection):
        version = listed_at
        for body in page:
            controller.store.put(kind, body)
    return version


async def relist(kube: Kube, collection: Collection, controller: Controller) -> str:
    """Lists ``collection`` again after its watch expired: every object is observed (the
    store tells news from old), and every object the store holds that the list no longer
    does is observed as deleted, unless the store's copy is newer than the list (our own
    write, answered while the list was read: the watch from the list's version tells).
    Returns the list's resourceVersion."""
    kind = Kind(collection.kind)
    listed = set()
    version = ""
    async for page, listed_at in kube.list_pages(collection):
        version = listed_at
        for body in page:
            listed.add(key_of(body))
            _observe(controller, kind, "ADDED", body)
    for key in controller.store.keys(kind):
        gone = controller.store.get(kind, key)
        if key in listed or not collection.holds(key[0]) or gone is None:
            continue
        if _newer(gone, version):
            continue
        _observe(controller, kind, "DELETED", gone)
    return version


def _newer(body: Body, version: str) -> bool:
    """Whether ``body`` was written after the list at ``version`` (resourceVersions are
    opaque to clients; the API server's are etcd revisions, and where one is not a
    number the object is taken as not newer)."""
    mine = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return mine.isdigit() and version.isdigit() and int(mine) > int(version)


async def follow(kube: Kube, collection: Collection, controller: Controller, version: str) -> None:
    """Watches ``collection`` from ``version`` until cancelled (see the module's
    docstring for cuts and expiry). Never raises: a watch that stopped would leave the
    operator deciding on a store nobody updates."""
    kind = Kind(collection.kind)
    failures = 0
    current: str | None = version
    while True:
        try:
            if current is None:
                current = await relist(kube, collection, controller)
            async for event_type, body in kube.watch(collection, current):
                failures = 0
                current = (body.get("metadata") or {}).get("resourceVersion") or current
                if event_type != "BOOKMARK":
                    _observe(controller, kind, event_type, body)
            continue  # the server ended the request: watch on from where it was
        except asyncio.CancelledError:
            raise
        except Expired:
            log.debug("%s: the watch's resourceVersion expired; listing again", collection.path)
            current = None
            continue
        except API_ERRORS as error:
            delay = BACKOFFS[min(failures, len(BACKOFFS) - 1)]
            why = transient_failure(error) or error_message(error)
            log.warning("watching %s: %s; again in %g s", collection.path, why, delay)
        except Exception:  # a bug must not end the watch: logged whole, then a fresh list
            delay, current = BACKOFFS[-1], None
            log.exception("watching %s failed; listing again in %g s", collection.path, delay)
        failures += 1
        await asyncio.sleep(delay)


def _observe(controller: Controller, kind: Kind, event_type: str, body: Body) -> None:
    """Hands one event to the controller. Never raises: one object that cannot be
    handled must not stop the watch of all the others."""
    try:
        controller.observe(kind, event_type, body)
    except Exception:
        raw = body.get("metadata")
        metadata = raw if isinstance(raw, dict) else {}
        log.exception(
            "%s %s/%s: skipped a watch event that could not be handled",
            kind.value,
            metadata.get("namespace"),
            metadata.get("name"),
        )
