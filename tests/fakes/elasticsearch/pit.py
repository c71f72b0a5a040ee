"""Points in time: snapshots of shards, kept alive by each search that uses them."""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes.elasticsearch.errors import EsError, parsing_error
from tests.fakes.elasticsearch.indices import Shard

_TIME_UNITS_MS = {
    "nanos": 1e-6,
    "micros": 1e-3,
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}


@dataclass
class Pit:
    shards: list[Shard]
    keep_alive_ms: int
    expires_at: float


class PointsInTime:
    """The node's open points in time, by id (with ``rotate``, each search may give one more id)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Pit] = {}

    def open(self, shards: list[Shard], keep_alive_ms: int) -> str:
        pit_id = _new_pit_id()
        self._by_id[pit_id] = Pit(shards, keep_alive_ms, time.monotonic() + keep_alive_ms / 1000)
        return pit_id

    def lookup(self, pit: Any, *, rotate: bool) -> tuple[str, Pit]:
        """A search's ``pit`` object → the id to answer with and the live point in time (kept alive)."""
        if not isinstance(pit, dict) or not isinstance(pit.get("id"), str) or set(pit) - {"id", "keep_alive"}:
            raise parsing_error("[pit] must be an object with [id] and optional [keep_alive]")
        self._expire()
        live = self._by_id.get(pit["id"])
        if live is None:
            context = sum(pit["id"].encode()) % 1000
            raise EsError(
                404,
                "search_context_missing_exception",
                f"No search context found for id [{context}]",
                shard_level=True,
            )
        if "keep_alive" in pit:
            live.keep_alive_ms = time_value(str(pit["keep_alive"]), "keep_alive")
        live.expires_at = time.monotonic() + live.keep_alive_ms / 1000
        pit_id = pit["id"]
        if rotate:
            pit_id = _new_pit_id()
            self._by_id[pit_id] = live
        return pit_id, live

    def close(self, pit_id: str) -> int | None:
        """Frees the point in time (under all its ids); how many shards it held, None if unknown."""
        self._expire()
        live = self._by_id.get(pit_id)
        if live is None:
            return None
        for alias in [p for p, pit in self._by_id.items() if pit is live]:
            del self._by_id[alias]
        return len(live.shards)

    def count(self) -> int:
        self._expire()
        return len({id(pit) for pit in self._by_id.values()})

    def _expire(self) -> None:
        now = time.monotonic()
        for pit_id in [p for p, pit in self._by_id.items() if pit.expires_at < now]:
            del self._by_id[pit_id]


def time_value(raw: str, name: str) -> int:
    """A time value setting (``30s``, ``1m``, ``500ms``) in milliseconds."""
    match = re.fullmatch(r"(\d+)(nanos|micros|ms|s|m|h|d)", raw.strip())
    if match is None:
        raise EsError(
            400,
            "parse_exception",
            f"failed to parse setting [{name}] with value [{raw}] as a time value: "
            "unit is missing or unrecognized",
        )
    return int(int(match.group(1)) * _TIME_UNITS_MS[match.group(2)])


def _new_pit_id() -> str:
    return base64.b64encode(secrets.token_bytes(60)).decode()
