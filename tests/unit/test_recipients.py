"""Whom the operator mails (issue 13, "an open mail relay"): the form of a recipient, the
allow-list of recipient domains, the CRD rule that mirrors the form, the check again at
delivery, and the per-namespace rate limit with an injected clock."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from almanac.cli.main import build_parser
from almanac.controller.settings import Settings
from almanac.notifications import smtp
from almanac.notifications.ratelimit import MailRateLimiter, RateLimit
from almanac.notifications.recipients import AllowList, check_recipients, parse_recipient
from almanac.notifications.smtp import SmtpSettings
from almanac.notifications.state import (
    NotificationStatus,
    initial_status,
    rate_limited,
    send_notification,
)
from tests.unit.test_notify import failed_report

T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
CRD = Path(__file__).resolve().parents[2] / "crds" / "almanac.dev_scheduledjobs.yaml"
ALLOWED = AllowList.parse("example.com, .example.com, bücher.example")
OK, FORM, DOMAIN = "ok", "form", "domain"

# (address, what the operator says: None if it mails it, else words of the refusal,
#  whether the CRD's CEL rule refuses it too: the form rules it can state; the rest is
#  the operator's, with the webhook and at delivery)
ADDRESSES: list[tuple[str, str | None, bool]] = [
    ("ops@example.com", None, False),
    ("first.last+tag@eng.example.com", None, False),
    ("o'brien@a.b.example.com", None, False),
    ("ops@Example.COM", None, False),
    ("ops@bücher.example", None, False),
    ("Ops <ops@example.com>", "display name or angle brackets; write the bare address", True),
    ("<ops@example.com>", "angle brackets", True),
    ('"Ops" <ops@example.com>', "display name", True),
    ("root@[169.254.169.254]", "address literal", True),
    ("root@[IPv6:::1]", "address literal", True),
    ("root@169.254.169.254", "IP address", True),
    ("ops@example.123", "IP address", True),
    ("ops@example.com\r\nBcc: victim@elsewhere.org", "line break", True),
    ("ops@example.com\n", "line break", True),
    ("ops\t@example.com", "control character", True),
    ("ops @example.com", "space", True),
    ("ops@example.com (Ops)", "comment or quotes", True),
    ('"ops"@example.com', "comment or quotes", True),
    ("ops%elsewhere.org@example.com", "% or !", True),
    ("elsewhere.org!ops@example.com", "% or !", True),
    ("ops,evil@example.com", "not a bare e-mail address", True),
    ("ops@example.com,evil@elsewhere.org", "not a bare e-mail address", True),
    ("ops", "not an e-mail address", True),
    ("", "not an e-mail address", True),
    (".ops@example.com", "not a bare e-mail address", False),
    ("ops..x@example.com", "not a bare e-mail address", False),
    ("ops@ex_ample.com", "is not a domain name", False),
    ("ops@example.com.", "is not a domain name", False),
    ("a" * 65 + "@example.com", "too long", False),
    ("x@elsewhere.org", "elsewhere.org is not a recipient domain the operator allows", False),
    ("ops@example.com.elsewhere.org", "is not a recipient domain", False),
    ("ops@notexample.com", "notexample.com is not a recipient domain", False),
    ("ops@xn--bcher-kva.example.org", "is not a recipient domain", False),
]


@pytest.mark.parametrize(
    ("address", "refusal"), [a[:2] for a in ADDRESSES], ids=[repr(a[0])[:40] for a in ADDRESSES]
)
def test_recipients_are_bare_addresses_in_allowed_domains(
    address: str, refusal: str | None
) -> None:
    sent, errors = check_recipients(["ops@example.com", address], ALLOWED)
    if refusal is None:
        assert errors == []
        assert sent[1] == parse_recipient(address)
        return
    assert sent == ["ops@example.com"]
    [error] = errors
    assert error.path == "spec.notifications.to[1]"  # the field, with its index
    assert refusal in error.message
    assert "\n" not in error.message and "\r" not in error.message  # quoted, never raw


def test_a_domain_outside_the_list_says_what_is_allowed_and_who_decides() -> None:
    [error] = check_recipients(["x@elsewhere.org"], ALLOWED)[1]
    assert str(error) == (
        'spec.notifications.to[0]: "x@elsewhere.org": elsewhere.org is not a recipient '
        "domain the operator allows (allowed: example.com, xn--bcher-kva.example, "
        "subdomains of example.com; set by the operator's ALMANAC_MAIL_ALLOWED_DOMAINS)"
    )


def test_the_address_as_sent_has_its_domain_in_idna_lower_case() -> None:
    assert parse_recipient("Ops@Bücher.Example") == "Ops@xn--bcher-kva.example"


def test_without_an_allow_list_only_the_form_is_checked() -> None:
    sent, errors = check_recipients(["x@elsewhere.org", "Ops <ops@x.org>"], None)
    assert sent == ["x@elsewhere.org"]
    assert [str(e) for e in errors] == [
        'spec.notifications.to[1]: "Ops <ops@x.org>" has a display name or angle brackets; '
        "write the bare address, ops@x.org"
    ]


def test_stored_items_are_not_checked_again() -> None:
    sent, errors = check_recipients(
        ["Ops <ops@example.com>", "x@elsewhere.org"], ALLOWED, skip=["Ops <ops@example.com>"]
    )
    assert sent == []
    assert [e.path for e in errors] == ["spec.notifications.to[1]"]


def crd_rule() -> str:
    crd = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    items = spec["properties"]["notifications"]["properties"]["to"]["items"]
    [rule] = items["x-kubernetes-validations"]
    assert "message" in rule and "messageExpression" not in rule  # never echoes the value
    text: str = rule["rule"]
    return text


def crd_admits(value: str) -> bool:
    """The CRD's rule, evaluated as the API server does: `a.matches(r) && !b.matches(r)`.
    RE2's `$` is the end of the text; Python's also matches before a final newline."""
    match = re.fullmatch(
        r"self\.matches\(r'(.+)'\)\s*&&\s*!self\.matches\(r'(.+)'\)", crd_rule().strip()
    )
    assert match, crd_rule()
    must, must_not = (re.sub(r"\$$", r"\\Z", p) for p in match.groups())
    return bool(re.search(must, value)) and not re.search(must_not, value)


@pytest.mark.parametrize(
    ("address", "refused_by_crd"),
    [(a[0], a[2]) for a in ADDRESSES],
    ids=[repr(a[0])[:40] for a in ADDRESSES],
)
def test_the_crd_refuses_display_names_literals_and_line_breaks_by_itself(
    address: str, refused_by_crd: bool
) -> None:
    assert crd_admits(address) is not refused_by_crd


def test_everything_the_crd_admits_the_operator_refuses_only_for_its_domain_or_details() -> None:
    """The CRD is the coarser check: it never refuses an address the operator mails."""
    for address, refusal, _ in ADDRESSES:
        if refusal is None:
            assert crd_admits(address), address


# -- the allow-list -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "domain", "allowed"),
    [
        ("example.com", "example.com", True),
        ("example.com", "eng.example.com", False),
        (".example.com", "eng.example.com", True),
        (".example.com", "a.b.example.com", True),
        (".example.com", "example.com", False),
        (".example.com", "badexample.com", False),
        ("example.com, .example.com", "example.com", True),
        ("EXAMPLE.com.", "example.com", True),
        ("Bücher.Example", "xn--bcher-kva.example", True),
        (".xn--bcher-kva.example", "a.xn--bcher-kva.example", True),
        ("*", "anything.example.org", True),
        ("example.com", "example.org", False),
    ],
)
def test_allow_list_entries(entries: str, domain: str, allowed: bool) -> None:
    assert AllowList.parse(entries).allows(domain) is allowed


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ("", 'ALMANAC_MAIL_ALLOWED_DOMAINS: no domain in ""'),
        (" , ", "no domain"),
        ("example.com, ex ample.org", '"ex ample.org" is not a domain name'),
        ("192.0.2.1", '"192.0.2.1" is an IP address, not a domain name'),
        ("*.example.com", '"*.example.com" is not a domain name'),
        ("ops@example.com", "is not a domain name"),
    ],
)
def test_a_bad_allow_list_entry_is_refused_naming_it(entries: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        AllowList.parse(entries)


def test_unset_allows_exactly_the_operators_own_domains() -> None:
    settings = SmtpSettings(
        host="h",
        sender="Almanac <almanac@example.com>",
        default_recipients=('"Finance, on call" <fin@corp.example>',),
    )
    domains = settings.recipient_domains
    assert str(domains) == "corp.example, example.com"
    assert not domains.allows("eng.example.com")  # exactly: subdomains need .example.com
    assert "ALMANAC_MAIL_ALLOWED_DOMAINS is unset" in domains.source
    explicit = AllowList.parse(".example.com")
    settings = SmtpSettings(host="h", sender="a@example.com", allowed_domains=explicit)
    assert settings.recipient_domains is explicit


def test_settings_from_the_environment_and_the_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMANAC_MAIL_ALLOWED_DOMAINS", "example.com,.example.org")
    monkeypatch.setenv("ALMANAC_MAIL_RATE_LIMIT", "10")
    settings = Settings.from_env()
    assert settings.mail_allowed_domains == AllowList.parse("example.com,.example.org")
    assert settings.mail_rate_limit == RateLimit(10)
    args = build_parser().parse_args(
        ["run", "--mail-allowed-domains", "corp.example", "--mail-rate-limit", "0"]
    )
    flagged = Settings.from_env(
        mail_allowed_domains=args.mail_allowed_domains, mail_rate_limit=args.mail_rate_limit
    )
    assert flagged.mail_allowed_domains is not None
    assert str(flagged.mail_allowed_domains) == "corp.example"
    assert "--mail-allowed-domains" in flagged.mail_allowed_domains.source
    assert flagged.mail_rate_limit == RateLimit(0)
    monkeypatch.setenv("ALMANAC_MAIL_RATE_LIMIT", "lots")
    with pytest.raises(ValueError, match="ALMANAC_MAIL_RATE_LIMIT: 'lots' is not a whole number"):
        Settings.from_env()
    monkeypatch.delenv("ALMANAC_MAIL_RATE_LIMIT")
    monkeypatch.delenv("ALMANAC_MAIL_ALLOWED_DOMAINS")
    default = Settings.from_env()
    assert (default.mail_allowed_domains, default.mail_rate_limit) == (None, RateLimit(60))


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--mail-allowed-domains", "ex ample.com"],
        ["run", "--mail-rate-limit", "-1"],
    ],
)
def test_bad_mail_flags_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(argv)
    assert raised.value.code == 2
    assert argv[1] in capsys.readouterr().err


# -- refused again at delivery ----------------------------------------------------------------


SMTP = SmtpSettings(host="127.0.0.1", port=2525, sender="almanac@example.com")


@pytest.mark.parametrize(
    ("to", "refused"),
    [
        (["ops@example.com", "x@elsewhere.org"], '"x@elsewhere.org": elsewhere.org is not'),
        (["Ops <ops@example.com>"], '"Ops <ops@example.com>" has a display name'),
        (["root@[169.254.169.254]"], "address literal"),
        (["ops@example.com\r\nBcc: x@elsewhere.org"], "line break"),
    ],
)
def test_a_refused_recipient_at_delivery_fails_the_notification_and_sends_nothing(
    to: list[str], refused: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def deliver(*_: Any) -> smtp.DeliveryResult:
        raise AssertionError("nothing may be sent")

    monkeypatch.setattr(smtp, "deliver", deliver)
    pending = NotificationStatus(state="Pending")
    new, event = asyncio.run(
        send_notification(pending, failed_report(), to=to, settings=SMTP, now=T0)
    )
    assert new.state == "Failed"
    assert (event.type, event.reason) == ("Warning", "NotificationRecipientRefused")
    assert new.message == event.message
    assert new.message.startswith("Not sent, to any recipient: spec.notifications.to[")
    assert refused in new.message
    assert new.attempts == 0  # no attempt reached the server


def test_a_refused_recipient_when_the_run_ends_fails_at_once() -> None:
    status, event = initial_status(
        "Failed", on_success=False, on_failure=True, to=["x@elsewhere.org"], settings=SMTP
    )
    assert status.state == "Failed"
    assert event is not None and event.reason == "NotificationRecipientRefused"


def test_the_allowed_recipients_are_sent_to_in_idna_form(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def deliver(_: SmtpSettings, message: Any) -> smtp.DeliveryResult:
        seen.append(message["To"])
        return smtp.DeliveryResult("Sent", "250 OK", ("ops@example.com",))

    monkeypatch.setattr(smtp, "deliver", deliver)
    settings = SmtpSettings(
        host="h", sender="almanac@example.com", allowed_domains=AllowList.parse(".example.com")
    )
    pending = NotificationStatus(state="Pending")
    new, _ = asyncio.run(
        send_notification(
            pending, failed_report(), to=["ops@Eng.Example.com"], settings=settings, now=T0
        )
    )
    assert new.state == "Sent"
    assert seen == ["ops@eng.example.com"]


# -- the per-namespace rate limit -------------------------------------------------------------


def test_the_rate_limit_is_a_sliding_window_per_namespace() -> None:
    limiter = MailRateLimiter(RateLimit(3))
    for minute in range(3):
        assert limiter.acquire("a", T0 + timedelta(minutes=minute)) is None
    # The fourth within the hour waits until the first is an hour old.
    assert limiter.acquire("a", T0 + timedelta(minutes=10)) == timedelta(minutes=50)
    assert limiter.acquire("b", T0 + timedelta(minutes=10)) is None  # another namespace
    assert limiter.acquire("a", T0 + timedelta(minutes=59, seconds=59)) == timedelta(seconds=1)
    assert limiter.acquire("a", T0 + timedelta(hours=1)) is None
    assert limiter.acquire("a", T0 + timedelta(hours=1)) == timedelta(minutes=1)


def test_an_email_not_sent_after_all_is_given_back() -> None:
    limiter = MailRateLimiter(RateLimit(1))
    assert limiter.acquire("a", T0) is None
    assert limiter.acquire("a", T0) is not None
    limiter.release("a", T0)
    assert limiter.acquire("a", T0) is None
    limiter.release("a", T0 - timedelta(days=1))  # never taken: nothing happens
    assert limiter.acquire("a", T0) is not None


def test_no_limit_and_a_clock_that_goes_back() -> None:
    unlimited = MailRateLimiter(RateLimit(0))
    assert all(unlimited.acquire("a", T0) is None for _ in range(1000))
    assert str(unlimited.limit) == "no limit"
    limiter = MailRateLimiter(RateLimit(1))
    assert limiter.acquire("a", T0) is None
    assert limiter.acquire("a", T0 - timedelta(hours=5)) == timedelta(hours=1)  # at most


@pytest.mark.parametrize(("mails", "period"), [(-1, timedelta(hours=1)), (1, timedelta(0))])
def test_a_rate_limit_is_not_negative(mails: int, period: timedelta) -> None:
    with pytest.raises(ValueError):
        RateLimit(mails, period)


def test_a_mail_over_the_limit_waits_pending_and_is_given_up_only_after_a_day() -> None:
    status = NotificationStatus(state="Pending", attempts=2, last_attempt_time=T0)
    waiting, event = rate_limited(
        status, namespace="finance", limit=str(RateLimit()), now=T0, ended_at=T0
    )
    assert (waiting.state, waiting.attempts, waiting.last_attempt_time) == ("Pending", 2, T0)
    assert waiting.message == (
        "Waiting: namespace finance has reached its limit of 60 e-mails per hour; "
        "this e-mail is sent as soon as it is under the limit again."
    )
    assert (event.type, event.reason) == ("Warning", "NotificationRateLimited")
    again, _ = rate_limited(waiting, namespace="finance", limit="60 e-mails per hour", now=T0)
    assert again == waiting  # nothing new to write or tell
    stale, event = rate_limited(
        status, namespace="finance", limit="60 e-mails per hour", now=T0 + timedelta(days=1),
        ended_at=T0,
    )  # fmt: skip
    assert stale.state == "Failed"
    assert "still over its limit of 60 e-mails per hour 24 hours after the run ended" in (
        stale.message
    )
    assert event.reason == "NotificationFailed"


def test_a_wrong_mail_variable_stops_almanac_run_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from almanac.controller.runner import run_from_args

    monkeypatch.setenv("ALMANAC_MAIL_ALLOWED_DOMAINS", "example.com, 192.0.2.1")
    assert run_from_args(build_parser().parse_args(["run"])) == 2
    assert capsys.readouterr().err == (
        'almanac run: ALMANAC_MAIL_ALLOWED_DOMAINS: "192.0.2.1" is an IP address, not a '
        "domain name; write example.com (that domain), .example.com (its subdomains) or * "
        "(any domain)\n"
    )
