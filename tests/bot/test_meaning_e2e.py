"""End to end through the stand-in: which group a message lands in, what it
signals, and that a duress phrase gets exactly a check-in's reply."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.phones import MOST_NUMBERS
from bot.standin import SimUser, TelegramStandIn, origin_hidden_user, origin_user
from bot.standin.server import SentMessage
from storage.checkins import flip, signals_of
from storage.codebook import add_phrase
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.inbox import list_inbox
from storage.members import add_member
from storage.models import (
    AuditEvent,
    Group,
    IdentifierKind,
    KeyWrap,
    LinkReason,
    Role,
    RoleGrant,
    Signal,
    Status,
)
from storage.people import create_invite, get_or_create_person, redeem_invite
from storage.sealing import Keyring
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
    # Long enough to press the follow-up's buttons on a loaded machine.
    installation = await install(
        tmp_path / "server", standin=standin, database_url=database.url, question_ttl="60s"
    )
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
            for label, group in enumerate(groups, start=1):
                _, code = await create_invite(
                    session,
                    server=server,
                    role=Role.RELATIVE,
                    group=group,
                    ttl=timedelta(days=1),
                    now=now,
                    chat_label=f"{label}",
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


async def test_numbers_in_a_text_are_looked_up_off_the_event_loop_and_at_most_ten(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each number costs an Argon2id index inside the write transaction: a text full of
    numbers must not hold the event loop (everyone else's messages) for seconds (#14)."""
    indexed: list[tuple[str, bool]] = []
    original = ServerKeys.blind_index

    def recording(self: ServerKeys, kind: str, normalised: str) -> bytes:
        indexed.append((kind, threading.current_thread() is threading.main_thread()))
        return original(self, kind, normalised)

    monkeypatch.setattr(ServerKeys, "blind_index", recording)
    # The member's own number first: it still links the message.
    text = " ".join([MEMBER_PHONE, *(f"+8613800{n:06d}" for n in range(40))])
    async with running_bot(world.installation, world.standin):
        await taken_in(world, world.standin.send_text(world.of_two, text, date=SENT))
    phones = [on_loop for kind, on_loop in indexed if kind == "phone"]
    assert 1 <= len(phones) <= MOST_NUMBERS
    assert not any(on_loop for _, on_loop in indexed)
    [stored] = await world.installation.stored()
    assert stored["row"].link_reason is LinkReason.MEMBER_PHONE


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


def follow_up(world: World) -> SentMessage:
    return next(m for m in world.standin.sent if m.reply_markup)


async def press(world: World, user: SimUser, question: SentMessage, row: int) -> None:
    """Press the button of ``row`` under the question as it is now, and wait for the
    question to move on."""
    edits = question.edit_count
    data = question.callback_data[row]
    await taken_in(world, world.standin.press_button(user, question.message, data))
    await eventually(lambda: question.edit_count > edits)


async def test_a_relative_of_two_groups_chooses_by_label_after_yes(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        note = world.standin.send_text(world.of_two, "we are waiting for the bus", date=SENT)
        await taken_in(world, note)
        await eventually(lambda: any(m.reply_markup for m in world.standin.sent))
        question = follow_up(world)
        assert question.text == "Did this come from them?"
        [stored] = await world.installation.stored()
        assert stored["row"].group_id is None
        await press(world, world.of_two, question, 0)  # Yes
        assert question.text == "Which one?"
        assert question.reply_markup is not None
        buttons = [b["text"] for row in question.reply_markup["inline_keyboard"] for b in row]
        assert buttons == ["1", "2"]  # the labels of the invites, never a codename
        await press(world, world.of_two, question, 1)
        assert question.text == "Thank you."
    [stored] = await world.installation.stored()
    oak = await world.group("OAK-2")
    assert stored["row"].group_id == oak.id
    assert stored["row"].link_reason is LinkReason.CHOSEN
    assert await world.signals("OAK-2") == [Signal.CHECKIN]  # "Yes": it came from them
    assert oak.last_checkin_at == SENT
    wraps = await world.wraps_of(stored["row"].id)
    assert {(w.group_id, w.operator_id) for w in wraps} == {(oak.id, None)}  # the others' gone


async def _asked(world: World, update: dict[str, object]) -> SentMessage:
    """The follow-up the bot sends about ``update``."""
    asked = len([m for m in world.standin.sent if m.reply_markup])
    await taken_in(world, update)
    await eventually(lambda: len([m for m in world.standin.sent if m.reply_markup]) > asked)
    return [m for m in world.standin.sent if m.reply_markup][-1]


async def test_after_yes_a_relative_of_two_groups_sees_the_same_step_whatever_matched(
    world: World,
) -> None:
    """Promise 4: the step after Yes (or a confirmed flag) does not tell a phrase, a duress
    phrase or a member's number from an ordinary text; a label contradicting the phrase's
    group undoes nothing (#14)."""
    texts = (
        "we are waiting for the bus",
        "Mum, the tea is warm today",
        "Mum, the rain has stopped today",
        f"[SMS from {MEMBER_PHONE}] ok",
    )
    after_yes, after_label = [], []
    async with running_bot(world.installation, world.standin):
        for text in texts:
            question = await _asked(world, world.standin.send_text(world.of_two, text, date=SENT))
            await press(world, world.of_two, question, 0)  # Yes
            after_yes.append(
                (question.text, question.callback_data and len(question.callback_data))
            )
            await press(world, world.of_two, question, 1)  # the label of OAK-2
            after_label.append(question.text)
        # A confirmed flag on the duress phrase: the same step as well.
        question = await _asked(
            world, world.standin.send_text(world.of_two, "the rain has stopped")
        )
        await press(world, world.of_two, question, 2)  # the flag
        await press(world, world.of_two, question, 0)  # sure
        after_yes.append((question.text, question.callback_data and len(question.callback_data)))
    assert after_yes == [("Which one?", 2)] * 5
    assert after_label == ["Thank you."] * 4
    # The phrase's placement stands: the duress is PINE-7's, and OAK-2 got only the
    # ordinary text its label was chosen for.
    pine = await world.group("PINE-7")
    assert pine.status is Status.DETAINED
    assert pine.status_basis == "duress"
    assert await world.signals("OAK-2") == [Signal.CHECKIN]
    assert Signal.DURESS in await world.signals("PINE-7")


async def test_a_duress_phrase_gets_exactly_a_check_ins_reply(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        checkin = world.standin.send_text(world.of_one, "Mum, the tea is warm today", date=SENT)
        await taken_in(world, checkin)
        await eventually(lambda: len(texts_to(world.standin, RELATIVE_OF_ONE)) == 2)
        duress = world.standin.send_text(world.of_one, "Mum, the rain has stopped today", date=SENT)
        await taken_in(world, duress)
        await eventually(lambda: len(texts_to(world.standin, RELATIVE_OF_ONE)) == 4)
    first, first_question, second, second_question = texts_to(world.standin, RELATIVE_OF_ONE)
    # Byte for byte the same, apart from the six-character reference at the end.
    assert first[:-6].encode() == second[:-6].encode()
    assert len(first) == len(second)
    assert first_question == second_question == "Did this come from them?"
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
        assert question.text == "Did this come from them?"
        assert question.reply_markup is not None
        yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        press = world.standin.press_button(world.of_one, question.message, yes)
        await taken_in(world, press)
        # The same press again (a replayed callback: the button itself is gone) counts nothing.
        replay = {"callback_query": {**press["callback_query"], "id": "replayed"}}
        replay_id = world.standin.inject(replay)
        await eventually(lambda: replay_id in world.standin.confirmed_update_ids())
    assert await world.signals("PINE-7") == [Signal.CHECKIN]
    assert (await world.group("PINE-7")).last_checkin_at == SENT


async def test_a_confirmed_flag_flips_the_group_to_detained_as_reported(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        plain = world.standin.send_text(world.of_one, "no news since morning")
        await taken_in(world, plain)
        await eventually(lambda: any(m.reply_markup for m in world.standin.sent))
        question = follow_up(world)
        await press(world, world.of_one, question, 2)  # the flag
        assert question.text == "Are you sure?"
        assert (await world.group("PINE-7")).status is Status.PENDING  # one tap: nothing yet
        await press(world, world.of_one, question, 0)  # yes, sure
        assert question.text == "Thank you."
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
        ("PINE-7", {"allowed": True, "choice": "F"})
    ]


async def test_a_flag_then_no_records_nothing(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        await taken_in(world, world.standin.send_text(world.of_one, "no news since morning"))
        await eventually(lambda: any(m.reply_markup for m in world.standin.sent))
        question = follow_up(world)
        await press(world, world.of_one, question, 2)
        await press(world, world.of_one, question, 1)  # no
        assert question.text == "Thank you."
    assert await world.signals("PINE-7") == []
    assert (await world.group("PINE-7")).status is Status.PENDING


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


async def test_a_strangers_answers_are_recorded_as_nothing(world: World) -> None:
    stranger = world.standin.user(6_100_000_099, language_code="en")
    async with running_bot(world.installation, world.standin):
        # An ordinary text, pressed Yes; then another, flagged and confirmed.
        for row, then in ((0, None), (2, 0)):
            mark = len(world.standin.sent)
            await taken_in(world, world.standin.send_text(stranger, "hello", date=SENT))

            def asked(at: int = mark) -> bool:
                return any(m.reply_markup for m in world.standin.sent[at:])

            await eventually(asked)
            question = next(m for m in world.standin.sent[mark:] if m.reply_markup)
            assert question.text == "Did this come from them?"  # as a relative's
            await press(world, stranger, question, row)
            if then is not None:
                assert question.text == "Are you sure?"
                await press(world, stranger, question, then)
            assert question.text == "Thank you."
    assert await world.signals("PINE-7") == []
    assert await world.signals("OAK-2") == []
    assert (await world.group("PINE-7")).status is Status.PENDING
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
    ):
        answers = (
            await session.exec(select(AuditEvent).where(AuditEvent.action.startswith("answer")))
        ).all()
    assert answers == []  # nothing recorded, not even a refusal


async def test_start_and_a_message_in_one_batch_link_the_message(world: World) -> None:
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await get_group(session, codename="PINE-7")
        _, code = await create_invite(
            session,
            server=server,
            role=Role.RELATIVE,
            group=pine,
            ttl=timedelta(days=1),
            now=utc_now(),
        )
    newcomer = world.standin.user(6_100_000_050, language_code="en")
    # Both wait before the bot starts: its first getUpdates takes them in one batch.
    start = world.standin.send_text(newcomer, f"/start {code}")
    note = world.standin.send_text(newcomer, "we are at the station", date=SENT)
    async with running_bot(world.installation, world.standin):
        await taken_in(world, start, note)
        await eventually(
            lambda: any(t.startswith("Welcome.") for t in texts_to(world.standin, newcomer.id))
        )
    [stored] = await world.installation.stored()
    assert stored["row"].group_id == pine.id  # a relative's message, not a stranger's
    assert stored["row"].link_reason is LinkReason.SOLE_GROUP


ACTIVIST = 6_100_000_070


async def test_unconfirmed_news_about_a_silent_group_reaches_its_activists(world: World) -> None:
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await get_group(session, codename="PINE-7")
        await flip(session, group=pine, to=Status.SILENT, at=now, basis="grace", now=now)
        pine.next_transition_at = now + timedelta(days=1)  # the engine leaves it be
        session.add(pine)
        activist = await get_or_create_person(
            session, server=server, telegram_id=ACTIVIST, chat_id=ACTIVIST, now=now
        )
        session.add(RoleGrant(person_id=activist.id, role=Role.ACTIVIST, group_id=pine.id))
    world.standin.user(ACTIVIST, language_code="en")
    news = "Unconfirmed news about PINE-7 arrived; operators can read it."
    async with running_bot(world.installation, world.standin):
        # Forwarded and left unanswered: the phone is put down.
        await taken_in(world, world.standin.send_text(world.of_one, "saw them, all fine"))
        await eventually(lambda: news in texts_to(world.standin, ACTIVIST), within=30)
    # The relative's chat shows what any message gets, nothing more.
    assert texts_to(world.standin, RELATIVE_OF_ONE)[1:] == ["Did this come from them?"]
    [stored] = await world.installation.stored()
    assert stored["row"].unconfirmed is True
    assert stored["body"]["text"] not in " ".join(texts_to(world.standin, ACTIVIST))
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
    ):
        keyring = await Keyring.for_key(session, world.installation.operator_key)
        listed = await list_inbox(session, keyring, unconfirmed=True)
    assert [item.id for item in listed] == [stored["row"].id]


async def test_a_check_in_phrase_of_two_silent_groups_left_unanswered_is_news(
    world: World,
) -> None:
    """A check-in phrase shared by two of the relative's groups counts for neither until a
    label is chosen; unanswered while both are SILENT, it must not be silent (#14)."""
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await get_group(session, codename="PINE-7")
        oak = await get_group(session, codename="OAK-2")
        await add_phrase(
            session,
            server=server,
            group=oak,
            phrase="the tea is warm",
            means=Signal.CHECKIN,
            now=now,
        )
        for group in (pine, oak):
            await flip(session, group=group, to=Status.SILENT, at=now, basis="grace", now=now)
            group.next_transition_at = now + timedelta(days=1)  # the engine leaves it be
            session.add(group)
        activist = await get_or_create_person(
            session, server=server, telegram_id=ACTIVIST, chat_id=ACTIVIST, now=now
        )
        for group in (pine, oak):
            session.add(RoleGrant(person_id=activist.id, role=Role.ACTIVIST, group_id=group.id))
    world.standin.user(ACTIVIST, language_code="en")
    news = {
        f"Unconfirmed news about {codename} arrived; operators can read it."
        for codename in ("PINE-7", "OAK-2")
    }
    async with running_bot(world.installation, world.standin):
        await taken_in(world, world.standin.send_text(world.of_two, "the tea is warm"))
        await eventually(lambda: news <= set(texts_to(world.standin, ACTIVIST)), within=30)
    [stored] = await world.installation.stored()
    assert stored["row"].group_id is None
    assert stored["row"].unconfirmed is True
    assert await world.signals("PINE-7") == await world.signals("OAK-2") == []


async def test_a_duress_phrase_of_two_of_the_relatives_groups_asks_which(world: World) -> None:
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        oak = await get_group(session, codename="OAK-2")
        await add_phrase(
            session,
            server=server,
            group=oak,
            phrase="the rain has stopped",
            means=Signal.CHECKIN,  # a check-in for OAK-2, duress for PINE-7
            now=utc_now(),
        )
    async with running_bot(world.installation, world.standin):
        await taken_in(world, world.standin.send_text(world.of_two, "the rain has stopped"))
        await eventually(lambda: any(m.reply_markup for m in world.standin.sent))
        question = follow_up(world)
        assert question.text == "Did this come from them?"  # as for any text
        [stored] = await world.installation.stored()
        assert stored["row"].group_id is None  # not guessed into one of them
        assert stored["row"].signal is Signal.DURESS  # the stronger meaning is kept
        await press(world, world.of_two, question, 0)
        assert question.text == "Which one?"
        await press(world, world.of_two, question, 1)  # "2": OAK-2
    [stored] = await world.installation.stored()
    assert stored["row"].group_id == (await world.group("OAK-2")).id
    assert await world.signals("OAK-2") == [Signal.DURESS]
    assert await world.signals("PINE-7") == []
