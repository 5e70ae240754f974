"""Every sealed field round-trips through the database, opens only with an
operator's key, and fails when tampered with or moved to another row."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from storage.codebook import add_phrase, phrases_for
from storage.crypto import CryptoError, KemName, PrivateKey, ServerKeys
from storage.members import add_member, members_with, open_member
from storage.messages import (
    ChatRef,
    attachments_of,
    chat_ref_of,
    open_attachment,
    open_message,
    store_attachment,
    store_message,
)
from storage.models import IdentifierKind, KeyWrap, Message, MessageKind, Operator, Signal
from storage.operators import add_operator, operator_name
from storage.people import chat_id_of, find_person, get_or_create_person
from storage.sealing import Keyring, NoRecipients, NotReadable
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.storage.helpers import make_group

BODY = {
    "text": "우리는 쿤밍에 도착했다. 我们到了昆明",
    "caption": None,
    "origin_name": "Hidden Traveller",
    "entities": [{"type": "bold", "offset": 0, "length": 3}],
}


async def test_message_body_round_trips_when_linked_to_a_group(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    group = await make_group(session)
    message = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body=BODY,
        received_at=utc_now(),
        group=group,
        chat_ref=ChatRef(chat_id=5550001, message_id=42),
    )
    await session.commit()
    stored = await session.get(Message, message.id)
    assert stored is not None
    assert await open_message(session, keyring, stored) == BODY
    assert chat_ref_of(server, stored) == ChatRef(chat_id=5550001, message_id=42)


async def test_unlinked_message_is_sealed_to_every_operator(
    session: AsyncSession, server: ServerKeys, keyring: Keyring, operator: Operator
) -> None:
    second_key = PrivateKey.generate(KemName.X25519)
    second = await add_operator(
        session, server=server, public_key=second_key.public_key(), name="Two", now=utc_now()
    )
    message = await store_message(
        session, server=server, kind=MessageKind.TEXT, body=BODY, received_at=utc_now()
    )
    await session.commit()
    wraps = (await session.exec(select(KeyWrap).where(KeyWrap.subject_id == message.id))).all()
    assert {w.operator_id for w in wraps} == {operator.id, second.id}
    assert await open_message(session, keyring, message) == BODY
    assert (
        await open_message(session, Keyring(operator=second, private_key=second_key), message)
        == BODY
    )


async def test_nothing_is_stored_when_no_operator_could_open_it(
    session: AsyncSession, server: ServerKeys
) -> None:
    with pytest.raises(NoRecipients):
        await store_message(
            session, server=server, kind=MessageKind.TEXT, body=BODY, received_at=utc_now()
        )


async def test_attachment_content_and_metadata_round_trip(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    group = await make_group(session)
    message = await store_message(
        session,
        server=server,
        kind=MessageKind.PHOTO,
        body={"caption": "screenshot"},
        received_at=utc_now(),
        group=group,
    )
    photo = bytes(range(256)) * 40
    await store_attachment(
        session,
        message=message,
        group=group,
        kind=MessageKind.PHOTO,
        meta={"file_name": "kakao.png", "mime_type": "image/png", "size": len(photo)},
        content=photo,
    )
    await store_attachment(
        session,
        message=message,
        group=group,
        kind=MessageKind.VIDEO,
        meta={"file_name": "too-big.mp4", "size": 90_000_000},
        content=None,
    )
    await session.commit()
    opened = {
        a.kind: await open_attachment(session, keyring, a)
        for a in await attachments_of(session, message=message)
    }
    assert opened[MessageKind.PHOTO].content == photo
    assert opened[MessageKind.PHOTO].meta["file_name"] == "kakao.png"
    assert opened[MessageKind.VIDEO].content is None
    assert opened[MessageKind.VIDEO].meta["size"] == 90_000_000


async def test_member_details_round_trip_and_identifiers_are_found_by_blind_index(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    group = await make_group(session)
    member = await add_member(
        session,
        server=server,
        group=group,
        name="Kim Mi-rae",
        notes="carries the phone",
        identifiers=[
            (IdentifierKind.PHONE, "+86 138 0013 8000"),
            (IdentifierKind.TELEGRAM_ID, "777000111"),
            (IdentifierKind.USERNAME, "@MiRae_K"),
        ],
        now=utc_now(),
    )
    await session.commit()
    assert await open_member(session, keyring, member) == {
        "name": "Kim Mi-rae",
        "notes": "carries the phone",
    }
    # Found under every spelling that normalises to the same identifier.
    for kind, spelling in [
        (IdentifierKind.PHONE, "+8613800138000"),
        (IdentifierKind.USERNAME, "mirae_k"),
        (IdentifierKind.TELEGRAM_ID, " 777000111 "),
    ]:
        found = await members_with(session, server=server, kind=kind, value=spelling)
        assert [f.member_id for f in found] == [member.id]
    assert not await members_with(
        session, server=server, kind=IdentifierKind.PHONE, value="+8613800138001"
    )


async def test_codebook_phrases_round_trip_for_the_server(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    group, other = await make_group(session), await make_group(session, "OAK-2")
    await add_phrase(
        session,
        server=server,
        group=group,
        phrase="the tea is warm",
        means=Signal.CHECKIN,
        now=utc_now(),
    )
    await add_phrase(
        session, server=server, group=group, phrase="비가 온다", means=Signal.DURESS, now=utc_now()
    )
    await add_phrase(
        session,
        server=server,
        group=other,
        phrase="other group",
        means=Signal.CHECKIN,
        now=utc_now(),
    )
    await add_phrase(
        session,
        server=server,
        group=None,
        phrase="我们被抓了",
        means=Signal.DETAINED,
        now=utc_now(),
    )
    await session.commit()
    phrases = {(p.text, p.means) for p in await phrases_for(session, server=server, group=group)}
    assert phrases == {
        ("the tea is warm", Signal.CHECKIN),
        ("비가 온다", Signal.DURESS),
        ("我们被抓了", Signal.DETAINED),
    }


async def test_people_are_found_by_telegram_id_and_their_chat_reopens(
    session: AsyncSession, server: ServerKeys
) -> None:
    person = await get_or_create_person(
        session, server=server, telegram_id=424242, chat_id=424242, now=utc_now()
    )
    again = await get_or_create_person(
        session, server=server, telegram_id=424242, chat_id=424242, now=utc_now()
    )
    await session.commit()
    assert again.id == person.id
    assert chat_id_of(server, person) == 424242
    assert await find_person(session, server=server, telegram_id=424243) is None


async def test_operator_names_are_sealed(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    assert operator_name(server, operator) == "Operator One"
    assert b"Operator One" not in operator.name_sealed


async def test_ciphertext_copied_into_another_row_fails_to_open(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    group = await make_group(session)
    first = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "one"},
        received_at=utc_now(),
        group=group,
    )
    second = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "two"},
        received_at=utc_now(),
        group=group,
    )
    await session.commit()
    second.body_sealed = first.body_sealed
    session.add(second)
    await session.commit()
    with pytest.raises(CryptoError):
        await open_message(session, keyring, second)
    # The key wrap moved as well still fails: it is bound to its row too.
    wrap_one = (await session.exec(select(KeyWrap).where(KeyWrap.subject_id == first.id))).one()
    wrap_two = (await session.exec(select(KeyWrap).where(KeyWrap.subject_id == second.id))).one()
    wrap_two.wrapped = wrap_one.wrapped
    session.add(wrap_two)
    await session.commit()
    with pytest.raises(CryptoError):
        await open_message(session, keyring, second)
    assert await open_message(session, keyring, first) == {"text": "one"}


async def test_tampered_stored_ciphertext_fails_to_open(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    group = await make_group(session)
    message = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "x"},
        received_at=utc_now(),
        group=group,
    )
    await session.commit()
    blob = bytearray(message.body_sealed)
    blob[len(blob) // 2] ^= 0x01
    message.body_sealed = bytes(blob)
    session.add(message)
    await session.commit()
    with pytest.raises(CryptoError):
        await open_message(session, keyring, message)


async def test_a_key_of_no_registered_operator_opens_nothing(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    group = await make_group(session)
    await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "x"},
        received_at=utc_now(),
        group=group,
    )
    await session.commit()
    stranger = PrivateKey.generate(KemName.MLKEM768_X25519)
    with pytest.raises(NotReadable, match="not a registered operator"):
        await Keyring.for_key(session, stranger)
    with pytest.raises(NotReadable):
        Keyring(operator=operator, private_key=stranger)


async def test_an_operator_added_after_a_group_cannot_open_it_yet(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    group = await make_group(session)
    message = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "x"},
        received_at=utc_now(),
        group=group,
    )
    late_key = PrivateKey.generate(KemName.MLKEM768_X25519)
    late = await add_operator(
        session, server=server, public_key=late_key.public_key(), name="Late", now=utc_now()
    )
    await session.commit()
    with pytest.raises(NotReadable, match="holds no key"):
        await open_message(session, Keyring(operator=late, private_key=late_key), message)


async def test_times_come_back_timezone_aware_utc(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    group = await make_group(session)
    origin = datetime(2014, 8, 12, 3, 15, tzinfo=UTC)
    message = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "x"},
        received_at=utc_now(),
        group=group,
        origin_at=origin,
    )
    await session.commit()
    session.expunge_all()
    stored = await session.get(Message, message.id)
    assert stored is not None
    assert stored.origin_at == origin
    assert stored.origin_at.utcoffset() is not None
