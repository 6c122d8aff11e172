"""E-mail notifications for finished runs: settings, the message, delivery and its state.

Where it sits: when a ScheduledJobRun reaches Succeeded or Failed, the operator asks this
module whether to notify and whom (:func:`initial_status`), then — driven only by the
state persisted in the run's ``status.notification`` — when to send
(:func:`plan_notification`) and to send (:func:`send_notification`, which composes with
:func:`compose_message`, sends once with :func:`deliver` and folds the outcome into a new
state with :func:`record_attempt`). Nothing here knows Kubernetes or reads the clock: the
caller passes ``now`` and persists the states this module returns.

State machine of ``status.notification.state``::

    run ends ─┬─▶ NotRequested    spec.notifications does not ask for this outcome (final)
              ├─▶ Failed          asked, but no SMTP server or no recipient is configured
              │                   (Warning Event NotificationNotConfigured/...NoRecipients)
              └─▶ Pending, attempts 0

    Pending ── plan_notification(status, now) ──▶ Send             attempts == 0, or the
                                                                   back-off has elapsed
                                              ──▶ Wait(seconds)    back-off not over yet
    Pending ── send_notification ──▶ Sent                          accepted by the server (final)
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

Delivery uses the standard library's ``smtplib`` in a worker thread
(``asyncio.to_thread``), so the event loop never blocks; every socket operation has a
timeout (``ALMANAC_SMTP_TIMEOUT``, 30 s by default).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from pathlib import Path
from typing import Literal, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from almanac.schedule.engine import format_duration, format_instant

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "REASON_FAILED",
    "REASON_NOT_CONFIGURED",
    "REASON_NO_RECIPIENTS",
    "REASON_RETRYING",
    "REASON_SENT",
    "DeliveryResult",
    "Done",
    "NotificationEvent",
    "NotificationStatus",
    "Plan",
    "RetryPolicy",
    "RunReport",
    "Send",
    "ServiceReport",
    "SmtpConfigError",
    "SmtpSettings",
    "Unavailable",
    "Wait",
    "compose_message",
    "deliver",
    "initial_status",
    "next_attempt_delay",
    "plan_notification",
    "record_attempt",
    "resolve_recipients",
    "send_notification",
    "should_notify",
]

_log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
RunPhase = Literal["Succeeded", "Failed"]
ServicePhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped"]
Trigger = Literal["Schedule", "Manual", "Rerun"]
NotificationState = Literal["Pending", "Sent", "Failed", "NotRequested"]
_N = TypeVar("_N", int, float)

_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
# Status messages and Event messages are read in `kubectl describe`; a server reply or a
# pod's termination message can be kilobytes long.
_MAX_DETAIL = 400
_MAX_SERVICE_MESSAGE = 2000

# Event reasons (pinned: users filter on them).
REASON_NOT_CONFIGURED = "NotificationNotConfigured"
REASON_NO_RECIPIENTS = "NotificationNoRecipients"
REASON_SENT = "NotificationSent"
REASON_RETRYING = "NotificationRetrying"
REASON_FAILED = "NotificationFailed"


# -- settings -----------------------------------------------------------------------------


class SmtpConfigError(ValueError):
    """The SMTP settings are present but wrong; the message names the variable to fix."""


@dataclass(frozen=True)
class SmtpSettings:
    """How the operator sends e-mail. Built by :meth:`from_env` from ``ALMANAC_SMTP_*``.

    The password is left out of ``repr()`` (and so out of logs and tracebacks).
    """

    host: str
    sender: str
    """The From address, e.g. ``Almanac <almanac@example.com>``."""
    port: int = 0
    """0 means the usual port for ``security``: 587 (starttls), 465 (tls), 25 (none)."""
    security: Security = "starttls"
    default_recipients: tuple[str, ...] = ()
    """Recipients of runs whose ``spec.notifications.to`` is empty."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    """Seconds for the connection and for each SMTP command."""
    ca_file: Path | None = None
    """PEM bundle to trust instead of the system's CAs (a private mail relay)."""

    def __post_init__(self) -> None:
        if self.security not in _DEFAULT_PORTS:
            raise SmtpConfigError(
                f"ALMANAC_SMTP_SECURITY: {self.security!r} is not one of starttls, tls, none"
            )
        if self.port == 0:
            object.__setattr__(self, "port", _DEFAULT_PORTS[self.security])
        if not 0 < self.port < 65536:
            raise SmtpConfigError(f"ALMANAC_SMTP_PORT: {self.port} is not a TCP port")
        if not self.sender:
            raise SmtpConfigError("ALMANAC_SMTP_FROM is required when ALMANAC_SMTP_HOST is set")
        problem = _address_problem(self.sender)
        if problem:
            raise SmtpConfigError(f"ALMANAC_SMTP_FROM: {problem}")
        if not self.timeout > 0:  # also refuses NaN
            raise SmtpConfigError(f"ALMANAC_SMTP_TIMEOUT: {self.timeout} is not positive")
        if (self.username is None) != (self.password is None):
            raise SmtpConfigError(
                "ALMANAC_SMTP_USERNAME and a password (ALMANAC_SMTP_PASSWORD or "
                "ALMANAC_SMTP_PASSWORD_FILE) go together; set both or neither"
            )
        if self.username is not None and self.security == "none":
            raise SmtpConfigError(
                "ALMANAC_SMTP_SECURITY=none would send the SMTP password in clear text; "
                "use starttls or tls"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmtpSettings | None:
        """Settings from ``ALMANAC_SMTP_*`` variables; None when ALMANAC_SMTP_HOST is unset.

        Raises :class:`SmtpConfigError` for a value that is present but wrong.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        host = get("ALMANAC_SMTP_HOST")
        if host is None:
            return None
        security = (get("ALMANAC_SMTP_SECURITY") or "starttls").lower()
        port = _parse_number("ALMANAC_SMTP_PORT", get("ALMANAC_SMTP_PORT") or "0", int)
        timeout = _parse_number("ALMANAC_SMTP_TIMEOUT", get("ALMANAC_SMTP_TIMEOUT") or "30", float)
        recipients = tuple(
            formataddr((name, address))
            for name, address in getaddresses([get("ALMANAC_SMTP_TO") or ""])
            if address
        )
        for recipient in recipients:
            problem = _address_problem(recipient)
            if problem:
                raise SmtpConfigError(f"ALMANAC_SMTP_TO: {problem}")
        # Not stripped: blanks around a password may be part of it.
        password = env.get("ALMANAC_SMTP_PASSWORD") or None
        password_file = get("ALMANAC_SMTP_PASSWORD_FILE")
        if password is not None and password_file is not None:
            raise SmtpConfigError(
                "ALMANAC_SMTP_PASSWORD and ALMANAC_SMTP_PASSWORD_FILE are both set; keep one"
            )
        if password_file is not None:
            try:
                # A Secret created with `--from-file` often ends with a newline that is
                # not part of the password.
                password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as error:
                raise SmtpConfigError(
                    f"ALMANAC_SMTP_PASSWORD_FILE: cannot read {password_file}: "
                    f"{error.strerror or error}"
                ) from None
        ca_file = get("ALMANAC_SMTP_CA_FILE")
        if ca_file is not None and not Path(ca_file).is_file():
            raise SmtpConfigError(f"ALMANAC_SMTP_CA_FILE: {ca_file} is not a file")
        return cls(
            host=host,
            port=port,
            security=cast(Security, security),  # checked in __post_init__
            sender=get("ALMANAC_SMTP_FROM") or "",
            default_recipients=recipients,
            username=get("ALMANAC_SMTP_USERNAME"),
            password=password,
            timeout=timeout,
            ca_file=Path(ca_file) if ca_file else None,
        )


def _parse_number(name: str, value: str, kind: Callable[[str], _N]) -> _N:
    try:
        return kind(value)
    except ValueError:
        raise SmtpConfigError(f"{name}: {value!r} is not a number") from None


def _address_problem(recipient: str) -> str | None:
    """Why ``recipient`` is not a usable address, or None."""
    if "\r" in recipient or "\n" in recipient:
        return f"{recipient!r} contains a line break"
    local, at, domain = parseaddr(recipient)[1].rpartition("@")
    if not (local and at and domain):
        return f"{recipient!r} is not an e-mail address"
    return None


# -- what happened: the input of the composer -----------------------------------------------


@dataclass(frozen=True)
class ServiceReport:
    """One service of a run, as in ``status.services[]``."""

    name: str
    phase: ServicePhase
    job_name: str | None = None
    message: str = ""


@dataclass(frozen=True)
class RunReport:
    """A finished run, as the e-mail tells it."""

    job: str
    """Name of the ScheduledJob."""
    namespace: str
    run: str
    """Name of the ScheduledJobRun."""
    run_uid: str
    """``metadata.uid`` of the run: makes the Message-ID unique across clusters that share
    namespace and job names (staging and production mailing the same team)."""
    scheduled_time: datetime
    trigger: Trigger
    phase: RunPhase
    services: tuple[ServiceReport, ...]
    parent_run: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    time_zone: str | None = None
    """The job's ``spec.timeZone``; the scheduled time is also shown in it."""

    def __post_init__(self) -> None:
        for name in ("scheduled_time", "start_time", "completion_time"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"RunReport.{name} must be timezone-aware, got {value!r}")
        if not self.run_uid:
            raise ValueError("RunReport.run_uid is required (metadata.uid of the run)")


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
    """``spec.notifications.to`` if not empty, else the operator's default recipients."""
    if settings is None:
        return Unavailable(
            REASON_NOT_CONFIGURED,
            "Notification requested, but the operator has no SMTP server configured "
            "(set ALMANAC_SMTP_HOST and ALMANAC_SMTP_FROM in the operator's environment).",
        )
    recipients = tuple(address.strip() for address in to or () if address.strip())
    if recipients:
        for recipient in recipients:
            problem = _address_problem(recipient)
            if problem:
                return Unavailable(REASON_NO_RECIPIENTS, f"spec.notifications.to: {problem}.")
        return recipients
    if settings.default_recipients:
        return settings.default_recipients
    return Unavailable(
        REASON_NO_RECIPIENTS,
        "Notification requested, but spec.notifications.to is empty and the operator has "
        "no default recipients (ALMANAC_SMTP_TO).",
    )


# -- the message ----------------------------------------------------------------------------


def compose_message(report: RunReport, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The e-mail for a finished run. Pure: the same report gives the same message."""
    if not recipients:
        raise ValueError("compose_message needs at least one recipient")
    failed = report.phase == "Failed"
    outcome = "failed" if failed else "succeeded"
    message = EmailMessage()
    scheduled = report.scheduled_time.astimezone(ZoneInfo("UTC"))
    message["Subject"] = (
        f"[Almanac] {'FAILED' if failed else 'Succeeded'} {report.namespace}/{report.job} "
        f"run {report.run} (scheduled {scheduled:%Y-%m-%d %H:%M} UTC)"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # The time the run ended, not the time of sending: a resent message is identical.
    message["Date"] = format_datetime(report.completion_time or report.scheduled_time)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "almanac.dev"
    message["Message-ID"] = f"<{report.run}.{report.namespace}.{outcome}.{report.run_uid}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message["X-Almanac-Scheduled-Job"] = report.job
    message["X-Almanac-Namespace"] = report.namespace
    message["X-Almanac-Run"] = report.run
    message["X-Almanac-Phase"] = report.phase
    message["X-Almanac-Trigger"] = report.trigger
    message["X-Almanac-Scheduled-Time"] = format_instant(report.scheduled_time)
    if report.parent_run:
        message["X-Almanac-Parent-Run"] = report.parent_run
    text = _body(report)
    # Plain 7bit when possible, so that the raw message (a mail log, an mbox) reads like
    # the mail, and long kubectl lines are not broken by quoted-printable soft breaks.
    plain = text.isascii() and max(map(len, text.splitlines())) <= 998
    message.set_content(text, cte="7bit" if plain else None)
    return message


def _body(report: RunReport) -> str:
    failed = report.phase == "Failed"
    ns, run = shlex.quote(report.namespace), shlex.quote(report.run)
    failures = [s for s in report.services if s.phase == "Failed"]
    lines = [
        f"Run {report.run} of ScheduledJob {report.namespace}/{report.job} "
        f"{'FAILED' if failed else 'succeeded'}.",
        "",
        f"  ScheduledJob:  {report.job}",
        f"  Namespace:     {report.namespace}",
        f"  Run:           {report.run}",
        f"  Trigger:       {_trigger(report)}",
        f"  Scheduled:     {_when(report.scheduled_time, report.time_zone)}",
    ]
    if report.start_time is not None:
        lines.append(f"  Started:       {_utc(report.start_time)}")
    if report.completion_time is not None:
        took = ""
        if report.start_time is not None:
            took = f"  (took {format_duration(report.completion_time - report.start_time)})"
        lines.append(f"  Finished:      {_utc(report.completion_time)}{took}")
    lines += ["", "Services:", *_table(report.services)]
    for service in failures:
        lines += ["", f"Service {service.name} failed:"]
        text = service.message.strip() or "(no message)"
        if len(text) > _MAX_SERVICE_MESSAGE:
            text = text[:_MAX_SERVICE_MESSAGE] + " … (cut; see the logs)"
        lines += [f"  {line}".rstrip() for line in text.splitlines()]
    if failed and not failures:
        lines += ["", "No service reported a failure; the run's events may tell why."]
    lines += ["", "What to do:"]
    for service in failures:
        if service.job_name:
            lines += [
                f"  See the logs of {service.name}:",
                f"    kubectl -n {ns} logs job/{shlex.quote(service.job_name)}",
            ]
        else:
            lines.append(f"  No Job was created for {service.name}; see the run's events.")
    lines += [
        "  See the run, its services and its events:",
        f"    kubectl -n {ns} describe sjr {run}",
    ]
    if failed:
        lines += [
            "  Rerun all its services:",
            f"    kubectl -n {ns} annotate sjr {run} almanac.dev/rerun=now",
            "  Rerun only the failed and skipped services:",
            f"    kubectl -n {ns} annotate sjr {run} almanac.dev/rerun=failed",
        ]
    flag = "onFailure" if failed else "onSuccess"
    lines += [
        "",
        "-- ",
        f"Sent by Almanac because spec.notifications.{flag} is true",
        f"on ScheduledJob {report.namespace}/{report.job}.",
    ]
    return "\n".join(lines) + "\n"


def _table(services: Sequence[ServiceReport]) -> list[str]:
    if not services:
        return ["  (none)"]
    rows = [("SERVICE", "PHASE", "JOB")] + [(s.name, s.phase, s.job_name or "-") for s in services]
    name_width = max(len(row[0]) for row in rows)
    phase_width = max(len(row[1]) for row in rows)
    return [f"  {n:<{name_width}}  {p:<{phase_width}}  {j}" for n, p, j in rows]


def _trigger(report: RunReport) -> str:
    if report.trigger == "Rerun":
        return f"Rerun of {report.parent_run}" if report.parent_run else "Rerun"
    if report.trigger == "Manual":
        return "Manual (run now, outside the schedule)"
    return "Schedule"


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo('UTC')):%Y-%m-%d %H:%M:%S} UTC"


def _when(moment: datetime, time_zone: str | None) -> str:
    text = _utc(moment)
    if time_zone and time_zone not in ("UTC", "Etc/UTC"):
        try:
            local = moment.astimezone(ZoneInfo(time_zone))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return text  # the job's zone is validated elsewhere; UTC alone is still right
        text += f"  ({local:%Y-%m-%d %H:%M:%S %Z}, {time_zone})"
    return text


# -- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one attempt to hand a message to the SMTP server.

    - ``Sent``: the server accepted it (for ``recipients``; ``detail`` names any it refused).
    - ``Temporary``: no connection, a timeout, or a 4xx reply; try again later.
    - ``Permanent``: a 5xx reply, failed authentication, an untrusted certificate, a
      refused sender or recipients; trying again will not help.
    """

    outcome: Literal["Sent", "Temporary", "Permanent"]
    detail: str
    """What happened, with the server's reply when there was one. Never a credential."""
    recipients: tuple[str, ...] = ()
    """Accepted recipients (Sent only)."""


async def deliver(settings: SmtpSettings, message: EmailMessage) -> DeliveryResult:
    """Send ``message`` once and classify the outcome. Never raises for an SMTP problem.

    Runs ``smtplib`` in a worker thread; each network operation times out after
    ``settings.timeout`` seconds. The envelope is taken from the From and To headers.
    """
    try:
        accepted, refused = await asyncio.to_thread(_send, settings, message)
    except Exception as error:
        result = _classify(error, settings)
    else:
        detail = f"accepted by {settings.host}:{settings.port}"
        if refused:
            detail += "; refused for " + "; ".join(
                f"{address}: {_reply(code, text)}" for address, (code, text) in refused.items()
            )
        result = DeliveryResult("Sent", detail, accepted)
    level = logging.INFO if result.outcome == "Sent" else logging.WARNING
    run = message["X-Almanac-Run"]
    _log.log(level, "notification for run %s: %s, %s", run, result.outcome, result.detail)
    return result


def _send(
    settings: SmtpSettings, message: EmailMessage
) -> tuple[tuple[str, ...], dict[str, tuple[int, bytes]]]:
    context = None
    if settings.security != "none":
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
    client: smtplib.SMTP
    if settings.security == "tls":
        client = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        client.ehlo()
        if settings.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if settings.username is not None and settings.password is not None:
            client.login(settings.username, settings.password)
        refused = client.send_message(message)
    except BaseException:
        client.close()
        raise
    # Accepted: a failing QUIT must not turn this into a retry, which would send twice.
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
    accepted = tuple(
        address
        for _, address in getaddresses(message.get_all("To", []))
        if address and address not in refused
    )
    return accepted, refused


def _classify(error: Exception, settings: SmtpSettings) -> DeliveryResult:
    server = f"{settings.host}:{settings.port}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = error.recipients
        temporary = any(400 <= code < 500 for code, _ in replies.values())
        detail = "; ".join(f"{a}: {_reply(code, text)}" for a, (code, text) in replies.items())
        return DeliveryResult(
            "Temporary" if temporary else "Permanent", f"{server} refused {detail}"
        )
    if isinstance(error, smtplib.SMTPResponseException):
        code = error.smtp_code
        kind: Literal["Temporary", "Permanent"] = (
            "Temporary" if 400 <= code < 500 or code == -1 else "Permanent"
        )
        what = {
            smtplib.SMTPAuthenticationError: "rejected the credentials",
            smtplib.SMTPSenderRefused: "refused the sender",
            smtplib.SMTPDataError: "refused the message",
            smtplib.SMTPConnectError: "refused the connection",
            smtplib.SMTPHeloError: "refused EHLO",
        }.get(type(error), "answered")
        return DeliveryResult(kind, f"{server} {what}: {_reply(code, error.smtp_error)}")
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return DeliveryResult("Permanent", f"{server}: {error} (check ALMANAC_SMTP_SECURITY)")
    if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
        # smtplib reports a timed-out read as SMTPServerDisconnected, from the timeout.
        return DeliveryResult("Temporary", f"{server}: no answer within {settings.timeout:g}s")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return DeliveryResult("Temporary", f"{server} closed the connection: {error}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return DeliveryResult(
            "Permanent",
            f"{server}: TLS certificate not trusted: {error.verify_message} "
            "(ALMANAC_SMTP_CA_FILE can name the CA that signed it)",
        )
    if isinstance(error, ssl.SSLError):
        if error.reason == "WRONG_VERSION_NUMBER":
            return DeliveryResult(
                "Permanent",
                f"{server} does not speak TLS on connect "
                "(ALMANAC_SMTP_SECURITY=tls is for port 465; use starttls for 587 or 25)",
            )
        return DeliveryResult("Temporary", f"{server}: TLS error: {error}")
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
        return DeliveryResult("Temporary", f"{server}: cannot connect: {reason}")
    # Anything else is a bug or a message smtplib cannot encode: retrying cannot help.
    _log.error("unexpected error sending a notification", exc_info=error)
    return DeliveryResult("Permanent", f"{server}: {type(error).__name__}: {error}")


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _cut(f"{code} {' '.join(text.split())}")


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


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
    if not should_notify(on_success, on_failure, phase):
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
        message = _cut(f"Sent to {to} ({result.detail}).")
        state: NotificationState = "Sent"
        event = NotificationEvent("Normal", REASON_SENT, message)
    elif result.outcome == "Permanent":
        message = _cut(f"Not sent: {result.detail}.")
        state = "Failed"
        event = NotificationEvent("Warning", REASON_FAILED, message)
    else:
        age = (attempted_at - (ended_at or attempted_at)).total_seconds()
        if attempts >= policy.max_attempts or age >= policy.max_age:
            message = _cut(f"Not sent, gave up after {attempts} attempts: {result.detail}.")
            state = "Failed"
            event = NotificationEvent("Warning", REASON_FAILED, message)
        else:
            delay = next_attempt_delay(attempts, policy)
            message = _cut(f"Attempt {attempts} failed, retrying in {delay:g}s: {result.detail}.")
            state = "Pending"
            event = NotificationEvent("Warning", REASON_RETRYING, message)
    new = NotificationStatus(
        state=state, attempts=attempts, last_attempt_time=attempted_at, message=message
    )
    return new, event


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
    result = await deliver(settings, message)
    return record_attempt(
        status, result, attempted_at=now, ended_at=report.completion_time, policy=policy
    )
