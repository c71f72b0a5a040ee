"""The ``digests`` section is validated like the rest: each problem with the path of its key, and
channels and schedules it names must exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import ConfigError, load_settings
from tests.digests.support import digest_config


def problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    path = tmp_path / "panorama.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    return [str(p) for p in caught.value.problems]


def test_a_valid_digest_reads_its_time_zone_schedule_and_weekday(tmp_path: Path) -> None:
    path = tmp_path / "panorama.yaml"
    data = digest_config(
        schedule="08:30", timezone="Asia/Shanghai", weekly="monday", scope={"services": ["checkout"]}
    )
    # "08:30" unquoted: YAML 1.1 would read a base-60 number; Panorama's loader keeps it a time
    path.write_text(yaml.safe_dump(data).replace("'08:30'", "08:30"), encoding="utf-8")
    [digest] = load_settings(path, env={}).digests
    assert (digest.schedule.hour, digest.schedule.minute) == (8, 30)
    assert digest.zone("UTC").key == "Asia/Shanghai"
    assert digest.weekly_day == 0
    assert digest.top == 10


def test_channels_and_schedules_it_names_must_exist_and_carry_a_digest(tmp_path: Path) -> None:
    data = digest_config(channels=["ops-robot", "nowhere", "phone"], schedules=["sre", "night"])
    data["channels"].append(
        {
            "name": "phone",
            "type": "twilio_call",
            "account_sid": "AC" + "0" * 32,
            "auth_token": "t" * 32,
            "from": "+15550000000",
        }
    )
    found = problems(tmp_path, data)
    assert (
        "digests[0].channels[1]: unknown channel 'nowhere' (configured: 'ops-hook', 'ops-robot', 'phone')"
        in found
    )
    assert "digests[0].channels[2]: a twilio_call channel cannot carry a digest" in found
    assert "digests[0].schedules[1]: unknown schedule 'night' (configured: 'sre')" in found


def test_bad_values_are_reported_with_their_paths(tmp_path: Path) -> None:
    data = digest_config()
    data["digests"].append(
        {
            "name": "weekly",
            "channels": ["ops-robot"],
            "timezone": "Mars/Olympus",
            "weekly": "someday",
            "top": 0,
            "scope": {"services": ["a", "a"]},
        }
    )
    found = problems(tmp_path, data)
    assert any(p.startswith("digests[1].timezone: unknown time zone 'Mars/Olympus'") for p in found)
    assert any(p.startswith("digests[1].weekly:") for p in found)
    assert any(p.startswith("digests[1].top:") for p in found)
    assert "digests[1].scope.services: listed twice: a" in found


def test_two_digests_of_one_name_are_refused(tmp_path: Path) -> None:
    data = digest_config()
    data["digests"].append({"name": "daily", "channels": ["ops-hook"]})
    assert "digests[1].name: 'daily' is used twice" in problems(tmp_path, data)
