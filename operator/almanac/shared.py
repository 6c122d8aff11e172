"""What is worked out once and shared between callers, within bounds.

The operator builds a job's schedule at every decision, the webhook one per job that
refers to an edited Calendar, and calendar-diff one per job of a file: a parsed
Calendar, a union of exclusions, a month's candidate days are worth working out once
for every caller that asks with the same content. Kept without a bound, they would
grow with every distinct content the process has ever seen. One class does it for all of
them, so that each cache is one line and bounded the same way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

_Key = TypeVar("_Key", bound=Hashable)
_Value = TypeVar("_Value")


class Kept(Generic[_Key, _Value]):
    """A least-recently-used cache bounded by the number of its entries and, given
    ``weigh`` (of a key and its value), by what they hold (about bytes): an entry count
    alone let 64 iCalendar texts of a megabyte each (a ConfigMap feed needs no allowed
    host) keep their parsed form, 20-30 bytes per character, until the operator ran out
    of memory. An entry heavier than the whole budget is computed and not kept.

    Thread-safe: the operator and the webhook work in threads beside the event loop. A
    value is made outside the lock and published last (two threads may make one key at
    once; the second copy replaces the first), so a caller never sees a half-made one."""

    def __init__(
        self,
        entries: int,
        budget: int | None = None,
        weigh: Callable[[_Key, _Value], int] | None = None,
    ) -> None:
        self._entries = entries
        self._budget = budget
        self._weigh = weigh
        self._held: OrderedDict[_Key, tuple[_Value, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: _Key, make: Callable[[], _Value]) -> _Value:
        """The value kept for ``key``, else ``make()``'s, kept."""
        with self._lock:
            found = self._held.get(key)
            if found is not None:
                self._held.move_to_end(key)
                return found[0]
        value = make()
        weight = self._weigh(key, value) if self._weigh is not None else 0
        if self._budget is not None and weight > self._budget:
            return value
        with self._lock:
            old = self._held.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._held[key] = (value, weight)
            self._weight += weight
            while len(self._held) > self._entries or (
                self._budget is not None and self._weight > self._budget
            ):
                _, (_, dropped) = self._held.popitem(last=False)
                self._weight -= dropped
        return value

    def __len__(self) -> int:
        return len(self._held)

    def clear(self) -> None:
        with self._lock:
            self._held.clear()
            self._weight = 0
