"""People who write to the bot, their roles, and the one-time invites that grant them."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Binding, ServerKeys, sha256
from storage.identifiers import normalise_telegram_id
from storage.models import Group, IdentifierKind, Invite, Person, Role, RoleGrant

GROUP_ROLES = frozenset({Role.RELATIVE, Role.ACTIVIST})
# Short on purpose: a label is read on a relative's screen, and says nothing by itself.
CHAT_LABEL_MAX = 16


class InviteError(ValueError):
    pass


def chat_binding(person_id: uuid.UUID) -> Binding:
    return Binding("people", "chat_sealed", person_id)


def telegram_index(server: ServerKeys, telegram_id: int) -> bytes:
    return server.blind_index(IdentifierKind.TELEGRAM_ID.value, normalise_telegram_id(telegram_id))


def pseudonym(person: Person) -> str:
    """A stable label for operators that says nothing about who the person is."""
    return "P-" + sha256(person.id.bytes)[:3].hex().upper()


async def find_person(
    session: AsyncSession, *, server: ServerKeys, telegram_id: int
) -> Person | None:
    # Argon2id, tens of milliseconds: off the event loop, which serves every other chat.
    index = await asyncio.to_thread(telegram_index, server, telegram_id)
    return (await session.exec(select(Person).where(Person.telegram_index == index))).first()


async def find_people(
    session: AsyncSession, *, server: ServerKeys, telegram_ids: Collection[int]
) -> dict[int, Person]:
    """The people among these Telegram ids who wrote before, by Telegram id: one query."""
    indexes = await asyncio.to_thread(
        lambda: {telegram_index(server, t): t for t in set(telegram_ids)}
    )
    if not indexes:
        return {}
    result = await session.exec(select(Person).where(col(Person.telegram_index).in_(list(indexes))))
    return {indexes[p.telegram_index]: p for p in result.all()}


async def get_or_create_person(
    session: AsyncSession, *, server: ServerKeys, telegram_id: int, chat_id: int, now: datetime
) -> Person:
    person = await find_person(session, server=server, telegram_id=telegram_id)
    if person is not None:
        return person
    return await add_person(
        session, server=server, telegram_id=telegram_id, chat_id=chat_id, now=now
    )


async def add_person(
    session: AsyncSession, *, server: ServerKeys, telegram_id: int, chat_id: int, now: datetime
) -> Person:
    """A person who was not found (the caller looked, with ``find_person`` or ``find_people``)."""
    person_id = uuid.uuid4()
    index = await asyncio.to_thread(telegram_index, server, telegram_id)
    person = Person(
        id=person_id,
        telegram_index=index,
        chat_sealed=server.seal(str(chat_id).encode(), chat_binding(person_id)),
        created_at=now,
    )
    session.add(person)
    await session.flush()
    return person


def chat_id_of(server: ServerKeys, person: Person) -> int:
    return int(server.open(person.chat_sealed, chat_binding(person.id)))


def new_invite_code() -> str:
    # 128 bits, in the characters Telegram allows in a /start parameter.
    return secrets.token_urlsafe(16)


async def create_invite(
    session: AsyncSession,
    *,
    server: ServerKeys,
    role: Role,
    group: Group | None,
    ttl: timedelta,
    now: datetime,
    chat_label: str | None = None,
) -> tuple[Invite, str]:
    if role in GROUP_ROLES and group is None:
        raise InviteError(f"a {role.value} invite needs --group")
    if role not in GROUP_ROLES and group is not None:
        raise InviteError(f"an {role.value} invite is not for one group; leave out --group")
    if chat_label is not None and role is not Role.RELATIVE:
        raise InviteError("only a relative's invite takes a chat label")
    if chat_label is not None and not 1 <= len(chat_label) <= CHAT_LABEL_MAX:
        raise InviteError(f"a chat label is 1 to {CHAT_LABEL_MAX} characters")
    code = new_invite_code()
    invite = Invite(
        code_digest=server.code_digest(code),
        role=role,
        group_id=group.id if group else None,
        chat_label=chat_label,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    await session.flush()
    return invite, code


async def redeem_invite(
    session: AsyncSession, *, server: ServerKeys, code: str, person: Person, now: datetime
) -> RoleGrant | None:
    """Grant the invite's role once. A used, expired or unknown code gives None,
    and the caller answers all three alike."""
    invite = (
        await session.exec(select(Invite).where(Invite.code_digest == server.code_digest(code)))
    ).first()
    if invite is None or invite.redeemed_at is not None or invite.expires_at <= now:
        return None
    invite.redeemed_at = now
    invite.redeemed_by = person.id
    grant = RoleGrant(
        person_id=person.id,
        role=invite.role,
        group_id=invite.group_id,
        invite_id=invite.id,
        chat_label=invite.chat_label,
        granted_at=now,
    )
    session.add_all([invite, grant])
    await session.flush()
    return grant


async def people_with_role(session: AsyncSession, *, role: Role) -> list[Person]:
    result = await session.exec(
        select(Person)
        .join(RoleGrant, col(RoleGrant.person_id) == col(Person.id))
        .where(RoleGrant.role == role, col(RoleGrant.revoked_at).is_(None))
    )
    return list(result.unique().all())


async def watching_among(
    session: AsyncSession, *, person_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these people are activists or admins now (one query for a batch)."""
    return await _granted(session, person_ids, roles=(Role.ACTIVIST, Role.ADMIN))


async def granted_among(
    session: AsyncSession, *, person_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these people hold any role now (the others are strangers)."""
    return await _granted(session, person_ids, roles=tuple(Role))


async def _granted(
    session: AsyncSession, person_ids: Collection[uuid.UUID], *, roles: Collection[Role]
) -> set[uuid.UUID]:
    if not person_ids:
        return set()
    result = await session.exec(
        select(RoleGrant.person_id).where(
            col(RoleGrant.person_id).in_(list(person_ids)),
            col(RoleGrant.role).in_(list(roles)),
            col(RoleGrant.revoked_at).is_(None),
        )
    )
    return set(result.all())
