"""The page shell: one Jinja2 environment for every HTML page (pages, wall screen, ack links).

Templates are named ``<feature>/<file>`` and live in ``app/<feature>/templates/`` (e.g.
``pages/incident.html`` is ``app/pages/templates/incident.html``); every page extends
``web/base.html`` (the layout, the stylesheet, the script, the header and the language
switch). A template sees:

- ``_`` — the translator (``{{ _("incident.ack") }}``, plus ``_.time()``, ``_.ago()``, ``_.ms()``…);
- ``static(path)`` — the versioned URL of a static file;
- ``page`` — the request's :class:`PageView` (locale, who is looking, ``page.href()``);
- whatever the route passed.

Autoescaping is on for every template. This module renders text only: no I/O, no framework.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

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

    @property
    def locale(self) -> str:
        return self.translator.locale

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


def render(template: str, view: PageView, **context: Any) -> str:
    return environment.get_template(template).render(page=view, _=view.translator, **context)


def render_docs(openapi_url: str = "/openapi.json") -> str:
    """The ``/docs`` page: Swagger UI with its own layout, outside the pages' shell."""
    template = environment.get_template("web/docs.html")
    return template.render(swagger_ui=static.swagger_ui_url, openapi_url=openapi_url)
