"""The validating admission webhook: served by every replica, leader or not.

The API server calls whichever ready pod its Service picks, so a standby must answer as
well as the leader does (with ``failurePolicy: Fail`` a replica that does not answer
would refuse every other write). This server therefore runs beside the leader election,
not inside kopf (which only the leader runs), and needs nothing the leader's store holds:
a ScheduledJob's Calendars are read from the API for the review.

What is decided is pure (:mod:`almanac.controller.admission`); here are the HTTP, the
TLS and the two questions only the API server can answer: whether the requesting user may
create Jobs (a SubjectAccessReview) and who the operator itself is (a SelfSubjectReview),
so that its own run creates are told apart from anyone else's.

TLS comes from a folder (a mounted Secret that cert-manager or the administrator fills)
or, without one, from :func:`provision`: a CA and certificate the operator keeps in a
Secret and whose CA it writes into the ValidatingWebhookConfiguration's ``caBundle``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from almanac.api import names as api
from almanac.api.impact import (
    calendars_of,
    never_fire_again,
    not_checked_warning,
    referring_jobs,
    refers_to_a_cluster_calendar,
)
from almanac.controller import certificates
from almanac.controller.admission import (
    RUN_CREATE_REFUSAL,
    Review,
    feed_url_errors,
    jobs_permission_refusal,
    needs_jobs_permission,
    review_backfill,
    review_calendar,
    review_scheduled_job,
)
from almanac.controller.certificates import WebhookPki
from almanac.controller.settings import SelfManagedCertificate, Settings
from almanac.kube import Collection, Kube
from almanac.notifications.recipients import AllowList
from almanac.notifications.smtp import SmtpSettings

log = logging.getLogger(__name__)

#: The paths the ValidatingWebhookConfiguration calls, by the resource they review (a
#: test keeps the chart in step).
PATHS = {
    api.SCHEDULED_JOBS: "/validate-scheduledjob",
    api.CALENDARS: "/validate-calendar",
    api.CLUSTER_CALENDARS: "/validate-clustercalendar",
    api.RUNS: "/validate-scheduledjobrun",
    api.BACKFILLS: "/validate-backfill",
}
#: The operations the configuration sends (deletes need no review).
OPERATIONS = ("CREATE", "UPDATE")


@dataclass(frozen=True)
class Verdict:
    """The answer to one AdmissionReview: allowed, or refused with an HTTP-like code."""

    allowed: bool
    message: str = ""
    code: int = 200
    warnings: tuple[str, ...] = ()

    @classmethod
    def of(cls, review: Review) -> Verdict:
        if review.allowed:
            return cls(True, warnings=tuple(review.warnings))
        return cls(False, "\n".join(review.errors), 422, tuple(review.warnings))

    def response(self, uid: str) -> dict[str, Any]:
        answer: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            answer["status"] = {"code": self.code, "message": self.message}
        if self.warnings:
            answer["warnings"] = list(self.warnings)
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}


class Admission:
    """Reviews one admission request (the ``request`` of an AdmissionReview)."""

    def __init__(self, kube: Kube, settings: Settings, identity: str | None) -> None:
        self.kube = kube
        self.settings = settings
        self.identity = identity
        """The operator's own user name; None if it could not be learnt (then runs are
        refused to everyone, the operator included: fail closed)."""
        self.mail_domains = mail_domains(settings)

    async def review(
        self, resource: str, request: Mapping[str, Any], deadline: float | None = None
    ) -> Verdict:
        """``deadline`` (a :func:`time.monotonic` reading): when the answer is due; the
        work a review can cut short (a calendar edit's warnings) stops there."""
        body: Mapping[str, Any] = request.get("object") or {}
        old: Mapping[str, Any] | None = request.get("oldObject")
        userinfo: Mapping[str, Any] = request.get("userInfo") or {}
        operation = str(request.get("operation", ""))
        namespace = str(request.get("namespace") or "")
        if resource in (api.CALENDARS, api.CLUSTER_CALENDARS):
            return Verdict.of(await self._review_calendar(body, old, namespace, deadline))
        if resource == api.RUNS and operation == "CREATE" and not self._is_operator(userinfo):
            return Verdict(False, RUN_CREATE_REFUSAL, 403)
        kind = {api.SCHEDULED_JOBS: "ScheduledJob", api.BACKFILLS: "Backfill"}.get(
            resource, "ScheduledJobRun"
        )
        if not self._is_operator(userinfo) and needs_jobs_permission(kind, operation, old, body):
            try:
                allowed = await self.kube.may(userinfo, "create", "batch", "jobs", namespace)
            except Exception as error:  # fail closed, and say why
                log.warning("access review failed: %s", error)
                message = f"could not check whether the user may create Jobs ({error}); try again"
                return Verdict(False, message, 503)
            if not allowed:
                return Verdict(False, jobs_permission_refusal(userinfo, namespace), 403)
        if resource == api.RUNS:
            return Verdict(True)
        if resource == api.BACKFILLS:
            return await self._review_backfill(body, namespace, operation)
        calendars = await self._calendars_for(body, namespace)
        # The engine's search is bounded, but not free: off the event loop, which on the
        # leader also fires every job.
        review = await asyncio.to_thread(
            review_scheduled_job,
            body,
            calendars,
            default_time_zone=self.settings.default_timezone,
            now=datetime.now(UTC),
            mail_domains=self.mail_domains,
            notify_hosts=self.settings.notify_allowed_hosts,
            old=old,
        )
        return Verdict.of(review)

    async def _review_calendar(
        self,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        namespace: str,
        deadline: float | None,
    ) -> Review:
        """A (Cluster)Calendar's own fields and feed host, then what it does to the jobs
        that refer to it: those of its namespace, or for a ClusterCalendar those of every
        namespace this operator serves, as many as ``deadline`` leaves time for."""
        # Off the event loop too: the model parses and checks an inline ``spec.ical`` (up
        # to 256 KiB), and a server-side dry run of a new text in a loop would otherwise
        # hold the leader's fires.
        review = await asyncio.to_thread(review_calendar, body)
        if review.allowed:
            review.errors += feed_url_errors(body, self.settings.feed_allowed_hosts, old)
        if not review.allowed:
            return review
        review.warnings += await self._never_fire_again(body, namespace, deadline)
        return review

    async def _never_fire_again(
        self, body: Mapping[str, Any], namespace: str, deadline: float | None
    ) -> list[str]:
        """The warnings of :func:`never_fire_again` for every job that refers to the
        (Cluster)Calendar ``body``, or as many as ``deadline`` leaves time for, and one
        for the rest.

        The jobs are listed a page at a time and each page is checked (in a thread) while
        the next is on its way: the LIST of 10,000 jobs took 1.2-2.3 s, most of it the API
        server's, and their check 0.6 s more, so that one after the other they did not fit
        in half the chart's 5 s."""
        kind = str(body.get("kind") or "Calendar")
        pages: asyncio.Queue[Sequence[Mapping[str, Any]] | None] = asyncio.Queue()
        lister = asyncio.create_task(self._list_referring(body, namespace, pages))
        warnings: list[str] = []
        referring = checked = 0
        now = datetime.now(UTC)
        calendars: list[Mapping[str, Any]] | None = None
        try:
            async with asyncio.timeout_at(deadline):
                while (page := await pages.get()) is not None:
                    referring += len(page)
                    if calendars is None:  # only once some job refers to it
                        calendars = await self._calendars(namespace)
                    found, done = await asyncio.to_thread(
                        never_fire_again,
                        body,
                        page,
                        calendars,
                        now,
                        self.settings.default_timezone,
                        deadline=deadline,
                    )
                    warnings += found
                    checked += done
                    if done < len(page):
                        break  # the deadline passed in the thread
        except TimeoutError:
            pass
        finally:
            lister.cancel()  # nothing if it is done
        listed = lister.done() and not lister.cancelled()
        if listed:
            if (error := lister.exception()) is not None:
                raise error
            while not pages.empty():  # listed in time, not checked in time
                referring += len(pages.get_nowait() or [])
        if not listed:
            warnings.append(not_checked_warning(kind, checked=checked))
        elif checked < referring:
            warnings.append(not_checked_warning(kind, referring - checked, referring))
        return warnings

    async def _list_referring(
        self,
        body: Mapping[str, Any],
        namespace: str,
        pages: asyncio.Queue[Sequence[Mapping[str, Any]] | None],
    ) -> None:
        """Puts the ScheduledJobs that refer to the (Cluster)Calendar ``body`` into
        ``pages``, a page of the LIST at a time (those of ``namespace``, or "" for every
        namespace the operator serves), in namespace and name order; None after the last."""
        name = str((body.get("metadata") or {}).get("name"))
        kind = str(body.get("kind") or "Calendar")
        served = (namespace,) if namespace else self.settings.namespaces or ("",)
        try:
            for n in served:
                collection = Collection("ScheduledJob", api.API_VERSION, api.SCHEDULED_JOBS, n)
                async for items, _ in self.kube.list_pages(collection):
                    found = referring_jobs(name, items, kind)
                    if found:
                        pages.put_nowait(found)
        finally:  # also when the LIST fails: the reader then learns why from this task
            pages.put_nowait(None)

    async def _calendars(self, namespace: str) -> list[Mapping[str, Any]]:
        """Everything a job of ``namespace`` ("" every namespace served) can refer to:
        the Calendars there and the ClusterCalendars."""
        served = (namespace,) if namespace else self.settings.namespaces or ("",)
        return [
            *[c for n in served for c in await self.kube.list_objects(api.CALENDARS, n)],
            *await self.kube.list_cluster_calendars(),
        ]

    async def _review_backfill(
        self, body: Mapping[str, Any], namespace: str, operation: str
    ) -> Verdict:
        """Only a create is reviewed: the spec is immutable (the CRD says so), and a
        Backfill whose range has passed must stay editable (labels, annotations)."""
        if operation != "CREATE":
            return Verdict(True)
        job_name = (body.get("spec") or {}).get("scheduledJob")
        job = (
            await self.kube.get(api.SCHEDULED_JOBS, namespace, job_name)
            if isinstance(job_name, str) and job_name
            else None
        )
        calendars = await self._calendars_for(job, namespace) if job else {}
        # Up to 10,000 instants of the engine: off the event loop.
        review = await asyncio.to_thread(
            review_backfill,
            body,
            job,
            calendars,
            default_time_zone=self.settings.default_timezone,
            now=datetime.now(UTC),
        )
        return Verdict.of(review)

    async def _calendars_for(
        self, job: Mapping[str, Any], namespace: str
    ) -> dict[str, Mapping[str, Any]]:
        """What a ScheduledJob of ``namespace`` can refer to (:func:`calendars_of`): the
        namespace's Calendars, and the ClusterCalendars when the job names one."""
        bodies = await self.kube.list_objects(api.CALENDARS, namespace)  # items carry kind
        if refers_to_a_cluster_calendar(job):
            bodies += await self.kube.list_cluster_calendars()
        return calendars_of(job, bodies)

    def _is_operator(self, userinfo: Mapping[str, Any]) -> bool:
        return self.identity is not None and userinfo.get("username") == self.identity


def mail_domains(settings: Settings) -> AllowList | None:
    """The recipient allow-list in force: with SMTP configured, its own (set or by
    default); without, the configured one if any (None: addresses are checked for their
    form only)."""
    smtp = SmtpSettings.from_env()
    if smtp is None:
        return settings.mail_allowed_domains
    if settings.mail_allowed_domains is not None:
        return settings.mail_allowed_domains
    return smtp.recipient_domains


async def provision(kube: Kube, where: SelfManagedCertificate) -> WebhookPki:
    """The certificate every replica serves: the Secret's if it is still usable, else a
    new one (the first replica to write it wins; the others read the winner's). Then
    the CA goes into every webhook's caBundle of the configuration, if not already."""
    pki: WebhookPki | None = None
    while pki is None:
        secret = await kube.get_secret(where.namespace, where.secret)
        found = WebhookPki.from_secret_data((secret or {}).get("data"))
        now = datetime.now(UTC)
        if found is not None and certificates.usable(found, where.dns_names, now):
            pki = found
            continue
        new = certificates.generate(where.dns_names, now)
        reason = "none yet" if found is None else "the old one is due for renewal"
        if await kube.put_secret(where.namespace, where.secret, new.secret_data(), secret):
            log.info(
                "webhook certificate generated for %s (%s)", ", ".join(where.dns_names), reason
            )
            pki = new
        # else another replica wrote it first: read theirs
    if await kube.set_ca_bundle(where.configuration, pki.ca):
        log.info("caBundle of ValidatingWebhookConfiguration %s updated", where.configuration)
    return pki


def tls_context(cert_dir: str | None, pki: WebhookPki | None) -> ssl.SSLContext:
    """From the folder's tls.crt and tls.key, or from ``pki`` (written to a private
    temporary folder for the moment of loading: ssl reads files only)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if pki is None:
        folder = Path(cert_dir or ".")
        context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
        return context
    with tempfile.TemporaryDirectory() as private:
        (Path(private) / "tls.crt").write_bytes(pki.cert)
        (Path(private) / "tls.key").write_bytes(pki.key)
        context.load_cert_chain(Path(private) / "tls.crt", Path(private) / "tls.key")
    return context


#: How often a certificate folder is checked for a renewed certificate (cert-manager
#: renews into the Secret; the kubelet updates the mounted files within about a minute).
RELOAD_SECONDS = 60.0


class WebhookServer:
    """The HTTPS server that answers the API server's AdmissionReviews.

    With a certificate folder it reloads the certificate when the files change, so a
    renewal needs no restart (new connections get the new one)."""

    def __init__(
        self,
        admission: Admission,
        port: int,
        context: ssl.SSLContext,
        cert_dir: str | None = None,
    ) -> None:
        self.admission = admission
        self.port = port
        self.context = context
        self.cert_dir = cert_dir
        self._runner: web.AppRunner | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._loaded = _fingerprint(cert_dir)

    async def start(self) -> None:
        app = web.Application()
        for resource, path in PATHS.items():
            app.router.add_post(path, self._handler(resource))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "0.0.0.0", self.port, ssl_context=self.context).start()
        log.info("admission webhook serving on port %s (%s)", self.port, ", ".join(PATHS.values()))
        if self.cert_dir:
            self._reloading = asyncio.create_task(self._reload_every(RELOAD_SECONDS))

    async def stop(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def reload_if_changed(self) -> bool:
        """Loads the folder's certificate again if its files changed; True if it did."""
        now = _fingerprint(self.cert_dir)
        if now == self._loaded or self.cert_dir is None:
            return False
        try:
            folder = Path(self.cert_dir)
            self.context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
        except (OSError, ssl.SSLError) as error:  # half-written: the next check retries
            log.warning("webhook certificate in %s not reloaded: %s", self.cert_dir, error)
            return False
        self._loaded = now
        log.info("webhook certificate reloaded from %s", self.cert_dir)
        return True

    async def _reload_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.reload_if_changed()

    def _handler(self, resource: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            try:
                review = await request.json()
                call: Mapping[str, Any] = review["request"]
                uid = str(call["uid"])
            except (ValueError, KeyError, TypeError):
                return web.json_response({"error": "not an AdmissionReview"}, status=400)
            deadline = time.monotonic() + answer_within(request.query.get("timeout"))
            verdict = await self.admission.review(resource, call, deadline)
            if not verdict.allowed:
                log.info("admission refused (%s): %s", resource, verdict.message)
            return web.json_response(verdict.response(uid))

        return handle


#: The API server's wait for a webhook when it does not say (``timeoutSeconds``' default).
DEFAULT_TIMEOUT_SECONDS = 10.0


def answer_within(timeout: str | None) -> float:
    """Seconds a review may take: half the API server's wait. The API server sends that
    wait as the ``timeout`` query parameter, ``timeoutSeconds`` (1 to 30) written as a Go
    duration: ``5s``. Half, because the answer must still be written, sent and read, by
    a process that on the leader also fires every job."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", timeout or "")
    return (float(match.group(1)) if match else DEFAULT_TIMEOUT_SECONDS) / 2


def _fingerprint(cert_dir: str | None) -> bytes:
    """The folder's certificate and key as they are now (empty if unreadable)."""
    if not cert_dir:
        return b""
    try:
        return b"".join((Path(cert_dir) / f).read_bytes() for f in ("tls.crt", "tls.key"))
    except OSError:
        return b""


async def serve(
    kube: Kube, settings: Settings, self_managed: SelfManagedCertificate | None
) -> WebhookServer:
    """Starts the webhook server as ``settings`` say (port, certificate folder or a
    self-managed certificate)."""
    pki = await provision(kube, self_managed) if self_managed else None
    try:
        identity: str | None = await kube.whoami()
    except Exception as error:
        log.warning("could not learn the operator's user name (%s): runs are refused", error)
        identity = None
    server = WebhookServer(
        Admission(kube, settings, identity),
        settings.webhook_port,
        tls_context(settings.webhook_cert_dir, pki),
        cert_dir=None if pki else settings.webhook_cert_dir,
    )
    await server.start()
    return server
