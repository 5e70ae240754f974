"""Codebook phrases, sealed with the server key: the bot must match them, and a
seized database must not reveal them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import select

from storage.crypto import Binding, ServerKeys, SigningKey
from storage.models import CodebookEntry, Group, Signal
from storage.session import AsyncSession
from storage.trust import UNENFORCED, sign, trust_of


@dataclass(frozen=True, slots=True)
class Phrase:
    entry_id: uuid.UUID
    group_id: uuid.UUID | None
    text: str
    means: Signal
    leg_id: uuid.UUID | None


def phrase_binding(entry_id: uuid.UUID) -> Binding:
    return Binding("codebook_entries", "phrase_sealed", entry_id)


async def add_phrase(
    session: AsyncSession,
    *,
    server: ServerKeys,
    group: Group | None,
    phrase: str,
    means: Signal,
    leg_id: uuid.UUID | None = None,
    now: datetime,
    signing: SigningKey | None = None,
) -> CodebookEntry:
    """Add an entry; signed at once with an operator's ``signing`` key, else not acted
    on until an operator signs it (storage/trust.py)."""
    entry_id = uuid.uuid4()
    entry = CodebookEntry(
        id=entry_id,
        group_id=group.id if group else None,
        phrase_sealed=server.seal(phrase.encode(), phrase_binding(entry_id)),
        means=means,
        leg_id=leg_id,
        created_at=now,
    )
    if signing is not None:
        sign(entry, signing)
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class CodebookMark:
    """What changes whenever an entry is added or removed (entries are never edited in
    place), read with one cheap query: a running bot keeps the opened phrases while the
    mark stays the same, instead of opening every phrase for every message."""

    count: int
    newest: datetime | None


async def codebook_mark(session: AsyncSession) -> CodebookMark:
    row = (
        await session.exec(
            select(sa.func.count(), sa.func.max(CodebookEntry.created_at)).select_from(
                CodebookEntry
            )
        )
    ).one()
    count, newest = row
    return CodebookMark(count=int(count), newest=newest)


async def all_phrases(session: AsyncSession, *, server: ServerKeys) -> list[Phrase]:
    """Every group's phrases and the organisation-wide ones (to find which group
    a message is about)."""
    return _opened(session, server, (await session.exec(select(CodebookEntry))).all())


def _opened(
    session: AsyncSession,
    server: ServerKeys,
    entries: Sequence[CodebookEntry],
    *,
    trusted_only: bool = True,
) -> list[Phrase]:
    """The entries whose operator signature verifies, opened: a meaning someone
    changed in the database is never acted on (storage/trust.py)."""
    trust = trust_of(session) if trusted_only else UNENFORCED
    return [
        Phrase(
            entry_id=e.id,
            group_id=e.group_id,
            text=server.open(e.phrase_sealed, phrase_binding(e.id)).decode(),
            means=e.means,
            leg_id=e.leg_id,
        )
        for e in entries
        if trust.check(e)
    ]


async def phrases_for(
    session: AsyncSession, *, server: ServerKeys, group: Group | None, trusted_only: bool = True
) -> list[Phrase]:
    """The group's phrases and the organisation-wide ones; with ``trusted_only=False``
    also those whose signature fails or is missing (a new phrase must clash with none)."""
    org_wide = CodebookEntry.group_id.is_(None)
    condition = org_wide if group is None else sa.or_(org_wide, CodebookEntry.group_id == group.id)
    entries = (await session.exec(select(CodebookEntry).where(condition))).all()
    return _opened(session, server, entries, trusted_only=trusted_only)
