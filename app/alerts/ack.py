"""One-click acknowledge links: ``{public_url}/ack/{token}``, signed and expiring.

The token is ``<incident>.<expiry>.<signature>`` (base64url HMAC-SHA256 of the first two
parts). The key comes from ``alerts.signing_key`` or, when unset, is generated once and
stored in the database so that every replica signs and checks with the same one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import repository
from app.alerts.models import StoredSecret
from app.config import Settings

SECRET_NAME = "ack_signing_key"  # noqa: S105 - the name of a stored secret


@dataclass(frozen=True)
class AckClaim:
    incident_id: int
    expires: datetime


class InvalidAckToken(Exception):
    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: bytes, incident_id: int, expires: datetime) -> str:
    payload = f"{incident_id}.{int(expires.timestamp())}"
    return f"{payload}.{_signature(key, payload)}"


def verify(key: bytes, token: str, now: datetime) -> AckClaim:
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise InvalidAckToken("this link is not a Panorama acknowledge link")
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(key, payload), parts[2]):
        raise InvalidAckToken("this link's signature does not match")
    expires = datetime.fromtimestamp(int(parts[1]), UTC)
    if expires <= now:
        raise InvalidAckToken("this link has expired", expired=True)
    return AckClaim(int(parts[0]), expires)


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
            session.add(
                StoredSecret(name=SECRET_NAME, value=secrets.token_urlsafe(32), created_at=datetime.now(UTC))
            )
    except IntegrityError:
        pass  # another replica made it first: use theirs
    async with sessions() as session:
        made = await repository.stored_secret(session, SECRET_NAME)
    assert made is not None
    return made.encode()
