"""Routes of the shell itself: the login form, logging out, and the static files."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse, Response

from app import signing
from app.web import auth, static
from app.web.deps import Page, PageDep, delete_session, set_session
from app.web.shell import render_docs

router = APIRouter(include_in_schema=False)

MAX_FORM_BYTES = 8192


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def insecure_origin(request: Request) -> bool:
    """A form posted from a plain-http page of a host that is not loopback: the browser would
    drop the session cookie (it is ``Secure``), so signing in cannot work there. The ``Origin``
    header is the browser's own view, right behind a TLS-terminating proxy too."""
    origin = request.headers.get("origin", "")
    if not origin.startswith("http://"):
        return False
    host = urlsplit(origin).hostname or ""
    return host not in LOOPBACK_HOSTS and not host.endswith(".localhost")


def safe_target(value: str | None) -> str:
    """Only a path of this site: never ``//evil.example`` or ``https://…`` (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or "\n" in value:
        return "/incidents"
    return value


async def form_fields(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (small forms only; no multipart needed)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _form(page: Page, target: str, *, status: int = 200, problem: str | None = None) -> Response:
    t = page.translator
    return page.render(
        "web/login.html",
        status=status,
        heading=t("auth.sign_in"),
        problem=t(problem) if problem else None,
        note=None,
        target=target,
    )


@router.get("/login")
async def login_form(page: PageDep) -> Response:
    return _form(page, safe_target(page.request.query_params.get("next")))


@router.post("/login")
async def login(page: PageDep) -> Response:
    fields = await form_fields(page.request)
    target = safe_target(fields.get("next"))
    ttl: timedelta = page.settings.web.session_ttl
    page.check_same_site()
    if insecure_origin(page.request):
        return _form(page, target, status=400, problem="auth.needs_https")
    try:
        _principal, cookie = auth.new_session(
            page.key, page.context.tokens, fields.get("token", "").strip(), page.now + ttl
        )
    except signing.InvalidToken:
        return _form(page, target, status=401, problem="auth.wrong_token")
    answer = page.redirect(target)
    set_session(answer, cookie, int(ttl.total_seconds()))
    return answer


@router.post("/logout")
async def logout(page: PageDep) -> Response:
    page.check_same_site()
    answer = page.redirect("/login")
    delete_session(answer)
    return answer


@router.get("/docs")
async def api_docs() -> Response:
    """Swagger UI over ``/openapi.json``, from files Panorama serves itself (ops networks are often
    offline): no CDN, no inline script (``web/static/docs.js`` starts it), so the page's CSP holds."""
    return HTMLResponse(render_docs())


@router.get("/docs/assets/{name}")
async def api_docs_asset(
    name: str,
    request: Request,
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    return _send(static.swagger_ui_asset(name), request, if_none_match, accept_encoding)


@router.get("/static/{path:path}")
async def static_file(
    path: str,
    request: Request,
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    return _send(static.asset(path), request, if_none_match, accept_encoding)


def _send(
    found: static.Asset | None, request: Request, if_none_match: str | None, accept_encoding: str | None
) -> Response:
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    cache = static.IMMUTABLE if request.query_params.get("v") == found.version else static.REVALIDATE
    headers = {"cache-control": cache, "etag": found.etag, "vary": "accept-encoding"}
    if if_none_match is not None and found.etag in if_none_match:
        return Response(status_code=304, headers=headers)
    body = found.body
    if found.gzipped is not None and "gzip" in (accept_encoding or ""):
        body, headers["content-encoding"] = found.gzipped, "gzip"
    return Response(body, media_type=found.media_type, headers=headers)
