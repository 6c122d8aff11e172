"""What integration tests use to look at the cluster: kubectl, as a user would.

Assertions are made on what ``kubectl`` shows (objects, status, Events), through the
real API server of the local control plane. ``wait_until`` polls a condition with a
bound; it never stands in for a condition with a blind sleep.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message carries its stderr."""


class Kubectl:
    """kubectl bound to one kubeconfig and, optionally, one namespace."""

    def __init__(self, kubeconfig: Path, namespace: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(self.kubeconfig, namespace)

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = ["kubectl", "--kubeconfig", str(self.kubeconfig)]
        if self.namespace:
            argv += ["--namespace", self.namespace]
        result = subprocess.run(
            [*argv, *args], input=stdin, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        result = self.run("get", kind, name, "-o", "json", "--ignore-not-found", check=False)
        if result.returncode != 0:
            raise KubectlError(f"kubectl get {kind} {name}: {result.stderr.strip()}")
        return json.loads(result.stdout) if result.stdout.strip() else None

    def items(self, kind: str, *selectors: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("get", kind, *selectors)["items"]
        return items

    def apply(self, *objects: dict[str, Any] | str) -> subprocess.CompletedProcess[str]:
        docs = [o if isinstance(o, str) else yaml.safe_dump(o) for o in objects]
        return self.run("apply", "-f", "-", stdin="\n---\n".join(docs))

    def apply_expecting_error(self, obj: dict[str, Any] | str) -> str:
        """Applies an object the API server must refuse; returns kubectl's stderr."""
        doc = obj if isinstance(obj, str) else yaml.safe_dump(obj)
        result = self.run("apply", "-f", "-", stdin=doc, check=False)
        if result.returncode == 0:
            raise AssertionError(f"the API server accepted what it should refuse:\n{doc}")
        return result.stderr

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events whose involved object is called name, oldest first."""
        items = self.items("events", f"--field-selector=involvedObject.name={name}")
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def wait_until(
    what: str, check: Callable[[], T | None], timeout: float = 60, interval: float = 0.5
) -> T:
    """Polls check() until it returns something truthy, and returns it.

    Fails with `what` and the time waited when the bound passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def job_condition(job: dict[str, Any] | None, kind: str) -> bool:
    """True when a batch/v1 Job carries condition `kind` (Complete, Failed) with True."""
    conditions = (job or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


# What an API server's refusal looks like in a log: the Status reason (``Forbidden``,
# ``... is forbidden: User ...``), the client's ``(403)`` header line, a Status body's
# ``code``, or a ``status=403`` field. A bare "403" is not one: run names carry minute
# counts (``as-sa-29940371-m024``) and timestamps carry digits.
_REFUSAL = re.compile(
    r"\bforbidden\b|\(403\)|[\"']code[\"']:\s*403\b|\bstatus[=:]\s*403\b", re.IGNORECASE
)


def api_refusals(log: str) -> list[str]:
    """The lines of a log that report a refusal (403) by the API server."""
    return [line for line in log.splitlines() if _REFUSAL.search(line)]
