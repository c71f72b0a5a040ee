"""The digests' one table: which digest was sent for which day (the unique key sends it once)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class DigestSend(Base):
    """A digest sent for a day: inserted in the transaction that puts it in the outbox, so that
    whichever replica inserts it first sends it and the others find it there."""

    __tablename__ = "digest_sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    day: Mapped[date] = mapped_column(Date)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sends: Mapped[int] = mapped_column(Integer, default=1)  # more than 1: resent with force
    sent_by: Mapped[str] = mapped_column(String(255))  # schedule, api:<token name>, cli

    __table_args__ = (UniqueConstraint("name", "day"),)
