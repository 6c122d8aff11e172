"""Smoke tests: the local control plane is a real one.

Real Job controller, real garbage collector, real scheduler binding Pods to the kwok
node, real CRD validation, and the versions we pinned in hack/tools/.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.kube import Kubectl, job_condition, wait_until

REPO = Path(__file__).resolve().parent.parent.parent


def pinned_kubernetes_version() -> str:
    gomod = (REPO / "hack" / "tools" / "k8s" / "go.mod").read_text()
    match = re.search(r"k8s\.io/kubernetes (v\S+)", gomod)
    assert match, "hack/tools/k8s/go.mod pins no k8s.io/kubernetes version"
    return match.group(1)


def job(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            },
        },
    }


def test_the_apiserver_reports_the_pinned_version(kube: Kubectl) -> None:
    version = json.loads(kube.run("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == pinned_kubernetes_version()


def test_the_fake_node_is_ready(kube: Kubectl) -> None:
    node = kube.json("get", "node", "kwok-node-0")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"


def test_a_job_completes_through_the_job_controller_on_the_fake_node(k: Kubectl) -> None:
    k.apply(job("hello"))
    done = wait_until(
        "Job hello Complete", lambda: job_condition(k.get("job", "hello"), "Complete") or None
    )
    assert done
    pods = k.items("pods", "-l", "job-name=hello")
    assert [p["spec"]["nodeName"] for p in pods] == ["kwok-node-0"]
    assert pods[0]["status"]["phase"] == "Succeeded"


def test_a_job_whose_pod_template_asks_for_exit_code_3_fails(k: Kubectl) -> None:
    k.apply(job("broken", {"sim.almanac.dev/exit-code": "3"}))
    wait_until("Job broken Failed", lambda: job_condition(k.get("job", "broken"), "Failed") or None)
    pod = k.items("pods", "-l", "job-name=broken")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Failed", 3)


def test_a_job_whose_pod_template_asks_for_4s_runs_at_least_that_long(k: Kubectl) -> None:
    k.apply(job("slow", {"sim.almanac.dev/duration": "4s"}))
    finished = wait_until(
        "Job slow Complete",
        lambda: k.get("job", "slow") if job_condition(k.get("job", "slow"), "Complete") else None,
    )
    pod = k.items("pods", "-l", "job-name=slow")[0]
    running = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    started = datetime.fromisoformat(running["lastTransitionTime"])
    ended = datetime.fromisoformat(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    )
    assert (ended - started).total_seconds() >= 4
    assert finished["status"]["succeeded"] == 1


def test_deleting_an_owner_garbage_collects_what_it_owns(k: Kubectl) -> None:
    k.run("create", "configmap", "owner")
    uid = k.json("get", "configmap", "owner")["metadata"]["uid"]
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "owned",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
                ],
            },
        }
    )
    k.run("delete", "configmap", "owner")
    wait_until(
        "the owned ConfigMap to be garbage-collected", lambda: k.get("configmap", "owned") is None
    )


def test_a_structural_crd_is_served_and_validates_its_objects(
    kube: Kubectl, namespace: str
) -> None:
    group = f"smoke{uuid.uuid4().hex[:6]}.almanac.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    kube.apply(crd)
    try:
        wait_until(
            "the CRD Established",
            lambda: (
                kube.run(
                    "wait",
                    "--for=condition=Established",
                    f"crd/widgets.{group}",
                    "--timeout=30s",
                    check=False,
                ).returncode
                == 0
            ),
        )
        k = kube.in_namespace(namespace)
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
        k.apply({**widget, "spec": {"size": 2}})
        assert k.json("get", f"widgets.{group}", "w")["spec"]["size"] == 2
        error = k.apply_expecting_error({**widget, "spec": {"size": 0}})
        assert (
            "spec.size: Invalid value: 0: spec.size in body should be greater than or "
            "equal to 1" in error
        )
    finally:
        kube.run("delete", "crd", f"widgets.{group}", "--wait=false", check=False)
