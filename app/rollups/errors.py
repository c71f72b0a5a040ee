"""Errors of the rollups feature."""

from __future__ import annotations

from app.errors import InvalidInput, NotFound, PanoramaError


class RollupQueryError(PanoramaError):
    """A definition's query answered in a shape the rollup cannot store (a configuration mistake)."""

    status_code = 502
    code = "rollup_query_error"


class HistoryNotSettled(PanoramaError):
    """The alert journal still holds webhooks received before the day ended: the day's on-call
    history is not final yet (its incidents open, are acknowledged and resolve when applied)."""

    status_code = 503
    code = "oncall_history_not_settled"


class InvalidPeriod(InvalidInput):
    """Malformed, reversed or too long dates."""


class UnknownEntity(NotFound):
    """No rollup was ever stored for this entity."""


class UnknownFigure(NotFound):
    pass
