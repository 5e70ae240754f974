"""The bot's replies still to delete themselves from private chats, kept durably.

A reply is written here right after it is sent and removed once deleted, so that a
restart or a crash does not leave it on a relative's phone (promise 3). Telegram lets a
bot delete a message for 48 hours; a row older than that is given up (counted, and
removed: nothing can be done about it any more).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from storage.crypto import Binding, ServerKeys
from storage.models import PendingDeletion
from storage.session import AsyncSession

DELETABLE_FOR = timedelta(hours=48)  # Telegram's window for deleting a message


@dataclass(frozen=True, slots=True)
class Due:
    chat_id: int
    message_id: int
    due_at: datetime


def _binding(row_id: uuid.UUID) -> Binding:
    return Binding("pending_deletions", "chat_sealed", row_id)


def chat_digest(server: ServerKeys, chat_id: int) -> bytes:
    return server.digest("pending-deletion-chat", str(chat_id))


def remember(
    session: AsyncSession,
    *,
    server: ServerKeys,
    chat_id: int,
    message_ids: Iterable[int],
    sent_at: datetime,
    due_at: datetime,
) -> None:
    for message_id in message_ids:
        row_id = uuid.uuid4()
        session.add(
            PendingDeletion(
                id=row_id,
                chat_digest=chat_digest(server, chat_id),
                chat_sealed=server.seal(str(chat_id).encode(), _binding(row_id)),
                message_id=message_id,
                sent_at=sent_at,
                due_at=due_at,
            )
        )


async def forget(
    session: AsyncSession, *, server: ServerKeys, chat_id: int, message_ids: Sequence[int]
) -> None:
    """The messages are gone from the chat (or were never there to delete)."""
    if not message_ids:
        return
    await session.exec(
        delete(PendingDeletion).where(
            PendingDeletion.chat_digest == chat_digest(server, chat_id),
            PendingDeletion.message_id.in_(list(message_ids)),
        )
    )


async def in_chat(session: AsyncSession, *, server: ServerKeys, chat_id: int) -> list[int]:
    """Every reply still to delete in one chat (for /wipe)."""
    result = await session.exec(
        select(PendingDeletion.message_id).where(
            PendingDeletion.chat_digest == chat_digest(server, chat_id)
        )
    )
    return sorted(set(result.all()))


async def all_pending(
    session: AsyncSession, *, server: ServerKeys, now: datetime
) -> tuple[list[Due], int]:
    """Every reply still to delete (after a restart), and how many were given up because
    Telegram's 48 hours had passed (their rows are removed)."""
    rows = (await session.exec(select(PendingDeletion))).all()
    expired = [r.id for r in rows if now - r.sent_at >= DELETABLE_FOR]
    if expired:
        await session.exec(delete(PendingDeletion).where(PendingDeletion.id.in_(expired)))
    due = [
        Due(int(server.open(r.chat_sealed, _binding(r.id))), r.message_id, r.due_at)
        for r in rows
        if r.id not in set(expired)
    ]
    return due, len(expired)
