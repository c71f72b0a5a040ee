"""The ``web`` section of the configuration: how long page links and login sessions last, and how
long a page waits for a backend."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from app.config_types import Duration, Model


class WebSettings(Model):
    view_link_ttl: Duration = Field(
        default=timedelta(days=7),
        description="How long the read-only page link in a notification (and the links it opens) works",
    )
    session_ttl: Duration = Field(
        default=timedelta(days=7),
        description="How long a browser stays logged in after entering a token in the login form",
    )
    part_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="How long the service page waits for each part fed by a backend (Prometheus, "
        "Elasticsearch, Jaeger); past it, the part says the backend did not answer in time and the page "
        "shows the rest (at most 60s)",
    )

    @field_validator("part_timeout")
    @classmethod
    def _part_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=60):
            raise ValueError("must be longer than 0s and at most 60s (a person waits for the page)")
        return value
