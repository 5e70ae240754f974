"""The glance at every group's status (storage.glance) reads what the models read, or
declines so that the full path answers: `intake status` must not change what it shows
when it reads the statuses without SQLAlchemy."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.crypto import KemName
from storage.glance import GroupGlance, glance_groups, head_from_files, sqlite_path
from storage.groups import Schedule, create_group, list_groups
from storage.models import Operator, Status
from storage.session import AsyncSession
from tests.conftest import Database
from tests.storage.helpers import make_group

NOW = datetime(2026, 8, 11, 9, 30, 15, 123456, tzinfo=UTC)


async def _groups_in_every_state(session: AsyncSession) -> None:
    # The field status reads, each set somewhere: a cron schedule, a pause with the
    # schedule counted from its end, a check-in to the microsecond, a shredded group.
    await make_group(session, "PINE-7", KemName.X25519)
    cron = Schedule(
        interval=None,
        cron="0 8 * * 1-5",
        tz="Asia/Shanghai",
        grace=timedelta(hours=1),
        detained_after=timedelta(days=1),
    )
    await create_group(session, codename="OAK-2", schedule=cron, kem=KemName.X25519, now=NOW)
    await make_group(session, "ELM-3", KemName.X25519)
    await make_group(session, "ASH-4", KemName.X25519)
    groups = {g.codename: g for g in await list_groups(session)}
    groups["PINE-7"].status = Status.OK
    groups["PINE-7"].status_basis = "checkin"
    groups["PINE-7"].last_checkin_at = NOW
    groups["OAK-2"].status = Status.PAUSED
    groups["OAK-2"].schedule_from = NOW + timedelta(hours=3)
    groups["ELM-3"].status = Status.DETAINED
    groups["ELM-3"].status_since = NOW - timedelta(minutes=5)
    groups["ASH-4"].shredded_at = NOW
    session.add_all(groups.values())
    await session.commit()


async def test_the_glance_reads_what_the_models_read(
    database: Database, session: AsyncSession, operator: Operator
) -> None:
    await _groups_in_every_state(session)
    glanced = glance_groups(database.url)
    if database.backend != "sqlite":
        assert glanced is None  # PostgreSQL: the full path answers
        return
    assert glanced is not None
    full = await list_groups(session)
    assert [g.codename for g in glanced] == ["ASH-4", "ELM-3", "OAK-2", "PINE-7"]
    for glance, group in zip(glanced, full, strict=True):
        for field in dataclasses.fields(GroupGlance):
            value = getattr(glance, field.name)
            assert value == getattr(group, field.name), (group.codename, field.name)
            assert type(value) is type(getattr(group, field.name)), field.name
            if isinstance(value, datetime):
                assert value.tzinfo is UTC
    by_name = {g.codename: g for g in glanced}
    assert by_name["PINE-7"].last_checkin_at == NOW
    assert by_name["OAK-2"].cron == "0 8 * * 1-5"
    assert by_name["OAK-2"].status is Status.PAUSED


async def test_a_database_to_migrate_is_left_to_the_full_path(
    database: Database, session: AsyncSession, operator: Operator
) -> None:
    await make_group(session, "PINE-7")
    if database.path is None:
        assert glance_groups(database.url) is None
        return
    assert glance_groups(database.url) is not None
    db = sqlite3.connect(database.path)
    with db:
        db.execute("UPDATE alembic_version SET version_num = '0001_initial'")
    db.close()
    assert head_from_files() != "0001_initial"
    assert glance_groups(database.url) is None  # status then migrates, as before


def test_only_a_plain_sqlite_file_is_glanced_at() -> None:
    assert sqlite_path("sqlite+aiosqlite:////srv/intake/intake.db") is not None
    assert sqlite_path("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_path("sqlite+aiosqlite:////srv/intake/intake.db?timeout=5") is None
    assert sqlite_path("sqlite+aiosqlite:////srv/my%20files/intake.db") is None
    assert sqlite_path("postgresql+asyncpg://intake@db/intake") is None
    # No file: nothing is created, and the full path says there is no database.
    missing = "sqlite+aiosqlite:////nonexistent-folder-for-intake/intake.db"
    assert glance_groups(missing) is None


def test_a_file_that_is_not_a_database_is_left_to_the_full_path(tmp_path: Path) -> None:
    junk = tmp_path / "intake.db"
    junk.write_bytes(b"not a database, but a file of the same name\n" * 20)
    assert glance_groups(f"sqlite+aiosqlite:///{junk}") is None
