"""The digests' errors (``main.py`` answers each with its status)."""

from __future__ import annotations

from app.errors import NotFound, PanoramaError


class UnknownDigest(NotFound):
    code = "unknown_digest"


class DigestHeld(PanoramaError):
    """The alert journal still holds webhooks received before the period ended, for less than the
    hold: the digest would miss or miscount them, so it waits (``retry_after_s`` says how long at
    most; then it goes, saying it may be incomplete)."""

    status_code = 503
    code = "digest_held"
