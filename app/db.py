"""The async database engine and session factory (SQLite embedded by default, PostgreSQL in production).

On SQLite, Panorama keeps two pools on one file in WAL mode: one writer connection, on which every
write transaction (``sessions.begin()``) starts with ``BEGIN IMMEDIATE`` and waits its turn in
the pool's queue, and reader connections (``sessions()``, ``PRAGMA query_only``) whose deferred
transactions read a snapshot without ever taking the write lock. A three-year report then never
makes a webhook wait. Code that writes must use ``sessions.begin()``: a write on a reader fails.

Each SQLite connection runs in aiosqlite's thread, and every call into it is a hop: a queue put,
the thread woken, the GIL handed over and back, the event loop woken by the answer. SQLAlchemy's
aiosqlite cursor makes three or four such calls per statement (open a cursor, execute, fetch,
close); Panorama's (:class:`OneHopSqlite`) makes one. Measured (a statement loop, load 5–6): the
event loop's CPU per statement 145–193 µs against 285–358, its wall time 0.4–0.7 ms against
1.0–1.9; in an alert storm (``bench/alert_storm.py``, py-spy ``--gil``) the hand-over to that
thread had been a quarter of the server's GIL time. Nothing runs on the event loop that did not
before: SQLite still only ever works in the connection's thread.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy import DateTime, MetaData, TypeDecorator, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio.session import _AsyncSessionContextManager
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

from app.config import DatabaseSettings

T = TypeVar("T")

WORKER = f"{socket.gethostname()}:{os.getpid()}"
"""This process, as it signs the rows it claims (rollup runs, deliveries being sent)."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_POOL_TIMEOUT_S = 60
SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's DATETIME storage format


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back time-zone aware, on SQLite as on PostgreSQL.

    SQLite keeps no offset; without this, the same column would come back naive
    there and aware on PostgreSQL. Naive values are refused when written.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing a naive datetime ({value.isoformat()}): give it a time zone")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, the value straight to the text SQLAlchemy's ``DATETIME`` stores
        (``2026-12-06 18:16:00.000000``, UTC), in one function instead of two chained ones:
        a storm binds three timestamps per alert row (a twentieth of the intake's CPU, py-spy)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            return None if value is None else sqlite_datetime(value)

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_datetime(value: datetime) -> str:
    """An aware datetime as :class:`UtcDateTime` stores it on SQLite (``2026-12-06 18:16:00.000000``, UTC)."""
    if value.tzinfo is None:
        raise ValueError(f"refusing a naive datetime ({value.isoformat()}): give it a time zone")
    utc = value.astimezone(UTC)
    return SQLITE_DATETIME % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)


class Base(DeclarativeBase):
    """Base of every table; constraint names are fixed so migrations name them the same on both databases."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url(settings: DatabaseSettings) -> URL:
    return make_url(settings.url.get_secret_value())


def display_url(settings: DatabaseSettings) -> str:
    """The database URL with its password hidden, fit for logs and answers."""
    return database_url(settings).render_as_string(hide_password=True)


class SqliteEngine(AsyncEngine):
    """The writer engine of a SQLite database, holding its readers' engine (disposed together)."""

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        super().__init__(writer.sync_engine)
        self.reader = reader

    async def dispose(self, close: bool = True) -> None:
        await self.reader.dispose(close)
        await super().dispose(close)


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    url = database_url(settings)
    if url.get_backend_name() != "sqlite":
        engine = create_async_engine(
            url,
            echo=settings.echo,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
        )
        event.listen(engine.sync_engine, "checkout", _closed_connection_replaced)
        return engine
    _prepare_sqlite_file(url)
    options: dict[str, Any] = {
        "module": OneHopSqlite(),
        "echo": settings.echo,
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        "pool_timeout": SQLITE_POOL_TIMEOUT_S,
    }
    # One writer connection per process: SQLite writes one transaction at a time anyway, and waiting
    # for the connection in the pool's asyncio queue is cheaper and fairer than threads polling
    # SQLite's busy handler (other processes, e.g. `panorama rollup`, still wait there).
    writer = create_async_engine(url, pool_size=1, max_overflow=0, **options)
    event.listen(writer.sync_engine, "connect", _sqlite_on_connect)
    event.listen(writer.sync_engine, "begin", _sqlite_on_begin)
    reader = create_async_engine(
        url, pool_size=settings.pool_size, max_overflow=settings.max_overflow, **options
    )
    event.listen(reader.sync_engine, "connect", _sqlite_reader_on_connect)
    event.listen(reader.sync_engine, "begin", _sqlite_reader_on_begin)
    return SqliteEngine(writer, reader)


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement is executed, its rows fetched and its driver cursor closed in one
    call to the connection's thread (SQLAlchemy's aiosqlite cursor makes three or four: open a
    cursor, execute, fetch, close). Why: every call is a hop to that thread and back (a queue, a
    thread wake-up, the GIL passed twice, a wake-up of the event loop), and on a busy loop that hop,
    not SQLite, was the cost of a statement (``bench/alert_storm.py`` under ``py-spy --gil``: a
    quarter of the server's GIL time was spent handing calls to aiosqlite's thread)."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing left open on the driver's side between calls

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1  # sqlite3's default: what fetchmany() without a size returns

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._run(False, operation, () if parameters is None else parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._run(True, operation, seq_of_parameters)

    def _run(self, many: bool, operation: Any, parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            run: Any = connection._execute  # aiosqlite's one call in its thread (untyped there)
            done = await_(run(_in_thread, connection._conn, many, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = done
        self._rows = collections.deque(rows)


async def sqlite_transaction(sessions: ReadWriteSessions, work: Callable[[sqlite3.Connection], T]) -> T:
    """Runs ``work`` as a whole write transaction on the SQLite writer connection, in one hop to its
    thread: ``BEGIN IMMEDIATE``, ``work``, ``COMMIT`` (``ROLLBACK`` when anything fails), and returns
    what ``work`` returned once committed. A ``sqlite3`` error comes back as SQLAlchemy's
    (``OperationalError``, ``IntegrityError``…), as from any statement.

    Why: a transaction through a session is four hops to that thread (``BEGIN IMMEDIATE``, the
    statement, ``COMMIT``, and each statement of a batch SQLAlchemy sends row by row, e.g. an
    ``INSERT … RETURNING`` of many rows kept in order) and the session's machinery around them.
    For the alert journal's group-committed inserts, the storm's hottest write, that was most of
    the event loop's CPU per batch (``bench/alert_storm.py``). The writer is checked out of its pool
    as by ``sessions.begin()``, so this waits its turn with every other write."""
    async with sessions.engine.connect() as connection:
        driver: Any = (await connection.get_raw_connection()).driver_connection
        try:
            return cast(T, await driver._execute(_whole_transaction, driver._conn, work))  # aiosqlite's
        except sqlite3.Error as exc:
            raise DBAPIError.instance(
                getattr(work, "__name__", "a transaction"), None, exc, sqlite3.Error
            ) from exc


def _whole_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """In the connection's thread: ``work`` between ``BEGIN IMMEDIATE`` and ``COMMIT``; rolled back
    if it (or the commit) fails, so the connection goes back to its pool with no transaction open."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _in_thread(conn: sqlite3.Connection, many: bool, operation: str, parameters: Any) -> tuple[Any, ...]:
    """A statement on the connection's own thread: executed, its rows fetched, its cursor closed."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneHopCursor  # type: ignore[assignment]  # a subclass of the declared one


class OneHopSqlite(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite driver module, with cursors that make one call per statement
    (:class:`_OneHopCursor`); server-side cursors (streamed results) stay aiosqlite's."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> _OneHopConnection:
        connection = aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's: never keeps the process alive
        return _OneHopConnection(self, cast(Any, await_(connection)))


def _closed_connection_replaced(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server has closed is replaced before it is handed out.

    Instead of ``pool_pre_ping``, which costs every checkout three round trips with asyncpg
    (``BEGIN``, ``;``, ``ROLLBACK``: a tenth of a cold report's time), this asks the driver
    whether the socket is still open, which costs nothing: a restarted or stopped server closes
    its connections, and asyncpg marks them closed as soon as the event loop sees it. Raising
    DisconnectionError makes the pool discard the connection and check out (or open) another;
    while the server is down that fails, and the request answers 503 as before. A connection
    lost without the socket closing (a network partition) fails its first statement instead,
    which answers 503 and makes SQLAlchemy invalidate the pool's older connections.
    """
    driver = getattr(dbapi_connection, "_connection", None)
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _prepare_sqlite_file(url: URL) -> None:
    """Makes the database's directory (0700) and file (0600) private to the user running Panorama.

    The file holds the ack-link signing key and every incident, so it is as private as
    ``admin.token``. It is created empty (an empty file is an empty SQLite database) with mode 0600
    before SQLite opens it, because SQLite gives its ``-wal`` and ``-shm`` files the database
    file's mode; a file an older version left readable to others is narrowed to 0600 here too.
    """
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the single writer; foreign keys are off by default in SQLite.

    The driver's own implicit transaction handling is switched off (SQLAlchemy's
    documented recipe) so that ``BEGIN`` is emitted by :func:`_sqlite_on_begin`:
    DDL becomes transactional, and a migration is applied whole or not at all.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    """``BEGIN IMMEDIATE``: a transaction takes SQLite's write lock when it starts, waiting up to
    the busy timeout for another writer. With a plain (deferred) ``BEGIN``, a transaction that
    read first and then writes while another writes fails at once with "database is locked"
    (SQLite cannot wait there without risking a deadlock)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_reader_on_connect(dbapi_connection: Any, record: Any) -> None:
    _sqlite_on_connect(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_reader_on_begin(connection: Any) -> None:
    """A deferred ``BEGIN``: the transaction reads one snapshot and never takes the write lock."""
    connection.exec_driver_sql("BEGIN")


class ReadWriteSessions(async_sessionmaker[AsyncSession]):
    """``sessions()`` reads on a reader connection; ``sessions.begin()`` writes on the writer."""

    def __init__(self, engine: SqliteEngine) -> None:
        super().__init__(engine.reader, expire_on_commit=False)
        self.engine = engine
        self.writer = async_sessionmaker(engine, expire_on_commit=False)

    def begin(self) -> _AsyncSessionContextManager[AsyncSession]:
        return self.writer.begin()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    if isinstance(engine, SqliteEngine):
        return ReadWriteSessions(engine)
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> float:
    """Runs ``SELECT 1`` and returns how long it took, in milliseconds."""
    started = time.perf_counter()
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return round((time.perf_counter() - started) * 1000, 2)


# --- small helpers every repository shares -------------------------------------------------


def dumps(value: Any) -> str:
    """JSON as Panorama stores it in text columns: compact, non-ASCII kept, anything else as text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


async def is_postgresql(session: AsyncSession) -> bool:
    """Whether the session's database is PostgreSQL (else SQLite): for advisory locks, ``SKIP LOCKED``."""
    return (await session.connection()).dialect.name == "postgresql"


async def dialect_insert(session: AsyncSession) -> Any:
    """The dialect's ``INSERT`` construct (both have ``ON CONFLICT``)."""
    return postgresql_insert if await is_postgresql(session) else sqlite_insert


def rowcount(result: Any) -> int:
    """How many rows an ``UPDATE`` or ``DELETE`` touched (0 when the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)
