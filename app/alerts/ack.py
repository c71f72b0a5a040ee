"""One-click acknowledge links: ``{public_url}/ack/{token}``, signed and expiring.

The token is made by the one signer (:mod:`app.signing`, purpose ``ack``) and names the
incident and, when the page went to one person (a personal rule's push, SMS or call), that
person: an ack from their lock screen or keypad is theirs in the timeline and in the on-call
history, not an anonymous "ack link". A link posted to a group names nobody. The key comes from
``alerts.signing_key`` or, when unset, is generated once and stored in the database so that
every replica signs and checks with the same one; the same key (with other purposes) signs page
view links and login sessions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import signing
from app.alerts import repository
from app.alerts.actors import CALL_ACTOR as CALL_ACTOR
from app.alerts.actors import LINK_ACTOR as LINK_ACTOR
from app.config import Settings

SECRET_NAME = "ack_signing_key"  # noqa: S105 - the name of a stored secret


def is_anonymous(actor: str) -> bool:
    """Whether an incident's ``acknowledged_by`` names no one: a group's ack link or an unnamed
    call (the on-call history then counts the ack for the incident, not for a person)."""
    return actor == LINK_ACTOR or (actor.startswith("phone call (") and actor.endswith(")"))


@dataclass(frozen=True)
class AckClaim:
    incident_id: int
    expires: datetime
    person: str | None = None  # the one person the page was sent to, if it went to one


class InvalidAckToken(signing.InvalidToken):
    """An ack link that is forged, malformed or expired (``expired``)."""


def sign(key: bytes, incident_id: int, expires: datetime, *, person: str | None = None) -> str:
    subject = str(incident_id) if person is None else f"{incident_id}:{person}"
    return signing.sign(key, signing.Purpose.ACK, subject, expires)


def verify(key: bytes, token: str, now: datetime) -> AckClaim:
    try:
        claim = signing.verify(key, signing.Purpose.ACK, token, now)
    except signing.InvalidToken as exc:
        if exc.expired:
            raise InvalidAckToken("this link has expired", expired=True) from None
        raise InvalidAckToken("this link is not a valid Panorama acknowledge link") from None
    incident, _, person = claim.subject.partition(":")
    if not incident.isdigit():
        raise InvalidAckToken("this link is not a valid Panorama acknowledge link")
    return AckClaim(int(incident), claim.expires, person or None)


async def signing_key(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> bytes:
    """The configured key, else the one stored in the database (made on first use)."""
    if settings.alerts.signing_key is not None:
        return settings.alerts.signing_key.get_secret_value().encode()
    async with sessions() as session:
        stored = await repository.stored_secret(session, SECRET_NAME)
    if stored is not None:
        return stored.encode()
    try:
        async with sessions.begin() as session:
            repository.add_stored_secret(session, SECRET_NAME, secrets.token_urlsafe(32), datetime.now(UTC))
    except IntegrityError:
        pass  # another replica made it first: use theirs
    async with sessions() as session:
        made = await repository.stored_secret(session, SECRET_NAME)
    assert made is not None
    return made.encode()
