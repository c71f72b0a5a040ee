"""The ``grafana`` section: where people's Grafana is, so that pages can link to its dashboards.

(Grafana reaching Panorama as a datasource needs nothing here: see dashboards/README.md.)
"""

from __future__ import annotations

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
