"""The Kubernetes client without its generated models, for the operator's process.

``kubernetes_asyncio.client``'s ``__init__`` imports all of the client's generated API
classes and models (about 900 modules) before anything else of it can be used. The
operator uses none of them: it sends its requests itself (:mod:`almanac.kube`) and
takes from the client only what logs in (``Configuration``, ``ApiClient``, the kubeconfig
and in-cluster loaders, exec plugins and token refresh) and its exceptions. Those
modules cost the operator 34 MB of its RSS, a third of it on an empty namespace
(issue 14: "RSS at most 200 MB after 10,000 fires"), and every ``kubectl almanac``
command 0.15 s of its start (a quarter of it).

:func:`load` imports the client's packages as empty namespaces and then the modules the
operator uses, as the package's own ``__init__`` would. Anything that asks for a model
afterwards gets an ImportError: kopf, which imports ``V1ObjectMeta`` only to recognise
such objects if a handler returns one, takes that as "not installed".

Our modules take the client from here (``client``, ``config``, ``ApiException``,
``ConfigException``), never from ``kubernetes_asyncio`` itself: importing this module
loads it lean, so whichever of our modules comes first, the models are never loaded.
Only kopf must come after it: ``almanac run`` imports this module before the
controller, which imports kopf. Where the client was imported whole already (kopf
first, a benchmark's own client), :func:`load` does nothing.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

PACKAGE = "kubernetes_asyncio"

#: The client's modules that log in and report errors, in the order they import each other.
USED = ("exceptions", "configuration", "rest", "api_client")


def load() -> None:
    """Imports the client's login and error modules without its generated ones."""
    if PACKAGE in sys.modules:
        return  # imported already (whole, or by an earlier call)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: the operator's own import says so
    root = next(iter(spec.submodule_search_locations))
    package = _namespace(PACKAGE, root)
    client = _namespace(f"{PACKAGE}.client", os.path.join(root, "client"))
    client.models = _namespace(  # type: ignore[attr-defined]
        f"{PACKAGE}.client.models", os.path.join(root, "client", "models")
    )
    package.client = client  # type: ignore[attr-defined]
    for name in USED:
        setattr(client, name, importlib.import_module(f"{PACKAGE}.client.{name}"))
    client.ApiClient = client.api_client.ApiClient  # type: ignore[attr-defined]
    client.Configuration = client.configuration.Configuration  # type: ignore[attr-defined]
    client.ApiException = client.exceptions.ApiException  # type: ignore[attr-defined]
    package.config = importlib.import_module(f"{PACKAGE}.config")  # type: ignore[attr-defined]


def _namespace(name: str, path: str) -> types.ModuleType:
    """An empty package at ``path``, in ``sys.modules``: its submodules import as usual,
    its ``__init__`` is not run."""
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [path]
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [path]
    sys.modules[name] = module
    return module


load()

# After load(): these are the lean client's modules (or the whole client's, if it came first).
from kubernetes_asyncio import client, config  # noqa: E402
from kubernetes_asyncio.client.exceptions import ApiException  # noqa: E402
from kubernetes_asyncio.config import ConfigException  # noqa: E402

__all__ = ["ApiException", "ConfigException", "client", "config", "load"]
