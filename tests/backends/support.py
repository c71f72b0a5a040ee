"""What the backend client tests share: an observer that records every call, and client settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.config import BackendSettings

S = TypeVar("S", bound=BackendSettings)


@dataclass
class Calls:
    """A CallObserver that remembers every attempt."""

    seen: list[tuple[str, str, float]] = field(default_factory=list)

    def __call__(self, backend: str, outcome: str, seconds: float) -> None:
        self.seen.append((backend, outcome, seconds))

    @property
    def outcomes(self) -> list[str]:
        return [outcome for _, outcome, _ in self.seen]


def loopback_settings(kind: type[S], url: str, **overrides: Any) -> S:
    """``kind`` of client settings for a fake served on loopback: 5 s timeout, two quick retries."""
    # The fakes speak plain http: skipping the CA bundle load saves ~0.15 s per client.
    values: dict[str, Any] = {
        "url": url,
        "timeout_s": 5.0,
        "retries": 2,
        "retry_backoff_s": 0.01,
        "tls_verify": False,
    }
    values.update(overrides)
    return kind(**values)
