"""API tokens and roles.

Tokens are configured literally or as ``sha256:<hex>`` digests; only digests are
kept in memory, and a presented token is hashed before it is looked up, so the
plain value is never stored, logged or compared byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

SHA256_PREFIX = "sha256:"
MIN_TOKEN_LENGTH = 16


class Role(StrEnum):
    """Roles in increasing power: each one may do what the ones before it may.

    ``screen`` is the wall screen's kiosk token: it comes first, so that it may read the wall
    screen's data and nothing else (every viewer route asks for ``viewer`` or more), while any
    viewer token opens the wall screen too.
    """

    SCREEN = "screen"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANKS = {Role.SCREEN: 0, Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's configured name and its role."""

    name: str
    role: Role


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_spec_problem(spec: str) -> str | None:
    """Why a configured token value is unusable, or None when it is fine."""
    if spec.startswith(SHA256_PREFIX):
        hexpart = spec[len(SHA256_PREFIX) :]
        if len(hexpart) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
            return "a sha256: token must be followed by 64 hexadecimal digits"
        return None
    if len(spec) < MIN_TOKEN_LENGTH:
        return f"a literal token must be at least {MIN_TOKEN_LENGTH} characters long"
    return None


def spec_digest(spec: str) -> str:
    """The sha256 hex digest a configured token value stands for."""
    if spec.startswith(SHA256_PREFIX):
        return spec[len(SHA256_PREFIX) :].lower()
    return digest(spec)


def generate_token() -> str:
    return secrets.token_urlsafe(32)


class TokenRegistry:
    """Looks up the principal a bearer token belongs to."""

    def __init__(self, entries: Iterable[tuple[str, Role, str]]) -> None:
        self._by_digest: dict[str, Principal] = {}
        self._by_name: dict[str, tuple[Principal, str]] = {}
        self._digest_of: dict[str, str] = {}
        for name, role, spec in entries:
            principal = Principal(name=name, role=role)
            self._by_digest[spec_digest(spec)] = principal
            self._by_name[name] = (principal, spec_digest(spec))
            self._digest_of[name] = spec_digest(spec)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, token: str) -> Principal | None:
        """The principal of ``token``, found by its digest in a dict (every authenticated request
        asks, so no scan over the configured tokens). Looking up a SHA-256 digest leaks nothing
        usable about the token: whatever its timing depends on is the digest, and a caller cannot
        steer a digest without a preimage. The match is still confirmed in constant time."""
        presented = digest(token)
        principal = self._by_digest.get(presented)
        if principal is None or not hmac.compare_digest(self._digest_of[principal.name], presented):
            return None
        return principal

    def named(self, name: str) -> tuple[Principal, str] | None:
        """The principal of the token configured under ``name`` and that token's digest (what a
        login session is bound to: rotating or removing the token ends its sessions)."""
        return self._by_name.get(name)
