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
from pathlib import Path
from typing import Any, Literal, cast

import kopf

from almanac.api import names as api
from almanac.controller import metrics
from almanac.controller.admission import Review, review_calendar, review_scheduled_job
from almanac.controller.controller import Controller
from almanac.controller.settings import Settings
from almanac.controller.store import Kind
from almanac.kube import Kube
from almanac.notifications.recipients import AllowList
from almanac.notifications.smtp import SmtpSettings
from almanac.times import timestamp

log = logging.getLogger(__name__)

#: What `almanac run` configured, read when the operator starts.
config = Settings()


#: With leader election: whether this replica still holds the Lease (see leader.py).
fence: Callable[[], bool] | None = None
#: With leader election: closes the fence and gives the Lease up (a clean stop).
resign: Callable[[], Awaitable[None]] | None = None


def configure(settings: Settings, leader: Callable[[], bool] | None = None) -> None:
    """Takes the settings (and the leadership fence); registers the admission handlers
    only with a webhook port (kopf refuses to run admission handlers without a webhook
    server)."""
    global config, fence
    config, fence = settings, leader
    if settings.webhook_port:
        for plural, handler_id, handler in WEBHOOKS:
            kopf.on.validate(
                api.GROUP,
                api.VERSION,
                plural,
                id=handler_id,
                operations=list(WEBHOOK_OPERATIONS),
            )(handler)


@kopf.on.startup()
async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    # Events are ours to post, with reasons users can filter on; kopf's would duplicate.
    settings.posting.enabled = False
    settings.peering.standalone = True
    if config.webhook_port:
        cert_dir = Path(config.webhook_cert_dir)
        settings.admission.server = kopf.WebhookServer(
            addr="0.0.0.0",
            port=config.webhook_port,
            certfile=str(cert_dir / "tls.crt"),
            pkeyfile=str(cert_dir / "tls.key"),
        )
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    # A watch cut by an API server or etcd outage reconnects within seconds of its return
    # (kopf's default back-off grows to 21 s between attempts).
    settings.networking.error_backoffs = [0.5, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]
    settings.watching.connect_timeout = 5
    smtp = SmtpSettings.from_env()  # SmtpConfigError stops the operator: fix the config
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
    kube = await Kube.connect()
    kube.fence = fence
    controller = Controller(kube, config, smtp=smtp)
    # Before the first decision the store holds every Calendar, run and Job: a job is
    # never scheduled without its exclusions, nor fired without seeing its active runs.
    namespaces = config.namespaces
    for namespace in namespaces or ("",):
        for kind, bodies in await kube.list_all(namespace):
            for body in bodies:
                controller.store.put(Kind(kind), body)
    controller.decide_all()
    memo.controller = controller
    memo.tasks = [
        asyncio.create_task(controller.timers.run()),
        asyncio.create_task(controller.resync()),
    ]
    metrics.TIMER_TICK.set_function(
        lambda: controller.timers.last_tick.timestamp() if controller.timers.last_tick else 0
    )
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
    if controller is not None:
        controller.observe(kind, event.get("type"), cast(dict[str, Any], event["object"]))


@kopf.on.event(api.GROUP, api.VERSION, api.SCHEDULED_JOBS, id="scheduledjob")
async def scheduled_job(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.JOB, event, memo)


@kopf.on.event(api.GROUP, api.VERSION, api.CALENDARS, id="calendar")
async def calendar(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.CALENDAR, event, memo)


@kopf.on.event(api.GROUP, api.VERSION, api.RUNS, id="run")
async def run(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.RUN, event, memo)


@kopf.on.event("batch", "v1", "jobs", labels={api.LABEL_RUN: kopf.PRESENT}, id="job")
async def job(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(Kind.BATCH_JOB, event, memo)


def _admit(review: Review, warnings: list[str]) -> None:
    warnings.extend(review.warnings)
    if not review.allowed:
        raise kopf.AdmissionError("\n".join(review.errors), code=422)


def mail_domains(smtp: SmtpSettings | None) -> AllowList | None:
    """The recipient allow-list in force: with SMTP, its own (set or by default); without,
    the configured one if any (None: the webhook checks the form of addresses only)."""
    return smtp.recipient_domains if smtp is not None else config.mail_allowed_domains


def validate_scheduled_job(
    body: kopf.Body, warnings: list[str], memo: kopf.Memo, **kwargs: Any
) -> None:
    """Refuses what the schedule engine rejects, with `almanac next`'s messages, and
    recipients the operator does not mail (kopf passes the stored object of an UPDATE
    as ``old``)."""
    controller: Controller = memo.controller
    old = kwargs.get("old")
    namespace = body.get("metadata", {}).get("namespace", "")
    calendars = controller.store.calendars_in(namespace)
    _admit(
        review_scheduled_job(
            dict(body),
            calendars,
            default_time_zone=config.default_timezone,
            now=controller.clock(),
            mail_domains=mail_domains(controller.smtp),
            old=dict(old) if old else None,
        ),
        warnings,
    )


def validate_calendar(body: kopf.Body, warnings: list[str], **_: Any) -> None:
    _admit(review_calendar(dict(body)), warnings)


#: (resource, handler id, handler): kopf serves each at "/<handler id>", which is the
#: path the chart's ValidatingWebhookConfiguration calls (a test keeps them in step).
WEBHOOKS = (
    (api.SCHEDULED_JOBS, "validate-scheduledjob", validate_scheduled_job),
    (api.CALENDARS, "validate-calendar", validate_calendar),
)
WEBHOOK_OPERATIONS: tuple[Literal["CREATE", "UPDATE"], ...] = ("CREATE", "UPDATE")


@kopf.on.probe(id="timers")
def timers(memo: kopf.Memo, **_: Any) -> str:
    """The liveness probe says when the timer queue last ticked."""
    controller: Controller | None = getattr(memo, "controller", None)
    tick = controller.timers.last_tick if controller else None
    return timestamp(tick) or "not started"
