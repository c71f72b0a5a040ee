"""The Alertmanager harness: a real Alertmanager 0.25 delivers to a local webhook sink."""

from __future__ import annotations

import base64
import json
import queue
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.server import LoopbackServer, serve
from tests.harness.alertmanager import RunningAlertmanager

DELIVERY_TIMEOUT_S = 30.0

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class WebhookSink:
    """A plain ASGI app that records every POST and answers 200."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[Delivery] = queue.Queue()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.deliveries.put(Delivery(scope["path"], headers, json.loads(b"".join(chunks))))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def next(self, *, status: str) -> Delivery:
        """The next delivery whose payload has ``status`` (firing/resolved)."""
        while True:
            try:
                delivery = self.deliveries.get(timeout=DELIVERY_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"no {status} webhook within {DELIVERY_TIMEOUT_S:g}s") from None
            if delivery.body.get("status") == status:
                return delivery


@pytest.fixture
def sink() -> Iterator[tuple[WebhookSink, LoopbackServer]]:
    app = WebhookSink()
    with serve(app) as server:
        yield app, server


def _alert(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": "critical", "service": "checkout"},
        "annotations": {"summary": "checkout is failing"},
        "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        **extra,
    }


def test_alert_reaches_the_sink_with_bearer_auth_and_a_version_4_payload(
    sink: tuple[WebhookSink, LoopbackServer],
    alertmanager_factory: Callable[..., RunningAlertmanager],
) -> None:
    app, server = sink
    alertmanager = alertmanager_factory(f"{server.url}/hook", bearer_token="s3cret-token")

    alertmanager.post_alerts([_alert("PanoramaHarnessBearer")])
    delivery = app.next(status="firing")

    assert delivery.path == "/hook"
    assert delivery.headers["authorization"] == "Bearer s3cret-token"
    assert delivery.headers["content-type"].startswith("application/json")
    body = delivery.body
    assert body["version"] == "4"
    assert body["receiver"] == "panorama\\.webhook"  # regex-quoted, as REFERENCE.md says
    assert body["groupLabels"] == {"alertname": "PanoramaHarnessBearer"}
    assert body["groupKey"]
    assert body["externalURL"] == alertmanager.url
    [alert] = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == _alert("PanoramaHarnessBearer")["labels"]
    assert alert["annotations"] == {"summary": "checkout is failing"}
    assert len(alert["fingerprint"]) == 16


def test_basic_auth_and_resolved_notifications(
    sink: tuple[WebhookSink, LoopbackServer],
    alertmanager_factory: Callable[..., RunningAlertmanager],
) -> None:
    app, server = sink
    alertmanager = alertmanager_factory(f"{server.url}/hook", basic_auth=("panorama", "pa:ss"))
    firing = _alert("PanoramaHarnessBasic")

    alertmanager.post_alerts([firing])
    first = app.next(status="firing")
    alertmanager.post_alerts([{**firing, "endsAt": datetime.now(UTC).isoformat()}])
    resolved = app.next(status="resolved")

    expected = "Basic " + base64.b64encode(b"panorama:pa:ss").decode()
    assert first.headers["authorization"] == expected
    assert resolved.headers["authorization"] == expected
    assert resolved.body["groupKey"] == first.body["groupKey"]
    [alert] = resolved.body["alerts"]
    assert alert["status"] == "resolved"
    assert alert["fingerprint"] == first.body["alerts"][0]["fingerprint"]


def test_auth_options_are_exclusive(alertmanager_factory: Callable[..., RunningAlertmanager]) -> None:
    with pytest.raises(ValueError, match="either authorization or basic_auth"):
        alertmanager_factory("http://127.0.0.1:9/hook", bearer_token="a", basic_auth=("u", "p"))
