"""operator signatures on what the bot trusts: group keys, operators, codebook entries

Revision ID: 0005
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNED = ("groups", "operators", "codebook_entries")


def upgrade() -> None:
    for table in _SIGNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("signature", sa.LargeBinary(), nullable=True))
            batch.add_column(sa.Column("signed_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in _SIGNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("signed_by")
            batch.drop_column("signature")
