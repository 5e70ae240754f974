"""signals that hold under coercion: two-person acts on a group, check-ins
after a report, notices, invite labels, when people were last seen

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PURPOSES = ("alert", "reminder", "all_clear", "claimed", "unreachable")
_STATUSES = ("PENDING", "OK", "LATE", "SILENT", "DETAINED", "SAFE", "PAUSED")


def _enum(values: Sequence[str], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def _purposes(values: Sequence[str], old: Sequence[str]) -> None:
    # The purpose is text with a named CHECK: a new value is a new CHECK. SQLite
    # cannot alter one in place, so batch mode copies the table.
    with op.batch_alter_table("alerts", schema=None, recreate="always") as batch_op:
        batch_op.alter_column(
            "purpose",
            existing_type=_enum(old, "purpose_values"),
            type_=_enum(values, "purpose_values"),
            existing_nullable=False,
        )


def upgrade() -> None:
    _purposes((*_PURPOSES, "notice"), _PURPOSES)
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schedule_from", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("checkin_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("after_report", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "group_acts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("act", _enum(("pause", "safe", "clear"), "act_values"), nullable=False),
        sa.Column("from_status", _enum(_STATUSES, "from_status_values"), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pause_s", sa.Integer(), nullable=True),
        sa.Column("confirmed_by", sa.Uuid(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["requested_by"], ["people.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["confirmed_by"], ["people.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("group_acts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_acts_group_id"), ["group_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("group_acts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_acts_group_id"))
    op.drop_table("group_acts")
    with op.batch_alter_table("checkin_events", schema=None) as batch_op:
        batch_op.drop_column("after_report")
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.drop_column("label_sealed")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("schedule_from")
    op.execute("DELETE FROM alerts WHERE purpose = 'notice'")
    _purposes(_PURPOSES, (*_PURPOSES, "notice"))
