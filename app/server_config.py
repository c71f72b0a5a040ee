"""The ``server`` section: how the HTTP service stops, throttles callers and answers browsers.

Kept beside ``app/config.py`` (which assembles every section) so that the middleware in
``app/limits.py`` and the lifespan can read it without importing the whole configuration.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from app.config_types import Duration, Model


class RateLimitSettings(Model):
    """Requests a minute each API token may make; over it the answer is 429 with ``Retry-After``."""

    per_token_per_min: int | None = Field(
        default=600, ge=1, description="Requests a minute per token (per replica); null: no limit"
    )
    burst: int | None = Field(
        default=None,
        ge=1,
        description="Requests at once above the rate (default: a tenth, at least 10)",
    )


class CorsSettings(Model):
    """Cross-origin access for browsers; off (no CORS headers at all) unless origins are listed."""

    allow_origins: list[str] = Field(default_factory=list, description="e.g. https://grafana.example.com")

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if value == "*":
                raise ValueError("'*' is refused: list the origins that may call Panorama")
            if not value.startswith(("http://", "https://")) or value.rstrip("/") != value:
                raise ValueError(f"{value!r} is not an origin like https://grafana.example.com")
        return values


class ServerSettings(Model):
    shutdown_grace: Duration = Field(
        default=timedelta(seconds=20),
        description="On SIGTERM: time for requests, deliveries and jobs in flight before the process exits",
    )
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)

    @field_validator("shutdown_grace")
    @classmethod
    def _grace(cls, value: timedelta) -> timedelta:
        if value > timedelta(minutes=10):
            raise ValueError("at most 10m (Kubernetes kills the pod after terminationGracePeriodSeconds)")
        return value
