"""What the sleeping engine and sender read: the earliest moment something is due,
the same through the plain SQLite driver as through SQLAlchemy."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import KemName, ServerKeys
from storage.due import Probe
from storage.models import Alert, AlertState, Flip, Status
from storage.people import get_or_create_person
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.conftest import Database
from tests.storage.helpers import make_group


async def test_a_look_finds_the_earliest_transition_reminder_and_attempt(
    engine: AsyncEngine, session: AsyncSession, server: ServerKeys, operator: object
) -> None:
    probe = Probe(engine)
    try:
        assert await probe.engine_due() is None
        assert await probe.send_due() is None
        now = utc_now().replace(microsecond=0)
        late = await make_group(session, codename="LATE-1", kem=KemName.X25519)
        soon = await make_group(session, codename="SOON-1", kem=KemName.X25519)
        shredded = await make_group(session, codename="GONE-1", kem=KemName.X25519)
        late.next_transition_at = now + timedelta(hours=2)
        soon.next_transition_at = now + timedelta(hours=1)
        shredded.next_transition_at = now - timedelta(hours=5)
        shredded.shredded_at = now  # a shredded group is never due
        session.add_all([late, soon, shredded])
        await session.commit()
        assert await probe.engine_due() == now + timedelta(hours=1)

        flip = Flip(
            group_id=late.id,
            from_status=Status.OK,
            to_status=Status.SILENT,
            at=now,
            basis="silence",
            next_reminder_at=now + timedelta(minutes=15),
        )
        session.add(flip)
        await session.commit()
        assert await probe.engine_due() == now + timedelta(minutes=15)

        someone = await get_or_create_person(
            session, server=server, telegram_id=6_700_000_001, chat_id=6_700_000_001, now=now
        )
        person_id = someone.id
        waiting = Alert(flip_id=flip.id, recipient_id=person_id, next_attempt_at=now)
        claimed = Alert(
            flip_id=flip.id,
            recipient_id=person_id,
            round=1,
            next_attempt_at=now - timedelta(minutes=1),
            claimed_until=now + timedelta(seconds=30),
        )
        sent = Alert(
            flip_id=flip.id,
            recipient_id=person_id,
            round=2,
            state=AlertState.SENT,
            next_attempt_at=now - timedelta(hours=1),
        )
        session.add_all([waiting, claimed, sent])
        await session.commit()
        # The unclaimed row is due now; a claimed one only once its claim runs out.
        assert await probe.send_due() == now
        waiting.state = AlertState.SENT
        session.add(waiting)
        await session.commit()
        assert await probe.send_due() == now + timedelta(seconds=30)
    finally:
        await probe.close()


async def test_a_look_during_a_commit_answers_what_it_last_knew_if_sooner(
    engine: AsyncEngine,
    session: AsyncSession,
    database: Database,
    operator: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite holds readers off while a writer commits. A look then must not push the
    engine's next look past a deadline it already knew of (it answered "in 50 ms",
    and the engine slept through sooner deadlines)."""
    if database.path is None:
        pytest.skip("PostgreSQL's readers never wait for a writer")
    monkeypatch.setattr("storage.due.LOCKED_RETRY", timedelta(hours=1))
    probe = Probe(engine)
    try:
        now = utc_now().replace(microsecond=0)
        group = await make_group(session, codename="SOON-2", kem=KemName.X25519)
        group.next_transition_at = now + timedelta(minutes=10)
        session.add(group)
        await session.commit()
        assert await probe.engine_due() == now + timedelta(minutes=10)
        committing = sqlite3.connect(database.path, isolation_level=None)
        try:
            # What a commit holds while it writes the file: no reader gets in.
            committing.execute("BEGIN EXCLUSIVE")
            assert await probe.engine_due() == now + timedelta(minutes=10)
            committing.execute("COMMIT")
        finally:
            committing.close()
        group.next_transition_at = now - timedelta(minutes=1)
        session.add(group)
        await session.commit()
        assert await probe.engine_due() == now - timedelta(minutes=1)
        committing = sqlite3.connect(database.path, isolation_level=None)
        try:
            committing.execute("BEGIN EXCLUSIVE")
            # What it knew is past (taken since, or seen at the retry): the retry it is.
            looked = await probe.engine_due()
            assert looked is not None
            assert looked > utc_now() + timedelta(minutes=59)
            committing.execute("COMMIT")
        finally:
            committing.close()
    finally:
        await probe.close()
