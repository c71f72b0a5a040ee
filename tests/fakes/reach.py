"""Faithful stand-ins for the services that reach a person: ntfy's publish API, Alibaba Cloud's
SMS and voice APIs, and Twilio's REST API (Messages, Calls). Each checks what the real service
checks and answers the way it answers; each records what it accepted.

- **ntfy**: ``POST /`` with a JSON body (``topic`` required, ``message``, ``title``, ``priority``
  1-5, ``tags``, ``click``, at most three ``actions``, an ``http`` action needing a ``url``), or
  ``POST /<topic>`` with the message as the body; with ``token`` set, ``Authorization: Bearer``
  must carry it (else 401/403 ``{code, http, error}`` as ntfy answers). 200 with the message
  (``id``, ``time``, ``event: message``, ``topic``, …).
- **Alibaba Cloud** (RPC, 2017-05-25): every request's ``Signature`` is recomputed from the
  other parameters and the account's secret (HMAC-SHA1, percent-encoding as documented); a wrong
  one is HTTP 400 ``SignatureDoesNotMatch``; ``SignatureNonce`` may not be reused; ``Timestamp``
  within 15 minutes. ``SendSms`` checks ``PhoneNumbers``, ``SignName``, ``TemplateCode`` and a
  JSON ``TemplateParam``; ``SingleCallByTts`` answers a ``CallId``; ``QueryCallDetailByCallId``
  answers ``Data`` as a JSON string whose ``state`` the test chose (``200000``: listened).
- **Twilio**: basic auth with the account's SID and auth token (else 401, code 20003);
  ``Messages.json`` needs ``To``, ``From``, ``Body`` (201, ``status: queued``); ``Calls.json`` needs
  ``To``, ``From`` and ``Twiml`` or ``Url`` (201, ``status: queued``); ``GET Calls/<sid>.json`` moves
  the call through ringing to the outcome the test chose (``completed``, ``no-answer``, ``busy``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Recorder:
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.received.append(item)

    @property
    def items(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)


class NtfyServer(Recorder):
    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token
        self.ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/{topic:path}", self._publish, methods=["POST", "PUT"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def _error(self, status: int, code: int, text: str) -> JSONResponse:
        return JSONResponse({"code": code, "http": status, "error": text}, status_code=status)

    async def _publish(self, request: Request) -> Response:
        if self.token is not None:
            header = request.headers.get("authorization", "")
            if not header:
                return self._error(403, 40301, "forbidden")
            if header != f"Bearer {self.token}":
                return self._error(401, 40101, "unauthorized")
        raw = await request.body()
        topic = request.path_params["topic"]
        if topic:
            body: dict[str, Any] = {"topic": topic, "message": raw.decode()}
            for header in ("title", "priority", "tags", "click"):
                if header in request.headers:
                    body[header] = request.headers[header]
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                return self._error(400, 40024, "invalid request: request body must be message JSON")
            if not isinstance(body, dict) or not body.get("topic"):
                return self._error(400, 40009, "invalid request: topic invalid")
        priority = int(body.get("priority", 3))
        if not 1 <= priority <= 5:
            return self._error(400, 40007, "invalid priority")
        actions = body.get("actions", [])
        if len(actions) > 3:
            return self._error(400, 40018, "invalid request: actions invalid, too many actions")
        for action in actions:
            if action.get("action") not in ("view", "http", "broadcast") or not action.get("label"):
                return self._error(400, 40018, "invalid request: actions invalid")
            if action["action"] in ("view", "http") and not action.get("url"):
                return self._error(400, 40018, "invalid request: actions invalid, url required")
        self.add(body)
        message: dict[str, Any] = {
            "id": f"msg{next(self.ids)}",
            "time": int(time.time()),
            "event": "message",
            **{k: body[k] for k in ("topic", "message", "title", "tags", "click", "actions") if k in body},
            "priority": priority,
        }
        return JSONResponse(message)


def aliyun_percent(value: str) -> str:
    return quote(value, safe="~")


def aliyun_signature(secret: str, method: str, params: dict[str, str]) -> str:
    """Recomputed here from Alibaba's documentation (not Panorama's code)."""
    pairs = sorted((aliyun_percent(k), aliyun_percent(v)) for k, v in params.items())
    canonical = "&".join(f"{k}={v}" for k, v in pairs)
    string_to_sign = method + "&" + aliyun_percent("/") + "&" + aliyun_percent(canonical)
    return base64.b64encode(
        hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    ).decode()


class AliyunServer(Recorder):
    def __init__(self, access_key_id: str, secret: str, call_state: str | None = "200000") -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.secret = secret
        self.call_state = call_state  # what QueryCallDetailByCallId says; None: no record yet
        self.nonces: set[str] = set()
        self.calls: dict[str, str] = {}
        self.ids = itertools.count(1000)
        self.app = Starlette(routes=[Route("/", self._rpc, methods=["GET", "POST"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def _error(self, status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse(
            {"RequestId": "FAKE-REQ", "Code": code, "Message": message, "HostId": "fake"}, status_code=status
        )

    async def _rpc(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        given = params.pop("Signature", "")
        for name in ("AccessKeyId", "Action", "SignatureMethod", "SignatureNonce", "Timestamp", "Version"):
            if not params.get(name):
                return self._error(400, "MissingParameter", f"{name} is mandatory for this action.")
        if params["AccessKeyId"] != self.access_key_id:
            return self._error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if not hmac.compare_digest(given, aliyun_signature(self.secret, request.method, params)):
            return self._error(400, "SignatureDoesNotMatch", "Specified signature is not matched.")
        if params["SignatureNonce"] in self.nonces:
            return self._error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.nonces.add(params["SignatureNonce"])
        stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - stamp).total_seconds()) > 900:
            return self._error(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        action = params["Action"]
        self.add(params)
        if action == "SendSms":
            for name in ("PhoneNumbers", "SignName", "TemplateCode", "TemplateParam"):
                if not params.get(name):
                    return self._error(400, "MissingParameter", f"{name} is mandatory for this action.")
            try:
                json.loads(params["TemplateParam"])
            except ValueError:
                return JSONResponse({"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON参数不合法"})
            return JSONResponse(
                {"Code": "OK", "Message": "OK", "BizId": f"{next(self.ids)}^0", "RequestId": "R"}
            )
        if action == "SingleCallByTts":
            for name in ("CalledNumber", "TtsCode"):
                if not params.get(name):
                    return self._error(400, "MissingParameter", f"{name} is mandatory for this action.")
            call_id = f"{next(self.ids)}^{next(self.ids)}"
            self.calls[call_id] = params["CalledNumber"]
            return JSONResponse({"Code": "OK", "Message": "OK", "CallId": call_id, "RequestId": "R"})
        if action == "QueryCallDetailByCallId":
            if params.get("CallId") not in self.calls or params.get("ProdId") != "11000000300006":
                return JSONResponse({"Code": "OK", "Message": "OK", "Data": None, "RequestId": "R"})
            if self.call_state is None:
                return JSONResponse({"Code": "OK", "Message": "OK", "Data": None, "RequestId": "R"})
            data = {"callee": self.calls[params["CallId"]], "state": self.call_state, "duration": 12}
            return JSONResponse({"Code": "OK", "Message": "OK", "Data": json.dumps(data), "RequestId": "R"})
        return self._error(404, "InvalidAction.NotFound", f"Specified api is not found: {action}")


class TwilioServer(Recorder):
    def __init__(self, account_sid: str, auth_token: str, outcome: str = "completed") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.outcome = outcome  # what a placed call ends as
        self.calls: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        base = "/2010-04-01/Accounts/{sid}"
        self.app = Starlette(
            routes=[
                Route(base + "/Messages.json", self._message, methods=["POST"]),
                Route(base + "/Calls.json", self._call, methods=["POST"]),
                Route(base + "/Calls/{call}.json", self._read_call, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status_code=status,
        )

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return (
            request.path_params["sid"] == self.account_sid
            and request.headers.get("authorization", "") == f"Basic {expected}"
        )

    async def _form(self, request: Request) -> dict[str, str]:
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))

    async def _message(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        form = await self._form(request)
        if not form.get("To", "").startswith("+"):
            return self._error(400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number.")
        if not form.get("From") or not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        self.add({"kind": "sms", **form})
        sid = f"SM{next(self.ids):032x}"
        return JSONResponse(
            {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]}, status_code=201
        )

    async def _call(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        form = await self._form(request)
        if not form.get("To", "").startswith("+") or not form.get("From"):
            return self._error(400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number.")
        if not form.get("Twiml") and not form.get("Url"):
            return self._error(400, 21205, "Url or Twiml parameter is required.")
        sid = f"CA{next(self.ids):032x}"
        self.calls[sid] = {"reads": 0, **form}
        self.add({"kind": "call", "sid": sid, **form})
        return JSONResponse({"sid": sid, "status": "queued", "to": form["To"]}, status_code=201)

    async def _read_call(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.path_params["call"])
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        call["reads"] += 1
        status = "ringing" if call["reads"] == 1 else self.outcome
        return JSONResponse({"sid": request.path_params["call"], "status": status, "to": call["To"]})


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """How Twilio signs its requests (from its security documentation)."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()
