"""Following a webhook's 202 answer through the real API until its journal row is applied
(``GET /api/v1/alerts/intake/{id}``): what a test needs before it reads the incident it caused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.harness.app import POLL_TOKEN, bearer

FIRST_POLL_S = 0.01  # then 1.5× longer each time, up to LAST_POLL_S (the API's rate limit counts)
LAST_POLL_S = 0.25


def _url(answer: httpx.Response) -> str:
    assert answer.status_code == 202, f"the webhook answered {answer.status_code}: {answer.text}"
    url: str = answer.json()["url"]
    return url


def _settled(url: str, status: httpx.Response) -> dict[str, Any] | None:
    """The row's outcome once it is applied or failed; None while it is queued (or rate limited)."""
    if status.status_code == 429:  # the token's rate limit: ask again when it says
        return None
    assert status.status_code == 200, f"{url}: {status.status_code} {status.text}"
    found: dict[str, Any] = status.json()
    return None if found["status"] == "queued" else found


def _pause(status: httpx.Response, pause: float) -> float:
    """The next poll's pause. Over the poll token's rate limit, ``Retry-After`` (whole seconds, at
    least 1) is far longer than the bucket takes to give the next request (a tenth of a second at
    the default rate): ask again after LAST_POLL_S, which a refused poll does not cost."""
    return (
        min(float(status.headers.get("retry-after", 1)), LAST_POLL_S) if status.status_code == 429 else pause
    )


async def settled(
    client: httpx.AsyncClient,
    answer: httpx.Response,
    *,
    base: str = "",
    token: str = POLL_TOKEN,
    timeout_s: float = 20.0,
) -> dict[str, Any]:
    """Follows the webhook's answer until its row is applied or failed; the row's outcome as the API
    tells it. ``base``: the server's URL when ``client`` has no base URL; ``token``: one that may read
    (by default the harness's own, see :data:`tests.harness.app.POLL_TOKEN`)."""
    return await row_settled(client, base + _url(answer), token=token, timeout_s=timeout_s)


async def row_settled(
    client: httpx.AsyncClient, url: str, *, token: str = POLL_TOKEN, timeout_s: float = 20.0
) -> dict[str, Any]:
    """:func:`settled` for a journal row known by its status URL (``/api/v1/alerts/intake/{id}``),
    e.g. one a test journaled itself as a crashed replica would have left it."""
    deadline = time.monotonic() + timeout_s
    pause = FIRST_POLL_S
    while True:
        status = await client.get(url, headers=bearer(token))
        found = _settled(url, status)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout_s:g}s for {url} to be applied")
        await asyncio.sleep(_pause(status, pause))
        pause = min(pause * 1.5, LAST_POLL_S)


def _incident(found: dict[str, Any]) -> int | None:
    if found["status"] == "failed":
        raise AssertionError(f"journal row {found['id']} failed: {found['error']}")
    incident: int | None = found["incident_id"]
    return incident


async def applied(client: httpx.AsyncClient, answer: httpx.Response, **options: Any) -> int | None:
    """Waits until the webhook answered by ``answer`` is applied (see :func:`settled`); the incident
    it opened or updated (None: it changed none). A failed row fails the test."""
    return _incident(await settled(client, answer, **options))


async def incident_of(client: httpx.AsyncClient, answer: httpx.Response, **options: Any) -> int:
    """:func:`applied`, for a webhook that must have opened or updated an incident."""
    incident = await applied(client, answer, **options)
    assert incident is not None, f"{answer.json()['url']} was applied without changing an incident"
    return incident


def applied_sync(
    client: httpx.Client,
    answer: httpx.Response,
    *,
    base: str = "",
    token: str = POLL_TOKEN,
    timeout_s: float = 30.0,
) -> int | None:
    """:func:`applied` for a synchronous client (tests driving a server process)."""
    url = base + _url(answer)
    deadline = time.monotonic() + timeout_s
    pause = FIRST_POLL_S
    while True:
        status = client.get(url, headers=bearer(token))
        found = _settled(url, status)
        if found is not None:
            return _incident(found)
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout_s:g}s for {url} to be applied")
        time.sleep(_pause(status, pause))
        pause = min(pause * 1.5, LAST_POLL_S)
