"""What the failure drills share: Panorama replicas as real processes, a PostgreSQL of their own
(to restart), the page count at the sink, and the report each drill prints.

Every drill prints what it injected and what it counted — sent, received, lost, duplicated —
and writes the same as JSON to ``artifacts/drills/<drill>.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from app import db
from app.alerts.models import Delivery
from app.config import DatabaseSettings
from app.rollups import repository as rollup_repository
from app.rollups.models import RollupRun
from tests.fakes.robots import Received
from tests.harness.app import TOKENS, configured_tokens
from tests.harness.processes import ManagedProcess, free_port, start_on_free_port

PANORAMA = Path(sys.executable).parent / "panorama"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "drills"
WEBHOOK_TOKEN = "drill-webhook-token-0001"
REPORTS: list[str] = []


# --- the report ----------------------------------------------------------------------------


@dataclass
class Tally:
    """Pages counted at the sink against what should have arrived."""

    sent: int
    received: int
    lost: int
    duplicated: int

    @classmethod
    def of(cls, expected: Iterable[str], arrived: Iterable[str]) -> Tally:
        wanted = set(expected)
        counts = Counter(a for a in arrived if a in wanted)
        return cls(
            sent=len(wanted),
            received=len(counts),
            lost=len(wanted - set(counts)),
            duplicated=sum(n - 1 for n in counts.values() if n > 1),
        )


def report(drill: str, injected: Sequence[str], tally: Tally, **more: Any) -> None:
    """Prints the drill's report (pytest -s shows it; it is in the JSON artifact either way)."""
    data = {"drill": drill, "injected": list(injected), **tally.__dict__, **more}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{drill}.json").write_text(json.dumps(data, indent=2, default=str))
    lines = [f"[drill] {drill}", *(f"  injected: {i}" for i in injected)]
    lines.append(
        f"  counted: sent {tally.sent}, received {tally.received}, lost {tally.lost}, "
        f"duplicated {tally.duplicated}" + "".join(f", {k} {v}" for k, v in more.items())
    )
    REPORTS.append("\n".join(lines))  # printed at the end of the run (tests/drills/conftest.py)


def page_titles(messages: Iterable[Received], kind: str = "trigger") -> list[str]:
    """The incident titles of the ``kind`` pages a webhook sink received (digests unpacked)."""
    found: list[str] = []
    for message in messages:
        body = message.json or {}
        items = body.get("notifications", []) if body.get("kind") == "digest" else [body]
        found.extend(item["incident"]["title"] for item in items if item.get("kind") == kind)
    return found


# --- Panorama as processes -------------------------------------------------------------------


def drill_config(sink_url: str, **extra: Any) -> dict[str, Any]:
    """One route paging one webhook channel once per incident; every token of the test harness."""
    config: dict[str, Any] = {
        "auth": {"tokens": configured_tokens("drill")},
        "alerts": {"webhook_token": WEBHOOK_TOKEN, "worker_interval": "200ms"},
        "channels": [{"name": "pager", "type": "webhook", "url": sink_url, "timeout_s": 5}],
        "escalations": [{"name": "page", "steps": [{"notify": {"channels": ["pager"]}}]}],
        "routes": [{"matchers": [], "escalation": "page"}],
        "rollups": {"enabled": False},
        "server": {"rate_limit": {"per_token_per_min": None}},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@dataclass
class Replica:
    """One `panorama serve` process."""

    name: str
    url: str
    process: ManagedProcess
    argv: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


def environment(database_url: str, config_file: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PANORAMA_", "OTEL_"))},
        "PANORAMA_CONFIG": str(config_file),
        "PANORAMA_DATABASE_URL": database_url,
        "PANORAMA_LOG_LEVEL": "INFO",
    }


def migrate(database_url: str, tmp: Path, config: Mapping[str, Any]) -> None:
    config_file = tmp / "migrate.yaml"
    config_file.write_text(yaml.safe_dump(dict(config)))
    done = subprocess.run(
        [str(PANORAMA), "migrate"],
        env=environment(database_url, config_file),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def start_replica(
    name: str, database_url: str, tmp: Path, config: Mapping[str, Any], port: int = 0
) -> Replica:
    """Starts `panorama serve` (its own config file and log under ``tmp``), once /healthz answers."""
    tmp.mkdir(parents=True, exist_ok=True)
    config_file = tmp / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(dict(config)))

    def build(port: int) -> ManagedProcess:
        return ManagedProcess(
            name,
            [str(PANORAMA), "serve", "--port", str(port)],
            log_path=tmp / f"{name}.log",
            ready_url=f"http://127.0.0.1:{port}/healthz",
            env=environment(database_url, config_file),
        )

    if port:
        process = build(port).start()
    else:  # a free port another test's server may take first: start_on_free_port tries another
        port, process = start_on_free_port(build)
    return Replica(name, f"http://127.0.0.1:{port}", process, process.argv)


def wait_until(check: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:g}s waiting for {what}")
        time.sleep(0.2)


def webhook_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


def incidents(replica: Replica) -> list[dict[str, Any]]:
    with httpx.Client(timeout=30) as client:
        answer = client.get(
            f"{replica.url}/api/v1/incidents",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
        )
    answer.raise_for_status()
    found: list[dict[str, Any]] = answer.json()["incidents"]
    return found


def outbox_statuses(database_url: str) -> Counter[str]:
    """How many outbox rows are in each status (read straight from the database)."""

    async def read() -> Counter[str]:
        engine = db.create_engine(DatabaseSettings.model_validate({"url": database_url}))
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    select(Delivery.status, func.count()).group_by(Delivery.status)
                )
                return Counter({status: count for status, count in rows.all()})
        finally:
            await engine.dispose()

    return asyncio.run(read())


def all_delivered(database_url: str) -> bool:
    statuses = outbox_statuses(database_url)
    return bool(statuses) and set(statuses) == {"delivered"}


# --- a PostgreSQL of the drill's own -----------------------------------------------------------


class OwnPostgres:
    """A PostgreSQL server in a temporary directory on its own loopback port, run as the `postgres`
    OS user (initdb refuses root), that a drill may stop and start. The machine's shared server is
    never touched."""

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not versions:
            pytest.skip("PostgreSQL's server binaries (initdb) are not installed")
        self.bin = versions[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="panorama-drill-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8"
        )
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "pg.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _as_postgres(self, *argv: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self.dir)
        assert done.returncode == 0, f"{' '.join(argv)} failed: {done.stdout}{done.stderr}"


def terminate(replica: Replica, timeout_s: float = 60.0) -> float:
    """SIGTERM; returns how long the process took to exit."""
    started = time.monotonic()
    popen = replica.process._popen
    assert popen is not None
    popen.send_signal(signal.SIGTERM)
    popen.wait(timeout=timeout_s)
    took = time.monotonic() - started
    replica.process.stop()
    return took


def rollup_runs(database_url: str) -> list[tuple[str, str, str, str | None]]:
    """(day, status, worker, error) of every rollup run, oldest first."""

    async def read() -> list[tuple[str, str, str, str | None]]:
        engine = db.create_engine(DatabaseSettings.model_validate({"url": database_url}))
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    select(RollupRun.day, RollupRun.status, RollupRun.worker, RollupRun.error).order_by(
                        RollupRun.id
                    )
                )
                return [(r[0].isoformat(), r[1], r[2], r[3]) for r in rows.all()]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def stored_values(database_url: str) -> Counter[str]:
    """Entity days stored per local day."""

    async def read() -> Counter[str]:
        engine = db.create_engine(DatabaseSettings.model_validate({"url": database_url}))
        try:
            async with db.create_session_factory(engine)() as session:
                counts = await rollup_repository.day_counts(session)
                epoch = date(1970, 1, 1)
                return Counter({(epoch + timedelta(days=d)).isoformat(): n for d, n in counts.items()})
        finally:
            await engine.dispose()

    return asyncio.run(read())
