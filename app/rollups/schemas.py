"""Request and answer bodies of the rollups and reports endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

Row = dict[str, Any]


HISTORY = (
    "the day's on-call history: stored (with the Prometheus figures), pending (the Prometheus "
    "figures are stored; the history waits for the alert journal, which still held a webhook "
    "received before the day ended, and the catch-up stores it once the journal has moved: error "
    "says why), completed (stored alone, completing a pending day, Prometheus not queried again); "
    "null when the run stored nothing (running, failed, skipped)"
)


class RunRequest(BaseModel):
    """Either ``date``, or ``from`` and ``to`` (inclusive)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date: dt.date | None = Field(default=None, examples=["2026-11-20"])
    first: dt.date | None = Field(default=None, alias="from", examples=["2026-10-01"])
    last: dt.date | None = Field(default=None, alias="to", examples=["2026-11-20"])
    wait: bool | None = Field(
        default=None,
        description="Answer once done (default for a single date) or at once with 202 (default for a range)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> RunRequest:
        if self.date is not None and (self.first is not None or self.last is not None):
            raise ValueError("give either date, or from and to, not both")
        if self.date is None and (self.first is None or self.last is None):
            raise ValueError("give date, or both from and to")
        return self


class RunOut(BaseModel):
    day: dt.date
    status: str = Field(
        description="ok, partial (Prometheus's data starts after the day began: its retention), no_data, "
        "failed, skipped (another worker is on that day), or superseded (the day was claimed again "
        "after this run's lease ran out: it stored nothing)"
    )
    duration_ms: float
    entities: int
    values: int
    error: str | None
    history: str | None = Field(default=None, description=HISTORY)


class RunResults(BaseModel):
    runs: list[RunOut]


class Queued(BaseModel):
    queued: list[dt.date]
    message: str


class RunRecord(BaseModel):
    id: int
    day: dt.date
    status: str = Field(
        description="ok, partial (Prometheus's data starts after the day began: its retention), no_data, "
        "failed, running, or superseded (the day was claimed again after its lease ran out: it "
        "stored nothing)"
    )
    trigger: str
    started: dt.datetime
    duration_ms: float | None
    entities: int | None
    values: int | None
    error: str | None
    worker: str
    prometheus: bool = Field(
        description="whether Prometheus was queried; false: the on-call history alone (no Prometheus "
        "was configured), and the catch-up computes the day again once one is"
    )
    history: str | None = Field(default=None, description=HISTORY)


class RunHistory(BaseModel):
    runs: list[RunRecord]
