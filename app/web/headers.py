"""Security headers: a strict Content-Security-Policy on every HTML answer, and the rest on all.

The policy allows only Panorama's own scripts, styles, images and fetches (``'self'``): no
inline script or style, no ``eval``, no other origin, no framing (``frame-ancestors 'none'``),
forms posting only to Panorama. Pages therefore put data for scripts in
``<script type="application/json">`` blocks or ``data-`` attributes, and draw bars with SVG
attributes rather than ``style=""``. Answers carrying a page are ``no-store`` (they may show
incident data on a shared phone) and never send a referrer (view links carry tokens).

Pure ASGI middleware, so it also covers error pages and answers made outside any route.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                extra = list(ALWAYS)
                if content_type.startswith(b"text/html"):
                    extra += HTML_ONLY
                    if b"cache-control" not in present:
                        extra.append((b"cache-control", b"no-store"))
                headers += [(name, value) for name, value in extra if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)
