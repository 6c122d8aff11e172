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
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import kopf

from almanac.api import names as api
from almanac.controller import metrics
from almanac.controller.admission import (
    RUN_CREATE_REFUSAL,
    Review,
    jobs_permission_refusal,
    needs_jobs_permission,
    review_calendar,
    review_scheduled_job,
)
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
#: Called when the operator serves (the runner takes the stop signals from kopf then).
on_serving: Callable[[], None] | None = None


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
    if config.webhook_port:  # who we are, so that the webhook admits our own run creates
        try:
            controller.identity = await kube.whoami()
        except Exception as error:
            log.warning("could not learn the operator's user name (%s): runs are refused", error)
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


async def validate_scheduled_job(
    body: kopf.Body, warnings: list[str], memo: kopf.Memo, **kwargs: Any
) -> None:
    """Refuses what the schedule engine rejects, with `almanac next`'s messages, a user
    who may not create the Jobs it would run, and recipients the operator does not mail
    (kopf passes the stored object of an UPDATE as ``old``)."""
    controller: Controller = memo.controller
    await _check_jobs_permission(controller, "ScheduledJob", body, kwargs)
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


async def validate_run(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Only the operator creates runs; a rerun needs the permission to create Jobs."""
    controller: Controller = memo.controller
    if kwargs["operation"] == "CREATE" and not _is_operator(controller, kwargs["userinfo"]):
        raise kopf.AdmissionError(RUN_CREATE_REFUSAL, code=403)
    await _check_jobs_permission(controller, "ScheduledJobRun", body, kwargs)


def validate_calendar(body: kopf.Body, warnings: list[str], **_: Any) -> None:
    _admit(review_calendar(dict(body)), warnings)


def _is_operator(controller: Controller, userinfo: Mapping[str, Any]) -> bool:
    return controller.identity is not None and userinfo.get("username") == controller.identity


async def _check_jobs_permission(
    controller: Controller, kind: str, new: kopf.Body, request: dict[str, Any]
) -> None:
    """``request``: the admission handler's other arguments (operation, old, userinfo)."""
    userinfo: Mapping[str, Any] = request["userinfo"]
    old = request.get("old")
    if _is_operator(controller, userinfo) or not needs_jobs_permission(
        kind, request["operation"], dict(old) if old is not None else None, dict(new)
    ):
        return
    namespace = new.get("metadata", {}).get("namespace", "")
    try:
        allowed = await controller.kube.may(userinfo, "create", "batch", "jobs", namespace)
    except Exception as error:  # fail closed, and say why
        raise kopf.AdmissionError(
            f"could not check whether the user may create Jobs ({error}); try again", code=503
        ) from error
    if not allowed:
        raise kopf.AdmissionError(jobs_permission_refusal(userinfo, namespace), code=403)


#: (resource, handler id, handler): kopf serves each at "/<handler id>", which is the
#: path the chart's ValidatingWebhookConfiguration calls (a test keeps them in step).
WEBHOOKS = (
    (api.SCHEDULED_JOBS, "validate-scheduledjob", validate_scheduled_job),
    (api.CALENDARS, "validate-calendar", validate_calendar),
    (api.RUNS, "validate-scheduledjobrun", validate_run),
)
WEBHOOK_OPERATIONS: tuple[Literal["CREATE", "UPDATE"], ...] = ("CREATE", "UPDATE")


@kopf.on.probe(id="timers")
def timers(memo: kopf.Memo, **_: Any) -> str:
    """The liveness probe says when the timer queue last ticked."""
    controller: Controller | None = getattr(memo, "controller", None)
    tick = controller.timers.last_tick if controller else None
    return timestamp(tick) or "not started"
