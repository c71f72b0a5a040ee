"""Two replicas (two processes, each its own app and pools) on one PostgreSQL, acting at the same
instant: every "exactly once" of the alerting feature rests on a database guarantee."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import db, migrations
from app.alerts import heartbeats
from app.alerts.journal import MAX_ATTEMPTS
from app.alerts.models import JournalEntry, ScheduleOverride, TimelineEntry
from app.config import DatabaseSettings
from tests.alerts.support import alert, alerting_config, bearer_webhook, incidents, outbox, payload
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, bearer, running_app, settings_for
from tests.harness.intake import applied, incident_of, settled
from tests.harness.replicas import run_replicas
from tests.harness.waiting import eventually

pytestmark = pytest.mark.postgres

SCENARIOS = "tests.alerts.replica_scenarios"
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(postgres_url: str) -> AsyncIterator[Sessions]:
    """The shared database, migrated, and the test's own view of it."""
    engine = db.create_engine(DatabaseSettings.model_validate({"url": postgres_url}))
    await migrations.upgrade(engine)
    try:
        yield db.create_session_factory(engine)
    finally:
        await engine.dispose()


def robot_config(robot: Served[DingTalkSink] | None = None, **alerts: Any) -> dict[str, Any]:
    config = alerting_config(**alerts)
    if robot is not None:
        config["channels"][0] = {
            "name": "ops-robot",
            "type": "dingtalk",
            "url": robot.url,
            "secret": DINGTALK_SECRET,
        }
    return config


def groups(count: int, *alerts_per_group: str) -> list[dict[str, Any]]:
    names = alerts_per_group or ("payments",)
    return [payload(f"Group{n}", [alert(f"Group{n}", service=s) for s in names]) for n in range(count)]


async def queued(session: AsyncSession) -> int:
    """Journal rows not applied yet (read from Panorama's table, to know when to go on)."""
    found = await session.scalar(select(func.count()).where(JournalEntry.status == "queued"))
    return int(found or 0)


async def timeline_kinds(sessions: Sessions) -> Counter[tuple[int, str]]:
    async with sessions() as session:
        rows = (await session.execute(select(TimelineEntry.incident_id, TimelineEntry.kind))).all()
    return Counter((row[0], row[1]) for row in rows)


async def test_the_same_groups_posted_to_two_replicas_at_once_open_one_incident_and_page_once(
    postgres_url: str, sessions: Sessions
) -> None:
    bodies = groups(40)
    config = robot_config()
    answers = await run_replicas(
        f"{SCENARIOS}:post_bodies", [{"database_url": postgres_url, "config": config, "bodies": bodies}] * 2
    )
    stored = await incidents(sessions)
    pages = await outbox(sessions)
    assert [status for replica in answers for status, _ in replica] == [202] * 80
    assert [a[1] for a in answers[0]] == [b[1] for b in answers[1]]  # both name the same incident
    assert Counter(i.group_key for i in stored) == Counter(b["groupKey"] for b in bodies)
    assert Counter(d.incident_id for d in pages if d.kind == "trigger") == Counter({i.id: 1 for i in stored})


async def test_alerts_joining_an_incident_at_two_replicas_at_once_are_stored_and_told_once(
    postgres_url: str, sessions: Sessions
) -> None:
    config = robot_config()
    async with running_app(settings_for(postgres_url, **config), migrate=False) as (_app, client):
        for body in groups(20):
            await applied(
                client, await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
            )
    joined = groups(20, "payments", "cart", "checkout")
    answers = await run_replicas(
        f"{SCENARIOS}:post_bodies", [{"database_url": postgres_url, "config": config, "bodies": joined}] * 2
    )
    stored = await incidents(sessions)
    pages = await outbox(sessions)
    assert [status for replica in answers for status, _ in replica] == [202] * 40  # no 5xx on the race
    assert len(stored) == 20
    assert Counter(d.incident_id for d in pages if d.kind == "update") == Counter({i.id: 1 for i in stored})


async def test_ack_and_resolve_at_two_replicas_at_once_lose_no_update(
    postgres_url: str, sessions: Sessions
) -> None:
    config = robot_config()
    async with running_app(settings_for(postgres_url, **config), migrate=False) as (_app, client):
        ids = [
            await incident_of(
                client, await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
            )
            for body in groups(20)
        ]
    acks, resolves = await run_replicas(
        f"{SCENARIOS}:act_on_incidents",
        [
            {"database_url": postgres_url, "config": config, "action": "ack", "incident_ids": ids},
            {"database_url": postgres_url, "config": config, "action": "resolve", "incident_ids": ids},
        ],
    )
    stored = {i.id: i for i in await incidents(sessions)}
    kinds = await timeline_kinds(sessions)
    assert set(resolves) == {200}
    assert set(acks) <= {200, 409}  # 409: it was resolved already
    for incident_id, status in zip(ids, acks, strict=True):
        incident = stored[incident_id]
        assert incident.status == "resolved"  # an ack never overwrites a resolve
        assert incident.resolved_at is not None
        assert kinds[(incident_id, "acknowledged")] == (1 if status == 200 else 0)
        assert kinds[(incident_id, "resolved")] == 1


async def test_a_worker_whose_claim_was_taken_over_cannot_record_over_the_new_claimer(
    postgres_url: str, sessions: Sessions, serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]]
) -> None:
    """Replica A claims a page and stalls in the send; replica B, whose clock is past A's lease, claims
    it again and delivers it. A's late outcome must not be recorded: the claim is no longer A's."""
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET))
    robot.sink.hang(3.0, times=1)  # A's send
    config = robot_config(robot)
    async with running_app(settings_for(postgres_url, **config), migrate=False) as (_app, client):
        await incident_of(
            client,
            await client.post("/api/v1/alerts/alertmanager", json=groups(1)[0], headers=bearer_webhook()),
        )
    lease_s = 10 + 5 + 30 + 1  # DingTalk's default timeout, the send slack, the margin, and a second
    handled = await run_replicas(
        f"{SCENARIOS}:send_one_batch",
        [
            {
                "database_url": postgres_url,
                "config": config,
                "channel": "ops-robot",
                "late_by_s": 0,
                "clock_s": 0,
            },
            {
                "database_url": postgres_url,
                "config": config,
                "channel": "ops-robot",
                "late_by_s": 1,
                "clock_s": lease_s,
            },
        ],
    )
    [page] = await outbox(sessions)
    kinds = await timeline_kinds(sessions)
    assert handled == [1, 1]
    assert len(robot.sink.requests) == 2  # the lease really ran out (simulated): B had to send again
    assert page.status == "delivered"
    assert page.attempts == 1  # one outcome recorded: B's
    assert page.incident_id is not None
    assert kinds[(page.incident_id, "notified")] == 1


async def test_replicas_together_stay_within_a_robots_rate_limit_counting_failed_attempts(
    postgres_url: str, sessions: Sessions, serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]]
) -> None:
    """DingTalk allows 20 messages a minute and counts the ones it refuses too. Two replicas page
    15 times each while the robot's first 10 answers are errors: together they send it at most 20
    in the minute (the sink counts every request; later ones are simulated minutes later)."""
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET))
    robot.sink.fail_with(500, times=10)
    config = robot_config(robot)
    config["escalations"][0] = {"name": "default", "steps": [{"notify": {"channels": ["ops-robot"]}}]}
    await run_replicas(
        f"{SCENARIOS}:page_and_deliver",
        [
            {"database_url": postgres_url, "config": config, "prefix": "A", "pages": 15},
            {"database_url": postgres_url, "config": config, "prefix": "B", "pages": 15},
        ],
    )
    sent_in_the_minute = len(robot.sink.requests)
    waiting = await outbox(sessions)
    # A minute later the rest goes (as a digest when more is queued than the limit allows).
    async with running_app(settings_for(postgres_url, **config), migrate=False) as (app, _client):
        for minutes in (2, 4):
            await app.state.context.alerts.run_once(now=datetime.now(UTC) + timedelta(minutes=minutes))
    final = await outbox(sessions)
    assert sent_in_the_minute <= 20
    assert {d.status for d in waiting} <= {"pending", "delivered"}  # held back, not lost
    assert len(final) == 30
    assert {d.status for d in final} == {"delivered"}
    delivered_texts = "\n".join(m.json["markdown"]["text"] for m in robot.sink.messages)
    assert all(f"{p}{n}" in delivered_texts for p in "AB" for n in range(15))


def heartbeat_config(watchdogs: int) -> dict[str, Any]:
    config = robot_config()
    config["routes"] = [
        {"matchers": [f'alertname="Watchdog{n}"'], "heartbeat": {"interval": "5m"}, "escalation": "default"}
        for n in range(watchdogs)
    ]
    return config


async def test_the_worker_and_a_webhook_on_the_same_heartbeats_at_once_never_deadlock(
    postgres_url: str, sessions: Sessions
) -> None:
    """One replica's worker escalates "heartbeat missing" incidents while a webhook at the other
    brings their Watchdogs back (resolving them). Both lock heartbeat, incident and escalation rows,
    in one order, so neither waits for the other (PostgreSQL would abort one: a 5xx, a failed pass)."""
    watchdogs = 8
    config = heartbeat_config(watchdogs)
    back = payload("Watchdog", [alert(f"Watchdog{n}", severity="none") for n in range(watchdogs)])
    statuses: list[int] = []
    started = datetime.now(UTC)
    async with running_app(settings_for(postgres_url, **config), migrate=False) as (app, client):
        context = app.state.context
        key = await context.alerts.signing_key()
        for _ in range(3):
            await applied(
                client, await client.post("/api/v1/alerts/alertmanager", json=back, headers=bearer_webhook())
            )
            async with context.sessions.begin() as session:  # six minutes later every heartbeat is overdue
                opened = await heartbeats.check(
                    session, context.settings, datetime.now(UTC) + timedelta(minutes=6), key
                )
            assert opened == watchdogs
            _worker, webhook = await run_replicas(
                f"{SCENARIOS}:race_worker_and_webhook",
                [
                    {"database_url": postgres_url, "config": config, "role": "worker", "bodies": []},
                    {"database_url": postgres_url, "config": config, "role": "webhook", "bodies": [back]},
                ],
            )
            statuses.extend(status for status, _ in webhook)
    stored = await incidents(sessions)
    assert statuses == [202, 202, 202]
    # What the checks six minutes ahead opened, a webhook resolved. The worker's pass runs twelve
    # minutes ahead: when the webhook's sighting committed before its look at the heartbeats (the
    # race goes either way), it rightly finds them overdue again and opens incidents of its own.
    checked = [i for i in stored if i.heartbeat and i.created_at < started + timedelta(minutes=9)]
    assert [i.status for i in checked] == ["resolved"] * (3 * watchdogs)
    by_worker = [i for i in stored if i.heartbeat and i not in checked]
    assert all(i.created_at >= started + timedelta(minutes=12) for i in by_worker)


def oncall_config() -> dict[str, Any]:
    config = robot_config()
    config["users"].append({"name": "carol"})
    config["channels"].append({"name": "notices", "type": "webhook", "url": "http://127.0.0.1:9/notices"})
    config["schedules"] = [
        {
            "name": "sre",
            "timezone": "Europe/Berlin",
            "rotations": [{"users": ["alice", "bob"], "length": "12h", "start": "2026-01-05T09:00:00"}],
            "notices": ["notices"],
        }
    ]
    return config


async def test_a_hand_over_seen_by_two_replicas_at_once_is_announced_once(
    postgres_url: str, sessions: Sessions
) -> None:
    at = (datetime(2026, 12, 7, 20, 0, tzinfo=UTC) + timedelta(minutes=2)).isoformat()  # 21:00 Berlin
    config = oncall_config()
    counts = await run_replicas(
        f"{SCENARIOS}:announce_handovers", [{"database_url": postgres_url, "config": config, "at": at}] * 2
    )
    notices = [d for d in await outbox(sessions) if d.kind == "notice"]
    assert sorted(counts) == [0, 1]
    assert len(notices) == 2  # the incoming and the outgoing person, once each


async def test_two_people_taking_one_swap_at_once_one_gets_it(postgres_url: str, sessions: Sessions) -> None:
    config = oncall_config()
    async with running_app(settings_for(postgres_url, **config), migrate=False) as (_app, client):
        # the next whole shift's first hour (an hour from now may cross a hand-over)
        found = await client.get("/api/v1/schedules/sre/shifts", headers=bearer(VIEWER_TOKEN))
        assert found.status_code == 200, found.text
        shift = next(
            s for s in found.json()["shifts"] if datetime.fromisoformat(s["start"]) > datetime.now(UTC)
        )
        holder, start = shift["user"], datetime.fromisoformat(shift["start"])
        offered = await client.post(
            "/api/v1/schedules/sre/swaps",
            json={
                "user": holder,
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
            },
            headers=bearer(OPERATOR_TOKEN),
        )
    assert offered.status_code == 201, offered.text
    swap_id = offered.json()["id"]
    statuses = await run_replicas(
        f"{SCENARIOS}:take_one_swap",
        [
            {"database_url": postgres_url, "config": config, "swap_id": swap_id, "user": "carol"},
            {
                "database_url": postgres_url,
                "config": config,
                "swap_id": swap_id,
                "user": "bob" if holder == "alice" else "alice",
            },
        ],
    )
    async with sessions() as session:
        overrides = (await session.scalars(select(ScheduleOverride))).all()
    assert sorted(statuses) == [200, 409]
    assert len(overrides) == 1


def long_group(labels: int) -> dict[str, Any]:
    """A group whose groupKey holds many labels, as Alertmanager's do (incompressible values, so
    that PostgreSQL cannot squeeze the key into a btree entry)."""
    group_labels = {
        f"label_{n:03d}": hashlib.sha256(f"value {n}".encode()).hexdigest() for n in range(labels)
    }
    one = alert("LongGroup")
    one["labels"].update(group_labels)
    body = payload("LongGroup", [one])
    body["groupLabels"] = {"alertname": "LongGroup", **group_labels}
    body["groupKey"] = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in body["groupLabels"].items()) + "}"
    return body


async def test_a_5_kb_group_key_posted_twice_at_two_replicas_opens_one_incident(
    postgres_url: str, sessions: Sessions
) -> None:
    body = long_group(70)
    assert len(body["groupKey"].encode()) > 5000  # past PostgreSQL's btree entry limit (~2.7 KB)
    config = robot_config()
    answers = await run_replicas(
        f"{SCENARIOS}:post_bodies", [{"database_url": postgres_url, "config": config, "bodies": [body]}] * 2
    )
    async with running_app(settings_for(postgres_url, **config), migrate=False) as (_app, client):
        again = await client.post("/api/v1/alerts/alertmanager", json=body, headers=bearer_webhook())
        updated = await applied(client, again)
    stored = await incidents(sessions)
    pages = await outbox(sessions)
    assert [replica[0][0] for replica in answers] == [202, 202]
    assert len(stored) == 1
    assert stored[0].group_key == body["groupKey"]  # stored whole; only its digest is indexed
    assert {answers[0][0][1], answers[1][0][1], updated} == {stored[0].id}
    assert [d.incident_id for d in pages if d.kind == "trigger"] == [stored[0].id]


async def test_a_body_the_database_refuses_is_failed_alone_and_holds_nobody_back(
    postgres_url: str, sessions: Sessions
) -> None:
    """A body PostgreSQL cannot store (a NUL character in its groupKey) is journaled and answered 202
    like the others (the journal keeps the raw bytes); applying it fails, alone: it ends ``failed``
    with the error after a few attempts, and every other webhook becomes its incident."""
    good = groups(12)
    refused = payload("Refused", [alert("Refused")])
    refused["groupKey"] = '{}:{alertname="Refused\x00"}'
    bodies = [*good[:6], refused, *good[6:]]
    async with running_app(settings_for(postgres_url, **robot_config()), migrate=False) as (_app, client):
        answers = await asyncio.gather(
            *(client.post("/api/v1/alerts/alertmanager", json=b, headers=bearer_webhook()) for b in bodies)
        )
        for answer in [*answers[:6], *answers[7:]]:
            await incident_of(client, answer)
        outcome = await settled(client, answers[6])
    stored = await incidents(sessions)
    pages = await outbox(sessions)
    assert [a.status_code for a in answers] == [202] * 13
    assert outcome["status"] == "failed"
    assert outcome["error"].startswith("DBAPIError: invalid byte sequence")
    assert outcome["attempts"] == MAX_ATTEMPTS
    assert outcome["incident_url"] is None
    assert sorted(i.group_key for i in stored) == sorted(b["groupKey"] for b in good)
    assert Counter(d.incident_id for d in pages if d.kind == "trigger") == Counter({i.id: 1 for i in stored})


async def test_two_replicas_applying_one_backlog_at_the_same_instant_apply_each_row_once_in_order(
    postgres_url: str, sessions: Sessions
) -> None:
    """A backlog journaled while nobody could apply it (the test holds the incidents table locked:
    webhooks are answered 202, applying waits), with each group's firing row journaled at one replica
    and its resolved row at the other after the firing one's 202. The lock is let go: both replicas
    apply the backlog at the same instant (each holding the rows it claimed). Each row is applied
    once, each group has one incident, and every group ends resolved (its rows applied in order)."""
    count = 100  # more groups than a batch: both replicas claim firing rows
    firing = groups(count)
    resolved = [
        payload(f"Group{n}", [alert(f"Group{n}", service="payments", status="resolved")])
        for n in range(count)
    ]
    config = robot_config()
    engine = db.create_engine(DatabaseSettings.model_validate({"url": postgres_url}))
    try:
        async with engine.connect() as holder:
            await holder.exec_driver_sql("BEGIN")
            await holder.exec_driver_sql("LOCK TABLE alert_incidents IN EXCLUSIVE MODE")
            race = asyncio.ensure_future(
                run_replicas(
                    f"{SCENARIOS}:journal_then_apply",
                    [
                        {"database_url": postgres_url, "config": config, "before": firing, "after": []},
                        {"database_url": postgres_url, "config": config, "before": [], "after": resolved},
                    ],
                    timeout_s=150,
                )
            )

            async def journaled() -> bool:
                async with sessions() as session:
                    return await queued(session) == 2 * count or race.done()

            await eventually(journaled, "every webhook journaled", timeout_s=90)
            await holder.exec_driver_sql("COMMIT")
        firing_outcomes, resolved_outcomes = await race
    finally:
        await engine.dispose()
    stored = await incidents(sessions)
    outcomes = [o for _status, o in firing_outcomes + resolved_outcomes]
    assert [status for status, _ in firing_outcomes + resolved_outcomes] == [202] * (2 * count)
    assert {o["status"] for o in outcomes} == {"applied"}
    assert Counter(i.group_key for i in stored) == Counter(b["groupKey"] for b in firing)
    assert {i.status for i in stored} == {"resolved"}
    by_group = {i.group_key: i.id for i in stored}
    for body, (_status, outcome) in zip(firing + resolved, firing_outcomes + resolved_outcomes, strict=True):
        assert outcome["incident_id"] == by_group[body["groupKey"]]
    kinds = await timeline_kinds(sessions)
    assert [kinds[(i.id, "resolved")] for i in stored] == [1] * count
