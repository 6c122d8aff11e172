"""Starts the operator: kopf, embedded, with Almanac's handlers and settings.

`almanac run` calls :func:`run_operator`. It serves the namespaces in the settings (all
when empty) against the current kubeconfig, or the Pod's ServiceAccount in a cluster.
"""

from __future__ import annotations

import asyncio
import logging

import kopf

from almanac import handlers
from almanac.settings import Settings

log = logging.getLogger("almanac")

LOG_FORMATS = {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL,
               "json": kopf.LogFormat.JSON}


def run_operator(settings: Settings, *, liveness: str | None = None,
                 log_format: str = "full", verbose: bool = False) -> int:
    """Runs until SIGINT/SIGTERM; returns the process's exit code."""
    kopf.configure(verbose=verbose, log_format=LOG_FORMATS[log_format])
    handlers.configure(settings)
    where = ", ".join(settings.namespaces) if settings.namespaces else "all namespaces"
    log.info("almanac operator starting for %s (default time zone %s)", where,
             settings.default_timezone)
    asyncio.run(kopf.operator(
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=liveness or None,
        standalone=True,
    ))
    return 0
