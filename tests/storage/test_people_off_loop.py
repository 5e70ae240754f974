"""Argon2id blind indexes of new senders are computed off the event loop (issue #14): a
batch of strangers does not stall every other chat's replies while they are indexed."""

from __future__ import annotations

import asyncio
import time

from storage.crypto import ServerKeys
from storage.people import find_people
from storage.session import AsyncSession

NEW_SENDERS = 8


async def test_indexing_a_batch_of_new_senders_leaves_the_event_loop_free(
    session: AsyncSession, server: ServerKeys
) -> None:
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    found = await find_people(
        session, server=server, telegram_ids=range(9_000_000_001, 9_000_000_001 + NEW_SENDERS)
    )
    took = time.monotonic() - started
    done.set()
    await ticker
    assert found == {}
    # The indexes take tens of milliseconds each; the loop kept turning meanwhile.
    assert max(gaps) < took / 2, (max(gaps), took)
