"""Which cluster, and running one verb against it.

The cluster is found as kubectl finds it (``--kubeconfig``, else $KUBECONFIG, else
~/.kube/config; ``--context``, else the current one; ``-n``, else the context's
namespace, else ``default``). :func:`execute` runs the verb within
:data:`API_DEADLINE_SECONDS` (plus ``--wait``) and turns every failure of the client into
one :class:`PluginError`: a missing or unusable kubeconfig, an unknown context, a server
that does not answer (:class:`Unreachable`), 401, 404 (no CRDs), any other status.

At the edge: files, the network through :class:`almanac.kube.Kube`. Imports
:mod:`almanac.kube`, :mod:`almanac.errors` and, of the plugin, :mod:`.errors` and
:class:`.verbs.Context`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl

import aiohttp

from almanac.cli.plugin import verbs
from almanac.cli.plugin.errors import PluginError, Unreachable
from almanac.cli.plugin.verbs import Context
from almanac.errors import quote
from almanac.kube import Kube, api_message
from almanac.lean_client import ApiException, ConfigException

__all__ = ["API_DEADLINE_SECONDS", "execute"]

#: How long the API server may take over all of a verb's requests (besides ``--wait``).
#: The client has no timeout of its own, and a firewalled server would hang forever.
API_DEADLINE_SECONDS = 30.0


def _kubeconfig_files(kubeconfig: str | None) -> list[str]:
    """The files kubectl would read, as the client will: --kubeconfig, else $KUBECONFIG
    (a list), else ~/.kube/config."""
    paths = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [os.path.expanduser(p) for p in paths.split(os.pathsep) if p]


async def _connect(kubeconfig: str | None, context: str | None) -> tuple[Kube, str | None]:
    files = _kubeconfig_files(kubeconfig)
    if not any(os.path.isfile(f) for f in files):
        where = (
            f"kubeconfig {quote(kubeconfig)}"
            if kubeconfig
            else f"no kubeconfig ({', '.join(files)})"
        )
        raise PluginError(
            f"{where} does not exist"
            if kubeconfig
            else f"{where}; pass --kubeconfig or set "
            f"KUBECONFIG, then check with: kubectl cluster-info"
        )
    try:
        # The files as found here, so that the client reads the same ones (it would
        # take an empty $KUBECONFIG literally).
        return await Kube.connect_kubeconfig(os.pathsep.join(files), context)
    except ConfigException as e:
        if context and f"name {context} in" in str(e):
            raise PluginError(
                f"context {quote(context)} is not in the kubeconfig; kubectl config "
                f"get-contexts lists those that are"
            ) from None
        raise PluginError(
            f"cannot use the kubeconfig: {e}; check it with: kubectl config view"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise PluginError(
            f"cannot use the kubeconfig: {e or type(e).__name__}; check it with: "
            f"kubectl config view"
        ) from None


def _why(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {API_DEADLINE_SECONDS:g}s"
    os_error = getattr(error, "os_error", error)
    if isinstance(os_error, ssl.SSLError):
        return f"TLS: {os_error.reason or os_error}"  # e.g. CERTIFICATE_VERIFY_FAILED
    if isinstance(os_error, OSError) and os_error.errno:
        return os.strerror(os_error.errno).lower()  # "connection refused", not aiohttp's prose
    return str(error) or type(error).__name__


async def execute(args: argparse.Namespace) -> int:
    """Runs the verb ``args.verb`` names (a function of :mod:`.verbs`) in the cluster and
    namespace ``args`` name; its exit code."""
    kube, context_namespace = await _connect(args.kubeconfig, args.context)
    server = str(kube.api.configuration.host)
    context = Context(kube, args.namespace or context_namespace or "default")
    try:
        async with asyncio.timeout(API_DEADLINE_SECONDS + getattr(args, "wait", 0.0)):
            code: int = await getattr(verbs, args.verb)(context, args)
            return code
    except BrokenPipeError:
        raise  # our reader went away (| head), not the server
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        raise Unreachable(server, _why(e)) from None
    except ApiException as e:
        if e.status == 401:
            raise PluginError(
                f"the API server at {server} did not accept the credentials (401 Unauthorized);"
                f" check the kubeconfig's user with: kubectl cluster-info"
            ) from None
        if e.status == 404:
            raise PluginError(
                f"the API server at {server} has no Almanac resources (404: {api_message(e)}); "
                f"are the CRDs installed? kubectl get crd scheduledjobs.almanac.dev"
            ) from None
        raise PluginError(f"the API server answered {e.status}: {api_message(e)}") from None
    finally:
        await kube.close()
