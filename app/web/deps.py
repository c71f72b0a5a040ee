"""The page dependency: what every HTML route of the pages and the wall screen starts from.

A route takes ``page: PageDep``, calls ``page.require(scope)`` (or ``page.require_actor()``
before changing anything), gathers its data through the features' services, and returns
``page.render("<feature>/<template>.html", **data)``. The dependency has already worked out
the language, the reader (bearer token, login session or view link) and the signing key;
errors raised after it ran are answered as HTML pages (see :func:`error_page`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import signing
from app.backends.errors import NOT_CONFIGURED, BackendError
from app.config import Settings
from app.context import AppContext
from app.deps import get_context
from app.errors import InvalidInput, NotFound, PanoramaError, Phrase
from app.security import Principal, Role
from app.web import auth, shell
from app.web.errors import CannotAct, CrossSiteForm, LoginRequired, ScreenTokenOnly, ViewLinkRefused
from app.web.i18n import LANG_COOKIE, Translator, negotiate, parse_locale

log = logging.getLogger("panorama.web")

LANG_COOKIE_AGE_S = 365 * 24 * 3600
R = TypeVar("R", bound=Response)


@dataclass
class Page:
    request: Request
    context: AppContext
    key: bytes
    translator: Translator
    now: datetime
    principal: Principal | None = None
    grant: auth.ViewGrant | None = None
    link_problem: signing.InvalidToken | None = None
    remember_lang: str | None = None
    drop_session: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    address: tuple[str, dict[str, str]] | None = None
    """The page's own path and query when it answers a form posted to another address (the swap
    form's problem is the on-call page): its language switch and sign-in link lead there."""

    @property
    def settings(self) -> Settings:
        return self.context.settings

    # --- who may see and do what ----------------------------------------------------------

    def require(self, scope: str | None = None) -> None:
        """Lets through a signed-in reader (a viewer or more), or a view link for exactly ``scope``.

        A wall screen's token (role ``screen``) opens the wall screen's data and nothing else.
        """
        if self.principal is not None:
            if not self.principal.role.allows(Role.VIEWER):
                raise ScreenTokenOnly(
                    f"token {self.principal.name!r} has the screen role: it opens the wall screen only",
                    phrase=Phrase("problem.screen_token_only", name=self.principal.name),
                )
            return
        if self.grant is not None and scope is not None and self.grant.scope == scope:
            return
        if self.link_problem is not None:
            expired = self.link_problem.expired
            raise ViewLinkRefused(
                "this link has expired" if expired else "this link is not valid", expired=expired
            )
        raise LoginRequired("sign in to see this page")

    def require_actor(self) -> Principal:
        """An operator (or admin) signed in with a token or a session; never a view link."""
        self.check_same_site()
        if self.principal is None:
            raise LoginRequired("sign in with an operator's token to act on an incident")
        if not self.principal.role.allows(Role.OPERATOR):
            role = self.principal.role.value
            raise CannotAct(
                f"acting needs the operator role; token {self.principal.name!r} has {role}",
                phrase=Phrase("problem.cannot_act", name=self.principal.name, role=role),
            )
        return self.principal

    def check_same_site(self) -> None:
        """Refuses forms posted from another site (the session cookie is SameSite=Strict too)."""
        if self.request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise CrossSiteForm("this form was posted from another site", phrase=Phrase("problem.cross_site"))

    def mint(self, scope: str) -> str:
        """A view link for ``scope`` expiring with the one this reader came with (never later)."""
        assert self.grant is not None
        return auth.view_token(self.key, scope, self.grant.expires)

    # --- answers --------------------------------------------------------------------------

    def view(self, zones: Iterable[str] = (), problems: tuple[shell.FormProblem, ...] = ()) -> shell.PageView:
        """What the template sees; ``zones``: the zones the page shows its times in (see
        :func:`app.web.shell.zoned`; none: the configured one); ``problems``: what is wrong with
        the form's input."""
        request = self.request
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        path = request.url.path.removeprefix(request.scope.get("root_path", "")) or "/"
        if self.address is not None:
            path, query = self.address[0], {**self.address[1], **query}
        translator, part_zones = shell.zoned(self.translator, zones)
        return shell.PageView(
            translator=translator,
            now=self.now,
            path=path,
            query=query,
            root_path=request.scope.get("root_path", ""),
            principal=self.principal,
            view_scope=self.grant.scope if self.grant else None,
            view_expires=self.grant.expires if self.grant else None,
            can_act=self.principal is not None and self.principal.role.allows(Role.OPERATOR),
            mint=self.mint if self.grant is not None else None,
            part_zones=part_zones,
            problems=problems,
        )

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        zones: Iterable[str] = (),
        bad_input: InvalidInput | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The page; ``zones``: the time zones its times are in when not the configured one (a
        schedule's), which its footer then names. ``bad_input``: what was wrong with the input it answers
        (the reader's filter or form): the page is answered with its status (400), and says it in
        the reader's language above its form, marking the field it names (see :mod:`app.web.shell`)."""
        said: tuple[shell.FormProblem, ...] = ()
        if bad_input is not None:
            status = bad_input.status_code
            said = tuple(
                shell.FormProblem(self.translator.error(each), each.parameter)
                for each in bad_input.each or (bad_input,)
            )
        answer = HTMLResponse(shell.render(template, self.view(zones, said), **context), status_code=status)
        return self.finish(answer)

    def redirect(self, path: str, **params: Any) -> RedirectResponse:
        return self.finish(RedirectResponse(self.view().href(path, **params), status_code=303))

    def finish(self, answer: R) -> R:
        if self.remember_lang:
            answer.set_cookie(
                LANG_COOKIE, self.remember_lang, max_age=LANG_COOKIE_AGE_S, httponly=True, samesite="lax"
            )
        if self.drop_session:
            delete_session(answer)
        for name, value in self.extra_headers.items():
            answer.headers[name] = value
        return answer


def set_session(answer: Response, value: str, max_age_s: int) -> None:
    answer.set_cookie(
        auth.SESSION_COOKIE, value, max_age=max_age_s, path="/", secure=True, httponly=True, samesite="strict"
    )


def delete_session(answer: Response) -> None:
    answer.delete_cookie(auth.SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


async def signing_key(context: AppContext) -> bytes:
    assert context.alerts is not None, "the alerting runtime (which holds the signing key) is opened first"
    return await context.alerts.signing_key()


async def get_page(request: Request, context: Annotated[AppContext, Depends(get_context)]) -> Page:
    settings = context.settings
    now = datetime.now(UTC)
    asked = parse_locale(request.query_params.get("lang"))
    locale = negotiate(asked, request.cookies.get(LANG_COOKIE), settings.alerts.locale)
    page = Page(
        request=request,
        context=context,
        key=b"",
        translator=Translator(locale, settings.tzinfo),
        now=now,
        remember_lang=asked,
    )
    request.state.page = page  # from here on, errors are answered as HTML pages
    page.key = await signing_key(context)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not credentials:
            raise LoginRequired("the Authorization header must be `Bearer <token>`")
        page.principal = context.tokens.authenticate(credentials.strip())
        if page.principal is None:
            raise LoginRequired("invalid token")
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if page.principal is None and cookie:
        try:
            page.principal = auth.check_session(page.key, context.tokens, cookie, now)
        except signing.InvalidToken:
            page.drop_session = True
    link = request.query_params.get(auth.VIEW_PARAM)
    if link:
        try:
            page.grant = auth.check_view(page.key, link, now)
        except signing.InvalidToken as problem:
            page.link_problem = problem
    return page


PageDep = Annotated[Page, Depends(get_page)]


def error_page(request: Request, error: Exception) -> Response | None:
    """The HTML answer to an error raised while serving a page (None for API requests)."""
    page: Page | None = getattr(request.state, "page", None)
    if page is None:
        return None
    t = page.translator
    if isinstance(error, LoginRequired | ViewLinkRefused):
        if isinstance(error, ViewLinkRefused):
            heading = t("auth.link_expired") if error.expired else t("auth.link_invalid")
        else:
            heading = t("auth.sign_in")
        page.extra_headers["WWW-Authenticate"] = 'Bearer realm="panorama"'
        if isinstance(error, LoginRequired) and _cross_site_navigation(request):
            # SameSite=Strict cookies are not sent on the first navigation from another site (a
            # link in Grafana or a chat app): ask once more from here, where they are.
            return page.render("web/bounce.html", status=200)
        note = t("auth.link_help") if isinstance(error, ViewLinkRefused) else None
        return page.render(
            "web/login.html",
            status=error.status_code,
            heading=heading,
            problem=None,
            note=note,
            target=_target(request),
        )
    if isinstance(error, BackendError):
        status = error.kind.http_status
        heading = t("error.backend_title") if error.configured else t("error.not_configured_title")
        return page.render("web/error.html", status=status, heading=heading, message=t.error(error))
    if isinstance(error, PanoramaError):
        return page.render(
            "web/error.html", status=error.status_code, heading=_heading(t, error), message=t.error(error)
        )
    return page.render("web/error.html", status=500, heading=t("error.title"), message=t("error.internal"))


def _heading(t: Translator, error: PanoramaError) -> str:
    if error.phrase is not None and error.phrase.key == NOT_CONFIGURED:
        return t("error.not_configured_title")
    if isinstance(error, NotFound):
        return t("error.not_found")
    if isinstance(error, InvalidInput):
        return t("error.invalid")
    return t("error.title")


def prefers_html(request: Request) -> bool:
    """A browser's navigation: its ``Accept`` names an HTML type first. API clients
    (``application/json``, ``*/*``, none) do not."""
    first = request.headers.get("accept", "").split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first in ("text/html", "application/xhtml+xml")


def no_such_page(request: Request) -> Response | None:
    """The 404 page of a path no route serves, for a browser (None for API clients, who keep the
    JSON answer). Nobody is authenticated for it and the query is not echoed (it may hold a view
    link): the language comes from ``?lang=``, the remembered choice or the configuration."""
    context: AppContext | None = getattr(request.app.state, "context", None)
    if context is None or not prefers_html(request):
        return None
    settings = context.settings
    locale = negotiate(
        request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), settings.alerts.locale
    )
    t = Translator(locale, settings.tzinfo)
    root_path = request.scope.get("root_path", "")
    view = shell.PageView(
        translator=t,
        now=datetime.now(UTC),
        path=request.url.path.removeprefix(root_path) or "/",
        query={},
        root_path=root_path,
        reader_known=False,
    )
    body = shell.render("web/error.html", view, heading=t("error.not_found"), message=t("error.no_such_page"))
    return HTMLResponse(body, status_code=404)


def _cross_site_navigation(request: Request) -> bool:
    return (
        request.method == "GET"
        and request.headers.get("sec-fetch-site") == "cross-site"
        and request.headers.get("sec-fetch-mode") == "navigate"
    )


def _target(request: Request) -> str:
    """Where the login form sends the reader back to: this page, without a refused view link."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in (auth.VIEW_PARAM, "lang")]
    return request.url.path + (f"?{urlencode(query)}" if query else "")
