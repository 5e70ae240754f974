"""Shredding: afterwards nothing in the database files opens the group's content."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.codebook import add_phrase, phrases_for
from storage.crypto import ServerKeys
from storage.db import reclaim_deleted
from storage.groups import SHREDDED_TABLES, count_live_groups, find_group, shred_group
from storage.members import add_member
from storage.messages import open_message, store_attachment, store_message
from storage.models import (
    Flip,
    GroupKeyWrap,
    IdentifierKind,
    KeyWrap,
    Message,
    MessageKind,
    Signal,
    Status,
)
from storage.sealing import Keyring
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.conftest import Database
from tests.storage.helpers import make_group
from tests.storage.scan import database_bytes, find


async def test_shredded_group_leaves_nothing_that_opens(
    database: Database,
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    keyring: Keyring,
) -> None:
    doomed, kept = await make_group(session, "PINE-7"), await make_group(session, "OAK-2")
    now = utc_now()
    for group in (doomed, kept):
        message = await store_message(
            session,
            server=server,
            kind=MessageKind.TEXT,
            body={"text": f"about {group.codename}"},
            received_at=now,
            group=group,
        )
        await store_attachment(
            session, message=message, group=group, kind=MessageKind.PHOTO, meta={}, content=b"img"
        )
        await add_member(
            session,
            server=server,
            group=group,
            name="x",
            notes=None,
            identifiers=[(IdentifierKind.PHONE, "+8613800138000")],
            now=now,
        )
        await add_phrase(
            session,
            server=server,
            group=group,
            phrase=f"phrase {group.codename}",
            means=Signal.CHECKIN,
            now=now,
        )
    session.add(
        Flip(
            group_id=doomed.id, from_status=Status.OK, to_status=Status.SAFE, at=now, basis="marked"
        )
    )
    await session.commit()

    doomed_wraps = [
        w.wrapped
        for w in (
            await session.exec(select(GroupKeyWrap).where(GroupKeyWrap.group_id == doomed.id))
        ).all()
    ] + [
        w.wrapped
        for w in (await session.exec(select(KeyWrap).where(KeyWrap.group_id == doomed.id))).all()
    ]
    doomed_sealed = [
        m.body_sealed
        for m in (await session.exec(select(Message).where(Message.group_id == doomed.id))).all()
    ]
    assert (
        len(doomed_wraps) == 4
    )  # the group key, and the data keys of a message, an attachment, a member

    await shred_group(session, group=doomed, now=utc_now())
    await session.commit()
    await reclaim_deleted(engine, tables=SHREDDED_TABLES)

    # Nothing of the doomed group's keys or sealed rows is left in the rows...
    assert (
        await session.exec(select(GroupKeyWrap).where(GroupKeyWrap.group_id == doomed.id))
    ).all() == []
    assert (await session.exec(select(Message).where(Message.group_id == doomed.id))).all() == []
    # ...its timeline stays, and so does the other group.
    shredded = await find_group(session, codename="PINE-7")
    assert shredded is not None
    assert shredded.shredded_at is not None
    assert (await session.exec(select(Flip).where(Flip.group_id == doomed.id))).all() != []
    other = (await session.exec(select(Message).where(Message.group_id == kept.id))).one()
    assert await open_message(session, keyring, other) == {"text": "about OAK-2"}
    assert [p.text for p in await phrases_for(session, server=server, group=kept)] == [
        "phrase OAK-2"
    ]
    assert (await session.exec(select(KeyWrap).where(KeyWrap.group_id == kept.id))).all()

    # ...nor in the bytes of the database files.
    await session.close()
    await engine.dispose()
    files = await database_bytes(database)
    assert find(doomed_wraps, files) == []
    assert find(doomed_sealed, files) == []


async def test_the_live_groups_counted_leave_out_the_shredded(
    session: AsyncSession, keyring: Keyring
) -> None:
    # bot.app logs the count at every start: all groups less the shredded ones. (The
    # keyring registers the operator a group's keys are sealed to.)
    del keyring
    groups = [await make_group(session, name) for name in ("ASH-1", "ELM-2", "FIR-3")]
    assert await count_live_groups(session) == 3
    await shred_group(session, group=groups[1], now=utc_now())
    await session.commit()
    assert await count_live_groups(session) == 2
