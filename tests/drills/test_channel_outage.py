"""Drill: a DingTalk robot fails for a minute — 500s, then timeouts, then its own rate-limit
answers — while two replicas page it. Afterwards everything is delivered once (merged into
digests where the robot's 20-a-minute limit demands it), and the two replicas together never sent
it more than 20 requests in any minute."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.alerts.support import alert, payload
from tests.drills.support import (
    Tally,
    all_delivered,
    drill_config,
    migrate,
    report,
    start_replica,
    wait_until,
    webhook_headers,
)
from tests.fakes.robot_fixtures import DINGTALK_SECRET, Served
from tests.fakes.robots import DingTalkSink

pytestmark = [pytest.mark.drill, pytest.mark.postgres, pytest.mark.timeout(420)]
PHASE_S = 20.0
PAGES = 40
LIMIT = 20
NAME = re.compile(r"\bOutage(\d+)\b")


def busiest_minute(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 60.0) for i, start in enumerate(times)), default=0)


def test_a_robot_failing_for_a_minute_gets_everything_afterwards_within_its_limit(
    tmp_path: Path, postgres_url: str, serve_sink: Callable[[DingTalkSink], Served[DingTalkSink]]
) -> None:
    robot = serve_sink(DingTalkSink(secret=DINGTALK_SECRET, rate_limit_per_min=LIMIT))
    channel = {
        "name": "pager",
        "type": "dingtalk",
        "url": robot.url,
        "secret": DINGTALK_SECRET,
        "timeout_s": 2,
    }
    config = drill_config(robot.url, channels=[channel])
    migrate(postgres_url, tmp_path, config)
    replicas = [start_replica(f"replica-{n}", postgres_url, tmp_path, config) for n in range(2)]
    names = [f"Outage{n}" for n in range(PAGES)]
    started = time.monotonic()
    try:
        robot.sink.fail_with(500)
        with httpx.Client(timeout=30) as client:
            for n, name in enumerate(names):
                replica = replicas[n % 2]
                answer = client.post(
                    f"{replica.url}/api/v1/alerts/alertmanager",
                    json=payload(name, [alert(name)]),
                    headers=webhook_headers(),
                )
                assert answer.status_code == 202
                time.sleep(PHASE_S / PAGES)
        time.sleep(max(0.0, PHASE_S - (time.monotonic() - started)))
        robot.sink.clear_faults()
        robot.sink.hang(10.0)  # longer than the channel's 2 s timeout
        time.sleep(PHASE_S)
        robot.sink.clear_faults()
        robot.sink.fail_with_code(130101, "send too fast")  # DingTalk's own rate-limit answer
        time.sleep(PHASE_S)
        robot.sink.clear_faults()
        recovered_at = time.monotonic()
        wait_until(lambda: all_delivered(postgres_url), "everything delivered after the outage", 300)
        delivered_after_s = time.monotonic() - recovered_at
        time.sleep(2)
    finally:
        for replica in replicas:
            replica.process.stop()
    accepted = [m.json["markdown"]["text"] for m in robot.sink.messages]
    paged = [f"Outage{n}" for text in accepted for n in dict.fromkeys(NAME.findall(text))]
    tally = Tally.of(names, paged)
    digests = sum(1 for text in accepted if len(set(NAME.findall(text))) > 1)
    peak = busiest_minute([r.at for r in robot.sink.requests])
    report(
        "channel_outage_for_a_minute",
        [
            f"{PHASE_S:g}s of HTTP 500",
            f"{PHASE_S:g}s of timeouts",
            f"{PHASE_S:g}s of errcode 130101 (too fast)",
        ],
        tally,
        requests=len(robot.sink.requests),
        digests=digests,
        busiest_minute_requests=peak,
        limit_per_min=LIMIT,
        delivered_after_recovery_s=round(delivered_after_s, 1),
    )
    assert tally.lost == 0
    assert tally.duplicated == 0
    assert peak <= LIMIT
    assert Counter(paged)  # something was delivered at all
