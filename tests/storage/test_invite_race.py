"""Five accounts redeeming one invite code at the same moment, each in its own session
and connection (as five bot processes, or five updates handled at once, would): one
grant. On PostgreSQL reads do not wait for each other, so a read-then-write claim lets
every session see the code unused and grants it five times; the conditional UPDATE in
``redeem_invite`` lets exactly one win (#15)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import ServerKeys
from storage.db import session_factory
from storage.models import Invite, Person, RoleGrant
from storage.people import create_invite, get_or_create_person, redeem_invite
from storage.vocabulary import Role

T0 = datetime(2026, 8, 12, 6, 0, tzinfo=UTC)
ACCOUNTS = 5


async def test_five_sessions_redeeming_one_code_at_once_get_one_grant(
    engine: AsyncEngine, server: ServerKeys
) -> None:
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        _, code = await create_invite(
            session, server=server, role=Role.ADMIN, group=None, ttl=timedelta(days=1), now=T0
        )
        people = [
            (
                await get_or_create_person(
                    session, server=server, telegram_id=7_000 + n, chat_id=7_000 + n, now=T0
                )
            ).id
            for n in range(ACCOUNTS)
        ]
    # One connection per account, opened before the race so that none waits for the pool.
    connections = [await engine.connect() for _ in range(ACCOUNTS)]
    for connection in connections:
        await connection.close()  # back to the pool, open
    start = asyncio.Event()

    async def redeem(person_id: uuid.UUID) -> bool:
        await start.wait()
        async with sessions() as session, session.begin():
            person = await session.get_one(Person, person_id)
            grant = await redeem_invite(session, server=server, code=code, person=person, now=T0)
            return grant is not None

    racers = [asyncio.create_task(redeem(person_id)) for person_id in people]
    await asyncio.sleep(0)  # every racer is waiting at the start
    start.set()
    won = await asyncio.gather(*racers)

    assert sorted(won) == [False] * (ACCOUNTS - 1) + [True]
    async with sessions() as session:
        grants = (await session.exec(select(func.count()).select_from(RoleGrant))).one()
        invite = (await session.exec(select(Invite))).one()
    assert grants == 1
    assert invite.redeemed_by in people
