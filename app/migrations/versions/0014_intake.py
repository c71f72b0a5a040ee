"""Intake: incidents found and kept unique by the SHA-256 of their groupKey.

Alertmanager's groupKey holds every group label; past ~2.7 KB a PostgreSQL btree entry no longer
fits and the insert fails, so the open-group unique index (and the lookup index) move from
``group_key`` to ``group_digest`` = sha256(group_key) in hex. Existing rows get their digest
here (computed in Python: SQLite has no SHA-256), in batches.

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-06
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status != 'resolved'"
BATCH = 1000


def upgrade() -> None:
    op.add_column("alert_incidents", sa.Column("group_digest", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    incidents = sa.table(
        "alert_incidents", sa.column("id", sa.Integer()), sa.column("group_key"), sa.column("group_digest")
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(incidents.c.id, incidents.c.group_key)
            .where(incidents.c.id > last)
            .order_by(incidents.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            sa.update(incidents).where(incidents.c.id == sa.bindparam("row_id")),
            [
                {"row_id": row_id, "group_digest": hashlib.sha256(key.encode()).hexdigest()}
                for row_id, key in rows
            ],
        )
        last = rows[-1][0]
    op.drop_index("uq_alert_incidents_open_group", table_name="alert_incidents")
    op.drop_index("ix_alert_incidents_group_status", table_name="alert_incidents")
    with op.batch_alter_table("alert_incidents") as batch:
        batch.alter_column("group_digest", existing_type=sa.String(length=64), nullable=False)
    op.create_index("ix_alert_incidents_digest_status", "alert_incidents", ["group_digest", "status"])
    op.create_index(
        "uq_alert_incidents_open_group",
        "alert_incidents",
        ["group_digest"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("uq_alert_incidents_open_group", table_name="alert_incidents")
    op.drop_index("ix_alert_incidents_digest_status", table_name="alert_incidents")
    with op.batch_alter_table("alert_incidents") as batch:
        batch.drop_column("group_digest")
    op.create_index("ix_alert_incidents_group_status", "alert_incidents", ["group_key", "status"])
    op.create_index(
        "uq_alert_incidents_open_group",
        "alert_incidents",
        ["group_key"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
