"""The app factory: routes, error answers, telemetry, and the lifespan that opens and closes resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__, db, heap
from app.alerts import api as alerts_api
from app.backends.errors import BackendError
from app.backends.registry import BACKEND_NAMES
from app.config import Settings, format_path
from app.context import AppContext
from app.correlation import api as correlation_api
from app.digests import api as digests_api
from app.errors import InvalidInput, NotFound, PanoramaError, Phrase, json_answer
from app.grafana import api as grafana_api
from app.health import api as health_api
from app.http_stack import HttpStack
from app.limits import RateLimiter
from app.observability import (
    TRACING_EXCLUDED,
    RequestTelemetry,
    TraceContext,
    build_tracer_provider,
    configure_propagation,
    exports_spans,
    hide_link_tokens,
)
from app.pages import api as pages_api
from app.rollups import api as rollups_api
from app.screen import api as screen_api
from app.security import Role
from app.system import api as system_api
from app.system import service as system
from app.web import api as web_api
from app.web.deps import error_page, no_such_page

log = logging.getLogger("panorama")

DESCRIPTION = """
Panorama is the observability hub above Prometheus, Alertmanager, Elasticsearch and Jaeger.

Every route except `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer <token>`.
Roles, each allowing what the ones before it allow: `screen` < `viewer` < `operator` < `admin`
(`screen` is the wall screen's kiosk token: it reads `/api/v1/screen` and nothing else).
Errors are JSON: `{"error": "<code>", "message": "<what went wrong>"}`; a failing backend
answers 502/503/504 and names the backend in `backend`.
"""


def create_app(
    settings: Settings,
    *,
    config_path: Path | None = None,
    served_url: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The Panorama application for ``settings`` (read from ``config_path``, which reloads re-read),
    served at ``served_url`` (the default of ``alerts.public_url``)."""
    provider = tracer_provider or build_tracer_provider()
    context = AppContext(
        settings=settings, config_path=config_path, served_url=served_url, tracer_provider=provider
    )
    configure_propagation()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await context.open()
        _log_start(context)
        hangup = _reload_on_sighup(context)
        try:
            with heap.collector_for_serving():
                yield
        finally:
            hangup()
            await context.close()

    app = FastAPI(
        title="Panorama",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs is app/web's, from files Panorama serves (FastAPI's loads a CDN)
        redoc_url=None,  # ReDoc would load a CDN too; /docs is the one page for people
        # FastAPI's own OpenTelemetry bridge off: Panorama's tracing is app/http_stack.py's (and the
        # instrumentation when exporting). On, it asked the global tracer, meter and logger providers
        # on every request whether it had work (it had none): ~5 µs a request, measured in the storm.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.context = context
    app.include_router(health_api.router)
    app.include_router(system_api.router)
    app.include_router(correlation_api.router)
    app.include_router(rollups_api.router)
    app.include_router(alerts_api.router)
    app.include_router(grafana_api.router)
    app.include_router(web_api.router)
    app.include_router(pages_api.router)
    app.include_router(screen_api.router)
    app.include_router(digests_api.router)
    _install_error_handlers(app)
    # The whole per-request stack in one pass (why: app/http_stack.py); tracing spans only when
    # something exports them, else the request's trace context without a span (TraceContext).
    # Decided here, once: a span processor added to the provider after this is not seen.
    exporting = exports_spans(provider)
    app.add_middleware(
        HttpStack,
        telemetry=RequestTelemetry(context.metrics),
        limiter=RateLimiter(lambda: context.settings.server.rate_limit),
        trace_context=None if exporting else TraceContext(provider),
        direct=alerts_api.DIRECT_ROUTES,
    )
    if settings.server.cors.allow_origins:  # off unless configured (read at start)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors.allow_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    if exporting:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=provider,
            excluded_urls=",".join(TRACING_EXCLUDED),
            server_request_hook=hide_link_tokens,
            exclude_spans=["receive", "send"],  # a child span per ASGI message: cost, no information
        )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _log_start(context: AppContext) -> None:
    settings = context.settings
    log.info(
        "panorama %s started",
        __version__,
        extra={
            "config": str(context.config_path or "(defaults)"),
            "database": db.display_url(settings.database),
            "timezone": settings.timezone,
            "public_url": settings.alerts.public_url,
            "backends": {name: getattr(settings, name).display_url for name in BACKEND_NAMES},
            "tokens": len(context.tokens),
        },
    )


def _reload_on_sighup(context: AppContext) -> Callable[[], None]:
    """Makes SIGHUP reload the configuration, as Prometheus and Alertmanager do.

    Returns the function that removes the handler (there is none to install when
    the loop does not run in the main thread).
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    async def reload() -> None:
        with contextlib.suppress(PanoramaError):  # logged by the service; the old config stays
            await system.reload(context)

    def on_hangup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    except (NotImplementedError, RuntimeError, ValueError):
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove


# --- errors ------------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    """Errors as JSON, except on HTML pages, which answer with a page (``web.deps.error_page``), and
    an unknown path asked for by a browser, which gets the 404 page (``web.deps.no_such_page``)."""

    @app.exception_handler(PanoramaError)
    async def panorama_error(request: Request, exc: PanoramaError) -> Response:
        if (page := error_page(request, exc)) is not None:
            return page
        return json_answer(exc)

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, exc: BackendError) -> Response:
        log.warning("backend call failed", extra={"backend": exc.backend, "kind": exc.kind.value})
        if (page := error_page(request, exc)) is not None:
            return page
        return JSONResponse(
            {
                "error": f"backend_{exc.kind.value}",
                "backend": exc.backend,
                "message": exc.described,
            },
            status_code=exc.kind.http_status,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [_describe_validation_error(error) for error in exc.errors()]
        if (page := error_page(request, _page_validation_error(exc, problems))) is not None:
            return page
        return JSONResponse(
            {"error": "invalid_request", "message": "; ".join(problems), "problems": problems},
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            page = error_page(request, NotFound(str(exc.detail))) or no_such_page(request)
            if page is not None:
                return page
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    async def database_unavailable(request: Request, exc: DBAPIError) -> Response:
        if not exc.connection_invalidated and not isinstance(exc, OperationalError | InterfaceError):
            return await unexpected(request, exc)
        text = str(exc.orig)
        log.warning("database unavailable", extra={"error": type(exc.orig).__name__})
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            message = "the database is not migrated: run `panorama migrate`"
            return _database_unavailable(request, message, Phrase("problem.database_not_migrated"))
        return _database_unavailable(request, DATABASE_SILENT, Phrase("problem.database"))

    @app.exception_handler(OSError)
    async def connection_failed(request: Request, exc: OSError) -> Response:
        # Backends and channels wrap their own failures; a bare OSError here is the database
        # driver failing to connect (asyncpg raises ConnectionRefusedError unwrapped).
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return _database_unavailable(request, DATABASE_SILENT, Phrase("problem.database"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        if (page := error_page(request, exc)) is not None:
            return page
        return JSONResponse(
            {"error": "internal_error", "message": "internal error; the server log has the details"},
            status_code=500,
        )


DATABASE_SILENT = "the database did not answer; try again shortly"


class DatabaseUnavailable(PanoramaError):
    """The database failed a page (the JSON answer is made in the handler, as before)."""

    status_code = 503
    code = "database_unavailable"


def _database_unavailable(request: Request, message: str, said: Phrase) -> Response:
    """The 503 of a request the database failed: a page in the reader's language, else the JSON
    answer; both ask to retry in five seconds."""
    answer = error_page(request, DatabaseUnavailable(message, phrase=said))
    if answer is None:
        answer = JSONResponse({"error": "database_unavailable", "message": message}, status_code=503)
    answer.headers["Retry-After"] = "5"
    return answer


def _page_validation_error(exc: RequestValidationError, problems: list[str]) -> InvalidInput:
    """A page's parameter FastAPI could not read, for the page to say: the first one's name and
    the validator's own words as the detail (the English ``problems`` stay the message)."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = tuple(first.get("loc", ()))
    detail = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    name = format_path(loc[1:]) if len(loc) > 1 else format_path(loc) or "request"
    said = Phrase("problem.parameter", name=name, problem=Phrase("problem.value", detail=detail))
    return InvalidInput("; ".join(problems), phrase=said, parameter=name)


BODY_TIME_FORMS = (
    "a request body takes an RFC 3339 time (2026-12-06T09:30:00+08:00; without an offset, a local "
    "wall time), epoch seconds, or a date (2026-12-06); relative times "
    "such as now-1h are read in query parameters only"
)
"""Said when a body's time cannot be read: bodies are Pydantic models, not the grammar of app.times."""
_TIME_ERRORS = frozenset(
    {"date_parsing", "date_from_datetime_parsing", "datetime_parsing", "datetime_from_date_parsing"}
)


def _describe_validation_error(error: dict[str, Any]) -> str:
    """``{"loc": ("query", "from"), "msg": ...}`` → ``query parameter 'from': ...``."""
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if loc and loc[0] in ("query", "path", "header", "cookie") and len(loc) > 1:
        return f"{loc[0]} parameter {format_path(loc[1:])!r}: {message}"
    if error.get("type") == "json_invalid":
        why = (error.get("ctx") or {}).get("error", message)
        return f"request body: not valid JSON ({why}); send a JSON object with Content-Type: application/json"
    if loc and loc[0] == "body" and error.get("type") in _TIME_ERRORS and isinstance(error.get("input"), str):
        return f"body {format_path(loc[1:])!r}: {error['input'][:40]!r} is not a time; {BODY_TIME_FORMS}"
    if loc and loc[0] == "body":
        where = format_path(loc[1:]) or "request body"
        return f"body {where}: {message}" if len(loc) > 1 else f"{where}: {message}"
    return f"{format_path(loc) or 'request'}: {message}"


# --- OpenAPI -----------------------------------------------------------------------------


ROLE_ORDER = [role.value for role in Role]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, with each operation's auth requirement spelled out.

    Role dependencies put their role into the bearer requirement's scopes
    (``deps.Viewer`` etc.); from those, every operation gets ``x-required-role``
    and a first line saying what token it needs. Operations without a
    requirement say that no token is needed.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path_item in schema["paths"].values():
        for operation in path_item.values():
            roles = [scope for req in operation.get("security", []) for scope in req.get("HTTPBearer", [])]
            if "x-auth" in operation:
                operation["security"] = [{"HTTPBearer": []}]
                note = f"Needs {operation['x-auth']}."
                operation.setdefault("responses", {})["401"] = {"description": "Missing or wrong credentials"}
            elif not roles:
                operation["security"] = []
                note = "No token needed."
            else:
                role = max(roles, key=ROLE_ORDER.index)
                operation["x-required-role"] = role
                note = f"Needs a bearer token with the `{role}` role or higher."
                operation.setdefault("responses", {}).update(
                    {
                        "401": {"description": "Missing or invalid token"},
                        "403": {"description": f"The token's role is below {role}"},
                    }
                )
            operation["description"] = f"{note}\n\n{operation.get('description', '')}".strip()
            _document_errors(operation, needs_token=bool(roles) or "x-auth" in operation)
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "description": "Every error answer; some add fields (`problems`, `backend`, `parameter`, ...).",
}


def _document_errors(operation: dict[str, Any], *, needs_token: bool) -> None:
    """States the error answers every operation can give, in Panorama's error shape: bad input is
    400 (never FastAPI's 422), a name that matches nothing 404, a token over its rate 429; a
    ``format`` parameter offering CSV documents the CSV answer too."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    has_input = bool(operation.get("parameters")) or "requestBody" in operation
    wanted = {"400": "Bad input; the message names the parameter"} if has_input else {}
    if has_input and needs_token:
        wanted["404"] = "What the request names does not exist"
    if needs_token:
        wanted["429"] = "This token is over its rate (server.rate_limit); see Retry-After"
    for status, description in wanted.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status[0] in "45" and "content" not in response:
            response["content"] = error
    formats = next((p for p in operation.get("parameters", []) if p.get("name") == "format"), None)
    if formats is not None and "csv" in str(formats.get("schema", {})):
        ok = responses.get("200", {})
        ok.setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
