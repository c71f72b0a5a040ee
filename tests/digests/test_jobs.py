"""The scheduled digest: registered at its configured time in its time zone (and a catch-up every
minute, which also retries a held digest), and, when it runs, sending yesterday's digest once (a
second run, as after a restart, sends nothing)."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from app.alerts.models import Delivery
from app.digests import jobs, service
from app.digests.models import DigestSend
from tests.digests.support import CHECKOUT, digest_config, service_day, store_day
from tests.harness.app import AppFactory


async def test_the_job_runs_at_the_digest_time_in_its_zone_and_sends_yesterday_once(
    app_factory: AppFactory,
) -> None:
    config = digest_config(schedule="08:30", timezone="Asia/Shanghai")
    async with app_factory(**config) as (app, _client):
        context = app.state.context
        job = context.scheduler.get_job("digests.daily")
        assert isinstance(job.trigger, CronTrigger)
        fields = {f.name: str(f) for f in job.trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("8", "30")
        assert str(job.trigger.timezone) == "Asia/Shanghai"
        catch_up = context.scheduler.get_job("digests.catch_up")  # also the retry of a held digest
        assert isinstance(catch_up.trigger, IntervalTrigger)
        assert catch_up.trigger.interval == jobs.RETRY_INTERVAL

        digest = service.digest_named(context.settings, "daily")
        day = service.due_day(digest, context.settings, datetime.now(UTC))
        await store_day(context.sessions, day, service_day(CHECKOUT, 1200, 60, (600, 1000, 1190, 1200)))
        await jobs.send_due(context, "daily")
        await jobs.send_due(context, "daily")  # again, as another replica or a restart would
        async with context.sessions() as session:
            deliveries = (await session.scalars(select(Delivery).where(Delivery.kind == "notice"))).all()
            [sent] = (await session.scalars(select(DigestSend))).all()
    assert [d.channel for d in deliveries] == ["ops-robot"]
    assert (sent.day, sent.sends, sent.sent_by) == (day, 1, "schedule")
