"""The one error type every backend client raises.

It names the backend and the kind of failure, so that an endpoint can answer
502/503/504 with a body saying which backend failed and why, never a bare 500.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import Phrase

DISPLAY_NAMES = {
    "prometheus": "Prometheus",
    "elasticsearch": "Elasticsearch",
    "jaeger": "Jaeger",
    "alertmanager": "Alertmanager",
}
"""How pages name a backend (a product's name is the same in every language)."""


def display_name(backend: str) -> str:
    """``Prometheus`` for ``prometheus``: a backend as pages and the wall name it."""
    return DISPLAY_NAMES.get(backend, backend)


NOT_CONFIGURED = "problem.backends_not_configured"
"""The phrase of an answer whose every backend is not configured (``BackendsFailed``); with
``problem.backend.not_configured`` (one backend), what an error page heads as "not configured"."""


class BackendErrorKind(StrEnum):
    NOT_CONFIGURED = "not_configured"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    BAD_QUERY = "bad_query"
    BAD_RESPONSE = "bad_response"
    UNAUTHORIZED = "unauthorized"

    @property
    def http_status(self) -> int:
        """The status an endpoint answers when this failure stops it."""
        return _HTTP_STATUS[self]


_HTTP_STATUS = {
    BackendErrorKind.NOT_CONFIGURED: 503,
    BackendErrorKind.UNREACHABLE: 503,
    BackendErrorKind.TIMEOUT: 504,
    BackendErrorKind.BAD_QUERY: 502,
    BackendErrorKind.BAD_RESPONSE: 502,
    BackendErrorKind.UNAUTHORIZED: 502,
}


class BackendError(Exception):
    """A call to ``backend`` failed.

    ``message`` is for humans and carries the backend's own words where it gave
    any (e.g. Prometheus's PromQL parse error). It never names the backend itself:
    whoever shows it puts the name in front once (``described``), so an answer never
    reads "prometheus: prometheus is ...". ``status`` is the backend's HTTP status
    when it answered at all.
    """

    def __init__(
        self,
        backend: str,
        kind: BackendErrorKind,
        message: str,
        *,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{backend}: {kind.value}: {message}")
        self.backend = backend
        self.kind = kind
        self.message = message
        self.status = status

    @property
    def described(self) -> str:
        """The message with its subject in front: ``prometheus: not configured (...)``."""
        return f"{self.backend}: {self.message}"

    @property
    def display_name(self) -> str:
        return display_name(self.backend)

    @property
    def phrase(self) -> Phrase:
        """The failure as a page says it: its kind in the page's language, the backend by name, and
        ``message`` (a backend's own words, or what Panorama saw of the connection) as the detail.
        A missing configuration is Panorama's own words entirely, so it is said whole."""
        if self.backend == "database":
            return Phrase("problem.database")
        if self.kind is BackendErrorKind.NOT_CONFIGURED:
            setting, env = f"{self.backend}.url", f"PANORAMA_{self.backend.upper()}_URL"
            return Phrase(
                "problem.backend.not_configured", backend=self.display_name, setting=setting, env=env
            )
        return Phrase(f"problem.backend.{self.kind.value}", backend=self.display_name, detail=self.message)

    @property
    def configured(self) -> bool:
        """False when the backend is simply not configured: nothing failed, and waiting won't help."""
        return self.kind is not BackendErrorKind.NOT_CONFIGURED

    def missing(self, part: Phrase) -> Phrase:
        """Why ``part`` of a page is not shown, as every page says it: a backend not configured is
        said plainly, with how to configure it (``part.not_configured``); only a real failure says
        the part is temporarily unavailable, and what happened (``part.unavailable``)."""
        if not self.configured:
            return Phrase("part.not_configured", part=part, **self.phrase.values)
        return Phrase("part.unavailable", part=part, problem=self.phrase)

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed if tried again."""
        if self.kind is BackendErrorKind.UNREACHABLE:
            return True
        if self.kind is BackendErrorKind.TIMEOUT:
            # A timeout the backend reported itself (e.g. Prometheus's query timeout)
            # would only repeat, at the same cost; one with no answer at all may pass.
            return self.status is None
        # 429: the backend sheds load (e.g. Elasticsearch's rejected execution); back off and retry.
        return self.kind is BackendErrorKind.BAD_RESPONSE and self.status in (429, 502, 503)


def not_configured(backend: str) -> BackendError:
    return BackendError(
        backend,
        BackendErrorKind.NOT_CONFIGURED,
        f"not configured (set {backend}.url or PANORAMA_{backend.upper()}_URL)",
    )
