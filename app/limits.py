"""Per-token request rate limits: a token bucket for each API token, in each replica.

A caller over ``server.rate_limit.per_token_per_min`` (with ``burst`` requests at once on top)
gets 429 with ``Retry-After``. The bucket is keyed by the token's digest, valid or not, so a
guessing client is slowed too; the token itself is never kept. The public routes (health,
readiness, metrics) and Alertmanager's webhook are never limited: a page must never wait for a
quota. The limiter never authenticates: that stays with each route's dependency. It runs in
``app.http_stack`` before routing; a request within its rate costs a SHA-256 of its token and a
dict lookup (no allocation but the digest), one over it never reaches the router.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Message, Scope

from app.server_config import RateLimitSettings

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/alerts/alertmanager"})
MAX_BUCKETS = 10_000
IDLE_S = 300.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key; ``take`` answers 0 when a request may go, else the seconds to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[bytes | str, _Bucket] = {}

    def take(self, key: bytes | str, per_min: int, burst: int) -> float:
        now = self._clock()
        rate = per_min / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if now - b.updated > IDLE_S]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: forget the oldest half
            for key, _ in sorted(self._buckets.items(), key=lambda kv: kv[1].updated)[: MAX_BUCKETS // 2]:
                del self._buckets[key]


def burst_of(settings: RateLimitSettings) -> int:
    assert settings.per_token_per_min is not None
    return settings.burst or max(10, settings.per_token_per_min // 10)


class RateLimiter:
    """Decides, before routing, whether a request is over its token's rate (``app.http_stack``)."""

    def __init__(self, settings: Callable[[], RateLimitSettings]) -> None:
        self.settings = settings
        self.buckets = TokenBuckets()

    def refusal(self, scope: Scope) -> tuple[Message, Message] | None:
        """None when the request may go on; else the 429 answer's two messages."""
        limits = self.settings()
        per_min = limits.per_token_per_min
        if per_min is None or scope["path"] in EXEMPT_PATHS:
            return None
        token = _bearer(scope)
        if token is None:
            return None
        wait = self.buckets.take(hashlib.sha256(token).digest(), per_min, burst_of(limits))
        if wait <= 0:
            return None
        retry_after = max(1, math.ceil(wait))
        body = json.dumps(
            {
                "error": "rate_limited",
                "message": f"this token made more than {per_min} requests a minute "
                f"(server.rate_limit); retry in {retry_after} s",
                "retry_after_s": retry_after,
            }
        ).encode()
        start: Message = {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
        return start, {"type": "http.response.body", "body": body}


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None
