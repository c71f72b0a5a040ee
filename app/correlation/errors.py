"""Errors of the correlation endpoints; ``main.py`` answers each with its status and JSON body."""

from __future__ import annotations

from app.backends.errors import NOT_CONFIGURED, BackendError
from app.errors import NotFound, PanoramaError, Phrase


class TraceNotFound(NotFound):
    code = "trace_not_found"


class CursorExpired(PanoramaError):
    """The point in time behind a log-search cursor is gone (kept alive only so long)."""

    status_code = 410
    code = "cursor_expired"


class BackendsFailed(PanoramaError):
    """Every backend an answer needed failed; the body names each one and why.

    The status is the one each failure alone would give when they agree (503 when all are
    unreachable or not configured, 504 when all timed out), else 502.
    """

    code = "backends_failed"

    def __init__(self, failures: dict[str, BackendError], context: str = "") -> None:
        self.failures = failures
        statuses = {error.kind.http_status for error in failures.values()}
        self.status_code = statuses.pop() if len(statuses) == 1 else 502
        reasons = "; ".join(f"{name}: {error.message}" for name, error in failures.items())
        # none of them configured (a first `make run`) is no failure: said plainly, as each part says it
        said = "problem.backends_failed" if any(e.configured for e in failures.values()) else NOT_CONFIGURED
        super().__init__(
            f"{context}{reasons}",
            phrase=Phrase(said, failures=[e.phrase for e in failures.values()]),
            backends={name: {"kind": e.kind.value, "message": e.message} for name, e in failures.items()},
        )
