"""Downtime: what queued at Telegram while the bot was stopped is taken in when it starts,
before its first long poll, in order, with the times Telegram gave it (not the time the bot
got round to it), so that the bot's own absence never looks like a group's silence.

The deadline engine is a later issue; what exists is ``serve(..., after_drain=hook)``, the
place it will hook in. The hook must run only once every queued update is committed: the
test looks into the database from inside the hook.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app import serve
from bot.intake import BotApplication
from bot.standin import TelegramStandIn, channel_chat, group_chat
from storage.db import open_database
from storage.models import Message
from tests.bot.intake_harness import Installation, eventually, install
from tests.conftest import Database

RELATIVE = 6_300_100_200
OTHER_RELATIVE = 6_300_100_201


@pytest.fixture
async def installation(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> Installation:
    return await install(tmp_path / "server", standin=standin, database_url=database.url)


@dataclass(frozen=True)
class Row:
    update_id: int | None
    version: int
    sent_at: datetime | None
    origin_at: datetime | None
    received_at: datetime


async def rows(url: str) -> list[Row]:
    """Every stored message's times, read with a connection of the test's own."""
    async with open_database(url, migrate_to_head=False) as engine, engine.connect() as conn:
        result = await conn.execute(
            sa.select(
                Message.update_id,
                Message.version,
                Message.sent_at,
                Message.origin_at,
                Message.received_at,
            ).order_by(Message.update_id)
        )
        return [Row(*r) for r in result.all()]


async def processed(url: str) -> set[int]:
    async with open_database(url, migrate_to_head=False) as engine, engine.connect() as conn:
        marks = (await conn.execute(sa.text("SELECT update_id FROM processed_updates"))).scalars()
        return {int(u) for u in marks}


@dataclass(frozen=True)
class Queued:
    update_id: int
    sent_at: datetime
    origin_at: datetime | None = None


def queue_while_down(standin: TelegramStandIn, hours_ago: datetime) -> list[Queued]:
    """What two relatives sent over a few hours while the bot was stopped, oldest first:
    texts, a forward of every origin kind (each first sent earlier still), and an edit."""
    me = standin.user(RELATIVE, language_code="en")
    other = standin.user(OTHER_RELATIVE, language_code="ko")
    traveller = standin.user(6_300_999_001, "Traveller")
    at = [hours_ago + timedelta(minutes=20 * n) for n in range(10)]
    origin = [moment - timedelta(hours=2) for moment in at]
    queued: list[Queued] = []

    def add(update: dict[str, Any], sent: datetime, first_sent: datetime | None = None) -> None:
        queued.append(Queued(int(update["update_id"]), sent, first_sent))

    first = standin.send_text(me, "Arrived at the station", date=at[0])
    add(first, at[0])
    add(
        standin.send_forward(
            me,
            "All fine, moving tonight",
            origin=standin.origin_user(traveller, origin[1]),
            date=at[1],
        ),
        at[1],
        origin[1],
    )
    add(
        standin.send_forward(
            other, "Weather is good", origin=standin.origin_hidden_user("K.", origin[2]), date=at[2]
        ),
        at[2],
        origin[2],
    )
    add(
        standin.send_forward(
            me,
            "Bus leaves at six",
            origin=standin.origin_chat(group_chat(-4_001_002_003, "Family"), origin[3]),
            date=at[3],
        ),
        at[3],
        origin[3],
    )
    add(
        standin.send_forward(
            other,
            "Border crossing closed today",
            origin=standin.origin_channel(channel_chat(-1_009_876_543_210, "News"), 77, origin[4]),
            date=at[4],
        ),
        at[4],
        origin[4],
    )
    add(standin.send_text(other, "No news from them yet", date=at[5]), at[5])
    # An edit: Telegram's edit_date is the time of the new version.
    add(
        standin.edit_text(
            me, first["message"]["message_id"], "Arrived at the bus station", date=at[6]
        ),
        at[6],
    )
    add(standin.send_text(me, "서울 도착", date=at[7]), at[7])
    return queued


async def test_updates_queued_while_down_are_taken_in_first_with_their_own_times(
    standin: TelegramStandIn, installation: Installation
) -> None:
    url = installation.settings.database.url
    started = datetime.now(UTC)
    hours_ago = started.replace(microsecond=0) - timedelta(hours=5)
    queued = queue_while_down(standin, hours_ago)
    queued_ids = [q.update_id for q in queued]
    assert queued_ids == sorted(queued_ids)

    in_hook: list[tuple[list[Row], set[int], int]] = []

    async def after_drain(application: BotApplication) -> None:
        # Runs between the drain and the first long poll: everything must already be in.
        pending = len(standin.pending_updates)
        in_hook.append((await rows(url), await processed(url), pending))

    stop = asyncio.Event()
    task = asyncio.create_task(serve(installation.settings, stop=stop, after_drain=after_drain))
    try:
        await eventually(lambda: bool(in_hook) or task.done(), within=30)
        if task.done():
            task.result()
        # The bot then goes on to long-poll: a message sent now arrives live.
        me = standin.user(RELATIVE, language_code="en")
        live = standin.send_text(me, "Back online?")
        await standin.wait_confirmed([live["update_id"]], within=30)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)

    assert len(in_hook) == 1, "the after-drain hook runs once"
    rows_in_hook, processed_in_hook, pending_in_hook = in_hook[0]
    assert [r.update_id for r in rows_in_hook] == queued_ids, "not all in before the hook"
    assert set(queued_ids) <= processed_in_hook
    assert pending_in_hook == 0

    stored = {r.update_id: r for r in await rows(url)}
    assert set(stored) == {*queued_ids, live["update_id"]}
    for q in queued:
        row = stored[q.update_id]
        # Telegram's own date is kept as the send time; the forward's origin date as the
        # time the traveller sent it.
        assert row.sent_at == q.sent_at, q
        assert row.origin_at == q.origin_at, q
        # Taken in now, hours after it was sent: the two times differ.
        received = row.received_at
        assert received >= started - timedelta(seconds=1)
        assert received - q.sent_at > timedelta(hours=2)
    # In order: each was taken in no earlier than the one queued before it.
    received_in_order = [stored[u].received_at for u in queued_ids]
    assert received_in_order == sorted(received_in_order)
    # The edit is a second version of the first message, not an overwrite.
    assert [stored[u].version for u in queued_ids].count(2) == 1
    # The live message carries its own (current) time.
    live_row = stored[live["update_id"]]
    assert live_row.sent_at == datetime.fromtimestamp(live["message"]["date"], UTC)
