"""Elasticsearch 8 client: searches, point-in-time paging and a readiness probe, with typed results.

A search answered 200 may still be partial: shards that failed (``_shards.failed``) or ran out
of time (``timed_out``) contribute no hits, and Elasticsearch keeps
``allow_partial_search_results`` on by default. A failed search would be worse for a log view
(one index with a bad mapping would hide every other day), so the partial answer is kept and
:attr:`SearchPage.partial` says what is missing; callers pass that on to their ``partial`` note.

It wraps the official ``AsyncElasticsearch`` (aiohttp underneath) with its own
retries switched off: retries go through :func:`app.backends.http.with_retries`
like every other backend, so there is one retry policy in the project and the
observer sees every attempt. The client's exceptions become :class:`BackendError`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, SerializationError, TransportError
from elasticsearch import (
    ApiError,
    AsyncElasticsearch,
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    NotFoundError,
    UnsupportedProductError,
)

from app.backends.errors import BackendError, BackendErrorKind, not_configured
from app.backends.http import BackendStatus, CallObserver, ignore_call, timed_probe, with_retries
from app.config import ElasticsearchSettings

NAME = "elasticsearch"
DEFAULT_PAGE_SIZE = 100
# Elasticsearch's own default: count hits exactly up to 10,000, then report a lower bound.
DEFAULT_TRACK_TOTAL_HITS = 10_000

Query = Mapping[str, Any]
Sort = Sequence[str | Mapping[str, Any]]
SourceFilter = bool | str | Sequence[str] | Mapping[str, Any]


@dataclass(frozen=True)
class ClusterInfo:
    version: str
    cluster_name: str


@dataclass(frozen=True)
class Hit:
    """One matching document; ``sort`` holds its sort values (what ``search_after`` takes)."""

    index: str
    id: str
    source: dict[str, Any]
    sort: list[Any]


@dataclass(frozen=True)
class SearchPage:
    """One page of hits.

    ``total`` is None when total hits were not tracked; when ``total_exact`` is
    False it is a lower bound (Elasticsearch's ``relation: gte``). ``pit_id`` is
    the point-in-time id to use for the next page of a PIT search.
    """

    hits: list[Hit]
    total: int | None
    took_ms: int
    total_exact: bool = True
    pit_id: str | None = None
    partial: str | None = None
    """Why hits may be missing although the answer was 200 (failed shards, a timeout); None: complete."""
    shards_failed: ShardFailures | None = None
    """The shards that failed, as counted (what ``partial`` says in English); None: none failed."""
    timed_out: bool = False
    """Whether the search ran out of time (its shards' hits past that point are missing)."""


@dataclass(frozen=True)
class ShardFailures:
    """Shards of a 200 search answer that failed: how many of how many, and where the first
    failed and why (Elasticsearch's own words), when it said."""

    failed: int
    total: int | None
    first_said: bool = False
    """Whether the answer listed the failures (then ``index`` and ``reason``, each when it said)."""
    index: str | None = None
    reason: str | None = None


class ElasticsearchClient:
    """Talks to one Elasticsearch cluster (8.x, or 9.x through REST compatibility)."""

    def __init__(self, settings: ElasticsearchSettings, *, observer: CallObserver = ignore_call) -> None:
        if settings.url is None:
            raise not_configured(NAME)
        self.settings = settings
        self.observer = observer
        self.prefix_queries = True
        """False once the cluster refused a ``prefix`` query (``search.allow_expensive_queries: false``):
        callers then build their queries without one (see :mod:`app.correlation.logquery`)."""
        self._es = AsyncElasticsearch(
            settings.url,
            request_timeout=settings.timeout_s,
            max_retries=0,
            retry_on_timeout=False,
            retry_on_status=(),
            **_auth_options(settings),
            **_tls_options(settings),
        )

    async def aclose(self) -> None:
        await self._es.close()

    async def info(self) -> ClusterInfo:
        """The cluster's name and version (``GET /``)."""
        return await self._info(self.settings.retries)

    async def _info(self, retries: int) -> ClusterInfo:
        body = await self._call(lambda: self._es.info(), retries=retries)
        version = _dig(body, "version", "number")
        name = body.get("cluster_name")
        if not isinstance(version, str) or not isinstance(name, str):
            raise _bad_response(f"cluster info without version.number/cluster_name: {_excerpt(body)}")
        return ClusterInfo(version=version, cluster_name=name)

    async def search(
        self,
        index: str,
        *,
        query: Query,
        sort: Sort | None = None,
        size: int = DEFAULT_PAGE_SIZE,
        search_after: Sequence[Any] | None = None,
        source: SourceFilter | None = None,
        track_total_hits: bool | int = DEFAULT_TRACK_TOTAL_HITS,
    ) -> SearchPage:
        """Searches ``index`` (a name, a comma list or a wildcard pattern).

        Missing indices are skipped (``ignore_unavailable``) and a pattern matching
        nothing gives an empty page (``allow_no_indices``): daily indices come and go.
        """
        body = await self._call(
            lambda: self._es.search(
                index=index,
                query=dict(query),
                sort=_sort_arg(sort),
                size=size,
                search_after=list(search_after) if search_after is not None else None,
                source=_source_arg(source),
                track_total_hits=track_total_hits,
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        )
        return _page(body)

    async def open_pit(self, index: str, keep_alive: str = "1m") -> str:
        """Opens a point in time over ``index`` and returns its id."""
        body = await self._call(
            lambda: self._es.open_point_in_time(index=index, keep_alive=keep_alive, ignore_unavailable=True)
        )
        pit_id = body.get("id")
        if not isinstance(pit_id, str) or not pit_id:
            raise _bad_response(f"point in time opened without an id: {_excerpt(body)}")
        return pit_id

    async def search_pit(
        self,
        pit_id: str,
        *,
        query: Query,
        sort: Sort,
        size: int,
        search_after: Sequence[Any] | None = None,
        keep_alive: str = "1m",
        track_total_hits: bool | int = False,
    ) -> SearchPage:
        """One page of a point-in-time search; the page's ``pit_id`` is the id to use next.

        Elasticsearch adds an implicit ``_shard_doc`` tiebreaker, so the last hit's
        ``sort`` is a complete ``search_after`` for the next page.
        """
        body = await self._call(
            lambda: self._es.search(
                pit={"id": pit_id, "keep_alive": keep_alive},
                query=dict(query),
                sort=_sort_arg(sort),
                size=size,
                search_after=list(search_after) if search_after is not None else None,
                track_total_hits=track_total_hits,
            )
        )
        page = _page(body)
        if page.pit_id is None:
            raise _bad_response("point-in-time search answered without a pit_id")
        return page

    async def close_pit(self, pit_id: str) -> None:
        """Closes a point in time; one that already expired counts as closed."""

        async def close() -> Any:
            try:
                return await self._es.close_point_in_time(id=pit_id)
            except NotFoundError:
                return {"succeeded": True, "num_freed": 0}

        await self._call(close)

    async def probe(self, timeout_s: float) -> BackendStatus:
        """Readiness: the cluster answers ``GET /`` (no retries), with its version."""

        async def check() -> str | None:
            return (await self._info(retries=0)).version

        return await timed_probe(NAME, self.settings, check, timeout_s=timeout_s)

    async def _call(
        self, send: Callable[[], Awaitable[Any]], *, retries: int | None = None
    ) -> dict[str, Any]:
        """Runs one API call with retries, timing and error mapping; returns the JSON body."""

        async def once() -> dict[str, Any]:
            started = time.perf_counter()
            outcome = "ok"
            try:
                try:
                    response = await send()
                except (ApiError, TransportError) as exc:
                    raise self._error_for(exc) from exc
                body = getattr(response, "body", response)
                if not isinstance(body, dict):
                    raise _bad_response(f"expected a JSON object, got {_excerpt(body)}")
                return body
            except BackendError as exc:
                outcome = exc.kind.value
                raise
            finally:
                self.observer(NAME, outcome, time.perf_counter() - started)

        attempts = self.settings.retries if retries is None else retries
        return await with_retries(once, retries=attempts, backoff_s=self.settings.retry_backoff_s)

    def _error_for(self, exc: ApiError | TransportError) -> BackendError:
        where = self.settings.display_url
        if isinstance(exc, UnsupportedProductError):
            return _bad_response(
                f"the server at {where} is not Elasticsearch (no 'X-Elastic-Product: Elasticsearch' header)",
                status=exc.meta.status,
            )
        if isinstance(exc, ApiError):
            status = exc.meta.status
            reason = es_error_reason(exc.body) or str(exc.message)
            if isinstance(exc, BadRequestError):
                return BackendError(NAME, BackendErrorKind.BAD_QUERY, reason, status=status)
            if isinstance(exc, AuthenticationException | AuthorizationException):
                return BackendError(NAME, BackendErrorKind.UNAUTHORIZED, reason, status=status)
            return _bad_response(f"HTTP {status}: {reason}", status=status)
        if isinstance(exc, ConnectionTimeout):
            return BackendError(
                NAME, BackendErrorKind.TIMEOUT, f"no answer from {where} within {self.settings.timeout_s:g}s"
            )
        if isinstance(exc, TransportConnectionError):
            return BackendError(NAME, BackendErrorKind.UNREACHABLE, f"cannot reach {where}: {_cause(exc)}")
        if isinstance(exc, SerializationError):
            return _bad_response(f"unreadable answer from {where}: {exc}")
        return BackendError(NAME, BackendErrorKind.UNREACHABLE, f"{type(exc).__name__}: {exc}")


def es_error_reason(body: Any) -> str | None:
    """Elasticsearch's own words from an error body: ``type: reason`` of the root cause, else of the error."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return None
    causes = error.get("root_cause")
    cause = causes[0] if isinstance(causes, list) and causes and isinstance(causes[0], dict) else error
    reason = cause.get("reason") or error.get("reason")
    kind = cause.get("type") or error.get("type")
    if not reason:
        return str(kind) if kind else None
    return f"{kind}: {reason}" if kind else str(reason)


def _page(body: dict[str, Any]) -> SearchPage:
    hits_obj = body.get("hits")
    if not isinstance(hits_obj, dict) or not isinstance(hits_obj.get("hits"), list):
        raise _bad_response(f"search answer without hits.hits: {_excerpt(body)}")
    hits = [_hit(raw) for raw in hits_obj["hits"]]
    total: int | None = None
    exact = True
    raw_total = hits_obj.get("total")
    if isinstance(raw_total, dict):
        value = raw_total.get("value")
        if not isinstance(value, int):
            raise _bad_response(f"hits.total without an integer value: {_excerpt(raw_total)}")
        total = value
        exact = raw_total.get("relation", "eq") == "eq"
    elif isinstance(raw_total, int):
        total = raw_total
    took = body.get("took")
    pit_id = body.get("pit_id")
    return SearchPage(
        hits=hits,
        total=total,
        took_ms=took if isinstance(took, int) else 0,
        total_exact=exact,
        pit_id=pit_id if isinstance(pit_id, str) else None,
        partial=partial_reason(body),
        shards_failed=shard_failures(body),
        timed_out=body.get("timed_out") is True,
    )


def shard_failures(body: Mapping[str, Any]) -> ShardFailures | None:
    """The failed shards of a 200 search answer (``_shards.failed``, the first of ``failures``)."""
    shards = body.get("_shards")
    if not isinstance(shards, dict):
        return None
    failed, total = shards.get("failed"), shards.get("total")
    if not isinstance(failed, int) or failed <= 0:
        return None
    failures = shards.get("failures")
    if not (isinstance(failures, list) and failures and isinstance(failures[0], dict)):
        return ShardFailures(failed, total if isinstance(total, int) else None)
    first = failures[0]
    index = first.get("index")
    reason = es_error_reason({"error": first.get("reason")})
    return ShardFailures(
        failed,
        total if isinstance(total, int) else None,
        first_said=True,
        index=index if isinstance(index, str) else None,
        reason=reason or None,
    )


def partial_reason(body: Mapping[str, Any]) -> str | None:
    """What a 200 search answer is missing, in English: its failed shards (with the first failure's
    reason) and whether it timed out; None when every shard answered in time."""
    notes: list[str] = []
    failed = shard_failures(body)
    if failed is not None:
        note = f"{failed.failed} of {failed.total} shards failed"
        if failed.first_said:
            where = f"index {failed.index}" if failed.index else "a shard"
            note += f" ({where}: {failed.reason})" if failed.reason else f" ({where})"
        notes.append(note)
    if body.get("timed_out") is True:
        notes.append("the search timed out")
    if not notes:
        return None
    return "partial answer: " + "; ".join(notes) + " (matching lines there are missing)"


def _hit(raw: Any) -> Hit:
    if not isinstance(raw, dict) or not isinstance(raw.get("_index"), str) or "_id" not in raw:
        raise _bad_response(f"hit without _index/_id: {_excerpt(raw)}")
    source = raw.get("_source", {})
    sort = raw.get("sort", [])
    if not isinstance(source, dict) or not isinstance(sort, list):
        raise _bad_response(f"hit with a malformed _source or sort: {_excerpt(raw)}")
    return Hit(index=raw["_index"], id=str(raw["_id"]), source=source, sort=sort)


def _sort_arg(sort: Sort | None) -> list[Any] | None:
    return [s if isinstance(s, str) else dict(s) for s in sort] if sort is not None else None


def _source_arg(source: SourceFilter | None) -> Any:
    if source is None or isinstance(source, bool | str):
        return source
    if isinstance(source, Mapping):
        return dict(source)
    return list(source)


def _auth_options(settings: ElasticsearchSettings) -> dict[str, Any]:
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value()
        # Kibana hands out the encoded form; "id:api_key" is accepted too.
        return {"api_key": tuple(key.split(":", 1)) if ":" in key else key}
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        return {"basic_auth": (settings.username, password)}
    if settings.bearer_token is not None:
        return {"bearer_auth": settings.bearer_token.get_secret_value()}
    return {}


def _tls_options(settings: ElasticsearchSettings) -> dict[str, Any]:
    if not (settings.url or "").startswith("https://"):
        return {}
    options: dict[str, Any] = {"verify_certs": settings.tls_verify}
    if settings.ca_file:
        options["ca_certs"] = settings.ca_file
    if not settings.tls_verify:
        options["ssl_show_warn"] = False
    return options


def _dig(body: Mapping[str, Any], *keys: str) -> Any:
    node: Any = body
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _cause(exc: TransportError) -> str:
    if exc.errors:
        inner = exc.errors[0]
        return str(inner) or type(inner).__name__
    return str(exc.message) or type(exc).__name__


def _bad_response(message: str, *, status: int | None = None) -> BackendError:
    return BackendError(NAME, BackendErrorKind.BAD_RESPONSE, message, status=status)


def _excerpt(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
