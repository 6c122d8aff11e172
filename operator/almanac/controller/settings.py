"""Operator settings: what `almanac run` flags and ALMANAC_* variables configure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta


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
    """Folder with tls.crt and tls.key for the webhook (a mounted Secret in a cluster)."""

    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """ALMANAC_DEFAULT_TIMEZONE, ALMANAC_RERUN_DELAY_SECONDS, ALMANAC_NAMESPACES
        (comma separated); explicit overrides (command-line flags) win."""
        values: dict[str, object] = {}
        if zone := os.environ.get("ALMANAC_DEFAULT_TIMEZONE"):
            values["default_timezone"] = zone
        if delay := os.environ.get("ALMANAC_RERUN_DELAY_SECONDS"):
            values["rerun_delay"] = timedelta(seconds=float(delay))
        if namespaces := os.environ.get("ALMANAC_NAMESPACES"):
            values["namespaces"] = tuple(n.strip() for n in namespaces.split(",") if n.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
