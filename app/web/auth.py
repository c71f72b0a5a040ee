"""Who may see a page: a bearer token, a login session, or a signed view link.

- **Bearer token** (``Authorization: Bearer``), exactly as the API takes it.
- **Login session**: the login form checks a token once and sets a cookie holding a signed,
  expiring claim ``<token name> + <keyed fingerprint of the token's digest>`` (never the
  token, nor its plain hash). Every replica verifies it with the shared signing key and no
  database row; the role is read from the configuration on each request, so a changed role
  applies at once, and rotating or removing the token (then ``/-/reload``) ends every session
  made from it. Rotating the signing key ends all sessions and links.
- **View link** (``?view=<token>``): read-only access to one *scope* — ``incident:42``,
  ``trace:<32 hex>``, ``service:<name>``, ``incidents`` (the list) or ``oncall:<schedule>``
  (one schedule's on-call page) — until it expires. Notifications carry one for their incident,
  a digest for its services, incidents and the list, a hand-over or swap notice for its
  schedule's on-call page (and the list); a page opened with one mints links of the same expiry
  (never later) for the incidents, traces and services it shows. A view link never allows
  acting on anything.

This module never logs a token and never trusts a claim without its signature and expiry.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from app import signing
from app.security import Principal, TokenRegistry, digest

VIEW_PARAM = "view"
SESSION_COOKIE = "__Host-panorama_session"  # __Host-: Secure, Path=/, no Domain — the strictest cookie


def incident_scope(incident_id: int) -> str:
    return f"incident:{incident_id}"


def trace_scope(trace_hex: str) -> str:
    return f"trace:{trace_hex}"


def service_scope(name: str) -> str:
    return f"service:{name}"


def incidents_scope() -> str:
    """The incidents list (any filter, read-only; each incident on it opens through its own link)."""
    return "incidents"


def oncall_scope(schedule: str) -> str:
    """One schedule's on-call page (who is on call, its shifts, the swaps on offer; read-only)."""
    return f"oncall:{schedule}"


@dataclass(frozen=True)
class ViewGrant:
    """A verified view link: what it opens, and until when."""

    scope: str
    expires: datetime


def view_token(key: bytes, scope: str, expires: datetime) -> str:
    return signing.sign(key, signing.Purpose.VIEW, scope, expires)


def view_url(public_url: str, path: str, key: bytes | None, scope: str, expires: datetime) -> str:
    """Panorama's page at ``path``; with a key, carrying a view link of ``scope`` (read-only, until
    ``expires``) so that it opens without signing in — for links sent to chats and people."""
    url = f"{public_url}{path}"
    if key is None:
        return url
    joint = "&" if "?" in path else "?"
    return f"{url}{joint}{VIEW_PARAM}={view_token(key, scope, expires)}"


def check_view(key: bytes, token: str, now: datetime) -> ViewGrant:
    """Raises signing.InvalidToken for a forged, malformed or expired link."""
    claim = signing.verify(key, signing.Purpose.VIEW, token, now)
    return ViewGrant(claim.subject, claim.expires)


def _binding(key: bytes, token_digest: str) -> str:
    return signing.fingerprint(key, signing.Purpose.SESSION, token_digest)


def new_session(key: bytes, tokens: TokenRegistry, token: str, expires: datetime) -> tuple[Principal, str]:
    """Checks a token typed into the login form; returns its principal and the cookie value.

    Raises signing.InvalidToken when the token is not a configured one.
    """
    principal = tokens.authenticate(token)
    if principal is None:
        raise signing.InvalidToken("unknown token")
    subject = f"{principal.name}\n{_binding(key, digest(token))}"
    return principal, signing.sign(key, signing.Purpose.SESSION, subject, expires)


def check_session(key: bytes, tokens: TokenRegistry, cookie: str, now: datetime) -> Principal:
    """The principal a session cookie stands for, while its token is still configured as it was."""
    claim = signing.verify(key, signing.Purpose.SESSION, cookie, now)
    name, _, binding = claim.subject.partition("\n")
    found = tokens.named(name)
    if found is None or not binding:
        raise signing.InvalidToken("the session's token is no longer configured")
    principal, token_digest = found
    if not hmac.compare_digest(binding, _binding(key, token_digest)):
        raise signing.InvalidToken("the session's token has been changed")
    return principal
