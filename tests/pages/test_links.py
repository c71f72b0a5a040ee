"""Walk what Panorama emits: every link in a notification, a Grafana annotation, an API answer's
``url`` fields and the pages themselves opens something real (200), for the reader it is for."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.alerts import handovers
from app.alerts import notices as notices_module
from app.alerts import service as alerts_service
from app.alerts.channels.base import Notice
from app.alerts.messages import outgoing_from_json
from app.alerts.models import Delivery
from app.web.auth import check_view
from tests.alerts.support import WEBHOOK, alert, alerting_config, bearer_webhook, payload
from tests.correlation.support import backend
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger
from tests.grafana.frames import annotation_events, to_data_frame
from tests.grafana.support import query_body
from tests.harness.app import OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer
from tests.harness.intake import applied, incident_of
from tests.pages.support import TRACE, store_checkout_trace

PUBLIC = "https://panorama.example.com"
VIEWER = bearer(VIEWER_TOKEN)
MAX_PAGES = 60


def _local(url: str) -> str:
    """A link as Panorama emits it (absolute under alerts.public_url, or a path) → a path to ask."""
    parts = urlsplit(html.unescape(url))
    assert not parts.netloc or f"{parts.scheme}://{parts.netloc}" == PUBLIC, url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _urls(value: Any) -> list[str]:
    """Every ``url`` / ``*_url`` field of an API answer, at any depth."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if (key == "url" or key.endswith("_url")) and isinstance(item, str) and item:
                found.append(item)
            else:
                found.extend(_urls(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_urls(item))
    return found


@pytest.fixture
async def served(
    app_factory: AppFactory,
    fake_elasticsearch: tuple[FakeElasticsearch, str],
    fake_jaeger: tuple[FakeJaeger, str],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    es, es_url = fake_elasticsearch
    jaeger, jaeger_url = fake_jaeger
    store_checkout_trace(es, jaeger)
    config = alerting_config()  # public_url https://panorama.example.com
    async with app_factory(**config, elasticsearch=backend(es_url), jaeger=backend(jaeger_url)) as (
        app,
        http,
    ):
        started = datetime.now(UTC) - timedelta(minutes=5)
        body = payload(
            "PaymentsDown", [alert("PaymentsDown", started=started, service="payments", namespace="shop")]
        )
        await incident_of(http, await http.post(WEBHOOK, json=body, headers=bearer_webhook()))
        yield app, http


@pytest.fixture
def client(served: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return served[1]


async def test_every_link_in_a_notification_opens_for_whoever_got_it(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = served
    async with app.state.context.sessions() as session:
        deliveries = [await session.get(Delivery, 1)]
    links = []
    for delivery in deliveries:
        assert delivery is not None
        notification = json.loads(delivery.payload)
        links += [notification["incident_url"], notification["ack_url"]]
    assert links
    for link in links:
        answer = await client.get(_local(link))  # no token: the link itself is the credential
        assert answer.status_code == 200, (link, answer.status_code)
        assert "PaymentsDown" in answer.text


async def test_every_url_in_api_answers_and_grafana_annotations_opens(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    again = payload("PaymentsDown", [alert("PaymentsDown", service="payments", namespace="shop")])
    journaled = await client.post(WEBHOOK, json=again, headers=bearer_webhook())  # 202: a url to follow
    await applied(client, journaled)
    answers = [
        journaled,
        await client.get(journaled.json()["url"], headers=VIEWER),  # and its incident_url
        await client.get("/api/v1/incidents", headers=VIEWER),
        await client.get("/api/v1/incidents/1", headers=VIEWER),
        await client.get("/api/v1/incidents/1/context", headers=VIEWER),
        await client.get("/api/v1/services/payments/overview?namespace=shop&from=now-1h", headers=VIEWER),
        await client.get(f"/api/v1/traces/{TRACE}", headers=VIEWER),
        await client.get("/api/v1/traces?service=frontend&from=now-1h", headers=VIEWER),
        await client.get("/api/v1/logs?from=now-1h", headers=VIEWER),
    ]
    for answer in answers:
        assert answer.is_success, answer.text
    # Panorama's own links (external ones, such as an alert's generatorURL, are Alertmanager's)
    links = [url for answer in answers for url in _urls(answer.json()) if url.startswith((PUBLIC, "/"))]
    target = {"refId": "Anno", "target": "incidents", "payload": {"service": "$__all"}}
    start, end = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    annotations = await client.post(
        "/grafana/query", json=query_body([target], start=start, end=end), headers=VIEWER
    )
    texts = [
        str(event["text"])
        for frame in annotations.json()
        for event in annotation_events(to_data_frame(frame))
    ]
    links += [match for text in texts for match in re.findall(r"https?://\S+", text)]
    kinds = {
        urlsplit(link).path.split("/")[1] if urlsplit(link).path.startswith("/api") else "page"
        for link in links
    }
    assert len(links) >= 8, links
    assert kinds == {"api", "page"}  # trace urls of the API, incident pages
    for link in dict.fromkeys(links):
        answer = await client.get(_local(link), headers=VIEWER)
        assert answer.status_code == 200, (link, answer.status_code, answer.text[:200])


async def test_every_link_on_the_pages_opens_for_the_same_reader(client: httpx.AsyncClient) -> None:
    """A crawl from the incidents list, as an operator: every same-site link and fragment answers 200."""
    operator = bearer(OPERATOR_TOKEN)
    queue, seen = ["/incidents", "/incidents/1", f"/traces/{TRACE}"], set[str]()
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        answer = await client.get(path, headers=operator)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        if "text/html" not in answer.headers["content-type"]:
            continue
        for found in re.findall(r'(?:href|src|data-fragment)="(/[^"]*)"', answer.text):
            target = html.unescape(found).split("#")[0]
            if target and not target.startswith("//") and target not in seen:
                queue.append(target)
    assert any(p.startswith("/traces/") for p in seen)
    assert any(p.startswith("/services/") for p in seen)
    assert any(p.startswith("/incidents/1/context") for p in seen)
    assert len(seen) >= 10


async def test_every_link_in_a_hand_over_or_swap_notice_opens_without_a_token(
    app_factory: AppFactory,
) -> None:
    """Shift-start, shift-end, swap offered and swap taken, as a chat robot lays them out: every
    link opens its page read-only with no token (the on-call page of that schedule, the incidents
    list), and only that page; a swap's link works until the stretch it covers is over."""
    config = alerting_config()  # schedule sre: alice and bob, weekly from Monday 09:00 Asia/Shanghai
    config["schedules"][0]["notices"] = ["ops-mail"]
    async with app_factory(**config) as (app, client):
        context = app.state.context
        key = await context.alerts.signing_key()
        await incident_of(
            client,
            await client.post(WEBHOOK, json=payload("Down", [alert("Down")]), headers=bearer_webhook()),
        )
        # The latest hand-over, announced as the worker does a minute after it.
        shanghai = ZoneInfo("Asia/Shanghai")
        first = datetime(2026, 1, 5, 9, 0, tzinfo=shanghai)
        weeks = (datetime.now(UTC) - first) // timedelta(weeks=1)
        moment = first + timedelta(weeks=weeks, minutes=1)
        async with context.sessions.begin() as session:
            assert await handovers.announce_due(session, context.settings, moment, key) == 1
        # A swap of an hour of the next shift offered, then taken back by who is on call now
        # (through the API, as the on-call page's form does): whatever the hour, it is all ahead.
        now = datetime.now(UTC)
        holder = (await client.get("/api/v1/schedules/sre/oncall", headers=VIEWER)).json()["user"]
        start = first + timedelta(weeks=weeks + 1, hours=1)
        end = start + timedelta(hours=1)
        offer = {
            "user": "bob" if holder == "alice" else "alice",
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
        offered = await client.post("/api/v1/schedules/sre/swaps", json=offer, headers=bearer(OPERATOR_TOKEN))
        taken = await client.post(
            f"/api/v1/schedules/sre/swaps/{offered.json()['id']}/take",
            json={"user": holder},
            headers=bearer(OPERATOR_TOKEN),
        )
        async with context.sessions() as session:
            rows = (await session.scalars(select(Delivery).where(Delivery.kind == "notice"))).all()
        notices = [outgoing_from_json(row.payload) for row in rows]
        assert all(isinstance(n, Notice) for n in notices)
        rendered = {
            n.kind: alerts_service.render_notice(n, markdown=True) for n in notices if isinstance(n, Notice)
        }
        links = {kind: re.findall(r"\]\((https?://[^)\s]+)\)", text) for kind, text in rendered.items()}
        opened = {kind: [await client.get(_local(link)) for link in found] for kind, found in links.items()}
        oncall_link = _local(links["swap_taken"][0])
        without_schedule = await client.get(oncall_link.replace("schedule=sre&", ""))
        as_incidents = await client.get("/incidents?" + oncall_link.partition("&")[2])
        grant = check_view(key, parse_qs(urlsplit(oncall_link).query)["view"][0], now)
    assert offered.status_code == 201
    assert taken.status_code == 200
    assert set(links) == {"shift_start", "shift_end", "swap_offered", "swap_taken"}
    assert [len(links[k]) for k in ("shift_start", "shift_end", "swap_offered", "swap_taken")] == [2, 1, 1, 1]
    for kind, answers in opened.items():
        for link, answer in zip(links[kind], answers, strict=True):
            assert answer.status_code == 200, (kind, link, answer.status_code)
            assert "readonly-bar" in answer.text  # opened through the link, read-only
            if "/oncall?" in link:
                assert 'data-oncall="sre"' in answer.text
                assert "/swaps" not in answer.text  # no form to offer or take a shift
            else:
                assert "/incidents?" in link
                assert "Down" in answer.text
    assert without_schedule.status_code == 401  # the link opens its schedule's page, nothing else
    assert as_incidents.status_code == 401
    assert grant.scope == "oncall:sre"
    assert grant.expires == end + notices_module.LINK_GRACE  # until the swapped stretch is over
