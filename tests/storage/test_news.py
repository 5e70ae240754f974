"""Notes owed to activists about unconfirmed news (storage.news), on both databases: one
mark a group for a burst, claimed by one sender, crossed off once sent, and owed again
when news arrives while it is being sent or when a sender dies holding it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from storage import news
from storage.db import session_factory
from storage.session import AsyncSession
from storage.timeutil import utc_now

PINE, OAK = uuid.uuid4(), uuid.uuid4()


async def test_a_burst_of_news_owes_one_note_a_group(session: AsyncSession) -> None:
    now = utc_now()
    await news.mark(session, group_ids=[PINE], at=now + timedelta(seconds=5))
    await news.mark(session, group_ids=[PINE, OAK], at=now + timedelta(seconds=9))
    await session.commit()
    assert await news.owed(session) == sorted(
        [(PINE, now + timedelta(seconds=5)), (OAK, now + timedelta(seconds=9))]
    )
    assert await news.claim(session, now=now) == []  # not due yet
    assert await news.next_at(session) == now + timedelta(seconds=5)
    claimed = await news.claim(session, now=now + timedelta(seconds=6))
    assert [group for group, _ in claimed] == [PINE]
    await news.told(session, group_id=PINE, claimed=claimed[0][1])
    await session.commit()
    assert [group for group, _ in await news.owed(session)] == [OAK]
    await news.told(session, group_id=OAK, claimed=now + timedelta(seconds=9))  # by its moment
    await session.commit()
    assert await news.next_at(session) is None


async def test_two_senders_claim_a_note_once(session: AsyncSession) -> None:
    now = utc_now()
    await news.mark(session, group_ids=[PINE], at=now)
    await session.commit()
    engine = session.bind
    assert engine is not None
    async with session_factory(engine)() as other:  # type: ignore[arg-type]
        first = await news.claim(session, now=now)
        await session.commit()
        second = await news.claim(other, now=now)
        await other.commit()
    assert [group for group, _ in first] == [PINE]
    assert second == []


async def test_news_while_the_note_goes_owes_another(session: AsyncSession) -> None:
    now = utc_now()
    await news.mark(session, group_ids=[PINE], at=now)
    await session.commit()
    [(_, claim)] = await news.claim(session, now=now)
    await session.commit()
    later = now + timedelta(seconds=2)
    await news.mark(session, group_ids=[PINE], at=later + timedelta(seconds=5))
    await news.told(session, group_id=PINE, claimed=claim)
    await session.commit()
    assert await news.owed(session) == [(PINE, later + timedelta(seconds=5))]


async def test_a_note_held_by_a_sender_that_died_is_owed_again_after_the_lease(
    session: AsyncSession,
) -> None:
    now = utc_now()
    await news.mark(session, group_ids=[PINE], at=now)
    await session.commit()
    assert len(await news.claim(session, now=now)) == 1
    await session.commit()
    # The sender died without crossing it off.
    assert await news.claim(session, now=now + news.LEASE - timedelta(seconds=1)) == []
    again = await news.claim(session, now=now + news.LEASE)
    await session.commit()
    assert [group for group, _ in again] == [PINE]
