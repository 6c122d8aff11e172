"""The SMTP side of notifications: the operator's mail settings and sending one message.

:class:`SmtpSettings` are read from ``ALMANAC_SMTP_*`` (:meth:`SmtpSettings.from_env`),
the password from the variable or from a mounted Secret file, and checked when read: a
value that is present but wrong is an :class:`SmtpConfigError` naming the variable.
:func:`deliver` hands one message to the server (TLS on connect, STARTTLS or plain,
optionally with a private CA and a login) and classifies the outcome as a
:class:`DeliveryResult`: Sent, Temporary (worth retrying) or Permanent.

Delivery uses the standard library's ``smtplib`` in a worker thread
(``asyncio.to_thread``), so the event loop never blocks; every socket operation has a
timeout (``ALMANAC_SMTP_TIMEOUT``, 30 s by default).

Ground floor of :mod:`almanac.notifications`, with :mod:`~almanac.notifications.recipients`
(the allow-list type of :attr:`SmtpSettings.allowed_domains`): imports the standard library,
that module and :mod:`almanac.api.bounds` (how a message is cut), nothing else of Almanac.
:mod:`almanac.notifications.state` builds on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, getaddresses, parseaddr
from pathlib import Path
from typing import Literal, TypeVar, cast

from almanac.api.bounds import truncate
from almanac.notifications.recipients import AllowList

__all__ = [
    "DeliveryResult",
    "SmtpConfigError",
    "SmtpSettings",
    "address_problem",
    "clip_detail",
    "deliver",
]

_log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
_N = TypeVar("_N", int, float)

_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
# Status messages and Event messages are read in `kubectl describe`; a server reply can
# be kilobytes long.
_MAX_DETAIL = 400


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
    allowed_domains: AllowList | None = None
    """Recipient domains ``spec.notifications.to`` may name (``--mail-allowed-domains``,
    ALMANAC_MAIL_ALLOWED_DOMAINS); None: those of ``sender`` and ``default_recipients``
    (:attr:`recipient_domains`)."""

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
        problem = address_problem(self.sender)
        if problem:
            raise SmtpConfigError(f"ALMANAC_SMTP_FROM: {problem}")
        if not self.timeout > 0:  # also refuses NaN
            raise SmtpConfigError(f"ALMANAC_SMTP_TIMEOUT: {self.timeout} is not positive")
        if (self.username is None) != (self.password is None):
            raise SmtpConfigError(
                "ALMANAC_SMTP_USERNAME and a password (ALMANAC_SMTP_PASSWORD or "
                "ALMANAC_SMTP_PASSWORD_FILE) go together; set both or neither"
            )
        # smtplib sends SMTP AUTH (PLAIN, LOGIN, CRAM-MD5) encoded as ASCII, with no
        # way to ask for UTF-8 (RFC 4616's) short of writing AUTH ourselves: a login
        # with any other character could never succeed, so it is refused when read.
        # The message never shows the character or where it is.
        if self.username is not None and not self.username.isascii():
            raise SmtpConfigError(
                "ALMANAC_SMTP_USERNAME has a character outside ASCII; SMTP AUTH is sent as "
                "ASCII (Python's smtplib), so use an ASCII user name"
            )
        if self.password is not None and not self.password.isascii():
            raise SmtpConfigError(
                "the SMTP password (ALMANAC_SMTP_PASSWORD or ALMANAC_SMTP_PASSWORD_FILE) has "
                "a character outside ASCII; SMTP AUTH is sent as ASCII (Python's smtplib), "
                "so use an ASCII password"
            )
        if self.username is not None and self.security == "none":
            raise SmtpConfigError(
                "ALMANAC_SMTP_SECURITY=none would send the SMTP password in clear text; "
                "use starttls or tls"
            )

    @property
    def recipient_domains(self) -> AllowList:
        """The allow-list in force: :attr:`allowed_domains`, or by default exactly the
        domains of the From address and the default recipients."""
        if self.allowed_domains is not None:
            return self.allowed_domains
        return AllowList.own_domains((self.sender, *self.default_recipients))

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
            problem = address_problem(recipient)
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


def address_problem(recipient: str) -> str | None:
    """Why ``recipient`` is not a usable address, or None."""
    if "\r" in recipient or "\n" in recipient:
        return f"{recipient!r} contains a line break"
    local, at, domain = parseaddr(recipient)[1].rpartition("@")
    if not (local and at and domain):
        return f"{recipient!r} is not an e-mail address"
    return None


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
            _login(client, settings.username, settings.password)
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


class _LoginFailed(Exception):
    """A login that failed in the client, not by the server's reply nor the connection:
    ``reason`` is ours. The exception's own text may quote the credentials (smtplib's
    UnicodeEncodeError for a password outside ASCII names the character and its
    position), and the detail goes into the run's status and Events, which the job's
    namespace reads: the operator's SMTP credential must not cross into it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """``client.login``, with any failure of the client's own made a :class:`_LoginFailed`
    that says what failed and never how (no exception text)."""
    try:
        client.login(username, password)
    except (
        smtplib.SMTPResponseException,
        smtplib.SMTPNotSupportedError,
        smtplib.SMTPServerDisconnected,
    ):
        raise  # the server's reply or the connection, in their own words
    except UnicodeError:
        raise _LoginFailed(
            "the SMTP user name or password has a character outside ASCII, which smtplib "
            "cannot send (SMTP AUTH is sent as ASCII)"
        ) from None
    except smtplib.SMTPException as error:  # an OSError too: before the sockets' own
        raise _LoginFailed(_client_failure(client, error)) from None
    except OSError:
        raise  # the connection's (a timeout, TLS)
    except Exception as error:
        raise _LoginFailed(_client_failure(client, error)) from None


def _client_failure(client: smtplib.SMTP, error: Exception) -> str:
    """What failed (the exception's type) and what the server offers, not the text."""
    offered = " ".join(client.esmtp_features.get("auth", "").split()) or "nothing"
    return (
        f"login failed in the client ({type(error).__name__}); the server offers AUTH "
        f"{offered} (smtplib speaks CRAM-MD5, PLAIN, LOGIN)"
    )


def _classify(error: Exception, settings: SmtpSettings) -> DeliveryResult:
    server = f"{settings.host}:{settings.port}"
    if isinstance(error, _LoginFailed):
        return DeliveryResult("Permanent", clip_detail(f"{server}: {error.reason}"))
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
    return clip_detail(f"{code} {' '.join(text.split())}")


def clip_detail(text: str) -> str:
    """``text`` cut to 400 bytes (:func:`almanac.api.bounds.truncate`) for a status or
    an Event message."""
    return truncate(text, _MAX_DETAIL)
