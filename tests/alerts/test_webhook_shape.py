"""The webhook validates bodies without building models (``schemas.check_webhook``): it must accept
exactly what ``WebhookPayload`` accepts (the applier reads every journaled body with the model: a body
answered 202 that the model refused would be a page lost), and answer the model's 4xx."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from pydantic import ValidationError

from app.alerts.schemas import WebhookAlert, WebhookPayload, _AlertShape, _PayloadShape, check_webhook
from tests.alerts.support import alert, payload
from tests.harness.app import ADMIN_TOKEN, AppFactory, bearer
from tests.harness.intake import incident_of

NOT_STRINGS: list[Any] = [None, 1, 1.5, True, [], {}, ""]
TIMES = [
    "2026-11-20T01:00:00Z",
    "2026-11-20T01:00:00.123456789Z",
    "2026-11-20T09:00:00+08:00",
    "2026-11-20T01:00:00",  # naive: read as UTC
    "2026-11-20 01:00:00Z",
    "2026-11-20",
    "0001-01-01T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T01:00:00+25:00",
    "2026-W47-5",
    "1763600400",
    "yesterday",
    1763600400,
    1763600400.5,
    None,
    "",
]


def base() -> dict[str, Any]:
    return payload("Down", [alert("Down"), alert("Down", instance="b:1")])


def variants() -> Iterator[tuple[str, Any]]:
    """Bodies one change away from a valid one: every field missing, null, of another type, at and
    past its limits; times in every form; extra keys."""
    yield "valid", base()
    for key in [*WebhookPayload.model_fields, "extra"]:
        body = base()
        body.pop(key, None)
        yield f"no {key}", body
        for value in [*NOT_STRINGS, "4", "3", "firing", "resolved", "x", {"a": "b"}, {"a": 1}, [alert("X")]]:
            body = base()
            body[key] = copy.deepcopy(value)
            yield f"{key}={value!r}", body
    for key in [*WebhookAlert.model_fields, "extra"]:
        body = base()
        body["alerts"][1].pop(key, None)
        yield f"alert without {key}", body
        values = [*NOT_STRINGS, "firing", "exploded", "f" * 64, "f" * 65, {"a": "b"}, {"a": None}, *TIMES]
        for value in values:
            body = base()
            body["alerts"][1][key] = copy.deepcopy(value)
            yield f"alert {key}={value!r}", body
    for value in [None, {}, [], [None], [1], "alerts"]:
        body = base()
        body["alerts"] = value
        yield f"alerts={value!r}", body
    yield "no alerts", {**base(), "alerts": []}
    yield "a list", [base()]
    yield "null", None


def problems(error: ValidationError) -> list[tuple[str, tuple[int | str, ...], str]]:
    return [(e["type"], e["loc"], e["msg"]) for e in error.errors(include_url=False)]


@pytest.mark.parametrize(("case", "body"), list(variants()), ids=lambda v: str(v)[:60])
def test_the_webhook_accepts_what_the_model_accepts_and_nothing_else(case: str, body: Any) -> None:
    raw = json.dumps(body).encode()
    refused: ValidationError | None = None
    try:
        model = WebhookPayload.model_validate_json(raw)
    except ValidationError as error:
        refused = error
    if refused is None:
        assert check_webhook(raw) == (model.groupKey, len(model.alerts)), case
        return
    with pytest.raises(ValidationError) as answered:
        check_webhook(raw)
    assert problems(answered.value) == problems(refused)  # the same 400


@pytest.mark.parametrize("raw", [b"{oops", b"", b'{"version": "4"', b"\xff\xfe", b'{"a": NaN}'])
def test_a_body_that_is_not_json_is_refused_as_by_the_model(raw: bytes) -> None:
    with pytest.raises(ValidationError) as refused:
        WebhookPayload.model_validate_json(raw)
    with pytest.raises(ValidationError) as answered:
        check_webhook(raw)
    assert problems(answered.value) == problems(refused.value)


@pytest.mark.parametrize(("shape", "model"), [(_PayloadShape, WebhookPayload), (_AlertShape, WebhookAlert)])
def test_the_shape_has_the_models_fields(shape: Any, model: Any) -> None:
    """A field added to the model must be added to the shape (the corpus above would not see it);
    which are required, the corpus checks (a body without each)."""
    assert list(get_type_hints(shape)) == list(model.model_fields)


README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


async def test_the_readmes_sample_webhook_is_accepted_and_opens_an_incident(app_factory: AppFactory) -> None:
    """The quick start's curl (README.md) works as written on a first `make run`: its body, as a
    shell makes it (``startsAt`` is now, from ``date``), posted with the generated admin token, and
    with no routes the incident is recorded, paging nobody."""
    sample = re.search(r"/api/v1/alerts/alertmanager -d ('\{.*?\}')\n", README, re.DOTALL)
    assert sample is not None, "the README's sample webhook"
    shell = await asyncio.create_subprocess_exec(
        "bash", "-c", f"printf '%s' {sample.group(1)}", stdout=asyncio.subprocess.PIPE
    )
    body, _ = await shell.communicate()
    assert shell.returncode == 0
    started = datetime.fromisoformat(json.loads(body)["alerts"][0]["startsAt"])
    assert abs(datetime.now(UTC) - started) < timedelta(minutes=1)  # now, whenever it is read
    async with app_factory() as (_app, client):
        answer = await client.post(
            "/api/v1/alerts/alertmanager",
            content=body,
            headers={**bearer(ADMIN_TOKEN), "Content-Type": "application/json"},
        )
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"status": "accepted", "id": 1, "alerts": 1, "url": "/api/v1/alerts/intake/1"}
        opened = await incident_of(client, answer)
        incident = (await client.get(f"/api/v1/incidents/{opened}", headers=bearer(ADMIN_TOKEN))).json()
    assert incident["title"] == "HighErrorRate: 5xx above 5% on checkout"
    assert incident["services"] == ["checkout"]
    assert incident["muted"] == "no route pages anybody"
