"""Reads a Calendar's feed: over HTTP(S), or a ConfigMap key through the kube gateway.

Where it sits: called by the controller for a Calendar with ``spec.source`` when
:func:`almanac.rules.calendars.fetch_due` says so; its answer goes to
:func:`almanac.rules.calendars.decide_feed`. The only HTTP client of the operator that
is not the Kubernetes API's.

Limits (:mod:`almanac.api.bounds`): the whole fetch within ``FEED_TIMEOUT_SECONDS``, at
most ``FEED_MAX_BYTES`` read, ``FEED_MAX_REDIRECTS`` redirects, and only from the hosts
the administrator allows (``--feed-allowed-hosts``), the URL and each redirect alike.
The URL may hold a token (a published calendar's "secret address", a user and
password): it is never logged, and the messages returned (which go into the status and
Events) are our own words, never an exception's text, which aiohttp fills with the URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from urllib.parse import urljoin

import aiohttp

from almanac.api import bounds
from almanac.api.feeds import check_url
from almanac.api.models import CalendarSource, KeyRef
from almanac.hosts import HostAllowList
from almanac.kube import Kube, NotAllowed
from almanac.rules.calendars import Fetched, FetchFailed, Outcome

log = logging.getLogger(__name__)

__all__ = ["fetch"]

_MiB = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def fetch(
    kube: Kube, namespace: str, source: CalendarSource, allowed: HostAllowList | None
) -> Outcome:
    """The feed's text, or why not. ``namespace``: the Calendar's (empty for a
    ClusterCalendar, whose references name theirs); ``allowed``: the hosts a URL and
    each of its redirects may go to (None: URL feeds are off)."""
    try:
        return await _fetch(kube, namespace, source, allowed)
    except NotAllowed as error:
        return FetchFailed(str(error))


async def _fetch(
    kube: Kube, namespace: str, source: CalendarSource, allowed: HostAllowList | None
) -> Outcome:
    if source.config_map_key_ref is not None:
        return await _config_map(kube, namespace, source.config_map_key_ref)
    assert source.url is not None  # the model holds one of the two
    try:
        check_url(source.url, allowed)  # before the CA bundle's Secret is read
    except ValueError as error:
        return FetchFailed(str(error))
    ca: str | None = None
    if source.ca_bundle_secret_ref is not None:
        ref = source.ca_bundle_secret_ref
        found = await kube.get_secret_key(ref.namespace or namespace, ref.name, ref.key)
        if found is None:
            return FetchFailed(
                f"caBundleSecretRef: Secret {ref.namespace or namespace}/{ref.name} has no "
                f"key {ref.key!r} (or does not exist)"
            )
        ca = found
    return await fetch_url(source.url, allowed, ca)


async def _config_map(kube: Kube, namespace: str, ref: KeyRef) -> Outcome:
    where = f"ConfigMap {ref.namespace or namespace}/{ref.name}"
    data = await kube.get_config_map_data(ref.namespace or namespace, ref.name)
    if data is None:
        return FetchFailed(f"{where} not found")
    if ref.key not in data:
        return FetchFailed(f"{where} has no key {ref.key!r}")
    text = data[ref.key]
    if len(text.encode()) > bounds.FEED_MAX_BYTES:
        return FetchFailed(f"{where} key {ref.key!r}: {_too_large()}")
    return Fetched(text)


def _ssl_context(ca: str | None) -> ssl.SSLContext | bool:
    if ca is None:
        return True
    return ssl.create_default_context(cadata=ca)


async def fetch_url(url: str, allowed: HostAllowList | None, ca: str | None = None) -> Outcome:
    """GET ``url`` within the bounds; the body decoded as UTF-8 (iCalendar's charset).
    Redirects are followed here, not by aiohttp, so that each target's host is checked
    against ``allowed`` before it is connected to: an allowed host cannot bounce the
    operator to one that is not (the cloud's metadata address, an internal service)."""
    try:
        check_url(url, allowed)
    except ValueError as error:
        return FetchFailed(str(error))
    try:
        context = _ssl_context(ca)
    except (ssl.SSLError, ValueError):
        return FetchFailed("caBundleSecretRef: the Secret's key holds no PEM certificate")
    timeout = aiohttp.ClientTimeout(total=bounds.FEED_TIMEOUT_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=timeout, trust_env=True) as session:
            for _ in range(bounds.FEED_MAX_REDIRECTS + 1):
                async with session.get(
                    url,
                    ssl=context,
                    allow_redirects=False,
                    headers={"Accept": "text/calendar, text/plain;q=0.5, */*;q=0.1"},
                ) as response:
                    target = response.headers.get("Location")
                    if response.status in _REDIRECTS and target:
                        url = urljoin(url, target)
                        try:
                            check_url(url, allowed)
                        except ValueError as error:
                            return FetchFailed(f"redirected to {error}")
                        continue
                    if response.status != 200:
                        return FetchFailed(
                            f"HTTP {response.status} {response.reason or ''}".strip()
                        )
                    if (response.content_length or 0) > bounds.FEED_MAX_BYTES:
                        return FetchFailed(_too_large())
                    body = await response.content.read(bounds.FEED_MAX_BYTES + 1)
                    if len(body) > bounds.FEED_MAX_BYTES:
                        return FetchFailed(_too_large())
                    break
            else:
                return FetchFailed(f"more than {bounds.FEED_MAX_REDIRECTS} redirects")
    except TimeoutError:
        return FetchFailed(f"timed out after {bounds.FEED_TIMEOUT_SECONDS:g} s")
    except aiohttp.ClientSSLError:
        return FetchFailed("TLS: the server's certificate is not trusted (caBundleSecretRef?)")
    except aiohttp.ClientConnectorDNSError:
        return FetchFailed("cannot connect: the host name does not resolve")
    except aiohttp.ClientConnectorError as error:
        # strerror names host and port: only the operating system's words for the errno.
        errno = error.os_error.errno
        return FetchFailed(f"cannot connect: {os.strerror(errno) if errno else 'failed'}")
    except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError) as error:
        # The exception's text may hold the URL: only its kind is told.
        return FetchFailed(f"request failed: {type(error).__name__}")
    try:
        return Fetched(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return FetchFailed("the feed is not UTF-8 text (iCalendar is UTF-8, RFC 5545)")


def _too_large() -> str:
    limit = bounds.FEED_MAX_BYTES
    size = f"{limit // _MiB} MiB" if limit % _MiB == 0 else f"{limit:,} bytes"
    return f"the feed is larger than {size}"
