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
# Generous on a loaded machine: the chat that waits does so for 60 s.
WITHIN = 6.0


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
            await eventually(
                lambda u=update: u["update_id"] in standin.confirmed_update_ids(), within=90
            )
            took.append(loop.time() - started)
        # Meanwhile the stranger's chat still waits: nothing was sent there after the 429.
        assert not any(m.chat_id == STRANGER for m in standin.sent)
    assert max(took) < WITHIN, took
