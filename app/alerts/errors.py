"""Errors of the alerting feature."""

from __future__ import annotations

from app.errors import Conflict, InvalidInput, NotFound, PanoramaError, Unauthenticated


class UnknownIncident(NotFound):
    pass


class UnknownIntake(NotFound):
    pass


class UnknownSchedule(NotFound):
    pass


class UnknownOverride(NotFound):
    pass


class InvalidAlertmanagerPayload(InvalidInput):
    """A webhook body that can never succeed: Alertmanager must not retry it."""


class PayloadTooLarge(PanoramaError):
    status_code = 413
    code = "payload_too_large"


class WebhookUnauthorized(Unauthenticated):
    pass


class IncidentClosed(Conflict):
    """The action does not apply to an incident in this state (e.g. acknowledging a resolved one)."""


class StorageFailed(PanoramaError):
    """The payload could not be stored; Alertmanager should retry (5xx)."""

    status_code = 503
    code = "storage_failed"


class UnknownUser(NotFound):
    pass


class UnknownSwap(NotFound):
    pass


class SwapClosed(Conflict):
    """The swap was taken or cancelled already (by someone else, a moment ago)."""


class FeedRefused(Unauthenticated):
    """A calendar feed URL that is forged, for another feed, or revoked."""

    code = "feed_refused"


class FeedExpired(PanoramaError):
    status_code = 410
    code = "feed_expired"
