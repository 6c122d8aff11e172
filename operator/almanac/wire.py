"""JSON as the operator writes and reads it: to and from the API server, and the compact
copies it keeps (the store's bodies, parked decisions).

orjson, because JSON was a sixth of the operator's CPU in a burst of fires (encoding
about 15 times and decoding about twice as fast as the standard library's). orjson
stops at 255 levels of nesting when writing and 1,024 when reading, and the API server
accepts objects nested up to 10,000 (apimachinery's util/json maxDepth): such a document
goes through the standard library instead (the operator raises the recursion limit for
it, :data:`almanac.controller.runner.RECURSION_LIMIT`), so that one deep object costs
time, not a watch that can never read past it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, in a block of memory of its own size: orjson's
    answer sits in the larger block it was written into, and the store keeps thousands
    of these (20,000 bodies of 1.8 KB took 79 MB of RSS as orjson wrote them, 36 MB
    copied, as with the standard library)."""
    try:
        return bytes(memoryview(orjson.dumps(value)))
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    """The value of a JSON document; ValueError if it is not one."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # nested deeper than orjson reads, or not JSON (raises)
