"""Readiness: is the database up and migrated, and how is each backend doing."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__, db, migrations
from app.backends.registry import Backends
from app.health.schemas import BackendReadiness, DatabaseReadiness, Readiness

PROBE_TIMEOUT_S = 2.0


async def check_database(engine: AsyncEngine, timeout_s: float = PROBE_TIMEOUT_S) -> DatabaseReadiness:
    dialect = engine.dialect.name
    head = migrations.head_revision()
    try:
        latency = await asyncio.wait_for(db.ping(engine), timeout=timeout_s)
        revision = await asyncio.wait_for(migrations.current_revision(engine), timeout=timeout_s)
    except TimeoutError:
        return DatabaseReadiness(
            ok=False, dialect=dialect, head=head, error=f"no answer within {timeout_s:g}s"
        )
    except (SQLAlchemyError, OSError) as exc:
        return DatabaseReadiness(ok=False, dialect=dialect, head=head, error=_describe(exc))
    if revision != head:
        return DatabaseReadiness(
            ok=False,
            dialect=dialect,
            latency_ms=latency,
            revision=revision,
            head=head,
            error=f"schema is at {revision or 'nothing'}, this version needs {head}: run `panorama migrate`",
        )
    return DatabaseReadiness(ok=True, dialect=dialect, latency_ms=latency, revision=revision, head=head)


async def check_readiness(engine: AsyncEngine, backends: Backends) -> Readiness:
    database, statuses = await asyncio.gather(check_database(engine), backends.probe_all(PROBE_TIMEOUT_S))
    return Readiness(
        ready=database.ok,
        version=__version__,
        database=database,
        backends={
            name: BackendReadiness(
                configured=status.configured,
                ok=status.ok,
                url=status.url,
                latency_ms=status.latency_ms,
                version=status.version,
                error=status.error,
            )
            for name, status in statuses.items()
        },
    )


def _describe(exc: BaseException) -> str:
    """The first line of a driver error, without the SQL or parameters SQLAlchemy appends."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}".rstrip(": ")
