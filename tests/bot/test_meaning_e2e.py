"""End to end through the stand-in: which group a message lands in, what it
signals, and that a duress phrase gets exactly a check-in's reply."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.standin import SimUser, TelegramStandIn, origin_hidden_user, origin_user
from storage.checkins import signals_of
from storage.codebook import add_phrase
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.members import add_member
from storage.models import (
    AuditEvent,
    Group,
    IdentifierKind,
    KeyWrap,
    LinkReason,
    Role,
    Signal,
    Status,
)
from storage.people import create_invite, get_or_create_person, redeem_invite
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

RELATIVE_OF_TWO = 6_100_000_001
RELATIVE_OF_ONE = 6_100_000_002
SECOND_RELATIVE = 6_100_000_003
MEMBER_ID = 7_200_000_001
MEMBER_PHONE = "+8613800138000"
SENT = datetime(2026, 8, 10, 11, 0, tzinfo=UTC)
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)


@dataclass
class World:
    standin: TelegramStandIn
    installation: Installation
    of_two: SimUser
    of_one: SimUser

    async def group(self, codename: str) -> Group:
        async with (
            open_database(self.installation.settings.database.url) as engine,
            session_factory(engine)() as session,
        ):
            return await get_group(session, codename=codename)

    async def wraps_of(self, message_id: object) -> list[KeyWrap]:
        async with (
            open_database(self.installation.settings.database.url) as engine,
            session_factory(engine)() as session,
        ):
            return list(
                (await session.exec(select(KeyWrap).where(KeyWrap.subject_id == message_id))).all()
            )

    async def signals(self, codename: str) -> list[Signal]:
        async with (
            open_database(self.installation.settings.database.url) as engine,
            session_factory(engine)() as session,
        ):
            group = await get_group(session, codename=codename)
            return [e.signal for e in await signals_of(session, group=group)]


@pytest.fixture
async def world(tmp_path: Path, database: Database) -> AsyncIterator[World]:
    standin = TelegramStandIn()
    await standin.start()
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    server = ServerKeys(installation.settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await create_group(
            session, codename="PINE-7", schedule=SCHEDULE, kem=KemName.X25519, now=now
        )
        oak = await create_group(
            session, codename="OAK-2", schedule=SCHEDULE, kem=KemName.X25519, now=now
        )
        await add_member(
            session,
            server=server,
            group=pine,
            name="Kim",
            notes=None,
            now=now,
            identifiers=[
                (IdentifierKind.PHONE, MEMBER_PHONE),
                (IdentifierKind.TELEGRAM_ID, str(MEMBER_ID)),
                (IdentifierKind.HIDDEN_NAME, "Mi-rae K"),
            ],
        )
        await add_phrase(
            session,
            server=server,
            group=pine,
            phrase="the tea is warm",
            means=Signal.CHECKIN,
            now=now,
        )
        await add_phrase(
            session,
            server=server,
            group=pine,
            phrase="the rain has stopped",
            means=Signal.DURESS,
            now=now,
        )
        await add_phrase(
            session, server=server, group=None, phrase="我们被抓了", means=Signal.DETAINED, now=now
        )
        for telegram_id, groups in (
            (RELATIVE_OF_TWO, [pine, oak]),
            (RELATIVE_OF_ONE, [pine]),
            (SECOND_RELATIVE, [pine]),
        ):
            person = await get_or_create_person(
                session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=now
            )
            for group in groups:
                _, code = await create_invite(
                    session,
                    server=server,
                    role=Role.RELATIVE,
                    group=group,
                    ttl=timedelta(days=1),
                    now=now,
                )
                await redeem_invite(session, server=server, code=code, person=person, now=now)
    world = World(
        standin=standin,
        installation=installation,
        of_two=standin.user(RELATIVE_OF_TWO, language_code="en"),
        of_one=standin.user(RELATIVE_OF_ONE, language_code="en"),
    )
    yield world
    await standin.stop()


def texts_to(standin: TelegramStandIn, chat_id: int) -> list[str]:
    return [m.text or "" for m in standin.sent if m.chat_id == chat_id]


async def taken_in(world: World, *updates: dict[str, object]) -> None:
    ids = {u["update_id"] for u in updates}
    await eventually(lambda: ids <= world.standin.confirmed_update_ids())


async def test_a_pasted_sms_with_a_members_number_is_a_check_in_of_that_group(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        sms = world.standin.send_text(
            world.of_two, f"[SMS from {MEMBER_PHONE}] 도착했어요", date=SENT
        )
        await taken_in(world, sms)
    [stored] = await world.installation.stored()
    pine = await world.group("PINE-7")
    assert stored["row"].group_id == pine.id
    assert stored["row"].link_reason is LinkReason.MEMBER_PHONE
    assert stored["row"].signal is Signal.CHECKIN
    assert pine.last_checkin_at == SENT
    assert not any("Which group" in t for t in texts_to(world.standin, RELATIVE_OF_TWO))


async def test_a_forward_from_a_hidden_member_lands_in_their_group(world: World) -> None:
    origin_date = SENT - timedelta(hours=3)
    async with running_bot(world.installation, world.standin):
        fwd = world.standin.send_forward(
            world.of_two, "all fine", origin=origin_hidden_user("Mi-rae K", origin_date)
        )
        await taken_in(world, fwd)
    [stored] = await world.installation.stored()
    pine = await world.group("PINE-7")
    assert stored["row"].link_reason is LinkReason.MEMBER_ORIGIN
    assert stored["row"].group_id == pine.id
    assert pine.last_checkin_at == origin_date  # the traveller's time, not the forward's


async def test_a_relative_of_two_groups_is_asked_and_the_answer_links_it(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        note = world.standin.send_text(world.of_two, "we are waiting for the bus")
        await taken_in(world, note)
        await eventually(lambda: any(m.reply_markup for m in world.standin.sent))
        question = next(m for m in world.standin.sent if m.reply_markup)
        assert question.text == "Which group is this about?"
        buttons = [b["text"] for row in question.reply_markup["inline_keyboard"] for b in row]
        assert buttons == ["OAK-2", "PINE-7"]  # one button per codename, no other detail
        [stored] = await world.installation.stored()
        assert stored["row"].group_id is None
        oak_data = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        press = world.standin.press_button(world.of_two, question.message, oak_data)
        await taken_in(world, press)
        await eventually(lambda: any(m.text == "Thank you." for m in world.standin.sent))
    [stored] = await world.installation.stored()
    oak = await world.group("OAK-2")
    assert stored["row"].group_id == oak.id
    assert stored["row"].link_reason is LinkReason.CHOSEN
    wraps = await world.wraps_of(stored["row"].id)
    assert {(w.group_id, w.operator_id) for w in wraps} == {(oak.id, None)}  # the others' gone


async def test_a_duress_phrase_gets_exactly_a_check_ins_reply(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        checkin = world.standin.send_text(world.of_one, "Mum, the tea is warm today", date=SENT)
        await taken_in(world, checkin)
        await eventually(lambda: len(texts_to(world.standin, RELATIVE_OF_ONE)) == 1)
        duress = world.standin.send_text(world.of_one, "Mum, the rain has stopped today", date=SENT)
        await taken_in(world, duress)
        await eventually(lambda: len(texts_to(world.standin, RELATIVE_OF_ONE)) == 2)
    first, second = texts_to(world.standin, RELATIVE_OF_ONE)
    # Byte for byte the same, apart from the six-character reference at the end.
    assert first[:-6].encode() == second[:-6].encode()
    assert len(first) == len(second)
    pine = await world.group("PINE-7")
    assert pine.status is Status.DETAINED
    assert pine.status_basis == "duress"
    assert pine.last_checkin_at == SENT  # the check-in counted; the duress phrase cleared nothing
    assert await world.signals("PINE-7") == [Signal.CHECKIN, Signal.DURESS]


async def test_the_relative_confirms_a_message_came_from_the_group(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        plain = world.standin.send_text(world.of_one, "saw them at the station", date=SENT)
        await taken_in(world, plain)
        await eventually(lambda: any(m.reply_markup for m in world.standin.sent))
        question = next(m for m in world.standin.sent if m.reply_markup)
        assert question.text == "Is this a message from the group?"
        yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        press = world.standin.press_button(world.of_one, question.message, yes)
        await taken_in(world, press)
        # The same press again (a replayed callback: the button itself is gone) counts nothing.
        replay = {"callback_query": {**press["callback_query"], "id": "replayed"}}
        replay_id = world.standin.inject(replay)
        await eventually(lambda: replay_id in world.standin.confirmed_update_ids())
    assert await world.signals("PINE-7") == [Signal.CHECKIN]
    assert (await world.group("PINE-7")).last_checkin_at == SENT


async def test_they_are_in_danger_flips_the_group_to_detained_as_reported(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        plain = world.standin.send_text(world.of_one, "no news since morning")
        await taken_in(world, plain)
        await eventually(lambda: any(m.reply_markup for m in world.standin.sent))
        question = next(m for m in world.standin.sent if m.reply_markup)
        danger = question.reply_markup["inline_keyboard"][2][0]["callback_data"]
        await taken_in(world, world.standin.press_button(world.of_one, question.message, danger))
    pine = await world.group("PINE-7")
    assert pine.status is Status.DETAINED
    assert pine.status_basis == "reported"
    # A change a person made: audited, by pseudonym, codename and the button's word.
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
    ):
        events = (
            await session.exec(select(AuditEvent).where(AuditEvent.action == "answer.confirm"))
        ).all()
    assert [(e.subject, json.loads(e.details)) for e in events] == [
        ("PINE-7", {"allowed": True, "choice": "d"})
    ]


async def test_an_organisation_wide_detention_phrase_in_chinese_is_a_report(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        await taken_in(world, world.standin.send_text(world.of_one, "妈妈，我们被抓了！在边境"))
    [stored] = await world.installation.stored()
    assert stored["row"].signal is Signal.DETAINED
    assert stored["row"].possible_detention is True
    assert (await world.group("PINE-7")).status_basis == "reported"


async def test_the_same_forward_from_two_relatives_is_one_check_in(world: World) -> None:
    second = world.standin.user(SECOND_RELATIVE, language_code="en")
    origin = origin_user(world.standin.user(MEMBER_ID, "Kim"), SENT)
    async with running_bot(world.installation, world.standin):
        a = world.standin.send_forward(world.of_one, "도착  했어요.", origin=origin)
        b = world.standin.send_forward(second, "도착했어요", origin=origin)
        await taken_in(world, a, b)
    assert len(await world.installation.stored()) == 2  # both forwards are kept...
    assert await world.signals("PINE-7") == [Signal.CHECKIN]  # ...as one check-in


async def test_operators_are_told_how_many_messages_wait_unlinked_and_nothing_else(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.handlers

    monkeypatch.setattr(bot.handlers, "UNLINKED_NOTE_DELAY", timedelta(seconds=1))
    operator_id, stranger_id = 5_400_000_001, 6_900_000_009
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        now = utc_now()
        person = await get_or_create_person(
            session, server=server, telegram_id=operator_id, chat_id=operator_id, now=now
        )
        _, code = await create_invite(
            session, server=server, role=Role.OPERATOR, group=None, ttl=timedelta(days=1), now=now
        )
        await redeem_invite(session, server=server, code=code, person=person, now=now)
    world.standin.user(operator_id, language_code="en")  # they started the bot, as people do
    stranger = world.standin.user(stranger_id, language_code="en")
    # Queued before the bot starts, so both are taken in (drained) before the note goes.
    sent = [world.standin.send_text(stranger, text) for text in ("who is this", "please help")]
    async with running_bot(world.installation, world.standin):
        await taken_in(world, *sent)
        await eventually(lambda: bool(texts_to(world.standin, operator_id)))
    assert texts_to(world.standin, operator_id) == ["2 messages wait in the unlinked queue."]


async def test_what_relatives_send_leaves_no_identifier_or_phrase_in_the_database(
    world: World, database: Database
) -> None:
    from tests.storage.scan import database_bytes, find, integer_encodings, text_encodings

    member = world.standin.user(MEMBER_ID, "Kim", username="kim_canary_user")
    async with running_bot(world.installation, world.standin):
        sent = [
            world.standin.send_text(world.of_one, f"SMS {MEMBER_PHONE}: the tea is warm"),
            world.standin.send_forward(
                world.of_two,
                "the rain has stopped @kim_canary_user",
                origin=origin_user(member, SENT),
            ),
            world.standin.send_contact(world.of_one, MEMBER_PHONE, "Kim", user_id=MEMBER_ID),
        ]
        await taken_in(world, *sent)
    files = await database_bytes(database)
    assert find([b"PINE-7"], files), "the scan must see the database"
    needles = [
        *text_encodings(MEMBER_PHONE),
        *text_encodings(MEMBER_PHONE.removeprefix("+")),
        *text_encodings("the tea is warm"),
        *text_encodings("theteaiswarm"),
        *text_encodings("the rain has stopped"),
        *text_encodings("kim_canary_user"),
        *text_encodings("Mi-rae K"),
        *integer_encodings(MEMBER_ID),
        *integer_encodings(RELATIVE_OF_ONE),
        *integer_encodings(RELATIVE_OF_TWO),
        *integer_encodings(int(MEMBER_PHONE.removeprefix("+"))),
    ]
    assert find(needles, files) == []
