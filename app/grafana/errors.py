"""Errors of the Grafana datasource; the routes answer each as ``{"message": ...}`` with its status."""

from __future__ import annotations

from app.errors import InvalidInput, NotFound


class UnknownMetric(NotFound):
    """A target names no figure of any configured entity kind."""

    code = "unknown_metric"


class InvalidQuery(InvalidInput):
    """A malformed range, payload, variable value or ad hoc filter."""
