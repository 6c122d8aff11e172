"""The Helm chart and the plain manifests against the real API server of the local
control plane.

Each test installs the chart as a release of its own (a unique name, because some of its
objects are cluster-scoped) into the test's namespace, with the CRDs left to the `crds`
fixture (crds.enabled=false: they are already installed, and not by Helm). The namespace
enforces the "restricted" Pod Security Standard, so an operator pod that breaks it is
never created and `helm install --wait` fails. kwok plays the kubelet: the pods become
Running and Ready without a container runtime, so probes and the image are not exercised
here (tests/unit/test_packaging.py checks the Dockerfile).

What is checked is what the API server decides: every object is accepted, the webhook
configuration is registered and does not block users when the operator is away, and the
operator's ServiceAccount may do exactly what the operator needs (`kubectl auth can-i`).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import yaml

from tests.integration.conftest import Helm
from tests.kube import Kubectl, wait_until
from tests.unit.test_packaging import CHART, REPO


def install(helm: Helm, kube: Kubectl, release: str, namespace: str, *values: str) -> None:
    """helm install --wait; on failure the namespace's Events say why."""
    result = helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "crds.enabled=false",
        # The webhook (on by default) sees the test's namespace only: other tests go on.
        "--set-json",
        f'webhook.namespaceSelector={{"matchLabels":{{"kubernetes.io/metadata.name":"{namespace}"}}}}',
        *values,
        "--wait",
        "--timeout",
        "60s",
        check=False,
    )
    if result.returncode != 0:
        events = kube.run("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"helm install failed:\n{result.stderr}\nEvents:\n{events}")


def manifest(helm: Helm, release: str, namespace: str) -> list[dict[str, Any]]:
    out = helm("get", "manifest", release, "--namespace", namespace).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def can_i(kube: Kubectl, who: str, *query: str) -> bool:
    result = kube.run("auth", "can-i", *query, f"--as={who}", check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def assert_all_exist(kube: Kubectl, namespace: str, objects: list[dict[str, Any]]) -> None:
    """Every object the release rendered is in the cluster, as the API server stored it.
    Asked namespace by namespace: kubectl refuses an object of another namespace than -n
    (with watchNamespaces, a ClusterCalendar's Events Role is in "default")."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        by_namespace.setdefault(o["metadata"].get("namespace", namespace), []).append(o)
    names = []
    for where, some in by_namespace.items():
        docs = "\n---\n".join(yaml.safe_dump(o) for o in some)
        names += kube.run("get", "-n", where, "-f", "-", "-o", "name", stdin=docs).stdout.split()
    assert len(names) == len(objects), names


def test_default_install_is_accepted_and_its_rbac_is_least_privilege(
    helm: Helm, kube: Kubectl, restricted: str, release: str
) -> None:
    ns = restricted
    install(helm, kube, release, ns)
    objects = manifest(helm, release, ns)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]
    assert_all_exist(kube, ns, objects)
    pods = kube.items("pods", "-n", ns, f"-l=app.kubernetes.io/instance={release}")
    assert [p["status"]["phase"] for p in pods] == ["Running"]

    operator = f"system:serviceaccount:{ns}:{release}"
    allowed = [
        ("create", "scheduledjobruns.almanac.dev", "-n", ns),
        ("delete", "scheduledjobruns.almanac.dev", "-n", "default"),
        ("patch", "scheduledjobs.almanac.dev", "--subresource=status", "-n", ns),
        ("update", "scheduledjobs.almanac.dev", "--subresource=finalizers", "-n", ns),
        ("update", "scheduledjobruns.almanac.dev", "--subresource=finalizers", "-n", ns),
        ("watch", "calendars.almanac.dev", "--all-namespaces"),
        ("watch", "backfills.almanac.dev", "--all-namespaces"),
        ("patch", "backfills.almanac.dev", "--subresource=status", "-n", ns),
        ("patch", "calendars.almanac.dev", "--subresource=status", "-n", ns),
        ("watch", "clustercalendars.almanac.dev"),
        ("patch", "clustercalendars.almanac.dev", "--subresource=status"),
        ("get", "configmaps", "-n", "default"),
        ("create", "jobs.batch", "-n", ns),
        ("create", "events", "-n", ns),
        ("create", "leases.coordination.k8s.io", "-n", ns),
        ("update", f"leases.coordination.k8s.io/{release}-leader", "-n", ns),
        ("create", "subjectaccessreviews.authorization.k8s.io"),
        ("create", "secrets", "-n", ns),
        ("update", f"secrets/{release}-webhook-tls", "-n", ns),
        ("update", f"validatingwebhookconfigurations.admissionregistration.k8s.io/{release}"),
    ]
    denied = [
        ("create", "scheduledjobs.almanac.dev", "-n", ns),
        ("delete", "scheduledjobs.almanac.dev", "-n", ns),
        ("update", "calendars.almanac.dev", "-n", ns),
        ("create", "backfills.almanac.dev", "-n", ns),
        ("update", "clustercalendars.almanac.dev"),
        ("list", "configmaps", "-n", ns),
        ("delete", "jobs.batch", "-n", ns),
        ("create", "events.events.k8s.io", "-n", ns),
        ("create", "pods", "-n", ns),
        ("get", "secrets", "-n", ns),
        ("get", "secrets/some-other-secret", "-n", ns),
        ("create", "secrets", "-n", "default"),
        ("update", "validatingwebhookconfigurations.admissionregistration.k8s.io/other"),
        ("update", "leases.coordination.k8s.io/some-other-lease", "-n", ns),
        ("create", "leases.coordination.k8s.io", "-n", "default"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("watch", "namespaces"),
    ]
    assert [q for q in allowed if not can_i(kube, operator, *q)] == []
    assert [q for q in denied if can_i(kube, operator, *q)] == []

    # The aggregated ClusterRoles extend the built-in edit and view roles.
    kube.run("create", "rolebinding", "alice-edits", "--clusterrole=edit", "--user=alice", "-n", ns)
    kube.run("create", "rolebinding", "bob-views", "--clusterrole=view", "--user=bob", "-n", ns)
    wait_until(
        "the edit role to aggregate almanac's rules",
        lambda: can_i(kube, "alice", "create", "scheduledjobs.almanac.dev", "-n", ns),
        timeout=30,
    )
    assert can_i(kube, "alice", "delete", "scheduledjobruns.almanac.dev", "-n", ns)
    assert can_i(kube, "alice", "create", "backfills.almanac.dev", "-n", ns)
    wait_until(
        "the view role to aggregate almanac's rules",
        lambda: can_i(kube, "bob", "list", "calendars.almanac.dev", "-n", ns),
        timeout=30,
    )
    assert not can_i(kube, "bob", "create", "scheduledjobs.almanac.dev", "-n", ns)
    assert can_i(kube, "bob", "get", "backfills.almanac.dev", "-n", ns)
    # ClusterCalendars: any authenticated user reads them, only cluster admins write.
    assert can_i(
        kube, "carol", "list", "clustercalendars.almanac.dev", "--as-group=system:authenticated"
    )
    assert not can_i(kube, "alice", "create", "clustercalendars.almanac.dev")

    helm("uninstall", release, "--namespace", ns, "--wait", "--timeout", "60s")
    leftovers = kube.run(
        "get",
        "clusterroles,clusterrolebindings",
        "-o",
        "name",
        f"-l=app.kubernetes.io/instance={release}",
    ).stdout
    assert leftovers.strip() == ""


def test_install_with_webhook_smtp_and_a_namespace_list(
    helm: Helm, kube: Kubectl, restricted: str, release: str
) -> None:
    ns = restricted
    kube.run(
        "create",
        "secret",
        "generic",
        "almanac-smtp",
        "-n",
        ns,
        "--from-literal=password=not-a-real-password",
    )
    values = [
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.timeoutSeconds=2",
        "--set",
        f"watchNamespaces={{{ns}}}",
        "--set",
        "replicaCount=2",
        "--set",
        "smtp.host=smtp.example.com",
        "--set",
        "smtp.from=Almanac <almanac@example.com>",
        "--set",
        "smtp.username=almanac",
        "--set",
        "smtp.existingSecret=almanac-smtp",
        "--set",
        "grafana.dashboard.enabled=true",
    ]
    install(helm, kube, release, ns, *values)
    objects = manifest(helm, release, ns)
    assert_all_exist(kube, ns, objects)
    pods = kube.items("pods", "-n", ns, f"-l=app.kubernetes.io/instance={release}")
    assert [p["status"]["phase"] for p in pods] == ["Running", "Running"]

    # The webhook's certificate is the operator's to make (test_chart_identity.py runs it):
    # nothing in the release holds a key, and no caBundle until the operator writes it.
    assert kube.in_namespace(ns).get("secret", f"{release}-webhook-tls") is None
    config = kube.json("get", "validatingwebhookconfiguration", release)
    assert [h["name"] for h in config["webhooks"]] == [
        "validate-scheduledjob.almanac.dev",
        "validate-calendar.almanac.dev",
        "validate-clustercalendar.almanac.dev",
        "validate-scheduledjobrun.almanac.dev",
        "validate-backfill.almanac.dev",
    ]
    assert all("caBundle" not in h["clientConfig"] for h in config["webhooks"])
    for hook in config["webhooks"]:
        assert hook["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": ns}}

    # No operator answers the webhook here (kwok runs no container): the default
    # failurePolicy Fail refuses the object, naming the webhook, rather than letting an
    # unreviewed jobTemplate through; the refusal comes within the call's timeout.
    started = time.monotonic()
    refused = kube.run(
        "apply", "-n", ns, "-f", str(REPO / "manifests" / "samples" / "fan-out.yaml"), check=False
    )
    assert time.monotonic() - started < 2 + 10
    assert refused.returncode != 0
    assert 'failed calling webhook "validate-scheduledjob.almanac.dev"' in refused.stderr
    assert kube.in_namespace(ns).get("scheduledjob.almanac.dev", "fan-out") is None

    # Serving only the listed namespace: the operator's namespaced rights stop there.
    operator = f"system:serviceaccount:{ns}:{release}"
    assert can_i(kube, operator, "create", "scheduledjobruns.almanac.dev", "-n", ns)
    assert not can_i(kube, operator, "create", "scheduledjobruns.almanac.dev", "-n", "default")
    # A ClusterCalendar's Events live in "default", as Kubernetes' own do: only those.
    assert can_i(kube, operator, "create", "events", "-n", "default")
    assert not can_i(kube, operator, "list", "events", "-n", "default")
    assert not can_i(kube, operator, "list", "scheduledjobs.almanac.dev", "--all-namespaces")
    assert not can_i(kube, operator, "watch", "namespaces")  # it watches its kinds by name

    # An upgrade keeps the caBundle the operator wrote (Helm's three-way merge leaves a
    # field alone that neither the old nor the new release sets).
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    for i in range(len(config["webhooks"])):
        kube.run(
            "patch",
            "validatingwebhookconfiguration",
            release,
            "--type=json",
            f'-p=[{{"op":"add","path":"/webhooks/{i}/clientConfig/caBundle","value":"{bundle}"}}]',
        )
    helm(
        "upgrade",
        release,
        str(CHART),
        "--namespace",
        ns,
        "--reuse-values",
        "--wait",
        "--timeout",
        "60s",
    )
    config = kube.json("get", "validatingwebhookconfiguration", release)
    assert [h["clientConfig"].get("caBundle") for h in config["webhooks"]] == [bundle] * 5


def test_plain_manifests_are_accepted_by_the_api_server(
    kube: Kubectl, crds: Kubectl, namespace: str
) -> None:
    """manifests/install/almanac.yaml, moved into the test's namespace, passes a server-side
    dry run (the CRDs in it are the ones already installed)."""
    path = REPO / "manifests" / "install" / "almanac.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] != "Namespace"]
    text = yaml.safe_dump_all(docs).replace("almanac-system", namespace)
    result = kube.run("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=text)
    applied = result.stdout.strip().splitlines()
    assert len(applied) == len(docs), result.stdout
    assert all("(server dry run)" in line for line in applied)


def test_samples_are_accepted_by_the_api_server(k: Kubectl, crds: Kubectl) -> None:
    result = k.run("apply", "--dry-run=server", "-f", str(REPO / "manifests" / "samples"))
    assert sorted(result.stdout.split("\n")[:-1]) == [
        "calendar.almanac.dev/example-holidays created (server dry run)",
        "calendar.almanac.dev/ro-bank-holidays created (server dry run)",
        "scheduledjob.almanac.dev/business-days created (server dry run)",
        "scheduledjob.almanac.dev/failing-pipeline created (server dry run)",
        "scheduledjob.almanac.dev/fan-out created (server dry run)",
        "scheduledjob.almanac.dev/month-end-close created (server dry run)",
    ]
