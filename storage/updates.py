"""Which Telegram updates have been taken in: the bot confirms an update to Telegram
only after its row here commits, and skips one it finds here again."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select

from storage.models import ProcessedUpdate
from storage.session import AsyncSession


async def already_processed(session: AsyncSession, *, update_id: int) -> bool:
    return await session.get(ProcessedUpdate, update_id) is not None


async def mark_processed(session: AsyncSession, *, update_id: int, now: datetime) -> None:
    session.add(ProcessedUpdate(update_id=update_id, processed_at=now))
    await session.flush()


async def processed_among(session: AsyncSession, *, update_ids: Collection[int]) -> set[int]:
    """Which of these updates were taken in before: one query for a whole batch."""
    if not update_ids:
        return set()
    result = await session.exec(
        select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id.in_(update_ids))
    )
    return set(result.all())


def mark_all_processed(
    session: AsyncSession, *, update_ids: Collection[int], now: datetime
) -> None:
    """Add the rows of a batch; they are written with the batch's next flush or commit."""
    session.add_all([ProcessedUpdate(update_id=u, processed_at=now) for u in update_ids])
