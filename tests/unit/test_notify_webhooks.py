"""Webhook notifications (issue 16, part 5): the administrator's allow-list of hosts, a
URL checked against it and never shown beyond scheme://host, the payloads, one POST to a
real HTTP server on loopback (tests/webhook_receiver.py; aiohttp is never mocked), the
states it leaves, the first states a run's end writes, the admission's refusals, the
run's channels and ``kubectl almanac describe``."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from almanac.cli.main import build_parser
from almanac.cli.plugin.views import format_run
from almanac.controller.admission import review_scheduled_job
from almanac.controller.delivery import Channel, channels_of
from almanac.controller.runner import settings_from_args
from almanac.controller.settings import Settings
from almanac.errors import redact_url
from almanac.notifications.message import LateReport, subject_of, text_of
from almanac.notifications.smtp import DeliveryResult
from almanac.notifications.state import (
    REASON_FAILED,
    REASON_RETRYING,
    REASON_SENT,
    REASON_WEBHOOK_REFUSED,
    REASON_WEBHOOKS_OFF,
    NotificationStatus,
    send_webhook,
    webhook_requested_status,
)
from almanac.notifications.webhook import (
    OFF,
    HostAllowList,
    Target,
    WebhookSettings,
    check_url,
    compose_payload,
    post,
)
from almanac.rules.runs import decide_run
from tests.unit.test_deadlines import SMTP, at, batch, job, run
from tests.unit.test_notify import T0, failed_report, succeeded_report
from tests.unit.test_service_layer import T0 as LAYER_T0
from tests.webhook_receiver import WebhookReceiver

Body = dict[str, Any]

ALLOWED = HostAllowList.parse(
    "hooks.example.com, *.chat.example.org, http://127.0.0.1", "ALMANAC_NOTIFY_ALLOWED_HOSTS"
)
assert ALLOWED is not None
SETTINGS = WebhookSettings(ALLOWED, timeout=2)
SECRET_PATH = "/services/T000/B000/s3cr3tT0k3n"


# -- the allow-list -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "scheme", "allowed"),
    [
        ("hooks.example.com", "https", True),
        ("hooks.example.com", "http", False),  # https only, unless listed as http://
        ("a.hooks.example.com", "https", False),  # an exact entry allows no subdomain
        ("example.com", "https", False),
        ("x.chat.example.org", "https", True),
        ("a.b.chat.example.org", "https", True),  # any depth
        ("chat.example.org", "https", False),  # *.domain is not the domain itself
        ("evilchat.example.org", "https", False),  # a suffix is a whole label
        ("x.chat.example.org", "http", False),
        ("127.0.0.1", "http", True),
        ("127.0.0.1", "https", True),
        ("127.0.0.2", "http", False),
        ("localhost", "http", False),
    ],
)
def test_which_hosts_the_operator_posts_to(host: str, scheme: str, allowed: bool) -> None:
    assert ALLOWED.allows(host, scheme) is allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        (" , ", None),
        ("Hooks.Example.COM", "hooks.example.com"),
        ("*.Bücher.example", "*.xn--bcher-kva.example"),
        ("http://[::1], hooks.example.com", "hooks.example.com, http://::1"),
    ],
)
def test_the_allow_list_reads_hosts_in_one_form(text: str, expected: str | None) -> None:
    parsed = HostAllowList.parse(text, "ALMANAC_NOTIFY_ALLOWED_HOSTS")
    assert (str(parsed) if parsed is not None else None) == expected


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("*", "a wildcard is *.domain"),
        ("http://*.example.com", "a wildcard is *.domain"),
        ("https://hooks.example.com", "not a host name"),
        ("hooks.example.com:8443", "not a host name"),
        ("hooks.example.com/path", "not a host name"),
        ("a b", "not a host name"),
    ],
)
def test_a_malformed_entry_is_refused_naming_it_and_the_setting(entry: str, says: str) -> None:
    with pytest.raises(ValueError, match="--notify-allowed-hosts") as error:
        HostAllowList.parse(f"hooks.example.com,{entry}", "--notify-allowed-hosts")
    assert says in str(error.value)
    assert "write example.com" in str(error.value)


def test_settings_read_the_variable_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALMANAC_NOTIFY_ALLOWED_HOSTS", raising=False)
    assert settings_from_args(build_parser().parse_args(["run"])).webhooks is None  # off
    monkeypatch.setenv("ALMANAC_NOTIFY_ALLOWED_HOSTS", "hooks.example.com")
    from_env = settings_from_args(build_parser().parse_args(["run"]))
    assert from_env.webhooks == WebhookSettings(
        HostAllowList.parse("hooks.example.com", "ALMANAC_NOTIFY_ALLOWED_HOSTS"), 10.0
    )
    flagged = settings_from_args(
        build_parser().parse_args(["run", "--notify-allowed-hosts", "*.example.org"])
    )
    assert flagged.notify_allowed_hosts is not None
    assert str(flagged.notify_allowed_hosts) == "*.example.org"
    assert "--notify-allowed-hosts" in flagged.notify_allowed_hosts.source
    off = settings_from_args(build_parser().parse_args(["run", "--notify-allowed-hosts", ""]))
    assert off.webhooks is None
    monkeypatch.setenv("ALMANAC_NOTIFY_ALLOWED_HOSTS", "hooks.example.com/x")
    with pytest.raises(ValueError) as error:
        Settings.from_env()
    assert str(error.value).startswith('ALMANAC_NOTIFY_ALLOWED_HOSTS: "hooks.example.com/x" is')


def test_a_malformed_flag_stops_almanac_run_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--notify-allowed-hosts", "*"])
    assert '--notify-allowed-hosts: "*" is a wildcard is *.domain' in capsys.readouterr().err


# -- a URL, checked and redacted --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.example.com{SECRET_PATH}?token=abc", "https://hooks.example.com"),
        ("HTTPS://Hooks.Example.com:8443/x", "https://hooks.example.com:8443"),
        ("https://user:password@hooks.example.com/x", "https://hooks.example.com"),
        ("http://[::1]:8080/x", "http://[::1]:8080"),
        ("hooks.example.com/x", "(not a URL)"),
        ("https://hooks.example.com:port/x", "(not a URL)"),
        ("", "(not a URL)"),
    ],
)
def test_a_url_is_shown_as_scheme_and_host_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://evil.example.net" + SECRET_PATH, "evil.example.net is not a host the operator"),
        ("http://hooks.example.com" + SECRET_PATH, "plain http is allowed only to hosts"),
        ("http://x.chat.example.org" + SECRET_PATH, "plain http is allowed only to hosts"),
        ("http://127.0.0.2" + SECRET_PATH, "127.0.0.2 is not a host the operator posts to"),
        ("ftp://hooks.example.com" + SECRET_PATH, "not an http(s) URL"),
        ("https://u:p@hooks.example.com" + SECRET_PATH, "a user or password in the URL"),
        ("https://hooks.example.com:x" + SECRET_PATH, "not a URL"),
        ("https://hooks.example.com/a b" + SECRET_PATH, "a space, a line break"),
        ("https://hooks.example.com/" + "a" * 2048 + SECRET_PATH, "longer than 2048"),
        (SECRET_PATH, "not an http(s) URL"),
    ],
)
def test_a_refused_url_never_shows_its_secret_parts(url: str, says: str) -> None:
    with pytest.raises(ValueError) as error:
        check_url(url, ALLOWED)
    assert says in str(error.value)
    assert "s3cr3t" not in str(error.value)
    assert "T000" not in str(error.value)


def test_an_allowed_url_is_posted_to_as_written_and_shown_by_its_host() -> None:
    target = check_url(f" https://a.chat.example.org{SECRET_PATH} ", ALLOWED)
    assert target == Target(
        f"https://a.chat.example.org{SECRET_PATH}", "https://a.chat.example.org"
    )
    assert "s3cr3t" not in repr(target)
    assert check_url("http://127.0.0.1:9/x", ALLOWED).shown == "http://127.0.0.1:9"


def test_without_an_allow_list_nothing_is_posted_to() -> None:
    with pytest.raises(ValueError, match="webhooks are off"):
        check_url("https://hooks.example.com/x", None)


# -- the payloads ---------------------------------------------------------------------------


def late_report() -> Any:
    return failed_report(
        phase="Running",
        completion_time=None,
        late=LateReport(T0 + timedelta(hours=2), "not finished by 2027-01-04T02:30:00Z", "2h"),
    )


@pytest.mark.parametrize(
    ("report", "event", "phase"),
    [
        (failed_report(), "failed", "Failed"),
        (succeeded_report(), "succeeded", "Succeeded"),
        (late_report(), "late", "Running"),
    ],
    ids=["failed", "succeeded", "late"],
)
def test_the_json_document_has_the_report_and_the_e_mails_words(
    report: Any, event: str, phase: str
) -> None:
    document = json.loads(compose_payload(report, "json"))
    assert document["id"] == f"nightly-settlement-29012345.finance.{event}.{report.run_uid}"
    assert document["event"] == event
    assert document["phase"] == phase
    assert document["subject"] == subject_of(report)
    assert document["text"] == text_of(report)
    assert document["namespace"] == "finance"
    assert document["scheduledJob"] == "nightly-settlement"
    assert document["run"] == "nightly-settlement-29012345"
    assert document["scheduledTime"] == "2027-01-04T00:30:00Z"
    assert document["timeZone"] == "Europe/Bucharest"
    assert document["trigger"] == "Schedule"
    assert [s["name"] for s in document["services"]] == [s.name for s in report.services]
    assert (document["late"] is not None) is (event == "late")
    # The same report gives the same bytes: a repeated POST is identical.
    assert compose_payload(report, "json") == compose_payload(report, "json")


def test_the_json_document_of_a_failure_carries_each_services_message() -> None:
    document = json.loads(compose_payload(failed_report(), "json"))
    transform = next(s for s in document["services"] if s["name"] == "transform")
    assert transform == {
        "name": "transform",
        "phase": "Failed",
        "jobName": "nightly-settlement-29012345-transform",
        "message": failed_report().services[1].message,
    }
    assert document["completionTime"] == "2027-01-04T00:41:16Z"
    assert document["late"] is None


def test_the_slack_message_is_the_subject_and_the_text_in_a_code_block() -> None:
    report = failed_report(
        services=(
            *failed_report().services[:1],
            failed_report()
            .services[1]
            .__class__("transform", "Failed", "j", "expected <1200> & got ```1190```"),
        )
    )
    document = json.loads(compose_payload(report, "slack"))
    assert list(document) == ["text"]
    text = document["text"]
    assert text.startswith(f"*{subject_of(report)}*\n```\n")
    assert text.endswith("```")
    assert "expected &lt;1200&gt; &amp; got '''1190'''" in text  # Slack's escapes; no early end
    assert "kubectl -n finance annotate sjr nightly-settlement-29012345 almanac.dev/rerun=now" in (
        text
    )


def test_a_very_long_slack_message_is_cut_and_says_so() -> None:
    many = tuple(
        failed_report().services[1].__class__(f"s{i}", "Failed", f"j{i}", "x" * 1999)
        for i in range(30)
    )
    text = json.loads(compose_payload(failed_report(services=many), "slack"))["text"]
    assert len(text) <= 39_000
    assert text.endswith("… (cut; see the run)```")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match='"xml" is not a webhook format'):
        compose_payload(failed_report(), "xml")


# -- one POST to a real server on loopback ----------------------------------------------------


def send(receiver: WebhookReceiver, path: str = SECRET_PATH, **changes: Any) -> DeliveryResult:
    settings = WebhookSettings(ALLOWED, **({"timeout": 2.0} | changes))
    target = check_url(receiver.url(path), ALLOWED)
    return asyncio.run(post(target, b'{"a":1}', settings, key="run.ns.failed.uid", run="run"))


def test_a_2xx_answer_is_sent_and_the_post_carries_its_idempotency_key() -> None:
    with WebhookReceiver() as receiver:
        result = send(receiver)
        [request] = receiver.received
    assert result == DeliveryResult("Sent", "HTTP 200 OK", (f"http://127.0.0.1:{receiver.port}",))
    assert request.path == SECRET_PATH
    assert request.body == b'{"a":1}'
    assert request.headers["Idempotency-Key"] == "run.ns.failed.uid"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (204, "Sent"),
        (503, "Temporary"),
        (500, "Temporary"),
        (429, "Temporary"),
        (408, "Temporary"),
        (404, "Permanent"),
        (400, "Permanent"),
        (410, "Permanent"),
    ],
)
def test_an_answer_is_classified_by_its_status(status: int, outcome: str) -> None:
    with WebhookReceiver() as receiver:
        receiver.status = status
        result = send(receiver)
    assert result.outcome == outcome
    assert f"HTTP {status}" in result.detail


def test_an_error_page_that_echoes_the_path_does_not_show_it() -> None:
    with WebhookReceiver() as receiver:
        receiver.status = 404
        receiver.reply = f"no such hook: {SECRET_PATH}".encode()
        result = send(receiver)
    assert result.outcome == "Permanent"
    assert "no such hook: …" in result.detail
    assert "s3cr3t" not in result.detail


def test_a_redirect_is_not_followed_and_names_where_it_points() -> None:
    with WebhookReceiver() as receiver:
        receiver.status = 302
        receiver.location = "https://elsewhere.example.net/steal?token=abc"
        result = send(receiver)
        assert len(receiver.received) == 1  # nothing followed it
    assert result.outcome == "Permanent"
    assert "a redirect to https://elsewhere.example.net" in result.detail
    assert "does not follow redirects" in result.detail
    assert "steal" not in result.detail and "token" not in result.detail


def test_a_receiver_that_is_down_is_a_temporary_failure() -> None:
    receiver = WebhookReceiver()
    receiver.start()
    receiver.stop()
    result = send(receiver)
    assert result.outcome == "Temporary"
    assert result.detail.startswith(f"http://127.0.0.1:{receiver.port}: cannot connect")


def test_a_slow_receiver_times_out() -> None:
    with WebhookReceiver() as receiver:
        receiver.delay = 1.5
        result = send(receiver, timeout=0.5)
    assert result == DeliveryResult(
        "Temporary", f"http://127.0.0.1:{receiver.port}: no answer within 0.5s"
    )


def test_only_the_beginning_of_a_large_answer_is_read() -> None:
    with WebhookReceiver() as receiver:
        receiver.status = 500
        receiver.reply = b"E" * 200_000
        result = send(receiver, max_response_bytes=1000)
    assert result.outcome == "Temporary"
    assert len(result.detail) < 400


def test_no_log_line_shows_the_path(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver() as receiver:
        receiver.status = 503
        send(receiver)
        receiver.stop()
        send(receiver)
    assert "webhook notification for run run: Temporary" in caplog.text
    assert "s3cr3t" not in caplog.text


# -- the states one attempt leaves ------------------------------------------------------------


PENDING = NotificationStatus(state="Pending")


def attempt(url: str | DeliveryResult, settings: WebhookSettings | None = SETTINGS) -> Any:
    return asyncio.run(
        send_webhook(
            PENDING,
            failed_report(),
            index=1,
            url=url,
            format_="json",
            settings=settings,
            now=T0 + timedelta(minutes=12),
        )
    )


def test_a_delivered_post_is_sent_and_names_the_host_only() -> None:
    with WebhookReceiver() as receiver:
        new, event = attempt(receiver.url(SECRET_PATH))
        [request] = receiver.received
    assert new.state == "Sent" and new.attempts == 1
    assert new.message == f"Sent to http://127.0.0.1:{receiver.port} (HTTP 200 OK)."
    assert (event.type, event.reason) == ("Normal", REASON_SENT)
    assert request.json()["event"] == "failed"


def test_a_receiver_answering_503_is_retried_after_the_back_off() -> None:
    with WebhookReceiver() as receiver:
        receiver.status = 503
        new, event = attempt(receiver.url(SECRET_PATH))
    assert (new.state, new.attempts) == ("Pending", 1)
    assert new.message.startswith("Attempt 1 failed, retrying in 10s: ")
    assert event.reason == REASON_RETRYING


@pytest.mark.parametrize(
    ("url", "settings", "reason", "says"),
    [
        ("https://evil.example.net" + SECRET_PATH, SETTINGS, REASON_WEBHOOK_REFUSED, "evil"),
        ("https://hooks.example.com" + SECRET_PATH, None, REASON_WEBHOOKS_OFF, OFF),
    ],
    ids=["a host not allowed", "webhooks off"],
)
def test_a_url_the_operator_refuses_fails_at_once_without_an_attempt(
    url: str, settings: WebhookSettings | None, reason: str, says: str
) -> None:
    new, event = attempt(url, settings)
    assert (new.state, new.attempts) == ("Failed", 0)
    assert new.message.startswith("Not sent to spec.notifications.webhooks[1]: ")
    assert says in new.message and "s3cr3t" not in new.message
    assert (event.type, event.reason) == ("Warning", reason)


@pytest.mark.parametrize(
    ("outcome", "state", "reason"),
    [("Temporary", "Pending", REASON_RETRYING), ("Permanent", "Failed", REASON_FAILED)],
)
def test_a_url_that_could_not_be_read_counts_as_an_attempt(
    outcome: Any, state: str, reason: str
) -> None:
    unread = DeliveryResult(outcome, 'spec.notifications.webhooks[1].urlSecretRef: Secret "h" x')
    new, event = attempt(unread)
    assert (new.state, new.attempts, event.reason) == (state, 1, reason)
    assert 'Secret "h" x' in new.message


# -- the first states, written with the run's end or lateness ---------------------------------


WEBHOOKS = [
    {"url": "https://hooks.example.com/a", "format": "json"},
    {"urlSecretRef": {"name": "hooks", "key": "slack"}, "format": "slack"},
]


@pytest.mark.parametrize(
    ("notifications", "settings", "states", "reasons"),
    [
        ({"onSuccess": True}, SETTINGS, ["Pending", "Pending"], []),
        ({"onFailure": True}, SETTINGS, ["NotRequested", "NotRequested"], []),
        ({"onSuccess": True}, None, ["Failed", "Failed"], [REASON_WEBHOOKS_OFF]),
        ({"onFailure": True}, None, ["NotRequested", "NotRequested"], []),
    ],
    ids=["asked", "not asked", "asked, webhooks off", "not asked, webhooks off"],
)
def test_a_run_that_ends_writes_one_state_per_webhook(
    notifications: Body, settings: WebhookSettings | None, states: list[str], reasons: list[str]
) -> None:
    the_job = job(None, webhooks=WEBHOOKS, **notifications)
    plan = decide_run(run(), [batch(at(10))], the_job, at(11), webhooks=settings)
    assert plan.finished_now and plan.status["phase"] == "Succeeded"
    assert [s["state"] for s in plan.status["webhookNotifications"]] == states
    webhook_events = [e for e in plan.events if e.reason == REASON_WEBHOOKS_OFF]
    assert [e.reason for e in webhook_events] == reasons  # one Event for all of them
    for event in webhook_events:
        assert event.message == f"Not sent to spec.notifications.webhooks: {OFF}."
    for state in plan.status["webhookNotifications"]:
        assert "lastAttemptTime" not in state


@pytest.mark.parametrize(
    ("notifications", "smtp", "email"),
    [
        ({"webhooks": WEBHOOKS}, None, "NotRequested"),
        ({"webhooks": WEBHOOKS, "to": ["ops@example.com"]}, None, "Failed"),
        ({"webhooks": WEBHOOKS}, replace(SMTP, default_recipients=("ops@example.com",)), "Pending"),
        ({}, None, "Failed"),
    ],
    ids=[
        "webhooks only, no SMTP: no e-mail asked",
        "webhooks and recipients, no SMTP: the e-mail fails",
        "webhooks, SMTP: the default recipients too",
        "no webhooks, no SMTP: the e-mail fails",
    ],
)
def test_a_job_notified_by_webhooks_asks_no_e_mail_of_an_operator_without_smtp(
    notifications: Body, smtp: Any, email: str
) -> None:
    the_job = job("1h", onSuccess=True, onLate=True, **notifications)
    ended = decide_run(run(), [batch(at(70))], the_job, at(71), smtp=smtp, webhooks=SETTINGS)
    assert ended.status["notification"]["state"] == email
    assert ended.status["lateNotification"]["state"] == email
    warned = "NotificationNotConfigured" in [e.reason for e in ended.events]
    assert warned is (email == "Failed")


def test_a_job_without_webhooks_writes_no_webhook_state() -> None:
    plan = decide_run(run(), [batch(at(10))], job(None, onSuccess=True), at(11), webhooks=SETTINGS)
    assert plan.finished_now
    assert "webhookNotifications" not in plan.status


def test_a_late_run_writes_its_webhooks_first_states_with_the_condition() -> None:
    plan = decide_run(
        run(), [batch()], job("1h", onLate=True, webhooks=WEBHOOKS), at(61), webhooks=SETTINGS
    )
    assert plan.late_now
    assert (
        plan.status["lateWebhookNotifications"]
        == [{"state": "Pending", "attempts": 0, "message": ""}] * 2
    )
    assert "webhookNotifications" not in plan.status  # the outcome's: when it ends


def test_webhook_requested_status_without_a_request_is_not_requested() -> None:
    assert webhook_requested_status(False, index=0, settings=None) == (
        NotificationStatus(state="NotRequested"),
        None,
    )


# -- a run's channels ------------------------------------------------------------------------


def test_a_run_has_its_two_e_mails_and_one_channel_per_webhook_state() -> None:
    the_run = {
        "status": {
            "notification": {"state": "Sent"},
            "webhookNotifications": [{"state": "Sent"}, {"state": "Pending"}],
            "lateWebhookNotifications": [{"state": "NotRequested"}],
        }
    }
    channels = channels_of(the_run)
    assert [c.name for c in channels] == [
        "notification",
        "lateNotification",
        "webhookNotifications[0]",
        "webhookNotifications[1]",
        "lateWebhookNotifications[0]",
    ]
    assert [c.late for c in channels] == [False, True, False, False, True]
    assert channels[3].read(the_run) == {"state": "Pending"}
    assert channels[1].read(the_run) is None


def test_a_webhook_channel_writes_its_item_and_keeps_the_others() -> None:
    the_run = {"status": {"webhookNotifications": [{"state": "Sent"}, {"state": "Pending"}]}}
    new = NotificationStatus(state="Pending", attempts=1, last_attempt_time=LAYER_T0, message="m")
    assert Channel("webhookNotifications", 1).patch(the_run, new) == {
        "webhookNotifications": [
            {"state": "Sent"},
            {
                "state": "Pending",
                "attempts": 1,
                "lastAttemptTime": "2027-01-04T09:00:00Z",
                "message": "m",
            },
        ]
    }
    assert Channel("notification").patch(the_run, new)["notification"]["attempts"] == 1


# -- admission -------------------------------------------------------------------------------


def review(webhooks: list[Body], hosts: HostAllowList | None = ALLOWED, **kw: Any) -> list[str]:
    body = job(None, onFailure=True, webhooks=webhooks)
    return review_scheduled_job(
        body, {}, default_time_zone="UTC", now=LAYER_T0, notify_hosts=hosts, **kw
    ).errors


@pytest.mark.parametrize(
    ("webhooks", "hosts", "errors"),
    [
        ([{"url": "https://hooks.example.com/x"}], ALLOWED, []),
        ([{"urlSecretRef": {"name": "h", "key": "url"}, "format": "slack"}], ALLOWED, []),
        (
            [{"url": "https://evil.example.net/x"}],
            ALLOWED,
            [
                "spec.notifications.webhooks[0].url: https://evil.example.net: evil.example.net "
                "is not a host the operator posts to (allowed: hooks.example.com, "
                "*.chat.example.org, http://127.0.0.1; set by the operator's "
                "ALMANAC_NOTIFY_ALLOWED_HOSTS)"
            ],
        ),
        (
            [{"urlSecretRef": {"name": "h", "key": "url"}}],
            None,
            [f"spec.notifications.webhooks[0]: {OFF}"],
        ),
        (
            [{"url": "https://hooks.example.com/x", "urlSecretRef": {"name": "h", "key": "u"}}],
            ALLOWED,
            ["spec.notifications.webhooks[0]: give exactly one of url and urlSecretRef"],
        ),
        (
            [{"url": "https://hooks.example.com/x", "format": "xml"}],
            ALLOWED,
            ['spec.notifications.webhooks[0].format: "xml" is not one of json or slack'],
        ),
        (
            [{"urlSecretRef": {"name": "h"}}],
            ALLOWED,
            ["spec.notifications.webhooks[0].urlSecretRef.key: is required"],
        ),
        (
            [{"urlSecretRef": {"name": "Chat_Hook", "key": "a/b"}}],
            ALLOWED,
            [
                'spec.notifications.webhooks[0].urlSecretRef.name: "Chat_Hook" is not a Secret '
                "name (lowercase letters, digits, '-' and '.', starting and ending with a "
                "letter or digit)",
                'spec.notifications.webhooks[0].urlSecretRef.key: "a/b" is not a Secret key '
                "(letters, digits, '-', '_' and '.')",
            ],
        ),
    ],
    ids=[
        "an allowed url",
        "a secret",
        "a host not allowed",
        "webhooks off",
        "both url and secret",
        "an unknown format",
        "a secret without its key",
        "a secret name and key out of form",
    ],
)
def test_admission_checks_every_webhook_field(
    webhooks: list[Body], hosts: HostAllowList | None, errors: list[str]
) -> None:
    got = review(webhooks, hosts)
    assert [e.split(" (")[0] if "is required" in e else e for e in got] == errors


def test_admission_does_not_refuse_a_stored_webhook_again() -> None:
    stored = [{"url": "https://old.example.net/x"}]
    old = job(None, onFailure=True, webhooks=stored)
    assert review(stored, old=old) == []
    assert review([*stored, {"url": "https://new.example.net/x"}], old=old) == [
        "spec.notifications.webhooks[1].url: https://new.example.net: new.example.net is not "
        "a host the operator posts to (allowed: hooks.example.com, *.chat.example.org, "
        "http://127.0.0.1; set by the operator's ALMANAC_NOTIFY_ALLOWED_HOSTS)"
    ]


# -- kubectl almanac describe ----------------------------------------------------------------


def test_describe_shows_each_webhooks_target_and_delivery_never_a_path() -> None:
    the_job = job(None, onFailure=True, onLate=True, webhooks=WEBHOOKS)
    the_run = run(phase="Failed")
    the_run["status"] |= {
        "webhookNotifications": [
            {
                "state": "Sent",
                "attempts": 2,
                "message": "Sent to https://hooks.example.com (HTTP 200 OK).",
            },
            {"state": "Pending", "attempts": 1, "message": "Attempt 1 failed, retrying in 10s: x."},
        ],
        "lateWebhookNotifications": [{"state": "NotRequested"}, {"state": "NotRequested"}],
    }
    lines = format_run(the_run, [], "ns", at(30), job=the_job)
    assert (
        "Webhook 0:      json to https://hooks.example.com: Sent after 2 attempts: Sent to "
        "https://hooks.example.com (HTTP 200 OK)."
    ) in lines
    assert (
        "Webhook 1:      slack to the URL in Secret hooks, key slack: Pending after 1 attempt: "
        "Attempt 1 failed, retrying in 10s: x."
    ) in lines
    assert "Late webhook 0: json to https://hooks.example.com: NotRequested" in lines
    assert "Late webhook 1: slack to the URL in Secret hooks, key slack: NotRequested" in lines
    assert not any("/a" in line for line in lines if line.startswith("Webhook"))
