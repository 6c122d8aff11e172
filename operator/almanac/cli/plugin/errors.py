"""The plugin's exit codes and its one kind of error for the user.

Ground floor of the plugin: imports only :mod:`almanac.errors`. Every other module of
the package may raise these; :func:`almanac.cli.plugin.main` prints them::

    PluginError          one message for the user: "Error: <message>" on stderr, exit 1
     ├── NotFound        kubectl's words: scheduledjob "x" not found in namespace "y"
     └── Unreachable     one line naming the server and pointing to kubectl cluster-info
"""

from __future__ import annotations

from almanac.errors import quote

__all__ = ["EXIT_ERROR", "EXIT_OK", "NotFound", "PluginError", "Unreachable"]

EXIT_OK, EXIT_ERROR = 0, 1


class PluginError(Exception):
    """A problem to show the user as one ``Error: ...`` message (exit 1)."""


class NotFound(PluginError):
    """An object is missing, said as kubectl says it."""

    def __init__(self, kind: str, name: str, namespace: str) -> None:
        super().__init__(f"{kind} {quote(name)} not found in namespace {quote(namespace)}")


class Unreachable(PluginError):
    """No answer from the API server; one line that names it and says what to try."""

    def __init__(self, server: str, why: str) -> None:
        super().__init__(
            f"cannot reach the Kubernetes API server at {server} ({why}); is the cluster "
            f"running and is this the right context? Check with: kubectl cluster-info"
        )
