"""What a ScheduledJobRun's schema costs the API server: the answer to "a cheaper run"
in docs/design.md (a fire's floor is a run's create and two status patches, and a run
costs the API server about twice what a Job does).

Four copies of the ScheduledJobRun CRD, each in a group of its own, on the local
control plane, no operator:

- ``heavy``: the CRD as shipped (jobTemplate as batch/v1 JobTemplateSpec, CEL rules);
- ``light``: jobTemplate as an object that keeps unknown fields (not typed);
- ``nocel``: ``light`` without its CEL rules (name length, spec immutable, unique
  service names);
- ``bare``: spec and status as objects that keep unknown fields, no rule at all.

For each, ROUNDS times, interleaved: N creates of a run as the operator writes it, then
N merge patches of its status, 32 in flight; wall time and the CPU seconds of
kube-apiserver and etcd.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/measure_run_schema.py [N] [ROUNDS]

A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from tests.benchmarks.bench_fleet import bounded, progress
from tests.benchmarks.bench_resident import KUBECONFIG, cpu_cells, server_cpu
from tests.integration.objects import scheduled_job_run
from tests.kube import Kubectl

from almanac.kube import MERGE_PATCH, Kube

Body = dict[str, Any]
CRD = Path(__file__).resolve().parents[2] / "crds" / "almanac.dev_scheduledjobruns.yaml"
UNTYPED = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
VARIANTS = ("heavy", "light", "nocel", "bare")
STATUS = {
    "phase": "Running",
    "startTime": "2027-01-01T00:00:01Z",
    "services": [{"name": "main", "phase": "Running", "jobName": "job-x-main"}],
}


def without_rules(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("x-kubernetes-validations", None)
        for value in node.values():
            without_rules(value)
    elif isinstance(node, list):
        for value in node:
            without_rules(value)


def variant(crd: Body, name: str) -> Body:
    """The run CRD as ``name`` (see the module's docstring), in group <name>.bench.almanac.dev."""
    group = f"{name}.bench.almanac.dev"
    out = copy.deepcopy(crd)
    out["metadata"] = {"name": f"scheduledjobruns.{group}"}
    out["spec"]["group"] = group
    for version in out["spec"]["versions"]:
        root = version["schema"]["openAPIV3Schema"]
        if name == "bare":
            version["schema"]["openAPIV3Schema"] = {
                "type": "object",
                "properties": {"spec": UNTYPED, "status": UNTYPED},
            }
            version.pop("additionalPrinterColumns", None)
            continue
        if name in ("light", "nocel"):
            item = root["properties"]["spec"]["properties"]["services"]["items"]
            item["properties"]["jobTemplate"] = dict(UNTYPED)
        if name == "nocel":
            without_rules(out)
    return out


def run(group: str, version: str, i: int) -> Body:
    body = scheduled_job_run(f"job-{i:05d}-29000000", f"job-{i:05d}")
    body["apiVersion"] = f"{group}/{version}"
    body["spec"]["trigger"] = "Schedule"
    return body


async def main(n: int, rounds: int) -> None:
    kubectl = Kubectl(KUBECONFIG)
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]["name"]
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in VARIANTS:
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(variant(crd, name)))
            kubectl.run("apply", "--server-side", "-f", str(path))
            names.append(f"crd/scheduledjobruns.{name}.bench.almanac.dev")
    kubectl.run("wait", "--for=condition=Established", *names)
    kube, _ = await Kube.connect_kubeconfig(str(KUBECONFIG))

    async def create(base: str, group: str, i: int) -> None:
        await kube._json("POST", base, run(group, version, i), answer=False)

    async def patch(base: str, i: int) -> None:
        path = f"{base}/job-{i:05d}-29000000/status"
        await kube._json("PATCH", path, {"status": STATUS}, content_type=MERGE_PATCH)

    rows = []
    try:
        for round_ in range(rounds):
            for name in VARIANTS:
                group = f"{name}.bench.almanac.dev"
                namespace = f"bench-schema-{uuid.uuid4().hex[:5]}"
                kubectl.run("create", "namespace", namespace)
                base = f"/apis/{group}/{version}/namespaces/{namespace}/scheduledjobruns"
                progress(f"{name}, round {round_ + 1}: {n} creates, then {n} status patches")
                s0, t0 = server_cpu(), time.time()
                await bounded([functools.partial(create, base, group, i) for i in range(n)])
                s1, t1 = server_cpu(), time.time()
                await bounded([functools.partial(patch, base, i) for i in range(n)])
                s2, t2 = server_cpu(), time.time()
                rows.append(
                    f"| {name} | {round_ + 1} | {t1 - t0:.2f} s ({cpu_cells(s0, s1)}) "
                    f"| {t2 - t1:.2f} s ({cpu_cells(s1, s2)}) |"
                )
                kubectl.run("delete", "namespace", namespace, "--wait=false")
    finally:
        await kube.close()
        kubectl.run("delete", "--wait=false", *names)
    print(f"\n| schema | round | {n} creates (CPU s) | {n} status patches (CPU s) |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n", nargs="?", type=int, default=1000, metavar="N")
    parser.add_argument("rounds", nargs="?", type=int, default=2, metavar="ROUNDS")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
