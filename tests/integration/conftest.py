"""Fixtures that run the real operator against the real control plane.

``crds`` installs crds/ once per session. ``operator`` starts `almanac run` as a
subprocess watching only the test's namespace (so tests cannot disturb each other, and
a test can SIGKILL and restart it), with its log kept for the failure report.
``admission`` starts it with its admission webhook registered with the API server.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.ports import free_port
from tests.kube import Kubectl, wait_until
from tests.unit.test_packaging import find_helm

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="session")
def crds(kube: Kubectl) -> Kubectl:
    """The Almanac CRDs, installed (server-side apply) and Established."""
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for crd in sorted((REPO / "crds").glob("*.yaml")):
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        kube.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return kube


class Operator:
    """One `almanac run` process; start, kill (SIGKILL) and restart it at will."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_dir / "operator.log"
        self.env = env or {}
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *extra: str, until: str = "almanac operator serving") -> None:
        header = self.launch(*extra)
        # Only this start's lines count: the log file keeps every earlier start's too.
        wait_until(
            f"the operator (start {self.starts}) to log {until!r}",
            lambda: until in self.log().rpartition(header)[2] or self._died(),
            timeout=60,
        )
        if self._died():
            raise AssertionError(f"the operator exited at start:\n{self.log()[-3000:]}")

    def launch(self, *extra: str) -> str:
        """Starts the process without waiting for it; returns the header of its log."""
        self.starts += 1
        header = f"\n===== start {self.starts} =====\n"
        log = self.log_path.open("ab")
        log.write(header.encode())
        log.flush()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "almanac",
                "run",
                "--namespace",
                self.namespace,
                "--liveness",
                "",
                "--metrics-port",
                "0",
                *self.args,
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        return header

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash or a node failure would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_operator(
    crds: Kubectl, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Operator]]:
    """Starts the operator with extra flags and environment (SMTP, a short rerun delay);
    stops it after the test and shows its log when the test failed."""
    started: list[Operator] = []

    def start(*args: str, **env: str) -> Operator:
        op = Operator(crds.kubeconfig, namespace, tmp_path, env, args)
        started.append(op)
        op.start()
        return op

    yield start
    for op in started:
        op.stop()
    report = getattr(request.node, "rep_call", None)
    if started and report is not None and report.failed:
        print(f"\n----- operator log ({started[0].log_path}) -----\n{started[0].log()[-8000:]}")


@pytest.fixture
def operator(start_operator: Callable[..., Operator]) -> Operator:
    """The operator, started with default settings, serving the test's namespace."""
    return start_operator()


NAMESPACED_WEBHOOKS = (
    ("scheduledjobs", "validate-scheduledjob"),
    ("calendars", "validate-calendar"),
    ("scheduledjobruns", "validate-scheduledjobrun"),
    ("backfills", "validate-backfill"),
)
"""The operator's webhook paths for its namespaced resources, as (resource, path)."""


def register(
    k: Kubectl,
    name: str,
    port: int,
    ca: bytes,
    webhooks: Sequence[tuple[str, str]] = NAMESPACED_WEBHOOKS,
    *,
    selector: dict[str, Any] | None = None,
    scope: str = "*",
    timeout_seconds: int = 10,
) -> None:
    """A ValidatingWebhookConfiguration sending ``webhooks`` (resource, path) to the
    operator on ``port``, which the API server waits ``timeout_seconds`` for. Each test's
    operator may judge only that test's objects, so by default it selects the test's
    namespace; a cluster-scoped resource has no namespace to select, so its test labels
    its objects and passes an ``objectSelector`` as ``selector`` (with
    ``scope="Cluster"``)."""
    if selector is None:
        selector = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": k.namespace}}
        }

    def hook(resource: str, path: str) -> dict[str, object]:
        return {
            "name": f"{resource}.{name}.almanac.dev",
            "clientConfig": {
                "url": f"https://localhost:{port}/{path}",
                "caBundle": base64.b64encode(ca).decode(),
            },
            "rules": [
                {
                    "apiGroups": ["almanac.dev"],
                    "apiVersions": ["v1alpha1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": [resource],
                    "scope": scope,
                }
            ],
            **selector,
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": timeout_seconds,
        }

    k.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [hook(resource, path) for resource, path in webhooks],
        }
    )


@dataclass(frozen=True)
class Admission:
    """The operator serving its admission webhook, and the configuration registering it."""

    operator: Operator
    port: int
    ca: bytes  # the cluster's CA, which issued the webhook's certificate
    name: str  # of the ValidatingWebhookConfiguration


@pytest.fixture
def admission(
    k: Kubectl, start_operator: Callable[..., Operator]
) -> Iterator[Callable[..., Admission]]:
    """Starts the operator with its admission webhook on a free port (plus any extra flags
    and environment) and registers it for the test's namespace; the configurations are
    deleted after the test, before the operator stops."""
    # The certificate hack/cluster.py issued from the cluster's CA, as `make dev` uses.
    pki = k.kubeconfig.parent / "pki"
    registered: list[str] = []

    def start(*args: str, **env: str) -> Admission:
        port = free_port()
        operator = start_operator(
            "--webhook-port", str(port), "--webhook-cert-dir", str(pki / "webhook"), *args, **env
        )
        name = f"almanac-{k.namespace}"
        ca = (pki / "ca.crt").read_bytes()
        registered.append(name)
        register(k, name, port, ca)
        return Admission(operator, port, ca, name)

    yield start
    for name in registered:
        k.run("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def helm(kube: Kubectl) -> Helm:
    """helm against the local control plane."""
    binary = find_helm()
    if binary is None:
        pytest.skip("helm is not built: run `make tools` (or set HELM)")

    def run(
        *args: str, check: bool = True, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(binary), *args, "--kubeconfig", str(kube.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def restricted(kube: Kubectl, crds: Kubectl, namespace: str) -> str:
    """The test's namespace, enforcing the restricted Pod Security Standard."""
    kube.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    return namespace


@pytest.fixture
def release(helm: Helm, restricted: str, kube: Kubectl) -> Iterator[str]:
    """A unique release name; the release is uninstalled after the test."""
    name = f"almanac-{uuid.uuid4().hex[:6]}"
    yield name
    helm("uninstall", name, "--namespace", restricted, "--wait", "--timeout", "60s", check=False)
