"""What one replica does in the digest replica test (run in its own process by tests.harness.replicas)."""

from __future__ import annotations

from typing import Any

from tests.harness.app import OPERATOR_TOKEN, bearer, running_app, settings_for
from tests.harness.replicas import Ready


async def send_digest(ready: Ready, database_url: str, config: dict[str, Any], day: str) -> Any:
    """Asks its own Panorama to send the digest of ``day``; returns the answer."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (_app, client):
        await ready()
        answer = await client.post(f"/api/v1/digests/daily/send?date={day}", headers=bearer(OPERATOR_TOKEN))
    return {
        "status": answer.status_code,
        **{k: answer.json().get(k) for k in ("sent", "already_sent", "sends")},
    }
