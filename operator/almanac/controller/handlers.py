"""Thin kopf handlers: the operator's life (start-up, clean-up, liveness) and nothing more.

kopf runs the process: its start-up fills the store and starts the watches
(:mod:`almanac.controller.watches`, our own loop, not kopf's event handlers), the timer
queue and the resync; its clean-up stops them; its liveness endpoint reports the timer
queue. No object gets a finalizer or an annotation from kopf, so deleting a ScheduledJob
never hangs while the operator is down, and the garbage collector removes its runs and
Jobs through owner references.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from almanac.controller import metrics, watches
from almanac.controller.controller import Controller
from almanac.controller.settings import Settings
from almanac.kube import CLUSTER_CALENDAR_COLLECTION, Kube, collections
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


@kopf.on.startup()
async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    # Events are ours to post, with reasons users can filter on; kopf's would duplicate.
    settings.posting.enabled = False
    settings.peering.standalone = True
    # kopf watches nothing (the watches are ours): no API discovery, no watch of the
    # CustomResourceDefinitions and namespaces for resources it would never serve.
    settings.scanning.disabled = True
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
    # its active runs. Each collection's watch starts where its list ended.
    namespaces = config.namespaces
    listed = [c for namespace in namespaces or ("",) for c in collections(namespace)]
    listed.append(CLUSTER_CALENDAR_COLLECTION)
    versions = [await watches.fill(kube, collection, controller) for collection in listed]
    controller.decide_all()
    memo.controller = controller
    memo.tasks = [
        asyncio.create_task(controller.timers.run()),
        asyncio.create_task(controller.resync()),
        *(
            asyncio.create_task(watches.follow(kube, collection, controller, version))
            for collection, version in zip(listed, versions, strict=True)
        ),
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
    memo.controller.queue.stop()
    await memo.controller.kube.close()


@kopf.on.probe(id="timers")
def timers(memo: kopf.Memo, **_: Any) -> str:
    """The liveness probe says when the timer queue last ticked."""
    controller: Controller | None = getattr(memo, "controller", None)
    tick = controller.timers.last_tick if controller else None
    return timestamp(tick) or "not started"
