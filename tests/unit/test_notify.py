"""Notifications: settings, the message, the state machine, and delivery to a real SMTP
server on loopback (aiosmtpd, see tests/smtp_server.py; smtplib is never mocked)."""

from __future__ import annotations

import asyncio
import select
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest

from almanac.notifications.message import RunReport, ServiceReport, compose_message
from almanac.notifications.smtp import DeliveryResult, SmtpConfigError, SmtpSettings, deliver
from almanac.notifications.state import (
    DEFAULT_RETRY_POLICY,
    Done,
    NotificationStatus,
    RetryPolicy,
    Send,
    Unavailable,
    Wait,
    initial_status,
    next_attempt_delay,
    plan_notification,
    record_attempt,
    resolve_recipients,
    send_notification,
    should_notify,
)
from tests.smtp_server import (
    SmtpServer,
    TlsFiles,
    make_tls_files,
    read_eml_dir,
    read_mbox,
)

T = TypeVar("T")

# Every time in these tests is built from this instant (a Monday, 02:30 in Bucharest).
T0 = datetime(2027, 1, 4, 0, 30, tzinfo=UTC)
SENDER = "Almanac <almanac@example.com>"
SMTP_SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "smtp_server.py"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def failed_report(**changes: Any) -> RunReport:
    report = RunReport(
        job="nightly-settlement",
        namespace="finance",
        run="nightly-settlement-29012345",
        run_uid="6b1f3c2e-0d7a-4a55-9a51-3f2f0c9e2a10",
        scheduled_time=T0,
        trigger="Schedule",
        phase="Failed",
        services=(
            ServiceReport("extract", "Succeeded", "nightly-settlement-29012345-extract"),
            ServiceReport(
                "transform",
                "Failed",
                "nightly-settlement-29012345-transform",
                "BackoffLimitExceeded: Job has reached the specified backoff limit\n"
                "last log line: ledger total mismatch (expected 1200.00, got 1190.00)",
            ),
            ServiceReport("load", "Skipped", None, "skipped: transform failed"),
            ServiceReport("audit-log", "Succeeded", "nightly-settlement-29012345-audit-log"),
        ),
        start_time=T0 + timedelta(seconds=1),
        completion_time=T0 + timedelta(minutes=11, seconds=16),
        time_zone="Europe/Bucharest",
    )
    return replace(report, **changes)


def succeeded_report() -> RunReport:
    return failed_report(
        phase="Succeeded",
        services=(
            ServiceReport("extract", "Succeeded", "nightly-settlement-29012345-extract"),
            ServiceReport("transform", "Succeeded", "nightly-settlement-29012345-transform"),
        ),
    )


def settings_for(server: SmtpServer, **changes: Any) -> SmtpSettings:
    base = SmtpSettings(
        host=server.host,
        port=server.port,
        security="none",
        sender=SENDER,
        default_recipients=("ops@example.com",),
        timeout=5,
    )
    return replace(base, **changes)


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# -- settings -----------------------------------------------------------------------------


def test_no_host_means_not_configured() -> None:
    assert SmtpSettings.from_env({}) is None
    assert SmtpSettings.from_env({"ALMANAC_SMTP_HOST": "  ", "ALMANAC_SMTP_FROM": "a@b"}) is None


def test_settings_from_env(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cr3t-from-file\n")
    settings = SmtpSettings.from_env(
        {
            "ALMANAC_SMTP_HOST": "smtp.example.com",
            "ALMANAC_SMTP_FROM": SENDER,
            "ALMANAC_SMTP_TO": 'ops@example.com, "Finance, on call" <finance@example.com>',
            "ALMANAC_SMTP_USERNAME": "almanac",
            "ALMANAC_SMTP_PASSWORD_FILE": str(secret),
            "ALMANAC_SMTP_TIMEOUT": "12.5",
        }
    )
    assert settings == SmtpSettings(
        host="smtp.example.com",
        port=587,
        security="starttls",
        sender=SENDER,
        default_recipients=("ops@example.com", '"Finance, on call" <finance@example.com>'),
        username="almanac",
        password="s3cr3t-from-file",
        timeout=12.5,
    )
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in str(settings)


@pytest.mark.parametrize(
    ("security", "port"), [("starttls", 587), ("TLS", 465), ("none", 25)], ids=str
)
def test_port_defaults_to_the_usual_one_for_the_security(security: str, port: int) -> None:
    env = {"ALMANAC_SMTP_HOST": "h", "ALMANAC_SMTP_FROM": "a@b.c"}
    settings = SmtpSettings.from_env({**env, "ALMANAC_SMTP_SECURITY": security})
    assert settings is not None
    assert settings.port == port
    settings = SmtpSettings.from_env({**env, "ALMANAC_SMTP_PORT": "2525"})
    assert settings is not None
    assert settings.port == 2525


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"ALMANAC_SMTP_SECURITY": "ssl"}, "ALMANAC_SMTP_SECURITY: 'ssl' is not one of"),
        ({"ALMANAC_SMTP_PORT": "smtp"}, "ALMANAC_SMTP_PORT: 'smtp' is not a number"),
        ({"ALMANAC_SMTP_PORT": "70000"}, "ALMANAC_SMTP_PORT: 70000 is not a TCP port"),
        ({"ALMANAC_SMTP_TIMEOUT": "0"}, "ALMANAC_SMTP_TIMEOUT: 0.0 is not positive"),
        ({"ALMANAC_SMTP_FROM": ""}, "ALMANAC_SMTP_FROM is required"),
        ({"ALMANAC_SMTP_FROM": "almanac"}, "ALMANAC_SMTP_FROM: 'almanac' is not an e-mail"),
        ({"ALMANAC_SMTP_TO": "ops"}, "ALMANAC_SMTP_TO: 'ops' is not an e-mail address"),
        ({"ALMANAC_SMTP_USERNAME": "u"}, "ALMANAC_SMTP_USERNAME and a password"),
        ({"ALMANAC_SMTP_PASSWORD": "p"}, "ALMANAC_SMTP_USERNAME and a password"),
        (
            {"ALMANAC_SMTP_PASSWORD": "p", "ALMANAC_SMTP_PASSWORD_FILE": "/f"},
            "are both set; keep one",
        ),
        (
            {"ALMANAC_SMTP_PASSWORD_FILE": "/nonexistent/password"},
            "ALMANAC_SMTP_PASSWORD_FILE: cannot read /nonexistent/password",
        ),
        (
            {
                "ALMANAC_SMTP_SECURITY": "none",
                "ALMANAC_SMTP_USERNAME": "u",
                "ALMANAC_SMTP_PASSWORD": "p",
            },
            "would send the SMTP password in clear text",
        ),
        ({"ALMANAC_SMTP_CA_FILE": "/nonexistent/ca.crt"}, "ALMANAC_SMTP_CA_FILE: /nonexistent"),
        # smtplib sends AUTH as ASCII: never said which character, nor where.
        (
            {"ALMANAC_SMTP_USERNAME": "u", "ALMANAC_SMTP_PASSWORD": "secret-\u00e9"},
            "the SMTP password (ALMANAC_SMTP_PASSWORD or ALMANAC_SMTP_PASSWORD_FILE) has a "
            "character outside ASCII",
        ),
        (
            {"ALMANAC_SMTP_USERNAME": "secret-\u00e9", "ALMANAC_SMTP_PASSWORD": "p"},
            "ALMANAC_SMTP_USERNAME has a character outside ASCII",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_wrong_settings_name_the_variable(env: dict[str, str], error: str) -> None:
    full = {"ALMANAC_SMTP_HOST": "smtp.example.com", "ALMANAC_SMTP_FROM": SENDER, **env}
    with pytest.raises(SmtpConfigError) as raised:
        SmtpSettings.from_env(full)
    assert error in str(raised.value)
    assert not [w for w in ("secret", "\u00e9", "\\xe9", "position") if w in str(raised.value)]


# -- whether, and to whom -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_success", "on_failure", "phase", "expected"),
    [
        (False, True, "Failed", True),
        (False, True, "Succeeded", False),
        (True, False, "Succeeded", True),
        (True, False, "Failed", False),
        (True, True, "Running", False),
        (False, False, "Failed", False),
    ],
)
def test_should_notify(on_success: bool, on_failure: bool, phase: str, expected: bool) -> None:
    assert should_notify(on_success, on_failure, phase) is expected


def test_recipients_from_the_spec_win_over_the_defaults() -> None:
    settings = SmtpSettings(host="h", sender=SENDER, default_recipients=("ops@example.com",))
    assert resolve_recipients(["dev@example.com"], settings) == ("dev@example.com",)
    assert resolve_recipients([], settings) == ("ops@example.com",)
    assert resolve_recipients(None, settings) == ("ops@example.com",)


def test_no_recipient_anywhere_is_a_reason_for_an_event() -> None:
    settings = SmtpSettings(host="h", sender=SENDER)
    assert resolve_recipients(None, settings) == Unavailable(
        "NotificationNoRecipients",
        "Notification requested, but spec.notifications.to is empty and the operator has "
        "no default recipients (ALMANAC_SMTP_TO).",
    )
    bad = resolve_recipients(["ops@example.com", "not-an-address"], settings)
    assert bad == Unavailable(
        "NotificationRecipientRefused",
        'Not sent, to any recipient: spec.notifications.to[1]: "not-an-address" is not an '
        "e-mail address (local@domain, for example ops@example.com).",
    )


def test_missing_smtp_configuration_fails_the_notification_with_a_warning() -> None:
    status, event = initial_status(
        "Failed", on_success=False, on_failure=True, to=["ops@example.com"], settings=None
    )
    assert status.state == "Failed"
    assert event is not None
    assert (event.type, event.reason) == ("Warning", "NotificationNotConfigured")
    assert "ALMANAC_SMTP_HOST" in event.message
    assert status.message == event.message


def test_initial_status() -> None:
    settings = SmtpSettings(host="h", sender=SENDER, default_recipients=("ops@example.com",))
    kwargs: dict[str, Any] = {"to": None, "settings": settings}
    assert initial_status("Failed", on_success=False, on_failure=True, **kwargs) == (
        NotificationStatus(state="Pending"),
        None,
    )
    assert initial_status("Succeeded", on_success=False, on_failure=True, **kwargs) == (
        NotificationStatus(state="NotRequested"),
        None,
    )
    # Not requested needs no configuration at all.
    assert initial_status(
        "Succeeded", on_success=False, on_failure=True, to=None, settings=None
    ) == (NotificationStatus(state="NotRequested"), None)


# -- the message --------------------------------------------------------------------------


def test_failure_message() -> None:
    message = compose_message(
        failed_report(), sender=SENDER, recipients=["ops@example.com", "dev@example.com"]
    )
    assert message["Subject"] == (
        "[Almanac] FAILED finance/nightly-settlement run nightly-settlement-29012345 "
        "(scheduled 2027-01-04 00:30 UTC)"
    )
    assert message["From"] == SENDER
    assert message["To"] == "ops@example.com, dev@example.com"
    assert message["Message-ID"] == (
        "<nightly-settlement-29012345.finance.failed.6b1f3c2e-0d7a-4a55-9a51-3f2f0c9e2a10"
        "@example.com>"
    )
    assert message["Date"] == "Mon, 04 Jan 2027 00:41:16 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Almanac-Scheduled-Job"] == "nightly-settlement"
    assert message["X-Almanac-Namespace"] == "finance"
    assert message["X-Almanac-Run"] == "nightly-settlement-29012345"
    assert message["X-Almanac-Phase"] == "Failed"
    assert message["X-Almanac-Trigger"] == "Schedule"
    assert message["X-Almanac-Scheduled-Time"] == "2027-01-04T00:30:00Z"
    assert message["X-Almanac-Parent-Run"] is None
    text = body(message)
    expected_lines = [
        "Run nightly-settlement-29012345 of ScheduledJob finance/nightly-settlement FAILED.",
        "  ScheduledJob:  nightly-settlement",
        "  Namespace:     finance",
        "  Trigger:       Schedule",
        "  Scheduled:     2027-01-04 00:30:00 UTC  (2027-01-04 02:30:00 EET, Europe/Bucharest)",
        "  Started:       2027-01-04 00:30:01 UTC",
        "  Finished:      2027-01-04 00:41:16 UTC  (took 11m15s)",
        # The services, in an aligned table.
        "  SERVICE    PHASE      JOB",
        "  extract    Succeeded  nightly-settlement-29012345-extract",
        "  transform  Failed     nightly-settlement-29012345-transform",
        "  load       Skipped    -",
        "  audit-log  Succeeded  nightly-settlement-29012345-audit-log",
        # The failing service's message, every line of it.
        "Service transform failed:",
        "  BackoffLimitExceeded: Job has reached the specified backoff limit",
        "  last log line: ledger total mismatch (expected 1200.00, got 1190.00)",
        # What to do, as commands to paste.
        "    kubectl -n finance logs job/nightly-settlement-29012345-transform",
        "    kubectl -n finance describe sjr nightly-settlement-29012345",
        "    kubectl -n finance annotate sjr nightly-settlement-29012345 almanac.dev/rerun=now",
        "    kubectl -n finance annotate sjr nightly-settlement-29012345 almanac.dev/rerun=failed",
        "Sent by Almanac because spec.notifications.onFailure is true",
    ]
    lines = text.splitlines()
    for line in expected_lines:
        assert line in lines, f"{line!r} not in the body:\n{text}"
    assert lines.index(expected_lines[7]) < lines.index(expected_lines[8])


def test_success_message() -> None:
    message = compose_message(succeeded_report(), sender=SENDER, recipients=["ops@example.com"])
    assert message["Subject"] == (
        "[Almanac] Succeeded finance/nightly-settlement run nightly-settlement-29012345 "
        "(scheduled 2027-01-04 00:30 UTC)"
    )
    assert message["Message-ID"].startswith("<nightly-settlement-29012345.finance.succeeded.")
    text = body(message)
    assert "ScheduledJob finance/nightly-settlement succeeded." in text
    assert "  transform  Succeeded  nightly-settlement-29012345-transform" in text
    assert "kubectl -n finance describe sjr nightly-settlement-29012345" in text
    assert "rerun" not in text
    assert "failed:" not in text
    assert "spec.notifications.onSuccess is true" in text


def test_message_is_the_same_when_composed_again() -> None:
    """A resend after a restart must carry the same Message-ID, Date and content."""
    first = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
    again = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
    assert first.as_bytes() == again.as_bytes()
    other_cluster = compose_message(
        failed_report(run_uid="0c4b1ab4-5b2e-4f5c-a0f2-9d5f3b8e6d71"),
        sender=SENDER,
        recipients=["ops@example.com"],
    )
    assert other_cluster["Message-ID"] != first["Message-ID"]


def test_rerun_message_names_the_parent() -> None:
    message = compose_message(
        failed_report(
            run="nightly-settlement-29012346",
            trigger="Rerun",
            parent_run="nightly-settlement-29012345",
            time_zone=None,
        ),
        sender=SENDER,
        recipients=["ops@example.com"],
    )
    assert message["X-Almanac-Parent-Run"] == "nightly-settlement-29012345"
    assert message["X-Almanac-Trigger"] == "Rerun"
    text = body(message)
    assert "  Trigger:       Rerun of nightly-settlement-29012345" in text
    assert "  Scheduled:     2027-01-04 00:30:00 UTC\n" in text


def test_failed_service_without_a_job_and_run_without_a_failed_service() -> None:
    no_job = failed_report(
        services=(ServiceReport("extract", "Failed", None, 'image "nope" not found'),)
    )
    text = body(compose_message(no_job, sender=SENDER, recipients=["ops@example.com"]))
    assert "  extract  Failed  -" in text
    assert '  image "nope" not found' in text
    assert "No Job was created for extract; see the run's events." in text
    assert "logs job/" not in text

    nothing_failed = failed_report(services=(ServiceReport("extract", "Skipped"),))
    text = body(compose_message(nothing_failed, sender=SENDER, recipients=["ops@example.com"]))
    assert "No service reported a failure" in text
    assert "almanac.dev/rerun=now" in text


def test_report_needs_aware_times_and_a_uid() -> None:
    with pytest.raises(ValueError, match="scheduled_time must be timezone-aware"):
        failed_report(scheduled_time=datetime(2027, 1, 4, 0, 30))
    with pytest.raises(ValueError, match="run_uid is required"):
        failed_report(run_uid="")


# -- back-off and the plan ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 320), (7, 600), (8, 600), (10**6, 600)],
)
def test_next_attempt_delay(attempt: int, delay: float) -> None:
    assert next_attempt_delay(attempt) == delay


def test_next_attempt_delay_counts_from_one() -> None:
    with pytest.raises(ValueError, match="attempt numbers start at 1"):
        next_attempt_delay(0)


def test_default_policy_gives_up_after_about_four_hours_of_outage() -> None:
    waits = sum(next_attempt_delay(n) for n in range(1, DEFAULT_RETRY_POLICY.max_attempts))
    assert 3.5 * 3600 < waits < 4.5 * 3600


def pending(attempts: int, last: datetime | None) -> NotificationStatus:
    return NotificationStatus(state="Pending", attempts=attempts, last_attempt_time=last)


@pytest.mark.parametrize(
    ("status", "now", "plan"),
    [
        pytest.param(NotificationStatus(state="NotRequested"), T0, Done(), id="not requested"),
        pytest.param(NotificationStatus(state="Sent", attempts=1), T0, Done(), id="sent"),
        pytest.param(NotificationStatus(state="Failed", attempts=3), T0, Done(), id="failed"),
        pytest.param(pending(0, None), T0, Send(), id="due, never tried"),
        pytest.param(pending(1, T0), T0, Wait(10), id="just failed once"),
        pytest.param(pending(1, T0), T0 + timedelta(seconds=9), Wait(1), id="1s to go"),
        pytest.param(pending(1, T0), T0 + timedelta(seconds=10), Send(), id="back-off over"),
        pytest.param(pending(3, T0), T0 + timedelta(seconds=39), Wait(1), id="third back-off"),
        pytest.param(pending(9, T0), T0 + timedelta(minutes=5), Wait(300), id="at the ceiling"),
        pytest.param(pending(2, T0), T0 + timedelta(days=3), Send(), id="operator was down"),
        pytest.param(pending(2, T0 + timedelta(hours=1)), T0, Wait(20), id="clock skew"),
        pytest.param(pending(2, None), T0, Send(), id="attempts without a time"),
    ],
)
def test_plan(status: NotificationStatus, now: datetime, plan: object) -> None:
    assert plan_notification(status, now) == plan


SENT = DeliveryResult("Sent", "accepted by smtp:25", ("ops@example.com",))
TEMPORARY = DeliveryResult("Temporary", "smtp:25 refused the message: 451 4.3.0 Try again")
PERMANENT = DeliveryResult("Permanent", "smtp:25 refused ops@example.com: 550 5.1.1 No such user")


@pytest.mark.parametrize(
    ("before", "result", "ended", "state", "attempts", "reason"),
    [
        pytest.param(pending(0, None), SENT, T0, "Sent", 1, "NotificationSent", id="sent"),
        pytest.param(pending(2, T0), SENT, T0, "Sent", 3, "NotificationSent", id="sent at last"),
        pytest.param(
            pending(0, None), PERMANENT, T0, "Failed", 1, "NotificationFailed", id="permanent"
        ),
        pytest.param(
            pending(0, None), TEMPORARY, T0, "Pending", 1, "NotificationRetrying", id="temporary"
        ),
        pytest.param(
            pending(29, T0), TEMPORARY, T0, "Failed", 30, "NotificationFailed", id="last attempt"
        ),
        pytest.param(
            pending(2, T0),
            TEMPORARY,
            T0 - timedelta(hours=24),
            "Failed",
            3,
            "NotificationFailed",
            id="run ended a day ago",
        ),
    ],
)
def test_record_attempt(
    before: NotificationStatus,
    result: DeliveryResult,
    ended: datetime,
    state: str,
    attempts: int,
    reason: str,
) -> None:
    after, event = record_attempt(before, result, attempted_at=T0, ended_at=ended)
    assert (after.state, after.attempts, after.last_attempt_time) == (state, attempts, T0)
    assert event.reason == reason
    assert event.type == ("Normal" if state == "Sent" else "Warning")
    assert event.message == after.message
    assert result.detail in after.message


def test_record_attempt_messages() -> None:
    after, _ = record_attempt(pending(0, None), SENT, attempted_at=T0, ended_at=T0)
    assert after.message == "Sent to ops@example.com (accepted by smtp:25)."
    after, _ = record_attempt(pending(1, T0), TEMPORARY, attempted_at=T0, ended_at=T0)
    assert after.message == (
        "Attempt 2 failed, retrying in 20s: smtp:25 refused the message: 451 4.3.0 Try again."
    )
    policy = RetryPolicy(max_attempts=2)
    after, _ = record_attempt(pending(1, T0), TEMPORARY, attempted_at=T0, policy=policy)
    assert after.message.startswith("Not sent, gave up after 2 attempts: smtp:25 refused")


def test_status_survives_a_round_trip_through_the_api() -> None:
    """What a restarted operator reads back decides the same: no resend, nothing forgotten."""
    status = NotificationStatus(
        state="Pending", attempts=2, last_attempt_time=T0, message="Attempt 2 failed"
    )
    stored = status.model_dump(by_alias=True, mode="json")
    assert stored == {
        "state": "Pending",
        "attempts": 2,
        "lastAttemptTime": "2027-01-04T00:30:00Z",
        "message": "Attempt 2 failed",
    }
    read_back = NotificationStatus.model_validate(stored)
    assert read_back == status
    assert plan_notification(read_back, T0 + timedelta(seconds=5)) == Wait(15)
    sent = NotificationStatus.model_validate({"state": "Sent", "attempts": 1})
    assert plan_notification(sent, T0) == Done()


# -- delivery to a real SMTP server --------------------------------------------------------


def test_failure_email_arrives(smtp: SmtpServer) -> None:
    status, event = initial_status(
        "Failed",
        on_success=False,
        on_failure=True,
        to=["oncall@example.com"],
        settings=settings_for(smtp),
    )
    assert (status.state, event) == ("Pending", None)
    assert plan_notification(status, T0) == Send()

    status, event = run(
        send_notification(
            status,
            failed_report(),
            to=["oncall@example.com"],
            settings=settings_for(smtp),
            now=T0 + timedelta(minutes=12),
        )
    )

    assert status.state == "Sent"
    assert status.attempts == 1
    assert status.last_attempt_time == T0 + timedelta(minutes=12)
    assert (event.type, event.reason) == ("Normal", "NotificationSent")
    assert event.message.startswith("Sent to oncall@example.com (accepted by 127.0.0.1:")
    assert plan_notification(status, T0 + timedelta(hours=1)) == Done()

    [mail] = smtp.wait_for(1)
    # Readable as it travels: 7bit, commands not broken by quoted-printable.
    assert (
        b"kubectl -n finance annotate sjr nightly-settlement-29012345 almanac.dev/rerun=failed\r\n"
        in mail.data
    )
    assert mail.mail_from == "almanac@example.com"
    assert mail.rcpt_tos == ("oncall@example.com",)
    assert mail.message["Subject"].startswith("[Almanac] FAILED finance/nightly-settlement run ")
    assert mail.message["X-Almanac-Run"] == "nightly-settlement-29012345"
    assert mail.message["Message-ID"] == (
        "<nightly-settlement-29012345.finance.failed.6b1f3c2e-0d7a-4a55-9a51-3f2f0c9e2a10"
        "@example.com>"
    )
    text = body(mail.message)
    for line in [
        "  extract    Succeeded  nightly-settlement-29012345-extract",
        "  transform  Failed     nightly-settlement-29012345-transform",
        "  load       Skipped    -",
        "  audit-log  Succeeded  nightly-settlement-29012345-audit-log",
        "  BackoffLimitExceeded: Job has reached the specified backoff limit",
        "    kubectl -n finance logs job/nightly-settlement-29012345-transform",
        "    kubectl -n finance describe sjr nightly-settlement-29012345",
        "    kubectl -n finance annotate sjr nightly-settlement-29012345 almanac.dev/rerun=now",
        "    kubectl -n finance annotate sjr nightly-settlement-29012345 almanac.dev/rerun=failed",
    ]:
        assert line in text.splitlines()


def test_success_email_goes_to_the_default_recipients(smtp: SmtpServer) -> None:
    settings = settings_for(smtp, default_recipients=("ops@example.com", "Team <team@example.com>"))
    status, _ = initial_status(
        "Succeeded", on_success=True, on_failure=True, to=None, settings=settings
    )
    status, event = run(
        send_notification(status, succeeded_report(), to=None, settings=settings, now=T0)
    )
    assert status.state == "Sent"
    assert "ops@example.com, team@example.com" in event.message
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ("ops@example.com", "team@example.com")
    assert mail.message["To"] == "ops@example.com, Team <team@example.com>"
    assert mail.message["Subject"].startswith("[Almanac] Succeeded finance/nightly-settlement")


def test_non_ascii_service_message_arrives_intact(smtp: SmtpServer) -> None:
    report = failed_report(
        services=(ServiceReport("export", "Failed", "export-1", "Datei „Überweisung.csv“ fehlt"),)
    )
    message = compose_message(report, sender=SENDER, recipients=["ops@example.com"])
    assert run(deliver(settings_for(smtp), message)).outcome == "Sent"
    [mail] = smtp.wait_for(1)
    assert "  Datei „Überweisung.csv“ fehlt" in body(mail.message).splitlines()


def test_configuration_gone_at_send_time_fails_with_the_reason(smtp: SmtpServer) -> None:
    status, event = run(
        send_notification(pending(1, T0), failed_report(), to=None, settings=None, now=T0)
    )
    assert (status.state, status.attempts) == ("Failed", 1)
    assert event.reason == "NotificationNotConfigured"
    assert smtp.received == []


def test_451_then_success_sends_once(smtp: SmtpServer) -> None:
    settings = settings_for(smtp)
    smtp.fail_next(1, "451 4.3.0 Mail server busy, try again later")

    status, event = run(
        send_notification(
            NotificationStatus(state="Pending"), failed_report(), to=None, settings=settings, now=T0
        )
    )
    assert (status.state, status.attempts) == ("Pending", 1)
    assert (event.type, event.reason) == ("Warning", "NotificationRetrying")
    assert "451 4.3.0 Mail server busy, try again later" in status.message
    assert smtp.received == []

    assert plan_notification(status, T0 + timedelta(seconds=3)) == Wait(7)
    later = T0 + timedelta(seconds=10)
    assert plan_notification(status, later) == Send()
    status, event = run(
        send_notification(status, failed_report(), to=None, settings=settings, now=later)
    )
    assert (status.state, status.attempts) == ("Sent", 2)
    assert len(smtp.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("stage", "reply", "outcome", "detail"),
    [
        ("data", "451 4.3.0 Try again later", "Temporary", "refused the message: 451 4.3.0"),
        ("rcpt", "450 4.2.1 Mailbox busy", "Temporary", "refused ops@example.com: 450 4.2.1"),
        ("mail", "421 4.7.0 Too many connections", "Temporary", "refused the sender: 421"),
        ("data", "554 5.7.1 Message rejected as spam", "Permanent", "refused the message: 554"),
        ("rcpt", "550 5.1.1 No such user here", "Permanent", "refused ops@example.com: 550"),
        ("mail", "553 5.7.1 Sender not allowed", "Permanent", "refused the sender: 553 5.7.1"),
    ],
)
def test_server_replies_are_classified(
    smtp: SmtpServer, stage: Any, reply: str, outcome: str, detail: str
) -> None:
    smtp.fail_next(1, reply, stage=stage)
    message = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
    result = run(deliver(settings_for(smtp), message))
    assert result.outcome == outcome
    assert detail in result.detail
    assert reply.split(" ", 1)[1] in result.detail  # the server's own words
    assert smtp.received == []


def test_550_is_permanent_and_recorded(smtp: SmtpServer) -> None:
    smtp.fail_next(1, "550 5.1.1 <oncall@example.com>: Recipient address rejected", stage="rcpt")
    status, event = run(
        send_notification(
            NotificationStatus(state="Pending"),
            failed_report(),
            to=["oncall@example.com"],
            settings=settings_for(smtp),
            now=T0,
        )
    )
    assert (status.state, status.attempts) == ("Failed", 1)
    assert (event.type, event.reason) == ("Warning", "NotificationFailed")
    assert "Recipient address rejected" in event.message
    assert plan_notification(status, T0 + timedelta(hours=1)) == Done()


def test_server_down_then_back_delivers_once(smtp: SmtpServer) -> None:
    settings = settings_for(smtp)
    smtp.stop()
    status, event = run(
        send_notification(
            NotificationStatus(state="Pending"), failed_report(), to=None, settings=settings, now=T0
        )
    )
    assert (status.state, status.attempts) == ("Pending", 1)
    assert "cannot connect: Connection refused" in status.message
    assert event.reason == "NotificationRetrying"

    smtp.start()
    later = T0 + timedelta(seconds=next_attempt_delay(1))
    assert plan_notification(status, later) == Send()
    status, _ = run(
        send_notification(status, failed_report(), to=None, settings=settings, now=later)
    )
    assert status.state == "Sent"
    assert len(smtp.wait_for(1)) == 1
    assert plan_notification(status, later + timedelta(hours=1)) == Done()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_silent_server_times_out_without_blocking_the_event_loop(silent_server: int) -> None:
    settings = SmtpSettings(
        host="127.0.0.1", port=silent_server, security="none", sender=SENDER, timeout=0.5
    )
    message = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])

    async def scenario() -> tuple[DeliveryResult, int]:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        beating = asyncio.create_task(heartbeat())
        try:
            return await deliver(settings, message), ticks
        finally:
            beating.cancel()

    started = time.monotonic()
    result, ticks = run(scenario())
    assert result == DeliveryResult(
        "Temporary", f"127.0.0.1:{silent_server}: no answer within 0.5s"
    )
    assert time.monotonic() - started < 5
    assert ticks >= 5, "the event loop was blocked while sending"


# -- TLS and authentication ----------------------------------------------------------------


def test_starttls_with_authentication(tls_files: TlsFiles) -> None:
    users = {"almanac": "correct horse"}
    with SmtpServer(tls_context=tls_files.server_context(), users=users) as server:
        settings = settings_for(
            server,
            security="starttls",
            ca_file=tls_files.ca_cert,
            username="almanac",
            password="correct horse",
        )
        message = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
        result = run(deliver(settings, message))
        assert result.outcome == "Sent", result.detail
        [mail] = server.wait_for(1)
        assert mail.tls
        assert mail.login == "almanac"

        wrong = replace(settings, password="wrong")
        result = run(deliver(wrong, message))
        assert result.outcome == "Permanent"
        assert "rejected the credentials: 535" in result.detail
        assert "wrong" not in result.detail


def _outside_ascii(self: smtplib.SMTP, challenge: bytes | None = None) -> str:
    return "\0almanac\0s3cr\u00e9t-\u00e4"  # smtplib encodes it as ASCII: UnicodeEncodeError


def _quoting(self: smtplib.SMTP, challenge: bytes | None = None) -> str:
    raise smtplib.SMTPException("AUTH loop; last response: (334, b's3cr\u00e9t-\u00e4')")


def _failing(self: smtplib.SMTP, challenge: bytes | None = None) -> str:
    raise ValueError("s3cr\u00e9t-\u00e4 at position 4")


@pytest.mark.parametrize(
    ("auth_plain", "reason"),
    [
        (_outside_ascii, "has a character outside ASCII, which smtplib cannot send"),
        (_quoting, "login failed in the client (SMTPException); the server offers AUTH"),
        (_failing, "login failed in the client (ValueError); the server offers AUTH"),
    ],
    ids=["a password outside ASCII", "smtplib quoting a reply", "any other error"],
)
def test_a_login_failing_in_the_client_never_describes_the_credentials(
    tls_files: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
    auth_plain: Callable[..., str],
    reason: str,
) -> None:
    """The detail goes into the run's status and Events, which every namespace whose
    job mails reads: an exception's own text (smtplib's UnicodeEncodeError names the
    password's character and its position) would carry a fragment of the operator's
    shared credential across tenants. The settings refuse such a password when read;
    here it reaches smtplib anyway, as AUTH PLAIN's response."""
    monkeypatch.setattr(smtplib.SMTP, "auth_plain", auth_plain)
    users = {"almanac": "s3cr\u00e9t-\u00e4"}
    with SmtpServer(tls_context=tls_files.server_context(), users=users) as server:
        settings = settings_for(
            server, security="starttls", ca_file=tls_files.ca_cert, username="almanac", password="p"
        )
        message = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
        result = run(deliver(settings, message))
    assert result.outcome == "Permanent"
    assert reason in result.detail
    leaks = ("s3cr", "\\xe9", "\u00e9", "\\xe4", "\u00e4", "position")
    assert not [leak for leak in leaks if leak in result.detail], result.detail


def test_untrusted_certificate_is_permanent(tls_files: TlsFiles) -> None:
    with SmtpServer(tls_context=tls_files.server_context()) as server:
        message = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
        result = run(deliver(settings_for(server, security="starttls"), message))
        assert result.outcome == "Permanent"
        assert "TLS certificate not trusted" in result.detail
        assert "ALMANAC_SMTP_CA_FILE" in result.detail
        assert server.received == []


def test_implicit_tls(tls_files: TlsFiles, smtp: SmtpServer) -> None:
    message = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
    with SmtpServer(tls_context=tls_files.server_context(), starttls=False) as server:
        settings = settings_for(server, security="tls", ca_file=tls_files.ca_cert)
        result = run(deliver(settings, message))
        assert result.outcome == "Sent", result.detail
        [mail] = server.wait_for(1)
        assert mail.tls

    # Implicit TLS against a plain server is a configuration mistake, not an outage.
    result = run(deliver(settings_for(smtp, security="tls", ca_file=tls_files.ca_cert), message))
    assert result.outcome == "Permanent"
    assert "does not speak TLS on connect" in result.detail


def test_starttls_against_a_server_without_it_is_permanent(smtp: SmtpServer) -> None:
    message = compose_message(failed_report(), sender=SENDER, recipients=["ops@example.com"])
    result = run(deliver(settings_for(smtp, security="starttls"), message))
    assert result.outcome == "Permanent"
    assert "STARTTLS extension not supported by server" in result.detail


# -- the SMTP server as a process (what integration tests use) -------------------------------


def start_server_process(*args: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, str(SMTP_SERVER_SCRIPT), "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 20)
    if not ready:
        process.kill()
        pytest.fail("tests/smtp_server.py did not start within 20s")
    line = process.stdout.readline()
    assert line.startswith("listening on 127.0.0.1:"), line
    return process, int(line.rsplit(":", 1)[1])


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)


@pytest.mark.parametrize("store", ["--mbox", "--eml-dir"])
def test_server_process_stores_messages(tmp_path: Path, store: str) -> None:
    where = tmp_path / ("mail.mbox" if store == "--mbox" else "mail")
    read = read_mbox if store == "--mbox" else read_eml_dir
    process, port = start_server_process(store, str(where), "--fail-next", "1")
    with process:  # closes its stdout
        try:
            settings = SmtpSettings(host="127.0.0.1", port=port, security="none", sender=SENDER)
            message = compose_message(
                failed_report(), sender=SENDER, recipients=["ops@example.com"]
            )
            assert run(deliver(settings, message)).outcome == "Temporary"
            assert run(deliver(settings, message)).outcome == "Sent"
            wait_until(lambda: len(read(where)) == 1)
            [stored] = read(where)
            assert stored["Message-ID"] == message["Message-ID"]
            assert "almanac.dev/rerun=failed" in body(stored)
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0
