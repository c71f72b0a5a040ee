"""FastAPI dependencies: the request's context, settings, database session, backends and caller.

Every dependency is ``async def``, even those that only read an attribute: FastAPI runs a plain
``def`` dependency in its thread pool, a hop to a worker thread and back per dependency and
request (measured: about a tenth of a cold three-year report's time on a busy machine, and among
the largest costs of the webhook under an alert storm, three dependencies each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.runtime import AlertRuntime
from app.backends.elasticsearch import ElasticsearchClient
from app.backends.errors import not_configured
from app.backends.jaeger import JaegerClient
from app.backends.prometheus import PrometheusClient
from app.config import Settings
from app.context import AppContext
from app.errors import Forbidden, Unauthenticated
from app.security import Principal, Role

BEARER_DESCRIPTION = (
    "An API token from `auth.tokens` (or PANORAMA_ADMIN_TOKEN): `Authorization: Bearer <token>`."
)


async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_settings(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    assert context.sessions is not None, "the database is opened in the lifespan"
    async with context.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_sessions(context: ContextDep) -> async_sessionmaker[AsyncSession]:
    """The session factory, for services that run several transactions."""
    assert context.sessions is not None, "the database is opened in the lifespan"
    return context.sessions


SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]


async def get_alerts(context: ContextDep) -> AlertRuntime:
    assert context.alerts is not None, "the alerting runtime is opened in the lifespan"
    return context.alerts


AlertsDep = Annotated[AlertRuntime, Depends(get_alerts)]


async def get_prometheus(context: ContextDep) -> PrometheusClient:
    if context.backends.prometheus is None:
        raise not_configured("prometheus")
    return context.backends.prometheus


async def get_elasticsearch(context: ContextDep) -> ElasticsearchClient:
    if context.backends.elasticsearch is None:
        raise not_configured("elasticsearch")
    return context.backends.elasticsearch


async def get_jaeger(context: ContextDep) -> JaegerClient:
    if context.backends.jaeger is None:
        raise not_configured("jaeger")
    return context.backends.jaeger


PrometheusDep = Annotated[PrometheusClient, Depends(get_prometheus)]
ElasticsearchDep = Annotated[ElasticsearchClient, Depends(get_elasticsearch)]
JaegerDep = Annotated[JaegerClient, Depends(get_jaeger)]


class RoleBearer(HTTPBearer):
    """The caller's principal, admitted when its token has ``role`` or a higher one.

    One dependency that reads the header itself, rather than the principal depending on the
    context and on ``HTTPBearer`` (three dependency nodes, each a recursive ``solve_dependencies``
    per request: measured, about a third of what FastAPI spent around a small authenticated
    route, ``bench/stack.py``). It is still an ``HTTPBearer`` to FastAPI, so the OpenAPI document
    states ``security: [{"HTTPBearer": ["<role>"]}]`` as before.
    """

    def __init__(self, role: Role) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer", description=BEARER_DESCRIPTION)
        self.role = role

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        token = token.strip()
        if not scheme or not token or scheme.lower() != "bearer":
            raise Unauthenticated("missing bearer token: send `Authorization: Bearer <token>`")
        context: AppContext = request.app.state.context
        principal = context.tokens.authenticate(token)
        if principal is None:
            raise Unauthenticated("invalid token")
        if not principal.role.allows(self.role):
            raise Forbidden(
                f"this needs the {self.role.value} role; token {principal.name!r} has {principal.role.value}"
            )
        return principal


# The role travels as the security requirement's scope, so the OpenAPI document
# states it on each operation: `security: [{"HTTPBearer": ["operator"]}]`.
Screen = Annotated[Principal, Security(RoleBearer(Role.SCREEN), scopes=[Role.SCREEN.value])]
"""The wall screen's data: a ``screen`` token (kiosk) or any viewer token or higher."""
Viewer = Annotated[Principal, Security(RoleBearer(Role.VIEWER), scopes=[Role.VIEWER.value])]
Operator = Annotated[Principal, Security(RoleBearer(Role.OPERATOR), scopes=[Role.OPERATOR.value])]
Admin = Annotated[Principal, Security(RoleBearer(Role.ADMIN), scopes=[Role.ADMIN.value])]
