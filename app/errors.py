"""The base of Panorama's own errors; ``main.py`` turns each into a JSON answer.

Services raise these (never FastAPI's HTTPException): the status code travels
with the error, and the answer is always ``{"error": code, "message": ...}``.

Two wordings travel with an error. ``message`` is English and machine-stable: the JSON API,
the logs and the CLI say it. ``phrase`` (optional) is the same thing as a key of the pages'
catalogue (:mod:`app.web.catalogue`) and its values, which an HTML page says in its reader's
language (:meth:`app.web.i18n.Translator.error`); an error without one shows its ``message``.
Nothing here knows about languages: a phrase is only a key and values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse


class Phrase:
    """A catalogue key and the values its text is filled with, for a page to say in its language:
    ``Phrase("problem.time.not_a_time", value="yesterday")``. A value may be a phrase itself (a
    part said in the same language) or a list of them; any other value is shown as it is (what
    the reader typed, a backend's own words)."""

    __slots__ = ("key", "values")

    def __init__(self, key: str, **values: object) -> None:
        self.key = key
        self.values: Mapping[str, object] = values

    def __repr__(self) -> str:
        return f"Phrase({self.key!r}, {dict(self.values)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Phrase) and (self.key, dict(self.values)) == (other.key, dict(other.values))

    __hash__ = None  # type: ignore[assignment]


class PanoramaError(Exception):
    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, phrase: Phrase | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.phrase = phrase
        self.extra = extra

    @property
    def parameter(self) -> str | None:
        """The request parameter the error is about, when it names one (``parameter``)."""
        named = self.extra.get("parameter")
        return named if isinstance(named, str) else None

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class InvalidInput(PanoramaError):
    status_code = 400
    code = "invalid_request"
    each: tuple[InvalidInput, ...] = ()
    """The problems one answer names (:meth:`combined`), each about its parameter; none: itself."""

    @classmethod
    def combined(cls, problems: Sequence[InvalidInput]) -> InvalidInput:
        """One error for several bad parameters read at once (a page's filter): the messages
        joined, the first one's parameter, and ``each`` for a page to say and mark them all."""
        if len(problems) == 1:
            return problems[0]
        message = "; ".join(p.message for p in problems)
        joined = cls(message, parameter=problems[0].parameter) if problems[0].parameter else cls(message)
        joined.each = tuple(problems)
        return joined


def known_names(names: Sequence[str], section: str) -> str:
    """How a 404 for a name that names nothing ends, in parentheses: the configured names
    (``known: daily, weekly``), or, when there are none, where they are configured (a first
    ``make run`` has none): ``none is configured: add one under 'digests' in the configuration
    file``."""
    if names:
        return f"known: {', '.join(names)}"
    return f"none is configured: add one under {section!r} in the configuration file"


class NotFound(PanoramaError):
    status_code = 404
    code = "not_found"


class Conflict(PanoramaError):
    status_code = 409
    code = "conflict"


class Unauthenticated(PanoramaError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PanoramaError):
    status_code = 403
    code = "forbidden"


def json_answer(exc: PanoramaError) -> JSONResponse:
    """The JSON answer of ``exc``: its status, ``{"error", "message", ...}``, for a missing or
    wrong credential the ``WWW-Authenticate`` challenge, and ``Retry-After`` when the error says
    how long to wait (``retry_after_s``)."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else {}
    if isinstance(exc.extra.get("retry_after_s"), int):  # something to wait for: when to ask again
        headers["Retry-After"] = str(exc.extra["retry_after_s"])
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers or None)


# --- error answers as routes declare them in OpenAPI ----------------------------------------

ANSWERS: dict[int, str] = {
    400: "Bad input; the message names the parameter",
    401: "Missing or wrong credentials",
    403: "The token's role is too low",
    404: "What the request names does not exist",
    409: "The change conflicts with the state it would change",
    410: "Gone: the link or cursor has expired",
    413: "The body is larger than allowed",
    502: "A backend answered badly or refused the query; `backend` names it",
    503: "A backend (or the database) is unreachable or not configured",
    504: "A backend did not answer in time",
}
"""What each error status means in Panorama's answers, said once for every route's OpenAPI."""


def answers(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: the error answers it gives, each in the shared words of
    :data:`ANSWERS` unless ``described`` says it more precisely (``_409="The incident is resolved
    already"``). ``main.py`` adds their body schema (``Error``), and 401/403 from the route's role."""
    said = {int(key.removeprefix("_")): text for key, text in described.items()}
    return {status: {"description": said.get(status, ANSWERS[status])} for status in (*statuses, *said)}
