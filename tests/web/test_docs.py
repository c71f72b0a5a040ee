"""/docs is served from Panorama's own files: the page names no other origin, and Swagger UI's
files (from the pinned swagger-ui-py package, with its LICENSE) come from /docs/assets/."""

from __future__ import annotations

import re

import httpx


async def test_the_docs_page_loads_nothing_from_another_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in page.text
    assert "cdn" not in page.text.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    assert "<script>" not in page.text  # no inline script: the CSP (script-src 'self') holds
    assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text)
    assert any(a.startswith("/docs/assets/swagger-ui-bundle.js?v=") for a in assets)
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["cache-control"].endswith("immutable"), asset


async def test_swagger_ui_files_are_served_with_their_license_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    license_text = await client.get("/docs/assets/LICENSE")
    assert license_text.status_code == 200
    assert "Apache License" in license_text.text
    for name in ("swagger-editor-bundle.js", "..%2F__init__.py", "index.css"):
        assert (await client.get(f"/docs/assets/{name}")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404  # it would load a CDN
