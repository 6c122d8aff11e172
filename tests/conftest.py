"""Fixtures shared by the suite.

Tests under tests/integration/ are marked ``cluster``: they run against the real local
control plane, which the session fixture ``kube`` reuses when ``make cluster-up`` started
one and healthy, and otherwise starts for the session and stops at its end. ``make
test`` runs two pytest-xdist workers, each with a control plane of its own (see
:func:`_state`). Each test
gets a namespace of its own from ``namespace``. ``pytest -m "not cluster"`` runs the
fast tests alone, without a cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube import Kubectl, wait_until

REPO = Path(__file__).resolve().parent.parent


def _state() -> Path:
    """This test process's control plane: ``.cluster/`` (the one ``make cluster-up``
    starts), and under pytest-xdist one more for each further worker (``.cluster-gw1/``),
    so that a test that freezes etcd, installs cluster-wide objects or counts the API
    server's requests never meets another test's."""
    base = Path(os.environ.get("ALMANAC_CLUSTER_STATE", REPO / ".cluster"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return base if worker == "gw0" else base.with_name(f"{base.name}-{worker}")


STATE = _state()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    integration = REPO / "tests" / "integration"
    for item in items:
        if Path(str(item.path)).is_relative_to(integration):
            item.add_marker(pytest.mark.cluster)


def _cluster(*command: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "hack" / "cluster.py"), *command, "--state", str(STATE)],
        text=True,
        capture_output=quiet,
    )


def _healthy() -> bool:
    return (STATE / "kubeconfig").exists() and _cluster("status", quiet=True).returncode == 0


@pytest.fixture(scope="session")
def kube(pytestconfig: pytest.Config) -> Iterator[Kubectl]:
    """kubectl for the local control plane (admin), started for the session if needed."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    started_here = False
    with capture.global_and_fixture_disabled():  # cluster start-up progress is for people
        if not _healthy():
            print(f"\nStarting the local control plane in {STATE.name}/...", flush=True)
            if _cluster("up").returncode != 0:
                # Once more from scratch: a start can lose a race for a port it found free.
                _cluster("down", quiet=True)
                if _cluster("up").returncode != 0:
                    pytest.fail(f"the local control plane did not start; see {STATE}/logs/")
            started_here = True
    yield Kubectl(STATE / "kubeconfig")
    if started_here:
        with capture.global_and_fixture_disabled():
            _cluster("down")


@pytest.fixture
def namespace(kube: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (without waiting) afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    kube.run("create", "namespace", name)
    # The ServiceAccount controller creates `default` shortly after the namespace; Pods
    # of Jobs need it. `kubectl wait` exits at once with NotFound while it does not
    # exist yet, so poll for its existence instead.
    wait_until(
        f"serviceaccount/default in namespace {name}",
        lambda: kube.in_namespace(name).get("serviceaccount", "default"),
        timeout=60,
    )
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def k(kube: Kubectl, namespace: str) -> Kubectl:
    """kubectl bound to the test's own namespace."""
    return kube.in_namespace(namespace)
