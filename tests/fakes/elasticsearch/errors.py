"""Error answers in Elasticsearch's envelope (``root_cause``, ``type``, ``reason``, ``status``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NODE_ID = "fAkEnOdE0000000000000A"


class EsError(Exception):
    """An error answer. ``shard_level`` errors are wrapped in ``search_phase_execution_exception``."""

    def __init__(
        self,
        status: int,
        error_type: str,
        reason: str,
        *,
        shard_level: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.shard_level = shard_level
        self.extra = dict(extra or {})
        self.index: str | None = None

    def with_index(self, index: str) -> EsError:
        """The same error, naming the index whose shard failed."""
        self.index = index
        return self

    @property
    def cause(self) -> dict[str, Any]:
        return {"type": self.error_type, "reason": self.reason, **self.extra}

    def body(self) -> dict[str, Any]:
        cause = self.cause
        if not self.shard_level:
            return {"error": {"root_cause": [cause], **cause}, "status": self.status}
        failure = {"shard": 0, "index": self.index, "node": NODE_ID, "reason": cause}
        error = {
            "root_cause": [cause],
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
            "phase": "query",
            "grouped": True,
            "failed_shards": [failure],
            "caused_by": cause,
        }
        return {"error": error, "status": self.status}


def parsing_error(reason: str) -> EsError:
    return EsError(400, "parsing_exception", reason, extra={"line": 1, "col": 1})


def unimplemented(what: str) -> EsError:
    """What Elasticsearch has but this fake refuses, rather than silently ignoring it."""
    return parsing_error(f"{what} is not implemented by FakeElasticsearch")


def illegal_argument(reason: str, *, shard_level: bool = False) -> EsError:
    return EsError(400, "illegal_argument_exception", reason, shard_level=shard_level)


def shard_query_error(reason: str) -> EsError:
    return EsError(400, "query_shard_exception", reason, shard_level=True)


def date_parse_error(reason: str) -> EsError:
    return EsError(400, "parse_exception", reason, shard_level=True)


def validation_failed(*problems: str) -> EsError:
    """``Validation Failed: 1: first;2: second;``, as a request's ``validate()`` reports."""
    numbered = "".join(f"{n}: {problem};" for n, problem in enumerate(problems, 1))
    return EsError(400, "action_request_validation_exception", f"Validation Failed: {numbered}")


def mapper_parsing_error(reason: str) -> EsError:
    return EsError(400, "mapper_parsing_exception", reason)


def index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        extra={
            "resource.type": "index_or_alias",
            "resource.id": name,
            "index_uuid": "_na_",
            "index": name,
        },
    )
