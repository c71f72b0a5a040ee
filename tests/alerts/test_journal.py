"""The alert journal behind the webhook's 202: rows applied late keep the time they were received,
and a row whose apply keeps failing is given up while the database is fine (and only then)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.alerts import heartbeats, journal
from app.alerts.models import HeartbeatState
from tests.alerts.support import (
    WEBHOOK,
    alert,
    alerting_config,
    bearer_webhook,
    chains,
    incidents,
    outbox,
    payload,
)
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import row_settled, settled
from tests.test_observability import sample


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


async def last_seen(app: FastAPI) -> datetime:
    async with app.state.context.sessions() as session:
        [state] = (await session.scalars(select(HeartbeatState))).all()
        seen: datetime = state.last_seen_at
        return seen


async def test_a_heartbeat_applied_late_was_seen_when_received_and_never_resolves_before_it_went_missing(
    app_factory: AppFactory, database_url: str
) -> None:
    """Watchdog sightings applied late count from their receipt. One received 10 minutes ago: the
    heartbeat (5 min) is found missing. One received 3 minutes ago, applied only after that: the
    heartbeat was last seen then, and the "missing" incident resolves, at the earliest when it opened."""
    now = datetime.now(UTC)
    watchdog = payload("Watchdog", [alert("Watchdog", severity="none")])
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        context = app.state.context
        first = await row_settled(client, await journal_late(app, watchdog, now - timedelta(minutes=10)))
        seen_first = await last_seen(app)
        async with context.sessions.begin() as session:
            opened = await heartbeats.check(
                session, context.settings, now, await context.alerts.signing_key()
            )
        second = await row_settled(client, await journal_late(app, watchdog, now - timedelta(minutes=3)))
        seen_second = await last_seen(app)
        [missing] = await incidents(context.sessions)
    assert [first["status"], second["status"]] == ["applied", "applied"]
    assert seen_first == now - timedelta(minutes=10)
    assert opened == 1
    assert seen_second == now - timedelta(minutes=3)
    assert missing.status == "resolved"
    assert missing.resolved_by == "heartbeat"
    assert missing.resolved_at == missing.created_at == now  # opened by the check at `now`


# What the database does to the tests below, installed as triggers (the database is real, and so
# is its error: on PostgreSQL a SQLSTATE of class 53, "insufficient resources"; on SQLite an
# OperationalError, as SQLITE_FULL is). Both are errors journal.transient() calls the database's.
ROW_REFUSED = {  # one group's incident, as a server out of memory on that row alone would
    "sqlite": [
        "CREATE TRIGGER refuse_row BEFORE INSERT ON alert_incidents WHEN NEW.title LIKE 'Poison%' "
        "BEGIN SELECT json_extract('not json', '$'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.title LIKE 'Poison%' THEN RAISE EXCEPTION 'out of memory' USING ERRCODE = 'out_of_memory'; "
        "END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_row BEFORE INSERT ON alert_incidents "
        "FOR EACH ROW EXECUTE FUNCTION refuse_row()",
    ],
}
DISK_FULL = {  # every write that marks a journal row, as a full disk refuses every write
    "sqlite": [
        "CREATE TRIGGER disk_full BEFORE UPDATE ON alert_journal BEGIN SELECT json_extract('x', '$'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'could not extend file: No space left on device' "
        "USING ERRCODE = 'disk_full'; END $$",
        "CREATE TRIGGER disk_full BEFORE UPDATE ON alert_journal FOR EACH ROW EXECUTE FUNCTION disk_full()",
    ],
}
DISK_FREED = {"sqlite": ["DROP TRIGGER disk_full"], "postgresql": ["DROP TRIGGER disk_full ON alert_journal"]}


def dialect(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


async def execute(database_url: str, statements: Sequence[str]) -> None:
    """Runs DDL on the test's database from a connection of its own (not Panorama's)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    answer = await client.post(WEBHOOK, json=body, headers=bearer_webhook())
    assert answer.status_code == 202, answer.text
    return answer


async def metric(client: httpx.AsyncClient, name: str) -> float:
    return sample((await client.get("/metrics")).text, name) or 0.0


@pytest.mark.timeout(90)
async def test_a_row_that_keeps_failing_while_others_apply_is_given_up_naming_its_error(
    app_factory: AppFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses one group's incident with an error it would also give when down or
    overloaded, while the rows around it apply: that row is given up after its limit, its error
    named by the intake status, the metric and one log line; the rows after it are not held, but
    its own group's next row waits for it (a group's rows apply in the order they arrived)."""
    caplog.set_level(logging.INFO, logger="panorama.alerts")
    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        await execute(database_url, ROW_REFUSED[dialect(database_url)])
        before = await post(client, payload("Before", [alert("Before")]))
        refused = await post(client, payload("Poison", [alert("Poison")]))
        same_group = await post(client, payload("Poison", [alert("Recovered")]))  # a title not refused
        after = await post(client, payload("After", [alert("After")]))
        outcomes = [await settled(client, answer, timeout_s=60) for answer in (before, refused, after)]
        next_in_group = await settled(client, same_group, timeout_s=60)
        later = await settled(client, await post(client, payload("Later", [alert("Later")])))
        failed_metric = await metric(client, "panorama_alert_journal_failed_total")
    assert [o["status"] for o in [*outcomes, later]] == ["applied", "failed", "applied", "applied"]
    given_up = outcomes[1]
    assert given_up["attempts"] == journal.MAX_TRANSIENT_ATTEMPTS
    assert given_up["incident_id"] is None
    named = "out of memory" if dialect(database_url) == "postgresql" else "malformed JSON"
    assert named in given_up["error"]
    assert failed_metric == 1
    assert next_in_group["status"] == "applied"
    assert at(next_in_group["applied_at"]) >= at(given_up["applied_at"])  # not before the row ahead of it
    lines = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(lines) == 1
    assert f"row {given_up['id']} given up after {journal.MAX_TRANSIENT_ATTEMPTS} failed applies" in lines[0]
    assert named in lines[0]


@pytest.mark.timeout(90)
async def test_a_database_that_takes_no_write_fails_no_row_however_long_it_lasts(
    app_factory: AppFactory, database_url: str
) -> None:
    """Every write marking a journal row is refused (a full disk) while reads work: the applier
    retries for as long as it lasts, more passes than a row's limit, counting no row's attempt;
    once writes work again every row is applied."""
    async with app_factory(database_url=database_url, **alerting_config()) as (_app, client):
        await execute(database_url, DISK_FULL[dialect(database_url)])
        answers = [await post(client, payload(name, [alert(name)])) for name in ("First", "Second")]
        deadline = time.monotonic() + 60
        while await metric(client, "panorama_alert_journal_errors_total") <= journal.MAX_TRANSIENT_ATTEMPTS:
            assert time.monotonic() < deadline, "the applier never failed a pass"
            await asyncio.sleep(0.1)
        during = [(await client.get(a.json()["url"], headers=bearer(VIEWER_TOKEN))).json() for a in answers]
        await execute(database_url, DISK_FREED[dialect(database_url)])
        outcomes = [await settled(client, answer, timeout_s=30) for answer in answers]
        failed_metric = await metric(client, "panorama_alert_journal_failed_total")
    assert [(d["status"], d["attempts"], d["error"]) for d in during] == [("queued", 0, None)] * 2
    assert [(o["status"], o["attempts"]) for o in outcomes] == [("applied", 0)] * 2
    assert failed_metric == 0
