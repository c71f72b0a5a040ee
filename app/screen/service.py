"""What the wall screen shows, gathered from the features that own it and from Prometheus.

Seven panels, each fetched on its own through :class:`~app.screen.cache.ScreenCache` (so each
backend query runs at most once per refresh interval, whatever the number of screens) and each
failing on its own (the others keep showing): platform health, live traffic and top services
(Prometheus, one query each), the dependency graph (the correlation service's graph), open
incidents and who is on call (the alerts service), and the 30-day trends (the rollups service).
Other features are used only through their services; this module never writes anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import servicenames
from app.alerts import actors
from app.alerts import service as alerts
from app.alerts.schemas import IncidentSummary
from app.backends.errors import not_configured
from app.backends.prometheus import PrometheusClient
from app.backends.registry import Backends
from app.config import Settings
from app.correlation import service as correlation
from app.errors import PanoramaError
from app.rollups import service as rollups
from app.rollups.days import Granularity, days_between, local_today
from app.screen import queries, views
from app.screen.cache import PanelState, Problem, ScreenCache, Spawn, phrased_by_panels
from app.screen.config import ScreenSettings, Threshold
from app.screen.schemas import (
    GraphData,
    GraphEdge,
    GraphNode,
    Health,
    HealthFigure,
    IncidentRow,
    Incidents,
    Level,
    OnCallData,
    OnCallRow,
    ServiceRow,
    Services,
    Traffic,
    TrafficFigure,
    TrendLine,
    Trends,
)
from app.web.catalogue import MESSAGES
from app.web.i18n import Translator

Sessions = async_sessionmaker[AsyncSession]
HISTORY_POINTS = 120  # points of the live lines, whatever `screen.history` is
NEXT_SHIFTS = timedelta(days=14)  # how far ahead the next person on call is looked for
TREND_FIGURES = ("requests", "error_rate", "latency_p99_ms")
PLATFORM = "platform"  # the rollups' entity kind (and its one entity) of the whole platform's traffic
SEVERITY_ORDER = {"critical": 0, "page": 0, "error": 1, "warning": 2, "info": 3}
_LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")


def _level(threshold: Threshold, value: float | None) -> Level | None:
    return cast(Level | None, threshold.level(value))


def _worst(*levels: Level | None) -> Level:
    return max((lv for lv in levels if lv is not None), key=_LEVELS.index, default="ok")


def _prometheus(backends: Backends) -> PrometheusClient:
    if backends.prometheus is None:
        raise not_configured("prometheus")
    return backends.prometheus


# --- the panels -------------------------------------------------------------------------------------


async def health(backends: Backends, screen: ScreenSettings) -> Health:
    answer = await _prometheus(backends).query(queries.health_query(screen.window))
    values = queries.health_values(answer.samples)
    thresholds = screen.thresholds
    levels = {
        "cpu_utilization": _level(thresholds.cpu_utilization, values["cpu_utilization"]),
        "memory_utilization": _level(thresholds.memory_utilization, values["memory_utilization"]),
    }
    nodes, ready, not_ready = values["nodes"], values["nodes_ready"], values["pods_not_ready"]
    if nodes is not None and ready is not None:
        levels["nodes_ready"] = "critical" if ready < nodes else "ok"
    if not_ready is not None:
        levels["pods_not_ready"] = "warning" if not_ready > 0 else "ok"
    return Health(
        figures=[
            HealthFigure(key=f.key, value=values[f.key], source=f.source, level=levels.get(f.key))
            for f in queries.HEALTH
        ]
    )


async def traffic(backends: Backends, screen: ScreenSettings, now: datetime) -> Traffic:
    step = max(screen.history.total_seconds() / HISTORY_POINTS, 1.0)
    end = round(now.timestamp(), 3)  # the last point is now: the live figure
    start = end - step * HISTORY_POINTS
    answer = await _prometheus(backends).query_range(
        queries.traffic_query(screen.window), start=start, end=end, step=step
    )
    lines = queries.traffic_lines(answer.series)
    times = [start + step * k for k in range(HISTORY_POINTS + 1)]
    thresholds = {
        "error_rate": screen.thresholds.error_rate,
        "latency_p99_ms": screen.thresholds.latency_p99_ms,
    }
    figures = []
    for key in queries.TRAFFIC:
        points = [lines[key].get(t) for t in times]
        latest = points[-1]
        threshold = thresholds.get(key)
        figures.append(
            TrafficFigure(
                key=cast(Literal["requests_per_s", "error_rate", "latency_p99_ms"], key),
                value=latest,
                level=_level(threshold, latest) if threshold else None,
                points=points,
            )
        )
    return Traffic(times=times, present=any(lines[k] for k in queries.TRAFFIC), figures=figures)


def _service_row(figures: queries.ServiceFigures, screen: ScreenSettings) -> ServiceRow:
    error = _level(screen.thresholds.error_rate, figures.error_rate)
    latency = _level(screen.thresholds.latency_p99_ms, figures.latency_p99_ms)
    return ServiceRow(
        name=servicenames.key(figures.service),
        service=figures.service,
        requests_per_s=figures.requests_per_s,
        error_rate=figures.error_rate,
        latency_p99_ms=figures.latency_p99_ms,
        level=_worst(error, latency),
        error_level=error,
        latency_level=latency,
    )


async def services(backends: Backends, screen: ScreenSettings) -> Services:
    answer = await _prometheus(backends).query(queries.services_query(screen.window))
    found = [
        f
        for f in queries.service_figures(answer.samples)
        if f.requests_per_s > 0
        and (not screen.services or servicenames.matches_any(f.service, screen.services))
    ]
    rows = [_service_row(f, screen) for f in found]
    by_errors = sorted(
        (r for r in rows if r.error_rate is not None),
        key=lambda r: (-(r.error_rate or 0.0), -r.requests_per_s, r.name),
    )
    return Services(
        by_traffic=rows[: screen.top_services],
        by_error_rate=by_errors[: screen.top_services],
        total=len(rows),
    )


def _severity_rank(incident: IncidentSummary) -> int:
    return SEVERITY_ORDER.get((incident.severity or "").lower(), 4)


def _is_banner(incident: IncidentSummary) -> bool:
    """What raises the wall's banner: critical, not acknowledged, and paging (not muted by a
    maintenance window or a route that only records)."""
    return (
        incident.status == "triggered"
        and (incident.severity or "").lower() == "critical"
        and not incident.muted
    )


async def incidents(
    sessions: Sessions, settings: Settings, now: datetime, count: Callable[[], None]
) -> Incidents:
    screen = settings.screen
    async with sessions() as session:
        found: list[IncidentSummary] = []
        for status in ("triggered", "acknowledged"):
            count()
            found += await alerts.list_incidents(session, settings, status=status, limit=200)
        found.sort(key=lambda i: i.created_at, reverse=True)
        found.sort(key=lambda i: (i.status != "triggered", _severity_rank(i)))
        shown = found[: screen.max_incidents]
        banner = sorted((i for i in found if _is_banner(i)), key=lambda i: i.created_at, reverse=True)
        on_call: dict[int, list[str]] = {}
        for incident in {i.id: i for i in [*shown, *banner[:1]]}.values():
            count()
            people = await alerts.on_call_for_incident(session, settings, incident.id, now)
            on_call[incident.id] = list(dict.fromkeys(o.user for o in people if o.user))

    def row(incident: IncidentSummary) -> IncidentRow:
        return IncidentRow(
            id=incident.id,
            title=incident.title,
            status=cast(Literal["triggered", "acknowledged"], incident.status),
            severity=incident.severity,
            services=[servicenames.key(s) for s in incident.services],
            started_at=incident.created_at,
            acknowledged_by=incident.acknowledged_by,
            muted=incident.muted is not None,
            on_call=on_call.get(incident.id, []),
            url=incident.url,
        )

    return Incidents(
        open=[row(i) for i in shown],
        total_open=len(found),
        triggered=sum(1 for i in found if i.status == "triggered"),
        critical_unacknowledged=[row(i) for i in banner[:3]],
    )


async def on_call(
    sessions: Sessions, settings: Settings, now: datetime, count: Callable[[], None]
) -> OnCallData:
    names = settings.screen.schedules or [s.name for s in settings.schedules]
    rows = []
    async with sessions() as session:
        for name in names:
            count()
            horizon = now + NEXT_SHIFTS
            shifts = (await alerts.shifts(session, settings, name, now, horizon)).shifts
            current = next((s for s in shifts if s.start <= now < s.end), None)
            later = [s for s in shifts if s.start > now and (current is None or s.user != current.user)]
            rows.append(
                OnCallRow(
                    schedule=name,
                    user=current.user if current else None,
                    source=current.source if current else None,
                    # the wall names hand-overs within the two weeks only (later ones: /oncall)
                    until=current.end if current and current.end < horizon else None,
                    next_user=later[0].user if later else None,
                    next_at=later[0].start if later else None,
                )
            )
    return OnCallData(schedules=rows)


async def graph(backends: Backends, settings: Settings, now: datetime) -> GraphData:
    screen = settings.screen
    found = await correlation.dependency_graph(
        namespace=None,
        start=(now - screen.window).isoformat(),
        end=now.isoformat(),
        backends=backends,
        settings=settings,
        now=now,
    )
    busiest = sorted(found.nodes, key=lambda n: (-(n.requests_per_s or 0.0), n.id))
    kept = {n.id for n in busiest[: screen.max_graph_nodes]}
    pairs: dict[tuple[str, str], list[float]] = {}
    for edge in found.edges:
        if edge.source in kept and edge.target in kept:
            rate = edge.requests_per_s or 0.0
            totals = pairs.setdefault((edge.source, edge.target), [0.0, 0.0])
            totals[0] += rate
            totals[1] += rate * (edge.error_rate or 0.0)
    # a caller outside the mesh without traffic of its own is still where requests come from
    linked = {n for pair in pairs for n in pair}
    nodes = [n for n in busiest if n.id in kept and (n.requests_per_s or n.id in linked)]
    place = views.layered([n.id for n in nodes], pairs)
    threshold = screen.thresholds.error_rate
    return GraphData(
        nodes=[
            GraphNode(
                id=n.id,
                requests_per_s=n.requests_per_s or 0.0,
                error_rate=n.error_rate,
                level=_level(threshold, n.error_rate),
                x=place[n.id][0],
                y=place[n.id][1],
            )
            for n in nodes
        ],
        edges=[
            GraphEdge(
                source=source,
                target=target,
                requests_per_s=rate,
                error_rate=errors / rate if rate > 0 else None,
                level=_level(threshold, errors / rate if rate > 0 else None),
            )
            for (source, target), (rate, errors) in sorted(pairs.items())
        ],
        hidden=len(found.nodes) - len(nodes),
    )


async def trends(sessions: Sessions, settings: Settings, now: datetime, count: Callable[[], None]) -> Trends:
    screen = settings.screen
    last = local_today(settings.tzinfo, now) - timedelta(days=1)
    first = last - timedelta(days=screen.trend_days - 1)
    days = list(days_between(first, last))

    async def line(session: AsyncSession, kind: str, entity: str, name: str) -> TrendLine | None:
        count()
        try:
            periods = await rollups.series(
                session, settings, kind, entity, first, last, Granularity.DAY, only=TREND_FIGURES
            )
        except PanoramaError:  # nothing rolled up for it yet (or no such kind configured)
            return None
        by_day = {p.start: p.figures for p in periods}
        values = {f: [by_day.get(d, {}).get(f) for d in days] for f in TREND_FIGURES}
        return TrendLine(name=name, entity=entity, **values)

    async with sessions() as session:
        platform = await line(session, PLATFORM, PLATFORM, PLATFORM)
        count()
        if screen.services:
            known = await rollups.entities(session, "service", first=first, last=last)
            chosen = [e for e in known if servicenames.matches_any(e, screen.services)][: screen.top_services]
        else:
            report = await rollups.report(session, settings, "service", first, last)
            report.sort(key=lambda r: (-(r.figures.get("requests") or 0.0), r.entity))
            chosen = [r.entity for r in report[: screen.top_services]]
        lines = [await line(session, "service", e, servicenames.key(e)) for e in chosen]
    return Trends(days=days, platform=platform, services=[x for x in lines if x is not None])


# --- the page --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageShell:
    title: str
    config: dict[str, Any]  # what the script reads from the page's JSON block


def _words(translator: Translator, prefix: str) -> dict[str, str]:
    return {key.removeprefix(prefix): translator(key) for key in MESSAGES if key.startswith(prefix)}


def page_shell(settings: Settings, translator: Translator) -> PageShell:
    """The page's title and its script's settings and words (the page itself holds no data)."""
    screen = settings.screen
    words, severities = _words(translator, "screen."), _words(translator, "severity.")
    thresholds = screen.thresholds.model_dump()
    return PageShell(
        title=screen.title or translator("screen.title"),
        config={
            "api": "/api/v1/screen",
            "page": "/screen",
            "locale": translator.locale,
            "timezone": settings.timezone,
            # the zone named beside the clock: its offset filled in by the clock's own (i18n.Translator)
            "zone": translator.zone_form(),
            "zone_title": translator("foot.times_in", zone="{zone}"),
            "refresh_seconds": screen.refresh_seconds,
            "history_minutes": round(screen.history.total_seconds() / 60),
            "timeout_seconds": screen.timeout.total_seconds(),
            "thresholds": thresholds,
            "words": words,
            "severities": severities,
            # the texts a panel's problem may be said with (its phrase's key, filled with its values)
            "phrases": {key: translator(key) for key in MESSAGES if phrased_by_panels(key)},
            # the stored names of acts that name nobody, which the wall says in its words
            "actors": {"link": actors.LINK_ACTOR, "call": actors.CALL_ACTOR.split("{number}")},
        },
    )


# --- the answer -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    fetch: Callable[[], Awaitable[Any]]
    backend: str
    interval: float


def next_reload(settings: Settings, now: datetime) -> datetime | None:
    """The next ``screen.reload_at`` in the configured time zone (tomorrow's when today's is past)."""
    at: time | None = settings.screen.reload_at
    if at is None:
        return None
    local = now.astimezone(settings.tzinfo)
    candidate = datetime.combine(local.date(), at, tzinfo=settings.tzinfo)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=settings.tzinfo)
    return candidate.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    """A UTC time as the API writes times (pydantic's form: ``2026-12-06T10:36:46.390052Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _problem(problem: Problem) -> dict[str, Any]:
    """A panel's ``error``: what failed and, for a wall to say in its language, the phrase."""
    said: dict[str, Any] = {"backend": problem.backend, "message": problem.message}
    if problem.phrase is not None:
        said["phrase"] = {"key": problem.phrase.key, "values": dict(problem.phrase.values)}
    return said


def _panel(state: PanelState[Any], now: datetime) -> bytes:
    """One panel of the answer: its status, age and problem, then its data as encoded once per refresh."""
    problem = state.problem
    status = (
        "ok" if problem is None and state.data is not None else "stale" if state.data is not None else "error"
    )
    meta = {
        "status": status,
        "fetched_at": _iso(state.fetched_at),
        "age_s": round((now - state.fetched_at).total_seconds(), 3) if state.fetched_at else None,
        "error": _problem(problem) if problem else None,
    }
    return (
        json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()[:-1]
        + b',"data":'
        + (state.encoded or b"null")
        + b"}"
    )


async def answer(
    cache: ScreenCache, *, backends: Backends, sessions: Sessions, settings: Settings, spawn: Spawn
) -> bytes:
    """Every panel (:class:`~app.screen.schemas.ScreenData` as JSON), each from the cache, refreshed
    first when it is due. A request that finds every panel fresh (all but one per interval) makes
    no task and waits for nothing: it writes the panels' JSON, made once per refresh."""
    cache.requests.inc()
    screen = settings.screen
    refresh = float(screen.refresh_seconds)

    def now() -> datetime:
        return datetime.now(UTC)

    def count() -> None:  # a database read through a service (the backend clients see the rest)
        cache.count_query("database")

    sources: dict[str, _Source] = {
        "health": _Source(lambda: health(backends, screen), "prometheus", refresh),
        "traffic": _Source(lambda: traffic(backends, screen, now()), "prometheus", refresh),
        "services": _Source(lambda: services(backends, screen), "prometheus", refresh),
        "incidents": _Source(lambda: incidents(sessions, settings, now(), count), "database", refresh),
        "oncall": _Source(lambda: on_call(sessions, settings, now(), count), "database", refresh),
        "graph": _Source(lambda: graph(backends, settings, now()), "prometheus", refresh),
        "trends": _Source(
            lambda: trends(sessions, settings, now(), count),
            "database",
            max(refresh, screen.trend_refresh.total_seconds()),
        ),
    }
    states: dict[str, PanelState[Any] | None] = {
        name: cache.fresh(name, interval=source.interval, retry_interval=refresh, key=settings)
        for name, source in sources.items()
    }
    due = [name for name, state in states.items() if state is None]
    if due:
        read = await asyncio.gather(
            *(
                cache.read(
                    name,
                    sources[name].fetch,
                    interval=sources[name].interval,
                    retry_interval=refresh,
                    timeout=screen.timeout.total_seconds(),
                    backend=sources[name].backend,
                    key=settings,
                    spawn=spawn,
                )
                for name in due
            )
        )
        states.update(zip(due, read, strict=True))
    made = now()
    head = {
        "generated_at": _iso(made),
        "refresh_seconds": screen.refresh_seconds,
        "timezone": settings.timezone,
        "reload_at": _iso(next_reload(settings, made)),
    }
    panels = b",".join(
        b'"%s":%s' % (name.encode(), _panel(state, made)) for name, state in states.items() if state
    )
    return json.dumps(head, separators=(",", ":")).encode()[:-1] + b',"panels":{' + panels + b"}}"
