"""The digests' errors (``main.py`` answers each with its status)."""

from __future__ import annotations

from app.errors import NotFound


class UnknownDigest(NotFound):
    code = "unknown_digest"
