"""Panorama: the observability hub above Prometheus, Alertmanager, Elasticsearch and Jaeger."""

__version__ = "0.1.0"
