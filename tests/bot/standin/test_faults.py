"""Injected faults reach python-telegram-bot as the exceptions real Telegram would cause."""

from __future__ import annotations

import datetime as dtm

import pytest
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.standin import TelegramStandIn

from .conftest import make_bot

# python-telegram-bot itself reads RetryAfter.retry_after when it builds the error
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def _retry_after_seconds(error: RetryAfter) -> float:
    value = error.retry_after  # int, or a timedelta with PTB_TIMEDELTA set
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_429_surfaces_as_retry_after_and_is_not_carried_out(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    standin.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(alice.id, "Received")
    assert _retry_after_seconds(caught.value) == 7
    assert standin.sent == []
    await bot.send_message(alice.id, "Received")  # the fault was for one call
    assert len(standin.sent) == 1


async def test_fault_count_and_wildcard(standin: TelegramStandIn, bot: Bot) -> None:
    standin.fail_next("*", status=429, retry_after=1, count=2)
    for _ in range(2):
        with pytest.raises(RetryAfter):
            await bot.get_me()
    assert (await bot.get_me()).id == standin.bot_id
    with pytest.raises(ValueError, match="does not implement"):
        standin.fail_next("sendPigeon")


@pytest.mark.parametrize("status", [500, 502])
async def test_server_errors_surface_as_network_error(
    standin: TelegramStandIn, bot: Bot, status: int
) -> None:
    standin.fail_next("getUpdates", status=status)
    with pytest.raises(NetworkError) as caught:
        await bot.get_updates()
    assert not isinstance(caught.value, TimedOut)
    assert await bot.get_updates() == ()


async def test_injected_400_uses_the_given_description(standin: TelegramStandIn, bot: Bot) -> None:
    standin.fail_next(
        "deleteMessage", status=400, description="Bad Request: message can't be deleted"
    )
    with pytest.raises(BadRequest, match=r"(?i)message can't be deleted"):
        await bot.delete_message(1001, 1)


async def test_a_blocked_user_answers_forbidden_and_the_bot_is_told(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    standin.block(alice)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(alice.id, "Received")
    [update] = await bot.get_updates()
    assert update.my_chat_member is not None
    assert update.my_chat_member.new_chat_member.status == "kicked"
    standin.send_text(alice, "/start")  # pressing Restart unblocks
    assert (await bot.send_message(alice.id, "Welcome back")).text == "Welcome back"


async def test_a_delayed_answer_is_a_timeout_but_the_message_was_sent(
    standin: TelegramStandIn,
) -> None:
    alice = standin.user(1001)
    standin.delay_next("sendMessage", 1.0)
    async with make_bot(standin, read_timeout=0.2) as impatient:
        with pytest.raises(TimedOut):
            await impatient.send_message(alice.id, "Received")
        await standin.wait_for(lambda: len(standin.sent) == 1, within=2)
        assert (await impatient.send_message(alice.id, "again")).text == "again"


async def test_go_down_and_come_back_keep_the_port_and_the_state(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    update_id = standin.send_text(alice, "queued")["update_id"]
    port = standin.port
    await standin.go_down()
    assert not standin.is_up
    with pytest.raises(NetworkError):
        await bot.get_updates()
    standin.send_text(alice, "queued while down")
    await standin.come_back()
    assert standin.port == port
    updates = await bot.get_updates()
    assert [u.update_id for u in updates][:1] == [update_id]
    assert len(updates) == 2


async def test_go_down_ends_a_waiting_long_poll(standin: TelegramStandIn, bot: Bot) -> None:
    import asyncio

    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    await standin.go_down()
    with pytest.raises(NetworkError):
        await asyncio.wait_for(poll, 2)
    await standin.come_back()
