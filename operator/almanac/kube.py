"""The one module that talks to the Kubernetes API.

Everything else in Almanac decides; this module does. Bodies go in and out as plain
dicts in the API's own JSON shape (camelCase), so what is written here is what
``kubectl get -o yaml`` shows. Creating something whose name is derived from what it is
(a run from job and instant, a Job from run and service) answers :data:`EXISTS` when it
is already there: that answer is the lock against doing a thing twice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp

from almanac import wire
from almanac.api.bounds import EVENT_MESSAGE_MAX_BYTES, truncate
from almanac.api.names import (
    API_VERSION,
    CLUSTER_CALENDARS,
    COMPONENT,
    GROUP,
    LABEL_RUN,
    VERSION,
)
from almanac.lean_client import ApiException, ConfigException, client, config
from almanac.times import timestamp

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
class Conflict:
    """A write's resourceVersion precondition failed: the object changed since it was read."""


class NotAllowed(RuntimeError):
    """The operator may not read an object a user named (RBAC said 403): a feed's
    ConfigMap or CA Secret. The message says which, and what grants it."""


class NotLeader(RuntimeError):
    """A write was attempted while this replica does not hold the Lease (fencing)."""


#: What a request raises when the API server is away, slow or refusing: worth a quiet
#: retry, unlike any other exception (a bug, or an input nobody foresaw).
API_ERRORS: Final = (ApiException, aiohttp.ClientError, TimeoutError, NotLeader)


@dataclass(frozen=True)
class Refused:
    """The API server refused the object (invalid, forbidden): its message, for users."""

    message: str


CreateResult = Created | Exists | Refused


def now() -> datetime:
    return datetime.now(UTC)


# client-go's habit: a 429 Too Many Requests is tried again after the server's Retry-After.
# The API server answers 429 under load (API Priority and Fairness) and, for a moment
# after a CRD is created, "storage is (re)initializing": without a retry, one busy second
# would fail a fire, or hold the operator's start-up for kopf's 60 s retry.
TOO_MANY_REQUESTS_RETRIES: Final = 10
# Seconds the API server may take to accept a connection, or between two reads of its
# answer: with the API server (or etcd) away, a call fails after this and its decision is
# retried, instead of hanging the reconcile. The time a request waits for its turn
# (IN_FLIGHT) or for one of the client's connections is not counted: in a burst of 1,000
# fires, requests that queued behind our own others timed out without ever being sent,
# and their decisions were retried, adding load exactly when the API server had the
# least to spare.
REQUEST_TIMEOUT: Final = 20.0
_TIMEOUT: Final = aiohttp.ClientTimeout(sock_connect=REQUEST_TIMEOUT, sock_read=REQUEST_TIMEOUT)
# Requests on their way at once, watches aside; the others wait their turn. Each request
# in flight holds a connection, and each connection's TLS layer a 256 KB read buffer: a
# burst of fires opened all of the client's 100 (25 MB, tracemalloc), where 32 keep this
# 2-core API server as busy as it gets (bench_fleet.py's limit sends 32 at once).
IN_FLIGHT: Final = 32
# A Lease renewal that takes longer than this has failed: the next try comes sooner.
LEASE_TIMEOUT: Final = 5.0
# Objects per page of the LISTs (see Kube.list_pages).
LIST_PAGE: Final = 500
# Seconds one watch request lasts on the server's side before it ends and is made again
# from the last resourceVersion (client-go's reflector picks 5 to 10 minutes); a bookmark
# comes about every minute in between, so a silence of 30 s more is a dead connection.
WATCH_SECONDS: Final = 300
_WATCH_TIMEOUT: Final = aiohttp.ClientTimeout(sock_connect=5, sock_read=WATCH_SECONDS + 30)


class Expired(Exception):
    """A watch's resourceVersion is older than the API server keeps (410 Gone): what
    changed since is known only by listing again."""


@dataclass(frozen=True)
class Collection:
    """What the operator lists and watches: one kind, in one namespace ("" for all of
    them, or for a cluster-scoped kind), optionally by label."""

    kind: str
    api_version: str
    plural: str
    namespace: str = ""
    selector: str = ""

    @property
    def path(self) -> str:
        group = "api/v1" if self.api_version == "v1" else f"apis/{self.api_version}"
        where = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"/{group}{where}/{self.plural}"

    @property
    def query(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.selector)] if self.selector else []

    def holds(self, namespace: str) -> bool:
        """Whether an object in ``namespace`` ("" for cluster-scoped) belongs here."""
        return not self.namespace or namespace == self.namespace


def collections(namespace: str) -> list[Collection]:
    """What the operator's store holds of a namespace ("" for all): its ScheduledJobs,
    Calendars, runs, Backfills and the runs' batch Jobs (by their label)."""
    return [
        Collection("ScheduledJob", API_VERSION, "scheduledjobs", namespace),
        Collection("Calendar", API_VERSION, "calendars", namespace),
        Collection("ScheduledJobRun", API_VERSION, "scheduledjobruns", namespace),
        Collection("Backfill", API_VERSION, "backfills", namespace),
        Collection("Job", "batch/v1", "jobs", namespace, selector=LABEL_RUN),
    ]


#: The ClusterCalendars: cluster-scoped, listed and watched once whatever the namespaces.
CLUSTER_CALENDAR_COLLECTION: Final = Collection("ClusterCalendar", API_VERSION, CLUSTER_CALENDARS)


def _continued(token: str) -> list[tuple[str, str]]:
    return [("continue", token)] if token else []


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


#: What makes aiohttp's ``trust_env`` do anything: proxy variables and a netrc file.
PROXY_VARIABLES: Final = ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy")


def environment_routes_requests(environ: Mapping[str, str], home: str) -> bool:
    """Whether the process environment may change how a request goes out (a proxy
    variable, either case, or a netrc file), as aiohttp's ``trust_env`` reads it."""
    if any(environ.get(v) or environ.get(v.upper()) for v in PROXY_VARIABLES):
        return True
    netrc = environ.get("NETRC") or os.path.join(home, ".netrc")
    return os.path.exists(netrc)


class _ApiClient(client.ApiClient):
    """The kubernetes client's configuration, credentials and connection pool, which
    :meth:`Kube._request` sends through (none of its generated API classes).

    The client's session trusts the environment, so aiohttp looks up a proxy and a
    netrc entry for every request, each in a worker thread (about a sixth of the
    operator's CPU in a profile of a busy minute). Where the environment holds neither,
    that lookup is switched off: it could only answer "none"."""

    def __init__(self, configuration: client.Configuration | None = None) -> None:
        super().__init__(configuration)
        if not environment_routes_requests(os.environ, os.path.expanduser("~")):
            self.rest_client.pool_manager._trust_env = False


def transient_failure(error: BaseException) -> str | None:
    """What a failed request says when the cause is the API server's state rather than a
    bug (no answer in time, a connection refused or cut, a 5xx, a 429 retried enough):
    worth one line in the log and a retry. None for anything else."""
    if isinstance(error, TimeoutError):
        return f"no answer from the API server within {REQUEST_TIMEOUT:g} s"
    if isinstance(error, aiohttp.ClientError):
        return f"the connection to the API server failed ({type(error).__name__})"
    if isinstance(error, ApiException) and ((error.status or 0) >= 500 or error.status == 429):
        return f"the API server answered {error.status}: {api_message(error)}"
    return None


def error_message(error: Exception) -> str:
    """What a failed request says: the API server's message, else the error's kind (never
    a URL's query, which could carry a token)."""
    return api_message(error) if isinstance(error, ApiException) else type(error).__name__


def api_message(error: ApiException) -> str:
    """The API server's own message (Status.message), else the HTTP reason."""
    try:
        return str(wire.loads(error.body or "").get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


class Kube:
    """Async access to the objects Almanac reads and writes."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._turns = asyncio.Semaphore(IN_FLIGHT)
        self.fence: Callable[[], bool] | None = None
        """When set (leader election), every write first asks it whether this replica
        still holds the Lease, and raises :class:`NotLeader` if not."""

    @classmethod
    async def connect(cls) -> Kube:
        """In a Pod, its ServiceAccount; elsewhere the current kubeconfig, like kubectl."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return cls(_ApiClient())
        except ConfigException:
            configuration = client.Configuration()
            await config.load_kube_config(client_configuration=configuration)
            return cls(_ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()

    def _check_fence(self) -> None:
        if self.fence is not None and not self.fence():
            raise NotLeader("this replica no longer holds the Lease: not writing")

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        body: Body | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        timeout: aiohttp.ClientTimeout = _TIMEOUT,
        content_type: str = "application/json",
        fenced: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request on the client's connection pool, with its credentials (refreshed
        as the client does: a token file, an exec plugin); the answer is the caller's to
        read. Raises ApiException for an answer other than 2xx, after trying a 429 again
        (:func:`retry_delay`).

        Sent here rather than through the client's ``call_api``: that walked every body
        key by key to serialise it (an eighth of the operator's CPU in a burst of 1,000
        fires, py-spy), let aiohttp look the body's type up in its payload registry
        (another 4 %), and parsed answers into typed models only for us to turn them
        back into dicts (a third of the CPU at a fire, before this module kept dicts).

        A ``fenced`` write asks the leadership fence before each attempt, once its turn
        has come: the turn (IN_FLIGHT) and a 429's Retry-After may take longer than the
        Lease's renew deadline, and a deposed leader must not write."""
        api = self.api
        rest = api.rest_client
        headers = {**api.default_headers, "Accept": "application/json"}
        encoded = None if body is None else wire.dumps(body)
        url = f"{api.configuration.host}{path}" + (f"?{urlencode(query)}" if query else "")
        extra: dict[str, Any] = {}
        if rest.proxy:
            extra.update(proxy=rest.proxy, proxy_headers=rest.proxy_headers)
        if rest.server_hostname:
            extra["server_hostname"] = rest.server_hostname
        attempt = 0
        while True:
            if fenced:
                self._check_fence()
            await api.update_params_for_auth(headers, [], ["BearerToken"])
            data = None  # a payload made here, not looked up in aiohttp's registry
            if encoded is not None:
                data = aiohttp.payload.BytesPayload(encoded, content_type=content_type)
            async with rest.pool_manager.request(
                method, url, data=data, headers=headers, timeout=timeout, **extra
            ) as response:
                if 200 <= response.status <= 299:
                    yield response
                    return
                error = ApiException(status=response.status, reason=response.reason)
                error.body = await response.read()
                error.headers = response.headers
            delay = retry_delay(error, attempt)
            if delay is None:
                raise error
            log.info("API server busy (%s): trying again in %.1fs", api_message(error), delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _json(
        self,
        method: str,
        path: str,
        body: Body | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        answer: bool = True,
        timeout: float | None = None,
        content_type: str = "application/json",
        fenced: bool = False,
    ) -> Any:
        """One request whose answer stays the API's JSON, as plain dicts (None with
        ``answer=False``: not even parsed)."""
        limit = _TIMEOUT if timeout is None else aiohttp.ClientTimeout(total=timeout)
        async with (
            self._turns,
            self._request(
                method,
                path,
                body,
                query=query,
                timeout=limit,
                content_type=content_type,
                fenced=fenced,
            ) as response,
        ):
            raw = await response.read()
        return wire.loads(raw) if answer else None

    # --- custom resources ---------------------------------------------------------

    async def get(self, plural: str, namespace: str, name: str) -> Body | None:
        """One object; ``namespace`` empty for a cluster-scoped one (ClusterCalendar)."""
        try:
            body: Body = await self._json("GET", _custom(plural, namespace, name))
            return body
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list_objects(self, plural: str, namespace: str, selector: str = "") -> list[Body]:
        query = [("labelSelector", selector)] if selector else []
        result = await self._json("GET", _custom(plural, namespace), query=query)
        items: list[Body] = result["items"]
        return items

    async def create(self, plural: str, namespace: str, body: Body) -> CreateResult:
        self._check_fence()
        try:
            return Created(await self._json("POST", _custom(plural, namespace), body, fenced=True))
        except ApiException as error:
            return _create_error(error)

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        """Deletes in the background: the garbage collector removes what it owns."""
        self._check_fence()
        try:
            options = {"propagationPolicy": "Background"}
            path = _custom(plural, namespace, name)
            await self._json("DELETE", path, options, answer=False, fenced=True)
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Body,
        resource_version: str | None = None,
    ) -> Body | Conflict | None:
        """A JSON merge patch of the status subresource: None values remove fields.

        With ``resource_version``, only if the object is still at that version
        (:class:`Conflict` otherwise): a decision made from an older body never
        overwrites a newer one. None answers an object that is gone. ``namespace``
        empty for a cluster-scoped object (ClusterCalendar)."""
        self._check_fence()
        patch: Body = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        try:
            path = _custom(plural, namespace, name) + "/status"
            patched: Body = await self._json(
                "PATCH", path, patch, content_type=MERGE_PATCH, fenced=True
            )
            return patched
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 409:
                return Conflict()
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
        self._check_fence()
        if resource_version:
            metadata["resourceVersion"] = resource_version
        try:
            path = _custom(plural, namespace, name)
            patched: Body = await self._json(
                "PATCH", path, {"metadata": metadata}, content_type=MERGE_PATCH, fenced=True
            )
            return patched
        except ApiException as error:
            if error.status in (404, 409):
                return None
            raise

    async def list_pages(self, collection: Collection) -> AsyncIterator[tuple[list[Body], str]]:
        """The objects of ``collection``, a page (``LIST_PAGE`` objects) at a time, each
        with the list's resourceVersion, where a watch of it starts.

        In pages so that the caller stores each page before the next is read: one answer
        of 10,000 objects, decoded at once, set the operator's RSS (the allocator keeps
        the peak). The pages are one consistent snapshot (``continue``)."""
        token = ""
        while True:
            query = [("limit", str(LIST_PAGE)), *collection.query]
            listed = await self._json("GET", collection.path, query=query + _continued(token))
            items: list[Body] = listed.get("items") or []
            for item in items:  # list items carry no kind
                item.setdefault("kind", collection.kind)
                item.setdefault("apiVersion", collection.api_version)
            metadata = listed.get("metadata") or {}
            token = metadata.get("continue") or ""
            del listed
            yield items, str(metadata.get("resourceVersion") or "")
            if not token:
                return

    async def watch(self, collection: Collection, version: str) -> AsyncIterator[tuple[str, Body]]:
        """The changes to ``collection`` after ``version``, as (type, object): ADDED,
        MODIFIED, DELETED and BOOKMARK (only its resourceVersion is news). Ends when the
        server ends the request (``WATCH_SECONDS``). Raises :class:`Expired` when
        ``version`` is older than the API server keeps (410 Gone, as the answer or as an
        ERROR event), and ApiException for any other error, answered or streamed."""
        query = [
            ("watch", "1"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_SECONDS)),
            *collection.query,
        ]
        try:
            async with self._request(
                "GET", collection.path, query=query, timeout=_WATCH_TIMEOUT
            ) as response:
                async for event in _json_lines(response):
                    yield event
        except ApiException as error:
            if error.status == 410:
                raise Expired(collection.path) from None
            raise

    async def list_cluster_calendars(self) -> list[Body]:
        """Every ClusterCalendar (the admission webhook resolves a job's references)."""
        return [c async for page, _ in self.list_pages(CLUSTER_CALENDAR_COLLECTION) for c in page]

    # --- who is asking -------------------------------------------------------------

    async def whoami(self) -> str:
        """The user name this client authenticates as (a SelfSubjectReview)."""
        review = await self._json(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return str(review["status"]["userInfo"]["username"])

    async def may(
        self, user: Mapping[str, Any], verb: str, group: str, resource: str, namespace: str
    ) -> bool:
        """Whether ``user`` (an admission request's userInfo) may ``verb`` ``resource``
        in ``namespace`` (a SubjectAccessReview, as the API server would decide)."""
        spec = {
            "user": user.get("username"),
            "uid": user.get("uid"),
            "groups": user.get("groups"),
            "extra": user.get("extra"),
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": group,
                "resource": resource,
            },
        }
        review = await self._json(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {k: v for k, v in spec.items() if v is not None},
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    # --- batch/v1 Jobs --------------------------------------------------------------

    async def create_job(self, namespace: str, body: Body) -> CreateResult:
        self._check_fence()
        try:
            path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
            created = await self._json("POST", path, body, fenced=True)
            return Created(created)
        except ApiException as error:
            return _create_error(error)

    # --- Leases (leader election) ------------------------------------------------------

    def _lease_path(self, namespace: str, name: str = "") -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{path}/{name}" if name else path

    async def get_lease(self, namespace: str, name: str) -> Body | None:
        try:
            lease: Body = await self._json(
                "GET", self._lease_path(namespace, name), timeout=LEASE_TIMEOUT
            )
            return lease
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def create_lease(self, namespace: str, body: Body) -> CreateResult:
        try:
            path = self._lease_path(namespace)
            return Created(await self._json("POST", path, body, timeout=LEASE_TIMEOUT))
        except ApiException as error:
            return _create_error(error)

    async def replace_lease(self, namespace: str, name: str, body: Body) -> Body | None:
        """Replaces the Lease if its resourceVersion is still current; None on conflict."""
        try:
            path = self._lease_path(namespace, name)
            replaced: Body = await self._json("PUT", path, body, timeout=LEASE_TIMEOUT)
            return replaced
        except ApiException as error:
            if error.status in (404, 409):
                return None
            raise

    # --- The webhook's own certificate (every replica, leader or not: not fenced) ---

    async def get_secret(self, namespace: str, name: str) -> Body | None:
        try:
            secret: Body = await self._json("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
            return secret
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def get_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret, decoded (a feed's CA bundle); None if either is missing.
        The value is never logged."""
        try:
            secret = await self._json("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise NotAllowed(
                    f"the operator may not read Secret {namespace}/{name} (chart value "
                    "rbac.feedCABundleSecrets grants it)"
                ) from None
            raise
        value = (secret.get("data") or {}).get(key)
        return None if value is None else base64.b64decode(value).decode()

    async def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's ``data`` (a feed's iCalendar text); None if it does not exist."""
        try:
            found = await self._json("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise NotAllowed(
                    f"the operator may not read ConfigMap {namespace}/{name} (a namespace "
                    "it does not serve?)"
                ) from None
            raise
        data: dict[str, str] = found.get("data") or {}
        return data

    async def put_secret(
        self, namespace: str, name: str, data: dict[str, str], found: Body | None
    ) -> bool:
        """Creates the TLS Secret, or replaces ``found`` if it is still current; False
        when another writer came first (AlreadyExists, or a resourceVersion conflict)."""
        body: Body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/component": "webhook"},
                **({"resourceVersion": found["metadata"]["resourceVersion"]} if found else {}),
            },
            "data": data,
        }
        try:
            secrets = f"/api/v1/namespaces/{namespace}/secrets"
            if found is None:
                await self._json("POST", secrets, body, answer=False)
            else:
                await self._json("PUT", f"{secrets}/{name}", body, answer=False)
            return True
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise

    async def set_ca_bundle(self, configuration: str, ca: bytes) -> bool:
        """Writes ``ca`` into every webhook's caBundle of the ValidatingWebhookConfiguration
        (unless already there); True when it changed. Retries on a conflicting write."""
        path = (
            f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{configuration}"
        )
        bundle = base64.b64encode(ca).decode()
        while True:
            current: Body = await self._json("GET", path)
            hooks = current.get("webhooks") or []
            if all(h.get("clientConfig", {}).get("caBundle") == bundle for h in hooks):
                return False
            for hook in hooks:
                hook.setdefault("clientConfig", {})["caBundle"] = bundle
            try:
                await self._json("PUT", path, current, answer=False)
                return True
            except ApiException as error:
                if error.status != 409:
                    raise

    # --- Events -----------------------------------------------------------------------

    async def event(
        self, obj: Body, type_: str, reason: str, message: str, key: str | None = None
    ) -> None:
        """Posts a core/v1 Event on obj, as `kubectl describe` and `get events` show.

        With ``key``, the Event's name is derived from the object's UID, the reason and
        the key, so posting the same Event again (a decision retried, a restart before
        the status was written) meets AlreadyExists and is not doubled.

        Events are the operator's decisions (a run created, a service started, a fire
        missed), so each is also the one log line about it: INFO, or WARNING for a
        Warning Event, naming the object as ``namespace/kind/name``; a repeat is not
        logged. An Event that cannot be posted is logged, never raised: it must not
        stop work.
        """
        self._check_fence()
        meta = obj["metadata"]
        # A cluster-scoped object's Events live in "default", as Kubernetes' own do.
        namespace = meta.get("namespace") or "default"
        suffix = uuid.uuid4().hex[:16]
        if key is not None:
            seed = f"{meta.get('uid')}/{reason}/{key}".encode()
            suffix = hashlib.sha256(seed).hexdigest()[:16]
        when = timestamp(now())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{suffix}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", API_VERSION),
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace") or "",
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": truncate(message, EVENT_MESSAGE_MAX_BYTES),
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
        }
        try:
            path = f"/api/v1/namespaces/{namespace}/events"
            await self._json("POST", path, event, answer=False, fenced=True)
        except ApiException as error:
            if error.status == 409:
                return  # posted before: a repeat of the same decision
            log.warning(
                "could not post Event %s on %s: %s", reason, meta["name"], api_message(error)
            )
        log.log(
            logging.WARNING if type_ == "Warning" else logging.INFO,
            "%s/%s/%s: %s: %s",
            meta.get("namespace") or "-",
            obj["kind"],
            meta["name"],
            reason,
            message,
        )

    async def list_events(self, namespace: str, name: str, kind: str) -> list[Body]:
        """The Events on the object ``kind``/``name``, in the API's order (the plugin's
        ``describe``, ``rerun`` and ``run`` read them)."""
        selector = f"involvedObject.name={name},involvedObject.kind={kind}"
        path = f"/api/v1/namespaces/{namespace}/events"
        result = await self._json("GET", path, query=[("fieldSelector", selector)])
        items: list[Body] = result["items"]
        return items

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


def _custom(plural: str, namespace: str, name: str = "") -> str:
    """The path of Almanac's objects of ``plural`` ("" namespace: cluster-scoped)."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{GROUP}/{VERSION}{where}/{plural}" + (f"/{name}" if name else "")


async def _json_lines(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Body]]:
    """A watch's events, as (type, object), from its answer read in chunks and split into
    lines here: one object may be larger than aiohttp's own line reader accepts (64 KB;
    the API server stores up to 1.5 MB). An ERROR event raises, as an error answer would."""
    rest = b""
    async for chunk in response.content.iter_any():
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = wire.loads(line)
            event_type, obj = event.get("type") or "", event.get("object") or {}
            if event_type == "ERROR":
                error = ApiException(status=obj.get("code"), reason=obj.get("reason"))
                error.body = wire.dumps(obj)
                raise error
            yield event_type, obj
