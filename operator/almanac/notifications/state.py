"""A run's notification state: whether a finished run is mailed and to whom, when to
send, and what an attempt leaves in ``status.notification``.

Where it sits: when a ScheduledJobRun reaches Succeeded or Failed, the operator asks this
module whether to notify and whom (:func:`initial_status`), then — driven only by the
state persisted in the run's ``status.notification`` — when to send
(:func:`plan_notification`) and to send (:func:`send_notification`, which composes with
:func:`almanac.notifications.message.compose_message`, sends once with
:func:`almanac.notifications.smtp.deliver` and folds the outcome into a new state with
:func:`record_attempt`). Nothing here knows Kubernetes or reads the clock: the caller
passes ``now`` and persists the states this module returns.

State machine of ``status.notification.state``::

    run ends ─┬─▶ NotRequested    spec.notifications does not ask for this outcome (final)
              ├─▶ Failed          asked, but no SMTP server or no recipient is configured
              │                   (Warning Event NotificationNotConfigured/...NoRecipients),
              │                   or a recipient the operator does not mail
              │                   (...RecipientRefused: not sent to anyone)
              └─▶ Pending, attempts 0

    Pending ── plan_notification(status, now) ──▶ Send             attempts == 0, or the
                                                                   back-off has elapsed
                                              ──▶ Wait(seconds)    back-off not over yet
    Pending ── rate_limited ──▶ Pending, attempts unchanged         the namespace is over its
                                                                   mail rate limit: waits
                                                                   (...RateLimited), no attempt
                            ──▶ Failed                             the same, but the run ended
                                                                   more than max_age ago
    Pending ── send_notification ──▶ Sent                          accepted by the server (final)
                                 ──▶ Failed                        a recipient refused: checked
                                                                   again at each attempt (final)
                                 ──▶ Failed                        5xx, auth, TLS trust (final)
                                 ──▶ Pending, attempts + 1         refused connection, timeout,
                                                                   4xx: retry after a back-off
                                 ──▶ Failed                        the same, but that was attempt
                                                                   max_attempts, or the run
                                                                   ended more than max_age ago
    Sent, Failed, NotRequested ── plan_notification ──▶ Done

Back-off after attempt *n* is ``10 s * 2^(n-1)``, at most 10 minutes (10, 20, 40, 80,
160, 320, 600, 600 …); a Temporary failure becomes Failed at the 30th attempt (about four
hours of an unreachable server) or when the run ended more than 24 hours ago
(:class:`RetryPolicy`).

Persistence contract, which makes the guarantee "at most once per run outcome, never
forgotten" hold across operator restarts:

1. Write the initial state in the same status update that sets the run's final phase, so
   that a due notification cannot be forgotten.
2. Send only when :func:`plan_notification` says so, and write the state returned by
   :func:`send_notification` immediately after it returns.

The one window left: the server accepted the message and the operator died before step 2
was written. The next operator sees Pending and sends again — the same message with the
same deterministic ``Message-ID`` (run, namespace, outcome and the run's uid), which mail
systems and clients use to drop the duplicate.

Webhooks (``spec.notifications.webhooks``) have the same states, plan, back-off,
persistence contract and guarantee, one state per webhook and event
(:func:`webhook_requested_status`, :func:`send_webhook`); the repeat in the window above
carries the same ``Idempotency-Key``. They are not counted against the e-mail rate
limit: they go only to hosts the administrator listed.

Top of :mod:`almanac.notifications`: imports :mod:`almanac.notifications.smtp`,
:mod:`almanac.notifications.message` and :mod:`almanac.notifications.webhook` (none
imports this module), pydantic and the standard library; no Kubernetes client, no kopf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from almanac.notifications import smtp, webhook
from almanac.notifications.message import RunReport, compose_message, notification_id
from almanac.notifications.recipients import check_recipients
from almanac.notifications.smtp import DeliveryResult, SmtpSettings, clip_detail
from almanac.notifications.webhook import WebhookSettings, check_url, compose_payload

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "REASON_FAILED",
    "REASON_NOT_CONFIGURED",
    "REASON_NO_RECIPIENTS",
    "REASON_RATE_LIMITED",
    "REASON_RECIPIENT_REFUSED",
    "REASON_RETRYING",
    "REASON_SENT",
    "REASON_WEBHOOKS_OFF",
    "REASON_WEBHOOK_REFUSED",
    "Done",
    "NotificationEvent",
    "NotificationStatus",
    "Plan",
    "RetryPolicy",
    "Send",
    "Unavailable",
    "Wait",
    "initial_status",
    "next_attempt_delay",
    "plan_notification",
    "rate_limited",
    "record_attempt",
    "requested_status",
    "resolve_recipients",
    "send_notification",
    "send_webhook",
    "should_notify",
    "webhook_requested_status",
]

NotificationState = Literal["Pending", "Sent", "Failed", "NotRequested"]

# Event reasons (pinned: users filter on them).
REASON_NOT_CONFIGURED = "NotificationNotConfigured"
REASON_NO_RECIPIENTS = "NotificationNoRecipients"
REASON_SENT = "NotificationSent"
REASON_RETRYING = "NotificationRetrying"
REASON_FAILED = "NotificationFailed"
REASON_RECIPIENT_REFUSED = "NotificationRecipientRefused"
REASON_RATE_LIMITED = "NotificationRateLimited"
REASON_WEBHOOKS_OFF = "NotificationWebhooksOff"
REASON_WEBHOOK_REFUSED = "NotificationWebhookRefused"


# -- whether, and to whom -------------------------------------------------------------------


def should_notify(on_success: bool, on_failure: bool, phase: str) -> bool:
    """Whether a run that ended in ``phase`` is to be notified (False if it has not ended)."""
    return (phase == "Succeeded" and on_success) or (phase == "Failed" and on_failure)


@dataclass(frozen=True)
class Unavailable:
    """A requested notification that cannot be sent; ``reason`` is the Event reason."""

    reason: str
    message: str


def resolve_recipients(
    to: Sequence[str] | None, settings: SmtpSettings | None
) -> tuple[str, ...] | Unavailable:
    """``spec.notifications.to`` if not empty, else the operator's default recipients.

    Every item of ``to`` must be a bare address in a domain of the operator's allow-list
    (:mod:`almanac.notifications.recipients`); if one is not, nobody is mailed and the
    reason names it. The items are returned as sent: the domain in A-label form."""
    if settings is None:
        return Unavailable(
            REASON_NOT_CONFIGURED,
            "Notification requested, but the operator has no SMTP server configured "
            "(set ALMANAC_SMTP_HOST and ALMANAC_SMTP_FROM in the operator's environment).",
        )
    if to:
        recipients, refused = check_recipients(to, settings.recipient_domains)
        if refused:
            return Unavailable(
                REASON_RECIPIENT_REFUSED,
                clip_detail(f"Not sent, to any recipient: {'; '.join(map(str, refused))}."),
            )
        return tuple(recipients)
    if settings.default_recipients:
        return settings.default_recipients
    return Unavailable(
        REASON_NO_RECIPIENTS,
        "Notification requested, but spec.notifications.to is empty and the operator has "
        "no default recipients (ALMANAC_SMTP_TO).",
    )


# -- the persisted state and the retry policy -----------------------------------------------


class NotificationStatus(BaseModel):
    """``status.notification`` of a run. ``model_dump(by_alias=True, mode="json")`` gives
    the camelCase object to write; ``model_validate`` reads it back."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    state: NotificationState
    """Pending (to send, maybe again), Sent, Failed (for good), NotRequested."""
    attempts: int = Field(default=0, ge=0)
    """How many times sending was tried."""
    last_attempt_time: AwareDatetime | None = Field(default=None, alias="lastAttemptTime")
    """When the latest attempt started; the back-off counts from it."""
    message: str = ""
    """For people: where the e-mail went, or why it did not."""


@dataclass(frozen=True)
class NotificationEvent:
    """An Event the caller should record on the run."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class RetryPolicy:
    """When a Temporary failure is retried, and when it is given up (a Failed state)."""

    first_delay: float = 10.0
    """Seconds after the first failed attempt; doubled after each further one."""
    max_delay: float = 600.0
    """Ceiling of the back-off: a server back from an outage is found within 10 minutes."""
    max_attempts: int = 30
    """With the delays above, about four hours of an unreachable server."""
    max_age: float = 24 * 3600.0
    """Seconds after the run ended beyond which a failed attempt is not retried: the
    news is stale (an operator that was down for a day sends one last attempt)."""


DEFAULT_RETRY_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Send:
    """Send now."""


@dataclass(frozen=True)
class Wait:
    """Ask again in ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Done:
    """Nothing to do: sent, failed for good, or not requested."""


Plan = Send | Wait | Done


def next_attempt_delay(attempt: int, policy: RetryPolicy = DEFAULT_RETRY_POLICY) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    # 2**64 already dwarfs any sensible ceiling; bounding the exponent keeps it a float.
    return float(min(policy.max_delay, policy.first_delay * 2 ** min(attempt - 1, 64)))


def plan_notification(
    status: NotificationStatus, now: datetime, policy: RetryPolicy = DEFAULT_RETRY_POLICY
) -> Plan:
    """What to do about a run's notification, from its persisted state alone."""
    if status.state != "Pending":
        return Done()
    if status.attempts == 0 or status.last_attempt_time is None:
        return Send()
    delay = next_attempt_delay(status.attempts, policy)
    remaining = (status.last_attempt_time - now).total_seconds() + delay
    if remaining <= 0:
        return Send()
    # A last attempt "in the future" (clocks of two replicas disagree) waits one delay.
    return Wait(min(remaining, delay))


def initial_status(
    phase: str,
    *,
    on_success: bool,
    on_failure: bool,
    to: Sequence[str] | None,
    settings: SmtpSettings | None,
) -> tuple[NotificationStatus, NotificationEvent | None]:
    """The state to write together with the run's final ``phase``, and an Event if the
    requested notification cannot be sent."""
    asked = should_notify(on_success, on_failure, phase)
    return requested_status(asked, to=to, settings=settings)


def requested_status(
    asked: bool, *, to: Sequence[str] | None, settings: SmtpSettings | None
) -> tuple[NotificationStatus, NotificationEvent | None]:
    """The first state of a notification (about an outcome, or about lateness), written
    together with what it tells; and an Event if it is asked for but cannot be sent."""
    if not asked:
        return NotificationStatus(state="NotRequested"), None
    recipients = resolve_recipients(to, settings)
    if isinstance(recipients, Unavailable):
        return (
            NotificationStatus(state="Failed", message=recipients.message),
            NotificationEvent("Warning", recipients.reason, recipients.message),
        )
    return NotificationStatus(state="Pending"), None


def record_attempt(
    status: NotificationStatus,
    result: DeliveryResult,
    *,
    attempted_at: datetime,
    ended_at: datetime | None = None,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> tuple[NotificationStatus, NotificationEvent]:
    """The state after one attempt started at ``attempted_at`` for a run that ended at
    ``ended_at``, and the Event that tells it."""
    attempts = status.attempts + 1
    if result.outcome == "Sent":
        to = ", ".join(result.recipients) or "its recipients"
        message = clip_detail(f"Sent to {to} ({result.detail}).")
        state: NotificationState = "Sent"
        event = NotificationEvent("Normal", REASON_SENT, message)
    elif result.outcome == "Permanent":
        message = clip_detail(f"Not sent: {result.detail}.")
        state = "Failed"
        event = NotificationEvent("Warning", REASON_FAILED, message)
    else:
        age = (attempted_at - (ended_at or attempted_at)).total_seconds()
        if attempts >= policy.max_attempts or age >= policy.max_age:
            message = clip_detail(f"Not sent, gave up after {attempts} attempts: {result.detail}.")
            state = "Failed"
            event = NotificationEvent("Warning", REASON_FAILED, message)
        else:
            delay = next_attempt_delay(attempts, policy)
            message = clip_detail(
                f"Attempt {attempts} failed, retrying in {delay:g}s: {result.detail}."
            )
            state = "Pending"
            event = NotificationEvent("Warning", REASON_RETRYING, message)
    new = NotificationStatus(
        state=state, attempts=attempts, last_attempt_time=attempted_at, message=message
    )
    return new, event


def rate_limited(
    status: NotificationStatus,
    *,
    namespace: str,
    limit: str,
    now: datetime,
    ended_at: datetime | None = None,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> tuple[NotificationStatus, NotificationEvent]:
    """The state of a notification that is due while its namespace is over its mail rate
    ``limit`` (e.g. "60 e-mails per hour"): still Pending, no attempt counted, with a
    message saying why it waits; Failed once the run ended more than ``policy.max_age``
    ago (the age at which a notification is given up)."""
    age = (now - (ended_at or now)).total_seconds()
    if age >= policy.max_age:
        message = clip_detail(
            f"Not sent: namespace {namespace} was still over its limit of {limit} "
            f"{policy.max_age / 3600:g} hours after the run ended."
        )
        failed = status.model_copy(update={"state": "Failed", "message": message})
        return failed, NotificationEvent("Warning", REASON_FAILED, message)
    message = clip_detail(
        f"Waiting: namespace {namespace} has reached its limit of {limit}; "
        "this e-mail is sent as soon as it is under the limit again."
    )
    waiting = status.model_copy(update={"message": message})
    return waiting, NotificationEvent("Warning", REASON_RATE_LIMITED, message)


async def send_notification(
    status: NotificationStatus,
    report: RunReport,
    *,
    to: Sequence[str] | None,
    settings: SmtpSettings | None,
    now: datetime,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> tuple[NotificationStatus, NotificationEvent]:
    """One attempt, for a plan that said :class:`Send`: compose, deliver, record.

    ``to`` is ``spec.notifications.to``; ``settings`` are read again on each attempt, so
    a configuration that went missing in between ends as Failed with its reason.
    """
    recipients = resolve_recipients(to, settings)
    if isinstance(recipients, Unavailable):
        failed = NotificationStatus(
            state="Failed",
            attempts=status.attempts,
            last_attempt_time=status.last_attempt_time,
            message=recipients.message,
        )
        return failed, NotificationEvent("Warning", recipients.reason, recipients.message)
    assert settings is not None  # without settings, resolve_recipients is Unavailable
    message = compose_message(report, sender=settings.sender, recipients=recipients)
    # Looked up on the module at each call, so that a test can replace it.
    result = await smtp.deliver(settings, message)
    return record_attempt(
        status, result, attempted_at=now, ended_at=report.news_time, policy=policy
    )


# -- webhooks: the same states, another way of sending ----------------------------------------


def webhook_requested_status(
    asked: bool, *, index: int, settings: WebhookSettings | None
) -> tuple[NotificationStatus, NotificationEvent | None]:
    """The first state of the POST to ``spec.notifications.webhooks[index]``, written
    with what it tells (as :func:`requested_status` for the e-mail); Failed with an
    Event when webhooks are off."""
    if not asked:
        return NotificationStatus(state="NotRequested"), None
    if settings is None:
        message = f"Not sent to spec.notifications.webhooks[{index}]: {webhook.OFF}."
        return (
            NotificationStatus(state="Failed", message=message),
            NotificationEvent("Warning", REASON_WEBHOOKS_OFF, message),
        )
    return NotificationStatus(state="Pending"), None


async def send_webhook(
    status: NotificationStatus,
    report: RunReport,
    *,
    index: int,
    url: str | DeliveryResult,
    format_: str,
    settings: WebhookSettings | None,
    now: datetime,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> tuple[NotificationStatus, NotificationEvent]:
    """One attempt to POST to ``spec.notifications.webhooks[index]``, for a plan that
    said :class:`Send`: the URL is checked against the operator's allow-list again (it
    may come from a Secret that changed, or the list narrowed), then posted once and the
    outcome recorded as an e-mail's is. ``url`` is a :class:`DeliveryResult` when the
    caller could not read it (a Secret missing or unreadable): that counts as an attempt
    with that outcome. A URL refused, or webhooks off, is Failed at once (no attempt):
    sending it later would not be allowed either."""
    where = f"spec.notifications.webhooks[{index}]"
    refusal: tuple[str, str] | None = None
    if settings is None:
        refusal = REASON_WEBHOOKS_OFF, f"Not sent to {where}: {webhook.OFF}."
    elif isinstance(url, str):
        try:
            target = check_url(url, settings.allowed)
        except ValueError as error:
            refusal = REASON_WEBHOOK_REFUSED, clip_detail(f"Not sent to {where}: {error}.")
    if refusal is not None:
        failed = status.model_copy(update={"state": "Failed", "message": refusal[1]})
        return failed, NotificationEvent("Warning", *refusal)
    if isinstance(url, DeliveryResult):
        result = url
    else:
        assert settings is not None
        # Looked up on the module at each call, so that a test can replace it.
        result = await webhook.post(
            target,
            compose_payload(report, format_),
            settings,
            key=notification_id(report),
            run=report.run,
        )
    return record_attempt(
        status, result, attempted_at=now, ended_at=report.news_time, policy=policy
    )
