"""A running Panorama's life: it stops in order (jobs give their work back before the database
goes), and started on a database that is not migrated it says so once and waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy import select

from app import db
from app.rollups.models import RollupRun
from tests.alerts.support import alerting_config
from tests.harness.app import VIEWER_TOKEN, AppFactory, bearer
from tests.harness.waiting import eventually


@pytest.fixture
async def silent_prometheus() -> AsyncIterator[str]:
    """A server that accepts connections and never answers (a Prometheus stuck in a long query)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_stopping_in_the_middle_of_a_scheduled_rollup_gives_the_day_back(
    app_factory: AppFactory, silent_prometheus: str
) -> None:
    async with app_factory(
        prometheus={"url": silent_prometheus, "timeout_s": 120, "retries": 0},
        rollups={"enabled": True, "backfill_days": 1},
    ) as (app, client):

        async def running() -> bool:
            answer = await client.get("/api/v1/rollups/runs", headers=bearer(VIEWER_TOKEN))
            return any(r["status"] == "running" for r in answer.json()["runs"])

        await eventually(running, "the catch-up job's run")  # it starts 5 s after the app
    engine = db.create_engine(app.state.context.settings.database)
    try:
        async with db.create_session_factory(engine)() as session:
            runs = (await session.scalars(select(RollupRun))).all()
    finally:
        await engine.dispose()
    [run] = runs
    assert run.status == "failed"  # released: another replica (or the next start) computes the day
    assert run.error == "interrupted before the day was computed"
    assert isinstance(run.day, date)


async def test_an_unmigrated_database_is_said_once_and_background_work_waits(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = alerting_config(worker=True, worker_interval="50ms")
    async with app_factory(migrate=False, **config) as (_app, client):
        ready = await client.get("/readyz")
        await asyncio.sleep(1.0)  # some twenty worker intervals
    told = [r for r in caplog.records if "run `panorama migrate`" in r.getMessage()]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert ready.status_code == 503
    assert len(told) == 1
    assert told[0].levelno == logging.ERROR
    assert tracebacks == []
