"""The one module that talks to the Kubernetes API (besides kopf's own watching).

Everything else in Almanac decides; this module does. Bodies go in and out as plain
dicts in the API's own JSON shape (camelCase), so what is written here is what
``kubectl get -o yaml`` shows. Creating something whose name is derived from what it is
(a run from job and instant, a Job from run and service) answers :data:`EXISTS` when it
is already there: that answer is the lock against doing a thing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from almanac.api.names import (
    API_VERSION,
    COMPONENT,
    GROUP,
    LABEL_RUN,
    VERSION,
)
from almanac.schedule.engine import format_instant

MERGE_PATCH: Final = "application/merge-patch+json"

log = logging.getLogger(__name__)

Body = dict[str, Any]


@dataclass(frozen=True)
class Created:
    body: Body


@dataclass(frozen=True)
class Exists:
    """The object was already there: someone (perhaps we, before a restart) made it."""


@dataclass(frozen=True)
class Refused:
    """The API server refused the object (invalid, forbidden): its message, for users."""

    message: str


CreateResult = Created | Exists | Refused


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(when: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as Kubernetes writes times."""
    return None if when is None else format_instant(when)


def parse_time(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


# client-go's habit: a 429 Too Many Requests is tried again after the server's Retry-After.
# The API server answers 429 under load (API Priority and Fairness) and, for a moment
# after a CRD is created, "storage is (re)initializing": without a retry, one busy second
# would fail a fire, or hold the operator's start-up for kopf's 60 s retry.
TOO_MANY_REQUESTS_RETRIES: Final = 10


def retry_delay(error: ApiException, attempt: int) -> float | None:
    """Seconds to wait before trying a refused request again (attempt counts from 0),
    or None when it is not to be retried: not a 429, or retried enough."""
    if error.status != 429 or attempt >= TOO_MANY_REQUESTS_RETRIES:
        return None
    headers: Any = error.headers or {}
    try:
        seconds = float(headers.get("Retry-After", 1))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.1), 10.0)


class _ApiClient(client.ApiClient):
    """The kubernetes client, retrying 429 answers (see retry_delay)."""

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return await super().request(*args, **kwargs)
            except ApiException as error:
                delay = retry_delay(error, attempt)
                if delay is None:
                    raise
                log.info("API server busy (%s): trying again in %.1fs", api_message(error), delay)
                await asyncio.sleep(delay)
                attempt += 1


def api_message(error: ApiException) -> str:
    """The API server's own message (Status.message), else the HTTP reason."""
    try:
        return str(json.loads(error.body or "").get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


class Kube:
    """Async access to the objects Almanac reads and writes."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)

    @classmethod
    async def connect(cls) -> Kube:
        """In a Pod, its ServiceAccount; elsewhere the current kubeconfig, like kubectl."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return cls(_ApiClient())
        except config.ConfigException:
            configuration = client.Configuration()
            await config.load_kube_config(client_configuration=configuration)
            return cls(_ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()

    def _dict(self, obj: Any) -> Body:
        result: Body = self.api.sanitize_for_serialization(obj)
        return result

    # --- custom resources ---------------------------------------------------------

    async def get(self, plural: str, namespace: str, name: str) -> Body | None:
        try:
            body: Body = await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
            return body
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list_objects(self, plural: str, namespace: str, selector: str = "") -> list[Body]:
        result = await self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, label_selector=selector
        )
        items: list[Body] = result["items"]
        return items

    async def create(self, plural: str, namespace: str, body: Body) -> CreateResult:
        try:
            created = await self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, body
            )
            return Created(created)
        except ApiException as error:
            return _create_error(error)

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        """Deletes in the background: the garbage collector removes what it owns."""
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Body
    ) -> Body | None:
        """A JSON merge patch of the status subresource: None values remove fields.
        None answers an object that is gone."""
        try:
            patched: Body = await self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]  # missing from stubs
            )
            return patched
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def patch_annotations(
        self,
        plural: str,
        namespace: str,
        name: str,
        annotations: dict[str, str | None],
        resource_version: str | None = None,
    ) -> Body | None:
        """Sets or (with None) removes annotations. With resource_version, only if the
        object has not changed since: None answers a conflict, so that of two callers
        consuming one annotation, exactly one wins."""
        metadata: Body = {"annotations": annotations}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        try:
            patched: Body = await self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"metadata": metadata},
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]  # missing from stubs
            )
            return patched
        except ApiException as error:
            if error.status in (404, 409):
                return None
            raise

    # --- batch/v1 Jobs --------------------------------------------------------------

    async def list_jobs(self, namespace: str, run: str) -> list[Body]:
        result = await self.batch.list_namespaced_job(
            namespace, label_selector=f"{LABEL_RUN}={run}"
        )
        return [self._dict(job) for job in result.items]

    async def create_job(self, namespace: str, body: Body) -> CreateResult:
        try:
            # The client serializes plain dicts as they are; its stubs want a V1Job.
            created = await self.batch.create_namespaced_job(namespace, body)  # type: ignore[arg-type]
            return Created(self._dict(created))
        except ApiException as error:
            return _create_error(error)

    # --- Leases (leader election) ------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> Body | None:
        try:
            return self._dict(await self.coordination.read_namespaced_lease(name, namespace))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def create_lease(self, namespace: str, body: Body) -> CreateResult:
        try:
            created = await self.coordination.create_namespaced_lease(
                namespace,
                body,  # type: ignore[arg-type]  # a dict, serialized as it is
            )
            return Created(self._dict(created))
        except ApiException as error:
            return _create_error(error)

    async def replace_lease(self, namespace: str, name: str, body: Body) -> Body | None:
        """Replaces the Lease if its resourceVersion is still current; None on conflict."""
        try:
            replaced = await self.coordination.replace_namespaced_lease(
                name,
                namespace,
                body,  # type: ignore[arg-type]
            )
            return self._dict(replaced)
        except ApiException as error:
            if error.status in (404, 409):
                return None
            raise

    # --- Events -----------------------------------------------------------------------

    async def event(self, obj: Body, type_: str, reason: str, message: str) -> None:
        """Posts a core/v1 Event on obj, as `kubectl describe` and `get events` show.

        Events are the operator's decisions (a run created, a service started, a fire
        missed), so each is also the one log line about it: INFO, or WARNING for a
        Warning Event, naming the object as ``namespace/kind/name``. An Event that
        cannot be posted is logged, never raised: it must not stop work.
        """
        meta = obj["metadata"]
        log.log(
            logging.WARNING if type_ == "Warning" else logging.INFO,
            "%s/%s/%s: %s: %s",
            meta["namespace"],
            obj["kind"],
            meta["name"],
            reason,
            message,
        )
        when = timestamp(now())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", API_VERSION),
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
        }
        try:
            await self.core.create_namespaced_event(meta["namespace"], event)  # type: ignore[arg-type]
        except ApiException as error:
            log.warning(
                "could not post Event %s on %s: %s", reason, meta["name"], api_message(error)
            )

    async def list_events(self, namespace: str, name: str, kind: str) -> list[Body]:
        """The Events on the object ``kind``/``name``, in the API's order (the plugin's
        ``describe``, ``rerun`` and ``run`` read them)."""
        result = await self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},involvedObject.kind={kind}"
        )
        return [self._dict(event) for event in result.items]

    # --- the kubectl plugin ------------------------------------------------------------

    @classmethod
    async def connect_kubeconfig(
        cls, kubeconfig: str | None = None, context: str | None = None
    ) -> tuple[Kube, str | None]:
        """As kubectl: ``kubeconfig`` (else $KUBECONFIG, else ~/.kube/config) and its
        ``context`` (else the current one). Returns the client and the context's
        namespace (None when it names none); ``config.ConfigException`` when there is no
        usable kubeconfig. The file is never written back (no token refresh persisted)."""
        configuration = client.Configuration()
        loader = await config.load_kube_config(
            config_file=kubeconfig,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
        current = loader.current_context or {}
        namespace = (current.get("context") or {}).get("namespace")
        return cls(_ApiClient(configuration)), namespace or None


def _create_error(error: ApiException) -> CreateResult:
    if error.status == 409:
        return Exists()
    if error.status in (400, 403, 422):
        return Refused(api_message(error))
    raise error


def owner_reference(owner: Body) -> Body:
    """Makes owner the controller of what it creates, for garbage collection."""
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
