"""The alert journal behind the webhook's 202: rows applied late keep the time they were received,
and a row whose apply keeps failing is given up while the database is fine (and only then)."""

from __future__ import annotations

import asyncio
import json
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

from app import db
from app.alerts import escalation, heartbeats, horizon, journal
from app.alerts.channels.views import format_time
from app.alerts.models import HeartbeatState
from app.config import DatabaseSettings
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
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
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


# --- what the worker decides while rows wait in the journal (app.alerts.horizon) ----------------


async def check_heartbeats(app: FastAPI, at: datetime) -> int:
    """The worker's heartbeat check, run as if it were ``at``."""
    context = app.state.context
    async with context.sessions.begin() as session:
        opened: int = await heartbeats.check(
            session, context.settings, at, await context.alerts.signing_key()
        )
        return opened


async def escalate(app: FastAPI, at: datetime, *, passes: int = 5) -> int:
    """The worker's escalation passes, run as if it were ``at``, until one advances a chain (at most
    ``passes``, a moment apart): how many it advanced. On PostgreSQL a pass passes over an incident
    another transaction holds (``SKIP LOCKED``) — here the applier's, retrying the queued row — and
    the worker looks again on its next pass, as these do."""
    context = app.state.context
    for _ in range(passes):
        async with context.sessions.begin() as session:
            advanced: int = await escalation.run_due(
                session, context.settings, at, await context.alerts.signing_key()
            )
        if advanced:
            return advanced
        await asyncio.sleep(0.1)
    return 0


async def journal_stuck(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, body: dict[str, Any], received_at: datetime
) -> str:
    """Journals ``body`` as received at ``received_at`` while the applier cannot mark journal rows
    (the database refuses those writes from now on), once the applier failed a pass over it: the row
    stays queued, as behind a lagging applier. Its status URL."""
    errors = await metric(client, "panorama_alert_journal_errors_total")
    await execute(database_url, DISK_FULL[dialect(database_url)])
    url = await journal_late(app, body, received_at)
    deadline = time.monotonic() + 30
    while await metric(client, "panorama_alert_journal_errors_total") <= errors:
        assert time.monotonic() < deadline, "the applier never failed a pass"
        await asyncio.sleep(0.05)
    return url


@pytest.mark.timeout(120)
async def test_a_heartbeat_waiting_in_the_journal_is_not_missing_until_the_journal_is_stuck(
    app_factory: AppFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The Watchdog (5 min) was last applied 4 minutes ago; its next webhook, received 30 s ago, waits
    in the journal (the applier cannot write). Judged as of what was received, it is not missing two
    minutes from now, nor six (the journal may hold the check back one interval, no more). Seven
    minutes from now the journal has not moved for longer than that: the check pages — once, between
    two replicas — and the incident says the journal holds webhooks since when; the journal's age
    shows in its metric. The "missing" incident's escalation waits for rows received before its
    step, within the same bound. Once the journal moves, the sighting resolves the incident, never
    before it opened."""
    caplog.set_level(logging.WARNING, logger="panorama.alerts")
    now = datetime.now(UTC)
    watchdog = payload("Watchdog", [alert("Watchdog", severity="none")])
    waiting_since = now - timedelta(seconds=30)
    stuck_at = now + timedelta(minutes=7)
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        context = app.state.context
        await row_settled(client, await journal_late(app, watchdog, now - timedelta(minutes=4)))
        waiting = await journal_stuck(app, client, database_url, watchdog, waiting_since)
        early = await check_heartbeats(app, now + timedelta(minutes=2))
        within_bound = await check_heartbeats(app, now + timedelta(minutes=6))
        engines = [db.create_engine(DatabaseSettings.model_validate({"url": database_url})) for _ in range(2)]
        key = await context.alerts.signing_key()

        async def replica_check(engine: Any) -> int:
            async with db.create_session_factory(engine).begin() as session:
                opened: int = await heartbeats.check(session, context.settings, stuck_at, key)
                return opened

        try:
            stuck = await asyncio.gather(*(replica_check(engine) for engine in engines))
        finally:
            for engine in engines:
                await engine.dispose()
        oldest = await metric(client, "panorama_alert_journal_oldest_queued_seconds")
        [opened] = await incidents(context.sessions)
        # Its chain's next step is due five minutes after it opened; the Watchdog row is older.
        [chain] = await chains(context.sessions)
        assert chain.due_at is not None
        held = await escalate(app, chain.due_at + horizon.ESCALATION_HOLD - timedelta(seconds=1))
        await execute(database_url, DISK_FREED[dialect(database_url)])
        back = await row_settled(client, waiting, timeout_s=30)
        [missing] = await incidents(context.sessions)
        detail = await incident(client, missing.id)
    assert early == 0  # on a check of applied state: 6 minutes since the last sighting, paged
    assert within_bound == 0
    assert sorted(stuck) == [0, 1]
    assert chain.due_at == stuck_at + timedelta(minutes=5)
    assert held == 0
    since = format_time(waiting_since, app.state.context.settings.tzinfo)  # as the messages write times
    assert f"自 {since} 起收到" in json.loads(opened.common_annotations)["summary"]
    assert [r for r in caplog.records if "alert journal has not moved" in r.getMessage()]
    assert 30 <= oldest < 4 * 60  # the waiting row's age, not the applied one's
    assert back["status"] == "applied"
    assert missing.status == "resolved"
    assert missing.resolved_at == missing.created_at == stuck_at
    [resolved] = [e for e in detail["timeline"] if e["kind"] == "resolved"]
    assert resolved["detail"] == {"received_at": waiting_since.isoformat()}


@pytest.mark.timeout(90)
async def test_an_ack_made_while_the_resolve_waited_in_the_journal_comes_before_the_resolve(
    app_factory: AppFactory, database_url: str
) -> None:
    """Alertmanager resolved the group two minutes ago; that webhook waits in the journal while
    someone acknowledges the incident. When the resolve is applied, the ack stands as made, the
    resolve follows it (opened <= acknowledged <= resolved: no report's duration goes negative, time
    to acknowledge never exceeds time to resolve), its timeline entry keeps when Alertmanager said
    so, and the timeline reads in the order things happened."""
    now = datetime.now(UTC)
    fired_at, resolved_at = now - timedelta(minutes=3), now - timedelta(minutes=2)
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        opened = await row_settled(
            client, await journal_late(app, payload("Down", [alert("Down")]), fired_at)
        )
        resolve = payload("Down", [alert("Down", status="resolved")])
        waiting = await journal_stuck(app, client, database_url, resolve, resolved_at)
        acked = await client.post(
            f"/api/v1/incidents/{opened['incident_id']}/ack", headers=bearer(OPERATOR_TOKEN)
        )
        await execute(database_url, DISK_FREED[dialect(database_url)])
        applied_row = await row_settled(client, waiting, timeout_s=30)
        detail = await incident(client, opened["incident_id"])
    assert acked.status_code == 200, acked.text
    assert applied_row["status"] == "applied"
    assert detail["status"] == "resolved"
    created, acknowledged, resolved = (
        at(detail[k]) for k in ("created_at", "acknowledged_at", "resolved_at")
    )
    assert created == fired_at
    assert acknowledged == at(acked.json()["acknowledged_at"])  # the ack stands as it was made
    assert created < acknowledged <= resolved
    [entry] = [e for e in detail["timeline"] if e["kind"] == "resolved"]
    assert at(entry["at"]) == resolved
    assert entry["detail"] == {"received_at": resolved_at.isoformat()}
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.index("acknowledged") < kinds.index("resolved")
    stamps = [at(e["at"]) for e in detail["timeline"]]
    assert stamps == sorted(stamps)


@pytest.mark.timeout(90)
async def test_a_firing_update_queued_while_the_incident_was_resolved_by_hand_pages_again_after_it(
    app_factory: AppFactory, database_url: str
) -> None:
    """Alertmanager said the group still fires two minutes ago; that webhook waits in the journal
    while someone resolves the incident by hand. When it is applied, the group fires again: a new
    incident opens and pages, stamped at the manual resolve (never before the first one closed), its
    timeline keeping when Alertmanager said so; its chain counts from its opening. The group's next
    webhook updates it, never before it opened."""
    now = datetime.now(UTC)
    fired_at, repeated_at = now - timedelta(minutes=3), now - timedelta(minutes=2)
    firing = payload("Down", [alert("Down")])
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        first_row = await row_settled(client, await journal_late(app, firing, fired_at))
        first_id = first_row["incident_id"]
        waiting = await journal_stuck(app, client, database_url, firing, repeated_at)
        resolved = await client.post(f"/api/v1/incidents/{first_id}/resolve", headers=bearer(OPERATOR_TOKEN))
        await execute(database_url, DISK_FREED[dialect(database_url)])
        second_row = await row_settled(client, waiting, timeout_s=30)
        joined = payload("Down", [alert("Down"), alert("Down", instance="b")])
        third_row = await row_settled(
            client, await journal_late(app, joined, repeated_at + timedelta(seconds=1))
        )
        first = await incident(client, first_id)
        second = await incident(client, second_row["incident_id"])
        pages = [(d.incident_id, d.kind) for d in await outbox(app.state.context.sessions)]
        chain = [c for c in await chains(app.state.context.sessions) if c.incident_id == second["id"]]
    assert resolved.status_code == 200, resolved.text
    assert second_row["status"] == third_row["status"] == "applied"
    assert second["id"] != first_id
    assert third_row["incident_id"] == second["id"]
    manual = at(first["resolved_at"])
    assert first["resolved_by"] != "alertmanager"
    assert at(second["created_at"]) == manual  # opened when the first closed, not before
    [received] = [e for e in second["timeline"] if e["kind"] == "received"]
    assert at(received["at"]) == manual
    assert received["detail"]["received_at"] == repeated_at.isoformat()
    assert times(second, "routed") == [manual]
    stamps = [at(e["at"]) for e in second["timeline"]]
    assert stamps == sorted(stamps)
    assert stamps[0] == manual
    assert (second["id"], "trigger") in pages  # it pages again
    assert [(c.step, c.due_at) for c in chain] == [(2, manual + timedelta(minutes=5))]


@pytest.mark.timeout(90)
async def test_an_escalation_step_waits_for_its_groups_resolve_queued_in_the_journal(
    app_factory: AppFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The incident's next step (bob) is due 30 s from now; the group's resolve, received now, waits in
    the journal. Ten seconds after the step fell due nobody is paged: the resolve was received
    first. A journal that does not move holds the step back at most ESCALATION_HOLD, then bob is
    paged, and the log says why. Once applied, the resolve ends the chain."""
    caplog.set_level(logging.WARNING, logger="panorama.alerts")
    now = datetime.now(UTC)
    fired = payload("Down", [alert("Down")])
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        context = app.state.context
        opened = await row_settled(
            client, await journal_late(app, fired, now - timedelta(minutes=4, seconds=30))
        )
        [chain] = await chains(context.sessions)
        assert chain.due_at is not None
        received = datetime.now(UTC)
        resolve = payload("Down", [alert("Down", status="resolved")])
        waiting = await journal_stuck(app, client, database_url, resolve, received)
        held = await escalate(app, chain.due_at + timedelta(seconds=10))
        pages_held = [d.kind for d in await outbox(context.sessions)]
        stuck = await escalate(app, chain.due_at + horizon.ESCALATION_HOLD)
        pages_stuck = [(d.kind, d.channel) for d in await outbox(context.sessions)]
        await execute(database_url, DISK_FREED[dialect(database_url)])
        applied_row = await row_settled(client, waiting, timeout_s=30)
        [after] = await chains(context.sessions)
        [resolved] = await incidents(context.sessions)
    assert chain.due_at == now + timedelta(seconds=30)
    assert received < chain.due_at  # the resolve was received before the step fell due
    assert held == 0
    assert pages_held == ["trigger"]
    assert stuck == 1
    # bob on both channels, then the second round's first step (who is on call)
    assert pages_stuck[1:] == [("escalate", "ops-robot"), ("escalate", "ops-mail"), ("escalate", "ops-robot")]
    assert [
        r for r in caplog.records if f"incident {opened['incident_id']} escalated although" in r.getMessage()
    ]
    assert applied_row["status"] == "applied"
    assert resolved.status == "resolved"
    assert after.due_at is None


JOURNAL_REFUSED = {  # no journal row can be inserted (as on a full disk)
    "sqlite": [
        "CREATE TRIGGER journal_full BEFORE INSERT ON alert_journal BEGIN SELECT json_extract('x', '$'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION journal_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'could not extend file: No space left on device' "
        "USING ERRCODE = 'disk_full'; END $$",
        "CREATE TRIGGER journal_full BEFORE INSERT ON alert_journal "
        "FOR EACH ROW EXECUTE FUNCTION journal_full()",
    ],
}
JOURNAL_FREED = {
    "sqlite": ["DROP TRIGGER journal_full"],
    "postgresql": ["DROP TRIGGER journal_full ON alert_journal"],
}


async def test_webhooks_the_database_refuses_to_journal_are_answered_503_and_stored_by_the_retry(
    app_factory: AppFactory, database_url: str
) -> None:
    """Webhooks arriving together (one group-committed batch) while the journal takes no insert:
    each answered 503 (Alertmanager retries), none stored; the retries are journaled and applied."""
    async with app_factory(database_url=database_url, **alerting_config()) as (app, client):
        bodies = [payload(f"Full{i}", [alert(f"Full{i}")]) for i in range(3)]
        await execute(database_url, JOURNAL_REFUSED[dialect(database_url)])
        refused = await asyncio.gather(
            *(client.post(WEBHOOK, json=body, headers=bearer_webhook()) for body in bodies)
        )
        stored_while_refused = await incidents(app.state.context.sessions)
        await execute(database_url, JOURNAL_FREED[dialect(database_url)])
        retried = [await post(client, body) for body in bodies]
        outcomes = [await settled(client, answer) for answer in retried]
        stored = await incidents(app.state.context.sessions)
    assert [answer.status_code for answer in refused] == [503] * 3
    assert all("Alertmanager will retry" in answer.json()["message"] for answer in refused)
    assert stored_while_refused == []
    assert [outcome["status"] for outcome in outcomes] == ["applied"] * 3
    assert len(stored) == 3  # one incident per group, each from its retry
    assert [answer.json()["id"] for answer in retried] == sorted(answer.json()["id"] for answer in retried)
