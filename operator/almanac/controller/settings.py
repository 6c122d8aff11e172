"""Operator settings: what `almanac run` flags and ALMANAC_* variables configure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from almanac.api import feeds
from almanac.hosts import HostAllowList
from almanac.notifications.ratelimit import RateLimit
from almanac.notifications.recipients import ALLOWED_DOMAINS_VARIABLE, AllowList
from almanac.notifications.webhook import ALLOWED_HOSTS_VARIABLE, WebhookSettings

RATE_LIMIT_VARIABLE = "ALMANAC_MAIL_RATE_LIMIT"


@dataclass(frozen=True)
class SelfManagedCertificate:
    """The webhook certificate the operator makes and keeps itself (no cert-manager):
    the Secret it is kept in, the names it is valid for, and the
    ValidatingWebhookConfiguration whose caBundle must hold its CA."""

    namespace: str
    secret: str
    configuration: str
    dns_names: tuple[str, ...]

    @classmethod
    def for_service(
        cls, namespace: str, secret: str, configuration: str, service: str, *extra: str
    ) -> SelfManagedCertificate:
        """Valid for every name the API server may call the webhook Service by (and any
        ``extra`` ones)."""
        svc = f"{service}.{namespace}"
        names = (f"{svc}.svc", f"{svc}.svc.cluster.local", svc, service) if service else ()
        return cls(namespace, secret, configuration, tuple(dict.fromkeys(names + extra)))


@dataclass(frozen=True)
class Settings:
    """How this operator instance behaves. Defaults suit a cluster-wide install."""

    default_timezone: str = "UTC"
    """Zone for ScheduledJobs that set no spec.timeZone (IANA name)."""

    rerun_delay: timedelta = timedelta(minutes=1)
    """How long after `almanac.dev/rerun` a rerun is scheduled (docs/api.md: one minute)."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to serve; empty means all of them."""

    webhook_port: int = 0
    """Port of the validating admission webhook (HTTPS); 0: no webhook."""

    webhook_cert_dir: str = ""
    """Folder with tls.crt and tls.key for the webhook (a Secret cert-manager fills)."""

    webhook_certificate: SelfManagedCertificate | None = None
    """Without a folder: where the operator keeps the webhook certificate it makes."""

    mail_allowed_domains: AllowList | None = None
    """Recipient domains spec.notifications.to may name; None (unset): only the domains
    of the operator's own From and default To addresses (docs/notifications.md)."""

    mail_rate_limit: RateLimit = field(default_factory=RateLimit)
    """E-mails per namespace per hour (60); 0: no limit."""

    notify_allowed_hosts: HostAllowList | None = None
    """Hosts spec.notifications.webhooks may post to; None (unset or empty): webhooks
    are off (docs/notifications.md, "Webhooks")."""

    feed_allowed_hosts: HostAllowList | None = None
    """Hosts a Calendar's spec.source.url may be fetched from; None (unset or empty):
    feeds from URLs are off, configMapKeyRef still works (docs/calendars.md)."""

    @property
    def webhooks(self) -> WebhookSettings | None:
        """How webhooks are posted; None when they are off."""
        if self.notify_allowed_hosts is None:
            return None
        return WebhookSettings(self.notify_allowed_hosts)

    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """ALMANAC_DEFAULT_TIMEZONE, ALMANAC_RERUN_DELAY_SECONDS, ALMANAC_NAMESPACES
        (comma separated), ALMANAC_MAIL_ALLOWED_DOMAINS (comma separated),
        ALMANAC_MAIL_RATE_LIMIT (e-mails per namespace per hour),
        ALMANAC_NOTIFY_ALLOWED_HOSTS and ALMANAC_FEED_ALLOWED_HOSTS (comma separated);
        explicit overrides (command-line
        flags) win. A wrong mail or webhook setting is a ValueError naming it."""
        values: dict[str, object] = {}
        if zone := os.environ.get("ALMANAC_DEFAULT_TIMEZONE"):
            values["default_timezone"] = zone
        if delay := os.environ.get("ALMANAC_RERUN_DELAY_SECONDS"):
            values["rerun_delay"] = timedelta(seconds=float(delay))
        if namespaces := os.environ.get("ALMANAC_NAMESPACES"):
            values["namespaces"] = tuple(n.strip() for n in namespaces.split(",") if n.strip())
        if domains := os.environ.get(ALLOWED_DOMAINS_VARIABLE, "").strip():
            values["mail_allowed_domains"] = AllowList.parse(domains)
        if limit := os.environ.get(RATE_LIMIT_VARIABLE, "").strip():
            values["mail_rate_limit"] = parse_rate_limit(limit, RATE_LIMIT_VARIABLE)
        if hosts := os.environ.get(ALLOWED_HOSTS_VARIABLE, "").strip():
            values["notify_allowed_hosts"] = HostAllowList.parse(hosts, ALLOWED_HOSTS_VARIABLE)
        if hosts := os.environ.get(feeds.ALLOWED_HOSTS_VARIABLE, "").strip():
            values["feed_allowed_hosts"] = HostAllowList.parse(hosts, feeds.ALLOWED_HOSTS_VARIABLE)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def parse_rate_limit(text: str, source: str) -> RateLimit:
    """``60``: e-mails per namespace per hour; ``0``: no limit. ValueError names ``source``."""
    if not text.strip().isdigit():
        raise ValueError(
            f"{source}: {text!r} is not a whole number of e-mails per namespace per hour "
            "(0: no limit)"
        )
    return RateLimit(int(text))
