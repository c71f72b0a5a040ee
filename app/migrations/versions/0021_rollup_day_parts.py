"""Rollups: a month of stored days may also have rows of one day each (``part``), until its row is
written again with them.

Storing the night's day used to read and rewrite every entity's month row (and delete its report
and figure rows) inside the day's fenced transaction: for 1,000 services, 0.1 s of a day that
Prometheus answers in 0.8 s. The day now goes to a row of its own per entity (``part`` = its day
of the month); the month's row takes it in when its report rows are written, right after the day
(``app/rollups/repository.py``, ``replace_day`` and ``render_months``). Existing rows become
part 0: nothing to convert. The primary key gains the column (on SQLite the table is made again,
``WITHOUT ROWID`` as before, its rows copied as they are).

Downgrading packs each month's rows back into one (the packing written out here, as 0015 does).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "entity_id, month, day_mask, data, render_key, rendered"


def _sqlite_table(name: str, *, part: bool) -> str:
    key = "entity_id, month, part" if part else "entity_id, month"
    return (
        f"CREATE TABLE {name} (entity_id INTEGER NOT NULL, month INTEGER NOT NULL, "
        + ("part SMALLINT DEFAULT '0' NOT NULL, " if part else "")
        + "day_mask BIGINT NOT NULL, data BLOB NOT NULL, render_key BIGINT, rendered BLOB, "
        f"CONSTRAINT pk_rollup_day_packs PRIMARY KEY ({key}), "
        "CONSTRAINT fk_rollup_day_packs_entity_id_rollup_entities FOREIGN KEY(entity_id) "
        "REFERENCES rollup_entities (id) ON DELETE CASCADE) WITHOUT ROWID"
    )


def _sqlite_rebuild(*, part: bool) -> None:
    op.execute(_sqlite_table("rollup_day_packs_new", part=part))
    op.execute(f"INSERT INTO rollup_day_packs_new ({_COLUMNS}) SELECT {_COLUMNS} FROM rollup_day_packs")  # noqa: S608
    op.execute("DROP TABLE rollup_day_packs")
    op.execute("ALTER TABLE rollup_day_packs_new RENAME TO rollup_day_packs")
    op.create_index("ix_rollup_day_packs_month", "rollup_day_packs", ["month"])
    op.create_index("ix_rollup_day_packs_render_key", "rollup_day_packs", ["render_key"])


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column(
            "rollup_day_packs", sa.Column("part", sa.SmallInteger(), server_default="0", nullable=False)
        )
        op.execute("ALTER TABLE rollup_day_packs DROP CONSTRAINT pk_rollup_day_packs")
        op.execute(
            "ALTER TABLE rollup_day_packs ADD CONSTRAINT pk_rollup_day_packs"
            " PRIMARY KEY (entity_id, month, part)"
        )
    else:
        _sqlite_rebuild(part=True)


# --- downgrade: each month's rows packed into one -------------------------------------------------

_ID = np.dtype("<i8")
_END = np.dtype("<u4")
_HEADER = _ID.itemsize + _END.itemsize
_FLOAT = 8


def _unpack(mask: int, data: bytes) -> dict[int, tuple[int, bytes]]:
    days = [d + 1 for d in range(31) if mask >> d & 1]
    ids = np.frombuffer(data, dtype=_ID, count=len(days)).tolist()
    ends = np.frombuffer(data, dtype=_END, count=len(days), offset=len(days) * _ID.itemsize).tolist()
    base, start, found = len(days) * _HEADER, len(days) * _HEADER, {}
    for day, layout, end in zip(days, ids, ends, strict=True):
        stop = base + end * _FLOAT
        found[day] = (layout, data[start:stop])
        start = stop
    return found


def _pack(days: dict[int, tuple[int, bytes]]) -> tuple[int, bytes]:
    order = sorted(days)
    ends = np.cumsum([len(days[d][1]) // _FLOAT for d in order], dtype=np.int64)
    header = np.asarray([days[d][0] for d in order], dtype=_ID).tobytes() + ends.astype(_END).tobytes()
    return sum(1 << (d - 1) for d in order), header + b"".join(days[d][1] for d in order)


def downgrade() -> None:
    connection = op.get_bind()
    split = connection.execute(
        sa.text("SELECT DISTINCT entity_id, month FROM rollup_day_packs WHERE part <> 0")
    ).all()
    for entity_id, month in split:
        key = {"e": entity_id, "m": month}
        rows = connection.execute(
            sa.text("SELECT day_mask, data FROM rollup_day_packs WHERE entity_id = :e AND month = :m"), key
        ).all()
        days: dict[int, tuple[int, bytes]] = {}
        for mask, data in rows:
            days.update(_unpack(int(mask), bytes(data)))
        packed_mask, packed = _pack(days)
        connection.execute(sa.text("DELETE FROM rollup_day_packs WHERE entity_id = :e AND month = :m"), key)
        # written without its report rows: they are written again after the upgrade, or live
        connection.execute(
            sa.text(
                "INSERT INTO rollup_day_packs (entity_id, month, part, day_mask, data)"
                " VALUES (:e, :m, 0, :k, :d)"
            ),
            {**key, "k": packed_mask, "d": packed},
        )
        connection.execute(
            sa.text("DELETE FROM rollup_figure_months WHERE entity_id = :e AND month = :m"), key
        )
    if connection.dialect.name == "postgresql":
        op.execute("ALTER TABLE rollup_day_packs DROP CONSTRAINT pk_rollup_day_packs")
        op.execute("ALTER TABLE rollup_day_packs DROP COLUMN part")
        op.execute(
            "ALTER TABLE rollup_day_packs ADD CONSTRAINT pk_rollup_day_packs PRIMARY KEY (entity_id, month)"
        )
    else:
        _sqlite_rebuild(part=False)
