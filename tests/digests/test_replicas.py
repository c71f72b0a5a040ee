"""Two replicas (two processes, each its own app and pools) on one PostgreSQL asked to send the same
digest at the same instant: it is sent once (``digest_sends``' unique key, ON CONFLICT DO NOTHING
in the transaction that fills the outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy import select

from app import db, migrations
from app.alerts.models import Delivery
from app.config import DatabaseSettings
from app.digests.models import DigestSend
from tests.digests.support import CHECKOUT, Sessions, digest_config, service_day, store_day
from tests.harness.replicas import run_replicas

pytestmark = pytest.mark.postgres

DAY = date(2026, 11, 18)


@pytest.fixture
async def sessions(postgres_url: str) -> AsyncIterator[Sessions]:
    engine = db.create_engine(DatabaseSettings.model_validate({"url": postgres_url}))
    await migrations.upgrade(engine)
    try:
        yield db.create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.mark.timeout(180)
async def test_two_replicas_at_the_same_instant_send_a_digest_once(
    sessions: Sessions, postgres_url: str
) -> None:
    config = digest_config(channels=["ops-robot", "ops-hook"])
    await store_day(sessions, DAY, service_day(CHECKOUT, 1200, 60, (600, 1000, 1190, 1200)))
    arguments = {"database_url": postgres_url, "config": config, "day": DAY.isoformat()}
    for round_ in range(2):  # and again: a restart or a second run finds it sent
        answers = await run_replicas("tests.digests.replica_scenarios:send_digest", [arguments, arguments])
        assert [a["status"] for a in answers] == [200, 200]
        sent = sorted(a["sent"] for a in answers)
        assert sent == ([False, True] if round_ == 0 else [False, False])
        assert all(a["already_sent"] is not a["sent"] for a in answers)
    async with sessions() as session:
        deliveries = (await session.scalars(select(Delivery).where(Delivery.kind == "notice"))).all()
        sends = (await session.scalars(select(DigestSend))).all()
    assert sorted(d.channel for d in deliveries) == ["ops-hook", "ops-robot"]  # one per channel, once
    assert [(s.name, s.day, s.sends) for s in sends] == [("daily", DAY, 1)]
