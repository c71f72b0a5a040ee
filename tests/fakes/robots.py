"""Local stand-ins for the chat robots (DingTalk, WeCom, Feishu, Slack) and a generic webhook.

Each sink checks what the real service checks and answers the way it answers:

- DingTalk: ``/robot/send?access_token=``; with a secret, ``timestamp`` (ms, at most
  an hour off) and ``sign`` in the query, verified like DingTalk does (URL-decoded,
  so an unencoded ``+`` fails); optional keywords; at most 20,000 bytes; known
  ``msgtype`` and a complete ``markdown``. Errors are HTTP 200 with ``errcode``.
- WeCom: ``/cgi-bin/webhook/send?key=``; ``markdown.content`` at most 4096 bytes of
  UTF-8. Errors are HTTP 200 with ``errcode``.
- Feishu: ``/open-apis/bot/v2/hook/<id>``; a body of at most 20 KB; with a secret,
  ``timestamp`` (seconds, as a string, at most an hour off) and ``sign`` in the
  body; ``msg_type`` and, for cards, a card with elements. Success is
  ``{"code": 0, ...}`` (with the legacy ``StatusCode``); bad bodies and the rate
  limit come as HTTP 400 with a ``code``.
- Slack: ``/services/T…/B…/…``; ``text`` or ``blocks``; at most 50 blocks, 3,000
  characters a section, 150 a header. Success is ``200 ok``; errors are a plain
  word (``invalid_blocks``) with a 4xx status; over the rate limit, ``429``.
- Webhook: optional ``Authorization: Bearer``; a JSON body.

Failures on demand come from :class:`~tests.fakes.faults.FaultInjector`
(``fail_with(503)``, ``hang(10)``, ``stop()``) plus :meth:`RobotSink.fail_with_code`
(the service's own error code inside its usual answer) and a per-minute rate
limit (``rate_limit_per_min``) answered with the service's own error.
Accepted messages are in :attr:`RobotSink.messages`; every request in
:attr:`RobotSink.requests`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.faults import Failure, Fault, FaultInjector

RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Received:
    """One request as the sink saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    at: float = 0.0  # when it arrived (time.time())

    @property
    def size(self) -> int:
        return len(self.body)


class Rejected(Exception):
    """A check failed: the sink answers with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class RobotSink(FaultInjector):
    """What every sink shares: recording, faults, the rate limit. Subclasses do the checks."""

    def __init__(self, *, rate_limit_per_min: int | None = None, clock_offset_s: float = 0.0) -> None:
        super().__init__()
        self.rate_limit_per_min = rate_limit_per_min
        self.clock_offset_s = clock_offset_s
        self._requests: list[Received] = []
        self._messages: list[Received] = []
        self._accepted_at: deque[float] = deque()
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- test-side API ------------------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        """The messages the sink accepted (what the group would have shown), oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[Received]:
        """Every request, accepted or not."""
        with self._lock:
            return list(self._requests)

    def fail_with_code(
        self, code: int, message: str = "simulated", *, status: int = 200, times: int | None = None
    ) -> None:
        """Answers the next ``times`` requests with the service's error ``code`` (HTTP ``status``)."""
        self._add_fault(Fault(0.0, Failure(status, {"code": code, "message": message}), times))

    def webhook_url(self, base: str) -> str:
        """The URL to configure, with this sink's credentials, for a sink served at ``base``."""
        raise NotImplementedError

    def now(self) -> float:
        """The sink's clock: the real one, shifted by ``clock_offset_s`` (to play a skewed server)."""
        return time.time() + self.clock_offset_s

    # -- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        received = Received(
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
            at=time.time(),
        )
        with self._lock:
            self._requests.append(received)
        failure = await self.injected_failure(request)
        if failure is not None:
            if "code" in failure.detail:
                return self.error(int(failure.detail["code"]), str(failure.detail["message"]), failure.status)
            return self.http_error(failure.status)
        try:
            if request.method != "POST":
                raise Rejected(PlainTextResponse("Method Not Allowed", status_code=405))
            self.check(request, received)
        except Rejected as rejected:
            return rejected.response
        with self._lock:
            if self._over_rate_limit():
                return self.rate_limited()
            self._accepted_at.append(time.monotonic())
            self._messages.append(received)
        return self.ok()

    def _over_rate_limit(self) -> bool:
        if self.rate_limit_per_min is None:
            return False
        now = time.monotonic()
        while self._accepted_at and now - self._accepted_at[0] > RATE_WINDOW_S:
            self._accepted_at.popleft()
        return len(self._accepted_at) >= self.rate_limit_per_min

    # -- the service's own words: subclasses ----------------------------------------------------

    def check(self, request: Request, received: Received) -> None:
        """Raises :class:`Rejected` when the real service would refuse the request."""

    def ok(self) -> Response:
        raise NotImplementedError

    def error(self, code: int, message: str, status: int = 200) -> Response:
        raise NotImplementedError

    def rate_limited(self) -> Response:
        raise NotImplementedError

    def http_error(self, status: int) -> Response:
        """What the service's front (a load balancer) answers for an HTTP-level failure."""
        return PlainTextResponse(f"<html><body><h1>{status}</h1></body></html>", status_code=status)

    def reject(self, code: int, message: str, status: int = 200) -> Rejected:
        return Rejected(self.error(code, message, status))


class _ErrcodeSink(RobotSink):
    """DingTalk and WeCom: every answer is HTTP 200 with ``{"errcode", "errmsg"}``."""

    def ok(self) -> Response:
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    def error(self, code: int, message: str, status: int = 200) -> Response:
        return JSONResponse({"errcode": code, "errmsg": message}, status_code=status)


class DingTalkSink(_ErrcodeSink):
    MAX_BODY_BYTES = 20_000
    MAX_SKEW_MS = 3_600_000
    MSGTYPES = ("text", "link", "markdown", "actionCard", "feedCard")

    def __init__(
        self,
        *,
        access_token: str = "dingtalk0123456789abcdef0123456789abcdef",  # noqa: S107 (a fake's token)
        secret: str | None = None,
        keywords: Sequence[str] = (),
        rate_limit_per_min: int | None = None,
        clock_offset_s: float = 0.0,
    ) -> None:
        super().__init__(rate_limit_per_min=rate_limit_per_min, clock_offset_s=clock_offset_s)
        self.access_token = access_token
        self.secret = secret
        self.keywords = list(keywords)

    def webhook_url(self, base: str) -> str:
        return f"{base}/robot/send?access_token={self.access_token}"

    def rate_limited(self) -> Response:
        return self.error(130101, "send too fast, exceed 20 times per minute")

    def check(self, request: Request, received: Received) -> None:
        if received.path != "/robot/send" or received.query.get("access_token") != self.access_token:
            raise self.reject(300005, "token is not exist")
        if self.secret is not None:
            self._check_sign(received.query)
        if received.size > self.MAX_BODY_BYTES:
            raise self.reject(460101, f"message too long, exceed {self.MAX_BODY_BYTES} bytes")
        data = received.json
        is_json = received.headers.get("content-type", "").startswith("application/json")
        if not is_json or not isinstance(data, dict):
            raise self.reject(40035, "缺少参数 json")
        msgtype = data.get("msgtype")
        if msgtype not in self.MSGTYPES:
            raise self.reject(400105, "不支持的消息类型")
        if msgtype == "markdown":
            markdown = data.get("markdown")
            if not isinstance(markdown, dict) or not _nonempty_str(markdown.get("title")):
                raise self.reject(40035, "缺少参数 markdown.title")
            if not _nonempty_str(markdown.get("text")):
                raise self.reject(40035, "缺少参数 markdown.text")
        at = data.get("at", {})
        mobiles = at.get("atMobiles", []) if isinstance(at, dict) else None
        if not isinstance(mobiles, list) or not all(isinstance(m, str) for m in mobiles):
            raise self.reject(40035, "参数错误 at")
        if self.keywords and not any(k in json.dumps(data, ensure_ascii=False) for k in self.keywords):
            raise self.reject(310000, "keywords not in content")

    def _check_sign(self, query: dict[str, str]) -> None:
        raw, sign = query.get("timestamp", ""), query.get("sign", "")
        if not raw.isdigit() or abs(self.now() * 1000 - int(raw)) > self.MAX_SKEW_MS:
            raise self.reject(310000, "invalid timestamp")
        assert self.secret is not None
        digest = hmac.new(self.secret.encode(), f"{raw}\n{self.secret}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(sign, base64.b64encode(digest).decode()):
            raise self.reject(310000, "sign not match")

    def markdown_text(self, index: int = -1) -> str:
        """The markdown text of an accepted message."""
        return str(self.messages[index].json["markdown"]["text"])


class WeComSink(_ErrcodeSink):
    MAX_CONTENT_BYTES = 4096
    MSGTYPES = ("text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card")

    def __init__(
        self,
        *,
        key: str = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
        rate_limit_per_min: int | None = None,
    ) -> None:
        super().__init__(rate_limit_per_min=rate_limit_per_min)
        self.key = key

    def webhook_url(self, base: str) -> str:
        return f"{base}/cgi-bin/webhook/send?key={self.key}"

    def rate_limited(self) -> Response:
        return self.error(45009, "api freq out of limit")

    def check(self, request: Request, received: Received) -> None:
        if received.path != "/cgi-bin/webhook/send" or received.query.get("key") != self.key:
            raise self.reject(93000, "invalid webhook url, hint: [sink]")
        data = received.json
        if not isinstance(data, dict):
            raise self.reject(40058, "invalid Request Parameter")
        msgtype = data.get("msgtype")
        if msgtype not in self.MSGTYPES:
            raise self.reject(40008, "invalid message type")
        if msgtype in ("markdown", "markdown_v2"):
            content = data.get(msgtype, {}).get("content") if isinstance(data.get(msgtype), dict) else None
            if not _nonempty_str(content):
                raise self.reject(44004, "empty content")
            assert isinstance(content, str)
            if len(content.encode()) > self.MAX_CONTENT_BYTES:
                raise self.reject(40058, f"{msgtype}.content exceed max length {self.MAX_CONTENT_BYTES}")

    def content(self, index: int = -1) -> str:
        return str(self.messages[index].json["markdown"]["content"])


class FeishuSink(RobotSink):
    MAX_BODY_BYTES = 20 * 1024
    MAX_SKEW_S = 3600
    MSG_TYPES = ("text", "post", "image", "share_chat", "interactive")

    def __init__(
        self,
        *,
        hook_id: str = "0f8c2a4e-5b6d-4c3a-9e1f-7a8b9c0d1e2f",
        secret: str | None = None,
        keywords: Sequence[str] = (),
        rate_limit_per_min: int | None = None,
        clock_offset_s: float = 0.0,
    ) -> None:
        super().__init__(rate_limit_per_min=rate_limit_per_min, clock_offset_s=clock_offset_s)
        self.hook_id = hook_id
        self.secret = secret
        self.keywords = list(keywords)

    def webhook_url(self, base: str) -> str:
        return f"{base}/open-apis/bot/v2/hook/{self.hook_id}"

    def ok(self) -> Response:
        return JSONResponse(
            {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
        )

    def error(self, code: int, message: str, status: int = 200) -> Response:
        return JSONResponse({"code": code, "data": {}, "msg": message}, status_code=status)

    def rate_limited(self) -> Response:
        return self.error(11232, "frequency limited psm[lark.oapi.app_platform_runtime]", 400)

    def check(self, request: Request, received: Received) -> None:
        if received.path != f"/open-apis/bot/v2/hook/{self.hook_id}":
            raise self.reject(19001, "param invalid: incoming webhook access token invalid", 400)
        if received.size > self.MAX_BODY_BYTES:
            raise self.reject(9499, "Bad Request", 400)
        data = received.json
        if not isinstance(data, dict):
            raise self.reject(9499, "Bad Request", 400)
        if self.secret is not None:
            self._check_sign(data)
        msg_type = data.get("msg_type")
        if msg_type not in self.MSG_TYPES:
            raise self.reject(9499, "Bad Request", 400)
        if msg_type == "interactive" and not _valid_card(data.get("card")):
            raise self.reject(9499, "Bad Request", 400)
        if self.keywords and not any(k in json.dumps(data, ensure_ascii=False) for k in self.keywords):
            raise self.reject(19024, "Key Words Not Found")

    def _check_sign(self, data: dict[str, Any]) -> None:
        raw, sign = data.get("timestamp"), data.get("sign")
        if not isinstance(raw, str) or not raw.isdigit() or abs(self.now() - int(raw)) > self.MAX_SKEW_S:
            raise self.reject(19021, "sign match fail or timestamp is not within one hour from current time")
        assert self.secret is not None
        digest = hmac.new(f"{raw}\n{self.secret}".encode(), b"", hashlib.sha256).digest()
        if not isinstance(sign, str) or not hmac.compare_digest(sign, base64.b64encode(digest).decode()):
            raise self.reject(19021, "sign match fail or timestamp is not within one hour from current time")

    def card(self, index: int = -1) -> dict[str, Any]:
        card: dict[str, Any] = self.messages[index].json["card"]
        return card

    def card_text(self, index: int = -1) -> str:
        """Every lark_md text of an accepted card, joined."""
        elements = self.card(index)["elements"]
        return "\n".join(element["text"]["content"] for element in elements if element.get("tag") == "div")


class SlackSink(RobotSink):
    MAX_BLOCKS = 50
    MAX_SECTION_CHARS = 3000
    MAX_HEADER_CHARS = 150
    BLOCK_TYPES = ("section", "header", "context", "actions", "divider", "image", "rich_text", "file")

    def __init__(
        self,
        *,
        path: str = "/services/T0PANORAMA/B0PANORAMA/xoxSinkToken0123456789abc",
        rate_limit_per_min: int | None = None,
    ) -> None:
        super().__init__(rate_limit_per_min=rate_limit_per_min)
        self.path = path

    def webhook_url(self, base: str) -> str:
        return f"{base}{self.path}"

    def ok(self) -> Response:
        return PlainTextResponse("ok", media_type="text/html")

    def error(self, code: int, message: str, status: int = 200) -> Response:
        """Slack has no codes: ``message`` is its error word, sent with ``status`` (400 when given 200)."""
        return PlainTextResponse(message, status_code=max(status, 400), media_type="text/html")

    def rate_limited(self) -> Response:
        return PlainTextResponse("rate_limited", status_code=429, headers={"Retry-After": "1"})

    def http_error(self, status: int) -> Response:
        return PlainTextResponse("internal_error" if status >= 500 else "invalid_payload", status_code=status)

    def check(self, request: Request, received: Received) -> None:
        if received.path != self.path:
            raise Rejected(PlainTextResponse("no_service", status_code=404))
        data = received.json
        if not isinstance(data, dict):
            raise Rejected(PlainTextResponse("invalid_payload", status_code=400))
        blocks = data.get("blocks")
        if not _nonempty_str(data.get("text")) and not blocks:
            raise Rejected(PlainTextResponse("no_text", status_code=400))
        if blocks is not None and not _valid_blocks(blocks):
            raise Rejected(PlainTextResponse("invalid_blocks", status_code=400))

    def blocks(self, index: int = -1) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = self.messages[index].json["blocks"]
        return blocks

    def all_text(self, index: int = -1) -> str:
        """The fallback text and every block's text of an accepted message."""
        data = self.messages[index].json
        return "\n".join([data["text"], *(_block_text(block) for block in data["blocks"])])


class WebhookSink(RobotSink):
    """A generic JSON receiver, optionally guarded by a bearer token."""

    def __init__(self, *, token: str | None = None, path: str = "/hooks/panorama") -> None:
        super().__init__()
        self.token = token
        self.path = path

    def webhook_url(self, base: str) -> str:
        return f"{base}{self.path}"

    def ok(self) -> Response:
        return JSONResponse({"status": "received"})

    def error(self, code: int, message: str, status: int = 200) -> Response:
        return JSONResponse({"error": message, "code": code}, status_code=status)

    def rate_limited(self) -> Response:
        return JSONResponse({"error": "too many requests"}, status_code=429)

    def check(self, request: Request, received: Received) -> None:
        if self.token is not None and received.headers.get("authorization") != f"Bearer {self.token}":
            raise Rejected(JSONResponse({"error": "unauthorized"}, status_code=401))
        if received.path != self.path:
            raise Rejected(JSONResponse({"error": "not found"}, status_code=404))
        if not isinstance(received.json, dict):
            raise Rejected(JSONResponse({"error": "expected a JSON object"}, status_code=400))


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _valid_card(card: object) -> bool:
    """A card of either schema: 1.0 (``elements``) or 2.0 (``body.elements``), or a template."""
    if not isinstance(card, dict):
        return False
    if card.get("type") == "template":
        return isinstance(card.get("data"), dict)
    body = card.get("body")
    elements = card.get("elements", body.get("elements") if isinstance(body, dict) else None)
    if not isinstance(elements, list) or not all(isinstance(e, dict) and "tag" in e for e in elements):
        return False
    header = card.get("header")
    return header is None or (isinstance(header, dict) and isinstance(header.get("title"), dict))


def _valid_blocks(blocks: object) -> bool:
    if not isinstance(blocks, list) or len(blocks) > SlackSink.MAX_BLOCKS:
        return False
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in SlackSink.BLOCK_TYPES:
            return False
        text = block.get("text")
        if block["type"] == "header":
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                return False
            if not 0 < len(str(text.get("text", ""))) <= SlackSink.MAX_HEADER_CHARS:
                return False
        if block["type"] == "section" and text is not None:
            if not isinstance(text, dict) or text.get("type") not in ("plain_text", "mrkdwn"):
                return False
            if not 0 < len(str(text.get("text", ""))) <= SlackSink.MAX_SECTION_CHARS:
                return False
        if block["type"] == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 25:
                return False
            for element in elements:
                if element.get("type") == "button" and len(element.get("text", {}).get("text", "")) > 75:
                    return False
    return True


def _block_text(block: dict[str, Any]) -> str:
    if isinstance(block.get("text"), dict):
        return str(block["text"].get("text", ""))
    return " ".join(str(e.get("text", "")) for e in block.get("elements", []) if isinstance(e, dict))
