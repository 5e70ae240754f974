"""The migrations build exactly the tables the models describe, on both databases."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

import storage.models  # noqa: F401  (registers the tables)
from storage.db import current_revision, head_revision, migrate, open_database
from storage.models import Member, metadata
from storage.session import AsyncSession


def _differences(connection: sa.Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_database_is_at_the_head_revision(engine: AsyncEngine) -> None:
    assert await current_revision(engine) == head_revision()


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_migrating_twice_changes_nothing(engine: AsyncEngine) -> None:
    await migrate(engine)
    assert await current_revision(engine) == head_revision()


async def test_sqlite_is_set_up_to_leave_no_deleted_plaintext(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pragmas.db'}"
    async with open_database(url) as engine, engine.connect() as conn:
        pragma = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in (
                "foreign_keys",
                "secure_delete",
                "journal_mode",
                "temp_store",
                "cache_size",
            )
        }
    assert pragma == {
        "foreign_keys": 1,
        "secure_delete": 1,
        "journal_mode": "delete",
        "temp_store": 2,
        "cache_size": -512,  # KiB: a pooled connection's cache at rest (storage.db)
    }


async def test_foreign_keys_are_enforced(session: AsyncSession) -> None:
    session.add(Member(group_id=uuid.uuid4()))
    with pytest.raises(sa.exc.IntegrityError):
        await session.flush()
