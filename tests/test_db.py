"""The embedded database: reads never wait for (or take) SQLite's write lock."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.alerts.support import alert, alerting_config, bearer_webhook, payload
from tests.harness.app import AppFactory


async def test_a_long_read_on_sqlite_does_not_make_a_webhook_wait(app_factory: AppFactory) -> None:
    """A report holding its read transaction open (as a three-year report does) while
    Alertmanager posts: the webhook is stored and answered at once."""
    async with app_factory(**alerting_config()) as (app, client), app.state.context.sessions() as report:
        await report.execute(text("SELECT count(*) FROM rollup_days"))  # the read transaction is open
        answer = await asyncio.wait_for(
            client.post(
                "/api/v1/alerts/alertmanager",
                json=payload("Down", [alert("Down")]),
                headers=bearer_webhook(),
            ),
            timeout=30,
        )
        # the report still reads its own snapshot; a new read sees the incident
        async with app.state.context.sessions() as fresh:
            opened = (await fresh.execute(text("SELECT count(*) FROM alert_incidents"))).scalar_one()
    assert answer.status_code == 200
    assert opened == 1


async def test_a_write_outside_a_write_transaction_fails_loudly_on_sqlite(app_factory: AppFactory) -> None:
    """Writes belong in ``sessions.begin()`` (the writer); a reader connection refuses them."""
    async with app_factory() as (app, _client), app.state.context.sessions() as session:
        with pytest.raises(OperationalError, match="readonly"):
            await session.execute(text("DELETE FROM alert_incidents"))
