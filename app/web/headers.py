"""Security headers: a strict Content-Security-Policy on every HTML answer, and the rest on all.

The policy allows only Panorama's own scripts, styles, images and fetches (``'self'``): no
inline script or style, no ``eval``, no other origin, no framing (``frame-ancestors 'none'``),
forms posting only to Panorama. Pages therefore put data for scripts in
``<script type="application/json">`` blocks or ``data-`` attributes, and draw bars with SVG
attributes rather than ``style=""``. Answers carrying a page are ``no-store`` (they may show
incident data on a shared phone) and never send a referrer (view links carry tokens).

Added by ``app.http_stack`` (one pass for the whole request stack), outside routing, so it also
covers error pages and answers made outside any route.
"""

from __future__ import annotations

from collections.abc import Iterable

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HTML_ONLY = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)


_ALWAYS_NAMES = frozenset(name for name, _ in ALWAYS)
_HTML_EXTRA = (*HTML_ONLY, (b"cache-control", b"no-store"))
_HTML_NAMES = frozenset(name for name, _ in _HTML_EXTRA)


def secure(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (an answer's) with the security headers added, never replacing one the answer
    set itself (a page may set its own ``cache-control``). Called once per answer by
    ``app.http_stack``: the pairs are precomputed, and the usual answer (JSON, none of these
    headers set) takes one pass over its headers."""
    answer = list(headers)
    html = False
    clash = False
    for raw, value in answer:
        name = raw.lower()
        if name == b"content-type":
            html = value.startswith(b"text/html")
        elif name in _ALWAYS_NAMES or name in _HTML_NAMES:
            clash = True
    extra = _ALWAYS_AND_HTML if html else ALWAYS
    if clash:
        present = {name.lower() for name, _ in answer}
        answer += [(name, value) for name, value in extra if name not in present]
    else:
        answer += extra
    return answer


_ALWAYS_AND_HTML = (*ALWAYS, *_HTML_EXTRA)
