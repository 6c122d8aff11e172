"""The hosts an administrator lets the operator reach on a namespace user's word.

Two things a user writes make the operator open a connection from inside the cluster:
a webhook notification's URL (``--notify-allowed-hosts``) and a Calendar feed's URL
(``--feed-allowed-hosts``). Each has its own :class:`HostAllowList`, written the same
way: ``example.com`` allows exactly that host over https, ``*.example.com`` every
subdomain of it (any depth, not ``example.com`` itself) over https, and
``http://10.0.0.7`` that one host over plain http too (a server inside the cluster, a
test on loopback; there is no wildcard form of it). Unset or empty: nothing is reached.

Without a list, a user could point the operator at the cloud's metadata service
(169.254.169.254), the API server's own port or any internal service (a server-side
request forgery); with one, the administrator decides. Names are compared in one form:
IP addresses normalised, domain names in IDNA A-label form, lower case.

Pure: no I/O, no Kubernetes client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import idna

from almanac.errors import quote, redact_url

__all__ = ["HostAllowList", "normal_host"]


def normal_host(name: str) -> str:
    """``name`` as compared: an IP address in its normal form, or a domain name in IDNA
    A-label form, lower case. ValueError says why it is neither."""
    bare = name.removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not name or name.endswith(".") or any(c.isspace() or c in "/@:*?#" for c in name):
        raise ValueError("not a host name")
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise ValueError(f"not a host name ({error})") from None


@dataclass(frozen=True)
class HostAllowList:
    """The hosts the operator may reach for one purpose (names as :func:`normal_host`
    gives them)."""

    hosts: frozenset[str] = frozenset()
    """Allowed exactly, over https."""
    parents: frozenset[str] = frozenset()
    """Their subdomains are allowed (``*.example.com``), over https."""
    plain_http: frozenset[str] = frozenset()
    """Allowed exactly, over http as well as https (``http://127.0.0.1``)."""
    source: str = "set by the operator"
    """Where the list was set, for messages (``set by the operator's --feed-allowed-hosts``)."""

    @classmethod
    def parse(cls, text: str, variable: str) -> HostAllowList | None:
        """A comma-separated list of ``host``, ``*.domain`` and ``http://host``; None
        when it names no host. ValueError names ``variable`` and the entry."""
        hosts: set[str] = set()
        parents: set[str] = set()
        plain: set[str] = set()
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            rest = entry.removeprefix("http://")
            try:
                if rest.startswith("*.") and rest == entry:
                    parents.add(normal_host(rest[2:]))
                elif rest.startswith("*"):
                    raise ValueError("a wildcard is *.domain, over https only")
                else:
                    (plain if rest != entry else hosts).add(normal_host(rest))
            except ValueError as error:
                raise ValueError(
                    f"{variable}: {quote(entry)} is {error}; write example.com (that host, "
                    "https), *.example.com (its subdomains, https) or http://host (that "
                    "host, plain http allowed too); no scheme but http://, no port, no path"
                ) from None
        if not (hosts or parents or plain):
            return None
        return cls(
            frozenset(hosts),
            frozenset(parents),
            frozenset(plain),
            f"set by the operator's {variable}",
        )

    def allows(self, host: str, scheme: str) -> bool:
        """Whether ``host`` (as :func:`normal_host` gives it) may be reached over ``scheme``."""
        if host in self.plain_http:
            return scheme in ("http", "https")
        if scheme != "https":
            return False
        return host in self.hosts or any(host.endswith(f".{p}") for p in self.parents)

    def check(self, scheme: str, host_part: str, shown: str, reached: str) -> None:
        """ValueError unless ``host_part`` (a URL's host, as written) may be reached over
        ``scheme``; the message starts with ``shown`` (at most ``scheme://host``) and says
        what the operator does with such hosts (``reached``: "posts to")."""
        try:
            host = normal_host(host_part)
        except ValueError as error:
            raise ValueError(f"{shown}: the host is {error}") from None
        if self.allows(host, scheme):
            return
        if scheme == "http" and self.allows(host, "https"):
            raise ValueError(
                f"{shown}: plain http is allowed only to hosts the operator lists as "
                f"http://host; use https ({self.source})"
            )
        raise ValueError(
            f"{shown}: {host} is not a host the operator {reached} (allowed: {self}; {self.source})"
        )

    def check_url(self, url: str, reached: str) -> SplitResult:
        """``url`` split, if it is an absolute http(s) URL whose host may be reached
        (:meth:`check`); ValueError otherwise, with a message that shows at most
        ``scheme://host``: a URL's path and query are often its secret (a feed's
        private address, a chat webhook's token)."""
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError("not a URL (write https://host/path)") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not host:
            raise ValueError("not an http(s) URL (write https://host/path)")
        self.check(scheme, host, redact_url(url), reached)
        return parts

    def __str__(self) -> str:
        shown = (
            sorted(self.hosts)
            + [f"*.{p}" for p in sorted(self.parents)]
            + [f"http://{h}" for h in sorted(self.plain_http)]
        )
        return ", ".join(shown) or "no host"
