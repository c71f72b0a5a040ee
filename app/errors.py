"""The base of Panorama's own errors; ``main.py`` turns each into a JSON answer.

Services raise these (never FastAPI's HTTPException): the status code travels
with the error, and the answer is always ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

from typing import Any


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
