"""Getting updates: offsets, long polling, webhooks, and python-telegram-bot's Application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from telegram import Bot, Update
from telegram.error import Conflict
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.standin import TelegramStandIn

from .conftest import make_bot


async def test_offset_confirms_updates_and_they_never_return(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    ids = [standin.send_text(alice, f"m{i}")["update_id"] for i in range(3)]
    first = await bot.get_updates()
    assert [u.update_id for u in first] == ids
    assert standin.confirmed_update_ids() == set()  # returned is not confirmed
    assert [u.update_id for u in await bot.get_updates()] == ids
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    assert standin.confirmed_update_ids() == {ids[0]}
    assert await bot.get_updates(offset=ids[-1] + 1) == ()
    assert standin.confirmed_update_ids() == set(ids)
    later = standin.send_text(alice, "later")["update_id"]
    assert [u.update_id for u in await bot.get_updates(offset=ids[-1] + 1)] == [later]
    assert later > ids[-1]


async def test_limit_and_negative_offset(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    ids = [standin.send_text(alice, f"m{i}")["update_id"] for i in range(5)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=-2)] == ids[3:]
    assert standin.confirmed_update_ids() == set(ids[:3])  # "all previous updates are forgotten"


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=2))
    await asyncio.sleep(0.2)
    assert not poll.done()
    update_id = standin.send_text(alice, "now")["update_id"]
    updates = await asyncio.wait_for(poll, 1.5)
    assert [u.update_id for u in updates] == [update_id]
    assert time.monotonic() - started < 1.0


async def test_long_poll_without_updates_waits_for_the_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 2.0


async def test_a_second_long_poll_ends_the_first_with_conflict(
    standin: TelegramStandIn, bot: Bot
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=3))
    await asyncio.sleep(0.1)
    async with make_bot(standin) as other:
        second = asyncio.create_task(other.get_updates(timeout=3))
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
            await asyncio.wait_for(first, 2)
        standin.send_text(standin.user(5), "x")
        assert len(await asyncio.wait_for(second, 2)) == 1


async def test_inject_assigns_ids_and_keeps_given_ones(standin: TelegramStandIn) -> None:
    alice = standin.user(1001)
    message = standin.send_text(alice, "x")["message"]
    assert standin.inject({"update_id": 900_000_000, "message": message}) == 900_000_000
    assert standin.inject({"message": message}) == 900_000_001


async def test_allowed_updates_filter_new_updates(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    await bot.get_updates(allowed_updates=["message"])
    standin.send_text(alice, "kept")
    standin.channel_post(channel_id=-1001234567890, title="news", text="dropped")
    assert [u.message.text for u in await bot.get_updates() if u.message] == ["kept"]
    assert len(standin.pending_updates) == 1


# ---------------------------------------------------------------------------------- webhook


@dataclass
class Receiver:
    """A small webhook endpoint that fails the first ``failures`` requests."""

    failures: int = 0
    bodies: list[dict[str, object]] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        body = await request.json()
        status = 500 if self.failures > 0 else 200
        self.failures -= 1
        self.statuses.append(status)
        if status == 200:
            self.bodies.append(body)
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield rec
    await runner.cleanup()


async def test_webhook_delivers_in_order_with_secret_and_retries_until_200(
    standin: TelegramStandIn, bot: Bot, receiver: Receiver
) -> None:
    alice = standin.user(1001)
    queued = standin.send_text(alice, "queued while polling")["update_id"]
    receiver.failures = 2
    assert await bot.set_webhook(receiver.url, secret_token="s3cr3t-T0ken_x") is True
    ids = [queued] + [standin.send_text(alice, f"m{i}")["update_id"] for i in range(2)]
    await standin.wait_confirmed(ids, within=5)
    assert [b["update_id"] for b in receiver.bodies] == ids
    assert receiver.statuses == [500, 500, 200, 200, 200]
    assert set(receiver.secrets) == {"s3cr3t-T0ken_x"}
    info = await bot.get_webhook_info()
    assert info.url == receiver.url
    assert info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook() is True
    later = standin.send_text(alice, "after")["update_id"]
    assert [u.update_id for u in await bot.get_updates()] == [later]


async def test_webhook_retries_a_refused_connection(
    standin: TelegramStandIn, bot: Bot, receiver: Receiver
) -> None:
    alice = standin.user(1001)
    await bot.set_webhook("http://127.0.0.1:9/nothing-listens-here")
    update_id = standin.send_text(alice, "x")["update_id"]
    await standin.wait_for(lambda: standin.webhook_deliveries >= 2, within=3)
    assert update_id not in standin.confirmed_update_ids()
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message == "Connection refused"
    await bot.set_webhook(receiver.url)
    await standin.wait_confirmed([update_id], within=3)


async def test_set_webhook_drop_pending_updates_forgets_them(
    standin: TelegramStandIn, bot: Bot, receiver: Receiver
) -> None:
    alice = standin.user(1001)
    dropped = standin.send_text(alice, "x")["update_id"]
    await bot.set_webhook(receiver.url, drop_pending_updates=True)
    assert dropped in standin.confirmed_update_ids()
    assert (await bot.get_webhook_info()).pending_update_count == 0


async def test_webhooks_go_only_to_this_machine(bot: Bot) -> None:
    from telegram.error import BadRequest

    with pytest.raises(BadRequest, match=r"(?i)bad webhook"):
        await bot.set_webhook("https://example.org/hook")


# ------------------------------------------------------------------ Application, unchanged


async def test_python_telegram_bot_application_runs_unchanged(standin: TelegramStandIn) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("Received", protect_content=True)

    app = (
        Application.builder()
        .token(standin.token)
        .base_url(standin.base_url)
        .base_file_url(standin.file_base_url)
        .build()
    )
    app.add_handler(MessageHandler(filters.ALL, echo))
    alice = standin.user(1001)
    ids = [standin.send_text(alice, "queued before start")["update_id"]]
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        ids.append(standin.send_text(alice, "while running")["update_id"])
        await standin.wait_for(lambda: len(standin.sent) == 2, within=5)
        await app.updater.stop()
        await app.stop()
    assert [s.text for s in standin.sent] == ["Received", "Received"]
    assert all(s.reply_to_message_id is None and s.protect_content for s in standin.sent)
    assert set(ids) <= standin.confirmed_update_ids()
    assert standin.calls[:2] == ["getMe", "deleteWebhook"]
