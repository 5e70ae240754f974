"""Changing operators: a newcomer is given every key; a leaver's key opens nothing
in the database afterwards, and the others still open everything."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import CryptoError, KemName, PrivateKey, ServerKeys, unwrap_key
from storage.db import reclaim_deleted
from storage.members import add_member, open_member
from storage.models import Group, GroupKeyWrap, KeyWrap, Operator
from storage.operators import add_operator
from storage.rekey import (
    REKEYED_TABLES,
    LastOperator,
    OperatorRemoved,
    drop_record_wraps,
    hand_over_records,
    retire,
    rotate_group,
    share_group,
    share_unlinked,
    stranded,
)
from storage.sealing import (
    Keyring,
    NotReadable,
    data_key_binding,
    group_key_binding,
    seal_record,
)
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.conftest import Database
from tests.storage.helpers import make_group
from tests.storage.scan import database_bytes, find


async def enrol(
    session: AsyncSession, server: ServerKeys, name: str
) -> tuple[Operator, PrivateKey]:
    key = PrivateKey.generate(KemName.X25519)
    op = await add_operator(
        session, server=server, public_key=key.public_key(), name=name, now=utc_now()
    )
    await session.commit()
    return op, key


async def test_a_newcomer_gets_every_key_and_a_leaver_keeps_none(
    session: AsyncSession, server: ServerKeys, operator: Operator, operator_key: PrivateKey
) -> None:
    group = await make_group(session)
    member = await add_member(
        session,
        server=server,
        group=group,
        identifiers=[],
        name="Mi-rae K",
        notes=None,
        now=utc_now(),
    )
    unlinked_id = uuid.uuid4()
    sealed = seal_record(
        table="messages",
        row_id=unlinked_id,
        fields={"body_sealed": b"saw them"},
        operators=[operator],
    )
    session.add_all(sealed.wraps)
    await session.commit()
    newcomer, newcomer_key = await enrol(session, server, "Operator Two")

    with pytest.raises(NotReadable):
        await open_member(session, await Keyring.for_key(session, newcomer_key), member)
    first = await Keyring.for_key(session, operator_key)
    assert await share_group(session, first, group=group, newcomer=newcomer)
    assert not await share_group(session, first, group=group, newcomer=newcomer)  # once
    assert await share_unlinked(session, first, newcomer=newcomer) == 1
    await session.commit()
    second = await Keyring.for_key(session, newcomer_key)
    assert (await open_member(session, second, member))["name"] == "Mi-rae K"
    assert await second.data_key(session, table="messages", row_id=unlinked_id)

    # The first operator leaves; the second does the work with their own key.
    old_public = group.public_key
    await retire(session, leaver=operator, now=utc_now())
    assert await rotate_group(session, second, group=group, leaver=operator)
    assert not await rotate_group(session, second, group=group, leaver=operator)  # resumable
    await drop_record_wraps(session, leaver=operator)
    await session.commit()

    with pytest.raises(NotReadable):
        await Keyring.for_key(session, operator_key)
    refreshed = await session.get(Group, group.id)
    assert refreshed is not None
    assert refreshed.public_key != old_public
    # Whatever wrap is left in the database, the leaver's key opens none of it.
    for wrap in (await session.exec(select(GroupKeyWrap))).all():
        with pytest.raises(CryptoError):
            unwrap_key(wrap.wrapped, operator_key, group_key_binding(wrap.group_id))
    for record in (await session.exec(select(KeyWrap))).all():
        with pytest.raises(CryptoError):
            unwrap_key(
                record.wrapped,
                operator_key,
                data_key_binding(record.subject_table, record.subject_id),
            )
    remaining = await Keyring.for_key(session, newcomer_key)
    assert (await open_member(session, remaining, member))["name"] == "Mi-rae K"
    assert await remaining.data_key(session, table="messages", row_id=unlinked_id)


async def test_the_last_operator_cannot_be_removed(
    session: AsyncSession, operator: Operator
) -> None:
    with pytest.raises(LastOperator):
        await retire(session, leaver=operator, now=utc_now())


async def unlinked_record(session: AsyncSession, operators: list[Operator]) -> uuid.UUID:
    row_id = uuid.uuid4()
    sealed = seal_record(
        table="messages", row_id=row_id, fields={"body_sealed": b"x"}, operators=operators
    )
    session.add_all(sealed.wraps)
    await session.commit()
    return row_id


async def test_removal_gives_each_remaining_operator_the_records_the_leaver_held(
    session: AsyncSession, server: ServerKeys, operator: Operator, operator_key: PrivateKey
) -> None:
    second, second_key = await enrol(session, server, "Operator Two")
    early = await unlinked_record(session, [operator, second])
    group = await make_group(session)
    _third, third_key = await enrol(session, server, "Operator Three")  # never shared with
    with pytest.raises(NotReadable):
        await (await Keyring.for_key(session, third_key)).group_key(session, group)
    remover = await Keyring.for_key(session, second_key)

    assert not await stranded(session, remover, leaver=operator)
    await retire(session, leaver=operator, now=utc_now())
    assert await rotate_group(session, remover, group=group, leaver=operator)
    assert await hand_over_records(session, remover, leaver=operator) == (1, 1)
    await session.commit()

    left = await Keyring.for_key(session, third_key)
    assert await left.data_key(session, table="messages", row_id=early)
    assert await left.group_key(session, group)
    assert await hand_over_records(session, remover, leaver=operator) == (0, 0)  # once


async def test_removal_is_refused_while_the_leaver_alone_opens_something(
    session: AsyncSession, server: ServerKeys, operator: Operator, operator_key: PrivateKey
) -> None:
    group = await make_group(session, "PINE-7")
    await unlinked_record(session, [operator])
    second, second_key = await enrol(session, server, "Operator Two")
    remover = await Keyring.for_key(session, second_key)

    left = await stranded(session, remover, leaver=operator)
    assert left.groups == ("PINE-7",)
    assert left.records == 1
    # The leaver shares first; then nothing is left only to them.
    leaver = await Keyring.for_key(session, operator_key)
    await share_group(session, leaver, group=group, newcomer=second)
    await share_unlinked(session, leaver, newcomer=second)
    await session.commit()
    assert not await stranded(session, remover, leaver=operator)


async def test_a_removed_operator_is_never_given_a_key_again(
    session: AsyncSession, server: ServerKeys, operator: Operator, operator_key: PrivateKey
) -> None:
    group = await make_group(session)
    gone, _ = await enrol(session, server, "Operator Two")
    await retire(session, leaver=gone, now=utc_now())
    await session.commit()
    keyring = await Keyring.for_key(session, operator_key)
    with pytest.raises(OperatorRemoved):
        await share_group(session, keyring, group=group, newcomer=gone)
    with pytest.raises(OperatorRemoved):
        await share_unlinked(session, keyring, newcomer=gone)


async def test_nothing_the_removed_key_opened_is_left_in_the_database_files(
    database: Database,
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    operator_key: PrivateKey,
) -> None:
    group = await make_group(session, "PINE-7")
    second, second_key = await enrol(session, server, "Operator Two")
    await add_member(
        session, server=server, group=group, identifiers=[], name="x", notes=None, now=utc_now()
    )
    await unlinked_record(session, [operator, second])
    first = await Keyring.for_key(session, operator_key)
    await share_group(session, first, group=group, newcomer=second)
    await session.commit()
    # Every wrap the leaver's key opens, directly or through the group key it holds.
    openable = [
        w.wrapped
        for w in (
            await session.exec(select(GroupKeyWrap).where(GroupKeyWrap.operator_id == operator.id))
        ).all()
    ] + [
        w.wrapped
        for w in (await session.exec(select(KeyWrap))).all()
        if w.operator_id == operator.id or w.group_id == group.id
    ]
    assert len(openable) == 3  # the group key, the member's data key, the unlinked record's

    remover = await Keyring.for_key(session, second_key)
    await retire(session, leaver=operator, now=utc_now())
    await rotate_group(session, remover, group=group, leaver=operator)
    await hand_over_records(session, remover, leaver=operator)
    await session.commit()
    await reclaim_deleted(engine, tables=REKEYED_TABLES)
    await session.close()
    await engine.dispose()

    assert find(openable, await database_bytes(database)) == []
