"""What was computed from the stored days, kept while the store has not changed since.

Why: Grafana panels and the wall screen ask for the same three-year series again and again
(every refresh, every viewer), and the stored days change once a day. Each answer is kept
with the store's write counter (``models.RollupState``, incremented in the same transaction
as every write of days); a later request reads that one number and, when it has not moved,
answers from memory instead of reading and summing 1,096 days again. Several replicas stay
right because the counter is in the database, not in a process.

It never keeps anything it cannot tell is current, and holds at most ``MAX_ENTRIES`` answers
(the least recently used leave first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")

MAX_ENTRIES = 64
"""A three-year daily series of every figure is about 100 KB, and its JSON answer 400 KB: ~32 MB."""


class Computed(Generic[Value]):
    """Values by key, each valid for one generation of the store and one catalogue object."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Hashable, tuple[int, object, Value]] = OrderedDict()
        self._max = max_entries

    def get(self, key: Hashable, generation: int, catalog: object) -> Value | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_generation, stored_catalog, value = entry
        if stored_generation != generation or stored_catalog is not catalog:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, generation: int, catalog: object, value: Value) -> None:
        self._entries[key] = (generation, catalog, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
