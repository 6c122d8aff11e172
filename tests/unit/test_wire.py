"""The operator's JSON (almanac.wire): orjson, and the standard library for documents
nested deeper than orjson goes, which the API server accepts (up to 10,000 levels)."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from almanac import wire
from almanac.controller.runner import RECURSION_LIMIT


@pytest.fixture(autouse=True)
def operator_recursion_limit() -> Iterator[None]:
    """The limit `almanac run` sets, as the process the operator runs in has it."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(RECURSION_LIMIT)
    yield
    sys.setrecursionlimit(before)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "é"}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "value",
    [
        {"metadata": {"name": "nightly", "labels": {"almanac.dev/run": "x"}}, "n": 3},
        [1, 2.5, None, True, "Bucureşti"],
        nested(254),
        nested(300),  # orjson refuses to write it
        nested(2000),  # and to read it
    ],
    ids=["object", "array", "254 deep", "300 deep", "2000 deep"],
)
def test_a_value_comes_back_as_it_went(value: Any) -> None:
    data = wire.dumps(value)
    assert isinstance(data, bytes)
    assert wire.loads(data) == value
    assert wire.loads(data.decode()) == value


def test_what_it_writes_is_compact_utf8_json_the_standard_library_reads() -> None:
    value = {"city": "Bucureşti", "list": [1, 2]}
    assert wire.dumps(value) == '{"city":"Bucureşti","list":[1,2]}'.encode()
    deep = nested(300)
    assert json.loads(wire.dumps(deep)) == deep


@pytest.mark.parametrize("data", [b"", b"{", b'{"a": 1', b"\xff", "{'a': 1}"])
def test_what_is_not_json_raises_a_value_error(data: bytes | str) -> None:
    with pytest.raises(ValueError):
        wire.loads(data)


def test_what_it_writes_holds_no_more_memory_than_its_size() -> None:
    """The store keeps thousands of these. orjson's own answer holds on to the block it
    wrote into (about 16 KB for a body of 2 KB, by tracemalloc)."""
    body = {"metadata": {"name": "x" * 40, "labels": {"a": "b" * 60}}, "pad": "p" * 1700}
    tracemalloc.start()
    try:
        written = [wire.dumps({**body, "i": i}) for i in range(2_000)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = sum(sys.getsizeof(w) for w in written)
    assert held <= size * 1.2, f"{held / size:.1f} times the size of what was written"
