"""Answers of the system endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.security import Role


class WhoAmI(BaseModel):
    name: str = Field(description="The token's configured name")
    role: Role


class EffectiveConfig(BaseModel):
    source: str = Field(description="The file the configuration came from, or (defaults)")
    config: dict[str, Any] = Field(description="The running configuration; secrets are masked")


class ReloadResult(BaseModel):
    source: str
    changed: list[str] = Field(description="Top-level sections that changed")
    warnings: list[str] = Field(default_factory=list)
