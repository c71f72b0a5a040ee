"""Small helpers shared by the correlation use cases: backend outcomes and request parameters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any, TypeVar

from app.backends.elasticsearch import ElasticsearchClient, SearchPage
from app.backends.errors import BackendError, not_configured
from app.config import Settings
from app.correlation.ids import TraceId, TraceIdError, parse_trace_id
from app.correlation.logquery import GLUED_NOT_SEARCHED, PREFIX_REFUSED
from app.correlation.schemas import Gap, GapCode, SourceError
from app.correlation.window import Window, daily_indices, resolve_window
from app.errors import InvalidInput, Phrase
from app.times import Clock

T = TypeVar("T")


async def settle(awaitable: Awaitable[T]) -> T | BackendError:
    """The result, or the BackendError that stopped it (other exceptions are bugs and propagate)."""
    try:
        return await awaitable
    except BackendError as exc:
        return exc


def result(outcome: T | BackendError) -> T:
    """The value of a settled call, raising its BackendError (for parts the answer cannot do without)."""
    if isinstance(outcome, BackendError):
        raise outcome
    return outcome


def need(client: T | None, name: str) -> T:
    """The backend's client, or the "not configured" BackendError (503) naming it."""
    if client is None:
        raise not_configured(name)
    return client


async def call(client: T | None, name: str, use: Callable[[T], Awaitable[Any]]) -> Any:
    """``use(client)``, or the "not configured" BackendError when there is no client (so that
    :func:`settle` turns an unconfigured backend into a partial answer like a failing one)."""
    return await use(need(client, name))


async def glued_search(es: ElasticsearchClient, search: Callable[[bool], Awaitable[T]]) -> T:
    """``search(glued=True)``; when the cluster refuses its ``prefix`` clauses
    (``search.allow_expensive_queries: false``), remembers that on the client and runs
    ``search(glued=False)`` instead (see :mod:`app.correlation.logquery`)."""
    if es.prefix_queries:
        try:
            return await search(True)
        except BackendError as exc:
            if PREFIX_REFUSED not in exc.message:
                raise
            es.prefix_queries = False
    return await search(False)


def source_error(error: BackendError) -> SourceError:
    """A backend's failure as answers carry it: the backend, the kind, its HTTP status."""
    return SourceError(backend=error.backend, kind=error.kind, status=error.status, message=error.message)


def search_note(page: SearchPage, *, glued_searched: bool = True) -> str | None:
    """What an Elasticsearch answer of 200 lacks, in one English line for a ``partial`` note (without
    the ``elasticsearch:`` its caller puts first): what :func:`search_gaps` gives as data."""
    notes = [page.partial, None if glued_searched else GLUED_NOT_SEARCHED]
    return "; ".join(note for note in notes if note) or None


def search_gaps(page: SearchPage, part: str, *, glued_searched: bool = True) -> list[Gap]:
    """What an Elasticsearch answer of 200 lacks, for ``part``: failed shards, a timeout, and (when
    the cluster refused ``prefix`` queries) the glued ids not looked for; as its ``partial`` says."""
    gaps = []
    if page.shards_failed is not None:
        failed = page.shards_failed
        values: dict[str, str | int] = {
            "failed": failed.failed,
            "total": failed.total if failed.total is not None else "?",
        }
        if failed.index:
            values["index"] = failed.index
        if failed.reason:
            values["reason"] = failed.reason
        gaps.append(Gap(part=part, backend="elasticsearch", code=GapCode.SHARDS_FAILED, values=values))
    if page.timed_out:
        gaps.append(Gap(part=part, backend="elasticsearch", code=GapCode.SEARCH_TIMED_OUT))
    if not glued_searched:
        gaps.append(Gap(part=part, backend="elasticsearch", code=GapCode.GLUED_IDS_NOT_SEARCHED))
    return gaps


def window_param(
    start: str | None, end: str | None, default: timedelta, now: datetime, zone: tzinfo
) -> Window:
    """``from``/``to`` in the one time grammar (:mod:`app.times`); its error names the parameter."""
    return resolve_window(start, end, default=default, clock=Clock(now, zone))


def trace_id_param(text: str, parameter: str) -> TraceId:
    try:
        return parse_trace_id(text)
    except TraceIdError as exc:
        said = Phrase("problem.trace_id", value=text)
        raise InvalidInput(f"{parameter}: {exc}", phrase=said) from None


def indices(window: Window, settings: Settings) -> str:
    return daily_indices(window, settings.correlation.index_format, settings.elasticsearch.index_pattern)
