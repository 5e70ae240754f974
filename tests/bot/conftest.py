"""The local Telegram stand-in, started for one test and checked for its own failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.standin import TelegramStandIn


@pytest.fixture
async def standin() -> AsyncIterator[TelegramStandIn]:
    server = TelegramStandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    assert server.errors == [], "the stand-in failed internally"
