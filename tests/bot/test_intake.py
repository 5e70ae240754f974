"""End to end: the real Application, run by ``bot.app.serve``, against the local
Telegram stand-in over HTTP. Every kind of message arrives, is stored sealed,
gets its neutral receipt, and is deleted from the relative's chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.standin import TelegramStandIn
from storage.models import MessageKind
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

RELATIVE = 6_100_200_300
STRANGER = 6_999_888_777


@pytest.fixture
async def standin() -> AsyncIterator[TelegramStandIn]:
    server = TelegramStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def installation(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> Installation:
    return await install(tmp_path / "server", standin=standin, database_url=database.url)


def receipts(standin: TelegramStandIn, chat_id: int) -> list[str]:
    return [
        m.text
        for m in standin.sent
        if m.chat_id == chat_id and m.text and m.text.startswith(("Received", "잘 받았습니다"))
    ]


async def test_text_is_stored_sealed_receipted_and_removed_from_the_chat(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        sent = standin.send_text(user, "We reached Kunming. All well.")
        await eventually(lambda: len(receipts(standin, RELATIVE)) == 1)
        await eventually(lambda: (RELATIVE, sent["message"]["message_id"]) in standin.deleted)
        receipt = next(m for m in standin.sent if m.chat_id == RELATIVE)
        assert receipt.protect_content is True
        # The receipt deletes itself after receipt_ttl (1 s here).
        await eventually(lambda: (RELATIVE, receipt.message_id) in standin.deleted)
    stored = await installation.stored()
    assert [s["body"]["text"] for s in stored] == ["We reached Kunming. All well."]
    row = stored[0]["row"]
    assert row.kind is MessageKind.TEXT
    assert row.deleted_in_chat_at is not None
    assert receipts(standin, RELATIVE) == [f"Received, thank you. Ref {row.id.hex[:6].upper()}"]
