"""Changing operators: a newcomer is given every key; a leaver's key opens nothing
in the database afterwards, and the others still open everything."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import CryptoError, KemName, PrivateKey, ServerKeys, unwrap_key
from storage.members import add_member, open_member
from storage.models import Group, GroupKeyWrap, KeyWrap, Operator
from storage.operators import add_operator
from storage.rekey import (
    LastOperator,
    drop_record_wraps,
    retire,
    rotate_group,
    share_group,
    share_unlinked,
)
from storage.sealing import (
    Keyring,
    NotReadable,
    data_key_binding,
    group_key_binding,
    seal_record,
)
from storage.timeutil import utc_now
from tests.storage.helpers import make_group


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
