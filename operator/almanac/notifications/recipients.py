"""Whom the operator may mail: the form of a recipient in ``spec.notifications.to`` and
the administrator's allow-list of recipient domains (docs/api.md, "E-mail recipients").

A recipient is a bare address, ``local@domain``: no display name, no angle brackets,
no address literal (``[192.0.2.1]``) or IP address for a domain, no whitespace or
control character (so it can never end a header and start another), no comment, no
quoted local part, and no ``%`` or ``!`` in the local part (relay forms that a mail
server may forward to another domain). :func:`parse_recipient` checks that and returns
the address with its domain in IDNA A-label form, lower case.

:class:`AllowList` is the administrator's list (``ALMANAC_MAIL_ALLOWED_DOMAINS``):
``example.com`` allows exactly that domain, ``.example.com`` its subdomains, ``*`` any
domain; :meth:`AllowList.own_domains` is the default when it is unset: the domains of
the operator's own From and default To addresses.

:func:`check_recipients` gives every refused item of a ``to`` list with its field path
(and the others as sent); the admission webhook and the delivery both use it, so they
refuse the same addresses with the same words.

Pure; imports the standard library, ``idna``, :mod:`almanac.errors` (how a value is
quoted) and :mod:`almanac.api.bounds` (the address's length). Nothing else of Almanac
imports it but the notifications and the admission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr

import idna

from almanac.api.bounds import RECIPIENT_MAX_LENGTH
from almanac.errors import FieldError, quote

__all__ = [
    "ALLOWED_DOMAINS_VARIABLE",
    "AllowList",
    "check_recipients",
    "normalise_domain",
    "parse_recipient",
]

ALLOWED_DOMAINS_VARIABLE = "ALMANAC_MAIL_ALLOWED_DOMAINS"
_SET_BY = f"set by the operator's {ALLOWED_DOMAINS_VARIABLE}"

# RFC 5322 atext without % and ! (user%other@relay, other!user@relay: source routes),
# in dot-atom form: no leading, trailing or double dot.
_ATEXT = r"[A-Za-z0-9#$&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_MAX_ADDRESS, _MAX_LOCAL = RECIPIENT_MAX_LENGTH, 64  # RFC 5321's path and local-part limits
_EXAMPLE = "local@domain, for example ops@example.com"


def normalise_domain(domain: str) -> str:
    """``domain`` in IDNA A-label form, lower case (``Bücher.Example`` →
    ``xn--bcher-kva.example``). Raises ValueError (with the reason) if it is not a domain
    name, including an IP address."""
    if not domain or domain.endswith(".") or any(c.isspace() for c in domain):
        raise ValueError("not a domain name")
    try:
        ascii_form = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise ValueError(f"not a domain name ({error})") from None
    if ascii_form.rpartition(".")[2].isdigit():  # no top-level domain is a number
        raise ValueError("an IP address, not a domain name")
    return ascii_form


def parse_recipient(address: str) -> str:
    """``address`` as sent: ``local@domain`` with the domain normalised. Raises
    ValueError saying what is wrong with it and how to write it."""
    shown = quote(address)
    if any(c in address for c in "\r\n") or any(ord(c) < 32 or ord(c) == 127 for c in address):
        raise ValueError(f"{shown} contains a line break or another control character")
    if "<" in address or ">" in address:
        bare = parseaddr(address)[1]
        hint = f"write the bare address, {bare}" if "@" in bare else f"write {_EXAMPLE}"
        raise ValueError(f"{shown} has a display name or angle brackets; {hint}")
    if any(c in address for c in '()"'):
        raise ValueError(f"{shown} has a comment or quotes; write the bare address ({_EXAMPLE})")
    local, at, domain = address.rpartition("@")
    if not at:
        raise ValueError(f"{shown} is not an e-mail address ({_EXAMPLE})")
    if domain.startswith("[") or domain.endswith("]"):
        raise ValueError(f"{shown} has an address literal for a domain; write a domain name")
    if any(c.isspace() for c in address):
        raise ValueError(f"{shown} contains a space; write the bare address ({_EXAMPLE})")
    if "%" in local or "!" in local:
        raise ValueError(
            f"{shown} has % or ! in its local part, which a mail server may relay to another domain"
        )
    if len(address) > _MAX_ADDRESS or len(local) > _MAX_LOCAL:
        raise ValueError(
            f"{shown} is too long (at most {_MAX_ADDRESS} characters, {_MAX_LOCAL} before @)"
        )
    if not _LOCAL.fullmatch(local):
        raise ValueError(
            f"{shown} is not a bare e-mail address ({_EXAMPLE}; the part before @ is ASCII "
            "letters, digits and .#$&'*+/=?^_`{|}~- without a leading, trailing or double dot)"
        )
    try:
        return f"{local}@{normalise_domain(domain)}"
    except ValueError as error:
        raise ValueError(f"{shown}: {quote(domain)} is {error}") from None


@dataclass(frozen=True)
class AllowList:
    """The recipient domains the operator mails (all in A-label form, lower case)."""

    domains: frozenset[str] = frozenset()
    """Allowed exactly."""
    parents: frozenset[str] = frozenset()
    """Their subdomains are allowed (``.example.com``), not the domain itself."""
    anything: bool = False
    """``*``: any domain."""
    source: str = _SET_BY
    """Where the list comes from, for messages and the start-up log."""

    @classmethod
    def parse(cls, text: str, variable: str = ALLOWED_DOMAINS_VARIABLE) -> AllowList:
        """A comma-separated list: ``example.com``, ``.example.com``, ``*``. Raises
        ValueError naming ``variable`` (or the flag) and the bad entry."""
        domains: set[str] = set()
        parents: set[str] = set()
        anything = False
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        if not entries:
            raise ValueError(f"{variable}: no domain in {quote(text)}")
        for entry in entries:
            if entry == "*":
                anything = True
                continue
            subdomains = entry.startswith(".")
            try:
                domain = normalise_domain(entry.removeprefix(".").removesuffix("."))
            except ValueError as error:
                raise ValueError(
                    f"{variable}: {quote(entry)} is {error}; write example.com (that domain), "
                    ".example.com (its subdomains) or * (any domain)"
                ) from None
            (parents if subdomains else domains).add(domain)
        source = f"set by the operator's {variable}"
        return cls(frozenset(domains), frozenset(parents), anything, source)

    @classmethod
    def own_domains(cls, addresses: Iterable[str]) -> AllowList:
        """The default: exactly the domains of the operator's own addresses (From and
        the default recipients); ones that are not domain names are left out."""
        domains = set()
        for address in addresses:
            domain = parseaddr(address)[1].rpartition("@")[2]
            try:
                domains.add(normalise_domain(domain))
            except ValueError:
                continue
        return cls(
            frozenset(domains),
            source=f"the operator's own mail domains: its {ALLOWED_DOMAINS_VARIABLE} is unset",
        )

    def allows(self, domain: str) -> bool:
        """Whether mail to ``domain`` (normalised, as :func:`parse_recipient` gives it)
        may be sent."""
        if self.anything or domain in self.domains:
            return True
        return any(domain.endswith(f".{parent}") for parent in self.parents)

    def __str__(self) -> str:
        if self.anything:
            return "any domain"
        shown = sorted(self.domains) + [f"subdomains of {p}" for p in sorted(self.parents)]
        return ", ".join(shown) or "no domain"


def check_recipients(
    to: Sequence[str] | None, allowed: AllowList | None, *, skip: Iterable[str] = ()
) -> tuple[list[str], list[FieldError]]:
    """The items of a ``to`` list as they are sent (domain normalised), and an error
    at ``spec.notifications.to[i]`` for every item the operator refuses to mail.
    ``allowed`` None checks the form only. Items in ``skip`` (already stored in the
    object being updated) are neither checked nor returned: the delivery checks them."""
    skipped = set(skip)
    addresses: list[str] = []
    errors: list[FieldError] = []
    for i, address in enumerate(to or ()):
        if address in skipped:
            continue
        path = f"spec.notifications.to[{i}]"
        try:
            normalised = parse_recipient(address)
        except ValueError as error:
            errors.append(FieldError(path, str(error)))
            continue
        domain = normalised.rpartition("@")[2]
        if allowed is not None and not allowed.allows(domain):
            errors.append(
                FieldError(
                    path,
                    f"{quote(address)}: {domain} is not a recipient domain the operator "
                    f"allows (allowed: {allowed}; {allowed.source})",
                )
            )
            continue
        addresses.append(normalised)
    return addresses, errors
