"""When a request the API server refused is tried again (kube.retry_delay), as client-go does."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from almanac.kube import TOO_MANY_REQUESTS_RETRIES, retry_delay


def refused(status: int, retry_after: str | None = None) -> ApiException:
    error = ApiException(status=status, reason="refused")
    error.headers = {} if retry_after is None else {"Retry-After": retry_after}
    return error


CASES = [
    # (id, status, Retry-After header, attempt, seconds to wait or None)
    ("429 waits the seconds the server asks", 429, "2", 0, 2.0),
    ("429 without Retry-After waits a second", 429, None, 0, 1.0),
    ("429 with an unreadable Retry-After waits a second", 429, "soon", 3, 1.0),
    ("429 asking for a minute waits ten seconds at most", 429, "60", 0, 10.0),
    ("429 asking for zero still yields a moment", 429, "0", 0, 0.1),
    ("429 after the last retry is raised", 429, "1", TOO_MANY_REQUESTS_RETRIES, None),
    ("409 Conflict is an answer, not a busy server", 409, None, 0, None),
    ("500 is raised to the caller", 500, "1", 0, None),
    ("404 is raised to the caller", 404, None, 0, None),
]


@pytest.mark.parametrize(
    ("status", "header", "attempt", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_retry_delay(status: int, header: str | None, attempt: int, expected: float | None) -> None:
    assert retry_delay(refused(status, header), attempt) == expected
