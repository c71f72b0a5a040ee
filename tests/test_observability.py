"""Panorama's own telemetry: /metrics, JSON logs with trace ids, trace propagation, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.observability import configure_logging
from tests.fakes.server import serve
from tests.harness.app import ADMIN_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.processes import free_port
from tests.harness.waiting import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("INFO", secrets=[VIEWER_TOKEN, ADMIN_TOKEN], stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def sample(exposition: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        if "{" in metric:
            family, _, rest = metric.partition("{")
            found = ",".join(sorted(rest.rstrip("}").split(",")))
        else:
            family, found = metric, ""
        if family == name and found == wanted:
            return float(value)
    return None


async def test_metrics_count_requests_by_route_template(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        for _ in range(3):
            await client.get("/api/v1/whoami", headers=bearer(VIEWER_TOKEN))
        await client.get("/api/v1/whoami")
        await client.get("/no/such/route/42")
        exposition = (await client.get("/metrics")).text
    assert (
        sample(exposition, "panorama_http_requests_total", route="/api/v1/whoami", method="GET", status="200")
        == 3
    )
    assert (
        sample(exposition, "panorama_http_requests_total", route="/api/v1/whoami", method="GET", status="401")
        == 1
    )
    assert (
        sample(exposition, "panorama_http_requests_total", route="<unmatched>", method="GET", status="404")
        == 1
    )
    assert (
        sample(
            exposition, "panorama_http_request_duration_seconds_count", route="/api/v1/whoami", method="GET"
        )
        == 4
    )
    assert "/no/such/route/42" not in exposition


async def test_metrics_show_the_database_pool(app_factory: AppFactory, postgres_url: str) -> None:
    async with app_factory(database_url=postgres_url) as (_app, client):
        await client.get("/readyz")
        exposition = ""

        async def idle_pool() -> bool:  # the journal's applier may be between two reads
            nonlocal exposition
            exposition = (await client.get("/metrics")).text
            return sample(exposition, "panorama_db_pool_connections", state="checked_out") == 0

        await eventually(idle_pool, "no connection checked out")
    assert sample(exposition, "panorama_db_pool_size") == 5
    assert sample(exposition, "panorama_db_pool_connections", state="checked_out") == 0
    idle = sample(exposition, "panorama_db_pool_connections", state="idle")
    assert idle is not None
    assert idle >= 1


async def test_metrics_count_backend_calls_by_outcome(app_factory: AppFactory, prometheus: Any) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with app_factory(prometheus={"url": prometheus.url}, jaeger={"url": closed, "retries": 0}) as (
        _app,
        client,
    ):
        await client.get("/readyz")
        exposition = (await client.get("/metrics")).text
    ok = sample(exposition, "panorama_backend_requests_total", backend="prometheus", outcome="ok")
    assert ok is not None
    assert ok >= 1
    down = sample(exposition, "panorama_backend_requests_total", backend="jaeger", outcome="unreachable")
    assert down is not None
    assert down >= 1
    count = sample(exposition, "panorama_backend_request_duration_seconds_count", backend="prometheus")
    assert count == ok


async def test_logs_are_json_with_the_incoming_w3c_trace(
    app_factory: AppFactory, log_stream: io.StringIO
) -> None:
    async with app_factory() as (_app, client):
        await client.get(
            "/api/v1/whoami",
            headers={**bearer(VIEWER_TOKEN), "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
    access = [line for line in json_lines(log_stream) if line["logger"] == "panorama.access"]
    assert len(access) == 1
    line = access[0]
    assert line["level"] == "info"
    assert line["message"] == "GET /api/v1/whoami 200"
    assert line["trace_id"] == TRACE_ID
    assert len(line["span_id"]) == 16
    assert line["route"] == "/api/v1/whoami"
    assert line["time"].endswith("+00:00")


async def test_jaeger_uber_trace_id_is_accepted(app_factory: AppFactory, log_stream: io.StringIO) -> None:
    async with app_factory() as (_app, client):
        await client.get(
            "/api/v1/whoami",
            headers={**bearer(VIEWER_TOKEN), "uber-trace-id": "a3ce929d0e0e4736:00f067aa0ba902b7:0:1"},
        )
    [line] = [line for line in json_lines(log_stream) if line["logger"] == "panorama.access"]
    assert line["trace_id"] == "0000000000000000a3ce929d0e0e4736"


async def test_tokens_never_reach_the_logs(app_factory: AppFactory, log_stream: io.StringIO) -> None:
    async with app_factory() as (_app, client):
        await client.get("/api/v1/whoami", headers=bearer(VIEWER_TOKEN))
        await client.get(f"/api/v1/whoami?token={ADMIN_TOKEN}", headers=bearer(ADMIN_TOKEN))
        logging.getLogger("panorama.test").warning("a careless line with %s in it", VIEWER_TOKEN)
    output = log_stream.getvalue()
    assert VIEWER_TOKEN not in output
    assert ADMIN_TOKEN not in output
    assert "a careless line with [REDACTED] in it" in output
    assert len(json_lines(log_stream)) >= 3


async def test_the_access_line_written_directly_is_the_line_logging_writes(
    app_factory: AppFactory, log_stream: io.StringIO
) -> None:
    """Panorama's handler writes access lines itself when nothing else is on their way
    (``JsonLines.access_line``); with a filter on the access logger they go through ``logging``.
    Both lines are the same, keys in the same order, secrets in the path redacted."""

    class Counting(logging.Filter):
        seen = 0

        def filter(self, record: logging.LogRecord) -> bool:
            Counting.seen += 1
            return True

    access_logger = logging.getLogger("panorama.access")
    async with app_factory() as (_app, client):
        await client.get(f"/no/such/{VIEWER_TOKEN}", headers=bearer(VIEWER_TOKEN))
        through_logging = Counting()
        access_logger.addFilter(through_logging)
        try:
            await client.get(f"/no/such/{VIEWER_TOKEN}", headers=bearer(VIEWER_TOKEN))
        finally:
            access_logger.removeFilter(through_logging)
    assert Counting.seen == 1  # the second line went through logging, the first did not
    direct, logged = [line for line in json_lines(log_stream) if line["logger"] == "panorama.access"]
    assert VIEWER_TOKEN not in log_stream.getvalue()
    assert list(direct) == list(logged)  # the same keys, in the same order
    varying = {"time", "trace_id", "span_id", "duration_ms"}
    assert {k: v for k, v in direct.items() if k not in varying} == {
        k: v for k, v in logged.items() if k not in varying
    }
    assert direct["message"] == "GET /no/such/[REDACTED] 404"
    assert direct["route"] == "<unmatched>"
    assert direct["time"].endswith("+00:00")
    assert len(direct["time"]) == len(logged["time"])


async def test_a_request_without_an_incoming_trace_gets_a_trace_of_its_own(
    app_factory: AppFactory, log_stream: io.StringIO
) -> None:
    async with app_factory() as (_app, client):  # no span exporter: the trace context without spans
        for _ in range(2):
            await client.get("/api/v1/whoami", headers=bearer(VIEWER_TOKEN))
        await client.get("/api/v1/whoami", headers={**bearer(VIEWER_TOKEN), "traceparent": "00-bad-01"})
    access = [line for line in json_lines(log_stream) if line["logger"] == "panorama.access"]
    trace_ids = [line["trace_id"] for line in access]
    assert len(trace_ids) == 3
    assert len(set(trace_ids)) == 3  # one trace per request; a malformed traceparent starts a new one
    assert all(len(t) == 32 and int(t, 16) != 0 for t in trace_ids)
    assert all(len(line["span_id"]) == 16 for line in access)


async def test_the_incoming_trace_goes_on_to_the_backends_without_a_span_exporter(
    app_factory: AppFactory,
) -> None:
    seen: list[str] = []

    async def jaeger(scope: Any, _receive: Any, send: Any) -> None:  # knows no trace: 404
        seen.append(dict(scope["headers"]).get(b"traceparent", b"").decode())
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(jaeger) as server:
        async with app_factory(jaeger={"url": server.url, "retries": 0}) as (_app, client):
            await client.get(
                f"/api/v1/traces/{TRACE_ID[::-1]}",
                headers={**bearer(VIEWER_TOKEN), "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
            )
    assert seen
    assert all(value.startswith(f"00-{TRACE_ID}-") for value in seen)
    assert not [value for value in seen if value.startswith(f"00-{TRACE_ID}-00f067aa0ba902b7")]


async def test_exported_traces_have_one_server_span_per_request_under_the_incoming_trace(
    sqlite_url: str, log_stream: io.StringIO
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from app import db, migrations
    from app.main import create_app
    from tests.harness.app import settings_for

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    settings = settings_for(sqlite_url)
    engine = db.create_engine(settings.database)
    await migrations.upgrade(engine)
    await engine.dispose()
    app = create_app(settings, tracer_provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://panorama.test") as client:
            answer = await client.get(
                "/api/v1/whoami",
                headers={**bearer(VIEWER_TOKEN), "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
            )
            await client.get("/healthz")
    assert answer.status_code == 200
    spans = exported.get_finished_spans()
    [server] = [span for span in spans if span.kind == SpanKind.SERVER]
    assert server.name == "GET /api/v1/whoami"
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert server.parent.span_id == 0x00F067AA0BA902B7
    assert not [span for span in spans if span.name.endswith(("http send", "http receive"))]
    [line] = [
        line
        for line in json_lines(log_stream)
        if line["logger"] == "panorama.access" and line["route"] == "/api/v1/whoami"
    ]
    assert line["span_id"] == format(server.context.span_id, "016x")
