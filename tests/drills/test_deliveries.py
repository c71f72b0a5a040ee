"""Drills of the outbox: a slow channel with a backlog longer than a lease, a replica killed with
SIGKILL mid-delivery and restarted, a replica stopped with SIGTERM mid-delivery."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.alerts.delivery import lease
from tests.alerts.support import alert, payload
from tests.drills.support import (
    Replica,
    Tally,
    all_delivered,
    drill_config,
    migrate,
    page_titles,
    report,
    start_replica,
    terminate,
    wait_until,
    webhook_headers,
)
from tests.fakes.robot_fixtures import Served
from tests.fakes.robots import WebhookSink

pytestmark = [pytest.mark.drill, pytest.mark.postgres]
Serve = Callable[[WebhookSink], Served[WebhookSink]]


def post_groups(replica: Replica, names: list[str]) -> None:
    with httpx.Client(timeout=30) as client:
        for name in names:
            answer = client.post(
                f"{replica.url}/api/v1/alerts/alertmanager",
                json=payload(name, [alert(name)]),
                headers=webhook_headers(),
            )
            assert answer.status_code == 202, answer.text


@pytest.mark.timeout(240)
def test_a_slow_channel_with_a_backlog_longer_than_a_lease_pages_each_once(
    tmp_path: Path, postgres_url: str, serve_sink: Serve
) -> None:
    sink = serve_sink(WebhookSink())
    sink.sink.hang(0.8)  # every send takes 0.8 s against a 1 s timeout
    config = drill_config(
        sink.url, channels=[{"name": "pager", "type": "webhook", "url": sink.url, "timeout_s": 1}]
    )
    migrate(postgres_url, tmp_path, config)
    replicas = [start_replica(f"replica-{n}", postgres_url, tmp_path, config) for n in range(2)]
    names = [f"Backlog{n}" for n in range(45)]
    started = time.monotonic()
    try:
        post_groups(replicas[0], names[:23])
        post_groups(replicas[1], names[23:])
        wait_until(lambda: all_delivered(postgres_url), "the whole backlog delivered and recorded", 150)
        took = time.monotonic() - started
        time.sleep(2)
    finally:
        for replica in replicas:
            replica.process.stop()
    tally = Tally.of(names, page_titles(sink.sink.messages))
    channel_lease = lease(None).total_seconds() - 10 + 1  # lease() of a channel with timeout_s 1
    report(
        "slow_channel_backlog",
        ["each send 0.8 s against a 1 s timeout", f"a backlog of {len(names)} pages at two replicas"],
        tally,
        backlog_s=round(45 * 0.8, 1),
        claim_lease_s=channel_lease,
        delivered_in_s=round(took, 1),
    )
    assert tally.lost == 0
    assert tally.duplicated == 0


@pytest.mark.timeout(240)
def test_a_replica_killed_mid_delivery_and_restarted_delivers_every_page(
    tmp_path: Path, postgres_url: str, serve_sink: Serve
) -> None:
    sink = serve_sink(WebhookSink())
    sink.sink.hang(0.5)
    config = drill_config(
        sink.url, channels=[{"name": "pager", "type": "webhook", "url": sink.url, "timeout_s": 1}]
    )
    migrate(postgres_url, tmp_path, config)
    replica = start_replica("replica", postgres_url, tmp_path, config)
    names = [f"Kill{n}" for n in range(20)]
    try:
        post_groups(replica, names)
        wait_until(lambda: len(sink.sink.messages) >= 5, "five pages delivered", 60)
        sink.sink.clear_faults()
        sink.sink.hang(30.0, times=1)  # the next send hangs: the process dies in the middle of it
        sent = len(sink.sink.requests)
        wait_until(lambda: len(sink.sink.requests) > sent, "a send in flight", 30)
        # Counted before the kill: once the process is gone the robot stops hanging and takes
        # the message (a real robot may too), which would hide that it was in flight.
        in_flight = len(sink.sink.requests) - len(sink.sink.messages)
        replica.process.kill()  # SIGKILL: no shutdown at all
        killed_at = time.monotonic()
        replica = start_replica("replica-restarted", postgres_url, tmp_path, config)
        wait_until(lambda: all_delivered(postgres_url), "every queued page delivered and recorded", 120)
        recovered_s = time.monotonic() - killed_at
        time.sleep(2)
    finally:
        replica.process.stop()
    titles = page_titles(sink.sink.messages)
    tally = Tally.of(names, titles)
    report(
        "sigkill_mid_delivery",
        ["SIGKILL in the middle of a send (after 5 delivered), then a restart"],
        tally,
        in_flight_at_kill=in_flight,
        requests=len(sink.sink.requests),
        messages=len(sink.sink.messages),
        recovered_in_s=round(recovered_s, 1),
    )
    assert tally.lost == 0
    # Only the page the robot took while the process died (before it could record it) may go
    # twice, once its claim's lease ran out: one send is in flight at a time per channel.
    assert tally.duplicated <= in_flight


@pytest.mark.timeout(240)
def test_sigterm_mid_delivery_finishes_within_the_grace_and_the_other_replica_goes_on(
    tmp_path: Path, postgres_url: str, serve_sink: Serve
) -> None:
    sink = serve_sink(WebhookSink())
    sink.sink.hang(1.0)
    config = drill_config(
        sink.url,
        channels=[{"name": "pager", "type": "webhook", "url": sink.url, "timeout_s": 3}],
        server={"shutdown_grace": "5s"},
    )
    migrate(postgres_url, tmp_path, config)
    replicas = [start_replica(f"replica-{n}", postgres_url, tmp_path, config) for n in range(2)]
    names = [f"Term{n}" for n in range(16)]
    try:
        post_groups(replicas[0], names)
        wait_until(lambda: len(sink.sink.requests) >= 3, "three pages sent", 60)
        took = terminate(replicas[0])
        stopped_log = replicas[0].log()
        wait_until(lambda: all_delivered(postgres_url), "the rest delivered by replica 1 and recorded", 120)
        time.sleep(2)
    finally:
        for replica in replicas:
            replica.process.stop()
    tally = Tally.of(names, page_titles(sink.sink.messages))
    report(
        "sigterm_mid_delivery",
        ["SIGTERM to replica 0 while it sends (each send 1 s; shutdown_grace 5s)"],
        tally,
        exit_after_s=round(took, 1),
    )
    assert took < 5 + 3  # the grace, and the interpreter's own exit
    assert "Application shutdown complete." in stopped_log
    assert tally.lost == 0
    assert tally.duplicated == 0  # the send in flight finished and was recorded before the exit
