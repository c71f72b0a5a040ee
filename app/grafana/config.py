"""The ``grafana`` section: where people's Grafana is, so that pages can link to its dashboards.

(Grafana reaching Panorama as a datasource needs nothing here: see dashboards/README.md.)
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from pydantic import Field, field_validator

from app.config_types import Model


class GrafanaSettings(Model):
    url: str | None = Field(default=None, description="Grafana's address as browsers reach it")
    incident_dashboard: str = Field(
        default="panorama-overview", description="uid of the dashboard an incident page links to"
    )
    service_dashboard: str = Field(
        default="panorama-service-history", description="uid of the dashboard a service page links to"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    def dashboard_url(
        self, uid: str, start: datetime, end: datetime | None, variables: dict[str, str]
    ) -> str | None:
        """A dashboard over ``start``..``end`` (``now`` while open), with template variables; None
        when no Grafana is configured."""
        if self.url is None:
            return None
        query = {
            "from": str(int(start.timestamp() * 1000)),
            "to": str(int(end.timestamp() * 1000)) if end else "now",
            **{f"var-{name}": value for name, value in variables.items() if value},
        }
        return f"{self.url}/d/{quote(uid)}?{urlencode(query)}"
