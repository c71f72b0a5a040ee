"""Errors of the rollups feature."""

from __future__ import annotations

from app.errors import InvalidInput, NotFound, PanoramaError


class RollupQueryError(PanoramaError):
    """A definition's query answered in a shape the rollup cannot store (a configuration mistake)."""

    status_code = 502
    code = "rollup_query_error"


class InvalidPeriod(InvalidInput):
    """Malformed, reversed or too long dates."""


class UnknownEntity(NotFound):
    """No rollup was ever stored for this entity."""


class UnknownFigure(NotFound):
    pass
