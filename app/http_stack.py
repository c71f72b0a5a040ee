"""What every HTTP request crosses before its route runs and after it returns, in one ASGI pass.

Why one middleware and not one per concern: each ASGI layer costs a coroutine frame, a ``send``
wrapper (a closure per request) and a call per message, and Starlette's ``BaseHTTPMiddleware``
would add a task and two memory streams on top. Issue 13 measured the stack as the largest part
of what separated Panorama from a bare FastAPI app serving the same bytes (``bench/stack.py``
prints the census: µs of CPU per request outside the endpoint, beside the bare app). So the
request's telemetry, rate limit and security headers run here, in this order, with one ``send``
wrapper:

1. **trace context** — when the tracer provider exports spans (``OTEL_EXPORTER_OTLP_*``, or a
   test's processor), the OpenTelemetry ASGI instrumentation runs outside this middleware and
   records the server span exactly as before (minus its per-message "http send"/"http receive"
   child spans, which said nothing a server span does not). When nothing exports, a span would
   be built, filled with a dozen attributes and dropped on every request; instead the incoming
   W3C ``traceparent`` or Jaeger ``uber-trace-id`` (or a fresh trace id) is made the current
   span context without a span object behind it, so log lines and outgoing calls still carry the
   request's trace id, for the few µs of parsing a header (``observability.TraceContext``);
2. **rate limit** — a token bucket per API-token digest (``limits.RateLimiter``); a request over
   its rate is answered 429 here and never reaches routing;
3. **security headers** — precomputed byte pairs appended to the response's start message
   (``web.headers.secure``);
4. **metrics and access log** — counted and timed by route template with the labelled children
   kept (no ``labels()`` lookup per request); the access log line is formatted only when its
   level is enabled (``observability.RequestTelemetry``);
5. **direct routes** — a route whose whole work is its own (Alertmanager's webhook: it reads
   its credentials and body itself, and answers a storm) is called here, with a Starlette
   ``Request``, instead of crossing FastAPI's routing (a scan of every included router),
   exception and exit-stack middleware, dependency solving and response validation. Its errors
   are answered as everywhere (``errors.json_answer``; anything unexpected goes on to the
   outermost error handler, as from any route). The route stays an ordinary FastAPI route, so
   the OpenAPI document states it as before. Measured in a storm (``bench/alert_storm.py``,
   py-spy): FastAPI's part of the webhook's request was ~12 % of the server's GIL time, more
   than the webhook's own parsing and validation.

What it must never do: authenticate (each route's dependency does, in ``deps.py``, or a direct
route itself), read the body, or hold the answer back (every message is passed on as it comes,
so streamed reports stay streamed). Each concern keeps its own module; this one only puts them
in one pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PanoramaError, json_answer
from app.limits import RateLimiter
from app.observability import RequestTelemetry, TraceContext
from app.web.headers import secure


class HttpStack:
    def __init__(
        self,
        app: ASGIApp,
        *,
        telemetry: RequestTelemetry,
        limiter: RateLimiter,
        trace_context: TraceContext | None,
        direct: Sequence[Route] = (),
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.limiter = limiter
        self.trace_context = trace_context
        self.direct = {(method, route.path): route for route in direct for method in route.methods or ()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        trace_context = self.trace_context
        attached = trace_context.enter(scope) if trace_context is not None else None
        status = 500

        async def send_secured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = secure(message.get("headers", ()))
            await send(message)

        try:
            refusal = self.limiter.refusal(scope)
            if refusal is not None:
                for message in refusal:
                    await send_secured(message)
            elif self.direct and (route := self.direct.get((scope["method"], _path(scope)))) is not None:
                await _direct(route, scope, receive, send_secured)
            else:
                await self.app(scope, receive, send_secured)
        finally:
            self.telemetry.record(scope, status, time.perf_counter() - started)
            if trace_context is not None and attached is not None:
                trace_context.exit(attached)


def _path(scope: Scope) -> str:
    """The path routes are matched against: without the ``root_path`` it is served under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _direct(route: Route, scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = route  # as Starlette's router sets it: metrics and the access log name it
    try:
        response = await route.endpoint(Request(scope, receive))
    except PanoramaError as exc:
        response = json_answer(exc)
    await response(scope, receive, send)
