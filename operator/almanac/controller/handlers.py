"""Thin kopf handlers: each passes what it saw to the controller, and nothing more.

Only low-level event handlers are used: they see every change (spec, status,
annotations, deletion), need no diff-base annotation and put no finalizer on the
objects, so deleting a ScheduledJob never hangs while the operator is down, and the
garbage collector removes its runs and Jobs through owner references.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal, cast

import kopf

from almanac import kube as k
from almanac.api import names as api
from almanac.controller import metrics
from almanac.controller.admission import Review, review_calendar, review_scheduled_job
from almanac.controller.controller import Controller
from almanac.controller.settings import Settings
from almanac.kube import Kube
from almanac.notifications.email import SmtpSettings

log = logging.getLogger(__name__)

#: What `almanac run` configured, read when the operator starts.
config = Settings()


def configure(settings: Settings) -> None:
    """Takes the settings; registers the admission handlers only with a webhook port
    (kopf refuses to run admission handlers without a webhook server)."""
    global config
    config = settings
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
    smtp = SmtpSettings.from_env()  # SmtpConfigError stops the operator: fix the config
    if smtp is None:
        log.info("e-mail notifications are off: ALMANAC_SMTP_HOST is not set")
    kube = await Kube.connect()
    controller = Controller(kube, config, smtp=smtp)
    # Calendars first: a job must never be scheduled without the exclusions it refers to.
    namespaces = controller.settings.namespaces
    for namespace in namespaces or ("",):
        for body in await _list_calendars(kube, namespace):
            controller.calendars[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
    memo.controller = controller
    memo.timer_task = asyncio.create_task(controller.timers.run())
    metrics.TIMER_TICK.set_function(
        lambda: controller.timers.last_tick.timestamp() if controller.timers.last_tick else 0
    )
    log.info("almanac operator serving %s", ", ".join(namespaces) or "all namespaces")


async def _list_calendars(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    if namespace:
        return await kube.list_objects(api.CALENDARS, namespace)
    result = await kube.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.CALENDARS)
    items: list[dict[str, Any]] = result["items"]
    return items


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.timer_task.cancel()
    await memo.controller.kube.close()


def _body(event: kopf.RawEvent) -> dict[str, Any]:
    """The object as the API sent it: a plain dict, not kopf's live view."""
    return cast(dict[str, Any], event["object"])


@kopf.on.event(api.GROUP, api.VERSION, api.SCHEDULED_JOBS, id="scheduledjob")
async def scheduled_job(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.scheduled_job_event(event.get("type"), _body(event))


@kopf.on.event(api.GROUP, api.VERSION, api.CALENDARS, id="calendar")
async def calendar(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.calendar_event(event.get("type"), _body(event))


@kopf.on.event(api.GROUP, api.VERSION, api.RUNS, id="run")
async def run(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.run_event(event.get("type"), _body(event))


@kopf.on.event("batch", "v1", "jobs", labels={api.LABEL_RUN: kopf.PRESENT}, id="job")
async def job(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") != "DELETED":
        await memo.controller.batch_job_event(_body(event))


def _admit(review: Review, warnings: list[str]) -> None:
    warnings.extend(review.warnings)
    if not review.allowed:
        raise kopf.AdmissionError("\n".join(review.errors), code=422)


def validate_scheduled_job(body: kopf.Body, warnings: list[str], memo: kopf.Memo, **_: Any) -> None:
    """Refuses what the schedule engine rejects, with `almanac next`'s messages."""
    controller: Controller = memo.controller
    namespace = body.get("metadata", {}).get("namespace", "")
    calendars = {name: cal for (ns, name), cal in controller.calendars.items() if ns == namespace}
    _admit(
        review_scheduled_job(
            dict(body), calendars, default_time_zone=config.default_timezone, now=controller.clock()
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
    return k.timestamp(tick) or "not started"
