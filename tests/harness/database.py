"""Databases for the tests: a fresh SQLite file, or a fresh database on the real PostgreSQL.

Tests that only read one large stored dataset share it: :func:`filled_database` fills a migrated
database of each dialect once for a module (see ``tests/rollups/test_frames.py``), and each test
opens its own engine on it with :func:`engine_for`.

PostgreSQL tests use the server named by PANORAMA_TEST_POSTGRES_URL (default: this
machine's, 127.0.0.1:5432, database ``test``). Each test gets its own database,
created from there and dropped afterwards, so runs never collide and the shared
server is never reconfigured. Set PANORAMA_TEST_POSTGRES_URL to an empty string
to skip the PostgreSQL half of the suite on a machine without one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db, migrations
from app.config import DatabaseSettings

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_URL = os.environ.get("PANORAMA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
DIALECTS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def _plain_dsn(url: str) -> str:
    """asyncpg wants ``postgresql://``, not SQLAlchemy's ``postgresql+asyncpg://``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_postgres_database() -> str:
    """Creates an empty database on the test server and returns its SQLAlchemy URL."""
    if not POSTGRES_URL:
        pytest.skip("PANORAMA_TEST_POSTGRES_URL is empty: PostgreSQL tests are switched off")
    name = f"panorama_test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(_plain_dsn(POSTGRES_URL), timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    connection = await asyncpg.connect(_plain_dsn(POSTGRES_URL), timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each dialect, in turn."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def empty_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(DatabaseSettings.model_validate({"url": database_url}))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def migrated_engine(empty_engine: AsyncEngine, database_url: str) -> AsyncEngine:
    """A database of each dialect with every migration applied."""
    await migrate_database(database_url)
    return empty_engine


_sqlite_template: Path | None = None


async def _migrated_sqlite_file() -> Path:
    """A SQLite file with every migration applied, made once per test process."""
    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="panorama-migrated-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = folder / "panorama.db"
        async with engine_for(f"sqlite+aiosqlite:///{template}") as engine:
            await migrations.upgrade(engine)
        _sqlite_template = template
    return _sqlite_template


def _empty_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ``url`` that is still an empty database (missing, or created empty by
    ``db.create_engine``); None otherwise."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(database)
    if not path.parent.is_dir() or Path(f"{path}-wal").exists():
        return None
    if path.exists() and path.stat().st_size > 0:
        return None
    return path


def _copy_private(template: Path, target: Path) -> None:
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))  # as db.create_engine makes it
    shutil.copyfile(template, target)
    # Migration 0006 starts the rollup store's generation at random, so that nothing a process
    # computed from another database can pass for current in this one: each copy gets its own.
    with contextlib.closing(sqlite3.connect(target)) as connection:
        connection.execute("UPDATE rollup_state SET generation = ?", (secrets.randbits(62),))
        connection.commit()


async def migrate_database(url: str) -> None:
    """Applies every migration to the database at ``url``. A SQLite database still empty gets a
    copy of one migrated once per test process instead: the same file, in a millisecond rather than
    the ~100 ms (more on a loaded machine) the migrations take."""
    empty = _empty_sqlite_file(url)
    if empty is not None:
        _copy_private(await _migrated_sqlite_file(), empty)
        return
    async with engine_for(url) as engine:
        await migrations.upgrade(engine)


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the database at ``url``, disposed at the end."""
    engine = db.create_engine(DatabaseSettings.model_validate({"url": url}))
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def filled_database(
    dialect: str, tmp_path_factory: pytest.TempPathFactory, fill: Callable[[AsyncEngine], Awaitable[None]]
) -> AsyncIterator[str]:
    """A migrated database of ``dialect`` filled once by ``fill``, for the tests of a module (or
    session) fixture that only read it; yields its URL (each test opens its own engine: the fixture's
    event loop is not the tests'). A PostgreSQL database is dropped at the end."""
    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('filled') / 'panorama.db'}"
    else:
        url = await create_postgres_database()
    try:
        async with engine_for(url) as engine:
            await migrations.upgrade(engine)
            await fill(engine)
        yield url
    finally:
        if dialect == "postgresql":
            await drop_postgres_database(url)
