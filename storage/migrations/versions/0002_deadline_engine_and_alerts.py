"""deadline engine and alerts: reminders on flips, alert purposes, recipients'
time zones, the bot's vital signs

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = ("pending", "sent", "failed", "unreachable")
_PURPOSES = ("alert", "reminder", "all_clear", "claimed", "unreachable")


def _enum(values: Sequence[str], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def _alerts_table(*, with_purpose: bool) -> None:
    purpose = (
        [
            sa.Column("purpose", _enum(_PURPOSES, "purpose_values"), nullable=False),
            sa.Column("about_sealed", sa.LargeBinary(), nullable=True),
        ]
        if with_purpose
        else []
    )
    unique = (
        ("flip_id", "recipient_id", "purpose", "round")
        if with_purpose
        else (
            "flip_id",
            "recipient_id",
            "round",
        )
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flip_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        *purpose,
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("state", _enum(_STATES, "state_values"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("telegram_message_id", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["flip_id"], ["flips.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recipient_id"], ["people.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(*unique),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_flip_id"), ["flip_id"], unique=False)
        if with_purpose:
            batch_op.create_index(
                batch_op.f("ix_alerts_recipient_id"), ["recipient_id"], unique=False
            )
            batch_op.create_index("ix_alerts_due", ["state", "next_attempt_at"], unique=False)
        else:
            batch_op.create_index(
                batch_op.f("ix_alerts_next_attempt_at"), ["next_attempt_at"], unique=False
            )


def upgrade() -> None:
    # Nothing wrote to the outbox before this revision, so the table is
    # rebuilt rather than altered: SQLite cannot drop an unnamed unique key.
    op.drop_table("alerts")
    _alerts_table(with_purpose=True)
    with op.batch_alter_table("flips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("next_reminder_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_flips_next_reminder_at"), ["next_reminder_at"], unique=False
        )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tz", sa.String(length=64), nullable=True))
    op.create_table(
        "watch_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("watch_state")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("tz")
    with op.batch_alter_table("flips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flips_next_reminder_at"))
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("next_reminder_at")
        batch_op.drop_column("acknowledged_at")
    op.drop_table("alerts")
    _alerts_table(with_purpose=False)
