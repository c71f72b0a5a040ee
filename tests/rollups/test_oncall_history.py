"""On-call history: incidents received through the real webhook, acknowledged and resolved through the
API and paged through the real delivery worker, at chosen instants of a month in Europe/Berlin (with
its DST change), rolled up by the rollup run API and read back through the reports API and the
Grafana datasource. Every expected figure is computed here, from the scenario, by local dates."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import time_machine
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import db, migrations
from app.alerts import ack, heartbeats, journal
from app.config import Settings
from app.rollups import service
from app.rollups.builtin import RESPONSE_BOUNDS_S
from app.rollups.days import Granularity, day_window
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.fakes.robot_fixtures import WEBHOOK_TOKEN as SINK_TOKEN
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WebhookSink
from tests.grafana.frames import to_data_frame
from tests.grafana.support import builder_target, query_body, regex
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, bearer, running_app, settings_for
from tests.harness.intake import applied, incident_of
from tests.harness.prometheus import RunningPrometheus
from tests.harness.replicas import run_replicas
from tests.rollups.support import (
    CHECKOUT,
    client_for,
    dataset_of,
    drain_journal,
    journal_stuck_at_noon,
    requests_truth,
    rollup_settings,
    utc_days,
)

Factory = async_sessionmaker[AsyncSession]
BERLIN = ZoneInfo("Europe/Berlin")
VIEW = bearer(VIEWER_TOKEN)
OPERATE = bearer(OPERATOR_TOKEN)
ACTOR = "operator-test"  # the operator token's name: who acknowledges through the API
ROTATION_START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # 09:00 Asia/Shanghai, the config's rotation
FIRST, LAST = date(2026, 10, 1), date(2026, 10, 31)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@dataclass(frozen=True)
class Case:
    group: str
    service: str
    severity: str
    opened: datetime
    ack_after: timedelta | None = None
    resolve_after: timedelta | None = None
    resolve_by_webhook: bool = False
    deliver_after: timedelta | None = None  # when the delivery worker runs after it opened

    @property
    def pages(self) -> bool:
        return self.severity in ("critical", "warning")  # the config routes these to "default"

    @property
    def on_call(self) -> str:
        """The schedule's person at the opening instant: weekly turns of alice and bob."""
        weeks = (self.opened.astimezone(UTC) - ROTATION_START) // timedelta(weeks=1)
        return ["alice", "bob"][weeks % 2]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


CASES = [
    Case(
        "CheckoutDown",
        "checkout",
        "critical",
        local("2026-10-05T10:00"),
        minutes(4),
        minutes(30),
        deliver_after=timedelta(seconds=1),
    ),
    # 23:30 local (21:30 UTC): the 5th; acknowledged and resolved on the 6th.
    Case(
        "PaymentsSlow",
        "payments",
        "warning",
        local("2026-10-05T23:30"),
        minutes(40),
        minutes(180),
        resolve_by_webhook=True,
        deliver_after=timedelta(seconds=1),
    ),
    Case(
        "CheckoutInfo",
        "checkout",
        "info",
        local("2026-10-12T09:00"),
        None,
        minutes(10),
        resolve_by_webhook=True,
    ),
    Case(
        "PaymentsErrors",
        "payments",
        "critical",
        local("2026-10-12T14:00"),
        minutes(9),
        minutes(120),
        deliver_after=timedelta(seconds=1),
    ),
    # The 25th is 25 hours long (CEST ends); 23:30 CET is 22:30 UTC: the 25th. The page is delivered
    # at 00:05 on the 26th, counted there.
    Case(
        "CheckoutErrors",
        "checkout",
        "critical",
        local("2026-10-25T23:30"),
        minutes(7),
        minutes(50),
        deliver_after=minutes(35),
    ),
    # 00:30 CET on the 26th is 23:30 UTC on the 25th: a UTC day would put it with the one before.
    Case(
        "PaymentsDown",
        "payments",
        "critical",
        local("2026-10-26T00:30"),
        minutes(2),
        minutes(15),
        deliver_after=timedelta(seconds=1),
    ),
    # Never delivered, never acknowledged (the last event of the month: no worker pass after it).
    Case(
        "CheckoutLatency",
        "checkout",
        "warning",
        local("2026-10-31T22:15"),
        None,
        minutes(60),
        resolve_by_webhook=True,
    ),
]


# --- what the figures must be, from the scenario alone ---------------------------------------------


def day_of(at: datetime) -> date:
    return at.astimezone(BERLIN).date()


def owners(case: Case) -> list[tuple[str, str]]:
    found = [("oncall", "oncall"), ("oncall_service", case.service)]
    return [*found, ("oncall_schedule", "sre")] if case.pages else found


def quantile(q: float, durations: list[float]) -> float | None:
    """Prometheus' histogram_quantile over the buckets these durations fill (bounds of the store)."""
    if not durations:
        return None
    counts = [float(sum(1 for d in durations if d <= bound)) for bound in RESPONSE_BOUNDS_S]
    rank = q * counts[-1]
    for index, (bound, count) in enumerate(zip(RESPONSE_BOUNDS_S, counts, strict=True)):
        if count >= rank:
            if math.isinf(bound):
                return RESPONSE_BOUNDS_S[index - 1]
            lower = RESPONSE_BOUNDS_S[index - 1] if index else 0.0
            below = counts[index - 1] if index else 0.0
            return lower + (bound - lower) * (rank - below) / (count - below)
    raise AssertionError("unreachable: the +Inf bucket holds every duration")


def incident_figures(kind: str, entity: str, days: set[date]) -> dict[str, float | None]:
    mine = [c for c in CASES if (kind, entity) in owners(c)]
    opened = [c for c in mine if day_of(c.opened) in days]
    acked = [
        c.ack_after.total_seconds() for c in mine if c.ack_after and day_of(c.opened + c.ack_after) in days
    ]
    resolved = [
        c.resolve_after.total_seconds()
        for c in mine
        if c.resolve_after and day_of(c.opened + c.resolve_after) in days
    ]
    figures: dict[str, float | None] = {
        "incidents": len(opened),
        "incidents_critical": sum(1 for c in opened if c.severity == "critical"),
        "incidents_warning": sum(1 for c in opened if c.severity == "warning"),
        "incidents_info": sum(1 for c in opened if c.severity == "info"),
        "incidents_other": 0,
        "pages_sent": sum(1 for c in mine if c.pages and day_of(c.opened) in days),
        "pages_delivered": sum(
            1 for c in mine if c.pages and c.deliver_after and day_of(c.opened + c.deliver_after) in days
        ),
        "acks": len(acked),
        "ack_mean_s": sum(acked) / len(acked) if acked else None,
        "ack_p50_s": quantile(0.5, acked),
        "ack_p95_s": quantile(0.95, acked),
        "resolves": len(resolved),
        "resolve_mean_s": sum(resolved) / len(resolved) if resolved else None,
        "resolve_p50_s": quantile(0.5, resolved),
        "resolve_p95_s": quantile(0.95, resolved),
    }
    return figures


def person_figures(person: str, day: date) -> dict[str, float | None]:
    paged = [c for c in CASES if c.pages and c.on_call == person and day_of(c.opened) == day]
    acked = [
        c.ack_after.total_seconds()
        for c in CASES
        if person == ACTOR and c.ack_after and day_of(c.opened + c.ack_after) == day
    ]
    night = [
        c for c in paged if c.opened.astimezone(BERLIN).hour >= 22 or c.opened.astimezone(BERLIN).hour < 7
    ]
    return {
        "pages": len(paged),
        "night_pages": len(night),
        "incidents": len(paged),  # one page each here: as many incidents as pages
        "acks": len(acked),
        "ack_mean_s": sum(acked) / len(acked) if acked else None,
    }


def days_with_events(case_filter: Any = None) -> list[date]:
    found: set[date] = set()
    for case in CASES:
        for delta in (timedelta(0), case.ack_after, case.resolve_after, case.deliver_after):
            if delta is not None:
                found.add(day_of(case.opened + delta))
    return sorted(found)


def close(actual: Any, expected: float | None) -> bool:
    if expected is None:
        return actual is None
    return actual is not None and math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-9)


def assert_figures(row: dict[str, Any], expected: dict[str, float | None], where: str) -> None:
    wrong = {
        name: (row.get(name), value) for name, value in expected.items() if not close(row.get(name), value)
    }
    assert not wrong, f"{where}: (stored, expected) {wrong}"


# --- the scenario, played through the real parts ----------------------------------------------------


def events() -> Iterator[tuple[datetime, str, Case]]:
    found: list[tuple[datetime, int, str, Case]] = []
    for index, case in enumerate(CASES):
        found.append((case.opened, index, "open", case))
        if case.deliver_after is not None:
            found.append((case.opened + case.deliver_after, index, "deliver", case))
        if case.ack_after is not None:
            found.append((case.opened + case.ack_after, index, "ack", case))
        if case.resolve_after is not None:
            found.append((case.opened + case.resolve_after, index, "resolve", case))
    for at, _, action, case in sorted(found, key=lambda e: (e[0], e[1])):
        yield at, action, case


def config(receiver: Served[WebhookSink]) -> dict[str, Any]:
    found = alerting_config()
    found["channels"][0] = {
        "name": "ops-robot",
        "type": "webhook",
        "url": receiver.url,
        "bearer_token": SINK_TOKEN,
    }
    # No heartbeat route: a watchdog never seen would open an incident of its own in the month.
    found["routes"] = [r for r in found["routes"] if "heartbeat" not in r]
    return found


def alert_of(case: Case, status: str = "firing") -> dict[str, Any]:
    return alert(case.group, status=status, severity=case.severity, service=case.service)


async def play(app: FastAPI, client: httpx.AsyncClient, traveller: Any) -> None:
    ids: dict[str, int] = {}
    worker = app.state.context.alerts
    for at, action, case in events():
        traveller.move_to(at)
        if action == "open":
            answer = await client.post(
                WEBHOOK,
                json=payload(case.group, [alert_of(case)]),
                headers=bearer_webhook(),
            )
            await applied(client, answer)
            assert answer.status_code == 202, answer.text
            ids[case.group] = await incident_of(client, answer)
        elif action == "deliver":
            await worker.run_once(now=at.astimezone(UTC))
        elif action == "ack":
            answer = await client.post(f"/api/v1/incidents/{ids[case.group]}/ack", headers=OPERATE)
            assert answer.status_code == 200, answer.text
        elif case.resolve_by_webhook:
            resolved = alert_of(case, "resolved")
            answer = await client.post(
                WEBHOOK, json=payload(case.group, [resolved]), headers=bearer_webhook()
            )
            await applied(client, answer)
            assert answer.status_code == 202, answer.text
        else:
            answer = await client.post(f"/api/v1/incidents/{ids[case.group]}/resolve", headers=OPERATE)
            assert answer.status_code == 200, answer.text


async def test_a_month_of_incidents_rolls_up_by_local_day_and_re_aggregates_exactly(
    database_url: str, webhook_receiver: Served[WebhookSink]
) -> None:
    settings = settings_for(database_url, timezone="Europe/Berlin", **config(webhook_receiver))
    with time_machine.travel(datetime(2026, 10, 1, 8, 0, tzinfo=UTC), tick=False) as traveller:
        async with running_app(settings) as (app, client):
            await play(app, client, traveller)
            traveller.move_to(datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
            run = await client.post(
                "/api/v1/rollups/run",
                json={"from": FIRST.isoformat(), "to": LAST.isoformat(), "wait": True},
                headers=OPERATE,
            )
            again = await client.post(
                "/api/v1/rollups/run", json={"date": "2026-10-25", "wait": True}, headers=OPERATE
            )
            period = {"from": FIRST.isoformat(), "to": LAST.isoformat()}

            async def get(path: str, **params: str) -> dict[str, Any]:
                answer = await client.get(path, params={**period, **params}, headers=VIEW)
                assert answer.status_code == 200, (path, answer.text)
                found: dict[str, Any] = answer.json()
                return found

            daily = {
                (kind, entity): await get(f"/api/v1/reports/kinds/{kind}/{entity}/daily")
                for kind, entity in [
                    ("oncall", "oncall"),
                    ("oncall_service", "checkout"),
                    ("oncall_service", "payments"),
                    ("oncall_schedule", "sre"),
                ]
            }
            monthly = {
                key: await get(f"/api/v1/reports/kinds/{key[0]}/{key[1]}/daily", granularity="month")
                for key in daily
            }
            people = {
                person: await get(f"/api/v1/reports/kinds/oncall_person/{person}/daily")
                for person in ("alice", "bob", ACTOR)
            }
            services = await get("/api/v1/reports/kinds/oncall_service")
            persons = await get("/api/v1/reports/kinds/oncall_person")
            metrics = await client.post("/grafana/metrics", json={}, headers=VIEW)
            grafana = await client.post(
                "/grafana/query",
                json=query_body(
                    [
                        builder_target(
                            "A", "oncall_service.incidents", entity=regex("checkout"), granularity="day"
                        )
                    ],
                    start="2026-09-30T22:00:00.000Z",
                    end="2026-10-31T22:59:59.999Z",
                ),
                headers=VIEW,
            )
    assert run.status_code == 200, run.text
    assert [r["status"] for r in run.json()["runs"]] == ["ok"] * 31
    assert again.json()["runs"][0]["status"] == "ok"  # recomputed: replaced, not added twice

    event_days = days_with_events()
    for (kind, entity), answer in daily.items():
        rows = {row["date"]: row for row in answer["days"]}
        for day in event_days:
            row = rows.get(day.isoformat())
            expected = incident_figures(kind, entity, {day})
            if row is None:
                assert not any(expected[name] for name in ("incidents", "pages_sent", "acks", "resolves")), (
                    kind,
                    entity,
                    day,
                )
                continue
            assert_figures(row, expected, f"{kind} {entity} on {day}")
        [month] = monthly[(kind, entity)]["days"]
        assert_figures(month, incident_figures(kind, entity, set(event_days)), f"{kind} {entity} in October")
        # The month is exactly the sum of its days: counts add, means are sums over counts.
        for name in ("incidents", "pages_sent", "pages_delivered", "acks", "resolves"):
            assert month[name] == sum(row[name] for row in answer["days"]), (kind, entity, name)
        acked = [(row["acks"], row["ack_mean_s"]) for row in answer["days"] if row["acks"]]
        assert close(month["ack_mean_s"], sum(n * m for n, m in acked) / sum(n for n, _ in acked))

    # The DST day and the day after: 23:30 CET belongs to the 25th, 00:30 CET to the 26th.
    checkout = {row["date"]: row for row in daily[("oncall_service", "checkout")]["days"]}
    payments = {row["date"]: row for row in daily[("oncall_service", "payments")]["days"]}
    assert checkout["2026-10-25"]["incidents"] == 1
    assert payments["2026-10-26"]["incidents"] == 1
    assert "2026-10-25" not in payments
    assert checkout["2026-10-26"]["pages_delivered"] == 1  # delivered at 00:05 on the 26th
    assert payments["2026-10-05"]["incidents"] == 1  # 23:30 CEST
    assert payments["2026-10-06"]["acks"] == 1  # at 00:10
    assert payments["2026-10-06"]["incidents"] == 0

    for person, answer in people.items():
        rows = {row["date"]: row for row in answer["days"]}
        for day in event_days:
            expected = person_figures(person, day)
            if day.isoformat() not in rows:
                assert not any(expected[name] for name in ("pages", "acks")), (person, day)
                continue
            assert_figures(rows[day.isoformat()], expected, f"{person} on {day}")
    assert {row["oncall_service"] for row in services["oncall_service"]} == {"checkout", "payments"}
    assert {row["oncall_person"] for row in persons["oncall_person"]} == {
        c.on_call for c in CASES if c.pages
    } | {ACTOR}

    assert metrics.status_code == 200
    names = {item["value"] for item in metrics.json()}
    assert {"oncall_service.incidents", "oncall_schedule.ack_p95_s", "oncall_person.night_pages"} <= names
    assert grafana.status_code == 200, grafana.text
    [frame] = [to_data_frame(item) for item in grafana.json()]
    stamps = [
        datetime.fromtimestamp(ms / 1000, UTC).astimezone(BERLIN).date() for ms in frame.fields[0].values
    ]
    by_day = dict(zip(stamps, frame.fields[1].values, strict=True))
    for day, row in checkout.items():
        assert by_day[date.fromisoformat(day)] == row["incidents"]


# --- beside the Prometheus figures, and across replicas ---------------------------------------------


async def open_and_acknowledge(settings: Settings, at: datetime, cases: list[Case]) -> None:
    """The cases opened (and acknowledged after their delay) through the webhook and the API."""
    with time_machine.travel(at, tick=False) as traveller:
        async with running_app(settings) as (_app, client):
            for case in cases:
                traveller.move_to(case.opened)
                answer = await client.post(
                    WEBHOOK, json=payload(case.group, [alert_of(case)]), headers=bearer_webhook()
                )
                await applied(client, answer)
                assert answer.status_code == 202, answer.text
                if case.ack_after is not None:
                    traveller.move_to(case.opened + case.ack_after)
                    incident = await incident_of(client, answer)
                    acked = await client.post(f"/api/v1/incidents/{incident}/ack", headers=OPERATE)
                    assert acked.status_code == 200, acked.text


async def stored(sessions: Factory, settings: Settings, kind: str, entity: str, day: date) -> dict[str, Any]:
    async with sessions() as session:
        [found] = await service.series(session, settings, kind, entity, day, day, Granularity.DAY)
    return dict(found.figures)


async def test_the_history_and_the_prometheus_figures_of_a_day_keep_each_other(
    prometheus: RunningPrometheus, sqlite_url: str
) -> None:
    """One run stores both sources; a run without Prometheus replaces the on-call history only,
    and running a day again stores the same figures (replaced, never added twice)."""
    day = utc_days(dataset_of(prometheus))[0]
    settings = rollup_settings(prometheus.url, sqlite_url, **alerting_config())
    noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    cases = [
        Case("CheckoutDown", CHECKOUT, "critical", noon, minutes(3)),
        Case("CheckoutSlow", CHECKOUT, "warning", noon + minutes(30), minutes(9)),
    ]
    await open_and_acknowledge(settings, noon, cases)
    engine = db.create_engine(settings.database)
    sessions = db.create_session_factory(engine)
    client = client_for(prometheus)
    try:
        both = await service.run_day(sessions, client, settings, day, trigger="test")
        traffic = await stored(sessions, settings, "service", CHECKOUT, day)
        history = await stored(sessions, settings, "oncall_service", CHECKOUT, day)
        alone = await service.run_day(sessions, None, settings, day, trigger="test")
        again = await service.run_day(sessions, client, settings, day, trigger="test")
        traffic_after = await stored(sessions, settings, "service", CHECKOUT, day)
        history_after = await stored(sessions, settings, "oncall_service", CHECKOUT, day)
    finally:
        await client.aclose()
        await engine.dispose()
    assert [both.status, alone.status, again.status] == ["ok", "ok", "ok"]
    assert traffic["requests"] == requests_truth(
        dataset_of(prometheus),
        CHECKOUT,
        *(w.timestamp() for w in (day_window(day, UTC).start, day_window(day, UTC).end)),
    )
    assert history["incidents"] == 2
    assert history["incidents_critical"] == 1
    assert history["acks"] == 2
    assert history["ack_mean_s"] == (3 * 60 + 9 * 60) / 2
    assert traffic_after == traffic
    assert history_after == history


async def test_two_replicas_record_a_day_once(postgres_url: str) -> None:
    """Two replicas (two processes, each its own engine) roll up the same day at the same instant on
    PostgreSQL: one claims it and the other skips it (or, had the first already finished, replaces
    it with the same figures); either way its figures are stored once, never added twice."""
    config = {"timezone": "Europe/Berlin", **alerting_config()}
    settings = settings_for(postgres_url, **config)
    opened = local("2026-10-05T23:30")
    case = Case("CheckoutDown", "checkout", "critical", opened, minutes(5))
    await open_and_acknowledge(settings, opened, [case])
    day = date(2026, 10, 5)
    replicas = [
        {"database_url": postgres_url, "config": config, "day": day.isoformat(), "name": n} for n in "ab"
    ]
    outcomes = await run_replicas("tests.rollups.replica_scenarios:roll_up_day", replicas)
    engine = db.create_engine(settings.database)
    try:
        sessions = db.create_session_factory(engine)
        figures = await stored(sessions, settings, "oncall", "oncall", day)
        async with sessions() as session:
            runs = (await service.runs(session)).runs
    finally:
        await engine.dispose()
    statuses = sorted(status for status, _ in outcomes)
    assert statuses in (["ok", "skipped"], ["ok", "ok"])
    assert len(runs) == statuses.count("ok")
    assert (figures["incidents"], figures["acks"], figures["ack_mean_s"]) == (1, 1, 300)


async def test_a_day_is_not_rolled_up_while_the_alert_journal_holds_a_webhook_received_in_it(
    database_url: str,
) -> None:
    """A webhook received at noon yesterday still waits in the alert journal (answered 202, not
    applied: a journal that did not move past midnight). The day's run fails, saying why, instead of
    storing an on-call history that misses the incident the row opens at noon; once the row is
    applied, the day's run counts it."""
    settings = settings_for(database_url, timezone="UTC", rollups={"enabled": False}, **alerting_config())
    day = datetime.now(UTC).date() - timedelta(days=1)
    noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    body = payload("CheckoutDown", [alert("CheckoutDown", service=CHECKOUT)])
    engine = db.create_engine(settings.database)
    sessions = db.create_session_factory(engine)
    try:
        await migrations.upgrade(engine)
        received = journal.Received(noon, body["groupKey"], orjson.dumps(body), 1)
        await journal.insert(sessions, [received])
        waiting = await service.run_day(sessions, None, settings, day, trigger="test")
        key = await ack.signing_key(sessions, settings)
        applied_pass = await journal.apply_next(sessions, settings, key, limit=64)
        settled = await service.run_day(sessions, None, settings, day, trigger="test")
        history = await stored(sessions, settings, "oncall_service", CHECKOUT, day)
    finally:
        await engine.dispose()
    assert waiting.status == "failed"
    assert waiting.error is not None
    assert f"the alert journal still holds webhooks received since {noon.isoformat()}" in waiting.error
    assert applied_pass.applied == 1
    assert settled.status == "ok"
    assert history["incidents"] == 1


def renamed_schedule(config: dict[str, Any], name: str) -> dict[str, Any]:
    """``config`` after an edit: the escalation chains page the schedule ``sre`` under ``name``."""
    edited = copy.deepcopy(config)
    for schedule in edited["schedules"]:
        if schedule["name"] == "sre":
            schedule["name"] = name
    for chain in edited["escalations"]:
        for step in chain["steps"]:
            if step.get("notify", {}).get("schedule") == "sre":
                step["notify"]["schedule"] = name
    return edited


async def schedules_of_day(sessions: Factory, settings: Settings, day: date) -> dict[str, float]:
    """The day's incidents of every schedule that has the day stored."""
    async with sessions() as session:
        names = await service.entities(session, "oncall_schedule", first=day, last=day)
    return {
        name: (await stored(sessions, settings, "oncall_schedule", name, day))["incidents"] for name in names
    }


async def test_an_old_day_recomputed_after_a_schedule_is_renamed_keeps_its_schedules(
    database_url: str,
) -> None:
    """An incident routed at noon to the chain that pages ``sre``; the configuration then pages
    ``platform`` instead. Recomputing the day gives the same figures: the schedules were recorded
    when the incident was routed. An incident routed before they were recorded (its ``routed``
    entry without them, as every entry written before 2026-12-07) falls back to today's
    configuration, the only record there is."""
    config = {"timezone": "UTC", "rollups": {"enabled": False}, **alerting_config()}
    settings = settings_for(database_url, **config)
    edited = settings_for(database_url, **{**config, **renamed_schedule(config, "platform")})
    day = date(2026, 11, 20)
    engine = db.create_engine(settings.database)
    sessions = db.create_session_factory(engine)
    try:
        await migrations.upgrade(engine)
        await journal_stuck_at_noon(sessions, day)
        await drain_journal(sessions, settings)
        first = await service.run_day(sessions, None, settings, day, trigger="test")
        before = await schedules_of_day(sessions, settings, day)
        again = await service.run_day(sessions, None, edited, day, trigger="test")
        after = await schedules_of_day(sessions, edited, day)
        async with sessions.begin() as session:  # as the intake wrote them before 2026-12-07
            await session.execute(
                text("UPDATE alert_timeline SET detail = :detail WHERE kind = 'routed'"),
                {"detail": '{"route": 3, "escalation": "default"}'},
            )
        legacy = await service.run_day(sessions, None, edited, day, trigger="test")
        fallback = await schedules_of_day(sessions, edited, day)
    finally:
        await engine.dispose()
    assert [first.status, again.status, legacy.status] == ["ok", "ok", "ok"]
    assert before == after == {"sre": 1}
    assert fallback == {"platform": 1}


async def test_a_missing_heartbeat_counts_toward_the_schedules_its_chain_pages(database_url: str) -> None:
    """The Watchdog stops: at noon the check opens the "heartbeat missing" incident and starts the
    chain ``default``, whose first step pages ``sre``. The day's history counts it for ``sre``, as
    any routed incident (it had no ``routed`` entry, and counted for no schedule), and keeps it
    there when the day is recomputed after ``sre`` is renamed: recorded when it was opened."""
    config = {"timezone": "UTC", "rollups": {"enabled": False}, **alerting_config()}
    settings = settings_for(database_url, **config)
    edited = settings_for(database_url, **{**config, **renamed_schedule(config, "platform")})
    day = date(2026, 11, 20)
    noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    engine = db.create_engine(settings.database)
    sessions = db.create_session_factory(engine)
    try:
        await migrations.upgrade(engine)
        key = await ack.signing_key(sessions, settings)
        async with sessions.begin() as session:  # never seen: its clock starts now
            watching = await heartbeats.check(session, settings, noon - minutes(10), key)
        async with sessions.begin() as session:
            opened = await heartbeats.check(session, settings, noon, key)
        first = await service.run_day(sessions, None, settings, day, trigger="test")
        before = await schedules_of_day(sessions, settings, day)
        again = await service.run_day(sessions, None, edited, day, trigger="test")
        after = await schedules_of_day(sessions, edited, day)
        team = await stored(sessions, settings, "oncall", "oncall", day)
    finally:
        await engine.dispose()
    assert (watching, opened) == (0, 1)
    assert [first.status, again.status] == ["ok", "ok"]
    assert before == after == {"sre": 1}
    assert team["incidents"] == 1
