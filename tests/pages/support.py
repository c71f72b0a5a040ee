"""What the page tests share: a failing checkout trace whose log lines carry its id in four spellings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from app.alerts.schemas import OnCall, ShiftOut
from app.backends.traces import TagValue
from app.pages.service import ScheduleCard, offset_changes
from app.web import shell
from app.web.i18n import Locale, Translator
from tests.correlation.support import at, cri_line, ecs_line, json_line, span, store_logs, store_trace
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.fakes.jaeger import FakeJaeger

TRACE = "0af7651916cd43dd8448eb211c80319c"  # W3C's example id: a leading zero, for the unpadded spelling
SPANS = {
    "front": "b7ad6b7169203331",
    "checkout": "c3c3c3c3c3c3c3c3",
    "app": "d4d4d4d4d4d4d4d4",
    "pay": "e5e5e5e5e5e5e5e5",
}
SPELLINGS = {
    "lower": TRACE,
    "upper-0x": "0x" + TRACE.upper(),
    "traceparent": f"00-{TRACE}-{SPANS['front']}-01",
    "uber": f"{TRACE.lstrip('0')}:{SPANS['pay']}:0:1",
}


def store_checkout_trace(es: FakeElasticsearch, jaeger: FakeJaeger) -> None:
    """A checkout whose payment fails; its log lines carry the id in four spellings."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    mesh = "checkout.shop.svc.cluster.local:80/*"
    front, checkout, app, pay = SPANS["front"], SPANS["checkout"], SPANS["app"], SPANS["pay"]
    failure: dict[str, TagValue] = {"http.status_code": 502, "upstream_cluster": "outbound|80||payments"}
    store_trace(
        jaeger,
        span(TRACE, front, None, "frontend.shop", mesh, t0, 480),
        span(TRACE, checkout, front, "checkout.shop", mesh, at(t0, 12), 450),
        span(TRACE, app, checkout, "checkout", "POST /orders", at(t0, 15), 420, kind="internal"),
        span(
            TRACE,
            pay,
            app,
            "payments.shop",
            "payments.shop/charge",
            at(t0, 60),
            385,
            error=True,
            tags=failure,
        ),
    )
    timeout = {"level": "ERROR", "msg": "card processor timed out after 300ms", "traceId": TRACE.upper()}
    access = f'"POST /checkout HTTP/1.1" 502 - 480ms traceparent=00-{TRACE}-{front}-01'
    store_logs(
        es,
        ecs_line(at(t0, 20), "checkout", "order 8812 received, charging card", trace_id=TRACE, span_id=app),
        json_line(at(t0, 300), "payments", {**timeout, "span_id": pay}),
        cri_line(at(t0, 470), access, "frontend", container="istio-proxy"),
        cri_line(
            at(t0, 475), f"uber-trace-id={TRACE.lstrip('0')}:{checkout}:0:1 order 8812 failed", "checkout"
        ),
    )


def next_spring_forward(after: datetime) -> date:
    """The last Sunday of March (Europe's clocks go forward that night) at least a week after ``after``."""
    for year in (after.year, after.year + 1):
        last = date(year, 3, 31)
        sunday = last - timedelta(days=(last.weekday() + 1) % 7)
        if datetime(year, 3, 20, tzinfo=UTC) > after:
            return sunday
    raise AssertionError("unreachable")


def dst_week_page(locale: str) -> str:
    """The on-call page of a Europe/Berlin schedule the week the clocks go forward, rendered by the
    shell at a fixed moment (Monday 2027-03-22, 11:00 there, +01:00): alice's shift under way ends
    at 09:00 +02:00, bob's next one runs at +02:00 throughout."""
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2027, 3, 22, 10, 0, tzinfo=UTC)
    starts = [datetime(2027, 3, day, 9, 0, tzinfo=berlin) for day in (22, 29)] + [
        datetime(2027, 4, 5, 9, 0, tzinfo=berlin)
    ]
    shifts = [
        ShiftOut(user=user, start=start, end=end, source="rotation")
        for user, start, end in zip(("alice", "bob"), starts, starts[1:], strict=False)
    ]
    card = ScheduleCard(
        name="sre",
        timezone="Europe/Berlin",
        now=OnCall(schedule="sre", at=now, user="alice", source="rotation"),
        until=shifts[0].end,
        next_user="bob",
        shifts=shifts,
        swaps=[],
        users=["alice", "bob"],
        changes=offset_changes(berlin, shifts[0].start, shifts[-1].end),
    )
    translator, parts = shell.zoned(Translator(cast(Locale, locale), ZoneInfo("UTC")), ["Europe/Berlin"])
    view = shell.PageView(translator, now, "/oncall", {"schedule": "sre"}, part_zones=parts)
    return shell.render("pages/oncall.html", view, cards=[card], notice=None, chosen="sre")
