"""``panorama digest NAME --date DAY``: a dry run prints the digest and sends nothing; a real run
queues it once, then says it was already sent, until ``--force``."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import date
from pathlib import Path

import pytest
import yaml

from app import db
from app.cli import main
from app.config import load_settings
from tests.digests.support import CHECKOUT, digest_config, service_day, store_day
from tests.harness.app import TOKENS


def write_config(tmp_path: Path) -> Path:
    database = tmp_path / "panorama.db"
    data = {
        **digest_config(locale="zh-CN"),
        "database": {"url": f"sqlite+aiosqlite:///{database}"},
        "auth": {"tokens": [{"name": "admin-test", "role": "admin", "token": TOKENS["admin"]}]},
    }
    path = tmp_path / "panorama.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def store(path: Path) -> None:
    settings = load_settings(path)

    async def run() -> None:
        engine = db.create_engine(settings.database)
        try:
            await store_day(
                db.create_session_factory(engine),
                date(2026, 11, 18),
                service_day(CHECKOUT, 1200, 60, (600, 1000, 1190, 1200)),
            )
        finally:
            await engine.dispose()

    asyncio.run(run())


def rows(tmp_path: Path, table: str) -> int:
    with sqlite3.connect(tmp_path / "panorama.db") as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def test_a_dry_run_prints_the_digest_and_sends_nothing_and_a_run_sends_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "migrate"]) == 0
    store(path)
    capsys.readouterr()

    assert main(["--config", str(path), "digest", "daily", "--date", "2026-11-18", "--dry-run"]) == 0
    printed, said = capsys.readouterr()
    assert printed.startswith("📊 运维日报 · daily · 2026-11-18（周三）")
    assert "public_url" not in said  # set in the file: the links are right
    assert "1. checkout.shop：请求 1,200 · 错误率 5.00%" in printed
    assert rows(tmp_path, "alert_outbox") == 0
    assert rows(tmp_path, "digest_sends") == 0

    assert (
        main(["--config", str(path), "digest", "daily", "--date", "2026-11-18", "--dry-run", "--markdown"])
        == 0
    )
    assert capsys.readouterr().out.startswith("### 📊 运维日报")

    assert main(["--config", str(path), "digest", "daily", "--date", "2026-11-18"]) == 0
    printed, said = capsys.readouterr()
    assert "queued for ops-robot (send 1)" in printed
    assert "public_url" not in said
    assert main(["--config", str(path), "digest", "daily", "--date", "2026-11-18"]) == 0
    assert "was already sent; --force sends it again" in capsys.readouterr().out
    assert rows(tmp_path, "alert_outbox") == 1
    assert main(["--config", str(path), "digest", "daily", "--date", "2026-11-18", "--force"]) == 0
    assert "(send 2)" in capsys.readouterr().out
    assert rows(tmp_path, "alert_outbox") == 2

    assert main(["--config", str(path), "digest", "weekly", "--dry-run"]) == 2
    assert "no digest 'weekly' (known: daily)" in capsys.readouterr().err
    assert main(["--config", str(path), "digest", "daily", "--date", "yesterday-ish", "--dry-run"]) == 2
    assert "option '--date': 'yesterday-ish' is not" in capsys.readouterr().err


def test_a_digest_named_before_any_is_configured_says_where_to_add_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first `make run` has no digests: the README's `panorama digest shop` says where they go."""
    path = tmp_path / "panorama.yaml"
    database = {"url": f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}"}
    path.write_text(yaml.safe_dump({"database": database}), encoding="utf-8")
    assert main(["--config", str(path), "migrate"]) == 0
    capsys.readouterr()
    assert main(["--config", str(path), "digest", "shop", "--date", "2026-12-03", "--dry-run"]) == 2
    said = capsys.readouterr().err
    assert "no digest 'shop' (none is configured: add one under 'digests' in the configuration file)" in said


def test_a_dry_run_says_in_the_digests_language_that_links_use_the_default_base_without_public_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["alerts"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["--config", str(path), "migrate"]) == 0
    store(path)
    capsys.readouterr()
    assert main(["--config", str(path), "digest", "daily", "--date", "2026-11-18", "--dry-run"]) == 0
    printed, said = capsys.readouterr()
    assert "http://127.0.0.1:8000/" in printed
    assert "\n事件列表：http://127.0.0.1:8000/incidents?" in printed  # a full-width colon in Chinese
    assert said.strip() == (
        "注意：未设置 alerts.public_url，链接使用默认地址 http://127.0.0.1:8000（服务在别的地址运行时请设置它）"
    )
    data["digests"][0]["locale"] = "en"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert (
        main(["--config", str(path), "digest", "daily", "--date", "2026-11-18", "--dry-run", "--markdown"])
        == 0
    )
    printed, said = capsys.readouterr()
    assert printed.startswith("### 📊 Daily digest")  # the note stays out of the digest itself
    assert "alerts.public_url is not set, so the links use the default base http://127.0.0.1:8000" in said


def test_a_digest_sent_without_public_url_says_its_links_use_the_default_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real send queues the digest with links on the default base: it says so as a dry run does,
    in the digest's language; a run that queues nothing (already sent) says nothing of links."""
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["alerts"]
    data["digests"][0]["locale"] = "en"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["--config", str(path), "migrate"]) == 0
    store(path)
    capsys.readouterr()
    assert main(["--config", str(path), "digest", "daily", "--date", "2026-11-18"]) == 0
    printed, said = capsys.readouterr()
    assert "queued for ops-robot (send 1)" in printed
    assert said.strip() == (
        "Note: alerts.public_url is not set, so the links use the default base http://127.0.0.1:8000 "
        "(set it when the service runs at another address)"
    )
    assert main(["--config", str(path), "digest", "daily", "--date", "2026-11-18"]) == 0
    printed, said = capsys.readouterr()
    assert "was already sent" in printed
    assert said == ""
    assert rows(tmp_path, "alert_outbox") == 1


def test_a_bad_date_names_the_commands_option_not_a_query_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "migrate"]) == 0
    capsys.readouterr()
    assert main(["--config", str(path), "digest", "daily", "--date", "2999-01-01", "--dry-run"]) == 2
    _, not_over = capsys.readouterr()
    assert main(["--config", str(path), "digest", "daily", "--date", "someday", "--force"]) == 2
    _, not_a_day = capsys.readouterr()
    assert not_over.startswith("option '--date': 2999-01-01 is not over yet in UTC"), not_over
    assert not_a_day.startswith("option '--date': 'someday' is not a time"), not_a_day
    assert "query parameter" not in not_over + not_a_day
