"""The plumbing every HTTP backend client shares.

One httpx.AsyncClient per backend, created in the app's lifespan and closed at
shutdown; per-call timeouts from the config; bounded retries with exponential
backoff and jitter for idempotent reads; every failure turned into a
:class:`BackendError` naming the backend; every attempt reported to an observer
(the service's own ``/metrics``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import httpx

from app.backends.errors import BackendError, BackendErrorKind
from app.config import BackendSettings

T = TypeVar("T")

MAX_BACKOFF_S = 2.0
ERROR_TEXT_LIMIT = 500


class CallObserver(Protocol):
    """Told about every attempt: which backend, how it ended (``ok`` or an error kind), how long."""

    def __call__(self, backend: str, outcome: str, seconds: float) -> None: ...


def ignore_call(backend: str, outcome: str, seconds: float) -> None:
    """The observer used when nobody listens."""


@dataclass(frozen=True)
class BackendStatus:
    """A backend's answer to a readiness probe."""

    name: str
    configured: bool
    ok: bool
    latency_ms: float | None = None
    version: str | None = None
    url: str | None = None
    error: str | None = None


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff_s: float,
) -> T:
    """Runs ``call``; when it raises a retryable BackendError, waits and tries again.

    Waits are exponential with full jitter (``uniform(0, backoff * 2**attempt)``,
    capped), so that replicas retrying together do not hammer a recovering backend.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except BackendError as exc:
            if attempt >= retries or not exc.retryable:
                raise
            delay = min(MAX_BACKOFF_S, backoff_s * (2**attempt))
            await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not crypto
            attempt += 1


def build_http_client(
    settings: BackendSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An httpx client for ``settings.url`` with its timeouts, TLS and auth."""
    assert settings.url is not None, "build_http_client needs a configured backend"
    auth: httpx.Auth | None = None
    all_headers = {"User-Agent": "panorama", **(headers or {})}
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = httpx.BasicAuth(settings.username, password)
    elif settings.bearer_token is not None:
        all_headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
    verify: Any = settings.ca_file if settings.ca_file else settings.tls_verify
    return httpx.AsyncClient(
        base_url=settings.url + "/",
        timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
        auth=auth,
        headers=all_headers,
        verify=verify,
        transport=transport,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )


class HttpBackend:
    """Base class of the httpx-based clients (Prometheus, Jaeger).

    Subclasses set ``name`` and may override :meth:`error_for_response` to pull
    the backend's own error message out of a failed answer.
    """

    name: ClassVar[str]

    def __init__(
        self,
        settings: BackendSettings,
        *,
        observer: CallObserver = ignore_call,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.http = build_http_client(settings, transport=transport)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        idempotent: bool = True,
        passthrough: frozenset[int] = frozenset(),
        retries: int | None = None,
    ) -> httpx.Response:
        """Sends one request (retrying idempotent ones) and returns a 2xx answer.

        Answers whose status is in ``passthrough`` are returned too, for the
        caller to interpret (e.g. Jaeger's 404 for an unknown trace).
        """
        attempts = (self.settings.retries if retries is None else retries) if idempotent else 0

        async def once() -> httpx.Response:
            return await self._send_once(method, path, params, data, json, timeout, passthrough)

        return await with_retries(once, retries=attempts, backoff_s=self.settings.retry_backoff_s)

    async def _send_once(
        self,
        method: str,
        path: str,
        params: Any,
        data: Any,
        json: Any,
        timeout: float | None,
        passthrough: frozenset[int],
    ) -> httpx.Response:
        started = time.perf_counter()
        outcome = "ok"
        try:
            kwargs: dict[str, Any] = {}
            if timeout is not None:
                kwargs["timeout"] = httpx.Timeout(timeout, connect=self.settings.connect_timeout_s)
            try:
                response = await self.http.request(
                    method, path.lstrip("/"), params=params, data=data, json=json, **kwargs
                )
            except httpx.HTTPError as exc:
                raise self.error_for_exception(exc) from exc
            if response.is_success or response.status_code in passthrough:
                return response
            raise self.error_for_response(response)
        except BackendError as exc:
            outcome = exc.kind.value
            raise
        finally:
            self.observer(self.name, outcome, time.perf_counter() - started)

    def error_for_exception(self, exc: httpx.HTTPError) -> BackendError:
        """Maps a transport failure (no answer at all) onto a BackendError."""
        where = self.settings.display_url
        if isinstance(exc, httpx.ConnectTimeout):
            return self.error(BackendErrorKind.UNREACHABLE, f"connecting to {where} timed out")
        if isinstance(exc, httpx.TimeoutException):
            return self.error(
                BackendErrorKind.TIMEOUT, f"no answer from {where} in time ({type(exc).__name__})"
            )
        if isinstance(exc, httpx.TransportError):
            reason = str(exc) or type(exc).__name__
            return self.error(BackendErrorKind.UNREACHABLE, f"cannot reach {where}: {reason}")
        return self.error(BackendErrorKind.BAD_RESPONSE, f"{type(exc).__name__}: {exc}")

    def error_for_response(self, response: httpx.Response) -> BackendError:
        """Maps a non-2xx answer onto a BackendError; subclasses add the backend's own message."""
        return self.error(
            kind_for_status(response.status_code),
            f"HTTP {response.status_code}: {response_excerpt(response)}",
            status=response.status_code,
        )

    def error(self, kind: BackendErrorKind, message: str, *, status: int | None = None) -> BackendError:
        return BackendError(self.name, kind, message, status=status)

    def decode_json(self, response: httpx.Response) -> Any:
        """The answer's JSON body, or a BAD_RESPONSE error saying what came instead."""
        try:
            return response.json()
        except ValueError:
            raise self.error(
                BackendErrorKind.BAD_RESPONSE,
                f"expected JSON, got {response.headers.get('content-type', 'no content type')}: "
                f"{response_excerpt(response)}",
                status=response.status_code,
            ) from None


def kind_for_status(status: int) -> BackendErrorKind:
    if status in (401, 403):
        return BackendErrorKind.UNAUTHORIZED
    if status == 504:
        return BackendErrorKind.TIMEOUT
    if status == 429:
        return BackendErrorKind.BAD_RESPONSE
    if 400 <= status < 500:
        return BackendErrorKind.BAD_QUERY
    return BackendErrorKind.BAD_RESPONSE


def response_excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    if len(text) > ERROR_TEXT_LIMIT:
        text = text[:ERROR_TEXT_LIMIT] + "…"
    return text or "(empty body)"


async def timed_probe(
    name: str,
    settings: BackendSettings,
    check: Callable[[], Awaitable[str | None]],
    *,
    timeout_s: float,
) -> BackendStatus:
    """Runs a readiness ``check`` (returning the backend's version, if it tells) within ``timeout_s``."""
    started = time.perf_counter()
    try:
        version = await asyncio.wait_for(check(), timeout=timeout_s)
    except BackendError as exc:
        return BackendStatus(
            name, True, False, _elapsed_ms(started), url=settings.display_url, error=exc.message
        )
    except TimeoutError:
        return BackendStatus(
            name,
            True,
            False,
            _elapsed_ms(started),
            url=settings.display_url,
            error=f"no answer within {timeout_s:g}s",
        )
    return BackendStatus(name, True, True, _elapsed_ms(started), version=version, url=settings.display_url)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
