"""Tokens and roles, on the token registry and on real routes of each role."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest

from app.security import Principal, Role, TokenRegistry, token_spec_problem
from tests.harness.app import ADMIN_TOKEN, OPERATOR_TOKEN, SCREEN_TOKEN, VIEWER_TOKEN, AppFactory, bearer

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
async def test_each_role_route_needs_a_good_enough_token(app_factory: AppFactory, role: Role) -> None:
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


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_route_but_the_public_ones_needs_a_token(app_factory: AppFactory) -> None:
    """Guards every route added later: none may forget its role dependency."""
    async with app_factory() as (_app, client):
        document = (await client.get("/openapi.json")).json()
        checked = 0
        for path, operations in document["paths"].items():
            for method in operations:
                answer = await client.request(method.upper(), _fill(path))
                if path in PUBLIC:
                    assert answer.status_code != 401, path
                else:
                    assert answer.status_code == 401, (method, path, answer.status_code)
                    checked += 1
        assert checked >= len(ROUTE_OF_ROLE)
        for path in ("/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200


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
