"""Tokens and roles, on the token registry and on real routes of each role."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount

from app.security import Principal, Role, TokenRegistry, token_spec_problem
from tests.harness.app import (
    ADMIN_TOKEN,
    OPERATOR_TOKEN,
    SCREEN_TOKEN,
    TOKENS,
    VIEWER_TOKEN,
    AppFactory,
    bearer,
)

PUBLIC = {"/healthz", "/readyz", "/metrics"}
ROUTE_OF_ROLE = {
    Role.SCREEN: ("GET", "/api/v1/screen"),
    Role.VIEWER: ("GET", "/api/v1/whoami"),
    Role.OPERATOR: ("GET", "/api/v1/config"),
    Role.ADMIN: ("POST", "/-/reload"),
}
TOKEN_OF_ROLE = {
    Role.SCREEN: SCREEN_TOKEN,
    Role.VIEWER: VIEWER_TOKEN,
    Role.OPERATOR: OPERATOR_TOKEN,
    Role.ADMIN: ADMIN_TOKEN,
}


def test_registry_accepts_literal_and_hashed_tokens() -> None:
    hashed = hashlib.sha256(b"hashed-token-value-42").hexdigest()
    registry = TokenRegistry(
        [("lit", Role.VIEWER, "literal-token-value-1"), ("hash", Role.ADMIN, f"sha256:{hashed.upper()}")]
    )
    assert registry.authenticate("literal-token-value-1") == Principal("lit", Role.VIEWER)
    assert registry.authenticate("hashed-token-value-42") == Principal("hash", Role.ADMIN)
    assert registry.authenticate(f"sha256:{hashed}") is None
    assert registry.authenticate("") is None
    assert len(registry) == 2


def test_roles_are_ordered() -> None:
    assert Role.VIEWER.allows(Role.SCREEN)
    assert not Role.SCREEN.allows(Role.VIEWER)  # a wall screen's token reads the wall and nothing else
    assert Role.ADMIN.allows(Role.OPERATOR)
    assert Role.OPERATOR.allows(Role.VIEWER)
    assert Role.VIEWER.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.ADMIN)


def test_token_spec_problems() -> None:
    assert token_spec_problem("x" * 16) is None
    assert token_spec_problem("x" * 15) is not None
    assert token_spec_problem("sha256:" + "a" * 64) is None
    assert token_spec_problem("sha256:" + "g" * 64) is not None


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_route_needs_a_good_enough_token(
    app_factory: AppFactory, role: Role, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the admin route reloads the defaults: data_dir ./data, admin.token there
    method, path = ROUTE_OF_ROLE[role]
    async with app_factory() as (_app, client):
        missing = await client.request(method, path)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"] == "unauthorized"
        assert "Authorization: Bearer" in missing.json()["message"]

        wrong = await client.request(method, path, headers=bearer("not-a-real-token-at-all"))
        assert wrong.status_code == 401
        assert wrong.json() == {"error": "unauthorized", "message": "invalid token"}

        basic = await client.request(method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401

        for other, token in TOKEN_OF_ROLE.items():
            answer = await client.request(method, path, headers=bearer(token))
            if other.allows(role):
                assert answer.status_code == 200, (other, answer.text)
            else:
                assert answer.status_code == 403
                assert answer.json()["error"] == "forbidden"
                assert f"needs the {role.value} role" in answer.json()["message"]


async def test_whoami_names_the_token(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/whoami", headers=bearer(OPERATOR_TOKEN))
    assert answer.json() == {"name": "operator-test", "role": "operator"}


# --- every route, classified -------------------------------------------------------------
#
# Each route is either public, opened by a signed token in its URL, checked by its own
# credentials, or needs a role (read from its dependencies). A route added later that is none
# of these fails the test below until it is classified here — on purpose.

PUBLIC_ROUTES = {
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "readiness (no secrets: tested in test_secrets.py)",
    ("GET", "/metrics"): "Prometheus scrapes it",
    ("GET", "/openapi.json"): "describes the routes, holds no data (README)",
    ("GET", "/docs"): "the same, for people",
    ("GET", "/docs/assets/{name}"): "Swagger UI's own files, for /docs",
    ("GET", "/"): "redirects to the incidents page",
    ("GET", "/login"): "the login form (no data)",
    ("POST", "/logout"): "ends the session",
    ("GET", "/static/{path:path}"): "the pages' own stylesheet, scripts and ECharts",
    ("GET", "/screen"): "the wall screen's shell (no data; its data needs a token)",
}
PUBLIC_PREFIXES: dict[str, str] = {}  # e.g. "/static": "the pages' own assets"
# HTML pages authenticate in the page dependency (app/web/deps.py): a login cookie, a bearer token,
# or a signed view link for exactly that incident. Without any they answer 401 (an HTML page
# pointing at the login form); acting needs an operator.
PAGE_ROUTES: dict[tuple[str, str], Role] = {
    ("GET", "/incidents"): Role.VIEWER,
    ("GET", "/incidents/{incident_id}"): Role.VIEWER,
    ("GET", "/incidents/{incident_id}/context"): Role.VIEWER,
    ("GET", "/traces/{trace_id}"): Role.VIEWER,
    ("GET", "/services/{name:path}"): Role.VIEWER,
    ("POST", "/incidents/{incident_id}/{action}"): Role.OPERATOR,
    ("GET", "/oncall"): Role.VIEWER,
    ("POST", "/oncall/{name}/swaps"): Role.OPERATOR,
    ("POST", "/oncall/{name}/swaps/{swap_id}/take"): Role.OPERATOR,
}
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")
SIGNED_ROUTES = {
    ("GET", "/ack/{token}"): "the one-click acknowledge page (signed, expiring link)",
    ("POST", "/ack/{token}"): "its confirmation (also ntfy's Acknowledge button, from the phone)",
    ("GET", "/api/v1/schedules/{name}/calendar.ics"): "a calendar feed: its signed, revocable URL token",
    ("GET", "/api/v1/users/{name}/calendar.ics"): "a person's calendar feed: the same",
}
OWN_CREDENTIALS = {
    ("POST", "/api/v1/alerts/alertmanager"): "Alertmanager's webhook token, basic auth or an operator token",
    (
        "POST",
        "/login",
    ): "the token typed into the login form (the session cookie is set only for a valid one)",
    (
        "POST",
        "/api/v1/alerts/twilio/{channel}/gather/{token}",
    ): "Twilio's X-Twilio-Signature, made with the channel's auth token",
}
# Routes whose role is part of their documented contract, checked against what the app declares.
DECLARED_ROLES: dict[tuple[str, str], Role] = {
    ("GET", "/api/v1/digests/{name}"): Role.VIEWER,  # a digest's figures and text; sends nothing
    ("POST", "/api/v1/digests/{name}/send"): Role.OPERATOR,  # puts it in the outbox
}
# What a route needing a token answers without one (HTML pages behind a login form may add a
# redirect to it here).
ANONYMOUS_ANSWERS = {401}
SAMPLE_PATH_VALUES = {
    "token": "1.1.forged",
    "incident_id": "1",
    "override_id": "1",
    "window_id": "1",
    "action": "ack",
    "path": "web/app.css",
    "swap_id": "1",
}


def _assert_html_is_guarded(answer: httpx.Response) -> None:
    """Every HTML answer, error pages included, carries the security headers."""
    if answer.headers.get("content-type", "").startswith("text/html"):
        missing = [h for h in SECURITY_HEADERS if h not in answer.headers]
        assert not missing, (str(answer.url), missing)
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "script-src 'self'" in answer.headers["content-security-policy"]


def _fill(path: str) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: SAMPLE_PATH_VALUES.get(m.group(1), "x"), path)


def _routes(app: FastAPI) -> list[tuple[str, str, Role | None, bool]]:
    """(method, path, required role, in the OpenAPI document) of every route the app serves."""
    found: list[tuple[str, str, Role | None, bool]] = []

    def scopes(dependant: Any) -> list[str]:
        own = list(getattr(dependant, "own_oauth_scopes", None) or [])
        return own + [scope for sub in dependant.dependencies for scope in scopes(sub)]

    def walk(routes: list[Any], prefix: str, inherited: list[str]) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router
                context = route.include_context
                extra = [s for d in (context.dependencies or []) for s in (getattr(d, "scopes", None) or [])]
                walk(route.original_router.routes, prefix + (context.prefix or ""), inherited + extra)
            elif isinstance(route, APIRoute):
                named = [Role(s) for s in scopes(route.dependant) + inherited]
                role = max(named, key=lambda r: r.rank) if named else None
                for method in sorted((route.methods or set()) - {"HEAD"}):
                    found.append((method, prefix + route.path, role, route.include_in_schema))
            elif isinstance(route, Mount):
                found.append(("MOUNT", prefix + route.path, None, False))
            else:
                for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
                    found.append((method, prefix + route.path, None, False))

    walk(list(app.routes), "", [])
    return found


async def test_every_route_is_classified_and_guarded(app_factory: AppFactory) -> None:
    """Every route in the OpenAPI document and in app.routes (HTML pages are left out of the
    document): no token → 401, a token below the route's role → 403, and the public routes are
    exactly the allowlist. The per-token rate limit is off here: this test sends each role's
    token to every route, more than any burst allows (the limit has its own tests)."""
    async with app_factory(server={"rate_limit": {"per_token_per_min": None}}) as (app, client):
        routes = _routes(app)
        document = (await client.get("/openapi.json")).json()
        documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
        served = {(m, re.sub(r":[^}]*\}", "}", p)) for m, p, _, _ in routes}
        assert documented <= served  # the walk sees everything documented
        checked_roles = 0
        for method, path, role, _ in routes:
            key = (method, path)
            if method == "MOUNT":
                assert any(path.startswith(p) for p in PUBLIC_PREFIXES), f"unclassified mount {path}"
                continue
            if key in PUBLIC_ROUTES:
                assert role is None, f"{key} is in the public allowlist but needs {role}"
                public = await client.request(method, _fill(path))
                assert public.status_code not in (401, 403), key
                _assert_html_is_guarded(public)
                continue
            anonymous = await client.request(method, _fill(path))
            _assert_html_is_guarded(anonymous)
            if key in PAGE_ROUTES:
                assert anonymous.status_code == 401, (key, anonymous.status_code)
                assert "/login" in anonymous.text, key  # the page says where to sign in
                needed = PAGE_ROUTES[key]
                for lower in (r for r in Role if r.rank < needed.rank):
                    answer = await client.request(method, _fill(path), headers=bearer(TOKENS[lower.value]))
                    _assert_html_is_guarded(answer)
                    assert answer.status_code == 403, (key, lower, answer.status_code)
                    checked_roles += 1
                continue
            if key in SIGNED_ROUTES:
                assert anonymous.status_code == 401, (key, anonymous.status_code)  # a forged token
                continue
            assert anonymous.status_code in ANONYMOUS_ANSWERS, (key, anonymous.status_code)
            if key in OWN_CREDENTIALS:
                viewer = await client.request(method, _fill(path), headers=bearer(VIEWER_TOKEN))
                assert viewer.status_code == 401, key
                continue
            assert role is not None, f"{key} needs no role and is not classified: classify it above"
            for lower in (r for r in Role if r.rank < role.rank):
                token = TOKENS.get(lower.value)
                assert token is not None, f"add a {lower.value} token to tests/harness/app.py TOKENS"
                answer = await client.request(method, _fill(path), headers=bearer(token))
                assert answer.status_code == 403, (key, lower, answer.status_code)
                checked_roles += 1
        writes = [r for r in routes if r[0] in ("POST", "PUT", "PATCH", "DELETE") and r[2] is not None]
        assert all(role is not Role.VIEWER for (m, _), role in PAGE_ROUTES.items() if m == "POST")
        assert all(
            r[2] is not None and r[2] is not Role.VIEWER for r in writes if not r[1].startswith("/grafana")
        )
        assert checked_roles >= len([w for w in writes if w[2] is not Role.VIEWER])


async def test_routes_with_a_declared_role_need_exactly_that_role(app_factory: AppFactory) -> None:
    async with app_factory() as (app, _client):
        roles = {(method, path): role for method, path, role, _ in _routes(app)}
    for key, role in DECLARED_ROLES.items():
        assert roles.get(key) is role, (key, roles.get(key))


async def test_openapi_states_each_routes_auth_requirement(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in PUBLIC:
                assert operation["security"] == []
                assert operation["description"].startswith("No token needed.")
            elif "x-auth" in operation:  # its own credentials, e.g. Alertmanager's webhook token
                assert operation["security"] == [{"HTTPBearer": []}]
                assert operation["description"].startswith("Needs ")
            else:
                role = operation["x-required-role"]
                assert role in {r.value for r in Role}
                assert operation["security"] == [{"HTTPBearer": [role]}]
                assert f"`{role}` role" in operation["description"]
                assert set(operation["responses"]) >= {"401", "403"}
    for role, (method, path) in ROUTE_OF_ROLE.items():
        assert document["paths"][path][method.lower()]["x-required-role"] == role.value
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
