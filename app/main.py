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
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__, db
from app.alerts import api as alerts_api
from app.backends.errors import BackendError
from app.backends.registry import BACKEND_NAMES
from app.config import Settings, format_path
from app.context import AppContext
from app.correlation import api as correlation_api
from app.errors import InvalidInput, NotFound, PanoramaError, Unauthenticated
from app.grafana import api as grafana_api
from app.health import api as health_api
from app.observability import (
    HttpMetricsMiddleware,
    build_tracer_provider,
    configure_propagation,
    hide_link_tokens,
)
from app.pages import api as pages_api
from app.rollups import api as rollups_api
from app.screen import api as screen_api
from app.security import Role
from app.system import api as system_api
from app.system import service as system
from app.web import api as web_api
from app.web.deps import error_page
from app.web.headers import SecurityHeadersMiddleware

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
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The Panorama application for ``settings`` (read from ``config_path``, which reloads re-read)."""
    provider = tracer_provider or build_tracer_provider()
    context = AppContext(settings=settings, config_path=config_path, tracer_provider=provider)
    configure_propagation()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await context.open()
        _log_start(context)
        hangup = _reload_on_sighup(context)
        try:
            yield
        finally:
            hangup()
            await context.close()

    app = FastAPI(
        title="Panorama",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
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
    _install_error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=context.metrics)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls="/healthz,/readyz,/metrics",
        server_request_hook=hide_link_tokens,
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
    """Errors as JSON, except on HTML pages, which answer with a page (``web.deps.error_page``)."""

    @app.exception_handler(PanoramaError)
    async def panorama_error(request: Request, exc: PanoramaError) -> Response:
        if (page := error_page(request, exc)) is not None:
            return page
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, exc: BackendError) -> Response:
        log.warning("backend call failed", extra={"backend": exc.backend, "kind": exc.kind.value})
        if (page := error_page(request, exc)) is not None:
            return page
        return JSONResponse(
            {
                "error": f"backend_{exc.kind.value}",
                "backend": exc.backend,
                "message": f"{exc.backend}: {exc.message}",
            },
            status_code=exc.kind.http_status,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [_describe_validation_error(error) for error in exc.errors()]
        if (page := error_page(request, InvalidInput("; ".join(problems)))) is not None:
            return page
        return JSONResponse(
            {"error": "invalid_request", "message": "; ".join(problems), "problems": problems},
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and (page := error_page(request, NotFound(str(exc.detail)))) is not None:
            return page
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        if (page := error_page(request, exc)) is not None:
            return page
        return JSONResponse(
            {"error": "internal_error", "message": "internal error; the server log has the details"},
            status_code=500,
        )


def _describe_validation_error(error: dict[str, Any]) -> str:
    """``{"loc": ("query", "from"), "msg": ...}`` → ``query parameter 'from': ...``."""
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if loc and loc[0] in ("query", "path", "header", "cookie") and len(loc) > 1:
        return f"{loc[0]} parameter {format_path(loc[1:])!r}: {message}"
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
    app.openapi_schema = schema
    return schema
