"""Replies never hold up intake (issue #14): a chat under flood control waits alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.standin import TelegramStandIn
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

STRANGER = 6_700_000_001
RELATIVE = 6_700_000_002
# The chat that waits does so for 60 s. Measured on a loaded 2-core machine: at most about
# 0.1 s per check-in; 1.9 s when the flooded chat kept its batch's slot until
# handlers.DETACH_AFTER (2 s), which this bound must catch.
WITHIN = 1.0
# Long enough for the messages after the refused receipt to be taken in meanwhile.
RETRY_AFTER = 10


@pytest.fixture
async def installation(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> Installation:
    return await install(tmp_path / "server", standin=standin, database_url=database.url)


async def test_a_chat_under_flood_control_holds_back_no_other_chats_intake(
    standin: TelegramStandIn, installation: Installation
) -> None:
    stranger = standin.user(STRANGER, language_code="en")
    relative = standin.user(RELATIVE, language_code="en")
    loop = asyncio.get_running_loop()
    async with running_bot(installation, standin):
        # The stranger's receipt is refused: "retry after 60".
        standin.fail_next("sendMessage", status=429, retry_after=60)
        first = standin.send_text(stranger, "hello")
        await eventually(lambda: first["update_id"] in standin.confirmed_update_ids())
        await eventually(lambda: "sendMessage" in standin.calls)
        took: list[float] = []
        for n in range(5):  # each its own getUpdates batch, one after the other
            started = loop.time()
            update = standin.send_text(relative, f"check-in {n}")

            await standin.wait_confirmed([update["update_id"]], within=90)
            took.append(loop.time() - started)
        # Meanwhile the stranger's chat still waits: nothing was sent there after the 429.
        assert not any(m.chat_id == STRANGER for m in standin.sent)
    assert max(took) < WITHIN, took


async def test_a_flooded_chats_receipts_collapse_into_the_newest_ones(
    standin: TelegramStandIn, installation: Installation
) -> None:
    """While Telegram holds a chat back, the messages sent meanwhile are stored and deleted
    as always, and when the wait is over the chat gets one receipt, the newest message's,
    and its follow-up: not a row of receipts (and not a 429 again)."""
    relative = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        standin.fail_next("sendMessage", status=429, retry_after=RETRY_AFTER)
        first = standin.send_text(relative, "message 0")
        await eventually(lambda: "sendMessage" in standin.calls)  # the receipt was refused
        later = [standin.send_text(relative, f"message {n}") for n in (1, 2)]
        sent = {u["update_id"] for u in [first, *later]}
        await eventually(lambda: sent <= standin.confirmed_update_ids())
        assert not any(m.chat_id == RELATIVE for m in standin.sent)  # still held back
        await eventually(
            lambda: any(m.reply_markup for m in standin.sent if m.chat_id == RELATIVE),
            within=RETRY_AFTER + 30,
        )
        # Everything that was to go has gone: the relative's messages are deleted.
        await eventually(lambda: standin.messages_in(RELATIVE) == [], within=30)
    stored = await installation.stored()
    assert [s["body"]["text"] for s in stored] == ["message 0", "message 1", "message 2"]
    newest = stored[-1]["row"].id.hex[:6].upper()
    said = [m.text for m in standin.sent if m.chat_id == RELATIVE]
    assert said == [f"Received, thank you. Ref {newest}", "Did this come from them?"]
