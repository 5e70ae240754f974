"""wake at the deadline: bot runs with heartbeats (claims of dead runs are
released), and on PostgreSQL a NOTIFY when what is due may have moved

Revision ID: 0006
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# storage.due.CHANNEL and WATCHED (a migration does not import the package's code).
_CHANNEL = "intake_due"
_WATCHED = ("groups", "flips", "alerts", "legs")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("boot_id", sa.String(length=40), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.Uuid(), nullable=True))
    if op.get_context().dialect.name != "postgresql":
        return
    # One notification per table written in a transaction (PostgreSQL folds identical
    # ones), naming the table,
    # sent at its commit: every bot process listening looks again at once.
    op.execute(
        "CREATE FUNCTION intake_due_notify() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{_CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in _WATCHED:
        op.execute(
            f"CREATE TRIGGER {table}_due_notify AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION intake_due_notify()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in _WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_due_notify ON {table}")
        op.execute("DROP FUNCTION IF EXISTS intake_due_notify()")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
    op.drop_table("runs")
