"""Every query and write of the digests: the record of what was sent."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.digests.models import DigestSend


async def claim_send(session: AsyncSession, name: str, day: date, now: datetime, by: str) -> bool:
    """Records that ``name`` is being sent for ``day``; False when it already was. The unique key
    decides between replicas: a racing insert waits for the other transaction, then does nothing."""
    make = await dialect_insert(session)
    statement = (
        make(DigestSend)
        .values(name=name, day=day, sent_at=now, sends=1, sent_by=by)
        .on_conflict_do_nothing(index_elements=[DigestSend.name, DigestSend.day])
        .returning(DigestSend.id)
    )
    return (await session.scalar(statement)) is not None


async def record_resend(session: AsyncSession, name: str, day: date, now: datetime, by: str) -> None:
    """A forced send of a digest already sent: counted on its row."""
    await session.execute(
        update(DigestSend)
        .where(DigestSend.name == name, DigestSend.day == day)
        .values(sends=DigestSend.sends + 1, sent_at=now, sent_by=by)
    )


async def sent(session: AsyncSession, name: str, day: date) -> DigestSend | None:
    statement = select(DigestSend).where(DigestSend.name == name, DigestSend.day == day)
    return (await session.scalars(statement)).first()
