"""Ack tokens: a link sent to one person names them, a group's link names nobody, and neither can
be altered to name someone else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.alerts import ack

KEY = b"k" * 32
NOW = datetime(2026, 12, 6, 3, tzinfo=UTC)


def test_a_link_sent_to_one_person_acknowledges_in_their_name() -> None:
    token = ack.sign(KEY, 42, NOW + timedelta(hours=1), person="alice")
    claim = ack.verify(KEY, token, NOW)
    assert (claim.incident_id, claim.person) == (42, "alice")


def test_a_groups_link_names_nobody() -> None:
    claim = ack.verify(KEY, ack.sign(KEY, 42, NOW + timedelta(hours=1)), NOW)
    assert (claim.incident_id, claim.person) == (42, None)
    assert ack.is_anonymous(ack.LINK_ACTOR)
    assert ack.is_anonymous(ack.CALL_ACTOR.format(number="+8613800000001"))
    assert not ack.is_anonymous("alice")


def test_the_person_cannot_be_changed_without_the_key() -> None:
    token = ack.sign(KEY, 42, NOW + timedelta(hours=1), person="alice")
    subject, rest = token.split(".", 1)
    forged = ack.sign(b"x" * 32, 42, NOW + timedelta(hours=1), person="mallory").split(".", 1)[0]
    with pytest.raises(ack.InvalidAckToken):
        ack.verify(KEY, f"{forged}.{rest}", NOW)
    assert ack.verify(KEY, f"{subject}.{rest}", NOW).person == "alice"
