"""chat labels: the neutral word a relative of several groups chooses a group by;
unconfirmed news: a relative's message with no signal about a group in trouble

Revision ID: 0004
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("invites", "role_grants")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("chat_label", sa.String(length=16), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unconfirmed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "pending_deletions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chat_digest", sa.LargeBinary(), nullable=False),
        sa.Column("chat_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_deletions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_deletions_chat_digest"), ["chat_digest"])
        batch_op.create_index(batch_op.f("ix_pending_deletions_due_at"), ["due_at"])


def downgrade() -> None:
    op.drop_table("pending_deletions")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("unconfirmed")
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("chat_label")
