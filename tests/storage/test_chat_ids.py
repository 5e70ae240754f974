"""A chat id is kept only while something is still to be said or deleted in that chat
(issue #14): a person's only while the bot writes to them first (an activist, an admin, an
operator), a stored message's place in its chat only until it is deleted there or
Telegram's 48 hours have passed. Both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from storage.crypto import ServerKeys
from storage.deletions import DELETABLE_FOR
from storage.messages import (
    ChatRef,
    chat_ref_of,
    forget_chat_refs,
    mark_deleted_in_chat,
    store_message,
    undeleted_in_chat,
)
from storage.models import Message, MessageKind, Operator, Person, Role, RoleGrant
from storage.people import (
    chat_id_of,
    create_invite,
    forget_chats,
    get_or_create_person,
    keep_chat,
    redeem_invite,
    revoke,
)
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.storage.helpers import make_group

RELATIVE, ACTIVIST, OPERATOR = 6_800_000_001, 6_800_000_002, 6_800_000_003


@pytest.fixture(autouse=True)
def _operator_key_registered(operator: Operator) -> None:
    """Groups are made with an operator's key to wrap theirs to."""


async def _kept_chats(session: AsyncSession) -> int:
    """How many people rows hold a chat id (non-empty sealed value)."""
    result = await session.exec(
        select(sa.func.count()).select_from(Person).where(Person.chat_sealed != b"")
    )
    return int(result.one())


async def _granted(
    session: AsyncSession, server: ServerKeys, telegram_id: int, role: Role
) -> Person:
    group = await make_group(session, f"G-{telegram_id % 1000}") if role is Role.ACTIVIST else None
    person = await get_or_create_person(
        session, server=server, telegram_id=telegram_id, now=utc_now()
    )
    _, code = await create_invite(
        session, server=server, role=role, group=group, ttl=timedelta(days=1), now=utc_now()
    )
    grant = await redeem_invite(session, server=server, code=code, person=person, now=utc_now())
    assert grant is not None
    keep_chat(server, person, telegram_id)  # as bot.intake does when a watching role is granted
    session.add(person)
    await session.commit()
    return person


async def test_a_newcomer_keeps_no_chat_id(session: AsyncSession, server: ServerKeys) -> None:
    person = await get_or_create_person(session, server=server, telegram_id=RELATIVE, now=utc_now())
    await session.commit()
    assert chat_id_of(server, person) is None
    assert person.chat_sealed == b""
    assert await _kept_chats(session) == 0


async def test_a_revoked_activists_chat_id_goes_with_their_last_watching_role(
    session: AsyncSession, server: ServerKeys
) -> None:
    activist = await _granted(session, server, ACTIVIST, Role.ACTIVIST)
    _, code = await create_invite(
        session, server=server, role=Role.ADMIN, group=None, ttl=timedelta(days=1), now=utc_now()
    )
    await redeem_invite(session, server=server, code=code, person=activist, now=utc_now())
    await session.commit()
    assert chat_id_of(server, activist) == ACTIVIST
    # Still an admin: alerts and notices still go to this chat.
    await revoke(session, person=activist, role=Role.ACTIVIST, group_id=None, now=utc_now())
    await session.commit()
    assert chat_id_of(server, (await session.get(Person, activist.id)) or activist) == ACTIVIST
    await revoke(session, person=activist, role=None, group_id=None, now=utc_now())
    await session.commit()
    session.expunge_all()
    row = await session.get(Person, activist.id)
    assert row is not None
    assert row.chat_sealed == b""
    assert chat_id_of(server, row) is None
    assert await _kept_chats(session) == 0


async def test_forget_chats_erases_everyone_but_those_the_bot_writes_to_first(
    session: AsyncSession, server: ServerKeys
) -> None:
    activist = await _granted(session, server, ACTIVIST, Role.ACTIVIST)
    operator = await _granted(session, server, OPERATOR, Role.OPERATOR)
    # A relative's chat id kept by an older version (every sender's was), and one of an
    # activist whose grant was revoked without storage.people.revoke (a direct write).
    relative = await get_or_create_person(
        session, server=server, telegram_id=RELATIVE, chat_id=RELATIVE, now=utc_now()
    )
    group = await make_group(session, "OAK-2")
    session.add(RoleGrant(person_id=relative.id, role=Role.RELATIVE, group_id=group.id))
    gone = await get_or_create_person(
        session, server=server, telegram_id=RELATIVE + 9, chat_id=RELATIVE + 9, now=utc_now()
    )
    session.add(
        RoleGrant(person_id=gone.id, role=Role.ACTIVIST, group_id=group.id, revoked_at=utc_now())
    )
    await session.commit()
    assert await _kept_chats(session) == 4
    assert await forget_chats(session) == 2
    await session.commit()
    session.expunge_all()
    kept = {p.id: chat_id_of(server, p) for p in (await session.exec(select(Person))).all()}
    assert kept == {activist.id: ACTIVIST, operator.id: OPERATOR, relative.id: None, gone.id: None}
    assert await forget_chats(session) == 0


async def test_a_messages_place_in_its_chat_goes_once_deleted_there(
    session: AsyncSession, server: ServerKeys
) -> None:
    sender = await get_or_create_person(session, server=server, telegram_id=RELATIVE, now=utc_now())
    stored = [
        await store_message(
            session,
            server=server,
            kind=MessageKind.TEXT,
            body={"text": f"message {n}"},
            received_at=utc_now(),
            sender=sender,
            update_id=500 + n,
            chat_ref=ChatRef(chat_id=RELATIVE, message_id=40 + n),
        )
        for n in range(2)
    ]
    await session.commit()
    # /wipe reads where the undeleted ones sit.
    left = await undeleted_in_chat(session, sender=sender)
    assert sorted(ref.message_id for m in left if (ref := chat_ref_of(server, m))) == [
        40,
        41,
    ]
    await mark_deleted_in_chat(session, update_ids=[500], now=utc_now())
    await session.commit()
    session.expunge_all()
    first, second = [await session.get(Message, m.id) for m in stored]
    assert first is not None
    assert second is not None
    assert first.chat_ref_sealed is None
    assert first.deleted_in_chat_at is not None
    assert chat_ref_of(server, second) == ChatRef(chat_id=RELATIVE, message_id=41)
    # The digest stays: an edit still finds its message (it opens nothing).
    assert first.chat_ref_digest is not None


async def test_a_messages_place_goes_after_telegrams_48_hours_deleted_or_not(
    session: AsyncSession, server: ServerKeys
) -> None:
    now = utc_now()
    ages = {
        "old": DELETABLE_FOR + timedelta(minutes=1),
        "young": DELETABLE_FOR - timedelta(hours=1),
    }
    rows = {
        name: await store_message(
            session,
            server=server,
            kind=MessageKind.TEXT,
            body={"text": name},
            received_at=now - age,
            chat_ref=ChatRef(chat_id=RELATIVE, message_id=n),
        )
        for n, (name, age) in enumerate(ages.items())
    }
    await session.commit()
    assert await forget_chat_refs(session, received_before=now - DELETABLE_FOR) == 1
    await session.commit()
    session.expunge_all()
    old, young = [await session.get(Message, rows[name].id) for name in ("old", "young")]
    assert old is not None
    assert old.chat_ref_sealed is None
    assert young is not None
    assert chat_ref_of(server, young) == ChatRef(RELATIVE, 1)
    assert await forget_chat_refs(session, received_before=now - DELETABLE_FOR) == 0
