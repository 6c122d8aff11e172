"""The one error type for invalid user input, and how a user's value is quoted in it
(:func:`quote`), or, for a URL that may carry a credential, how much of it is shown
(:func:`redact_url`).

Every module that validates what a user wrote (calendars, schedule, models, admission)
raises :class:`InvalidSpec`; the operator turns it into ``Ready=False`` and an Event,
the webhook into a refusal, ``almanac next`` into exit code 2. All of them print the
same lines::

    spec.exclusions.annual[1]: "31.02" is not a day of the year (dd.MM)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["FieldError", "InvalidSpec", "quote", "redact_url"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: where it is (``spec.exclusions.annual[1]``) and what is wrong."""

    path: str
    message: str
    reason: str = field(default="", compare=False)
    """For the operator: a CamelCase reason when this error is a state of the world
    rather than a mistake in the spec (``CalendarNotFound``, ``CalendarNotFetched``)."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidSpec(ValueError):
    """A resource (or a part of one) is invalid; ``errors`` names every bad field.

    ``str()`` is one line per error, ``path: message``, e.g.
    ``spec.exclusions.annual[1]: "31.02" is not a day of the year (dd.MM)``.
    """

    errors: tuple[FieldError, ...]

    def __init__(self, errors: Iterable[FieldError | tuple[str, str]]) -> None:
        self.errors = tuple(e if isinstance(e, FieldError) else FieldError(*e) for e in errors)
        if not self.errors:
            raise ValueError("InvalidSpec needs at least one error")
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def quote(value: object) -> str:
    """How a user's value appears in a message: strings in double quotes, as in YAML/JSON."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: all of it that may be shown in a message, a
    log line, an Event or a status. The path, the query and any user information may be
    a credential (a Slack or Teams webhook's path is)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "(not a URL)"
    if not parts.scheme or not host:
        return "(not a URL)"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{shown}{f':{port}' if port else ''}"
