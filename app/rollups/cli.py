"""``panorama rollup``: roll up one day or backfill a range, with progress on a terminal."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import date
from typing import TextIO

from app import db, heap, migrations
from app.backends.prometheus import PrometheusClient
from app.config import Settings
from app.errors import PanoramaError
from app.rollups import service
from app.rollups.days import days_between
from app.rollups.repository import History
from app.rollups.service import RunOutcome

BAR_WIDTH = 30


def rollup(settings: Settings, *, date: date | None, first: date | None, last: date | None) -> int:
    err = sys.stderr
    if date is not None and first is None and last is None:
        days = [date]
    elif date is None and first is not None and last is not None:
        days = list(days_between(first, last)) or [first]
    else:
        print("give --date DAY, or --from DAY and --to DAY", file=err)
        return 2
    if not settings.prometheus.configured:
        print("prometheus is not configured: rolling up the on-call history only", file=err)
    try:
        if first is not None and last is not None:
            service.check_period(first, last)
        service.check_day_is_over(days[-1], settings, name="--to" if date is None else "--date")
    except PanoramaError as exc:
        print(exc.message, file=err)
        return 2
    with heap.collector_for_serving():  # a backfill of years is long-running work too
        return asyncio.run(_run(settings, days, err))


async def _run(settings: Settings, days: list[date], err: TextIO) -> int:
    engine = db.create_engine(settings.database)
    prometheus = PrometheusClient(settings.prometheus) if settings.prometheus.configured else None
    try:
        revision, head = await migrations.current_revision(engine), migrations.head_revision()
        if revision != head:
            print(
                f"the database is at {revision or 'no revision'}, not {head}: run `panorama migrate`",
                file=err,
            )
            return 1
        progress = Progress(len(days), err)
        outcomes = await service.run_days(
            db.create_session_factory(engine),
            prometheus,
            settings,
            days,
            trigger=service.Trigger.CLI,
            progress=progress.step,
        )
    finally:
        if prometheus is not None:
            await prometheus.aclose()
        await engine.dispose()
    progress.done()
    print(summary(outcomes))
    for outcome in outcomes:
        if outcome.error:
            print(f"  {outcome.day}: {outcome.error}", file=err)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def summary(outcomes: list[RunOutcome]) -> str:
    counts = Counter(o.status for o in outcomes)
    parts = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    pending = sum(1 for o in outcomes if o.history == History.PENDING)
    if pending:
        parts += f" ({pending} with the on-call history pending)"
    values = sum(o.values for o in outcomes)
    seconds = sum(o.duration_ms for o in outcomes) / 1000
    plural = "s" if len(outcomes) != 1 else ""
    return f"rolled up {len(outcomes)} day{plural}: {parts}; {values} values in {seconds:.1f}s"


class Progress:
    """A one-line progress bar on a terminal; nothing when the output is a file or a pipe."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done_count = 0
        self.stream = stream
        self.live = stream.isatty()

    def step(self, outcome: RunOutcome) -> None:
        self.done_count += 1
        if not self.live:
            return
        filled = BAR_WIDTH * self.done_count // self.total
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {self.done_count}/{self.total} {outcome.day} {outcome.status:<8}")
        self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\n")
