"""Why a delivery failed, as data (app.alerts.failures): every kind said in both languages."""

from __future__ import annotations

import re
from types import ModuleType
from typing import get_args
from zoneinfo import ZoneInfo

import pytest

from app.alerts.channels import aliyun, dingtalk, feishu, twilio, wecom
from app.alerts.failures import KINDS, Failure, Kind, Value, failure, gave_up_phrase, parse, refused
from app.web.catalogue import MESSAGES
from app.web.i18n import Translator

pytestmark = pytest.mark.timeout(10)

ZH, EN = Translator("zh-CN", ZoneInfo("UTC")), Translator("en", ZoneInfo("UTC"))
VALUES: dict[str, Value] = {"status": 503, "code": 310000, "seconds": 10, "limit": 20000,
                            "channel_type": "email", "people": "alice", "contact": "phone"}  # fmt: skip
UNITS = {"too_large": ("bytes", "characters", "blocks")}
NAMES = ("max_delivery_age", "Panorama", "Slack", "URL", "HTTP", "TLS", "to")  # names, in any language


def _every_failure() -> list[Failure]:
    found = []
    for kind in get_args(Kind):
        for unit in UNITS.get(kind, (None,)):
            key = f"delivery.failure.{kind}" + (f".{unit}" if unit else "")
            named = set(re.findall(r"\{(\w+)\}", MESSAGES[key][1]))
            values: dict[str, Value] = {name: VALUES[name] for name in named}
            if unit:
                values["unit"] = unit
            found.append(failure(kind, "the far end's words", **values))
    return found


def test_every_kind_of_failure_is_said_in_both_languages_with_its_values() -> None:
    failures = _every_failure()
    assert {f.kind for f in failures} == KINDS
    for found in failures:
        zh, en = ZH.say(found.phrase()), EN.say(found.phrase())
        assert zh != en, found
        words = zh
        for value in [*found.values.values(), *NAMES]:
            words = words.replace(str(value), "")
        assert not re.search(r"[A-Za-z]{3,}", words), zh  # no English word of Panorama's
        for name, value in found.values.items():
            if name != "unit":
                assert str(value) in zh, (found, name)
                assert str(value) in en, (found, name)
        assert "the far end's words" not in zh + en  # theirs are shown apart, as they came


def test_a_stored_failure_reads_back_and_an_old_entry_has_none() -> None:
    stored = failure("timeout", seconds=10.0).stored()
    assert stored == {"kind": "timeout", "seconds": 10}  # a whole number of seconds, not 10.0
    assert ZH.delivery_failure(stored) == "10 秒内没有应答"
    refused = failure("refused", "sign not match", code=310000)
    assert parse(refused.stored()) == refused
    for old in (None, "dingtalk: network error", {"kind": "a kind from a later version"}, {}):
        assert parse(old) is None
        assert ZH.delivery_failure(old) is None  # the page shows the entry's English text instead


def test_why_a_dead_letter_was_given_up_counts_its_attempts() -> None:
    assert EN.gave_up("too_old", 1) == "gave up after 1 attempt (max_delivery_age passed)"
    assert EN.gave_up("too_old", 4) == "gave up after 4 attempts (max_delivery_age passed)"
    assert ZH.gave_up("not_retryable", 2) == "重试也无法成功，共尝试 2 次"
    assert gave_up_phrase("not retryable", 1) is None  # the English reason of an old entry


@pytest.mark.parametrize(
    "robot", [dingtalk, wecom, feishu, twilio, aliyun], ids=lambda m: m.__name__.rsplit(".", 1)[-1]
)
def test_what_each_robots_codes_mean_is_said_in_both_languages(robot: ModuleType) -> None:
    """Every errcode a robot's module knows (its CODES) has its meaning in the catalogue, the English
    one the module's own; a code it does not know is said by number, the robot's words beside it."""
    name = robot.__name__.rsplit(".", 1)[-1]
    for code, (meaning, _retryable) in robot.CODES.items():
        known = refused("its errmsg", code, name, known=True)
        assert EN.delivery_failure(known.stored()) == f"refused with code {code} ({meaning})"
        assert MESSAGES[f"delivery.code.{name}.{code}"][1] == meaning
        assert f"错误码 {code}（" in (ZH.delivery_failure(known.stored()) or "")
    unknown = refused("its errmsg", 123456, name, known=False)
    assert ZH.delivery_failure(unknown.stored()) == "对方拒绝了消息，错误码 123456"
