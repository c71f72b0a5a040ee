"""Posting a JSON body to a webhook, and turning what went wrong into a :class:`SendResult`.

The rule, as in Alertmanager's notifiers: network errors, timeouts, 408/425/429 and
5xx are retryable; any other answer is final. What the robots say inside an
HTTP 200 is the channel module's business. Robot URLs carry their access token,
so no detail ever contains the URL (or any long piece of it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from app.alerts.channels.base import SendResult
from app.alerts.failures import failure

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
DETAIL_CHARS = 300
_RETRYABLE_STATUS = {408, 425, 429}
_SECRET_MIN_CHARS = 8


@dataclass(frozen=True)
class Answer:
    """The webhook's HTTP answer: status, body text and the body as JSON when it is JSON."""

    status: int
    text: str
    json: Any
    headers: Mapping[str, str]


def encode(payload: Any) -> bytes:
    """Compact UTF-8 JSON: the bytes whose size the robots' limits count."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS or 500 <= status <= 599


def status_failure(channel: str, answer: Answer, secrets: Iterable[str] = ()) -> SendResult:
    """A non-success HTTP status, classified; redirects are final (they are not followed)."""
    said = redact(answer.text, secrets)
    if 300 <= answer.status <= 399:
        detail = (
            f"{channel} answered HTTP {answer.status} (a redirect, not followed): configure the final URL"
        )
        problem = failure("redirect", status=answer.status)
    else:
        detail = f"{channel} answered HTTP {answer.status}" + (f": {said}" if said else "")
        problem = failure("http_status", said, status=answer.status)
    return SendResult.failure(
        detail, retryable=retryable_status(answer.status), status=answer.status, problem=problem
    )


async def post_json(
    http: httpx.AsyncClient,
    channel: str,
    url: str,
    body: bytes,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> Answer | SendResult:
    """POSTs ``body``; the answer, or the failure when no answer came."""
    hidden = [*secrets, *url_secrets(url)]
    try:
        response = await http.post(
            url,
            content=body,
            headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
            timeout=timeout,
        )
    except httpx.TimeoutException as exc:
        return SendResult.failure(
            f"{channel}: no answer within {timeout:g}s ({type(exc).__name__})",
            retryable=True,
            timeout=True,
            problem=failure("timeout", seconds=timeout),
        )
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        said = redact(str(exc), hidden)
        return SendResult.failure(
            f"{channel}: bad URL: {said}", retryable=False, problem=failure("bad_url", said)
        )
    except httpx.TransportError as exc:
        reason = redact(str(exc), hidden) or type(exc).__name__
        return SendResult.failure(
            f"{channel}: network error: {reason}", retryable=True, problem=failure("network", reason)
        )
    text = response.text
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return Answer(response.status_code, text, parsed, response.headers)


def url_secrets(url: str) -> list[str]:
    """The parts of a webhook URL that are its credentials: query values and long path segments."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [url]
    found += [value for _, value in parse_qsl(parts.query) if len(value) >= _SECRET_MIN_CHARS]
    found += [segment for segment in parts.path.split("/") if len(segment) >= 2 * _SECRET_MIN_CHARS]
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` cut to a readable length, with every secret in it replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"
