"""What one replica does in the rollup replica tests (run in its own process by tests.harness.replicas)."""

from __future__ import annotations

from datetime import date
from typing import Any

from app import db
from app.rollups import service
from tests.harness.app import settings_for
from tests.harness.replicas import Ready


async def roll_up_day(ready: Ready, database_url: str, config: dict[str, Any], day: str, name: str) -> Any:
    """Rolls up ``day`` (the on-call history: no Prometheus) at the same instant as the others."""
    settings = settings_for(database_url, **config)
    engine = db.create_engine(settings.database)
    try:
        sessions = db.create_session_factory(engine)
        await ready()
        outcome = await service.run_day(sessions, None, settings, date.fromisoformat(day), trigger=name)
    finally:
        await engine.dispose()
    return [outcome.status, outcome.values]
