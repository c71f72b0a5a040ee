"""What one replica does in the replica tests (run in its own process by tests.harness.replicas).

Each scenario opens its own Panorama (app, engine, pools) on the shared database, calls
``ready()`` and then acts at the same instant as the other replicas; it returns plain JSON.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from app.alerts import delivery
from app.alerts.runtime import AlertRuntime
from tests.alerts.support import WEBHOOK, alert, bearer_webhook, payload
from tests.harness.app import OPERATOR_TOKEN, bearer, running_app, settings_for
from tests.harness.intake import applied, settled
from tests.harness.replicas import Ready


async def post_bodies(ready: Ready, database_url: str, config: dict[str, Any], bodies: list[Any]) -> Any:
    """Posts every webhook body at once; returns each answer's status and, once it is applied, its
    incident."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (_app, client):
        await ready()
        answers = await asyncio.gather(
            *(client.post(WEBHOOK, json=b, headers=bearer_webhook()) for b in bodies)
        )
        incidents = [await applied(client, a) if a.status_code == 202 else None for a in answers]
    return [[a.status_code, incident] for a, incident in zip(answers, incidents, strict=True)]


async def journal_then_apply(
    ready: Ready, database_url: str, config: dict[str, Any], before: list[Any], after: list[Any]
) -> Any:
    """Posts ``before`` (one after the other), says it is ready, then posts ``after``, and waits until
    every row it journaled is applied (by whichever replica); returns each answer's status and the
    row's outcome (``GET /api/v1/alerts/intake/{id}``)."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (_app, client):
        answers = [await client.post(WEBHOOK, json=b, headers=bearer_webhook()) for b in before]
        await ready()
        answers += [await client.post(WEBHOOK, json=b, headers=bearer_webhook()) for b in after]
        outcomes = [await settled(client, answer, timeout_s=60) for answer in answers]
    return [[a.status_code, outcome] for a, outcome in zip(answers, outcomes, strict=True)]


async def act_on_incidents(
    ready: Ready, database_url: str, config: dict[str, Any], action: str, incident_ids: list[int]
) -> Any:
    """POSTs ``/api/v1/incidents/{id}/<action>`` for every incident at once; returns the statuses."""
    body = {"minutes": 30} if action == "snooze" else None
    async with running_app(settings_for(database_url, **config), migrate=False) as (_app, client):
        await ready()
        answers = await asyncio.gather(
            *(
                client.post(f"/api/v1/incidents/{i}/{action}", json=body, headers=bearer(OPERATOR_TOKEN))
                for i in incident_ids
            )
        )
    return [a.status_code for a in answers]


async def send_one_batch(
    ready: Ready, database_url: str, config: dict[str, Any], channel: str, late_by_s: float, clock_s: float
) -> Any:
    """After ``late_by_s``, sends one batch of ``channel`` as if the clock were ``clock_s`` ahead."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (app, _client):
        context = app.state.context
        await ready()
        await asyncio.sleep(late_by_s)
        now = datetime.now(UTC) + timedelta(seconds=clock_s)
        handled = await delivery.deliver_batch(
            context.sessions,
            context.settings,
            context.alerts.http,
            channel,
            worker=f"replica-{late_by_s}",
            now=now,
        )
    return handled


async def page_and_deliver(
    ready: Ready, database_url: str, config: dict[str, Any], prefix: str, pages: int
) -> Any:
    """Posts ``pages`` new groups one after another, running the worker after each (as a busy replica)."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (app, client):
        runtime: AlertRuntime = app.state.context.alerts
        await ready()
        handled = 0
        for n in range(pages):
            answer = await client.post(
                WEBHOOK, json=payload(f"{prefix}{n}", [alert(f"{prefix}{n}")]), headers=bearer_webhook()
            )
            await applied(client, answer)
            handled += await runtime.run_once()
    return handled


async def escalate_repeatedly(
    ready: Ready, database_url: str, config: dict[str, Any], passes: int, ahead_min: float
) -> Any:
    """Runs the escalation worker's pass ``passes`` times, its clock ``ahead_min`` minutes ahead."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (app, _client):
        runtime: AlertRuntime = app.state.context.alerts
        await ready()
        done = 0
        for _ in range(passes):
            done += await runtime.escalate(datetime.now(UTC) + timedelta(minutes=ahead_min))
    return done


async def race_worker_and_webhook(
    ready: Ready, database_url: str, config: dict[str, Any], role: str, bodies: list[Any]
) -> Any:
    """``worker``: one whole worker pass with the clock 12 minutes ahead (escalations due);
    ``webhook``: posts ``bodies``. Returns the pass's count, or each answer's status."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (app, client):
        runtime: AlertRuntime = app.state.context.alerts
        await runtime.signing_key()
        await ready()
        if role == "worker":
            return await runtime.run_once(datetime.now(UTC) + timedelta(minutes=12))
        answers = [await client.post(WEBHOOK, json=body, headers=bearer_webhook()) for body in bodies]
        incidents = [await applied(client, a) if a.status_code == 202 else None for a in answers]
    return [[a.status_code, incident] for a, incident in zip(answers, incidents, strict=True)]


async def announce_handovers(ready: Ready, database_url: str, config: dict[str, Any], at: str) -> Any:
    """One worker's look at the hand-overs at the instant ``at``; returns how many it announced."""
    from app.alerts import handovers

    async with running_app(settings_for(database_url, **config), migrate=False) as (app, _client):
        context = app.state.context
        await ready()
        async with context.sessions.begin() as session:
            key = await context.alerts.signing_key()
            return await handovers.announce_due(session, context.settings, datetime.fromisoformat(at), key)


async def take_one_swap(
    ready: Ready, database_url: str, config: dict[str, Any], swap_id: int, user: str
) -> Any:
    """Takes the swap for ``user``; returns the answer's status."""
    async with running_app(settings_for(database_url, **config), migrate=False) as (_app, client):
        await ready()
        answer = await client.post(
            f"/api/v1/schedules/sre/swaps/{swap_id}/take", json={"user": user}, headers=bearer(OPERATOR_TOKEN)
        )
    return answer.status_code
