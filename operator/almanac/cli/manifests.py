"""Reading manifests as the API server would store them, for the offline verbs and
the plugin's ``-f``: YAML files of one or more documents, ``kind: List`` unwrapped.

At the edge: files and standard input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import yaml

__all__ = ["ManifestError", "name_of", "read_objects"]


class ManifestError(Exception):
    """A manifest file that cannot be read, or is not valid YAML; the message says which
    and why."""


class _ManifestLoader(yaml.SafeLoader):
    """YAML as the API server would store it: unquoted date-times stay strings (PyYAML
    would turn ``startTime: 2027-01-01T00:00:00`` into a datetime)."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
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
