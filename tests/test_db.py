"""The embedded database: reads never wait for (or take) SQLite's write lock. PostgreSQL: a pooled
connection the server closed is replaced before anyone uses it."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app import db
from app.config import DatabaseSettings
from tests.alerts.support import alert, alerting_config, bearer_webhook, payload
from tests.harness.app import AppFactory, settings_for
from tests.harness.intake import applied


async def test_a_long_read_on_sqlite_does_not_make_a_webhook_wait(app_factory: AppFactory) -> None:
    """A report holding its read transaction open (as a three-year report does) while
    Alertmanager posts: the webhook is stored and answered at once."""
    async with app_factory(**alerting_config()) as (app, client), app.state.context.sessions() as report:
        await report.execute(text("SELECT count(*) FROM rollup_day_packs"))  # the read transaction is open
        answer = await asyncio.wait_for(
            client.post(
                "/api/v1/alerts/alertmanager",
                json=payload("Down", [alert("Down")]),
                headers=bearer_webhook(),
            ),
            timeout=30,
        )
        incident = await applied(client, answer)  # and applied, the report still reading
        # the report still reads its own snapshot; a new read sees the incident
        async with app.state.context.sessions() as fresh:
            opened = (await fresh.execute(text("SELECT count(*) FROM alert_incidents"))).scalar_one()
    assert answer.status_code == 202
    assert incident is not None
    assert opened == 1


async def test_a_write_outside_a_write_transaction_fails_loudly_on_sqlite(app_factory: AppFactory) -> None:
    """Writes belong in ``sessions.begin()`` (the writer); a reader connection refuses them."""
    async with app_factory() as (app, _client), app.state.context.sessions() as session:
        with pytest.raises(OperationalError, match="readonly"):
            await session.execute(text("DELETE FROM alert_incidents"))


async def test_a_pooled_postgresql_connection_the_server_closed_is_replaced_unseen(postgres_url: str) -> None:
    """What pool_pre_ping did, without its round trips: the server ends the pooled connection (as
    a restart does); the next checkout sees the socket closed and opens another, no error."""
    engine = db.create_engine(settings_for(postgres_url).database)
    killer = await asyncpg.connect(
        make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as again:  # the pool's idle connection, handed out again
            assert (await again.execute(text("SELECT pg_backend_pid()"))).scalar_one() == first
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", first)
        for _ in range(200):
            if not await killer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the event loop reads the closed socket meanwhile
        async with engine.connect() as connection:
            second = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await killer.close()
        await engine.dispose()


async def test_the_sqlite_database_and_its_directory_are_private_to_the_user(tmp_path: Path) -> None:
    """The database holds the ack-link signing key: like admin.token, nobody else may read it,
    nor its -wal and -shm files (which SQLite creates with the database file's mode)."""
    path = tmp_path / "data" / "panorama.db"
    settings = DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{path}"))
    previous = os.umask(0o022)  # the usual umask, which leaves new files readable to everyone
    try:
        engine = db.create_engine(settings)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE t (x INTEGER)"))
                await connection.execute(text("INSERT INTO t VALUES (1)"))
            wal, shm = path.with_name("panorama.db-wal"), path.with_name("panorama.db-shm")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (path.parent, path, wal, shm)}
        finally:
            await engine.dispose()
    finally:
        os.umask(previous)
    assert modes == {"data": 0o700, "panorama.db": 0o600, "panorama.db-wal": 0o600, "panorama.db-shm": 0o600}


async def test_a_database_file_left_readable_to_others_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    engine = db.create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{path}")))
    await engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
