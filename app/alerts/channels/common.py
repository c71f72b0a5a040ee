"""Configuration fields every channel has."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from app.config_types import Model

CHANNEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class ChannelBase(Model):
    name: str = Field(pattern=CHANNEL_NAME)
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Per delivery attempt")
    rate_limit_per_min: int | None = Field(
        default=None,
        ge=1,
        description="Messages a minute; over it, queued messages are merged into one digest",
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Messages sent to the channel at once by one replica (1 keeps their order)",
    )


def check_secret_url(value: SecretStr) -> SecretStr:
    """Robot URLs carry their access token, so they are secrets; they must still be URLs."""
    raw = value.get_secret_value()
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class UrlChannel(ChannelBase):
    url: SecretStr = Field(description="The robot's webhook URL (it carries the access token: a secret)")

    _url = field_validator("url")(check_secret_url)
