"""Which Telegram updates have been taken in: the bot confirms an update to Telegram
only after its row here commits, and skips one it finds here again."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ProcessedUpdate


async def already_processed(session: AsyncSession, *, update_id: int) -> bool:
    return await session.get(ProcessedUpdate, update_id) is not None


async def mark_processed(session: AsyncSession, *, update_id: int, now: datetime) -> None:
    session.add(ProcessedUpdate(update_id=update_id, processed_at=now))
    await session.flush()
