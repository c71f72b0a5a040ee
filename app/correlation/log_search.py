"""Log search: filters, plain text, trace ids, newest first, paged through a point in time."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from app.backends.elasticsearch import ElasticsearchClient, SearchPage
from app.backends.errors import BackendError
from app.backends.registry import Backends
from app.config import Settings
from app.correlation import logquery
from app.correlation.cursor import Cursor, CursorError, decode_cursor
from app.correlation.errors import CursorExpired
from app.correlation.logrecords import LogReader
from app.correlation.outcomes import (
    glued_search,
    indices,
    need,
    search_gaps,
    search_note,
    trace_id_param,
    window_param,
)
from app.correlation.schemas import LogPage
from app.correlation.window import Window
from app.errors import InvalidInput


@dataclass(frozen=True)
class LogSearch:
    """The log search's parameters as the caller gave them (None: not given)."""

    service: str | None = None
    namespace: str | None = None
    pod: str | None = None
    level: str | None = None
    q: str | None = None
    trace_id: str | None = None
    start: str | None = None
    end: str | None = None
    limit: int | None = None
    cursor: str | None = None

    def filters(self) -> dict[str, str]:
        values = {
            "service": self.service,
            "namespace": self.namespace,
            "pod": self.pod,
            "level": self.level,
            "q": self.q,
            "trace_id": self.trace_id,
            "from": self.start,
            "to": self.end,
        }
        return {name: value for name, value in values.items() if value not in (None, "")}


def _log_query(filters: dict[str, str], window: Window, settings: Settings, glued: bool) -> logquery.Query:
    cs = settings.correlation
    fields = cs.log_fields
    clauses: list[logquery.Query | None] = [logquery.time_range(fields.timestamp, window)]
    if "service" in filters:
        clauses.append(logquery.service_query(filters["service"], cs))
    if "namespace" in filters:
        clauses.append(logquery.exact_in_any(fields.namespace, [filters["namespace"]]))
    if "pod" in filters:
        clauses.append(logquery.exact_in_any(fields.pod, [filters["pod"]]))
    if "level" in filters:
        clauses.append(logquery.level_query(filters["level"].split(","), cs))
    if "q" in filters:
        clauses.append(logquery.text_query(filters["q"], cs))
    if "trace_id" in filters:
        trace_id = trace_id_param(filters["trace_id"], "trace_id")
        clauses.append(logquery.trace_id_query(trace_id, cs, glued=glued))
    return logquery.bool_filter(*clauses)


async def search_logs(search: LogSearch, *, backends: Backends, settings: Settings, now: datetime) -> LogPage:
    """Log lines newest first, one page at a time through a point in time (see :mod:`.cursor`)."""
    cs = settings.correlation
    limit = search.limit or cs.default_log_limit
    if not 1 <= limit <= cs.max_log_limit:
        raise InvalidInput(f"query parameter 'limit': must be between 1 and {cs.max_log_limit}, got {limit}")
    filters = search.filters()
    if "trace_id" in filters:  # canonical, so that a cursor's search compares by id, not by spelling
        filters["trace_id"] = trace_id_param(filters["trace_id"], "trace_id").hex
    cursor = _decode(search.cursor) if search.cursor else None
    if cursor is not None:
        first = {k: str(v) for k, v in cursor.search["filters"].items()}
        changed = sorted(name for name, value in filters.items() if first.get(name) != value)
        if changed:
            raise InvalidInput(
                f"query parameter 'cursor': it continues another search ({', '.join(changed)} differ); "
                "repeat the first page's parameters unchanged, or leave them out"
            )
        filters = first
        window = Window(
            datetime.fromisoformat(cursor.search["start"]), datetime.fromisoformat(cursor.search["end"])
        )
    else:
        window = window_param(filters.get("from"), filters.get("to"), cs.default_window, now, settings.tzinfo)
    es = need(backends.elasticsearch, "elasticsearch")
    target = indices(window, settings)
    if "trace_id" in filters:  # the only search with prefix clauses
        page = await glued_search(
            es,
            lambda glued: _log_page(
                es, cursor, _log_query(filters, window, settings, glued), target, limit + 1, settings
            ),
        )
    else:
        page = await _log_page(
            es, cursor, _log_query(filters, window, settings, True), target, limit + 1, settings
        )
    hits = page.hits[:limit]
    pit_id = page.pit_id or ""
    next_cursor = None
    if len(page.hits) > limit and hits[-1].sort:
        state = {"filters": filters, "start": window.start.isoformat(), "end": window.end.isoformat()}
        next_cursor = Cursor(pit_id, hits[-1].sort, state).encode()
    else:
        with contextlib.suppress(BackendError):  # left open, it would expire by itself
            await es.close_pit(pit_id)
    reader = LogReader(cs)
    glued_searched = "trace_id" not in filters or es.prefix_queries  # only an id search has glued ids
    note = search_note(page, glued_searched=glued_searched)
    return LogPage(
        logs=[reader.entry(hit) for hit in hits],
        next_cursor=next_cursor,
        partial=f"elasticsearch: {note}" if note else None,
        gaps=search_gaps(page, "logs", glued_searched=glued_searched),
    )


async def _log_page(
    es: ElasticsearchClient,
    cursor: Cursor | None,
    query: logquery.Query,
    indices: str,
    size: int,
    settings: Settings,
) -> SearchPage:
    """The first page (opening the point in time) or the page after ``cursor``."""
    keep_alive = f"{int(settings.correlation.cursor_keep_alive.total_seconds())}s"
    sort = logquery.sort_by_time(settings.correlation, "desc")
    if cursor is None:
        pit_id = await es.open_pit(indices, keep_alive=keep_alive)
        try:
            return await es.search_pit(pit_id, query=query, sort=sort, size=size, keep_alive=keep_alive)
        except BackendError:
            with contextlib.suppress(BackendError):
                await es.close_pit(pit_id)
            raise
    try:
        return await es.search_pit(
            cursor.pit_id, query=query, sort=sort, size=size, search_after=cursor.after, keep_alive=keep_alive
        )
    except BackendError as exc:
        if exc.status == 404:  # search_context_missing_exception: the point in time is gone
            raise CursorExpired(
                f"query parameter 'cursor': it expired (a cursor lasts {keep_alive} after its page was "
                "served); start the search again"
            ) from None
        raise


def _decode(text: str) -> Cursor:
    try:
        cursor = decode_cursor(text)
        datetime.fromisoformat(cursor.search["start"])
        datetime.fromisoformat(cursor.search["end"])
        if not isinstance(cursor.search["filters"], dict):
            raise CursorError("the cursor is not one this API handed out (pass next_cursor unchanged)")
    except (CursorError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"query parameter 'cursor': {exc}") from None
    return cursor
