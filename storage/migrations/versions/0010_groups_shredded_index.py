"""groups: a partial index of the shredded groups, by which the live ones are counted

Revision ID: 0010
Revises: 0009

`intake run` logs how many groups it watches before it polls. Counted with a filter on
shredded_at, that read every group row (its public key inline): about 0.3 s and 2 MB of
SQLite's cache with 100,000 groups, at every start. All groups (any index) less the
shredded ones (this index) reads indexes alone. On SQLite it is partial, so that no
query for the live groups (shredded_at IS NULL) is ever planned on it: a plain index on
shredded_at made SQLite, which plans without statistics, plan the engine's look for the
next deadline on it. PostgreSQL plans with statistics and gets a plain index (as the
model: a postgresql_where there would load the PostgreSQL dialect on SQLite).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shredded = sa.text("shredded_at IS NOT NULL")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_groups_shredded",
            ["shredded_at"],
            unique=False,
            sqlite_where=shredded,
        )


def downgrade() -> None:
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_index("ix_groups_shredded")
