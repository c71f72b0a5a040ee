"""Elasticsearch's REST layer: JSON bodies, URL parameters, REST-compatibility media types, answers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.elasticsearch.errors import EsError, illegal_argument

_COMPAT_RE = re.compile(r"compatible-with\s*=\s*(\d+)")


def loose_json(raw: bytes) -> Any:
    """A body as recorded for tests: JSON when it parses, else text (None when empty)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise EsError(400, "x_content_parse_exception", f"[1:1] Unexpected character: {exc}") from None
    if not isinstance(body, dict):
        raise EsError(400, "x_content_parse_exception", "[1:1] request body must be an object")
    return body


def check_params(path: str, params: Mapping[str, str], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise illegal_argument(f"request [{path}] contains unrecognized parameter: [{name}]")


def param_bool(params: Mapping[str, str], name: str, default: bool) -> bool:
    if name not in params:
        return default
    value = params[name]
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise illegal_argument(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")


def compat_version(request: Request) -> int | None:
    """The REST-compatibility version asked for (``compatible-with=8``); 400 for one ES 8 cannot serve."""
    versions = {}
    for header in ("accept", "content-type"):
        match = _COMPAT_RE.search(request.headers.get(header, ""))
        if match:
            versions[header] = int(match.group(1))
    for version in versions.values():
        if version not in (7, 8):
            reason = (
                "Compatible version must be equal or less than the current version. "
                f"Accept={request.headers.get('accept')}, "
                f"Content-Type={request.headers.get('content-type')}"
            )
            raise _media_type_error({"caused_by": {"type": "status_exception", "reason": reason}})
    if len(set(versions.values())) > 1:
        raise _media_type_error()
    return versions.get("accept") or versions.get("content-type")


def _media_type_error(extra: Mapping[str, Any] | None = None) -> EsError:
    return EsError(
        400,
        "media_type_header_exception",
        "Invalid media-type value on headers [Accept, Content-Type]",
        extra=extra,
    )


def safe_compat_version(request: Request) -> int | None:
    """:func:`compat_version` for an error answer: an unusable header gets plain JSON."""
    try:
        return compat_version(request)
    except EsError:
        return None


def respond(method: str, status: int, payload: Any, *, compat: int | None, product_header: bool) -> Response:
    """The answer: compact JSON (no body to HEAD), in the asked-for media type, ``X-elastic-product``."""
    headers = {"X-elastic-product": "Elasticsearch"} if product_header else {}
    media = f"application/vnd.elasticsearch+json;compatible-with={compat}" if compat else "application/json"
    content = b"" if method == "HEAD" else json.dumps(payload, separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=headers, media_type=media)
