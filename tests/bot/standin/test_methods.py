"""The Bot API methods, driven by the real python-telegram-bot client."""

from __future__ import annotations

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken

from bot.standin import TelegramStandIn

from .conftest import make_bot

KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("PINE-7", callback_data="g:1")],
        [InlineKeyboardButton("Other", callback_data="g:0")],
    ]
)


async def test_get_me_describes_the_bot(standin: TelegramStandIn, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.id == standin.bot_id
    assert me.username == "intake_test_bot"
    assert me.can_join_groups is True
    assert standin.token not in "".join(standin.calls)


async def test_send_message_round_trip_keeps_protect_content_and_keyboard(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001, "Alice")
    msg = await bot.send_message(
        alice.id, "받았습니다. 감사합니다 (ref 7Q)", protect_content=True, reply_markup=KEYBOARD
    )
    assert msg.text == "받았습니다. 감사합니다 (ref 7Q)"
    assert msg.has_protected_content is True
    assert msg.from_user is not None
    assert msg.from_user.id == standin.bot_id
    assert msg.chat.id == alice.id
    assert msg.reply_markup == KEYBOARD
    [sent] = standin.sent
    assert (sent.chat_id, sent.message_id, sent.protect_content) == (alice.id, msg.message_id, True)
    assert sent.callback_data == ["g:1", "g:0"]
    assert standin.messages_in(alice.id)[-1]["text"] == msg.text


async def test_send_message_parses_html_and_answers_400_on_bad_markup(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    msg = await bot.send_message(alice.id, "<b>PINE-7</b> &lt;ok&gt;", parse_mode=ParseMode.HTML)
    assert msg.text == "PINE-7 <ok>"
    assert [(e.type, e.offset, e.length) for e in msg.entities] == [("bold", 0, 6)]
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(alice.id, "ref 7.Q", parse_mode=ParseMode.MARKDOWN_V2)


async def test_send_message_to_an_unknown_chat_is_chat_not_found(bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "hello")


async def test_reply_parameters_attach_the_replied_message(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    mid = standin.send_text(alice, "PINE-7 ok")["message"]["message_id"]
    msg = await bot.send_message(alice.id, "Received", reply_parameters=ReplyParameters(mid))
    assert msg.reply_to_message is not None
    assert msg.reply_to_message.text == "PINE-7 ok"
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(alice.id, "x", reply_parameters=ReplyParameters(999))


async def test_edit_message_text_and_reply_markup(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    msg = await bot.send_message(alice.id, "Which group?", reply_markup=KEYBOARD)
    edited = await bot.edit_message_text("Thanks", chat_id=alice.id, message_id=msg.message_id)
    assert isinstance(edited, Message)  # a chat message's edit returns it; True is for inline ones
    assert edited.text == "Thanks"
    assert edited.edit_date is not None
    assert edited.reply_markup is None  # an edit without reply_markup removes the keyboard
    assert standin.sent[0].text == "Thanks"
    assert standin.sent[0].edit_count == 1
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Thanks", chat_id=alice.id, message_id=msg.message_id)
    again = await bot.edit_message_reply_markup(alice.id, msg.message_id, reply_markup=KEYBOARD)
    assert not isinstance(again, bool)
    assert again.reply_markup == KEYBOARD
    assert standin.sent[0].reply_markup == KEYBOARD.to_dict()
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=alice.id, message_id=999)
    user_msg = standin.send_text(alice, "mine")["message"]["message_id"]
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", chat_id=alice.id, message_id=user_msg)


async def test_answer_callback_query_once(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    await bot.send_message(alice.id, "Which group?", reply_markup=KEYBOARD)
    update = standin.press_button(alice, standin.sent[0].message, "g:1")
    query_id = update["callback_query"]["id"]
    assert await bot.answer_callback_query(query_id, text="OK") is True
    assert standin.answered_callbacks == [query_id]
    assert standin.callback_answers[query_id] == {"show_alert": False, "text": "OK"}
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(ValueError, match=r"(?i)no inline button"):
        standin.press_button(alice, standin.sent[0].message, "nope")


async def test_delete_message_and_messages(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    forwarded = standin.send_text(alice, "PINE-7 arrived")["message"]["message_id"]
    receipt = await bot.send_message(alice.id, "Received")
    others = [standin.send_text(alice, f"m{i}")["message"]["message_id"] for i in range(3)]
    assert await bot.delete_message(alice.id, forwarded) is True  # incoming, private chat
    assert await bot.delete_message(alice.id, receipt.message_id) is True
    assert standin.sent[0].deleted
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(alice.id, forwarded)
    assert await bot.delete_messages(alice.id, [*others, 9999]) is True  # missing ones skipped
    assert standin.messages_in(alice.id) == []
    assert {(alice.id, m) for m in [forwarded, receipt.message_id, *others]} == standin.deleted


async def test_messages_older_than_48_hours_cannot_be_deleted(
    standin: TelegramStandIn, bot: Bot
) -> None:
    from datetime import UTC, datetime, timedelta

    alice = standin.user(1001)
    old = standin.send_text(alice, "old", date=datetime.now(UTC) - timedelta(hours=49))
    with pytest.raises(BadRequest, match=r"(?i)can't be deleted"):
        await bot.delete_message(alice.id, old["message"]["message_id"])


async def test_get_file_and_download_give_the_bytes_back(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    data = bytes(range(256)) * 40
    update = standin.send_document(alice, data, file_name="sms.txt", mime_type="text/plain")
    file_id = update["message"]["document"]["file_id"]
    tg_file = await bot.get_file(file_id)
    assert tg_file.file_size == len(data)
    assert tg_file.file_path is not None
    assert tg_file.file_path.startswith(standin.file_base_url)
    assert bytes(await tg_file.download_as_bytearray()) == data
    assert standin.downloads == [file_id]
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("AgACAgIAAxkBAAI-nope")


async def test_get_file_refuses_files_over_20_mb(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    update = standin.send_video(alice, b"\x00" * 10, file_size=21 * 1024 * 1024)
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        await bot.get_file(update["message"]["video"]["file_id"])


async def test_commands_are_kept_per_scope(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    relative = [BotCommand("help", "Help"), BotCommand("wipe", "Delete this chat")]
    assert await bot.set_my_commands([BotCommand("start", "Start")]) is True
    assert await bot.set_my_commands(relative, scope=BotCommandScopeChat(alice.id)) is True
    await bot.set_my_commands([BotCommand("help", "도움말")], language_code="ko")
    assert standin.commands["default"] == [{"command": "start", "description": "Start"}]
    assert [c["command"] for c in standin.commands[f"chat:{alice.id}"]] == ["help", "wipe"]
    assert "default|ko" in standin.commands
    assert await bot.get_my_commands(scope=BotCommandScopeChat(alice.id)) == tuple(relative)
    assert await bot.delete_my_commands(scope=BotCommandScopeChat(alice.id)) is True
    assert await bot.get_my_commands(scope=BotCommandScopeChat(alice.id)) == ()
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "capital letters are refused")])


async def test_leave_chat_records_it_and_refuses_private_chats(
    standin: TelegramStandIn, bot: Bot
) -> None:
    alice = standin.user(1001)
    standin.add_bot_to_group(alice, group_id=-4001, title="family")
    assert await bot.leave_chat(-4001) is True
    assert standin.left_chats == {-4001}
    with pytest.raises(Forbidden, match=r"(?i)not a member"):
        await bot.send_message(-4001, "hello")
    with pytest.raises(BadRequest, match=r"(?i)private chats"):
        await bot.leave_chat(alice.id)


async def test_send_chat_action(standin: TelegramStandIn, bot: Bot) -> None:
    alice = standin.user(1001)
    assert await bot.send_chat_action(alice.id, ChatAction.TYPING) is True
    assert standin.chat_actions == [(alice.id, "typing")]


async def test_wrong_token_is_unauthorized_and_calls_never_record_it(
    standin: TelegramStandIn,
) -> None:
    stranger = Bot("7000000001:AA" + "x" * 33, base_url=standin.base_url)
    with pytest.raises(InvalidToken):
        await stranger.get_me()
    assert standin.calls == []


async def test_unknown_method_is_404_and_unimplemented_one_is_501(
    standin: TelegramStandIn, bot: Bot
) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("fooBar")
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{standin.base_url}{standin.token}/sendPoll")
    assert reply.status_code == 501
    assert reply.json()["ok"] is False


async def test_methods_are_case_insensitive_and_accept_every_encoding(
    standin: TelegramStandIn,
) -> None:
    alice = standin.user(1001)
    url = f"{standin.base_url}{standin.token}"
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    async with httpx.AsyncClient() as client:
        as_json = await client.post(
            f"{url}/SENDMESSAGE",
            json={"chat_id": alice.id, "text": "json", "reply_markup": markup},
        )
        as_query = await client.get(f"{url}/sendMessage", params={"chat_id": alice.id, "text": "q"})
        as_multipart = await client.post(
            f"{url}/sendMessage",
            data={"chat_id": str(alice.id), "text": "multi", "protect_content": "true"},
            files={"unused": ("x.bin", b"\x00")},
        )
    assert [r.status_code for r in (as_json, as_query, as_multipart)] == [200, 200, 200]
    assert as_json.json()["result"]["reply_markup"] == markup
    assert [s.text for s in standin.sent] == ["json", "q", "multi"]
    assert standin.sent[2].protect_content is True


async def test_a_second_client_sees_the_same_state(standin: TelegramStandIn) -> None:
    alice = standin.user(1001)
    async with make_bot(standin) as one, make_bot(standin) as two:
        msg = await one.send_message(alice.id, "x")
        assert await two.delete_message(alice.id, msg.message_id) is True


async def test_dates_follow_the_given_clock() -> None:
    server = TelegramStandIn(clock=lambda: 1_786_500_000.5)
    await server.start()
    try:
        alice = server.user(1001)
        assert server.send_text(alice, "x")["message"]["date"] == 1_786_500_000
        async with make_bot(server) as client:
            msg = await client.send_message(alice.id, "Received")
        assert int(msg.date.timestamp()) == 1_786_500_000
    finally:
        await server.stop()


def test_tokens_are_checked_and_fresh_ones_look_real() -> None:
    import re

    first, second = TelegramStandIn(), TelegramStandIn(bot_id=42)
    assert first.token != second.token
    assert re.fullmatch(r"7000000001:AA[A-Za-z0-9_-]{33}", first.token)
    assert second.token.startswith("42:")
    with pytest.raises(ValueError, match="token"):
        TelegramStandIn(token="not-a-token")
    with pytest.raises(ValueError, match="bot_id"):
        TelegramStandIn(token="1:" + "a" * 35, bot_id=2)
    with pytest.raises(RuntimeError, match="not started"):
        _ = first.base_url
