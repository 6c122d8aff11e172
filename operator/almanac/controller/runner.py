"""Starts the operator: kopf, embedded, with Almanac's handlers and settings.

`almanac run` calls :func:`run_operator`. It serves the namespaces in the settings (all
when empty) against the current kubeconfig, or the Pod's ServiceAccount in a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import kopf
from aiohttp import web

from almanac.controller import handlers, metrics, webhook
from almanac.controller.leader import LeaderElector, identity
from almanac.controller.settings import SelfManagedCertificate, Settings
from almanac.kube import Kube

log = logging.getLogger("almanac")

# kopf's own lines about each handler call: one per watch event, 14 per fire.
_HANDLER_CHATTER = re.compile(r"(Handler|Activity|Timer|Daemon) '[^']*' succeeded\.")
# An admission handler's refusal: the user's mistake, already answered to the user.
_ADMISSION_REFUSAL = re.compile(r"Handler '(validate-[^']*)' failed permanently: (.*)", re.S)


class KopfChatter(logging.Filter):
    """Keeps the log to one line per decision (docs/design.md, "Logs").

    Installed on the log handler: kopf's per-handler success lines become DEBUG (shown
    with ``--verbose``), and an admission refusal is INFO, not ERROR. Records below the
    root logger's level are then dropped, as the logger would have dropped them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("kopf"):
            message = record.getMessage()
            if record.levelno == logging.INFO and _HANDLER_CHATTER.fullmatch(message):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            elif record.levelno == logging.ERROR and (
                refusal := _ADMISSION_REFUSAL.fullmatch(message)
            ):
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.msg, record.args = "admission refused (%s): %s", refusal.groups()
        return record.levelno >= logging.getLogger().getEffectiveLevel()


def configure_logging(log_format: str, verbose: bool) -> None:
    """kopf's log handler and format, with Almanac's :class:`KopfChatter` on it.

    Without ``verbose``, kopf's per-object logger says only warnings and errors: its
    INFO lines are the per-handler chatter the filter would demote and drop anyway, and
    a logger below its level does not even build the record (one per watch event)."""
    kopf.configure(verbose=verbose, log_format=LOG_FORMATS[log_format])
    for handler in logging.getLogger().handlers:
        handler.addFilter(KopfChatter())
    if not verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


@dataclass(frozen=True)
class Election:
    """Where the Lease lives that elects one acting replica (see almanac.controller.leader)."""

    namespace: str
    name: str = "almanac-operator"


def run_operator(
    settings: Settings,
    *,
    liveness: str | None = None,
    log_format: str = "full",
    verbose: bool = False,
    metrics_port: int = 0,
    election: Election | None = None,
) -> int:
    """Runs until SIGINT/SIGTERM; returns the process's exit code (1: leadership lost)."""
    configure_logging(log_format, verbose)
    handlers.configure(settings)
    metrics.serve(metrics_port)
    where = ", ".join(settings.namespaces) if settings.namespaces else "all namespaces"
    log.info(
        "almanac operator starting for %s (default time zone %s)", where, settings.default_timezone
    )
    return asyncio.run(_serve(settings, liveness, election))


#: The API server decodes objects nested up to 10,000 levels (apimachinery's
#: util/json maxDepth); Python's default limit of 1,000 would make the client fail on a
#: watch event the API server accepted. Decoding and copying one level takes two frames.
RECURSION_LIMIT = 25_000
#: A stop that hangs (a task that ignores cancellation) ends the process after this.
STOP_GRACE_SECONDS = 20.0


async def _serve(settings: Settings, liveness: str | None, election: Election | None) -> int:
    """Serves until asked to stop (exit code 0). Ends with 1 when leadership is lost or
    when kopf stops on its own (a crashed main loop): the process never lingers
    holding the Lease, or anything else, while it does not serve."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    stopping = _Stopping()
    stop = stopping.flag
    handlers.on_serving = stopping.take_signals
    operator = functools.partial(
        kopf.operator,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=liveness or None,
        standalone=True,
        stop_flag=stop,
    )
    kube = await Kube.connect()
    try:
        async with _webhook(kube, settings):
            if election is None:
                await operator()
                return stopping.exit_code()
            return await _lead(kube, election, operator, stopping, liveness)
    finally:
        await kube.close()


async def _lead(
    kube: Kube,
    election: Election,
    operator: Callable[[], Coroutine[Any, Any, None]],
    stopping: _Stopping,
    liveness: str | None,
) -> int:
    """Serves while holding the Lease (see :func:`_serve` for the exit codes)."""
    elector = LeaderElector(kube, election.namespace, election.name, identity())
    handlers.fence = elector.is_leader  # every write of the operator checks it first
    handlers.resign = elector.resign
    async with _standby_probe(liveness):
        await elector.acquire()
    serving = asyncio.create_task(operator())
    holding = asyncio.create_task(elector.hold())
    done, _ = await asyncio.wait({serving, holding}, return_when=asyncio.FIRST_COMPLETED)
    if holding in done and not elector.resigned:
        # Another replica may take over at any moment: stop acting, at once.
        stopping.flag.set()
        await serving
        return 1
    try:
        await serving  # a clean stop gave the Lease up as it began; a crash did not
    except Exception:
        log.exception("the operator's main loop failed")
    await elector.resign()
    holding.cancel()
    return stopping.exit_code()


@contextlib.asynccontextmanager
async def _webhook(kube: Kube, settings: Settings) -> AsyncIterator[None]:
    """The admission webhook, served by this replica whether it leads or not (see
    almanac.controller.webhook)."""
    if not settings.webhook_port:
        yield
        return
    server = await webhook.serve(kube, settings, settings.webhook_certificate)
    try:
        yield
    finally:
        await server.stop()


class _Stopping:
    """The operator's stop flag, and whether a stop was asked for.

    :meth:`take_signals` is called once the operator serves (after kopf installed its
    own handlers, which these replace): SIGTERM and SIGINT are remembered as a request,
    so that kopf stopping without one is told apart as a failure, and a stop that hangs
    ends the process after STOP_GRACE_SECONDS."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()
        self.asked = False
        self._timer: threading.Timer | None = None

    def take_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: signal.Signals) -> None:
        log.info("%s received: stopping", signum.name)
        self.asked = True
        self.flag.set()
        if self._timer is None:
            self._timer = threading.Timer(STOP_GRACE_SECONDS, _hard_exit)
            self._timer.daemon = True
            self._timer.start()

    def exit_code(self) -> int:
        """0 after a requested stop; 1 when kopf ended on its own."""
        if self._timer is not None:
            self._timer.cancel()
        if self.asked:
            return 0
        log.error("the operator stopped without being asked to (see the errors above): exiting")
        return 1


def _hard_exit() -> None:
    log.error("the operator did not stop within %ss of the signal: exiting", STOP_GRACE_SECONDS)
    logging.shutdown()
    os._exit(1)


@contextlib.asynccontextmanager
async def _standby_probe(liveness: str | None) -> AsyncIterator[None]:
    """While a replica waits for the Lease, its liveness URL answers 200 (kopf, which
    serves it otherwise, is not running yet): a healthy standby is not restarted."""
    if not liveness:
        yield
        return
    url = urlsplit(liveness)

    async def standby(_: web.Request) -> web.Response:
        return web.json_response({"standby": "waiting for the Lease"})

    app = web.Application()
    app.router.add_get(url.path or "/", standby)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, url.hostname, url.port).start()
    try:
        yield
    finally:
        await runner.cleanup()  # frees the port for kopf's own endpoint


def _self_managed_certificate(args: argparse.Namespace) -> SelfManagedCertificate | None:
    """From the --webhook-* flags; a ValueError says what is missing."""
    if not args.webhook_port:
        return None
    if args.webhook_cert_dir:
        if args.webhook_secret:
            raise ValueError("--webhook-cert-dir and --webhook-secret: give one of them")
        return None
    if not args.webhook_secret:
        raise ValueError(
            "--webhook-port needs a certificate: --webhook-cert-dir DIR (tls.crt, tls.key), "
            "or --webhook-secret NAME with --webhook-configuration and --webhook-service "
            "for one the operator makes"
        )
    if not args.webhook_configuration or not (args.webhook_service or args.webhook_dns_name):
        raise ValueError(
            "--webhook-secret needs --webhook-configuration (whose caBundle gets the CA) "
            "and --webhook-service or --webhook-dns-name (the names the certificate is for)"
        )
    return SelfManagedCertificate.for_service(
        args.webhook_namespace or os.environ.get("POD_NAMESPACE") or "default",
        args.webhook_secret,
        args.webhook_configuration,
        args.webhook_service,
        *args.webhook_dns_name,
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The operator's settings: ALMANAC_* variables, then the flags given, which win
    (``--notify-allowed-hosts ""`` too: webhooks off whatever the variable says). A wrong
    value is a ValueError naming it."""
    settings = Settings.from_env(
        default_timezone=args.default_timezone,
        namespaces=tuple(args.namespace) if args.namespace else None,
        rerun_delay=timedelta(seconds=args.rerun_delay) if args.rerun_delay else None,
        webhook_port=args.webhook_port or None,
        webhook_cert_dir=args.webhook_cert_dir,
        webhook_certificate=_self_managed_certificate(args),
        mail_allowed_domains=args.mail_allowed_domains,
        mail_rate_limit=args.mail_rate_limit,
    )
    if args.feed_allowed_hosts is not None:
        settings = dataclasses.replace(settings, feed_allowed_hosts=args.feed_allowed_hosts or None)
    if args.notify_allowed_hosts is not None:
        settings = dataclasses.replace(
            settings, notify_allowed_hosts=args.notify_allowed_hosts or None
        )
    return settings


def run_from_args(args: argparse.Namespace) -> int:
    """`almanac run`, with the options :mod:`almanac.cli.main` parsed. A wrong ALMANAC_*
    value is exit code 2 with the message naming it."""
    try:
        settings = settings_from_args(args)
    except ValueError as error:
        print(f"almanac run: {error}", file=sys.stderr)
        return 2
    return run_operator(
        settings,
        liveness=args.liveness,
        log_format=args.log_format,
        verbose=args.verbose,
        metrics_port=args.metrics_port,
        election=Election(
            args.leader_election_namespace or os.environ.get("POD_NAMESPACE") or "default",
            args.leader_election_id,
        )
        if args.leader_elect
        else None,
    )
