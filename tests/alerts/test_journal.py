"""The alert journal behind the webhook's 202: rows applied late keep the time they were received."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from app.alerts import journal
from tests.alerts.support import alert, alerting_config, chains, outbox, payload
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import row_settled


async def journal_late(app: FastAPI, body: dict[str, Any], received_at: datetime) -> str:
    """Journals ``body`` as received at ``received_at`` and left unapplied (the row a replica that
    crashed right after its 202 leaves, or one a storm kept waiting); the row's status URL. The
    running app's applier finds it, as it finds every row left by another process."""
    raw = orjson.dumps(body)
    received = journal.Received(received_at, body["groupKey"], raw, len(body["alerts"]))
    [entry_id] = await journal.insert(app.state.context.sessions, [received])
    app.state.context.alerts.journaled()  # looked at now, not at the next poll
    return journal.intake_path(entry_id)


async def incident(client: httpx.AsyncClient, incident_id: int) -> dict[str, Any]:
    found = await client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(VIEWER_TOKEN))
    assert found.status_code == 200, found.text
    detail: dict[str, Any] = found.json()
    return detail


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def times(detail: dict[str, Any], kind: str) -> list[datetime]:
    return [at(entry["at"]) for entry in detail["timeline"] if entry["kind"] == kind]


async def test_a_row_applied_late_keeps_the_time_it_was_received(
    app_factory: AppFactory, database_url: str
) -> None:
    """Two groups received 7 and 2 minutes before the applier got to them, then the second resolved
    30 s after it fired: the incidents opened, were routed and resolved when Alertmanager said so,
    and the 5-minute wait counts from the receipt (over already for the first: its next step paged
    at once; 3 minutes left for the second)."""
    now = datetime.now(UTC)
    overdue_at, recent_at = now - timedelta(minutes=7), now - timedelta(minutes=2)
    resolved_at = recent_at + timedelta(seconds=30)
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        overdue_url = await journal_late(app, payload("Down", [alert("Down")]), overdue_at)
        recent_url = await journal_late(app, payload("Slow", [alert("Slow")]), recent_at)
        overdue_row = await row_settled(client, overdue_url)
        recent_row = await row_settled(client, recent_url)
        [overdue_chain, recent_chain] = await chains(app.state.context.sessions)
        pages = await outbox(app.state.context.sessions)
        resolved = payload("Slow", [alert("Slow", status="resolved")])
        resolved_url = await journal_late(app, resolved, resolved_at)
        resolved_row = await row_settled(client, resolved_url)
        overdue = await incident(client, overdue_row["incident_id"])
        recent = await incident(client, recent_row["incident_id"])
    assert [overdue_row["status"], recent_row["status"], resolved_row["status"]] == ["applied"] * 3
    assert resolved_row["incident_id"] == recent["id"]
    assert at(overdue_row["received_at"]) == overdue_at
    overdue_applied = at(overdue_row["applied_at"])
    assert overdue_applied > overdue_at + timedelta(minutes=5)  # the row really was applied late
    # Opened and routed when received, not when applied.
    assert at(overdue["created_at"]) == overdue_at
    assert times(overdue, "received") == times(overdue, "routed") == [overdue_at]
    assert at(recent["created_at"]) == recent_at
    assert times(recent, "received") == times(recent, "routed") == [recent_at]
    assert at(recent["resolved_at"]) == times(recent, "resolved")[0] == resolved_at
    # The overdue chain: the wait was over when applied, so bob was paged at once, and the second
    # round began; its wait counts from the apply. The pages went out (and say so) when applied.
    by_incident = [(d.incident_id, d.kind, d.channel) for d in pages]
    assert by_incident[:4] == [
        (overdue["id"], "trigger", "ops-robot"),
        (overdue["id"], "escalate", "ops-robot"),
        (overdue["id"], "escalate", "ops-mail"),
        (overdue["id"], "escalate", "ops-robot"),
    ]
    assert (overdue_chain.step, overdue_chain.round) == (2, 1)
    assert overdue_chain.due_at == overdue_applied + timedelta(minutes=5)
    assert set(times(overdue, "escalated")) == {overdue_applied}
    # The recent chain: first page at once, the next step due 5 minutes after the receipt.
    assert by_incident[4:] == [(recent["id"], "trigger", "ops-robot")]
    assert (recent_chain.step, recent_chain.round) == (2, 0)
    assert recent_chain.due_at == recent_at + timedelta(minutes=5)
    assert all(d.due_at <= d.created_at for d in pages)  # due at once
