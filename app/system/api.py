"""Who am I, the running configuration, and reloading it."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import Admin, ContextDep, Operator, Viewer
from app.errors import answers
from app.system import service
from app.system.schemas import EffectiveConfig, ReloadResult, WhoAmI

router = APIRouter(tags=["system"])


@router.get("/api/v1/whoami", response_model=WhoAmI, summary="The caller's token name and role")
async def whoami(principal: Viewer) -> WhoAmI:
    return WhoAmI(name=principal.name, role=principal.role)


@router.get("/api/v1/config", response_model=EffectiveConfig, summary="The running configuration")
async def config(_: Operator, context: ContextDep) -> EffectiveConfig:
    return service.effective_config(context)


@router.post(
    "/-/reload",
    response_model=ReloadResult,
    summary="Re-read the configuration file (as SIGHUP does)",
    responses=answers(_400="The new configuration has problems; the old one stays"),
)
async def reload(_: Admin, context: ContextDep) -> ReloadResult:
    return await service.reload(context)
