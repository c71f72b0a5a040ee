"""Answers of the health, readiness and version endpoints."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    version: str


class DatabaseReadiness(BaseModel):
    ok: bool
    dialect: str = Field(examples=["sqlite", "postgresql"])
    latency_ms: float | None = None
    revision: str | None = Field(default=None, description="Schema revision the database is at")
    head: str | None = Field(default=None, description="Schema revision this version expects")
    error: str | None = None


class BackendReadiness(BaseModel):
    configured: bool
    ok: bool
    url: str | None = None
    latency_ms: float | None = None
    version: str | None = None
    error: str | None = None


class Readiness(BaseModel):
    """Ready when the database is up and migrated; a down backend is reported, not fatal."""

    ready: bool
    version: str
    database: DatabaseReadiness
    backends: dict[str, BackendReadiness]
