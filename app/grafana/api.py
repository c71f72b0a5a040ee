"""Grafana's JSON datasource (simpod-json-datasource ≥ 0.6) under ``/grafana``.

Grafana calls these through its server-side proxy, with the datasource's custom
``Authorization: Bearer <viewer token>`` header on every call, the health check
included. Errors come back as Grafana shows them: ``{"message": ...}`` with a
4xx/5xx status (the rest of the API answers ``{"error", "message"}``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app.deps import SessionDep, SettingsDep, Viewer
from app.grafana import service
from app.grafana.schemas import (
    GrafanaError,
    Health,
    MetricOut,
    PayloadOption,
    PayloadOptionsRequest,
    QueryRequest,
    Table,
    TagKey,
    TagValue,
    TagValuesRequest,
    TimeSeries,
    VariableRequest,
    VariableValue,
)


class GrafanaRoute(APIRoute):
    """Answers every error of its routes in Grafana's form, ``{"message": ...}``.

    The application's own exception handlers (``main.py``) still choose the status,
    the headers (``WWW-Authenticate``) and what is logged; only the body is reshaped,
    so validation errors, auth failures, backend failures and unexpected errors all
    read the same in Grafana as in the rest of the API, minus the ``error`` code.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_for_grafana(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return await _grafana_error(request, exc)

        return handle_for_grafana


async def _grafana_error(request: Request, exc: Exception) -> Response:
    handlers = request.app.exception_handlers
    handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
    if handler is None:
        raise exc
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    try:
        body = json.loads(bytes(answer.body))
        message = str(body.get("message") or body.get("detail") or body)
    except (ValueError, AttributeError):
        message = f"HTTP {answer.status_code}"
    headers = {
        name: value
        for name, value in answer.headers.items()
        if name.lower() not in ("content-length", "content-type")
    }
    return JSONResponse({"message": message}, status_code=answer.status_code, headers=headers)


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": GrafanaError, "description": "Bad range, payload, variable value or filter"},
    404: {"model": GrafanaError, "description": "Unknown metric or entity"},
}

router = APIRouter(prefix="/grafana", tags=["grafana"], route_class=GrafanaRoute, responses=ERRORS)


def _json(body: Any) -> Response:
    """orjson: a three-year daily series is a thousand points; NaN and infinities become null."""
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/", summary="Health check (Grafana's “Save & test”)", responses={200: {"model": Health}})
async def health(_: Viewer, settings: SettingsDep) -> Response:
    return _json(service.health(settings))


# Grafana's proxy asks for the datasource URL itself, without a trailing slash: answer
# there too rather than redirecting (the redirect would point past the proxy).
router.add_api_route("", health, methods=["GET"], include_in_schema=False)


@router.post(
    "/metrics",
    summary="The metrics a query can name, with their payloads",
    responses={200: {"model": list[MetricOut]}},
)
async def metrics(
    _: Viewer, settings: SettingsDep, body: Annotated[dict[str, Any] | None, Body()] = None
) -> Response:
    return _json(service.metric_list(settings))


@router.post(
    "/metric-payload-options",
    summary="Options of one payload field (entities, granularities, formats)",
    responses={200: {"model": list[PayloadOption]}},
)
async def metric_payload_options(
    request: PayloadOptionsRequest, _: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    return _json(await service.payload_options(session, settings, request))


@router.post(
    "/query",
    summary="Time series, tables and annotations over the range",
    responses={200: {"model": list[TimeSeries | Table], "description": "One answer (or several) per target"}},
)
async def query(request: QueryRequest, _: Viewer, session: SessionDep, settings: SettingsDep) -> Response:
    return _json(await service.query(session, settings, request))


@router.post(
    "/variable",
    summary="Values of a query variable: services, namespaces, figures, schedules",
    responses={200: {"model": list[VariableValue]}},
)
async def variable(
    request: VariableRequest, _: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    return _json(await service.variable(session, settings, request))


@router.post("/tag-keys", summary="Ad hoc filter keys", responses={200: {"model": list[TagKey]}})
async def tag_keys(
    _: Viewer, settings: SettingsDep, body: Annotated[dict[str, Any] | None, Body()] = None
) -> Response:
    return _json(service.tag_keys(settings))


@router.post(
    "/tag-values", summary="Values of an ad hoc filter key", responses={200: {"model": list[TagValue]}}
)
async def tag_values(
    request: TagValuesRequest, _: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    return _json(await service.tag_values(session, settings, request.key))


ENDPOINTS = {
    "": "GET",
    "metrics": "POST",
    "metric-payload-options": "POST",
    "query": "POST",
    "variable": "POST",
    "tag-keys": "POST",
    "tag-values": "POST",
}


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def elsewhere(path: str, request: Request, _: Viewer) -> JSONResponse:
    """Anything else under /grafana: a 404 or 405 Grafana can show."""
    allowed = ENDPOINTS.get(path.strip("/"))
    if allowed is not None:
        message = f"{request.method} /grafana/{path}: use {allowed}"
        return JSONResponse({"message": message}, status_code=405, headers={"Allow": allowed})
    known = ", ".join(f"{method} /grafana/{name}" for name, method in ENDPOINTS.items())
    message = f"/grafana/{path} is not a JSON-datasource endpoint; the endpoints are {known}"
    return JSONResponse({"message": message}, status_code=404)
