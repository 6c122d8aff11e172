"""Who may take a Lease: table tests of the election rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from almanac.controller.leader import may_take

NOW = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


def lease(holder: str | None, renewed_ago: float | None, duration: int = 15) -> dict[str, Any]:
    spec: dict[str, Any] = {"holderIdentity": holder, "leaseDurationSeconds": duration}
    if renewed_ago is not None:
        spec["renewTime"] = (NOW - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"spec": spec}


@pytest.mark.parametrize(
    ("current", "allowed"),
    [
        (None, True),
        (lease(None, None), True),
        (lease("me", 1), True),
        (lease("other", 5), False),
        (lease("other", 15), False),
        (lease("other", 16), True),
        (lease("other", None), True),
    ],
    ids=[
        "no Lease yet: take it",
        "released Lease: take it",
        "our own Lease: renew it",
        "another holder renewed 5s ago: wait",
        "another holder exactly at the end of its 15s: wait",
        "another holder silent for 16s: take over",
        "another holder that never renewed: take over",
    ],
)
def test_may_take(current: dict[str, Any] | None, allowed: bool) -> None:
    assert may_take(current, "me", NOW) is allowed
