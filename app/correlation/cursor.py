"""The opaque cursor of the log search: a point in time, where the last page ended, and the search.

It is URL-safe base64 of compact JSON ``{"v": 1, "pit": ..., "after": [...], "search": {...}}``:

- ``pit``: the Elasticsearch point-in-time id, so every page reads the same snapshot
  (no line seen twice or skipped while new logs arrive) and paging goes past the
  10,000-hit ``from + size`` limit;
- ``after``: the last returned hit's sort values (timestamp, then the implicit
  ``_shard_doc`` tiebreaker), given back as ``search_after``;
- ``search``: the filters of the first page, so a next page needs only the cursor,
  and a cursor cannot be combined with different filters by mistake.

Clients must treat it as opaque; the format may change between versions (``v``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

VERSION = 1
MAX_CURSOR_CHARS = 16_384


class CursorError(ValueError):
    """The cursor is not one this API handed out."""


@dataclass(frozen=True)
class Cursor:
    pit_id: str
    after: list[Any]
    search: dict[str, Any]

    def encode(self) -> str:
        body = {"v": VERSION, "pit": self.pit_id, "after": self.after, "search": self.search}
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    if len(text) > MAX_CURSOR_CHARS:
        raise CursorError("the cursor is too long to be one this API handed out")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError):
        raise CursorError("the cursor is not one this API handed out (pass next_cursor unchanged)") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise CursorError("the cursor is from another version of Panorama; start the search again")
    pit, after, search = body.get("pit"), body.get("after"), body.get("search")
    if not isinstance(pit, str) or not isinstance(after, list) or not isinstance(search, dict):
        raise CursorError("the cursor is not one this API handed out (pass next_cursor unchanged)")
    return Cursor(pit, after, search)
