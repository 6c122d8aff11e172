"""The validating webhook, registered with the real API server, through `kubectl apply`."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable

from tests.integration.conftest import Operator
from tests.integration.objects import calendar, scheduled_job
from tests.kube import Kubectl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register(k: Kubectl, name: str, port: int, ca: bytes) -> None:
    """A ValidatingWebhookConfiguration for the test's namespace only."""

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
                }
            ],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": k.namespace}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
        }

    k.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                hook("scheduledjobs", "validate-scheduledjob"),
                hook("calendars", "validate-calendar"),
            ],
        }
    )


def test_the_webhook_refuses_what_the_engine_rejects_and_warns_about_missing_calendars(
    k: Kubectl, start_operator: Callable[..., Operator]
) -> None:
    # The certificate hack/cluster.py issued from the cluster's CA, as `make dev` uses.
    pki = k.kubeconfig.parent / "pki"
    port = free_port()
    start_operator("--webhook-port", str(port), "--webhook-cert-dir", str(pki / "webhook"))
    name = f"almanac-{k.namespace}"
    register(k, name, port, (pki / "ca.crt").read_bytes())
    try:
        # The schema cannot know cron or zones; the webhook does, with `almanac next`'s words.
        error = k.apply_expecting_error(scheduled_job("badcron", "61 * * * *"))
        assert 'admission webhook "scheduledjobs.' in error and "spec.schedule" in error
        error = k.apply_expecting_error(scheduled_job("badzone", timeZone="Mars/Olympus"))
        assert "spec.timeZone" in error
        # A Calendar that does not exist yet is admitted, with a warning kubectl prints.
        result = k.apply(scheduled_job("early", calendarRefs=[{"name": "later"}]))
        assert 'Calendar "later" does not exist yet' in result.stderr
        result = k.apply(
            calendar("later", holiday=["24.12.2027"]),
            scheduled_job("good", "30 2 * * 1-5", timeZone="Europe/Bucharest"),
        )
        assert k.get("sj", "good") is not None and k.get("cal", "later") is not None
    finally:
        k.run("delete", "validatingwebhookconfiguration", name, check=False)
