"""A signal recorded while the deadline engine flips the same group: on PostgreSQL the
intake used to decide from the status it read before, and write it back over the
engine's flip. It now waits for the engine's row lock and reads the group again."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.checkins import flip, record_signal
from storage.db import session_factory
from storage.models import Flip, Group, Operator, Signal, Status
from storage.timeutil import utc_now
from tests.storage.helpers import make_group


async def test_a_duress_signal_during_an_engine_flip_keeps_both_flips_in_order(
    engine: AsyncEngine, operator: Operator
) -> None:
    sessions = session_factory(engine)
    async with sessions() as session:
        group_id = (await make_group(session)).id
    engine_has_lock = asyncio.Event()

    async def engine_pass() -> None:
        async with sessions() as session, session.begin():
            group = (
                await session.exec(select(Group).where(Group.id == group_id).with_for_update())
            ).one()
            engine_has_lock.set()
            await flip(
                session, group=group, to=Status.SILENT, at=utc_now(), basis="grace", now=utc_now()
            )
            await asyncio.sleep(0.5)  # the intake reaches its write meanwhile

    async def intake() -> None:
        async with sessions() as session:
            group = await session.get_one(Group, group_id)  # read before the engine's flip
            await session.commit()
            await engine_has_lock.wait()
            async with session.begin():
                await record_signal(
                    session,
                    group=group,
                    signal=Signal.DURESS,
                    at=utc_now(),
                    source="phrase",
                    now=utc_now(),
                )

    await asyncio.gather(engine_pass(), intake())
    async with sessions() as session:
        flips = (await session.exec(select(Flip).order_by(Flip.recorded_at, Flip.at))).all()
        group = await session.get_one(Group, group_id)
    assert [(f.from_status, f.to_status) for f in flips] == [
        (Status.PENDING, Status.SILENT),
        (Status.SILENT, Status.DETAINED),
    ]
    assert group.status is Status.DETAINED
