"""Thin kopf handlers: each passes what it saw to the controller, and nothing more.

Only low-level event handlers are used: they see every change (spec, status,
annotations, deletion), need no diff-base annotation and put no finalizer on the
objects, so deleting a ScheduledJob never hangs while the operator is down, and the
garbage collector removes its runs and Jobs through owner references.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import kopf

from almanac.api import names as api
from almanac.controller import metrics
from almanac.controller.controller import Controller
from almanac.controller.settings import Settings
from almanac.controller.store import Kind
from almanac.kube import LIST_PAGE, Kube
from almanac.notifications.smtp import SmtpConfigError, SmtpSettings
from almanac.times import timestamp

log = logging.getLogger(__name__)

#: What `almanac run` configured, read when the operator starts.
config = Settings()


#: With leader election: whether this replica still holds the Lease (see leader.py).
fence: Callable[[], bool] | None = None
#: With leader election: closes the fence and gives the Lease up (a clean stop).
resign: Callable[[], Awaitable[None]] | None = None
#: Called when the operator serves (the runner takes the stop signals from kopf then).
on_serving: Callable[[], None] | None = None


def configure(settings: Settings, leader: Callable[[], bool] | None = None) -> None:
    """Takes the settings (and the leadership fence)."""
    global config, fence
    config, fence = settings, leader


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf keeps a "diff base" for its change handlers (on.create, on.update): on every
    watch event it deep-copies the body to compare with the last handled state. Almanac
    has event handlers only (the store is its memory), so that copy is pure cost: 7 %
    of the operator's CPU at a fire of 300 jobs, in a profile. Nothing is kept."""

    def build(self, *, body: Any, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: Any) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


@kopf.on.startup()
async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    # Events are ours to post, with reasons users can filter on; kopf's would duplicate.
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    # A watch cut by an API server or etcd outage reconnects within seconds of its return
    # (kopf's default back-off grows to 21 s between attempts).
    settings.networking.error_backoffs = [0.5, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]
    settings.watching.connect_timeout = 5
    # Memory at a start with many objects (issue 14: 10,000 ScheduledJobs, RSS set by the
    # start-up's peak, which the allocator keeps): kopf's own LIST in pages, as ours, and
    # its per-object workers gone 0.5 s after their last event instead of 5 s: each idle
    # worker holds its last event's body, so 10,000 of them held 10,000 decoded bodies
    # for as long as the start's status patches kept echoing (peak 310 -> 231 MB).
    settings.watching.chunk_size = LIST_PAGE
    settings.queueing.idle_timeout = 0.5
    try:
        smtp = SmtpSettings.from_env()
    except SmtpConfigError as error:
        # Not retried: the process exits 1 and gives its Lease up first (kopf's own stop
        # takes 5 s more), so the Deployment shows the message in a crash loop and another
        # replica leads, instead of one that holds the Lease and does nothing.
        if resign is not None:
            await resign()
        raise kopf.PermanentError(f"{error}: fix the operator's configuration") from None
    if smtp is None:
        log.info("e-mail notifications are off: ALMANAC_SMTP_HOST is not set")
    else:
        if config.mail_allowed_domains is not None:
            smtp = dataclasses.replace(smtp, allowed_domains=config.mail_allowed_domains)
        allowed = smtp.recipient_domains
        log.log(
            logging.WARNING if allowed.anything else logging.INFO,
            "e-mail recipients allowed: %s (%s); at most %s per namespace%s",
            allowed,
            allowed.source,
            config.mail_rate_limit,
            " (any domain: the relay mails wherever a namespace user asks)"
            if allowed.anything
            else "",
        )
    if config.notify_allowed_hosts is None:
        log.info("webhook notifications are off: ALMANAC_NOTIFY_ALLOWED_HOSTS is empty")
    else:
        log.info(
            "webhook hosts allowed: %s (%s)",
            config.notify_allowed_hosts,
            config.notify_allowed_hosts.source,
        )
    kube = await Kube.connect()
    kube.fence = fence
    controller = Controller(kube, config, smtp=smtp)
    # Before the first decision the store holds every Calendar (ClusterCalendars too), run
    # and Job: a job is never scheduled without its exclusions, nor fired without seeing
    # its active runs.
    namespaces = config.namespaces
    for namespace in namespaces or ("",):
        async for kind, bodies in kube.list_all(namespace):  # a page at a time
            for body in bodies:
                controller.store.put(Kind(kind), body)
    for body in await kube.list_cluster_calendars():
        controller.store.put(Kind.CLUSTER_CALENDAR, body)
    controller.decide_all()
    memo.controller = controller
    memo.tasks = [
        asyncio.create_task(controller.timers.run()),
        asyncio.create_task(controller.resync()),
    ]
    metrics.TIMER_TICK.set_function(
        lambda: controller.timers.last_tick.timestamp() if controller.timers.last_tick else 0
    )
    if on_serving is not None:
        on_serving()
    log.info("almanac operator serving %s", ", ".join(namespaces) or "all namespaces")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if resign is not None:  # before kopf's own shutdown, which takes seconds
        await resign()
    for task in memo.tasks:
        task.cancel()
    await memo.controller.kube.close()


def _observe(kind: Kind, event: kopf.RawEvent, memo: kopf.Memo) -> None:
    """Hands the object, as the API sent it (a plain dict), to the controller. Never
    raises: kopf does not retry event handlers, so the controller's queue does."""
    controller: Controller | None = getattr(memo, "controller", None)
    if controller is None:
        return
    body = cast(dict[str, Any], event.get("object") or {})
    try:
        controller.observe(kind, event.get("type"), body)
    except Exception:  # one object that cannot be handled must not stop the others
        raw = body.get("metadata")
        metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
        log.exception(
            "%s %s/%s: skipped a watch event that could not be handled",
            kind.value,
            metadata.get("namespace"),
            metadata.get("name"),
        )


@kopf.on.event(api.GROUP, api.VERSION, api.SCHEDULED_JOBS, id="scheduledjob")
async def scheduled_job(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.JOB, event, memo)


@kopf.on.event(api.GROUP, api.VERSION, api.CALENDARS, id="calendar")
async def calendar(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.CALENDAR, event, memo)


@kopf.on.event(api.GROUP, api.VERSION, api.CLUSTER_CALENDARS, id="clustercalendar")
async def cluster_calendar(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.CLUSTER_CALENDAR, event, memo)


@kopf.on.event(api.GROUP, api.VERSION, api.RUNS, id="run")
async def run(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.RUN, event, memo)


@kopf.on.event(api.GROUP, api.VERSION, api.BACKFILLS, id="backfill")
async def backfill(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.BACKFILL, event, memo)


@kopf.on.event("batch", "v1", "jobs", labels={api.LABEL_RUN: kopf.PRESENT}, id="job")
async def job(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.BATCH_JOB, event, memo)


@kopf.on.probe(id="timers")
def timers(memo: kopf.Memo, **_: Any) -> str:
    """The liveness probe says when the timer queue last ticked."""
    controller: Controller | None = getattr(memo, "controller", None)
    tick = controller.timers.last_tick if controller else None
    return timestamp(tick) or "not started"
