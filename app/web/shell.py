"""The page shell: one Jinja2 environment for every HTML page (pages, wall screen, ack links).

Templates are named ``<feature>/<file>`` and live in ``app/<feature>/templates/`` (e.g.
``pages/incident.html`` is ``app/pages/templates/incident.html``); every page extends
``web/base.html`` (the layout, the stylesheet, the script, the header and the language
switch). A template sees:

- ``_`` — the translator (``{{ _("incident.ack") }}``, plus ``_.time()``, ``_.ago()``, ``_.ms()``…);
- ``static(path)`` — the versioned URL of a static file;
- ``page`` — the request's :class:`PageView` (locale, who is looking, ``page.href()``,
  ``page.times_in``: the zone the page's times are in, which the footer names, and
  ``page.problems``: what is wrong with what the reader asked, see below);
- whatever the route passed.

Bad input on a page with a form (a filter of the incidents, the on-call page's swap form) is not
an error page: the route answers its own page again, status 400, with ``page.problems`` (each
a :class:`FormProblem`: the text in the page's language and the parameter it is about; several
when the route read several bad ones at once, ``InvalidInput.combined``). The form keeps what
the reader typed (the route passes it back), ``macros.form_problem()`` says the problems above
the form and ``macros.invalid('name')`` marks each field named (``aria-invalid``, described by
the problems). One way for every page: ``Page.render(...,
bad_input=error)`` (:mod:`app.web.deps`).

Times: ``_`` shows them in the zone the page's times are in. That is the configured
``timezone`` unless the route says otherwise (``page.render(..., zones=[...])``: the on-call page
of a schedule in Asia/Shanghai lists its shifts in Asia/Shanghai, and its footer says so). A page
whose parts are in different zones (every schedule's card, each in its own) keeps the configured
zone for its own times, each part names its zone and formats with ``_.within(zone)``, and the
footer lists those zones.

Autoescaping is on for every template. This module renders text only: no I/O, no framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import BaseLoader, Environment, PackageLoader, StrictUndefined, TemplateNotFound

from app.security import Principal
from app.web import static
from app.web.i18n import Translator

_FEATURES = ("web", "pages", "screen", "alerts", "digests")


class FeatureLoader(BaseLoader):
    """``pages/incident.html`` → ``app/pages/templates/incident.html``."""

    def __init__(self) -> None:
        self._loaders: dict[str, PackageLoader] = {}

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        feature, _, name = template.partition("/")
        if feature not in _FEATURES or not name:
            raise TemplateNotFound(template)
        loader = self._loaders.get(feature)
        if loader is None:
            try:
                loader = self._loaders[feature] = PackageLoader(f"app.{feature}", "templates")
            except ValueError:
                raise TemplateNotFound(template) from None
        return loader.get_source(environment, name)


environment = Environment(
    loader=FeatureLoader(),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    enable_async=False,
)
environment.globals["static"] = static.url


@dataclass(frozen=True)
class FormProblem:
    """What is wrong with a form's input, said in the page's language; ``parameter``: the field
    (query parameter) it is about, when it names one."""

    text: str
    parameter: str | None = None


SECTIONS = ("/oncall", "/incidents")
"""The lists the header's navigation leads to; the last is where any other page belongs."""


@dataclass(frozen=True)
class PageView:
    """What a template knows about the request it answers."""

    translator: Translator
    now: datetime
    path: str
    query: dict[str, str]
    root_path: str = ""
    principal: Principal | None = None
    view_scope: str | None = None  # opened through a view link for this scope
    view_expires: datetime | None = None
    can_act: bool = False
    mint: Callable[[str], str] | None = field(default=None, repr=False)
    part_zones: tuple[ZoneInfo, ...] = ()  # zones some parts of the page show their own times in
    problems: tuple[FormProblem, ...] = ()  # what is wrong with the form's input (the page answers 400)
    # False: answered without asking who reads it (the 404 of a path no route serves), so the
    # header offers neither "sign in" (to a reader who may be signed in) nor "sign out"
    reader_known: bool = True

    @property
    def locale(self) -> str:
        return self.translator.locale

    @property
    def times_in(self) -> str:
        """What the footer says: "时间均为 Asia/Shanghai (UTC+08:00)", and the parts' own zones."""
        t = self.translator
        zone = t.zone_name(self.now)
        if not self.part_zones:
            return t("foot.times_in", zone=zone)
        others = t("list.separator").join(t.within(z).zone_name(self.now) for z in self.part_zones)
        return t("foot.times_in_parts", zone=zone, others=others)

    @property
    def section(self) -> str:
        """The list this page belongs to, as the header's navigation names them: ``/oncall`` for the
        on-call pages (a schedule, its swaps), else ``/incidents``. An error page links back there,
        so a schedule not found leads back to the schedules, an incident not found to the incidents."""
        return next((s for s in SECTIONS if self.path == s or self.path.startswith(f"{s}/")), SECTIONS[-1])

    def invalid(self, parameter: str) -> bool:
        """Whether a problem of the form's input is about ``parameter`` (its field is marked)."""
        return any(p.parameter == parameter for p in self.problems)

    @property
    def signed_in(self) -> bool:
        return self.principal is not None

    def href(
        self,
        path: str,
        scope: str | None = None,
        query_params: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> str:
        """A link to one of Panorama's pages, with query parameters (empty ones left out). A reader
        who came through a view link gets a view link of the same expiry for ``scope``."""
        merged = {**(query_params or {}), **params}
        query = {k: str(v) for k, v in merged.items() if v not in (None, "")}
        if scope is not None and self.principal is None and self.mint is not None:
            query["view"] = self.mint(scope)
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.root_path}{path}{suffix}"

    def lang_href(self, locale: str) -> str:
        """This page in another language (keeping its query, a view link included)."""
        return self.href(self.path, query_params={**self.query, "lang": locale})

    def login_href(self) -> str:
        target = self.path + (f"?{urlencode(self.query)}" if self.query else "")
        return self.href("/login", next=target)


def zoned(translator: Translator, zones: Iterable[str]) -> tuple[Translator, tuple[ZoneInfo, ...]]:
    """The page's translator in the zone its times are in, and the zones its parts name for theirs.

    ``zones``: the IANA zones the page shows times in (none: the configured one, the translator's).
    One zone: the whole page is in it. Several: the page keeps the configured zone, and the
    others are the parts' own (each part names its zone where it shows its times)."""
    distinct = list(dict.fromkeys(ZoneInfo(name) for name in zones))
    if len(distinct) == 1:
        return translator.within(distinct[0]), ()
    return translator, tuple(z for z in distinct if z.key != translator.tz.key)


def render(template: str, view: PageView, **context: Any) -> str:
    return environment.get_template(template).render(page=view, _=view.translator, **context)


def render_docs(openapi_url: str = "/openapi.json") -> str:
    """The ``/docs`` page: Swagger UI with its own layout, outside the pages' shell."""
    template = environment.get_template("web/docs.html")
    return template.render(swagger_ui=static.swagger_ui_url, openapi_url=openapi_url)
