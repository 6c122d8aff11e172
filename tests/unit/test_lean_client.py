"""The operator's process imports the Kubernetes client without its generated models
(issue 14: a third of the empty operator's RSS)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import asyncio, json, sys
from almanac import lean_client
lean_client.load()
import kopf
from almanac.controller import runner
from almanac.kube import Kube, _ApiClient
from kubernetes_asyncio import client, config
from kopf._cogs.helpers import thirdparty
async def connect():  # the client's connection pool needs a loop
    await _ApiClient(client.Configuration()).close()
asyncio.run(connect())
print(json.dumps({
    "models": sorted(m for m in sys.modules if m.startswith("kubernetes_asyncio.client.models.")),
    "apis": sorted(m for m in sys.modules if m.startswith("kubernetes_asyncio.client.api.")),
    "kopf_sees_models": thirdparty.V1ObjectMetaAsync is not None,
    "login": [callable(config.load_kube_config), callable(config.load_incluster_config)],
    "exception": client.ApiException.__module__,
}))
"""


def test_the_operator_imports_the_clients_login_and_not_its_models() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout)
    assert seen["models"] == [] and seen["apis"] == []
    assert seen["kopf_sees_models"] is False
    assert seen["login"] == [True, True]
    assert seen["exception"] == "kubernetes_asyncio.client.exceptions"


def test_where_the_client_was_imported_whole_it_is_left_so() -> None:
    probe = (
        "import kubernetes_asyncio.client\n"
        "from almanac import lean_client\n"
        "lean_client.load()\n"
        "from kubernetes_asyncio import client\n"
        "print(client.BatchV1Api.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "BatchV1Api"
