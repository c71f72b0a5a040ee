"""The base of Panorama's own errors; ``main.py`` turns each into a JSON answer.

Services raise these (never FastAPI's HTTPException): the status code travels
with the error, and the answer is always ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class PanoramaError(Exception):
    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class InvalidInput(PanoramaError):
    status_code = 400
    code = "invalid_request"


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
