"""The ``web`` section of the configuration: how long page links and login sessions last."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

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
