"""The suite's own helpers: what counts as an API refusal in an operator's log."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hack.ports import free_port
from tests.kube import api_refusals


@pytest.mark.parametrize(
    ("line", "refusal"),
    [
        ("run as-sa-29940371-m024 created for 2026-12-05T09:24:00Z", False),
        ("scheduledjobruns/t-x-4037/status patched, resourceVersion 14031", False),
        ("took 0.403 s", False),
        ("(403)", True),
        ("Reason: Forbidden", True),
        ('jobs.batch is forbidden: User "system:serviceaccount:a:b" cannot create', True),
        ("APIForbiddenError: ('x', {'kind': 'Status', 'code': 403})", True),
        ('{"kind":"Status","code": 403}', True),
        ("request failed status=403", True),
    ],
)
def test_api_refusals_find_refusals_and_not_digits(line: str, refusal: bool) -> None:
    assert api_refusals(f"first line\n{line}\nlast line") == ([line] if refusal else [])


def test_the_control_planes_ports_are_outside_the_range_outgoing_connections_take() -> None:
    """A port from bind(0) may be taken as the source port of any outgoing connection
    before the component binds it (a CI run failed so: "address already in use")."""
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(20)]
    assert all(10000 <= p < first_ephemeral for p in ports), ports
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # free when chosen
