"""The stand-in's JSON against the Bot API as data: every update it builds is a valid
``Update``, every method's result has the documented return type, and python-telegram-bot
parses all of it."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from telegram import Bot, Update

from bot.standin import (
    TelegramStandIn,
    channel_chat,
    group_chat,
    origin_channel,
    origin_chat,
    origin_hidden_user,
    origin_user,
)
from bot.standin._api_methods import BOT_API_METHODS
from bot.standin._params import METHOD_PARAMS, Kind

from .apispec import ApiSpec

SENT_AT = datetime(2026, 8, 12, 6, 30, tzinfo=UTC)
KEYBOARD = {"inline_keyboard": [[{"text": "PINE-7", "callback_data": "g:1"}]]}


# ------------------------------------------------------------------------- the validator


def test_the_validator_catches_what_it_should(api_spec: ApiSpec) -> None:
    user = {"id": 1, "is_bot": False, "first_name": "A"}
    assert api_spec.errors(user, "User") == []
    assert api_spec.errors({"id": 1, "is_bot": False}, "User")  # first_name missing
    assert api_spec.errors({**user, "nickname": "x"}, "User")  # unknown field
    assert api_spec.errors({**user, "id": "1"}, "User")  # wrong type
    assert api_spec.errors({**user, "is_bot": 1}, "User")  # 1 is not a Boolean
    assert api_spec.errors([user, {"id": 2}], "Array of User")
    hidden = {"type": "hidden_user", "date": 1, "sender_user_name": "N"}
    assert api_spec.errors(hidden, "MessageOrigin") == []
    assert api_spec.errors({**hidden, "type": "user"}, "MessageOrigin")  # constant broken
    assert api_spec.errors({**hidden, "type": "ghost"}, "MessageOriginHiddenUser")
    chat = {"id": 1, "type": "private"}
    assert (
        api_spec.errors({"chat": chat, "message_id": 1, "date": 0}, "MaybeInaccessibleMessage")
        == []
    )
    assert api_spec.errors({"chat": chat, "message_id": 1, "date": 5}, "InaccessibleMessage")
    assert api_spec.errors({"chat": chat, "message_id": 1, "date": 0}, "Message")
    assert api_spec.errors({"status": "member", "user": user}, "ChatMember") == []
    assert api_spec.errors({"status": "kicked", "user": user}, "ChatMember")  # until_date
    assert api_spec.errors_any("@chan", ["Integer", "String"]) == []
    assert api_spec.errors(1.5, "Float") == []
    assert api_spec.errors(True, "Float")


def test_the_stand_in_knows_every_method_name_of_the_api(api_spec: ApiSpec) -> None:
    assert set(api_spec.methods) == BOT_API_METHODS
    assert set(METHOD_PARAMS) <= set(api_spec.methods)


_KIND_TYPES = {
    Kind.INT: [["Integer"]],
    Kind.STR: [["String"], ["InputFile", "String"]],
    Kind.BOOL: [["Boolean"]],
    Kind.CHAT: [["Integer", "String"]],
    Kind.FILE: [["InputFile", "String"]],
}
_DEPRECATED_PARAMS = {
    "reply_to_message_id",
    "allow_sending_without_reply",
    "disable_web_page_preview",
}


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_parameters_are_read_with_their_documented_types(api_spec: ApiSpec, method: str) -> None:
    documented = {f["name"]: f["types"] for f in api_spec.methods[method].get("fields", [])}
    for name, kind in METHOD_PARAMS[method].items():
        if name in _DEPRECATED_PARAMS:
            continue
        assert name in documented, f"{method}.{name} is not a documented parameter"
        types = documented[name]
        if kind is Kind.JSON:
            assert all(t not in ("Integer", "String", "Boolean", "Float") for t in types)
        else:
            assert types in _KIND_TYPES[kind], f"{method}.{name}: {types} read as {kind}"


# ---------------------------------------------------------------------------- updates


def _make_every_update(standin: TelegramStandIn) -> list[dict[str, Any]]:
    alice = standin.user(1001, "Alice", username="alice_k")
    bob = standin.user(1002, "Bob", language_code=None)
    channel = channel_chat(-1001987654321, "Free news", "freenews")
    group = group_chat(-4002, "Family")
    made: list[dict[str, Any]] = []
    add = made.append
    add(standin.send_text(alice, "/start CODE42"))
    add(standin.send_text(alice, "PINE-7 @somebody #ok https://example.org/x 😀 a.b@ex.org"))
    add(standin.send_text(alice, "bold", entities=[{"type": "bold", "offset": 0, "length": 4}]))
    add(standin.send_forward(alice, "all fine", origin=origin_user(bob, SENT_AT)))
    add(standin.send_forward(alice, "잘 있어요", origin=origin_hidden_user("엄마", SENT_AT)))
    add(standin.send_forward(alice, "x", origin=origin_chat(group, SENT_AT, author_signature="Ad")))
    add(standin.send_forward(alice, "news", origin=origin_channel(channel, 77, SENT_AT, "Ed")))
    add(standin.send_forward(alice, "plain", origin=origin_channel(channel, 78, SENT_AT)))
    add(standin.send_photo(alice, b"\xff\xd8jpeg", caption="screenshot #sms"))
    add(standin.send_photo(alice, b"png", forward_origin=origin_hidden_user("K", SENT_AT)))
    add(standin.send_photo(alice, b"tiny", width=60, height=40))
    add(standin.send_document(alice, b"%PDF", file_name="sms.pdf", mime_type="application/pdf"))
    add(standin.send_voice(alice, b"OggS", duration=4, caption="voice"))
    add(standin.send_audio(alice, b"ID3", duration=31, title="t", performer="p"))
    add(standin.send_video(alice, b"mp4", duration=2, caption="vid", file_name="v.mp4"))
    add(standin.send_sticker(alice, b"RIFF"))
    add(standin.send_sticker(alice, b"tgs", is_animated=True, set_name="Cats", emoji=None))
    add(standin.send_sticker(alice, b"webm", is_video=True))
    add(standin.send_location(alice, 21.0278, 105.8342))
    add(standin.send_location(alice, 21, 105, horizontal_accuracy=50, live_period=900))
    add(standin.send_venue(alice, 20.0, 102.6, "Guesthouse", "Luang Namtha"))
    add(standin.send_contact(alice, "+856 20 5555 0101", "Min", user_id=1002))
    add(standin.send_contact(alice, "+82 10 0000 0000", "Lee", last_name="S", vcard="BEGIN:VCARD"))
    first = made[1]["message"]["message_id"]
    add(standin.edit_text(alice, first, "PINE-7 edited", date=datetime.now(UTC) + timedelta(1)))
    add(standin.send_text(alice, "reply", reply_to=first))
    return made


async def _bot_message(standin: TelegramStandIn, chat_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            f"{standin.base_url}{standin.token}/sendMessage",
            data={
                "chat_id": str(chat_id),
                "text": "<b>Which</b> group?",
                "parse_mode": "HTML",
                "reply_markup": json.dumps(KEYBOARD),
            },
        )
    result: dict[str, Any] = reply.json()["result"]
    return result


async def _raw_updates(standin: TelegramStandIn) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{standin.base_url}{standin.token}/getUpdates")
    body = reply.json()
    assert body["ok"] is True
    updates: list[dict[str, Any]] = body["result"]
    return updates


@pytest.fixture
async def every_update(standin: TelegramStandIn) -> list[dict[str, Any]]:
    made = _make_every_update(standin)
    alice = standin.user(1001, "Alice", username="alice_k")
    bot_msg = await _bot_message(standin, alice.id)
    made.append(standin.press_button(alice, bot_msg, "g:1"))
    made.append(standin.add_bot_to_group(alice, group_id=-4002, title="Family"))
    made.append(standin.send_text(alice, "in the group", chat_id=-4002))
    made.append(standin.add_bot_to_group(alice, group_id=-1001000000001, title="Big"))
    made.append(standin.channel_post(channel_id=-1001987654321, title="Free news", text="post"))
    standin.block(alice)
    standin.unblock(alice)
    async with httpx.AsyncClient() as client:
        left = await client.post(
            f"{standin.base_url}{standin.token}/leaveChat", data={"chat_id": "-4002"}
        )
    assert left.json() == {"ok": True, "result": True}
    return made


async def test_every_update_the_stand_in_builds_is_a_valid_update(
    standin: TelegramStandIn, every_update: list[dict[str, Any]], api_spec: ApiSpec
) -> None:
    raw = await _raw_updates(standin)
    kinds = {next(k for k in u if k != "update_id") for u in raw}
    assert kinds == {
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
        "channel_post",
    }
    assert len(raw) == len(every_update) + 5  # 2 service messages, block, unblock, leave
    for update in raw:
        assert api_spec.errors(update, "Update") == [], update
    ids = [u["update_id"] for u in raw]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_the_returned_update_dicts_are_what_get_updates_delivers(
    standin: TelegramStandIn, every_update: list[dict[str, Any]]
) -> None:
    raw = {u["update_id"]: u for u in await _raw_updates(standin)}
    for update in every_update:
        assert raw[update["update_id"]] == update


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_python_telegram_bot_parses_every_update(
    standin: TelegramStandIn, bot: Bot, every_update: list[dict[str, Any]]
) -> None:
    parsed = [Update.de_json(copy.deepcopy(u), bot) for u in await _raw_updates(standin)]
    by_id = {u.update_id: u for u in parsed}

    def message(i: int) -> Any:
        msg = by_id[every_update[i]["update_id"]].effective_message
        assert msg is not None
        return msg

    assert message(0).text == "/start CODE42"
    assert [e.type for e in message(0).entities] == ["bot_command"]
    assert message(0).date.tzinfo is not None
    assert message(3).forward_origin.type == "user"
    assert message(3).forward_origin.sender_user.id == 1002
    assert message(3).forward_origin.date == SENT_AT
    assert message(4).forward_origin.type == "hidden_user"
    assert message(4).forward_origin.sender_user_name == "엄마"
    assert message(5).forward_origin.type == "chat"
    assert message(6).forward_origin.type == "channel"
    assert message(6).forward_origin.message_id == 77
    assert message(8).photo[-1].width == 1280
    assert message(8).caption == "screenshot #sms"
    assert message(9).forward_origin.type == "hidden_user"
    assert len(message(10).photo) == 1
    assert message(11).document.file_name == "sms.pdf"
    assert message(12).voice.duration == dt_seconds(4)
    assert message(13).audio.title == "t"
    assert message(14).video.width == 640
    assert message(15).sticker.type == "regular"
    assert message(16).sticker.is_animated
    assert message(17).sticker.is_video
    assert message(18).location.latitude == pytest.approx(21.0278)
    assert message(19).location.live_period == dt_seconds(900)
    assert message(20).venue.title == "Guesthouse"
    assert message(20).location is not None
    assert message(21).contact.user_id == 1002
    edited = by_id[every_update[23]["update_id"]]
    assert edited.edited_message is not None
    assert edited.edited_message.text == "PINE-7 edited"
    assert edited.edited_message.edit_date is not None
    assert message(24).reply_to_message.message_id == every_update[1]["message"]["message_id"]
    query = by_id[every_update[25]["update_id"]].callback_query
    assert query is not None
    assert query.data == "g:1"
    assert query.message is not None
    member = by_id[every_update[26]["update_id"]].my_chat_member
    assert member is not None
    assert member.new_chat_member.status == "member"
    assert member.new_chat_member.user.id == standin.bot_id
    assert message(27).chat.type == "group"
    supergroup = by_id[every_update[28]["update_id"]].my_chat_member
    assert supergroup is not None
    assert supergroup.chat.type == "supergroup"
    post = by_id[every_update[29]["update_id"]]
    assert post.channel_post is not None
    assert post.channel_post.sender_chat is not None
    assert post.channel_post.sender_chat.id == -1001987654321
    assert post.effective_message is not None
    statuses = [
        u.my_chat_member.new_chat_member.status for u in parsed if u.my_chat_member is not None
    ]
    assert statuses == ["member", "member", "kicked", "member", "left"]


def dt_seconds(seconds: int) -> Any:
    """PTB 22 gives durations as int or timedelta (PTB_TIMEDELTA); compare either way."""

    class _Equal:
        def __eq__(self, other: object) -> bool:
            if isinstance(other, timedelta):
                return other.total_seconds() == seconds
            return other == seconds

        def __hash__(self) -> int:
            return seconds

    return _Equal()


# ------------------------------------------------------------------------ method results


class RawClient:
    """Calls methods the way python-telegram-bot does (form-encoded, non-strings as JSON)."""

    def __init__(self, standin: TelegramStandIn, client: httpx.AsyncClient) -> None:
        self.url = f"{standin.base_url}{standin.token}"
        self.client = client

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        reply = await self.client.post(f"{self.url}/{method}", data=data)
        body: dict[str, Any] = reply.json()
        assert set(body) <= {"ok", "result", "description", "error_code", "parameters"}
        return body


async def test_every_method_result_has_the_documented_return_type(
    standin: TelegramStandIn, api_spec: ApiSpec
) -> None:
    alice = standin.user(1001)
    photo = standin.send_photo(alice, b"jpeg")["message"]["photo"][-1]["file_id"]
    standin.add_bot_to_group(alice, group_id=-4003, title="g")
    results: dict[str, list[Any]] = {}
    async with httpx.AsyncClient() as client:
        raw = RawClient(standin, client)

        async def ok(method: str, **params: Any) -> Any:
            body = await raw.call(method, **params)
            assert body["ok"] is True, (method, body)
            results.setdefault(method, []).append(body["result"])
            return body["result"]

        await ok("getMe")
        await ok("getUpdates", timeout=0, limit=100)
        sent = await ok(
            "sendMessage",
            chat_id=alice.id,
            text="*Received* [ref](https://example.org) /help",
            parse_mode="MarkdownV2",
            protect_content=True,
            reply_markup=KEYBOARD,
            reply_parameters={"message_id": 1},
            link_preview_options={"is_disabled": True},
        )
        await ok("sendMessage", chat_id=alice.id, text="plain", disable_notification=True)
        mid = sent["message_id"]
        await ok(
            "editMessageText",
            chat_id=alice.id,
            message_id=mid,
            text="edited",
            reply_markup=KEYBOARD,
        )
        await ok("editMessageReplyMarkup", chat_id=alice.id, message_id=mid)
        await ok("editMessageReplyMarkup", chat_id=alice.id, message_id=mid, reply_markup=KEYBOARD)
        query = standin.press_button(alice, standin.sent[0].message, "g:1")
        await ok("answerCallbackQuery", callback_query_id=query["callback_query"]["id"], text="ok")
        await ok("getFile", file_id=photo)
        await ok("sendPhoto", chat_id=alice.id, photo=photo, caption="a *c*", parse_mode="Markdown")
        await ok("sendChatAction", chat_id=alice.id, action="typing")
        await ok("setMyCommands", commands=[{"command": "help", "description": "Help"}])
        await ok("getMyCommands")
        await ok("deleteMyCommands", scope={"type": "chat", "chat_id": alice.id})
        await ok("setWebhook", url="http://127.0.0.1:9/hook", secret_token="abc", max_connections=1)
        await standin.wait_for(lambda: standin.webhook_deliveries > 0, within=2)
        await ok("getWebhookInfo")
        await ok("deleteWebhook", drop_pending_updates=True)
        await ok("getWebhookInfo")
        await ok("getUpdates")
        await ok("deleteMessage", chat_id=alice.id, message_id=mid)
        await ok("deleteMessages", chat_id=alice.id, message_ids=[1, 2])
        await ok("leaveChat", chat_id=-4003)
        await ok("close")
        await ok("logOut")

        errors = [
            await raw.call("deleteMessage", chat_id=alice.id, message_id=mid),
            await raw.call("sendMessage", chat_id=999, text="x"),
            await raw.call("nonsense"),
        ]
        standin.fail_next("getMe", status=429, retry_after=3)
        errors.append(await raw.call("getMe"))

    assert set(results) == set(METHOD_PARAMS)
    for method, values in results.items():
        for value in values:
            found = api_spec.errors_any(value, api_spec.methods[method]["returns"])
            assert found == [], (method, found)
    for body in errors:
        assert body["ok"] is False
        assert isinstance(body["error_code"], int)
        assert isinstance(body["description"], str)
        assert api_spec.errors(body.get("parameters", {}), "ResponseParameters") == []
    assert errors[-1]["parameters"] == {"retry_after": 3}
    assert errors[-1]["description"] == "Too Many Requests: retry after 3"
