"""The set of backend clients one Panorama process holds, built from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from app.backends.elasticsearch import ElasticsearchClient
from app.backends.http import BackendStatus, CallObserver, HttpBackend, ignore_call
from app.backends.jaeger import JaegerClient
from app.backends.prometheus import PrometheusClient
from app.config import Settings

BACKEND_NAMES = ["prometheus", "elasticsearch", "jaeger"]


class Closable(Protocol):
    async def aclose(self) -> None: ...


@dataclass
class Backends:
    """The configured clients; an unconfigured backend is None."""

    prometheus: PrometheusClient | None = None
    elasticsearch: ElasticsearchClient | None = None
    jaeger: JaegerClient | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        names: Iterable[str] = BACKEND_NAMES,
        *,
        observer: CallObserver = ignore_call,
    ) -> Backends:
        """Clients for the named backends that ``settings`` configure (no I/O happens here)."""
        wanted = set(names)
        backends = cls()
        if "prometheus" in wanted and settings.prometheus.configured:
            backends.prometheus = PrometheusClient(settings.prometheus, observer=observer)
        if "elasticsearch" in wanted and settings.elasticsearch.configured:
            backends.elasticsearch = ElasticsearchClient(settings.elasticsearch, observer=observer)
        if "jaeger" in wanted and settings.jaeger.configured:
            backends.jaeger = JaegerClient(settings.jaeger, observer=observer)
        return backends

    def by_name(self) -> dict[str, PrometheusClient | ElasticsearchClient | JaegerClient | None]:
        return {"prometheus": self.prometheus, "elasticsearch": self.elasticsearch, "jaeger": self.jaeger}

    def http_clients(self) -> list[HttpBackend]:
        """The clients built on httpx (traced by the httpx instrumentation)."""
        return [client for client in (self.prometheus, self.jaeger) if client is not None]

    async def aclose(self) -> None:
        for client in self.by_name().values():
            if client is not None:
                await client.aclose()

    async def probe_all(self, timeout_s: float) -> dict[str, BackendStatus]:
        """Probes every configured backend at once; the others are reported as not configured."""
        clients = self.by_name()
        configured = {name: client for name, client in clients.items() if client is not None}
        results = await asyncio.gather(*(client.probe(timeout_s) for client in configured.values()))
        statuses = dict(zip(configured, results, strict=True))
        return {
            name: statuses.get(name)
            or BackendStatus(name, configured=False, ok=False, error="not configured")
            for name in clients
        }
