"""People's acts on a group while something else changes it: a /detained mark, or a
/pause request, decided from a group read before another transaction flipped it. On
PostgreSQL the act used to decide from the status it had read, and write it back: two
marks at once flipped the group twice, a mark during an engine flip recorded a flip
from a status the group no longer had, and a pause asked of a group the engine had just
made SILENT was applied by one person. Each act now takes the group's row lock and reads
it again first (storage.checkins.lock_group), as a recorded signal does
(tests/storage/test_flip_race.py). On SQLite the write lock serialises transactions, and
the read again covers a group read in an earlier one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.acts.rules import Outcome
from bot.acts.service import Actor, Rules, mark_detained, request
from storage.checkins import flip
from storage.crypto import ServerKeys
from storage.db import session_factory
from storage.models import ActKind, Flip, Group, GroupAct, Operator, Person, Status
from storage.people import get_or_create_person
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.storage.helpers import make_group

RULES = Rules(confirm_within=timedelta(minutes=30), max_pause=timedelta(days=7))
HOLD = 0.5  # how long the first transaction keeps its lock: the second reaches its write


async def _setup(engine: AsyncEngine, server: ServerKeys) -> tuple[uuid.UUID, list[Person]]:
    async with session_factory(engine)() as session:
        group_id = (await make_group(session)).id
        people = [
            await get_or_create_person(
                session, server=server, telegram_id=6_800_000_001 + i, chat_id=1 + i, now=utc_now()
            )
            for i in range(2)
        ]
        await session.commit()
    return group_id, people


async def _race(
    engine: AsyncEngine,
    group_id: uuid.UUID,
    first: Callable[[AsyncSession, Group], Awaitable[object]],
    second: Callable[[AsyncSession, Group], Awaitable[object]],
) -> None:
    """``second`` reads the group, then ``first`` changes it under the group's lock and
    holds the lock while ``second`` acts on what it read."""
    sessions = session_factory(engine)
    read = asyncio.Event()
    first_has_lock = asyncio.Event()

    async def one() -> None:
        await read.wait()
        async with sessions() as session, session.begin():
            group = (
                await session.exec(select(Group).where(Group.id == group_id).with_for_update())
            ).one()
            first_has_lock.set()
            await first(session, group)
            await asyncio.sleep(HOLD)

    async def two() -> None:
        async with sessions() as session:
            group = await session.get_one(Group, group_id)  # read before the first's change
            await session.commit()
            read.set()
            await first_has_lock.wait()
            async with session.begin():
                await second(session, group)

    await asyncio.gather(one(), two())


async def _flips(engine: AsyncEngine) -> list[tuple[Status, Status, str]]:
    async with session_factory(engine)() as session:
        flips = (await session.exec(select(Flip).order_by(Flip.recorded_at, Flip.at))).all()
        return [(f.from_status, f.to_status, f.basis) for f in flips]


async def test_two_marks_at_once_flip_the_group_once(
    engine: AsyncEngine, operator: Operator, server: ServerKeys
) -> None:
    group_id, (a, b) = await _setup(engine, server)
    marked: list[Flip | None] = []

    def mark_by(person: Person) -> Callable[[AsyncSession, Group], Awaitable[object]]:
        async def act(session: AsyncSession, group: Group) -> None:
            marked.append(await mark_detained(session, group=group, author=person, now=utc_now()))

        return act

    await _race(engine, group_id, mark_by(a), mark_by(b))
    assert [m is not None for m in marked] == [True, False]  # the second found it DETAINED
    assert await _flips(engine) == [(Status.PENDING, Status.DETAINED, "marked")]


async def test_a_mark_during_an_engine_flip_starts_from_the_engines_status(
    engine: AsyncEngine, operator: Operator, server: ServerKeys
) -> None:
    group_id, (a, _) = await _setup(engine, server)

    async def engine_pass(session: AsyncSession, group: Group) -> None:
        await flip(
            session, group=group, to=Status.SILENT, at=utc_now(), basis="grace", now=utc_now()
        )

    async def mark(session: AsyncSession, group: Group) -> None:
        await mark_detained(session, group=group, author=a, now=utc_now())

    await _race(engine, group_id, engine_pass, mark)
    assert await _flips(engine) == [
        (Status.PENDING, Status.SILENT, "grace"),
        (Status.SILENT, Status.DETAINED, "marked"),
    ]


async def test_a_pause_asked_as_the_engine_silences_the_group_needs_a_second_person(
    engine: AsyncEngine, operator: Operator, server: ServerKeys
) -> None:
    group_id, (a, _) = await _setup(engine, server)
    outcomes: list[Outcome] = []

    async def engine_pass(session: AsyncSession, group: Group) -> None:
        await flip(
            session, group=group, to=Status.SILENT, at=utc_now(), basis="grace", now=utc_now()
        )

    async def pause(session: AsyncSession, group: Group) -> None:
        result = await request(
            session,
            server=server,
            group=group,
            act=ActKind.PAUSE,
            actor=Actor(a, "Ji-woo"),
            rules=RULES,
            now=utc_now(),
            length=timedelta(hours=12),
        )
        outcomes.append(result.outcome)

    await _race(engine, group_id, engine_pass, pause)
    # Read before the engine's flip, the group was PENDING: one person's pause would have
    # been applied. It is SILENT now, so the pause waits for a second person.
    assert outcomes == [Outcome.ASK]
    assert await _flips(engine) == [(Status.PENDING, Status.SILENT, "grace")]
    async with session_factory(engine)() as session:
        assert (await session.get_one(Group, group_id)).status is Status.SILENT
        [asked] = (await session.exec(select(GroupAct))).all()
        assert (asked.act, asked.from_status, asked.done_at) == (
            ActKind.PAUSE,
            Status.SILENT,
            None,
        )
