"""Reading manifests as the API server would store them, for the offline verbs and
the plugin's ``-f``: YAML files of one or more documents, ``kind: List`` unwrapped.

At the edge: files and standard input (and, offline, a feed's text from a file).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import yaml

from almanac.api.models import CalendarSource
from almanac.api.names import CALENDAR_KINDS, calendar_key
from almanac.rules.calendars import Fetched, decide_feed

__all__ = ["ManifestError", "name_of", "read_objects", "with_feed_copies"]


class ManifestError(Exception):
    """A manifest file that cannot be read, or is not valid YAML; the message says which
    and why."""


#: libyaml's parser where PyYAML was built with it (the wheels are): 7.8 times faster
#: than the pure-Python one on a manifest of 10,000 ScheduledJobs (1.5 against 11.4 s).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ManifestLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """YAML as the API server would store it: unquoted date-times stay strings (PyYAML
    would turn ``startTime: 2027-01-01T00:00:00`` into a datetime)."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


def read_objects(filename: str) -> tuple[str, list[dict[str, Any]]]:
    """The file's name for messages ("standard input" for ``-``), and its objects."""
    source = "standard input" if filename == "-" else filename
    try:
        if filename == "-":
            text = sys.stdin.read()
        else:
            with open(filename, encoding="utf-8") as f:
                text = f.read()
        documents = [d for d in yaml.load_all(text, Loader=_ManifestLoader) if d is not None]
    except OSError as e:
        raise ManifestError(f"cannot read {source}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{source} is not valid YAML: {e}") from None
    return source, [o for d in documents for o in _objects(d)]


def with_feed_copies(
    objects: list[dict[str, Any]], feeds: Sequence[str], now: datetime
) -> list[dict[str, Any]]:
    """``objects`` with each ``--feed CALENDAR=FILE``'s text kept in that Calendar's
    status, as the operator keeps a fetched copy (:func:`almanac.rules.calendars.
    decide_feed`, the same checks and bounds): offline, nothing is fetched. ManifestError
    for a file that cannot be read, text the operator would not keep, or a CALENDAR the
    objects hold no Calendar with ``spec.source`` of."""
    copies: dict[str, dict[str, Any]] = {}
    for feed in feeds:
        key, sep, filename = feed.partition("=")
        if not sep or not key or not filename:
            raise ManifestError(f"--feed {feed}: expected CALENDAR=FILE")
        try:
            with open(filename, encoding="utf-8") as f:
                copies[key] = {"file": filename, "text": f.read()}
        except (OSError, UnicodeDecodeError) as e:
            raise ManifestError(f"--feed {feed}: cannot read {filename}: {e}") from None
    result, used = [], set()
    for body in objects:
        kind = body.get("kind")
        key = calendar_key(str(kind), name_of(body)) if kind in CALENDAR_KINDS else ""
        source = (body.get("spec") or {}).get("source")
        copy = copies.get(key) if key and source else None
        if copy is not None:
            used.add(key)
            try:
                parsed = CalendarSource.model_validate(source)
            except ValueError:
                parsed = None  # invalid: the Calendar's own check names the field
            if parsed is not None:
                plan = decide_feed({**body, "status": {}}, parsed, Fetched(copy["text"]), now)
                kept = plan.status["source"]
                if kept.get("lastError"):
                    message = kept["lastError"]["message"]
                    raise ManifestError(f"--feed {key}={copy['file']}: {message}")
                body = {**body, "status": {**(body.get("status") or {}), "source": kept}}
        result.append(body)
    if unused := set(copies) - used:
        names = ", ".join(sorted(unused))
        raise ManifestError(f"--feed {names}: no Calendar of that name with spec.source here")
    return result


def _objects(document: object) -> Iterator[dict[str, Any]]:
    """The objects of one YAML document; a ``kind: List`` holds them in ``items``."""
    if isinstance(document, dict):
        if document.get("kind") == "List" and isinstance(document.get("items"), list):
            for item in document["items"]:
                yield from _objects(item)
        else:
            yield document


def name_of(body: dict[str, Any]) -> str:
    """``metadata.name``, or "(unnamed)" for messages about an object without one."""
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return str(name) if name else "(unnamed)"
