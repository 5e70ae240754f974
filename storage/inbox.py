"""The operator's view of the sealed inbox: messages opened with their key.

Runs on the operator's own machine, against a copy of the database or its
URL; the key never touches the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.messages import open_message
from storage.models import Group, Message, Person
from storage.people import pseudonym
from storage.sealing import Keyring


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
) -> list[InboxItem]:
    """Messages, newest first, opened with the operator's key."""
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
