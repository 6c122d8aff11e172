"""E-mail delivery of a finished run's notification: claimed, sent, recorded.

A run's ``status.notification`` says whether a mail is due
(:mod:`almanac.notifications.state` decides from it alone). Before sending, the delivery
*claims* the attempt: it writes ``attempts + 1`` and ``lastAttemptTime`` with the run's
resourceVersion as a precondition. Of two deliveries of one run (one replica racing
itself, or a frozen old leader and the new one) only one claim succeeds; the other sees
the claim and waits the back-off. The result is then written over the claim, again only
if the run still holds that claim. Sending happens in a task of its own: SMTP never
holds up firing.

A run's notifications are *channels* (:class:`Channel`), each with its own state in the
run's status and each delivered by the same steps: the e-mails ``notification`` (the
outcome, when the run ends) and ``lateNotification`` (when it becomes Late,
:mod:`almanac.rules.deadlines`), and one POST per webhook of the job for each, item
``i`` of ``webhookNotifications`` and ``lateWebhookNotifications`` standing for
``spec.notifications.webhooks[i]``. They are claimed, sent and recorded independently:
one never waits for, nor resends, another. A webhook's URL is read at each attempt,
inline or from its Secret (``urlSecretRef``, in the run's namespace), and never shown
beyond ``scheme://host``.

Each namespace may have at most so many e-mails (webhooks are not counted) sent per hour
(:class:`~almanac.notifications.ratelimit.MailRateLimiter`, counted when a message is
about to go to the server). One over the limit is not attempted: the run's notification
stays Pending with a message saying why (once, with a ``NotificationRateLimited``
Event), and is considered again when the namespace is under the limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, cast

from almanac.api import names as api
from almanac.api.names import CONDITION_LATE, trigger_of
from almanac.controller import metrics
from almanac.controller.settings import Settings
from almanac.controller.store import Body, Key, Kind, Store
from almanac.controller.timers import TimerQueue
from almanac.controller.workqueue import WorkQueue
from almanac.kube import Conflict, Kube, error_message
from almanac.notifications.message import LateReport, RunReport, ServiceReport, Trigger
from almanac.notifications.ratelimit import MailRateLimiter
from almanac.notifications.smtp import DeliveryResult, SmtpSettings
from almanac.notifications.state import (
    NotificationStatus,
    Send,
    Wait,
    plan_notification,
    rate_limited,
    resolve_recipients,
    send_notification,
    send_webhook,
)
from almanac.notifications.webhook import WebhookSettings
from almanac.rules.deadlines import status_when_late
from almanac.rules.policy import (
    LATE_NOTIFICATION,
    LATE_WEBHOOK_NOTIFICATIONS,
    NOTIFICATION,
    WEBHOOK_NOTIFICATIONS,
)
from almanac.rules.trust import of_an_earlier_job
from almanac.times import parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channel:
    """One notification of a run: what it tells (the outcome, or lateness), how (an
    e-mail, or a POST to ``spec.notifications.webhooks[webhook]``) and where its state
    is: the status field ``field``, or item ``webhook`` of that list."""

    field: str
    webhook: int | None = None

    @property
    def late(self) -> bool:
        return self.field in (LATE_NOTIFICATION, LATE_WEBHOOK_NOTIFICATIONS)

    @property
    def name(self) -> str:
        """``notification``, ``webhookNotifications[1]``: for timers, Events and logs."""
        return self.field if self.webhook is None else f"{self.field}[{self.webhook}]"

    def read(self, run: Body) -> Body | None:
        """Its state as the run's status has it (None: nothing to deliver)."""
        raw = (run.get("status") or {}).get(self.field)
        if self.webhook is None:
            return raw if isinstance(raw, dict) else None
        items = raw if isinstance(raw, list) else []
        item = items[self.webhook] if self.webhook < len(items) else None
        return item if isinstance(item, dict) else None

    def patch(self, run: Body, new: NotificationStatus) -> Body:
        """The status patch that writes ``new`` over the state ``run`` has. A list is
        written whole (a merge patch replaces lists): the other items as ``run`` has
        them, which the resourceVersion precondition keeps current."""
        if self.webhook is None:
            return {self.field: _dump(new)}
        items = list((run.get("status") or {}).get(self.field) or [])
        items[self.webhook] = new.model_dump(by_alias=True, mode="json", exclude_none=True)
        return {self.field: items}


#: The e-mails' channels, which every run may have.
EMAIL_CHANNELS: Final = (Channel(NOTIFICATION), Channel(LATE_NOTIFICATION))


def channels_of(run: Body) -> list[Channel]:
    """Every channel of ``run``: the two e-mails and one per webhook state in its status."""
    status = run.get("status") or {}
    webhooks = [
        Channel(field, i)
        for field in (WEBHOOK_NOTIFICATIONS, LATE_WEBHOOK_NOTIFICATIONS)
        if isinstance(status.get(field), list)
        for i in range(len(status[field]))
    ]
    return [*EMAIL_CHANNELS, *webhooks]


def _dump(status: NotificationStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, mode="json")


class Host(Protocol):
    """What a delivery uses of the controller (which passes itself)."""

    kube: Kube
    store: Store
    timers: TimerQueue
    queue: WorkQueue
    settings: Settings
    smtp: SmtpSettings | None
    webhooks: WebhookSettings | None
    clock: Callable[[], datetime]

    def own(self, kind: Kind, body: Body) -> None: ...
    async def refresh(self, kind: Kind, key: Key) -> Body | None: ...


class Delivery:
    """Sends the notifications of one controller's runs."""

    def __init__(self, controller: Host) -> None:
        self.c = controller
        self._sending: set[tuple[Key, Channel]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.limiter = MailRateLimiter(controller.settings.mail_rate_limit)

    def consider(self, key: Key, run: Body) -> None:
        """Starts each delivery that is due; puts one that is not yet due, or over its
        namespace's rate limit, on the timers."""
        for channel in channels_of(run):
            self._consider(key, run, channel)

    def _consider(self, key: Key, run: Body, channel: Channel) -> None:
        raw = channel.read(run)
        if not raw or (key, channel) in self._sending:
            return
        status = NotificationStatus.model_validate(raw)
        now = self.c.clock()
        plan = plan_notification(status, now)
        taken = None
        # Only a message that will reach the server counts: refused recipients do not.
        if (
            isinstance(plan, Send)
            and channel.webhook is None
            and isinstance(resolve_recipients(self._to(key, run), self.c.smtp), tuple)
        ):
            wait = self.limiter.acquire(key[0], now)
            if wait is None:
                taken = now
            else:
                plan = Wait(wait.total_seconds())
                self._start(self._hold(key, run, status, channel))
        if isinstance(plan, Wait):

            async def again() -> None:
                self.c.queue.add((Kind.RUN, key))

            self.c.timers.set(
                ("notify", key, channel.name),
                self.c.clock() + timedelta(seconds=plan.seconds),
                again,
            )
        elif isinstance(plan, Send):
            self._sending.add((key, channel))
            self._start(self._deliver(key, run, status, taken, channel))

    def _start(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _job(self, key: Key, run: Body) -> Body:
        """The run's ScheduledJob ({}: gone, or a later one of its name, whose
        recipients and webhooks are not the run's)."""
        job = self.c.store.get(Kind.JOB, (key[0], run["spec"]["scheduledJob"]))
        return {} if job is None or of_an_earlier_job(run, job) else job

    def _to(self, key: Key, run: Body) -> list[str] | None:
        """``spec.notifications.to`` of the run's ScheduledJob."""
        to: list[str] | None = (
            (self._job(key, run).get("spec") or {}).get("notifications") or {}
        ).get("to")
        return to

    def _give_back(self, key: Key, taken: datetime | None) -> None:
        """An e-mail counted against the rate limit that was not sent after all."""
        if taken is not None:
            self.limiter.release(key[0], taken)

    async def _hold(
        self, key: Key, run: Body, status: NotificationStatus, channel: Channel
    ) -> None:
        """Says on the run, once, that its e-mail waits for the namespace's rate limit
        (or, after a day of waiting, that it is given up)."""
        ended = _news_time(run, channel)
        new, event = rate_limited(
            status,
            namespace=key[0],
            limit=str(self.limiter.limit),
            now=self.c.clock(),
            ended_at=ended,
        )
        if new == status:
            return  # already said
        rv = run["metadata"].get("resourceVersion")
        try:
            patched = await self.c.kube.patch_status(api.RUNS, *key, channel.patch(run, new), rv)
            if isinstance(patched, Conflict) or patched is None:
                return  # changed since: the newer run is considered again
            self.c.own(Kind.RUN, patched)
            await self.c.kube.event(
                patched, event.type, event.reason, event.message, f"held-{channel.name}"
            )
        except Exception as error:  # the API server away: the timer considers it again
            log.warning("%s/%s: notification held back, not recorded yet: %s", *key, error)
            return
        if new.state == "Failed":
            metrics.NOTIFICATION_FAILURES.labels(key[0], run["spec"]["scheduledJob"]).inc()

    async def _deliver(
        self,
        key: Key,
        run: Body,
        status: NotificationStatus,
        taken: datetime | None,
        channel: Channel,
    ) -> None:
        recorded = None
        try:
            recorded = await self._claim_send_record(key, run, status, taken, channel)
        except Exception as error:  # the API server away: the run's retry tries again
            log.warning("%s/%s: %s not delivered yet: %s", *key, channel.name, error)
            self.c.queue.add((Kind.RUN, key))
        finally:
            self._sending.discard((key, channel))
        if recorded is not None:
            self._consider(key, recorded, channel)  # a retry after a temporary failure

    async def _claim_send_record(
        self,
        key: Key,
        run: Body,
        status: NotificationStatus,
        taken: datetime | None,
        channel: Channel,
    ) -> Body | None:
        """The run as recorded after one attempt; None when no attempt was made. An
        e-mail ``taken`` from the rate limit is given back when none was."""
        now = self.c.clock()
        claim = status.model_copy(
            update={
                "attempts": status.attempts + 1,
                "last_attempt_time": now,
                "message": f"Sending (attempt {status.attempts + 1}).",
            }
        )
        rv = run["metadata"].get("resourceVersion")
        try:
            claimed = await self.c.kube.patch_status(api.RUNS, *key, channel.patch(run, claim), rv)
        except Exception:
            self._give_back(key, taken)
            raise
        if isinstance(claimed, Conflict) or claimed is None:
            self._give_back(key, taken)
        if isinstance(claimed, Conflict):  # changed since: decide from the newer run
            if await self.c.refresh(Kind.RUN, key) is not None:
                self.c.queue.add((Kind.RUN, key))
            return None
        if claimed is None:
            return None
        self.c.own(Kind.RUN, claimed)
        report = self._report(claimed, self._job(key, run), channel)
        if channel.webhook is None:
            new, event = await send_notification(
                status, report, to=self._to(key, run), settings=self.c.smtp, now=now
            )
        else:
            webhook = self._webhook(key, run, channel.webhook)
            new, event = await send_webhook(
                status,
                report,
                index=channel.webhook,
                url=await self._url(key[0], webhook, channel.webhook),
                format_=str(webhook.get("format") or "json"),
                settings=self.c.webhooks,
                now=now,
            )
        recorded = await self._record(key, claimed, claim, new, channel)
        if recorded is None:
            return None
        await self.c.kube.event(recorded, event.type, event.reason, event.message)
        if new.state == "Failed":
            metrics.NOTIFICATION_FAILURES.labels(key[0], run["spec"]["scheduledJob"]).inc()
        return recorded

    async def _record(
        self,
        key: Key,
        claimed: Body,
        claim: NotificationStatus,
        new: NotificationStatus,
        channel: Channel,
    ) -> Body | None:
        """Writes the attempt's result over our claim, as long as the run holds it."""
        current = claimed
        for _ in range(5):
            rv = current["metadata"].get("resourceVersion")
            patched = await self.c.kube.patch_status(
                api.RUNS, *key, channel.patch(current, new), rv
            )
            if isinstance(patched, Conflict):
                fresh = await self.c.refresh(Kind.RUN, key)
                raw = channel.read(fresh) if fresh is not None else None
                if fresh is None or not raw or NotificationStatus.model_validate(raw) != claim:
                    return None  # no longer our claim: its holder records
                current = fresh
                continue
            if patched is not None:
                self.c.own(Kind.RUN, patched)
            return patched
        return None

    def _webhook(self, key: Key, run: Body, index: int) -> Body:
        """``spec.notifications.webhooks[index]`` of the run's job as it is now ({}: no
        longer there)."""
        webhooks = ((self._job(key, run).get("spec") or {}).get("notifications") or {}).get(
            "webhooks"
        ) or []
        item = webhooks[index] if index < len(webhooks) else None
        return item if isinstance(item, dict) else {}

    async def _url(self, namespace: str, webhook: Body, index: int) -> str | DeliveryResult:
        """The webhook's URL: inline, or read from its Secret now (a rotated URL is used
        at the next attempt). What cannot be read is a Temporary outcome (the Secret may
        appear, or the job be fixed, before the retries run out) whose detail never
        shows the value."""
        where = f"spec.notifications.webhooks[{index}]"
        if isinstance(webhook.get("url"), str):
            return str(webhook["url"])
        ref = webhook.get("urlSecretRef")
        if not isinstance(ref, dict):
            return DeliveryResult("Permanent", f"{where} is no longer in the job")
        name, item = str(ref.get("name")), str(ref.get("key"))
        secret_name = f'Secret "{name}" of namespace {namespace}'
        try:
            secret = await self.c.kube.get_secret(namespace, name)
        except Exception as error:  # forbidden, or the API server away: retried
            return DeliveryResult(
                "Temporary",
                f"{where}.urlSecretRef: cannot read {secret_name}: {error_message(error)}",
            )
        if secret is None:
            return DeliveryResult("Temporary", f"{where}.urlSecretRef: {secret_name} not found")
        value = (secret.get("data") or {}).get(item)
        if not isinstance(value, str):
            return DeliveryResult(
                "Temporary", f'{where}.urlSecretRef: {secret_name} has no key "{item}"'
            )
        try:
            return base64.b64decode(value, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            return DeliveryResult(
                "Permanent", f'{where}.urlSecretRef: key "{item}" of {secret_name} is not text'
            )

    def _report(self, run: Body, job: Body, channel: Channel) -> RunReport:
        """What the notification tells: the outcome from the run as it ended; lateness
        from the run as it stood when it became late (not as it is at this attempt, so
        that every attempt sends the same message)."""
        spec = run["spec"]
        status = status_when_late(run) if channel.late else run.get("status") or {}
        late = _late_condition(run) if channel.late else None
        return RunReport(
            job=spec["scheduledJob"],
            namespace=run["metadata"]["namespace"],
            run=run["metadata"]["name"],
            run_uid=run["metadata"]["uid"],
            scheduled_time=parse_time(spec["scheduledTime"]) or self.c.clock(),
            trigger=cast(Trigger, trigger_of(spec)),
            phase=status["phase"],
            services=tuple(
                ServiceReport(s["name"], s["phase"], s.get("jobName"), s.get("message") or "")
                for s in status.get("services") or []
            ),
            parent_run=spec.get("parentRun"),
            start_time=parse_time(status.get("startTime")),
            completion_time=parse_time(status.get("completionTime")),
            time_zone=spec.get("timeZone")
            or (job.get("spec") or {}).get("timeZone")
            or self.c.settings.default_timezone,
            late=LateReport(
                parse_time(late.get("lastTransitionTime")) or self.c.clock(),
                str(late.get("message") or ""),
                (job.get("spec") or {}).get("runDeadline") or "",
            )
            if late is not None
            else None,
        )


def _late_condition(run: Body) -> Body:
    conditions = (run.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == CONDITION_LATE), {})


def _news_time(run: Body, channel: Channel) -> datetime | None:
    """When what a notification tells happened (its age gives it up after a day): the
    run's end, or when it became late."""
    if channel.late:
        return parse_time(_late_condition(run).get("lastTransitionTime"))
    return parse_time((run.get("status") or {}).get("completionTime"))
