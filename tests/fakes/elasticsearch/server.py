"""FakeElasticsearch: the node's state, its test-side API, and the HTTP routes with their envelopes."""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.elasticsearch.errors import (
    EsError,
    illegal_argument,
    parsing_error,
    unimplemented,
    validation_failed,
)
from tests.fakes.elasticsearch.indices import Doc, Index, check_index_name, resolve_indices, snapshot
from tests.fakes.elasticsearch.pit import PointsInTime, time_value
from tests.fakes.elasticsearch.search import SEARCH_PARAMS, check_pit_search, check_search_body, run_search
from tests.fakes.elasticsearch.wire import (
    check_params,
    compat_version,
    json_body,
    loose_json,
    param_bool,
    respond,
    safe_compat_version,
)
from tests.fakes.faults import Failure, Fault, FaultInjector

ES_VERSION = "8.15.3"
_PIT_PARAMS = frozenset(
    {"keep_alive", "ignore_unavailable", "expand_wildcards", "allow_partial_search_results"}
)
_BULK_PARAMS = frozenset({"refresh", "pretty", "error_trace"})
_BULK_ACTIONS = ("index", "create", "delete", "update")

Answer = tuple[int, Any]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: dict[str, str]


class FakeElasticsearch(FaultInjector):
    """An in-memory Elasticsearch 8 node. Serve it with ``tests.fakes.server.serve``.

    Tests add data with :meth:`create_index` / :meth:`add_documents` (or over
    HTTP), inject failures with :meth:`fail_with` / :meth:`hang` /
    ``product_header = False`` / :meth:`stop`, and inspect :attr:`requests`.
    """

    def __init__(self, *, cluster_name: str = "panorama-test", version: str = ES_VERSION) -> None:
        super().__init__()
        self.cluster_name = cluster_name
        self.version = version
        self.product_header = True
        self.rotate_pit_ids = False
        self.allow_expensive_queries = True
        """The cluster setting ``search.allow_expensive_queries`` (false: ``prefix`` queries fail)."""
        self.requests: list[RecordedRequest] = []
        self._indices: dict[str, Index] = {}
        self._pits = PointsInTime()
        self._lock = threading.RLock()
        self._id_counter = 0
        self._shard_faults: list[tuple[str, EsError | bool]] = []
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "HEAD", "POST", "PUT", "DELETE"])]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- test-side API ------------------------------------------------------------------------

    def create_index(self, name: str, mappings: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._create_index(name, mappings)

    def add_documents(
        self, index: str, documents: Iterable[Mapping[str, Any]], *, ids: Iterable[str] | None = None
    ) -> list[str]:
        """Indexes documents (creating the index on first use) and returns their ids."""
        id_iter = iter(ids) if ids is not None else None
        added = []
        with self._lock:
            target = self._index_for_write(index)
            for document in documents:
                doc_id = next(id_iter) if id_iter is not None else self._new_id()
                target.index_document(doc_id, json.loads(json.dumps(document)))
                added.append(doc_id)
        return added

    def add_document(self, index: str, document: Mapping[str, Any], doc_id: str | None = None) -> str:
        return self.add_documents(index, [document], ids=[doc_id] if doc_id else None)[0]

    @property
    def indices(self) -> list[str]:
        with self._lock:
            return sorted(self._indices)

    def count(self, index: str) -> int:
        with self._lock:
            return len(self._indices[index].docs)

    def fail_with(
        self,
        status: int = 503,
        *,
        times: int | None = None,
        error_type: str = "cluster_block_exception",
        reason: str = "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
    ) -> None:
        """Answers the next ``times`` requests (all, when None) with ``status`` and an ES error body."""
        self._add_fault(Fault(0.0, Failure(status, {"type": error_type, "reason": reason}), times))

    def fail_shards(
        self,
        pattern: str,
        *,
        error_type: str = "query_shard_exception",
        reason: str = "failed to create query: simulated shard failure",
    ) -> None:
        """From now on, the shard of each index matching ``pattern`` (``*`` wildcards) fails in searches.

        As on a real cluster (``allow_partial_search_results`` defaults to true), the search still
        answers 200, with ``_shards.failed`` and ``_shards.failures[]``, and the hits of the other shards.
        """
        with self._lock:
            self._shard_faults.append((pattern, EsError(400, error_type, reason, shard_level=True)))

    def time_out_shards(self, pattern: str) -> None:
        """From now on, the shard of each index matching ``pattern`` runs out of time in searches:
        the answer is 200 with ``timed_out: true`` and no hits from it."""
        with self._lock:
            self._shard_faults.append((pattern, True))

    def _shard_fault(self, index: Index) -> EsError | bool | None:
        for pattern, fault in self._shard_faults:
            if fnmatch.fnmatchcase(index.name, pattern):
                return fault
        return None

    @property
    def open_pits(self) -> int:
        with self._lock:
            return self._pits.count()

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    # -- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        raw_body = await request.body()
        segments = [unquote(s) for s in request.url.path.strip("/").split("/") if s]
        params = dict(request.query_params)
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method, request.url.path, params, loose_json(raw_body), dict(request.headers)
                )
            )
        failure = await self.injected_failure(request)
        try:
            compat = compat_version(request)
            if failure is not None:
                raise EsError(failure.status, failure.detail["type"], failure.detail["reason"])
            with self._lock:
                status, payload = self._route(request.method, segments, params, raw_body, started)
        except EsError as exc:
            compat = safe_compat_version(request)
            status, payload = exc.status, exc.body()
        return respond(request.method, status, payload, compat=compat, product_header=self.product_header)

    def _route(
        self, method: str, parts: list[str], params: dict[str, str], body: bytes, started: float
    ) -> Answer:
        routes: dict[str, Callable[[], Answer]] = {}
        n = len(parts)
        if n == 0:
            routes = {"GET": self._info, "HEAD": lambda: (200, {})}
        elif parts == ["_search"] or (n == 2 and parts[1] == "_search"):
            target = parts[0] if n == 2 else None
            routes = {m: (lambda: self._search(target, params, body, started)) for m in ("GET", "POST")}
        elif n == 2 and parts[1] == "_pit":
            routes = {"POST": lambda: self._open_pit(parts[0], params)}
        elif parts == ["_pit"]:
            routes = {"DELETE": lambda: self._close_pit(body)}
        elif parts == ["_bulk"] or (n == 2 and parts[1] == "_bulk"):
            default = parts[0] if n == 2 else None
            routes = {m: (lambda: self._bulk(default, params, body)) for m in ("POST", "PUT")}
        elif n == 2 and parts[1] == "_doc":
            routes = {"POST": lambda: self._put_doc(parts[0], None, body)}
        elif n == 3 and parts[1] == "_doc":
            routes = {m: (lambda: self._put_doc(parts[0], parts[2], body)) for m in ("PUT", "POST")}
        elif parts[:2] == ["_cat", "indices"] and n <= 3:
            routes = {"GET": lambda: self._cat_indices(parts[2] if n == 3 else None, params)}
        elif n == 1 and not parts[0].startswith("_"):
            routes = {"PUT": lambda: self._put_index(parts[0], body)}
        path = "/" + "/".join(parts)
        if not routes:
            return 400, {"error": f"no handler found for uri [{path}] and method [{method}]", "status": 400}
        handler = routes.get(method)
        if handler is None:
            allowed = ", ".join(sorted(routes))
            reason = f"Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [{allowed}]"
            return 405, {"error": reason, "status": 405}
        return handler()

    # -- endpoints ----------------------------------------------------------------------------

    def _info(self) -> Answer:
        return 200, {
            "name": "fake-node-1",
            "cluster_name": self.cluster_name,
            "cluster_uuid": "fAkEcLuStEr0uUiD0000Aa",
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0" * 40,
                "build_date": "2024-10-25T10:00:00.000000000Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _search(self, target: str | None, params: dict[str, str], raw: bytes, started: float) -> Answer:
        check_params(f"/{target}/_search" if target else "/_search", params, SEARCH_PARAMS)
        body = json_body(raw)
        check_search_body(body)
        pit = body.get("pit")
        if pit is None:
            indices = resolve_indices(
                self._indices,
                target or "_all",
                ignore_unavailable=param_bool(params, "ignore_unavailable", False),
                allow_no_indices=param_bool(params, "allow_no_indices", True),
            )
            shards = snapshot(indices)
            return 200, run_search(
                body,
                params,
                shards,
                with_pit=False,
                started=started,
                shard_fault=self._shard_fault,
                allow_expensive_queries=self.allow_expensive_queries,
            )
        check_pit_search(target, params)
        pit_id, live = self._pits.lookup(pit, rotate=self.rotate_pit_ids)
        result = run_search(
            body,
            params,
            live.shards,
            with_pit=True,
            started=started,
            shard_fault=self._shard_fault,
            allow_expensive_queries=self.allow_expensive_queries,
        )
        return 200, {"pit_id": pit_id, **result}

    def _open_pit(self, target: str, params: dict[str, str]) -> Answer:
        check_params(f"/{target}/_pit", params, _PIT_PARAMS)
        if "keep_alive" not in params:
            raise validation_failed("[keep_alive] is not specified")
        keep_alive_ms = time_value(params["keep_alive"], "keep_alive")
        indices = resolve_indices(
            self._indices,
            target,
            ignore_unavailable=param_bool(params, "ignore_unavailable", False),
            allow_no_indices=True,
        )
        shards = snapshot(indices)
        pit_id = self._pits.open(shards, keep_alive_ms)
        counts = {"total": len(shards), "successful": len(shards), "skipped": 0, "failed": 0}
        return 200, {"id": pit_id, "_shards": counts}

    def _close_pit(self, raw: bytes) -> Answer:
        pit_id = json_body(raw).get("id")
        if not isinstance(pit_id, str):
            raise validation_failed("no pit ids specified")
        freed = self._pits.close(pit_id)
        if freed is None:
            return 404, {"succeeded": True, "num_freed": 0}
        return 200, {"succeeded": True, "num_freed": freed}

    def _put_doc(self, index_name: str, doc_id: str | None, raw: bytes) -> Answer:
        body = json_body(raw)
        index = self._index_for_write(index_name)
        doc, created = index.index_document(doc_id or self._new_id(), body)
        return (201 if created else 200), _write_result(index, doc, created)

    def _bulk(self, default: str | None, params: dict[str, str], raw: bytes) -> Answer:
        check_params("/_bulk", params, _BULK_PARAMS)
        text = raw.decode("utf-8")
        if not text.endswith("\n"):
            raise illegal_argument("The bulk request must be terminated by a newline [\\n]")
        lines = [line for line in text.split("\n") if line.strip()]
        items: list[dict[str, Any]] = []
        position = 0
        while position < len(lines):
            action_line = loose_json(lines[position].encode())
            position += 1
            if not isinstance(action_line, dict) or len(action_line) != 1:
                raise illegal_argument(f"Malformed action/metadata line [{position}], expected START_OBJECT")
            action, meta = next(iter(action_line.items()))
            meta = meta or {}
            index_name = meta.get("_index", default)
            doc_id = meta.get("_id")
            if action not in _BULK_ACTIONS:
                raise illegal_argument(
                    f"Malformed action/metadata line [{position}], expected field [create], [delete], "
                    f"[index] or [update] but found [{action}]"
                )
            if index_name is None:
                raise validation_failed("index is missing")
            if action == "delete":
                items.append(self._bulk_delete(index_name, doc_id))
                continue
            if position >= len(lines):
                raise illegal_argument("The bulk request must be terminated by a newline [\\n]")
            source = loose_json(lines[position].encode())
            position += 1
            if action == "update":
                reason = "bulk [update] is not implemented by FakeElasticsearch"
                error = {"type": "illegal_argument_exception", "reason": reason}
                items.append({action: {"_index": index_name, "_id": doc_id, "status": 400, "error": error}})
                continue
            items.append(self._bulk_write(action, index_name, doc_id, source))
        errors = any("error" in next(iter(item.values())) for item in items)
        return 200, {"errors": errors, "took": 1, "items": items}

    def _bulk_delete(self, index_name: str, doc_id: Any) -> dict[str, Any]:
        target = self._indices.get(index_name)
        removed = target.docs.pop(str(doc_id), None) if target else None
        result = {"_index": index_name, "_id": doc_id, "result": "deleted" if removed else "not_found"}
        return {"delete": {**result, "status": 200 if removed else 404}}

    def _bulk_write(self, action: str, index_name: str, doc_id: Any, source: Any) -> dict[str, Any]:
        try:
            if not isinstance(source, dict):
                raise EsError(400, "mapper_parsing_exception", "failed to parse: source is not an object")
            index = self._index_for_write(index_name)
            if action == "create" and doc_id is not None and str(doc_id) in index.docs:
                current = index.docs[str(doc_id)].version
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version [{current}])",
                    extra={"index_uuid": index.uuid, "shard": "0", "index": index_name},
                )
            doc, created = index.index_document(str(doc_id) if doc_id is not None else self._new_id(), source)
            return {action: {**_write_result(index, doc, created), "status": 201 if created else 200}}
        except EsError as exc:
            return {action: {"_index": index_name, "_id": doc_id, "status": exc.status, "error": exc.cause}}

    def _put_index(self, name: str, raw: bytes) -> Answer:
        body = json_body(raw)
        for key in body:
            if key not in ("mappings", "settings"):
                raise parsing_error(f"unknown key [{key}] for create index")
        self._create_index(name, body.get("mappings"))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _cat_indices(self, target: str | None, params: dict[str, str]) -> Answer:
        if params.get("format") != "json":
            raise illegal_argument("FakeElasticsearch serves _cat/indices only with format=json")
        indices = resolve_indices(
            self._indices, target or "_all", ignore_unavailable=False, allow_no_indices=True
        )
        return 200, [_cat_row(index) for index in indices]

    # -- state --------------------------------------------------------------------------------

    def _create_index(self, name: str, mappings: Mapping[str, Any] | None) -> Index:
        check_index_name(name)
        if name in self._indices:
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{self._indices[name].uuid}] already exists",
                extra={"index_uuid": self._indices[name].uuid, "index": name},
            )
        index = Index(name)
        if mappings:
            unknown = set(mappings) - {"properties", "dynamic"}
            if unknown:
                raise unimplemented(f"mapping options {sorted(unknown)}")
            index.add_mappings(mappings.get("properties", {}))
        self._indices[name] = index
        return index

    def _index_for_write(self, name: str) -> Index:
        return self._indices.get(name) or self._create_index(name, None)

    def _new_id(self) -> str:
        self._id_counter += 1
        raw = self._id_counter.to_bytes(6, "big") + secrets.token_bytes(9)
        return base64.urlsafe_b64encode(raw).decode()


def _write_result(index: Index, doc: Doc, created: bool) -> dict[str, Any]:
    return {
        "_index": index.name,
        "_id": doc.id,
        "_version": doc.version,
        "result": "created" if created else "updated",
        "_shards": {"total": 2, "successful": 1, "failed": 0},
        "_seq_no": doc.seq,
        "_primary_term": 1,
    }


def _cat_row(index: Index) -> dict[str, str]:
    size = f"{len(index.docs)}kb"
    return {
        "health": "yellow",
        "status": "open",
        "index": index.name,
        "uuid": index.uuid,
        "pri": "1",
        "rep": "1",
        "docs.count": str(len(index.docs)),
        "docs.deleted": "0",
        "store.size": size,
        "pri.store.size": size,
        "dataset.size": size,
    }
