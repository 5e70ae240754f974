"""Promise 1: a copy of the database reveals no message content, no phone number,
no Telegram id, no name and no codebook phrase, in any encoding it stores."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.codebook import add_phrase
from storage.crypto import KemName, PrivateKey, ServerKeys
from storage.members import add_member
from storage.messages import ChatRef, store_attachment, store_message
from storage.models import IdentifierKind, MessageKind, OriginKind, Role, Signal
from storage.operators import add_operator
from storage.people import create_invite, get_or_create_person
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.conftest import Database
from tests.storage.helpers import make_group
from tests.storage.scan import database_bytes, find, integer_encodings, text_encodings

TAG = uuid.uuid4().hex[:8].upper()
TEXT_CANARIES = {
    "message text": f"CANARY-TEXT-{TAG} 우리는 안전하다",
    "korean text": f"카나리아{TAG}쿤밍도착",
    "chinese text": f"金丝雀{TAG}我们到了",
    "caption": f"CANARY-CAPTION-{TAG}",
    "origin name": f"CANARY-ORIGIN-{TAG}",
    "attachment": f"CANARY-FILE-{TAG}",
    "file name": f"canary-{TAG}.jpg",
    "member name": f"CANARY-MEMBER-{TAG}",
    "member note": f"CANARY-NOTE-{TAG}",
    "username": f"canary_user_{TAG.lower()}",
    "phrase": f"CANARY-PHRASE-{TAG} the tea is warm",
    "korean phrase": f"비가{TAG}온다",
    "operator name": f"CANARY-OPERATOR-{TAG}",
    "phone (E.164)": "+8613912345678",
    "phone (as written)": "139 1234 5678",
}
INT_CANARIES = {
    "relative's Telegram id": 6_912_345_678,
    "member's Telegram id": 7_123_456_789,
    "activist chat id": 5_987_654_321,
    "phone digits": 8_613_912_345_678,
    "forwarded message id": 987_654_321,
}


async def fill(session: AsyncSession, server: ServerKeys) -> None:
    now = utc_now()
    await add_operator(
        session,
        server=server,
        public_key=PrivateKey.generate(KemName.X25519).public_key(),
        name=TEXT_CANARIES["operator name"],
        now=now,
    )
    group = await make_group(session)
    relative = await get_or_create_person(
        session,
        server=server,
        telegram_id=INT_CANARIES["relative's Telegram id"],
        chat_id=INT_CANARIES["relative's Telegram id"],
        now=now,
    )
    await get_or_create_person(
        session,
        server=server,
        telegram_id=INT_CANARIES["activist chat id"],
        chat_id=INT_CANARIES["activist chat id"],
        now=now,
    )
    await add_member(
        session,
        server=server,
        group=group,
        name=TEXT_CANARIES["member name"],
        notes=TEXT_CANARIES["member note"],
        identifiers=[
            (IdentifierKind.PHONE, TEXT_CANARIES["phone (E.164)"]),
            (IdentifierKind.TELEGRAM_ID, str(INT_CANARIES["member's Telegram id"])),
            (IdentifierKind.USERNAME, TEXT_CANARIES["username"]),
        ],
        now=now,
    )
    await add_phrase(
        session,
        server=server,
        group=group,
        phrase=TEXT_CANARIES["phrase"],
        means=Signal.CHECKIN,
        now=now,
    )
    await add_phrase(
        session,
        server=server,
        group=None,
        phrase=TEXT_CANARIES["korean phrase"],
        means=Signal.DURESS,
        now=now,
    )
    body = {
        "text": " ".join(
            TEXT_CANARIES[k]
            for k in ("message text", "korean text", "chinese text", "phone (as written)")
        ),
        "caption": TEXT_CANARIES["caption"],
        "origin_name": TEXT_CANARIES["origin name"],
        "origin_user_id": INT_CANARIES["member's Telegram id"],
    }
    for linked in (group, None):  # sealed to the group, and to every operator
        message = await store_message(
            session,
            server=server,
            kind=MessageKind.PHOTO,
            body=body,
            received_at=now,
            group=linked,
            sender=relative,
            origin_kind=OriginKind.USER,
            origin_index=server.blind_index(
                "telegram_id", str(INT_CANARIES["member's Telegram id"])
            ),
            origin_at=now,
            update_id=1000 + (linked is None),
            chat_ref=ChatRef(
                chat_id=INT_CANARIES["relative's Telegram id"],
                message_id=INT_CANARIES["forwarded message id"],
            ),
        )
        await store_attachment(
            session,
            message=message,
            group=linked,
            kind=MessageKind.PHOTO,
            meta={"file_name": TEXT_CANARIES["file name"]},
            content=TEXT_CANARIES["attachment"].encode() * 50,
        )
    await create_invite(
        session,
        server=server,
        role=Role.RELATIVE,
        group=group,
        ttl=timedelta(days=1),
        now=now,
    )
    await session.commit()


async def test_database_files_hold_no_canary(
    database: Database,
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await fill(session, server)
    await session.close()
    await engine.dispose()
    files = await database_bytes(database)
    assert files, "the scan found no database files"
    # The scan itself must be able to find what it looks for.
    assert find([b"PINE-7"], files), "the scan cannot see the group codename, so it sees nothing"
    found = {
        label: find(text_encodings(value), files) for label, value in TEXT_CANARIES.items()
    } | {label: find(integer_encodings(value), files) for label, value in INT_CANARIES.items()}
    assert {label: where for label, where in found.items() if where} == {}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    leaked = [label for label, value in TEXT_CANARIES.items() if value in logged]
    leaked += [label for label, value in INT_CANARIES.items() if str(value) in logged]
    assert leaked == []
