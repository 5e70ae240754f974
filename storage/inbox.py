"""The operator's view of the sealed inbox: messages opened with their key.

Runs on the operator's own machine, against a copy of the database or its
URL; the key never touches the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import wrap_key
from storage.messages import ATTACHMENTS, MESSAGES, attachments_of, open_message
from storage.models import Group, KeyWrap, LinkReason, Message, MessageMark, Note, Person
from storage.people import pseudonym
from storage.sealing import (
    Keyring,
    active_operators,
    data_key_binding,
    group_public_key,
    operator_public_key,
    seal_record,
)


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: uuid.UUID
    group: str | None
    link_reason: str | None
    signal: str | None
    kind: str
    version: int
    origin_at: datetime | None
    received_at: datetime
    forwarder: str | None  # a pseudonym, never an identifier
    text: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "group": self.group,
            "link_reason": self.link_reason,
            "signal": self.signal,
            "kind": self.kind,
            "version": self.version,
            "origin_at": _iso(self.origin_at),
            "received_at": _iso(self.received_at),
            "forwarder": self.forwarder,
            "text": self.text,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


async def list_inbox(
    session: AsyncSession,
    keyring: Keyring,
    *,
    group: Group | None = None,
    unlinked: bool = False,
    since: datetime | None = None,
    limit: int | None = None,
    unread: bool = False,
    starred: bool = False,
) -> list[InboxItem]:
    """Messages, newest first, opened with the operator's key. ``unread`` and
    ``starred`` are this operator's own marks."""
    query = select(Message).order_by(col(Message.received_at).desc(), col(Message.version).desc())
    if group is not None:
        query = query.where(Message.group_id == group.id)
    if unlinked:
        query = query.where(col(Message.group_id).is_(None))
    if since is not None:
        query = query.where(col(Message.received_at) >= since)
    if limit is not None:
        query = query.limit(limit)
    rows: Sequence[Message] = (await session.exec(query)).all()
    if unread or starred:
        marks = {
            m.message_id: m
            for m in (
                await session.exec(
                    select(MessageMark).where(MessageMark.operator_id == keyring.operator.id)
                )
            ).all()
        }
        if unread:
            rows = [r for r in rows if r.id not in marks or marks[r.id].seen_at is None]
        if starred:
            rows = [r for r in rows if r.id in marks and marks[r.id].starred]
    codenames = {g.id: g.codename for g in (await session.exec(select(Group))).all()}
    senders = {
        p.id: pseudonym(p)
        for p in (
            await session.exec(
                select(Person).where(col(Person.id).in_({r.sender_id for r in rows if r.sender_id}))
            )
        ).all()
    }
    items = []
    for row in rows:
        body = await open_message(session, keyring, row)
        items.append(
            InboxItem(
                id=row.id,
                group=codenames.get(row.group_id) if row.group_id else None,
                link_reason=row.link_reason.value if row.link_reason else None,
                signal=row.signal.value if row.signal else None,
                kind=row.kind.value,
                version=row.version,
                origin_at=row.origin_at,
                received_at=row.received_at,
                forwarder=senders.get(row.sender_id) if row.sender_id else None,
                text=str(body.get("text") or body.get("caption") or ""),
            )
        )
    return items


# --------------------------------------------------------------------------- acting on one message


class NoSuchMessage(Exception):
    pass


async def find_message(session: AsyncSession, *, ref: str) -> Message:
    """A message by its id, or by the first characters of it (at least six) if unique."""
    ref = ref.strip().lower().replace("-", "")
    if len(ref) < 6 or any(c not in "0123456789abcdef" for c in ref):
        raise NoSuchMessage("give a message id (at least its first 6 characters)")
    ids = (await session.exec(select(Message.id))).all()
    found = [i for i in ids if i.hex.startswith(ref)]
    if len(found) != 1:
        raise NoSuchMessage(
            f"no message id starts with {ref}" if not found else f"{ref} names several messages"
        )
    message = await session.get(Message, found[0])
    assert message is not None  # noqa: S101 (just listed)
    return message


async def mark(
    session: AsyncSession,
    *,
    operator_id: uuid.UUID,
    message: Message,
    now: datetime,
    seen: bool | None = None,
    starred: bool | None = None,
) -> MessageMark:
    """This operator's own reading state of a message."""
    row = (
        await session.exec(
            select(MessageMark).where(
                MessageMark.message_id == message.id, MessageMark.operator_id == operator_id
            )
        )
    ).first() or MessageMark(message_id=message.id, operator_id=operator_id)
    if seen is not None:
        row.seen_at = now if seen else None
    if starred is not None:
        row.starred = starred
    session.add(row)
    await session.flush()
    return row


async def add_note(
    session: AsyncSession, *, operator_id: uuid.UUID, message: Message, text: str, now: datetime
) -> Note:
    """A note on a message, sealed to every operator (never to a group)."""
    note_id = uuid.uuid4()
    sealed = seal_record(
        table="notes",
        row_id=note_id,
        fields={"body_sealed": text.encode()},
        operators=await active_operators(session),
    )
    note = Note(
        id=note_id,
        message_id=message.id,
        operator_id=operator_id,
        body_sealed=sealed.columns["body_sealed"],
        created_at=now,
    )
    session.add(note)
    await session.flush()
    session.add_all(sealed.wraps)
    await session.flush()
    return note


async def notes_of(session: AsyncSession, keyring: Keyring, *, message: Message) -> list[str]:
    notes = (
        await session.exec(
            select(Note).where(Note.message_id == message.id).order_by(col(Note.created_at))
        )
    ).all()
    opened = []
    for note in notes:
        fields = await keyring.open_fields(
            session, table="notes", row_id=note.id, columns={"body_sealed": note.body_sealed}
        )
        opened.append(fields["body_sealed"].decode())
    return opened


async def relink(
    session: AsyncSession, keyring: Keyring, *, message: Message, group: Group | None
) -> None:
    """Link a message (and its attachments) to ``group``, or unlink it (None): its
    data keys are wrapped again, to that group alone or to every operator, and
    every other wrap goes."""
    subjects = [(MESSAGES, message.id)] + [
        (ATTACHMENTS, a.id) for a in await attachments_of(session, message=message)
    ]
    operators = await active_operators(session)
    for table, row_id in subjects:
        data_key = await keyring.data_key(session, table=table, row_id=row_id)
        binding = data_key_binding(table, row_id)
        await session.exec(delete(KeyWrap).where(col(KeyWrap.subject_id) == row_id))
        if group is not None:
            session.add(
                KeyWrap(
                    subject_table=table,
                    subject_id=row_id,
                    group_id=group.id,
                    wrapped=wrap_key(data_key, group_public_key(group), binding),
                )
            )
        else:
            session.add_all(
                KeyWrap(
                    subject_table=table,
                    subject_id=row_id,
                    operator_id=op.id,
                    wrapped=wrap_key(data_key, operator_public_key(op), binding),
                )
                for op in operators
            )
    message.group_id = group.id if group else None
    message.link_reason = LinkReason.OPERATOR if group else None
    session.add(message)
    await session.flush()


async def versions_of(session: AsyncSession, *, message: Message) -> list[Message]:
    """The message and the versions before it (edits), oldest first."""
    chain = [message]
    while chain[0].previous_id is not None:
        earlier = await session.get(Message, chain[0].previous_id)
        if earlier is None:
            break
        chain.insert(0, earlier)
    return chain
