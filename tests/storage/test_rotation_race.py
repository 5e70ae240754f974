"""An operator removal while relatives are forwarding: on PostgreSQL one batch used to
seal with the group key it read before the rotation committed (100 of 2,788 records then
opened only with the removed operator's key). Sealing now reads the key again under a
share lock that the rotation's row lock waits for: every record stays open to the
remaining operator. The same holds for a member's details added meanwhile. Runs on SQLite
too, where the database lock serialises them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import KemName, PrivateKey, ServerKeys
from storage.db import session_factory
from storage.groups import create_group
from storage.members import add_member, open_member
from storage.messages import open_message, store_message
from storage.models import Group, Member, Message, MessageKind, Operator
from storage.operators import add_operator
from storage.rekey import retire, rotate_group
from storage.sealing import Keyring
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.storage.helpers import SCHEDULE

BATCH = 5


Seal = Callable[[AsyncSession, ServerKeys, Group], Awaitable[object]]


async def _message(session: AsyncSession, server: ServerKeys, group: Group) -> object:
    return await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "at the station"},
        received_at=utc_now(),
        group=group,
    )


async def _member(session: AsyncSession, server: ServerKeys, group: Group) -> object:
    return await add_member(
        session,
        server=server,
        group=group,
        identifiers=[],
        name="Ji-woo",
        notes="the second bus",
        now=utc_now(),
    )


async def _opens(session: AsyncSession, keyring: Keyring, row: object) -> None:
    if isinstance(row, Message):
        await open_message(session, keyring, row)
    else:
        assert isinstance(row, Member)
        assert (await open_member(session, keyring, row))["name"] == "Ji-woo"


@pytest.mark.parametrize(("seal", "table"), [(_message, Message), (_member, Member)])
async def test_records_sealed_during_a_rotation_open_to_the_remaining_operator(
    engine: AsyncEngine, server: ServerKeys, seal: Seal, table: type[Message] | type[Member]
) -> None:
    sessions = session_factory(engine)
    leaver_key, stayer_key = (PrivateKey.generate(KemName.X25519) for _ in range(2))
    async with sessions() as session, session.begin():
        ops = [
            await add_operator(
                session, server=server, public_key=k.public_key(), name=n, now=utc_now()
            )
            for k, n in ((leaver_key, "Leaver"), (stayer_key, "Stayer"))
        ]
        await create_group(
            session, codename="PINE-7", schedule=SCHEDULE, kem=KemName.X25519, now=utc_now()
        )
    leaver: Operator = ops[0]
    rotated = asyncio.Event()

    async def forward() -> int:
        stored = 0
        while not rotated.is_set() or stored < 20 * BATCH:
            async with sessions() as session, session.begin():
                # The batch reads the group first, as bot/intake.py does, then seals.
                group = (await session.exec(select(Group))).one()
                for _ in range(BATCH):
                    await asyncio.sleep(0)  # let the rotation run in between
                    await seal(session, server, group)
                    stored += 1
        return stored

    async def remove() -> None:
        await asyncio.sleep(0.05)
        async with sessions() as session, session.begin():
            await retire(session, leaver=leaver, now=utc_now())
        async with sessions() as session, session.begin():
            keyring = Keyring(operator=ops[1], private_key=stayer_key)
            group = (await session.exec(select(Group))).one()
            assert await rotate_group(session, keyring, group=group, leaver=leaver)
        rotated.set()

    stored, _ = await asyncio.gather(forward(), remove())

    async with sessions() as session:
        keyring = await Keyring.for_key(session, stayer_key)
        rows = (await session.exec(select(table))).all()
        assert len(rows) == stored >= 20 * BATCH
        unreadable = 0
        for row in rows:
            try:
                await _opens(session, keyring, row)
            except Exception:  # counted: any failure to open is the bug
                unreadable += 1
        assert unreadable == 0
