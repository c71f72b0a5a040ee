"""Liveness, readiness and the service's own metrics: the only routes without a token."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from app import __version__
from app.deps import ContextDep
from app.health import service
from app.health.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok", version=__version__)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Database and backends",
    responses={503: {"model": Readiness, "description": "The database is down or not migrated"}},
)
async def readyz(context: ContextDep) -> JSONResponse:
    assert context.engine is not None, "the database is opened in the lifespan"
    readiness = await service.check_readiness(context.engine, context.backends)
    return JSONResponse(readiness.model_dump(mode="json"), status_code=200 if readiness.ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus exposition of Panorama's own metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(context: ContextDep) -> Response:
    return Response(context.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
