"""Webhook notifications: the hosts the operator posts to, a webhook's URL checked
against them, what a POST carries, and one POST.

The hosts are the administrator's :class:`~almanac.hosts.HostAllowList` (``almanac run
--notify-allowed-hosts``, ``ALMANAC_NOTIFY_ALLOWED_HOSTS``). An unset or empty list
turns webhooks off.

:func:`check_url` is the one check of a URL, used by the admission webhook (an inline
``url``) and by every delivery (the URL read from a Secret too): an absolute http(s)
URL, no user or password in it, a host on the list, plain http only where listed. A
URL's path and query may be its credential (Slack's and Teams' are), so no message,
log line, Event or status ever shows more than ``scheme://host[:port]``
(:func:`almanac.errors.redact_url`, here ``redact``), and a value read from a Secret is
never echoed.

:func:`compose_payload` makes the body: ``json``, a document with the run report's
fields and the e-mail's subject and text; or ``slack``, ``{"text": ...}``, which Slack,
Mattermost and Rocket.Chat take. Both carry :func:`~almanac.notifications.message.
notification_id`, also sent as the ``Idempotency-Key`` header: a POST repeated after a
restart (the one window the delivery cannot close) is recognisable as a repeat.

:func:`post` sends once, with aiohttp: redirects are not followed (a 3xx is a
permanent failure naming the host it points to), the whole exchange times out
(10 s), at most 64 KiB of the answer is read, proxies from the environment are not
used, and the server's certificate is verified.

Imports aiohttp, :mod:`almanac.hosts`, :mod:`almanac.errors`, :mod:`almanac.api.bounds`,
:mod:`almanac.notifications.message` and the outcome type of
:mod:`almanac.notifications.smtp`; no Kubernetes client. The controller reads a
``urlSecretRef``'s Secret and hands the URL in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from almanac.api.bounds import WEBHOOK_URL_MAX_LENGTH
from almanac.errors import FieldError, quote
from almanac.errors import redact_url as redact
from almanac.hosts import HostAllowList
from almanac.notifications.message import (
    RunReport,
    notification_id,
    outcome_of,
    subject_of,
    text_of,
)
from almanac.notifications.smtp import DeliveryResult, clip_detail
from almanac.times import format_instant

__all__ = [
    "ALLOWED_HOSTS_VARIABLE",
    "DEFAULT_TIMEOUT",
    "FORMATS",
    "MAX_RESPONSE_BYTES",
    "OFF",
    "HostAllowList",
    "Target",
    "WebhookSettings",
    "check_url",
    "check_webhooks",
    "compose_payload",
    "post",
    "report_document",
]

log = logging.getLogger(__name__)

ALLOWED_HOSTS_VARIABLE: Final = "ALMANAC_NOTIFY_ALLOWED_HOSTS"
FORMATS: Final = ("json", "slack")
DEFAULT_TIMEOUT: Final = 10.0
"""Seconds for the whole POST (connect, TLS, send, answer): a receiver slower than that
is retried with the back-off rather than holding a delivery task."""
MAX_RESPONSE_BYTES: Final = 64 * 1024
"""Of the answer, only this much is read (its beginning is shown when it is an error):
a receiver cannot make the operator hold a large body in memory."""
OFF: Final = (
    f"webhooks are off: the operator posts to no host (its {ALLOWED_HOSTS_VARIABLE}, "
    "--notify-allowed-hosts, is empty)"
)
"""Why a webhook is refused, or fails, while no host is allowed."""
_SLACK_MAX_TEXT = 39_000
"""Slack truncates a message's text beyond 40,000 characters; the cut is ours, marked."""
_SHOWN_ANSWER = 200


@dataclass(frozen=True)
class WebhookSettings:
    """How the operator posts: to which hosts, how long it waits, how much it reads."""

    allowed: HostAllowList
    timeout: float = DEFAULT_TIMEOUT
    max_response_bytes: int = MAX_RESPONSE_BYTES


@dataclass(frozen=True)
class Target:
    """A checked URL: ``url`` to post to (never shown), ``shown`` to name it."""

    url: str
    shown: str

    def __repr__(self) -> str:  # a traceback or a debug log must not print the URL
        return f"Target({self.shown})"


def check_url(url: str, allowed: HostAllowList | None) -> Target:
    """``url`` as posted to, if the operator may post to it. ValueError otherwise, with
    a message that shows at most ``scheme://host``: never the path, the query or the
    value (which may come from a Secret)."""
    if allowed is None:
        raise ValueError(OFF)
    text = url.strip()
    if len(text) > WEBHOOK_URL_MAX_LENGTH:
        raise ValueError(f"the URL is longer than {WEBHOOK_URL_MAX_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise ValueError("the URL contains a space, a line break or another control character")
    parts = allowed.check_url(text, "posts to")
    shown = redact(text)
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{shown}: a user or password in the URL (user:password@host) is not sent; put a "
            "token in the path or query and the URL in a Secret (urlSecretRef)"
        )
    return Target(text, shown)


def check_webhooks(
    webhooks: object, allowed: HostAllowList | None, *, skip: object = ()
) -> list[FieldError]:
    """An error at ``spec.notifications.webhooks[i].url`` for each inline URL the
    operator would refuse, and at ``spec.notifications.webhooks[i]`` for every webhook
    when webhooks are off. Items equal to one in ``skip`` (the stored object's) are not
    checked again: an object stays editable after the list narrowed; the delivery
    checks them. A ``urlSecretRef``'s URL is checked when it is read, at delivery."""
    if not isinstance(webhooks, list):
        return []
    kept = skip if isinstance(skip, list) else []
    errors: list[FieldError] = []
    for i, webhook in enumerate(webhooks):
        if not isinstance(webhook, dict) or webhook in kept:
            continue
        path = f"spec.notifications.webhooks[{i}]"
        url = webhook.get("url")
        if allowed is None:
            errors.append(FieldError(path, OFF))
        elif isinstance(url, str):
            try:
                check_url(url, allowed)
            except ValueError as error:
                errors.append(FieldError(f"{path}.url", str(error)))
    return errors


# -- the body -------------------------------------------------------------------------------


def _instant(moment: Any) -> str | None:
    return format_instant(moment) if moment is not None else None


def report_document(report: RunReport) -> dict[str, Any]:
    """The run report as the ``json`` format sends it (docs/notifications.md)."""
    return {
        "id": notification_id(report),
        "event": outcome_of(report),
        "subject": subject_of(report),
        "text": text_of(report),
        "namespace": report.namespace,
        "scheduledJob": report.job,
        "run": report.run,
        "runUid": report.run_uid,
        "phase": report.phase,
        "trigger": report.trigger,
        "scheduledTime": format_instant(report.scheduled_time),
        "timeZone": report.time_zone,
        "parentRun": report.parent_run,
        "startTime": _instant(report.start_time),
        "completionTime": _instant(report.completion_time),
        "services": [
            {"name": s.name, "phase": s.phase, "jobName": s.job_name, "message": s.message}
            for s in report.services
        ],
        "late": {
            "since": format_instant(report.late.since),
            "message": report.late.message,
            "runDeadline": report.late.run_deadline,
        }
        if report.late is not None
        else None,
    }


def _slack_escape(text: str) -> str:
    # Slack's three control characters; everything else is literal in a code block.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def compose_payload(report: RunReport, format_: str) -> bytes:
    """The POST's body in ``format_`` (json or slack). Pure: the same report gives the
    same bytes, so a repeated POST is identical."""
    if format_ == "slack":
        body = text_of(report).replace("```", "'''")
        text = f"*{_slack_escape(subject_of(report))}*\n```\n{_slack_escape(body)}```"
        if len(text) > _SLACK_MAX_TEXT:
            text = text[: _SLACK_MAX_TEXT - 40] + "\n… (cut; see the run)```"
        document: dict[str, Any] = {"text": text}
    elif format_ == "json":
        document = report_document(report)
    else:
        raise ValueError(f"{quote(format_)} is not a webhook format ({' or '.join(FORMATS)})")
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# -- one POST -------------------------------------------------------------------------------


async def post(
    target: Target, body: bytes, settings: WebhookSettings, *, key: str, run: str
) -> DeliveryResult:
    """POST ``body`` to ``target`` once and classify the outcome. Never raises for an
    HTTP or network problem; logs only ``target.shown``.

    - Sent: a 2xx answer.
    - Temporary: no connection, a timeout, a dropped connection, 408, 425, 429 or 5xx.
    - Permanent: a redirect (not followed), any other 4xx, an untrusted certificate.
    """
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "almanac-operator",
        "Idempotency-Key": key,
        "X-Almanac-Notification": key,
    }
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.post(target.url, data=body, headers=headers, allow_redirects=False) as answer,
        ):
            text = await answer.content.read(settings.max_response_bytes)
            result = _classify_answer(target, answer.status, answer.reason, answer.headers, text)
    except Exception as error:
        result = _classify_error(target, error, settings.timeout)
    level = logging.INFO if result.outcome == "Sent" else logging.WARNING
    log.log(level, "webhook notification for run %s: %s, %s", run, result.outcome, result.detail)
    return result


def _classify_answer(
    target: Target, status: int, reason: str | None, headers: Any, text: bytes
) -> DeliveryResult:
    said = f"HTTP {status}{f' {reason}' if reason else ''}"
    if 200 <= status < 300:
        return DeliveryResult("Sent", said, (target.shown,))
    if 300 <= status < 400:
        where = redact(str(headers.get("Location") or ""))
        where = "nowhere" if where == "(not a URL)" else where
        return DeliveryResult(
            "Permanent",
            f"{target.shown} answered {said}, a redirect to {where}: the operator does not "
            "follow redirects; use the URL it points to",
        )
    answer = _scrub(" ".join(text.decode("utf-8", "replace").split()), target)
    if len(answer) > _SHOWN_ANSWER:
        answer = answer[:_SHOWN_ANSWER] + "…"
    detail = f"{target.shown} answered {said}{f': {answer}' if answer else ''}"
    temporary = status in (408, 425, 429) or status >= 500
    return DeliveryResult("Temporary" if temporary else "Permanent", clip_detail(detail))


def _scrub(text: str, target: Target) -> str:
    """``text`` (a receiver's answer) without the URL's secret parts, which an error page
    may echo."""
    parts = urlsplit(target.url)
    for secret in (target.url, parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "…")
    return text


def _classify_error(target: Target, error: Exception, timeout: float) -> DeliveryResult:
    where = target.shown
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return DeliveryResult("Permanent", f"{where}: TLS certificate not trusted")
    if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError):
        return DeliveryResult("Temporary", f"{where}: TLS error ({type(error).__name__})")
    if isinstance(error, aiohttp.ClientConnectorError):
        reason = error.os_error.strerror or type(error.os_error).__name__
        return DeliveryResult("Temporary", f"{where}: cannot connect: {reason}")
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return DeliveryResult("Temporary", f"{where}: no answer within {timeout:g}s")
    if isinstance(error, aiohttp.ClientError | OSError):
        # Not str(error): aiohttp's messages may carry the whole URL.
        return DeliveryResult("Temporary", f"{where}: connection failed ({type(error).__name__})")
    # Anything else is a bug: retrying cannot help.
    log.error("unexpected error posting a webhook to %s: %s", where, type(error).__name__)
    return DeliveryResult("Permanent", f"{where}: {type(error).__name__}")
