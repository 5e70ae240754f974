"""Travellers: sealed details, identifiers kept only as blind indexes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select

from storage.crypto import ServerKeys
from storage.identifiers import normalise
from storage.models import Group, IdentifierKind, Member, MemberIdentifier
from storage.sealing import Keyring, active_operators, current_group_key, seal_record
from storage.session import AsyncSession
from storage.trust import trusted_group

TABLE = "members"


async def add_member(
    session: AsyncSession,
    *,
    server: ServerKeys,
    group: Group,
    identifiers: Iterable[tuple[IdentifierKind, str]],
    name: str | None,
    notes: str | None,
    now: datetime,
) -> Member:
    member_id = uuid.uuid4()
    normalised = {(kind, normalise(kind, value)) for kind, value in identifiers}
    details = json.dumps({"name": name, "notes": notes}, ensure_ascii=False).encode()
    # Read again under a share lock: an operator removal rotating the key meanwhile
    # would leave the details sealed to the old key (storage.sealing.current_group_key).
    await current_group_key(session, group)
    # A group key without a valid operator signature is never sealed to: the details
    # go to the operators instead (storage/trust.py).
    recipients = (
        {"groups": [group]}
        if trusted_group(session, group)
        else {"operators": await active_operators(session)}
    )
    sealed = seal_record(
        table=TABLE, row_id=member_id, fields={"details_sealed": details}, **recipients
    )
    member = Member(
        id=member_id,
        group_id=group.id,
        created_at=now,
        details_sealed=sealed.columns["details_sealed"],
    )
    session.add(member)
    await session.flush()
    session.add_all(sealed.wraps)
    session.add_all(
        MemberIdentifier(
            member_id=member_id,
            group_id=group.id,
            kind=kind,
            blind_index=server.blind_index(kind.value, value),
        )
        for kind, value in sorted(normalised)
    )
    await session.flush()
    return member


async def members_with(
    session: AsyncSession, *, server: ServerKeys, kind: IdentifierKind, value: str
) -> Sequence[MemberIdentifier]:
    """Every member (of any group) with this identifier. The Argon2id index (some 20 ms)
    is computed off the event loop: intake calls this inside its write transaction, and
    other relatives' messages must not wait behind it."""
    index = await asyncio.to_thread(server.blind_index, kind.value, normalise(kind, value))
    result = await session.exec(
        select(MemberIdentifier).where(
            MemberIdentifier.kind == kind, MemberIdentifier.blind_index == index
        )
    )
    return result.all()


async def open_member(
    session: AsyncSession, keyring: Keyring, member: Member
) -> dict[str, str | None]:
    if member.details_sealed is None:
        return {"name": None, "notes": None}
    opened = await keyring.open_fields(
        session, table=TABLE, row_id=member.id, columns={"details_sealed": member.details_sealed}
    )
    details: dict[str, str | None] = json.loads(opened["details_sealed"])
    return details
