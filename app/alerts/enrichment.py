"""Where to look, added to a page when the delivery worker renders it: for each service of the
alert group (up to :data:`MAX_SERVICES`), its top error log lines of the alert's window (grouped by
message pattern), its slowest and failed traces, and links to its Grafana dashboard and service
page; the group's other services are named and counted ("and K more"), with a link to the
incident's context page, which shows every one.

Which services: an alert names its service by the first of ``SERVICE_LABELS`` it has (as the
incident's ``services`` do), in its own ``namespace`` label's namespace (:mod:`app.servicenames`
spells it ``name.namespace``); the services most of the group's firing alerts name come first (then
the order the incident lists them). A cascading failure or an alert grouped by ``alertname`` across
services so shows each service, not only the first, and ``checkout`` of two namespaces twice.

It is fetched through the correlation feature's service overview (one home for those figures),
outside any database transaction, and bounded by ``alerts.enrich_timeout``: each backend call gets
that long on its own, so a slow Elasticsearch costs the logs but not the traces, and the page goes
out on time saying what is missing. The services are fetched side by side, each within
:func:`fetch_limit_s`, so several services cost the time of the slowest, never their sum: a page
never waits on a broken backend longer than that bound (``bench/enrich.py`` measures it with the
fakes). Only channels that show it ask for it (not SMS, calls or push). A fetched context stays
with the outbox row, so a retry sends the same page without asking again.

Counting error lines: the newest :data:`LOG_SAMPLE` error lines of a service's window are read
and grouped by :func:`app.correlation.service.message_pattern`, so a count says how many of those
lines share a pattern, not how many the whole window had; when the sample was full the page says
so ("Top error logs (of the newest 200)"), and the service page has the full search. Exact counts
were weighed and left out (``bench/enrich.py`` measures both sides):

- The sample can mislead: in a window of 3,000 steady timeouts ending in a burst of 400 refused
  connections, the newest 200 lines are all the burst: the page shows "200× refused" and not the
  timeouts. The page saying the counts are of a sample is the honest part of the answer.
- An Elasticsearch aggregation cannot count patterns: the pattern (numbers, ids, addresses and
  times blanked) is computed here, from the text, and no indexed field holds it. A ``terms``
  aggregation on the message's ``.keyword`` groups *exact* messages: 3,400 buckets for the 3
  patterns of those 3,460 lines, and none for the 60 lines longer than the dynamic mapping's
  ``ignore_above: 256`` (stack traces). ``significant_text`` or ``terms`` on the analysed text
  count words (standard analyzer tokens), not lines.
- A runtime field computing the pattern would run Painless regexes over every error line of the
  window on every page (and Painless caps regex work per input by default:
  ``script.painless.regex.enabled: limited``), and a count query per top group cannot say "any
  number here" without a ``regexp`` or ``wildcard`` query on the keyword field: a scan of the term
  dictionary per page, blind to long lines again, and still not the same grouping as
  :func:`message_pattern`.

Exact counts need the pattern indexed (an ingest pipeline setting a ``message_pattern`` keyword
field as Fluent Bit's lines arrive), which is the platform's change to make, not a page's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import servicenames
from app.alerts.channels.base import (
    ErrorLine,
    Notification,
    PageContext,
    ServiceContext,
    TraceLink,
)
from app.alerts.models import services_named
from app.backends.errors import BackendError
from app.backends.registry import Backends
from app.config import Settings
from app.correlation import service as correlation
from app.correlation.errors import BackendsFailed
from app.correlation.schemas import ServiceOverview, TraceSummary
from app.web import auth as web_auth

log = logging.getLogger("panorama.alerts")

MAX_SERVICES = 3  # services of a group whose context a page carries; the others are counted
MAX_ERRORS = 3
MAX_TRACES = 3
LOG_SAMPLE = 200  # error lines read to group and count (the newest of the window; see above)
PARTS = ("error_logs", "traces")
OUTER_SLACK_S = 0.5  # each service's fetch is cut this long after each part's own bound
CACHE_S = 30.0  # one incident's context is fetched once for every channel paged within this time
CACHE_SIZE = 256

CacheKey = tuple[int, str, tuple[str, ...]]


@dataclass
class Enricher:
    """What the delivery worker needs to add context: the backends, the signing key of view links."""

    backends: Callable[[], Backends]
    sessions: async_sessionmaker[AsyncSession]
    key: bytes | None = None
    _cache: dict[CacheKey, tuple[float, asyncio.Task[PageContext]]] = field(default_factory=dict)

    async def add_context(self, settings: Settings, message: Notification, now: datetime) -> Notification:
        """``message`` with its context, when it wants one and has none yet; never raises for a backend.

        The channels paged together (drained side by side) share one fetch: the first starts it,
        the others wait for it. A context with a missing part is not kept for later pages."""
        if not message.enrich or message.context is not None or not message.services:
            return message
        services = group_services(message)
        if not services:
            return message
        key = (message.incident_id, message.kind, tuple(s.key for s in services))
        moment = time.monotonic()
        cached = self._cache.get(key)
        if cached is None or cached[0] <= moment:
            if len(self._cache) >= CACHE_SIZE:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > moment and not v[1].done()}
            task = asyncio.get_running_loop().create_task(
                fetch_context(
                    settings,
                    message,
                    services,
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

    def _forget(self, key: CacheKey, entry: tuple[float, asyncio.Task[PageContext]]) -> None:
        if self._cache.get(key) is entry:
            del self._cache[key]


def fetch_limit_s(settings: Settings) -> float:
    """The longest adding context to a page may take (the delivery worker's lease counts it): the
    services are fetched side by side, each within this bound."""
    return settings.alerts.enrich_timeout.total_seconds() + OUTER_SLACK_S


def group_services(message: Notification) -> list[servicenames.ServiceName]:
    """The group's services (:func:`app.alerts.models.services_named`), from its firing alerts (all,
    when none fires)."""
    alerts = [a for a in message.alerts if a.status == "firing"] or message.alerts
    return services_named([a.labels for a in alerts], message.services)


async def fetch_context(
    settings: Settings,
    message: Notification,
    services: Sequence[servicenames.ServiceName],
    *,
    backends: Backends,
    sessions: async_sessionmaker[AsyncSession],
    key: bytes | None,
    now: datetime,
) -> PageContext:
    """The context of the first :data:`MAX_SERVICES` of ``services`` over the alert's window, fetched
    side by side, each within :func:`fetch_limit_s`; the others are named in ``more``."""
    firing = [a for a in message.alerts if a.status == "firing"] or message.alerts
    started = min([a.starts_at for a in firing] + [message.started_at])
    start, end = correlation.context_window(started, None, now)
    expires = now + settings.web.view_link_ttl
    shown, more = services[:MAX_SERVICES], services[MAX_SERVICES:]
    sections = await asyncio.gather(
        *(
            _service_context(
                settings,
                service,
                start,
                end,
                backends=backends,
                sessions=sessions,
                key=key,
                now=now,
                expires=expires,
            )
            for service in shown
        )
    )
    return PageContext(
        services=list(sections),
        more=[s.key for s in more],
        context_url=web_auth.view_url(
            settings.alerts.public_url,
            f"/incidents/{message.incident_id}/context",
            key,
            web_auth.incident_scope(message.incident_id),
            expires,
        ),
    )


async def _service_context(
    settings: Settings,
    service: servicenames.ServiceName,
    start: datetime,
    end: datetime,
    *,
    backends: Backends,
    sessions: async_sessionmaker[AsyncSession],
    key: bytes | None,
    now: datetime,
    expires: datetime,
) -> ServiceContext:
    """One service's context over ``start``..``end``, within :func:`fetch_limit_s`."""
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
                    service.name,
                    namespace=service.namespace,
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
        log.warning(
            "page sent without part of its context", extra={"service": service.key, "missing": missing}
        )
    return ServiceContext(
        service=service.key,
        errors=_errors(overview),
        traces=_traces(settings, overview, key, expires),
        grafana_url=settings.grafana.dashboard_url(
            settings.grafana.service_dashboard,
            start,
            None,
            {"service": service.name, "namespace": service.namespace or ""},
        ),
        service_url=web_auth.view_url(
            settings.alerts.public_url,
            f"/services/{quote(service.key, safe='')}",
            key,
            web_auth.service_scope(service.key),
            expires,
        ),
        missing=missing,
        sampled=LOG_SAMPLE if overview is not None and len(overview.error_logs) >= LOG_SAMPLE else 0,
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
