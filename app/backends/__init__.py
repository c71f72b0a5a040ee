"""Thin async clients of the stores Panorama reads: Prometheus, Elasticsearch, Jaeger.

They speak the wire protocol and return typed results; no business logic lives here.
"""
