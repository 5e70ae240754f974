"""End to end: the real Application, run by ``bot.app.serve``, against the local
Telegram stand-in over HTTP. Every kind of message arrives, is stored sealed,
gets its neutral receipt, and is deleted from the relative's chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.standin import (
    SimUser,
    TelegramStandIn,
    channel_chat,
    group_chat,
    origin_channel,
    origin_chat,
    origin_hidden_user,
    origin_user,
)
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group
from storage.models import Message, MessageKind, OriginKind, Role, RoleGrant
from storage.people import create_invite
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

RELATIVE = 6_100_200_300
STRANGER = 6_999_888_777
TRAVELLER = 7_300_400_500
ORIGIN_DATE = datetime(2026, 8, 12, 3, 15, tzinfo=UTC)
RECEIPT_PREFIXES = ("Received, thank you. Ref ", "잘 받았어요. 감사해요. 접수번호 ")


@pytest.fixture
async def installation(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> Installation:
    return await install(tmp_path / "server", standin=standin, database_url=database.url)


def receipts(standin: TelegramStandIn, chat_id: int) -> list[str]:
    return [
        m.text
        for m in standin.sent
        if m.chat_id == chat_id and m.text and m.text.startswith(RECEIPT_PREFIXES)
    ]


def neutral(text: str) -> str:
    """A receipt without its reference: what every sender sees alike."""
    for prefix in RECEIPT_PREFIXES:
        if text.startswith(prefix):
            return prefix
    return text


async def send_and_wait(
    standin: TelegramStandIn, user: SimUser, *updates: dict[str, Any], deleted: bool = True
) -> None:
    """Wait until the bot confirmed the updates and, unless told it keeps them,
    deleted the messages from the relative's chat."""
    wanted = {u["update_id"] for u in updates}
    await eventually(lambda: wanted <= standin.confirmed_update_ids())
    for update in updates:
        if deleted and "message" in update:
            message_id = update["message"]["message_id"]

            def deleted_from_chat(m: int = message_id) -> bool:
                return (user.id, m) in standin.deleted

            await eventually(deleted_from_chat)


async def keeping_messages(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> Installation:
    """An installation that leaves relatives' messages in their chat."""
    return await install(
        tmp_path / "keeps",
        standin=standin,
        database_url=database.url,
        extra="delete_forwarded = false",
    )


async def test_text_is_stored_sealed_receipted_and_removed_from_the_chat(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        sent = standin.send_text(user, "We reached Kunming. All well.")
        await send_and_wait(standin, user, sent)
        await eventually(lambda: len(receipts(standin, RELATIVE)) == 1)
        receipt = next(m for m in standin.sent if m.chat_id == RELATIVE)
        assert receipt.protect_content is True
        # The receipt deletes itself after receipt_ttl (1 s here).
        await eventually(lambda: (RELATIVE, receipt.message_id) in standin.deleted)
        assert standin.messages_in(RELATIVE) == []
    stored = await installation.stored()
    assert [s["body"]["text"] for s in stored] == ["We reached Kunming. All well."]
    row = stored[0]["row"]
    assert row.kind is MessageKind.TEXT
    assert row.deleted_in_chat_at is not None
    assert row.sent_at == datetime.fromtimestamp(sent["message"]["date"], UTC)
    assert receipts(standin, RELATIVE) == [f"Received, thank you. Ref {row.id.hex[:6].upper()}"]


async def test_forwards_of_every_origin_keep_the_travellers_time(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE)
    traveller = standin.user(TRAVELLER, "Mi-rae")
    group = group_chat(-4001, "family")
    channel = channel_chat(-1002003004005, "news")
    origins = {
        OriginKind.USER: origin_user(traveller, ORIGIN_DATE),
        OriginKind.HIDDEN_USER: origin_hidden_user("Hidden Traveller", ORIGIN_DATE),
        OriginKind.CHAT: origin_chat(group, ORIGIN_DATE, author_signature="admin"),
        OriginKind.CHANNEL: origin_channel(channel, 77, ORIGIN_DATE),
    }
    async with running_bot(installation, standin):
        updates = [
            standin.send_forward(user, f"forward {kind.value}", origin=origin)
            for kind, origin in origins.items()
        ]
        await send_and_wait(standin, user, *updates)
    stored = {s["row"].origin_kind: s for s in await installation.stored()}
    assert set(stored) == set(origins)
    for kind, item in stored.items():
        assert item["row"].origin_at == ORIGIN_DATE
        assert item["body"]["text"] == f"forward {kind.value}"
        assert item["body"]["origin"]["kind"] == kind.value
    assert stored[OriginKind.USER]["body"]["origin"]["name"] == "Mi-rae"
    assert stored[OriginKind.USER]["row"].origin_index is not None  # linkable, as a blind index
    assert stored[OriginKind.HIDDEN_USER]["body"]["origin"]["name"] == "Hidden Traveller"
    assert stored[OriginKind.CHANNEL]["body"]["origin"]["chat"] == "news"


async def test_every_attachment_kind_is_downloaded_and_sealed(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE)
    blobs = {kind: f"{kind.value}-bytes".encode() * 100 for kind in MessageKind}
    async with running_bot(installation, standin):
        updates = [
            standin.send_photo(user, blobs[MessageKind.PHOTO], caption="screenshot of KakaoTalk"),
            standin.send_document(
                user, blobs[MessageKind.DOCUMENT], file_name="sms.txt", mime_type="text/plain"
            ),
            standin.send_voice(user, blobs[MessageKind.VOICE]),
            standin.send_audio(user, blobs[MessageKind.AUDIO]),
            standin.send_video(user, blobs[MessageKind.VIDEO]),
            standin.send_sticker(user, blobs[MessageKind.STICKER]),
        ]
        await send_and_wait(standin, user, *updates)
        await eventually(lambda: len(receipts(standin, RELATIVE)) == len(updates))
    stored = {s["row"].kind: s for s in await installation.stored()}
    for kind in (
        MessageKind.PHOTO,
        MessageKind.DOCUMENT,
        MessageKind.VOICE,
        MessageKind.AUDIO,
        MessageKind.VIDEO,
        MessageKind.STICKER,
    ):
        files = stored[kind]["files"]
        assert [f.content for f in files] == [blobs[kind]], kind
    assert stored[MessageKind.PHOTO]["body"]["caption"] == "screenshot of KakaoTalk"
    assert stored[MessageKind.DOCUMENT]["files"][0].meta["file_name"] == "sms.txt"


async def test_locations_venues_and_contacts_are_sealed(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE)
    async with running_bot(installation, standin):
        updates = [
            standin.send_location(user, 21.68, 102.10),
            standin.send_venue(user, 21.68, 102.10, "Boten", "border crossing"),
            standin.send_contact(user, "+8613800138000", "Mi-rae", user_id=TRAVELLER),
        ]
        await send_and_wait(standin, user, *updates)
    stored = {s["row"].kind: s["body"] for s in await installation.stored()}
    assert stored[MessageKind.LOCATION]["location"]["latitude"] == pytest.approx(21.68)
    assert stored[MessageKind.VENUE]["venue"]["title"] == "Boten"
    assert stored[MessageKind.CONTACT]["contact"]["phone_number"] == "+8613800138000"


async def test_an_edit_is_kept_as_a_new_version(
    standin: TelegramStandIn, tmp_path: Path, database: Database
) -> None:
    installation = await keeping_messages(tmp_path, database, standin)
    user = standin.user(RELATIVE)
    async with running_bot(installation, standin):
        first = standin.send_text(user, "at the station")
        await send_and_wait(standin, user, first, deleted=False)
        edit = standin.edit_text(user, first["message"]["message_id"], "at the bus station")
        await send_and_wait(standin, user, edit, deleted=False)
    versions = await installation.stored()
    assert [v["body"]["text"] for v in versions] == ["at the station", "at the bus station"]
    assert [v["row"].version for v in versions] == [1, 2]
    assert versions[1]["row"].previous_id == versions[0]["row"].id


async def test_a_file_over_the_limit_gets_a_clear_reply_and_its_details_are_kept(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE, language_code="en")
    big = b"v" * (2 * 1024 * 1024)  # the installation allows 1 MB
    async with running_bot(installation, standin):
        update = standin.send_video(user, big, file_name="border.mp4")
        await send_and_wait(standin, user, update)
        await eventually(lambda: any("too large" in (m.text or "") for m in standin.sent))
    [stored] = await installation.stored()
    [file] = stored["files"]
    assert file.content is None
    assert file.meta["file_name"] == "border.mp4"
    assert file.meta["size"] == len(big)


async def test_a_file_telegram_refuses_is_kept_as_details_and_holds_nothing_back(
    standin: TelegramStandIn, installation: Installation
) -> None:
    """A file id Telegram will not resolve (400, not "too big") would be refused on every
    try: the message is kept without its content, and the updates behind it go on."""
    user = standin.user(RELATIVE, language_code="en")
    standin.fail_next(
        "getFile", status=400, description="Bad Request: wrong file identifier/HTTP URL specified"
    )
    async with running_bot(installation, standin):
        photo = standin.send_photo(user, b"\xff\xd8screenshot", caption="at the border")
        await send_and_wait(standin, user, photo)
        await send_and_wait(standin, user, standin.send_text(user, "and after"))
    assert not any("too large" in (m.text or "") for m in standin.sent)
    first, second = await installation.stored()
    [file] = first["files"]
    assert file.content is None
    assert first["body"]["caption"] == "at the border"
    assert second["body"]["text"] == "and after"


async def test_a_stranger_gets_the_same_receipt_and_is_stored_for_operators(
    standin: TelegramStandIn, installation: Installation
) -> None:
    relative, stranger = standin.user(RELATIVE), standin.user(STRANGER)
    async with running_bot(installation, standin):
        await send_and_wait(standin, relative, standin.send_text(relative, "체크인"))
        await send_and_wait(standin, stranger, standin.send_text(stranger, "anyone there?"))
        await eventually(lambda: len(receipts(standin, STRANGER)) == 1)
    assert neutral(receipts(standin, RELATIVE)[0]) == neutral(receipts(standin, STRANGER)[0])
    assert {s["body"]["text"] for s in await installation.stored()} == {"체크인", "anyone there?"}


async def _invite(installation: Installation, role: Role) -> str:
    url = installation.settings.database.url
    server = ServerKeys(installation.settings.server_secret_bytes())
    async with (
        open_database(url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        group = await create_group(
            session,
            codename="PINE-7",
            schedule=Schedule(
                interval=timedelta(hours=12),
                grace=timedelta(hours=2),
                detained_after=timedelta(days=2),
            ),
            kem=KemName.X25519,
            now=utc_now(),
        )
        _, code = await create_invite(
            session, server=server, role=role, group=group, ttl=timedelta(days=1), now=utc_now()
        )
    return code


async def _grants(installation: Installation) -> list[RoleGrant]:
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
    ):
        return list((await session.exec(select(RoleGrant))).all())


async def test_start_with_an_invite_enrols_and_every_code_gets_the_same_reply(
    standin: TelegramStandIn, installation: Installation
) -> None:
    code = await _invite(installation, Role.RELATIVE)
    relative, other = standin.user(RELATIVE), standin.user(STRANGER)
    async with running_bot(installation, standin):
        good = standin.send_text(relative, f"/start {code}")
        await send_and_wait(standin, relative, good)
        reused = standin.send_text(other, f"/start {code}")
        wrong = standin.send_text(other, "/start not-a-code")
        await send_and_wait(standin, other, reused, wrong)
        await eventually(
            lambda: len([m for m in standin.sent if m.chat_id in (RELATIVE, STRANGER)]) >= 3
        )
        # The code was on the relative's screen: it is gone.
        assert (RELATIVE, good["message"]["message_id"]) in standin.deleted
    replies: dict[int, list[str | None]] = {m.chat_id: [] for m in standin.sent}
    for m in standin.sent:
        replies[m.chat_id].append(m.text)
    assert replies[RELATIVE] == [replies[STRANGER][0]]
    assert replies[STRANGER][0] == replies[STRANGER][1]
    [grant] = await _grants(installation)
    assert grant.role is Role.RELATIVE
    assert f"chat:{RELATIVE}" in standin.commands
    # Commands are not content: nothing was stored for operators.
    assert await installation.stored() == []


async def test_the_bot_leaves_group_chats_and_ignores_channels(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE)
    async with running_bot(installation, standin):
        joined = standin.add_bot_to_group(user, group_id=-5005, title="family")
        post = standin.channel_post(channel_id=-1009990001, title="news", text="public post")
        await eventually(
            lambda: {joined["update_id"], post["update_id"]} <= standin.confirmed_update_ids()
        )
        await eventually(lambda: -5005 in standin.left_chats)
    assert await installation.stored() == []


async def test_wipe_removes_the_conversation(
    standin: TelegramStandIn, tmp_path: Path, database: Database
) -> None:
    installation = await keeping_messages(tmp_path, database, standin)
    user = standin.user(RELATIVE)
    async with running_bot(installation, standin):
        sent = [standin.send_text(user, f"message {i}") for i in range(3)]
        await send_and_wait(standin, user, *sent, deleted=False)
        assert not any((RELATIVE, u["message"]["message_id"]) in standin.deleted for u in sent)
        wipe = standin.send_text(user, "/wipe")
        await eventually(lambda: wipe["update_id"] in standin.confirmed_update_ids())
        ids = [u["message"]["message_id"] for u in [*sent, wipe]]
        await eventually(lambda: all((RELATIVE, i) in standin.deleted for i in ids))
    assert all(s["row"].deleted_in_chat_at is not None for s in await installation.stored())


async def test_wipe_answers_only_once_its_deletions_are_done(
    standin: TelegramStandIn, installation: Installation
) -> None:
    """Telegram's flood control refuses /wipe's deletions twice, for two seconds each: /wipe
    waits it out and says "Done." only then, when the chat holds nothing else (#14)."""
    user = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        await send_and_wait(standin, user, standin.send_text(user, "hello"))
        # Its receipt and follow-up have deleted themselves: the next deletions are /wipe's.
        await eventually(lambda: standin.messages_in(RELATIVE) == [], within=30)
        standin.fail_next("deleteMessages", status=429, retry_after=2, count=2)
        standin.send_text(user, "/wipe")
        await eventually(lambda: any(m.text == "Done." for m in standin.sent), within=30)
        assert [m.get("text") for m in standin.messages_in(RELATIVE)] == ["Done."]


async def test_language_is_chosen_with_a_button_and_used_from_then_on(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE, language_code="ko")
    async with running_bot(installation, standin):
        await send_and_wait(standin, user, standin.send_text(user, "하나"))
        await eventually(lambda: len(receipts(standin, RELATIVE)) == 1)
        assert receipts(standin, RELATIVE)[0].startswith("잘 받았어요")
        standin.send_text(user, "/language")
        await eventually(lambda: any("lang:en" in m.callback_data for m in standin.sent))
        question = next(m for m in standin.sent if "lang:en" in m.callback_data)
        standin.press_button(user, question.message, "lang:en")
        await eventually(lambda: bool(standin.answered_callbacks))
        await send_and_wait(standin, user, standin.send_text(user, "two"))
        await eventually(lambda: len(receipts(standin, RELATIVE)) == 2)
    assert receipts(standin, RELATIVE)[1].startswith("Received, thank you.")


async def test_a_flood_is_capped_per_person_with_the_same_replies(
    standin: TelegramStandIn, tmp_path: Path, database: Database
) -> None:
    installation = await install(
        tmp_path / "capped",
        standin=standin,
        database_url=database.url,
        extra="rate_limit_per_hour = 3",
    )
    user = standin.user(RELATIVE)
    async with running_bot(installation, standin):
        flood = [standin.send_text(user, f"flood {i}") for i in range(6)]
        await send_and_wait(standin, user, *flood)
        await eventually(lambda: len(receipts(standin, RELATIVE)) == 6)
    assert len(await installation.stored()) == 3
    assert {neutral(r) for r in receipts(standin, RELATIVE)} == {RECEIPT_PREFIXES[1]}


async def test_an_update_taken_in_twice_is_stored_once(
    standin: TelegramStandIn, installation: Installation
) -> None:
    from telegram import Update

    from bot.app import running

    user = standin.user(RELATIVE)
    raw = standin.send_text(user, "only once")
    async with running(installation.settings) as (application, intake):
        update = Update.de_json(raw, application.bot)
        first = await intake.take_in(update, now=utc_now())
        again = await intake.take_in(update, now=utc_now())
    assert first.outcome.value == "stored"
    assert again.outcome.value == "seen"
    rows = await installation.stored()
    assert [r["body"]["text"] for r in rows] == ["only once"]
    assert isinstance(rows[0]["row"], Message)


async def test_a_failed_receipt_still_removes_the_message_from_the_chat(
    standin: TelegramStandIn, installation: Installation
) -> None:
    user = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        standin.fail_next("sendMessage", status=500)
        sent = standin.send_text(user, "the receipt of this one fails")
        await send_and_wait(standin, user, sent)
    [stored] = await installation.stored()
    assert stored["row"].deleted_in_chat_at is not None


async def test_a_deletion_refused_for_flood_control_is_tried_again(
    standin: TelegramStandIn, installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.handlers

    monkeypatch.setattr(bot.handlers, "DELETE_RETRY", timedelta(milliseconds=100))
    user = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        standin.fail_next("deleteMessages", status=429, retry_after=1)
        sent = standin.send_text(user, "delete me after the flood wait")
        await send_and_wait(standin, user, sent)  # waits until it is deleted after all
