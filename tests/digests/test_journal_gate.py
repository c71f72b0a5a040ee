"""A digest waits for the alert journal: a webhook received before its period ended and still
queued holds it (nothing claimed, nothing sent) until the row is applied and counted; a journal
stuck longer than the hold does not make the digest vanish: it goes, saying it may be incomplete."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.alerts import journal
from app.digests import service
from app.digests.errors import DigestHeld
from app.digests.models import DigestSend
from app.errors import json_answer
from tests.alerts.support import alert, payload
from tests.digests.support import CHECKOUT, Sessions, digest_config, service_day, settings, store_day

DAY = date(2026, 11, 18)
END = datetime(2026, 11, 19, tzinfo=UTC)  # the day's end in the digest's zone (UTC)
RECEIVED = END - timedelta(minutes=10)  # a webhook of the day, still in the journal
KEY = b"k" * 32


@pytest.fixture
def sessions(migrated_engine: AsyncEngine) -> Sessions:
    return db.create_session_factory(migrated_engine)


async def journal_row(sessions: Sessions, received_at: datetime, group: str = "Down") -> None:
    """A firing webhook journaled (answered 202) at ``received_at``, not applied: no applier runs here."""
    body = payload(group, [alert(group, service="checkout")])
    raw = orjson.dumps(body)
    await journal.insert(sessions, [journal.Received(received_at, body["groupKey"], raw, 1)])


async def sends(sessions: Sessions) -> list[DigestSend]:
    async with sessions() as session:
        return list((await session.scalars(select(DigestSend))).all())


async def test_a_digest_waits_for_a_webhook_of_its_day_still_in_the_journal_and_then_counts_it(
    sessions: Sessions, database_url: str
) -> None:
    s = settings(database_url, **digest_config())
    await store_day(sessions, DAY, service_day(CHECKOUT, 1200, 60, (600, 1000, 1190, 1200)))
    await journal_row(sessions, RECEIVED)
    await journal_row(sessions, END + timedelta(minutes=1), "Later")  # after the day: holds nothing
    with pytest.raises(DigestHeld) as held:
        await service.send(
            sessions, s, "daily", DAY.isoformat(), by="schedule", now=END + timedelta(minutes=2)
        )
    held_sends = await sends(sessions)
    applied = await journal.apply_next(sessions, s, KEY, limit=10)
    answer = await service.send(
        sessions, s, "daily", DAY.isoformat(), by="schedule", now=END + timedelta(minutes=3)
    )
    answer_held = json_answer(held.value)  # what the API answers (and the CLI prints the message)
    assert answer_held.status_code == 503
    assert answer_held.headers["Retry-After"] == "60"  # asked again within a minute (13 left)
    assert orjson.loads(answer_held.body)["error"] == "digest_held"
    assert RECEIVED.isoformat() in held.value.message
    assert held_sends == []  # nothing claimed: the retry sends it
    assert applied.applied == 2
    assert answer.sent
    report = answer.digest
    assert report.incidents.opened == 1  # the webhook of the day, counted once applied
    assert "alert_journal" not in report.missing
    assert report.journal_waiting_since is None
    assert "May be incomplete" not in report.text
    assert [(x.day, x.sends) for x in await sends(sessions)] == [(DAY, 1)]


@pytest.mark.parametrize(
    ("locale", "note"),
    [
        ("zh-CN", "⚠️ 可能不完整：告警日志中仍有 2026-11-18 23:50:00 起收到、尚未处理的 webhook"),
        (
            "en",
            "⚠️ May be incomplete: the alert journal still holds webhooks received since 2026-11-18 23:50:00",
        ),
    ],
)
async def test_a_digest_goes_with_a_note_when_the_journal_is_stuck_past_the_hold(
    sessions: Sessions, database_url: str, locale: str, note: str
) -> None:
    s = settings(database_url, **digest_config(locale=locale))
    await journal_row(sessions, RECEIVED)
    preview = await service.digest(sessions, s, "daily", DAY.isoformat(), now=END)
    stuck_at = RECEIVED + service.JOURNAL_HOLD + timedelta(seconds=1)
    answer = await service.send(sessions, s, "daily", DAY.isoformat(), by="schedule", now=stuck_at)
    assert preview.journal_waiting_since == RECEIVED  # a preview is never held, and says so too
    assert answer.sent
    report = answer.digest
    assert "alert_journal" in report.missing
    assert report.journal_waiting_since == RECEIVED
    assert report.incidents.opened == 0
    for text in (report.text, report.markdown, preview.text):
        assert note in text
        assert text.index(note) < text.index("【流量】" if locale == "zh-CN" else "▌Traffic")
    assert [(x.day, x.sends) for x in await sends(sessions)] == [(DAY, 1)]
