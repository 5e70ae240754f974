"""Messages and attachments: sealed on arrival, opened only with an operator's key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, update

from storage.crypto import Binding, ServerKeys
from storage.models import (
    Attachment,
    Group,
    LinkReason,
    Message,
    MessageKind,
    Operator,
    OriginKind,
    Person,
    Signal,
)
from storage.sealing import Keyring, active_operators, current_group_key, seal_record
from storage.session import AsyncSession
from storage.trust import trusted_group

MESSAGES = "messages"
ATTACHMENTS = "attachments"


@dataclass(frozen=True, slots=True)
class ChatRef:
    """Where a message sits in a relative's chat (to delete it there later)."""

    chat_id: int
    message_id: int


def chat_ref_binding(message_id: uuid.UUID) -> Binding:
    return Binding(MESSAGES, "chat_ref_sealed", message_id)


def chat_ref_digest(server: ServerKeys, ref: ChatRef) -> bytes:
    return server.digest("chat-ref", f"{ref.chat_id}:{ref.message_id}")


async def _recipients(
    session: AsyncSession,
    group: Group | None,
    candidates: Sequence[Group],
    operators: Sequence[Operator] | None = None,
) -> dict[str, Any]:
    if group is not None:
        await current_group_key(session, group)
    for candidate in candidates:
        await current_group_key(session, candidate)
    if group is not None and trusted_group(session, group):
        return {"groups": [group]}
    # A group key whose signature fails is never sealed to (a database writer may
    # have swapped it): the record goes to the operators instead, so nothing is lost.
    if operators is None:
        operators = await active_operators(session)
    return {"groups": [g for g in candidates if trusted_group(session, g)], "operators": operators}


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


async def store_message(
    session: AsyncSession,
    *,
    server: ServerKeys,
    kind: MessageKind,
    body: Mapping[str, Any],
    received_at: datetime,
    group: Group | None = None,
    sender: Person | None = None,
    update_id: int | None = None,
    origin_kind: OriginKind | None = None,
    origin_index: bytes | None = None,
    origin_at: datetime | None = None,
    sent_at: datetime | None = None,
    chat_ref: ChatRef | None = None,
    previous: Message | None = None,
    link_reason: LinkReason | None = None,
    candidates: Sequence[Group] = (),
    signal: Signal | None = None,
    possible_detention: bool = False,
    text_digest: bytes | None = None,
    operators: Sequence[Operator] | None = None,
    flush: bool = True,
) -> Message:
    """Seal and add one message. ``body`` holds everything readable in it (text,
    caption, the forward origin's name, a location...), sealed as one field.

    Linked to ``group``, it is sealed to that group; otherwise to every
    operator (``operators``, when the caller has read them already: a batch reads
    them once) and to the ``candidates`` a relative is asked to choose from.
    With ``flush=False`` the rows wait for the caller's next flush, so that a
    batch of messages is written in a few multi-row INSERTs."""
    message_id = uuid.uuid4()
    sealed = seal_record(
        table=MESSAGES,
        row_id=message_id,
        fields={"body_sealed": _json(body)},
        **await _recipients(session, group, candidates, operators),
    )
    message = Message(
        id=message_id,
        update_id=update_id,
        sender_id=sender.id if sender else None,
        group_id=group.id if group else None,
        link_reason=link_reason,
        signal=signal,
        possible_detention=possible_detention,
        text_digest=text_digest,
        kind=kind,
        origin_kind=origin_kind,
        origin_index=origin_index,
        origin_at=origin_at,
        sent_at=sent_at,
        received_at=received_at,
        previous_id=previous.id if previous else None,
        version=previous.version + 1 if previous else 1,
        chat_ref_digest=chat_ref_digest(server, chat_ref) if chat_ref else None,
        chat_ref_sealed=(
            server.seal(
                _json({"c": chat_ref.chat_id, "m": chat_ref.message_id}),
                chat_ref_binding(message_id),
            )
            if chat_ref
            else None
        ),
        body_sealed=sealed.columns["body_sealed"],
    )
    # Key wraps name their subject without a foreign key, so the order of the
    # INSERTs does not matter.
    session.add(message)
    session.add_all(sealed.wraps)
    if flush:
        await session.flush()
    return message


async def store_attachment(
    session: AsyncSession,
    *,
    message: Message,
    group: Group | None,
    kind: MessageKind,
    meta: Mapping[str, Any],
    content: bytes | None,
    candidates: Sequence[Group] = (),
) -> Attachment:
    """Seal a downloaded file (or, when it was too large to fetch, only its metadata)."""
    attachment_id = uuid.uuid4()
    fields = {"meta_sealed": _json(meta)}
    if content is not None:
        fields["content_sealed"] = content
    sealed = seal_record(
        table=ATTACHMENTS,
        row_id=attachment_id,
        fields=fields,
        **await _recipients(session, group, candidates),
    )
    attachment = Attachment(
        id=attachment_id,
        message_id=message.id,
        kind=kind,
        too_large=content is None,
        meta_sealed=sealed.columns["meta_sealed"],
        content_sealed=sealed.columns.get("content_sealed"),
    )
    session.add(attachment)
    await session.flush()
    session.add_all(sealed.wraps)
    await session.flush()
    return attachment


def chat_ref_of(server: ServerKeys, message: Message) -> ChatRef | None:
    if message.chat_ref_sealed is None:
        return None
    ref = json.loads(server.open(message.chat_ref_sealed, chat_ref_binding(message.id)))
    return ChatRef(chat_id=int(ref["c"]), message_id=int(ref["m"]))


async def open_message(session: AsyncSession, keyring: Keyring, message: Message) -> dict[str, Any]:
    opened = await keyring.open_fields(
        session, table=MESSAGES, row_id=message.id, columns={"body_sealed": message.body_sealed}
    )
    body: dict[str, Any] = json.loads(opened["body_sealed"])
    return body


@dataclass(frozen=True, slots=True)
class OpenedAttachment:
    meta: dict[str, Any]
    content: bytes | None


async def open_attachment(
    session: AsyncSession, keyring: Keyring, attachment: Attachment
) -> OpenedAttachment:
    columns = {"meta_sealed": attachment.meta_sealed}
    if attachment.content_sealed is not None:
        columns["content_sealed"] = attachment.content_sealed
    opened = await keyring.open_fields(
        session, table=ATTACHMENTS, row_id=attachment.id, columns=columns
    )
    return OpenedAttachment(
        meta=json.loads(opened["meta_sealed"]), content=opened.get("content_sealed")
    )


async def attachments_of(session: AsyncSession, *, message: Message) -> Sequence[Attachment]:
    return (await session.exec(select(Attachment).where(Attachment.message_id == message.id))).all()


async def latest_version(
    session: AsyncSession, *, server: ServerKeys, chat_ref: ChatRef
) -> Message | None:
    """The newest stored version of the message at ``chat_ref`` (edits are new versions)."""
    result = await session.exec(
        select(Message)
        .where(Message.chat_ref_digest == chat_ref_digest(server, chat_ref))
        .order_by(Message.version.desc())
        .limit(1)
    )
    return result.first()


async def find_by_update(session: AsyncSession, *, update_id: int) -> Message | None:
    return (await session.exec(select(Message).where(Message.update_id == update_id))).first()


async def mark_deleted_in_chat(
    session: AsyncSession, *, update_ids: Sequence[int], now: datetime
) -> None:
    """The messages these updates brought are gone from the relative's chat: one UPDATE.
    Where they sat goes too: nothing is left to delete there (``chat_ref_digest`` stays,
    a keyed digest that opens nothing)."""
    if not update_ids:
        return
    await session.exec(
        update(Message)
        .where(Message.update_id.in_(update_ids), Message.deleted_in_chat_at.is_(None))
        .values(deleted_in_chat_at=now, chat_ref_sealed=None)
    )


async def forget_chat_refs(session: AsyncSession, *, received_before: datetime) -> int:
    """Erase where the messages received before ``received_before`` sit in their chats
    (the caller passes Telegram's 48 hours ago: past them the bot may delete nothing
    there, whether or not ``[intake] delete_forwarded`` deleted them); how many."""
    result = await session.exec(
        update(Message)
        .where(
            Message.chat_ref_sealed.is_not(None),
            Message.received_at < received_before,
        )
        .values(chat_ref_sealed=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)


async def count_from_sender_since(session: AsyncSession, *, sender: Person, since: datetime) -> int:
    result = await session.exec(
        select(sa.func.count())
        .select_from(Message)
        .where(Message.sender_id == sender.id, Message.received_at >= since)
    )
    return int(result.one())


async def counts_from_senders_since(
    session: AsyncSession, *, sender_ids: Sequence[uuid.UUID], since: datetime
) -> dict[uuid.UUID, int]:
    """``count_from_sender_since`` for many senders in one query (absent: none)."""
    if not sender_ids:
        return {}
    result = await session.exec(
        select(Message.sender_id, sa.func.count())
        .where(Message.sender_id.in_(sender_ids), Message.received_at >= since)
        .group_by(Message.sender_id)
    )
    return {sender: int(count) for sender, count in result.all() if sender is not None}


async def undeleted_in_chat(session: AsyncSession, *, sender: Person) -> Sequence[Message]:
    """The sender's messages still in their chat with the bot (for /wipe)."""
    result = await session.exec(
        select(Message).where(
            Message.sender_id == sender.id,
            Message.chat_ref_sealed.is_not(None),
            Message.deleted_in_chat_at.is_(None),
        )
    )
    return result.all()


async def undeleted_since(session: AsyncSession, *, since: datetime) -> Sequence[Message]:
    """Every stored message still in its sender's chat, received since ``since`` (after
    a crash between storing and deleting: Telegram allows 48 hours)."""
    result = await session.exec(
        select(Message).where(
            Message.chat_ref_sealed.is_not(None),
            Message.deleted_in_chat_at.is_(None),
            Message.received_at >= since,
        )
    )
    return result.all()


async def attachment_bytes(
    session: AsyncSession, *, sender_ids: Sequence[uuid.UUID], since: datetime
) -> tuple[dict[uuid.UUID, int], int]:
    """Bytes of attachment content kept: per sender since ``since``, and in all."""
    size = sa.func.coalesce(sa.func.sum(sa.func.length(Attachment.content_sealed)), 0)
    total = int((await session.exec(select(size))).one())
    per: dict[uuid.UUID, int] = {}
    if sender_ids:
        rows = await session.exec(
            select(Message.sender_id, size)
            .join(Message, Message.id == Attachment.message_id)
            .where(Message.sender_id.in_(list(sender_ids)), Message.received_at >= since)
            .group_by(Message.sender_id)
        )
        per = {sender: int(n) for sender, n in rows.all() if sender is not None}
    return per, total


async def unlinked_count(session: AsyncSession) -> int:
    """How many messages wait for an operator to place them in a group."""
    result = await session.exec(
        select(sa.func.count()).select_from(Message).where(Message.group_id.is_(None))
    )
    return int(result.one())
