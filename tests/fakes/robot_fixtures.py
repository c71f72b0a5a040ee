"""Pytest fixtures serving the chat-robot sinks over real HTTP and an SMTP server, on loopback.

``serve_sink(sink)`` starts any sink (built with the options a test needs) and
gives back the sink and the webhook URL to configure; ``dingtalk_robot`` and
friends are the common cases. ``smtp_server(...)`` starts an SMTP sink (plain by
default; STARTTLS, implicit TLS and AUTH on request, with ``smtp_certificate``).
Everything is stopped after the test; HTTP servers in the background (uvicorn takes
~0.15 s to stop), joined at the end of the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from tests.fakes.robots import DingTalkSink, FeishuSink, RobotSink, SlackSink, WebhookSink, WeComSink
from tests.fakes.server import LoopbackServer
from tests.fakes.smtp import Certificate, SmtpSink, self_signed_certificate

DINGTALK_SECRET = "SECdingtalk+/=sink-secret-0123456789"
FEISHU_SECRET = "feishu-sink-secret-0123456789"
WEBHOOK_TOKEN = "webhook-sink-token-0123456789"

S = TypeVar("S", bound=RobotSink)
_stopping: list[threading.Thread] = []


@dataclass(frozen=True)
class Served(Generic[S]):
    """A sink being served: the sink (to inspect and steer) and the URL to configure."""

    sink: S
    url: str


@pytest.fixture(scope="session", autouse=True)
def _join_stopped_robot_servers() -> Iterator[None]:
    yield
    for thread in _stopping:
        thread.join()


class _Starter:
    def __init__(self) -> None:
        self.servers: list[tuple[RobotSink, LoopbackServer]] = []

    def __call__(self, sink: S) -> Served[S]:
        server = LoopbackServer(sink)
        server.start()
        sink.bind_stop(server.stop)
        self.servers.append((sink, server))
        return Served(sink, sink.webhook_url(server.url))

    def close(self) -> None:
        for sink, server in self.servers:
            sink.close()
            stopper = threading.Thread(target=server.stop, name="robot-sink-stop", daemon=True)
            stopper.start()
            _stopping.append(stopper)


@pytest.fixture
def serve_sink() -> Iterator[Callable[[S], Served[S]]]:
    """Starts a sink on a loopback port: ``serve_sink(DingTalkSink(secret=...))``."""
    starter = _Starter()
    yield starter
    starter.close()


@pytest.fixture
def dingtalk_robot(serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]]) -> Served[DingTalkSink]:
    """A DingTalk robot with signing on (secret :data:`DINGTALK_SECRET`)."""
    return serve_sink(DingTalkSink(secret=DINGTALK_SECRET))


@pytest.fixture
def wecom_robot(serve_sink: Callable[[WeComSink], Served[WeComSink]]) -> Served[WeComSink]:
    return serve_sink(WeComSink())


@pytest.fixture
def feishu_robot(serve_sink: Callable[[FeishuSink], Served[FeishuSink]]) -> Served[FeishuSink]:
    """A Feishu bot with signing on (secret :data:`FEISHU_SECRET`)."""
    return serve_sink(FeishuSink(secret=FEISHU_SECRET))


@pytest.fixture
def slack_robot(serve_sink: Callable[[SlackSink], Served[SlackSink]]) -> Served[SlackSink]:
    return serve_sink(SlackSink())


@pytest.fixture
def webhook_receiver(serve_sink: Callable[[WebhookSink], Served[WebhookSink]]) -> Served[WebhookSink]:
    """A generic webhook receiver that wants ``Authorization: Bearer`` :data:`WEBHOOK_TOKEN`."""
    return serve_sink(WebhookSink(token=WEBHOOK_TOKEN))


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (skips the test when ``openssl`` is missing)."""
    certificate = self_signed_certificate(tmp_path_factory.mktemp("smtp-tls"))
    if certificate is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return certificate


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpSink]]:
    """Starts SMTP sinks: ``smtp_server()`` is plain; keywords as :class:`SmtpSink` takes."""
    started: list[SmtpSink] = []

    def start(**options: Any) -> SmtpSink:
        sink = SmtpSink(**options)
        sink.start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()
