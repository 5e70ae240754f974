"""What the sleeping engine and sender read: the earliest moment something is due,
the same through the plain SQLite driver as through SQLAlchemy."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import KemName, ServerKeys
from storage.due import Probe
from storage.models import Alert, AlertState, Flip, Status
from storage.people import get_or_create_person
from storage.timeutil import utc_now
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
