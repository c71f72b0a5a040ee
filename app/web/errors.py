"""Why a page cannot be shown to this reader (``main.py`` answers them as HTML pages)."""

from __future__ import annotations

from app.errors import Forbidden, Unauthenticated


class LoginRequired(Unauthenticated):
    """No bearer token, session or view link that opens this page: the answer is the login form."""

    code = "login_required"


class ViewLinkRefused(Unauthenticated):
    """A view link that is forged, malformed or expired (410 when only its time is up)."""

    code = "view_link_refused"

    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message)
        self.expired = expired
        if expired:
            self.status_code = 410


class CannotAct(Forbidden):
    """Acting on an incident needs an operator's token (or the ack link's signature)."""

    code = "cannot_act"


class ScreenTokenOnly(Forbidden):
    """A wall screen's token (or a session made from one) on a page that shows more than the wall."""

    code = "screen_token_only"


class CrossSiteForm(Forbidden):
    """A form posted from another site (what a forged request looks like)."""

    code = "cross_site_request"
