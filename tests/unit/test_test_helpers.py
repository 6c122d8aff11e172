"""The suite's own helpers: what counts as an API refusal in an operator's log."""

from __future__ import annotations

import pytest

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
