"""Free ports for the local control plane's components (hack/cluster.py) and for what
the integration tests start beside it (an operator's webhook, metrics and health ports).

A module of its own so that both import it plainly: hack/cluster.py, run as a script,
has its own folder on sys.path (``from ports import free_port``); the tests run with the
repository root on it (``from hack.ports import free_port``).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    """A free port below the kernel's ephemeral range. A port the kernel hands out for
    bind(0) is in that range, where any outgoing connection made before the component
    binds it (a busy machine makes thousands) may take it as its source port: the
    component then fails with "address already in use"."""
    try:
        first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    candidates = list(range(10000, max(first_ephemeral, 10001)))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a machine with every low port taken: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
