"""Promise 6: a tamper-evident audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import audit
from storage.audit import GENESIS, _entry_body, _legacy_hash
from storage.db import open_database, session_factory
from storage.models import AuditEvent
from storage.session import AsyncSession
from tests.conftest import Database

T0 = datetime(2026, 8, 12, 3, 0, tzinfo=UTC)


async def write(session: AsyncSession, n: int) -> audit.ChainHead:
    for i in range(n):
        await audit.append(
            session,
            actor="admin@cli",
            action="group.add",
            subject=f"G-{i}",
            at=T0 + timedelta(minutes=i),
            details={"n": i},
        )
    await session.commit()
    head = await audit.verify(session)
    await session.commit()  # end the read: on SQLite every transaction holds the write lock
    return head


async def test_chain_verifies_and_its_head_moves_with_each_entry(session: AsyncSession) -> None:
    head = await write(session, 3)
    assert head.seq == 3
    await audit.append(session, actor="admin@cli", action="invite.create", at=T0)
    await session.commit()
    later = await audit.verify(session)
    assert later.seq == 4
    assert later.hash != head.hash
    assert await audit.verify(session, checkpoint=head) == later


async def test_database_refuses_updates_and_deletes_of_the_log(session: AsyncSession) -> None:
    await write(session, 2)
    for statement in (
        "UPDATE audit_events SET actor = 'someone else' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await session.execute(sa.text(statement))
        await session.rollback()


async def _drop_guards(database: Database, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if database.backend == "sqlite":
            await conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            await conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        else:
            await conn.exec_driver_sql("DROP TRIGGER audit_events_append_only ON audit_events")


async def test_an_edited_entry_breaks_the_chain(
    database: Database, engine: AsyncEngine, session: AsyncSession
) -> None:
    await write(session, 3)
    await _drop_guards(database, engine)  # as an intruder with the database in hand would
    async with engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE audit_events SET details = '{\"n\":9}' WHERE seq = 2")
    with pytest.raises(audit.AuditChainBroken, match="entry 2 was altered"):
        await audit.verify(session)


async def test_a_removed_entry_breaks_the_chain(
    database: Database, engine: AsyncEngine, session: AsyncSession
) -> None:
    await write(session, 3)
    await _drop_guards(database, engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM audit_events WHERE seq = 2")
    with pytest.raises(audit.AuditChainBroken, match="missing"):
        await audit.verify(session)


async def test_a_cut_tail_is_caught_against_a_checkpoint(
    database: Database, engine: AsyncEngine, session: AsyncSession
) -> None:
    checkpoint = await write(session, 4)
    await _drop_guards(database, engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM audit_events WHERE seq >= 3")
    assert (await audit.verify(session)).seq == 2  # alone, a cut tail looks whole
    with pytest.raises(audit.AuditChainBroken, match="before the checkpoint"):
        await audit.verify(session, checkpoint=checkpoint)


async def _legacy_entries(session: AsyncSession, n: int) -> None:
    """Entries as an installation older than the keyed chain wrote them (unkeyed SHA-256)."""
    prev = GENESIS
    for seq in range(1, n + 1):
        at = T0 + timedelta(minutes=seq)
        digest = _legacy_hash(
            _entry_body(
                prev, seq=seq, at=at, actor="admin@cli", action="init", subject=None, details="{}"
            )
        )
        session.add(
            AuditEvent(
                seq=seq,
                at=at,
                actor="admin@cli",
                action="init",
                details="{}",
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    await session.commit()


async def test_an_older_installations_unkeyed_entries_are_accepted_only_before_a_keyed_one(
    session: AsyncSession,
) -> None:
    await _legacy_entries(session, 3)
    with pytest.raises(audit.AuditChainBroken, match="none of the 3 entries is keyed"):
        await audit.verify(session)
    await session.rollback()
    await audit.append(session, actor="admin@cli", action="operator.sign", at=T0)
    await session.commit()
    head = await audit.verify(session)
    assert (head.seq, head.legacy) == (4, 3)


async def test_an_entry_appended_without_the_key_bound_is_refused(database: Database) -> None:
    async with (
        open_database(database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        with pytest.raises(audit.AuditUnkeyed):
            await audit.append(session, actor="admin@cli", action="init", at=T0)
