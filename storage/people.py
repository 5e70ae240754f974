"""People who write to the bot, their roles, and the one-time invites that grant them."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from storage.alerts import cancel_pending
from storage.crypto import Binding, ServerKeys, sha256
from storage.identifiers import normalise_telegram_id
from storage.models import Group, GroupAct, IdentifierKind, Invite, Person, Role, RoleGrant
from storage.session import AsyncSession
from storage.vocabulary import WATCHER_ROLES

GROUP_ROLES = frozenset({Role.RELATIVE, Role.ACTIVIST})
# The roles the bot writes to first (alerts, notices, the unlinked count): only their
# holders' chat ids are kept. A relative's or a stranger's chat is answered from their
# own update and deleted from by storage.deletions, so their chat id is not kept
# (a seized running server opens every sealed chat id it finds).
CHAT_ROLES = WATCHER_ROLES | {Role.OPERATOR}
# Short on purpose: a label is read on a relative's screen, and says nothing by itself.
CHAT_LABEL_MAX = 16


class InviteError(ValueError):
    pass


def chat_binding(person_id: uuid.UUID) -> Binding:
    return Binding("people", "chat_sealed", person_id)


def label_binding(invite_id: uuid.UUID) -> Binding:
    return Binding("invites", "label_sealed", invite_id)


def telegram_index(server: ServerKeys, telegram_id: int) -> bytes:
    return server.blind_index(IdentifierKind.TELEGRAM_ID.value, normalise_telegram_id(telegram_id))


def pseudonym(person: Person) -> str:
    """A stable label for operators that says nothing about who the person is."""
    return pseudonym_of(person.id)


def pseudonym_of(person_id: uuid.UUID) -> str:
    """The pseudonym of a person known by id alone (it is derived from the id: a
    listing of messages names their senders without reading the people table)."""
    return "P-" + sha256(person_id.bytes)[:3].hex().upper()


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
    result = await session.exec(select(Person).where(Person.telegram_index.in_(list(indexes))))
    return {indexes[p.telegram_index]: p for p in result.all()}


async def get_or_create_person(
    session: AsyncSession,
    *,
    server: ServerKeys,
    telegram_id: int,
    now: datetime,
    chat_id: int | None = None,
) -> Person:
    person = await find_person(session, server=server, telegram_id=telegram_id)
    if person is not None:
        return person
    return await add_person(
        session, server=server, telegram_id=telegram_id, chat_id=chat_id, now=now
    )


async def add_person(
    session: AsyncSession,
    *,
    server: ServerKeys,
    telegram_id: int,
    now: datetime,
    chat_id: int | None = None,
) -> Person:
    """A person who was not found (the caller looked, with ``find_person`` or ``find_people``).
    ``chat_id`` only for someone the bot will write to first (``CHAT_ROLES``)."""
    person_id = uuid.uuid4()
    index = await asyncio.to_thread(telegram_index, server, telegram_id)
    person = Person(id=person_id, telegram_index=index, created_at=now)
    keep_chat(server, person, chat_id)
    session.add(person)
    await session.flush()
    return person


def chat_id_of(server: ServerKeys, person: Person) -> int | None:
    """The person's chat, if it is kept (only for ``CHAT_ROLES``: see ``keep_chat``)."""
    if not person.chat_sealed:
        return None
    return int(server.open(person.chat_sealed, chat_binding(person.id)))


def reachable(server: ServerKeys, people: Iterable[Person]) -> list[tuple[int, Person]]:
    """(chat id, person) for those of ``people`` whose chat is kept: the ones the bot
    may write to first."""
    chats = [(chat_id_of(server, p), p) for p in people]
    return [(chat_id, p) for chat_id, p in chats if chat_id is not None]


def keep_chat(server: ServerKeys, person: Person, chat_id: int | None) -> bool:
    """Keep the person's chat id (sealed), or erase it (None); whether that changed the
    row (the caller adds it to the session). A chat id is kept only for someone the bot
    writes to first; everyone else's is erased."""
    if chat_id is None:
        return erase_chat(person)
    if chat_id_of(server, person) == chat_id:
        return False
    person.chat_sealed = server.seal(str(chat_id).encode(), chat_binding(person.id))
    return True


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
    label: str | None = None,
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
    if label:
        invite.label_sealed = server.seal(label.encode(), label_binding(invite.id))
    session.add(invite)
    await session.flush()
    return invite, code


async def redeem_invite(
    session: AsyncSession, *, server: ServerKeys, code: str, person: Person, now: datetime
) -> RoleGrant | None:
    """Grant the invite's role once. A used, expired or unknown code gives None,
    and the caller answers all three alike.

    The claim is one conditional UPDATE whose row count says who won: five
    accounts sending the same code in one batch, on PostgreSQL where reads do
    not wait for each other, get one grant (a read-then-write gave five)."""
    digest = server.code_digest(code)
    claimed = await session.exec(
        update(Invite)
        .where(
            Invite.code_digest == digest,
            Invite.redeemed_at.is_(None),
            Invite.expires_at > now,
        )
        .values(redeemed_at=now, redeemed_by=person.id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    invite = (await session.exec(select(Invite).where(Invite.code_digest == digest))).one()
    await session.refresh(invite)
    grant = RoleGrant(
        person_id=person.id,
        role=invite.role,
        group_id=invite.group_id,
        invite_id=invite.id,
        chat_label=invite.chat_label,
        granted_at=now,
    )
    session.add(grant)
    await session.flush()
    return grant


def label_of_invite(server: ServerKeys, invite: Invite) -> str | None:
    if invite.label_sealed is None:
        return None
    return server.open(invite.label_sealed, label_binding(invite.id)).decode()


async def label_of(session: AsyncSession, *, server: ServerKeys, person: Person) -> str | None:
    """The label the admin gave at invite time (the newest labelled grant's)."""
    result = await session.exec(
        select(Invite)
        .join(RoleGrant, RoleGrant.invite_id == Invite.id)
        .where(RoleGrant.person_id == person.id, Invite.label_sealed.is_not(None))
        .order_by(RoleGrant.granted_at.desc())
    )
    invite = result.first()
    return label_of_invite(server, invite) if invite is not None else None


async def display_name(session: AsyncSession, *, server: ServerKeys, person: Person) -> str:
    """How admins and activists are told who someone is: the invite's label and
    the pseudonym ("Ji-woo (P-4310A9)"), or the pseudonym alone. Never a
    Telegram name, which the person chose and may change."""
    label = await label_of(session, server=server, person=person)
    return f"{label} ({pseudonym(person)})" if label else pseudonym(person)


async def live_grants(session: AsyncSession, *, person_id: uuid.UUID) -> list[RoleGrant]:
    result = await session.exec(
        select(RoleGrant).where(RoleGrant.person_id == person_id, RoleGrant.revoked_at.is_(None))
    )
    return list(result.all())


async def find_by_pseudonym(session: AsyncSession, *, name: str) -> Person | None:
    """The person a pseudonym names (pseudonyms are derived, so every person is
    looked at: there are tens, not millions)."""
    wanted = name.strip().upper()
    for person in (await session.exec(select(Person))).all():
        if pseudonym(person) == wanted:
            return person
    return None


async def revoke(
    session: AsyncSession,
    *,
    person: Person,
    role: Role | None,
    group_id: uuid.UUID | None,
    now: datetime,
) -> list[RoleGrant]:
    """End a person's live grants (all, or those of one role and/or one group) at
    once; returns those ended. Conditional on ``revoked_at`` still being empty."""
    query = update(RoleGrant).where(
        RoleGrant.person_id == person.id, RoleGrant.revoked_at.is_(None)
    )
    if role is not None:
        query = query.where(RoleGrant.role == role)
    if group_id is not None:
        query = query.where(RoleGrant.group_id == group_id)
    ended = [
        g.id
        for g in await live_grants(session, person_id=person.id)
        if (role is None or g.role is role) and (group_id is None or g.group_id == group_id)
    ]
    if not ended:
        return []
    await session.exec(
        query.where(RoleGrant.id.in_(ended))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(select(RoleGrant).where(RoleGrant.id.in_(ended)))
    grants = list(result.all())
    for grant in grants:
        await session.refresh(grant)
    if not await _granted(session, [person.id], roles=CHAT_ROLES):
        # Nobody writes to them first any more: their chat id goes with the last such
        # role (an UPDATE: whatever this object holds, the row is what counts).
        await session.exec(
            update(Person)
            .where(Person.id == person.id)
            .values(chat_sealed=b"")
            .execution_options(synchronize_session=False)
        )
        erase_chat(person)
    return grants


def erase_chat(person: Person) -> bool:
    """Erase the person's chat id; whether there was one."""
    if not person.chat_sealed:
        return False
    person.chat_sealed = b""
    return True


async def forget_chats(session: AsyncSession) -> int:
    """Erase the chat id of everyone the bot no longer writes to first (a role revoked
    by any path, a group shredded with its grants, rows older than this rule): one
    UPDATE; how many were erased."""
    kept = select(RoleGrant.person_id).where(
        RoleGrant.revoked_at.is_(None), RoleGrant.role.in_(list(CHAT_ROLES))
    )
    result = await session.exec(
        update(Person)
        .where(Person.chat_sealed != b"", Person.id.not_in(kept))
        .values(chat_sealed=b"")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class Revoked:
    grants: list[RoleGrant]  # the grants ended (empty: the person held no such live role)
    alerts_dropped: int  # alerts that were waiting to go to them and now will not


async def revoke_roles(
    session: AsyncSession,
    *,
    person: Person,
    role: Role | None,
    group_id: uuid.UUID | None,
    now: datetime,
) -> Revoked:
    """What `intake role revoke` (and the console's Revoke, for an admin) does: end the
    grants at once and cut the person off from everything still waiting for them about
    the groups they no longer watch (all of them, once they are no activist or admin
    any more): alerts not sent yet, and their requests that a second person has not
    confirmed. A grant for one group ends that group alone, even for someone who
    remains an activist of others."""
    ended = await revoke(session, person=person, role=role, group_id=group_id, now=now)
    if not ended:
        return Revoked(grants=[], alerts_dropped=0)
    still = [g for g in await live_grants(session, person_id=person.id) if g.role in WATCHER_ROLES]
    # Nothing more reaches them about a group they no longer watch, not even an alert
    # already waiting to go.
    dropped = await cancel_pending(session, person_id=person.id, now=now)
    everywhere = any(g.role is Role.ADMIN or g.group_id is None for g in still)
    if not everywhere:
        kept = {g.group_id for g in still if g.group_id is not None}
        await cancel_requests_of(session, person_id=person.id, now=now, keep=kept)
    return Revoked(grants=ended, alerts_dropped=dropped)


async def cancel_requests_of(
    session: AsyncSession,
    *,
    person_id: uuid.UUID,
    now: datetime,
    keep: Collection[uuid.UUID] = (),
) -> int:
    """A revoked person's requests can no longer be confirmed (but those on the
    groups in ``keep``, which they still watch)."""
    query = select(GroupAct).where(GroupAct.requested_by == person_id, GroupAct.done_at.is_(None))
    if keep:
        query = query.where(GroupAct.group_id.not_in(list(keep)))
    rows = (await session.exec(query)).all()
    for row in rows:
        row.done_at, row.outcome = now, "revoked"
        session.add(row)
    return len(rows)


async def people_with_role(session: AsyncSession, *, role: Role) -> list[Person]:
    result = await session.exec(
        select(Person)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == role, RoleGrant.revoked_at.is_(None))
    )
    return list(result.unique().all())


async def watching_among(
    session: AsyncSession, *, person_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these people are activists or admins now (one query for a batch)."""
    return await _granted(session, person_ids, roles=WATCHER_ROLES)


async def roles_among(
    session: AsyncSession, *, person_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, set[Role]]:
    """The live roles of these people (one query for a batch; absent: a stranger)."""
    if not person_ids:
        return {}
    result = await session.exec(
        select(RoleGrant.person_id, RoleGrant.role).where(
            RoleGrant.person_id.in_(list(person_ids)), RoleGrant.revoked_at.is_(None)
        )
    )
    roles: dict[uuid.UUID, set[Role]] = {}
    for person_id, role in result.all():
        roles.setdefault(person_id, set()).add(Role(role))
    return roles


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
            RoleGrant.person_id.in_(list(person_ids)),
            RoleGrant.role.in_(list(roles)),
            RoleGrant.revoked_at.is_(None),
        )
    )
    return set(result.all())
