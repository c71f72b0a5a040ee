"""What one replica does in the rollup replica tests (run in its own process by tests.harness.replicas)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from app import db
from app.backends.prometheus import PrometheusClient
from app.config import PrometheusSettings
from app.rollups import repository, service
from app.rollups.compute import FamilyValue
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


def month_day_values(day: date, entities: int) -> list[Any]:
    """Figures of ``entities`` services for ``day``, different on every day and service."""
    return [
        FamilyValue("service", f"s{i:03d}", "requests", total=day.toordinal() * 1.0000000115740742 + i)
        for i in range(entities)
    ]


async def store_days(
    ready: Ready, database_url: str, days: list[str], entities: int, render: bool = False, after: bool = False
) -> Any:
    """Stores each of ``days`` (one transaction each) at the same instant as the others; with
    ``render``, with the month rows' daily report rows too (``service.renderer``); with ``after``,
    those written after each day, as a night's rollup does (``service.render_stale``)."""
    settings = settings_for(database_url, timezone="UTC")
    engine = db.create_engine(settings.database)
    try:
        sessions = db.create_session_factory(engine)
        renderer = service.renderer(settings) if render else None
        await ready()
        for day in map(date.fromisoformat, days):
            async with sessions.begin() as session:
                await repository.replace_day(session, day, month_day_values(day, entities), render=renderer)
            if after:
                await service.render_stale(sessions, settings, days=[day])
    finally:
        await engine.dispose()
    return len(days)


async def catch_up(
    ready: Ready, database_url: str, config: dict[str, Any], now: str, prometheus_url: str | None = None
) -> Any:
    """Catches up at the same instant as the others (the on-call history alone, or with the
    Prometheus at ``prometheus_url``, asked once, without retries); each outcome as
    [day, status, history]."""
    settings = settings_for(database_url, **config)
    engine = db.create_engine(settings.database)
    prometheus = None
    if prometheus_url is not None:
        prometheus = PrometheusClient(PrometheusSettings(url=prometheus_url, timeout_s=5, retries=0))
    try:
        sessions = db.create_session_factory(engine)
        await ready()
        outcomes = await service.catch_up(sessions, prometheus, settings, now=datetime.fromisoformat(now))
    finally:
        if prometheus is not None:
            await prometheus.aclose()
        await engine.dispose()
    return [[o.day.isoformat(), o.status, o.history] for o in outcomes]


def named_values(prefix: str, entities: int) -> list[Any]:
    """Figures of ``entities`` services named after the run that stores them."""
    return [FamilyValue("service", f"{prefix}{i}", "requests", total=1000.0 + i) for i in range(entities)]


async def finish_or_claim(
    ready: Ready,
    database_url: str,
    day: str,
    entities: int,
    stale_run: int | None = None,
    claim_at: str | None = None,
) -> Any:
    """At the same instant as the others: with ``stale_run``, finishes that claimed run of ``day``
    as a run finishes (``service.run_day``: fenced, its figures stored only if it is recorded);
    with ``claim_at``, claims ``day`` at that moment, then stores its figures and finishes as a
    run does (two transactions). [run id, recorded]."""
    engine = db.create_engine(settings_for(database_url, timezone="UTC").database)
    the_day = date.fromisoformat(day)
    try:
        sessions = db.create_session_factory(engine)
        await ready()
        run_id = stale_run
        if claim_at is not None:
            async with sessions.begin() as session:
                run_id = await repository.claim_day(
                    session,
                    the_day,
                    trigger="test",
                    worker="newer",
                    now=datetime.fromisoformat(claim_at),
                    lease=service.LEASE,
                )
        if run_id is None:
            return [None, False]
        async with sessions.begin() as session:
            recorded = await repository.finish_run(
                session, run_id, status="ok", duration_ms=1.0, entities=entities, values=entities
            )
            if recorded:
                await repository.replace_day(
                    session, the_day, named_values("stale" if claim_at is None else "newer", entities)
                )
    finally:
        await engine.dispose()
    return [run_id, recorded]
