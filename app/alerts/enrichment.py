"""Where to look, added to a page when the delivery worker renders it: the service's top error log
lines of the alert's window (grouped by message pattern), its slowest and failed traces, and links
to its Grafana dashboard and service page.

It is fetched through the correlation feature's service overview (one home for those figures),
outside any database transaction, and bounded by ``alerts.enrich_timeout``: each backend gets that
long on its own, so a slow Elasticsearch costs the logs but not the traces, and the page goes out
on time saying what is missing. Only channels that show it ask for it (not SMS, calls or push).
A fetched context stays with the outbox row, so a retry sends the same page without asking again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.channels.base import ErrorLine, Notification, PageContext, TraceLink
from app.backends.errors import BackendError
from app.backends.registry import Backends
from app.config import Settings
from app.correlation import service as correlation
from app.correlation.errors import BackendsFailed
from app.correlation.schemas import ServiceOverview, TraceSummary
from app.web import auth as web_auth

log = logging.getLogger("panorama.alerts")

MAX_ERRORS = 3
MAX_TRACES = 3
LOG_SAMPLE = 200  # error lines read to group and count (the newest of the window)
PARTS = ("error_logs", "traces")
OUTER_SLACK_S = 0.5  # the whole fetch is cut this long after each part's own bound
CACHE_S = 30.0  # one incident's context is fetched once for every channel paged within this time
CACHE_SIZE = 256


@dataclass
class Enricher:
    """What the delivery worker needs to add context: the backends, the signing key of view links."""

    backends: Callable[[], Backends]
    sessions: async_sessionmaker[AsyncSession]
    key: bytes | None = None
    _cache: dict[tuple[int, str, str], tuple[float, asyncio.Task[PageContext]]] = field(default_factory=dict)

    async def add_context(self, settings: Settings, message: Notification, now: datetime) -> Notification:
        """``message`` with its context, when it wants one and has none yet; never raises for a backend.

        The channels paged together (drained side by side) share one fetch: the first starts it,
        the others wait for it. A context with a missing part is not kept for later pages."""
        if not message.enrich or message.context is not None or not message.services:
            return message
        service = message.services[0]
        key = (message.incident_id, message.kind, service)
        moment = time.monotonic()
        cached = self._cache.get(key)
        if cached is None or cached[0] <= moment:
            if len(self._cache) >= CACHE_SIZE:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > moment and not v[1].done()}
            task = asyncio.get_running_loop().create_task(
                fetch_context(
                    settings,
                    message,
                    service,
                    backends=self.backends(),
                    sessions=self.sessions,
                    key=self.key,
                    now=now,
                )
            )
            cached = (moment + CACHE_S, task)
            self._cache[key] = cached
        try:
            context = await asyncio.shield(cached[1])
        except Exception:
            self._forget(key, cached)
            raise
        if context.missing:
            self._forget(key, cached)
        return replace(message, context=context)

    def _forget(self, key: tuple[int, str, str], entry: tuple[float, asyncio.Task[PageContext]]) -> None:
        if self._cache.get(key) is entry:
            del self._cache[key]


def fetch_limit_s(settings: Settings) -> float:
    """The longest adding context to a page may take (the delivery worker's lease counts it)."""
    return settings.alerts.enrich_timeout.total_seconds() + OUTER_SLACK_S


async def fetch_context(
    settings: Settings,
    message: Notification,
    service: str,
    *,
    backends: Backends,
    sessions: async_sessionmaker[AsyncSession],
    key: bytes | None,
    now: datetime,
) -> PageContext:
    """The service's context over the alert's window, within ``alerts.enrich_timeout``."""
    firing = [a for a in message.alerts if a.status == "firing"] or message.alerts
    started = min([a.starts_at for a in firing] + [message.started_at])
    start, end = correlation.context_window(started, None, now)
    namespaces = {a.labels.get("namespace") for a in firing}
    namespace = namespaces.pop() if len(namespaces) == 1 else None
    bound = settings.alerts.enrich_timeout.total_seconds()
    missing: dict[str, str] = {}
    overview: ServiceOverview | None = None
    wanted = [
        part
        for part, client in (("error_logs", backends.elasticsearch), ("traces", backends.jaeger))
        if client is not None
    ]
    if wanted:
        try:
            async with asyncio.timeout(fetch_limit_s(settings)):
                overview = await correlation.service_overview(
                    service,
                    namespace=namespace,
                    start=start.isoformat(),
                    end=end.isoformat(),
                    backends=backends,
                    sessions=sessions,
                    settings=settings,
                    now=now,
                    parts=wanted,
                    part_timeout_s=bound,
                    error_log_limit=LOG_SAMPLE,
                )
        except TimeoutError:
            missing = {_PART_NAME[part]: "timeout" for part in wanted}
        except BackendsFailed as exc:
            missing = {
                _BACKEND_PART[name]: error.kind.value
                for name, error in exc.failures.items()
                if name in _BACKEND_PART
            }
        except BackendError as exc:
            missing = {_BACKEND_PART.get(exc.backend, "logs"): exc.kind.value}
    if overview is not None:
        partial = overview.partial
        for part, note in (("logs", partial.error_logs), ("traces", partial.traces)):
            if note is not None:
                missing[part] = _reason(note)
    if missing:
        log.warning("page sent without part of its context", extra={"service": service, "missing": missing})
    expires = now + settings.web.view_link_ttl
    return PageContext(
        service=service,
        errors=_errors(overview),
        traces=_traces(settings, overview, key, expires),
        grafana_url=settings.grafana.dashboard_url(
            settings.grafana.service_dashboard,
            start,
            None,
            {"service": service, "namespace": namespace or ""},
        ),
        service_url=web_auth.view_url(
            settings.alerts.public_url,
            f"/services/{quote(service, safe='')}",
            key,
            web_auth.service_scope(service),
            expires,
        ),
        missing=missing,
    )


_PART_NAME = {"error_logs": "logs", "traces": "traces"}
_BACKEND_PART = {"elasticsearch": "logs", "jaeger": "traces"}


def _reason(note: str) -> str:
    """A partial note (``elasticsearch: no answer within 3s``) as a reason word."""
    lowered = note.lower()
    if "within" in lowered or "timed out" in lowered or "timeout" in lowered:
        return "timeout"
    if "not configured" in lowered:
        return "not_configured"
    return "unreachable"


def _errors(overview: ServiceOverview | None) -> list[ErrorLine]:
    if overview is None:
        return []
    groups = correlation.error_patterns(overview.error_logs, MAX_ERRORS)
    return [ErrorLine(text=group.example, count=group.count) for group in groups]


def _traces(
    settings: Settings, overview: ServiceOverview | None, key: bytes | None, expires: datetime
) -> list[TraceLink]:
    """The failed traces first, then the slowest, each once, at most :data:`MAX_TRACES`."""
    if overview is None:
        return []
    chosen: dict[str, TraceSummary] = {}
    failed, slowest = list(overview.failed_traces), list(overview.slowest_traces)
    # Alternate so that both kinds are shown when there are both: failed, slowest, failed…
    while (failed or slowest) and len(chosen) < MAX_TRACES:
        for queue in (failed, slowest):
            while queue and len(chosen) < MAX_TRACES:
                trace = queue.pop(0)
                if trace.trace_id not in chosen:
                    chosen[trace.trace_id] = trace
                    break
    jaeger_ui = settings.jaeger.ui_url
    return [
        TraceLink(
            trace_id=t.trace_id,
            operation=f"{t.root_service} {t.root_operation}",
            duration_ms=t.duration_ms,
            failed=t.error_count > 0,
            url=web_auth.view_url(
                settings.alerts.public_url,
                f"/traces/{t.trace_id}",
                key,
                web_auth.trace_scope(t.trace_id),
                expires,
            ),
            jaeger_url=f"{jaeger_ui}/trace/{t.trace_id}" if jaeger_ui else None,
        )
        for t in chosen.values()
    ]
