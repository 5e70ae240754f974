"""Notes still owed to activists that unconfirmed news about their group arrived (promise 8).

A relative's message with no signal about a group in trouble is stored with a due mark
for that group in the same transaction (``mark``), so a crash or a restart before the
note goes loses nothing: whichever bot process looks next (``claim``) sends it, then
crosses the mark off (``told``). One mark a group: a burst of news makes one note.

A mark is a ``watch_state`` row named after the group (no content). Claiming moves its
moment ``LEASE`` ahead, so that two processes do not both send it, and a process that
dies while sending leaves it to be sent again once the lease runs out: a note may come
twice, never not at all.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, select, update

from storage.models import WatchState
from storage.session import AsyncSession

PREFIX = "news:"
LEASE = timedelta(minutes=1)


def _name(group_id: uuid.UUID) -> str:
    # watch_state names are at most 32 characters: a UUID in base 32 takes 26.
    return PREFIX + base64.b32encode(group_id.bytes).decode().rstrip("=").lower()


def _group(name: str) -> uuid.UUID:
    encoded = name.removeprefix(PREFIX).upper()
    return uuid.UUID(bytes=base64.b32decode(encoded + "=" * (-len(encoded) % 8)))


async def mark(session: AsyncSession, *, group_ids: Collection[uuid.UUID], at: datetime) -> None:
    """A note is owed to these groups' activists from ``at``. A mark already waiting keeps
    its earlier moment (one note for a burst); one claimed by a sender now moves back to
    ``at``, so that news arriving while the note goes makes another note."""
    if not group_ids:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    # Imported here: the PostgreSQL dialect is 2 MB and 35 ms that a bot on SQLite
    # would otherwise load at every start and never use.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        insert: Callable[[Any], Any] = pg_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert
    table = WatchState.__table__
    for group_id in sorted(set(group_ids)):
        statement = insert(table).values(name=_name(group_id), at=at)
        await session.exec(
            statement.on_conflict_do_update(
                index_elements=[table.c.name],
                set_={"at": statement.excluded.at},
                where=table.c.at > statement.excluded.at,
            )
        )


async def claim(session: AsyncSession, *, now: datetime) -> list[tuple[uuid.UUID, datetime]]:
    """The groups whose note is due, each claimed for ``LEASE`` (a conditional UPDATE: one
    process wins); with the claim's moment, for ``told``."""
    result = await session.exec(
        select(WatchState).where(WatchState.name.startswith(PREFIX), WatchState.at <= now)
    )
    due = [(row.name, row.at) for row in result.all()]
    claimed = []
    until = now + LEASE
    for name, at in due:
        won = await session.exec(
            update(WatchState)
            .where(WatchState.name == name, WatchState.at == at)
            .values(at=until)
            .execution_options(synchronize_session=False)
        )
        if won.rowcount == 1:
            claimed.append((_group(name), until))
    return claimed


async def told(session: AsyncSession, *, group_id: uuid.UUID, claimed: datetime) -> None:
    """The note went: the mark goes, unless news came meanwhile (``mark`` moved it)."""
    await session.exec(
        delete(WatchState).where(WatchState.name == _name(group_id), WatchState.at == claimed)
    )


async def next_at(session: AsyncSession) -> datetime | None:
    """The earliest moment a note is owed from (or a claim on one runs out); None: none."""
    result = await session.exec(
        select(sa.func.min(WatchState.at)).where(WatchState.name.startswith(PREFIX))
    )
    return result.one()


async def owed(session: AsyncSession) -> list[tuple[uuid.UUID, datetime]]:
    """Every note still owed, with its moment."""
    result = await session.exec(select(WatchState).where(WatchState.name.startswith(PREFIX)))
    return sorted((_group(row.name), row.at) for row in result.all())
