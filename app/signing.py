"""Signed, expiring tokens: the one signer behind ack links, page view links, login sessions and
calendar feed URLs.

A token is ``<subject>.<expiry>.<signature>``: the subject base64url-encoded (it may hold
any text, e.g. ``trace:4bf9…`` or a service name with dots), the expiry in epoch seconds,
and a base64url HMAC-SHA256 of the first two parts. Each use has its own *purpose*, and
the HMAC key is derived from the one signing key and that purpose, so a token made for one
purpose (viewing a page) never verifies for another (acknowledging an incident).

The key is shared by every replica (``alerts.signing_key``, else a key stored in the
database: see :func:`app.alerts.ack.signing_key`); rotating it invalidates every token.
This module must never log or return a key, and never accept a token without checking
its signature *and* its expiry.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Purpose(StrEnum):
    ACK = "ack"  # one-click acknowledge link of one incident
    VIEW = "view"  # read-only page link (an incident, a trace, a service)
    SESSION = "session"  # the login cookie of a browser
    FEED = "feed"  # a calendar feed's URL (a schedule's or a person's shifts)


@dataclass(frozen=True)
class Claim:
    subject: str
    expires: datetime


class InvalidToken(Exception):
    """A token that is malformed, forged, made for another purpose, or expired (``expired``)."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=16)  # a key per purpose, derived once (every message's links are signed)
def _purpose_key(key: bytes, purpose: Purpose) -> bytes:
    return hmac.new(key, f"panorama/{purpose.value}".encode(), hashlib.sha256).digest()


def _signature(key: bytes, purpose: Purpose, payload: str) -> str:
    return _b64(hmac.new(_purpose_key(key, purpose), payload.encode(), hashlib.sha256).digest())


def sign(key: bytes, purpose: Purpose, subject: str, expires: datetime) -> str:
    """A token for ``subject`` that verifies for ``purpose`` until ``expires``."""
    payload = f"{_b64(subject.encode())}.{int(expires.timestamp())}"
    return f"{payload}.{_signature(key, purpose, payload)}"


def verify(key: bytes, purpose: Purpose, token: str, now: datetime) -> Claim:
    """The claim of a genuine, unexpired token; raises InvalidToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[0] or len(token) > 4096:
        raise InvalidToken("not a Panorama link")
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(key, purpose, payload), parts[2]):
        raise InvalidToken("the signature does not match")
    try:
        subject = _unb64(parts[0]).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken("not a Panorama link") from None
    expires = datetime.fromtimestamp(int(parts[1]), UTC)
    if expires <= now:
        raise InvalidToken("expired", expired=True)
    return Claim(subject, expires)


def fingerprint(key: bytes, purpose: Purpose, value: str, length: int = 16) -> str:
    """A short keyed digest of ``value`` (e.g. binding a session to the token it was made from
    without carrying that token, or even its plain hash, in the cookie)."""
    return _signature(key, purpose, f"fingerprint:{value}")[:length]
