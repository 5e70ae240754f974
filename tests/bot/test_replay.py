"""Nothing lost, nothing invented (issue #14): updates of every kind, written from the
Bot API 10.0 schema (``../shared/telegram-bot-api/api.json``) and from the shapes the
Bot API documented before 7.0, replayed into a real bot through the stand-in. Each is
either a stored message with its content (sealed), or a documented non-message (a
service message: no row, no receipt, no question); none is dropped unsealed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.received import SEALED_KINDS, SERVICE_FIELDS, UNREADABLE
from bot.standin import SimUser, TelegramStandIn
from storage.models import MessageKind, OriginKind
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

API = Path(__file__).resolve().parents[3] / "shared" / "telegram-bot-api" / "api.json"
CHAT_EVENTS = frozenset(
    {
        "new_chat_members",
        "left_chat_member",
        "new_chat_title",
        "new_chat_photo",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "pinned_message",
        "connected_website",
    }
)
# Content kinds read by bot.received._files_and_kind (fetched, or read field by field).
READ_KINDS = frozenset(
    {"text", "photo", "document", "voice", "audio", "video", "video_note", "sticker"}
    | {"location", "venue", "contact"}
)
CONTENT_WORDS = (
    "Optional. Message is",
    "Optional. Message contains",
    "Optional. The message is",
    "Optional. A giveaway with public winners",
    "Optional. Telegram Passport data",
    "Optional. For text messages, the actual",
)
RELATIVE = 6_500_000_001
SENT = datetime(2026, 8, 10, 11, 0, tzinfo=UTC)
ORIGINAL = datetime(2026, 8, 10, 6, 30, tzinfo=UTC)


def _message_fields() -> list[dict[str, Any]]:
    if not API.exists():
        pytest.skip(f"the Bot API schema is not at {API} (../shared is not checked out)")
    fields: list[dict[str, Any]] = json.loads(API.read_text())["types"]["Message"]["fields"]
    return fields


def test_every_service_kind_of_bot_api_10_is_known() -> None:
    service = {
        f["name"] for f in _message_fields() if "service message" in f["description"].lower()
    }
    assert service | CHAT_EVENTS == SERVICE_FIELDS


def test_every_content_kind_of_bot_api_10_is_read_or_sealed() -> None:
    content = {
        f["name"]
        for f in _message_fields()
        if f["description"].startswith(CONTENT_WORDS)
        and "service message" not in f["description"].lower()
    }
    assert content, "the schema's wording changed: the selection finds nothing"
    assert content <= READ_KINDS | SEALED_KINDS, content - READ_KINDS - SEALED_KINDS
    assert not SEALED_KINDS & SERVICE_FIELDS


def _service_value(name: str, user: SimUser) -> object:
    """A minimal value of a service field (some of which the library cannot parse: the
    update is then read raw, and must still make nothing)."""
    if name in ("delete_chat_photo", "group_chat_created", "supergroup_chat_created"):
        return True
    if name in ("channel_chat_created",):
        return True
    if name.startswith("migrate_"):
        return -1001234567890
    if name in ("new_chat_title", "connected_website"):
        return "example.org"
    if name == "new_chat_members":
        return [user.to_dict()]
    if name == "left_chat_member":
        return user.to_dict()
    if name == "new_chat_photo":
        return [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
    if name == "pinned_message":
        return {"message_id": 1, "date": 0, "chat": {"id": RELATIVE, "type": "private"}}
    if name == "message_auto_delete_timer_changed":
        return {"message_auto_delete_time": 86400}
    if name == "write_access_allowed":
        return {"from_request": True}
    return {}


@pytest.fixture
async def installation(tmp_path: Path, database: Database) -> AsyncIterator[Installation]:
    standin = TelegramStandIn()
    await standin.start()
    installed = await install(tmp_path / "server", standin=standin, database_url=database.url)
    installed.standin = standin  # type: ignore[attr-defined]
    yield installed
    await standin.stop()


def _sends(standin: TelegramStandIn, chat_id: int) -> int:
    return sum(1 for c in standin.chat_calls if c.chat_id == chat_id and c.method == "sendMessage")


async def test_service_messages_make_no_row_no_receipt_and_no_question(
    installation: Installation,
) -> None:
    standin: TelegramStandIn = installation.standin  # type: ignore[attr-defined]
    user = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        ids = {
            standin.send_fields(user, {name: _service_value(name, user)})["update_id"]
            for name in sorted(SERVICE_FIELDS)
        }
        await eventually(lambda: ids <= standin.confirmed_update_ids(), within=60)
        # And an ordinary message after them, to know the replies have had their time.
        last = standin.send_text(user, "after the service messages")
        await eventually(lambda: _sends(standin, RELATIVE) >= 2, within=30)
    stored = await installation.stored()
    assert [s["body"]["text"] for s in stored] == ["after the service messages"]
    assert _sends(standin, RELATIVE) == 2  # its receipt and follow-up, nothing else
    assert last["update_id"] in standin.confirmed_update_ids()


CONTENT: dict[str, dict[str, Any]] = {
    "poll": {
        "poll": {
            "id": "5",
            "question": "TOKEN-poll: are you safe?",
            "options": [{"persistent_id": "a", "text": "TOKEN-option", "voter_count": 0}],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
        }
    },
    "dice": {"dice": {"emoji": "🎲", "value": 4}},
    "story": {"story": {"chat": {"id": 1, "type": "channel", "title": "TOKEN-story"}, "id": 9}},
    "checklist": {"checklist": {"title": "TOKEN-checklist", "tasks": [{"id": 1, "text": "go"}]}},
    "game": {"game": {"title": "TOKEN-game", "description": "g", "photo": []}},
    "paid_media": {"paid_media": {"star_count": 1, "paid_media": [{"type": "TOKEN-paid_media"}]}},
    "giveaway": {
        "giveaway": {
            "chats": [{"id": 1, "type": "channel", "title": "TOKEN-giveaway"}],
            "winners_selection_date": 1,
            "winner_count": 1,
        }
    },
    # A field no Bot API has yet: sealed as it came.
    "future": {"text": "hello", "future_kind": {"note": "TOKEN-future"}},
    # A shape the library refuses (a live photo without its file): read raw.
    "unreadable": {"caption": "TOKEN-unreadable", "live_photo": {"x": 1}},
}


async def test_every_content_kind_keeps_its_content_sealed(installation: Installation) -> None:
    standin: TelegramStandIn = installation.standin  # type: ignore[attr-defined]
    users = {name: standin.user(RELATIVE + n, language_code="en") for n, name in enumerate(CONTENT)}
    async with running_bot(installation, standin):
        ids = {
            standin.send_fields(users[name], fields)["update_id"]
            for name, fields in CONTENT.items()
        }
        await eventually(lambda: ids <= standin.confirmed_update_ids(), within=60)
        # Each is receipted, and gets the follow-up, as any message.
        await eventually(lambda: all(_sends(standin, u.id) >= 2 for u in users.values()), within=30)
    stored = {s["row"].update_id: s for s in await installation.stored()}
    assert set(stored) == ids
    by_user: dict[int, dict[str, Any]] = {}
    for entry in stored.values():
        sealed = json.dumps(entry["body"], ensure_ascii=False)
        for name in CONTENT:
            if f"TOKEN-{name}" in sealed:
                by_user[users[name].id] = entry
    tokened = {n for n in CONTENT if n != "dice"}
    assert {users[n].id for n in tokened} <= set(by_user), "a content kind lost its content"
    [dice] = [s for s in stored.values() if '"dice"' in json.dumps(s["body"])]
    assert "4" in json.dumps(dice["body"])
    unreadable = by_user[users["unreadable"].id]
    assert UNREADABLE in unreadable["body"]["content"]  # marked for operators
    assert unreadable["row"].kind is MessageKind.OTHER


async def test_old_format_forwards_keep_their_origin_and_original_date(
    installation: Installation,
) -> None:
    standin: TelegramStandIn = installation.standin  # type: ignore[attr-defined]
    user = standin.user(RELATIVE, language_code="en")
    when = int(ORIGINAL.timestamp())
    kim = {"id": 7_200_000_001, "is_bot": False, "first_name": "Kim"}
    async with running_bot(installation, standin):
        ids = {
            standin.send_fields(
                user, {"text": "도착했어요", "forward_from": kim, "forward_date": when}, date=SENT
            )["update_id"],
            standin.send_fields(
                user,
                {"text": "all fine", "forward_sender_name": "Mi-rae K", "forward_date": when},
                date=SENT,
            )["update_id"],
            standin.send_fields(
                user,
                {
                    "text": "news",
                    "forward_from_chat": {
                        "id": -1_001_700_000_001,
                        "type": "channel",
                        "title": "Dawn",
                    },
                    "forward_from_message_id": 77,
                    "forward_signature": "editor",
                    "forward_date": when,
                },
                date=SENT,
            )["update_id"],
        }
        await eventually(lambda: ids <= standin.confirmed_update_ids(), within=30)
    stored = await installation.stored()
    assert [(s["row"].origin_kind, s["row"].origin_at) for s in stored] == [
        (OriginKind.USER, ORIGINAL),
        (OriginKind.HIDDEN_USER, ORIGINAL),
        (OriginKind.CHANNEL, ORIGINAL),
    ]
    assert stored[0]["body"]["origin"]["name"] == "Kim"
    assert stored[1]["body"]["origin"]["name"] == "Mi-rae K"
    channel = stored[2]["body"]["origin"]
    assert (channel["chat"], channel["message_id"], channel["signature"]) == ("Dawn", 77, "editor")


async def test_an_album_gets_one_receipt_and_one_follow_up(installation: Installation) -> None:
    standin: TelegramStandIn = installation.standin  # type: ignore[attr-defined]
    user = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        parts = [
            standin.send_photo(user, bytes([n]) * 64, caption=None, media_group_id="1394")
            for n in range(3)
        ]
        ids = {p["update_id"] for p in parts}
        await eventually(lambda: ids <= standin.confirmed_update_ids(), within=30)
        later = standin.send_text(user, "and a note")
        await eventually(lambda: _sends(standin, RELATIVE) >= 4, within=30)
        await eventually(lambda: later["update_id"] in standin.confirmed_update_ids())
    assert len(await installation.stored()) == 4  # every photo is kept...
    texts = [c.params["text"] for c in standin.chat_calls if c.method == "sendMessage"]
    # ...and the album as a whole is answered once, like the note after it.
    assert [t.split(" Ref ")[0] for t in texts] == [
        "Received, thank you.",
        "Did this come from them?",
        "Received, thank you.",
        "Did this come from them?",
    ]
    assert standin.messages_in(RELATIVE) == [] or all(
        m["from"]["id"] == standin.bot_id for m in standin.messages_in(RELATIVE)
    )


def _private_message(user: SimUser, token: str, *, drop: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": 4242,
        "date": int(SENT.timestamp()),
        "chat": {"id": user.id, "type": "private", "first_name": "R"},
        "from": {"id": user.id, "is_bot": False, "first_name": "R"},
        "text": token,
    }
    del message[drop]
    return message


async def test_what_names_no_sender_is_sealed_raw_never_dropped(
    installation: Installation,
) -> None:
    """A private message without its date or number (which python-telegram-bot refuses)
    or without ``from`` (which it takes, but that names no sender), and an update of a
    kind no Bot API has yet: each is sealed as it came, for operators, with no sender;
    the private chat, where it can be read, gets the usual receipt and follow-up."""
    standin: TelegramStandIn = installation.standin  # type: ignore[attr-defined]
    users = {
        drop: standin.user(RELATIVE + n, language_code="en")
        for n, drop in enumerate(("date", "message_id", "from"))
    }
    async with running_bot(installation, standin):
        ids = {
            standin.inject({"message": _private_message(user, f"TOKEN-no-{drop}", drop=drop)})
            for drop, user in users.items()
        }
        ids.add(standin.inject({"future_update": {"note": "TOKEN-future-update"}}))
        await eventually(lambda: ids <= standin.confirmed_update_ids(), within=60)
        await eventually(lambda: all(_sends(standin, u.id) >= 2 for u in users.values()), within=30)
    stored = {s["row"].update_id: s for s in await installation.stored()}
    assert set(stored) == ids  # none dropped
    tokens = {f"TOKEN-no-{drop}" for drop in users} | {"TOKEN-future-update"}
    for entry in stored.values():
        assert entry["row"].sender_id is None
        assert entry["row"].kind is MessageKind.OTHER
        raw = json.dumps(entry["body"]["content"][UNREADABLE])  # operators open it
        tokens -= {t for t in tokens if t in raw}
    assert tokens == set(), "an update's content was not sealed"
    texts = [c.params["text"] for c in standin.chat_calls if c.method == "sendMessage"]
    # The same receipt and follow-up as any message, in each private chat.
    assert sorted(t.split(" Ref ")[0] for t in texts) == sorted(
        ["Received, thank you.", "Did this come from them?"] * len(users)
    )
