"""The alert sender against the stand-in's faults: every alert is delivered or
its recipient flagged, none twice, none lost when a sender dies mid-way.

The sender runs on a clock the test moves, so retries are due when the test
says, not after real waits; Telegram's side is the real HTTP stand-in.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from telegram import Bot

from bot.acts.service import mark_detained
from bot.alerts import ANSWER_ROOM, Delivery, Limiter, Sender
from bot.engine import AlertTiming, run_pass
from bot.standin import SimUser, TelegramStandIn
from storage.alerts import CLAIM_FOR, take_due
from storage.checkins import flip
from storage.crypto import KemName, ServerKeys
from storage.db import session_factory
from storage.models import Alert, AlertPurpose, AlertState, Group, Person, Role, RoleGrant, Status
from storage.people import chat_id_of, find_person, get_or_create_person
from storage.session import AsyncSession
from tests.bot.intake_harness import eventually
from tests.conftest import Database
from tests.storage.helpers import make_group

T0 = datetime(2026, 8, 10, 8, 0, tzinfo=UTC)
ACTIVISTS = (6_500_000_001, 6_500_000_002)
ADMIN = 6_500_000_009


@dataclass
class Rig:
    standin: TelegramStandIn
    sessions: async_sessionmaker[AsyncSession]
    server: ServerKeys
    bot: Bot
    limiter: Limiter
    group: Group
    clock: list[datetime]
    users: dict[int, SimUser]

    async def deliver(self) -> Delivery:
        """One delivery, returning once its marks are committed too."""
        sender = self.sender()
        delivery = await sender.deliver_due()
        await sender.settle()
        return delivery

    def sender(self, default_language: str = "en") -> Sender:
        """A sender kept from one delivery to the next, as the running bot keeps one."""
        return Sender(
            self.sessions,
            self.bot,
            server=self.server,
            default_tz="Asia/Seoul",
            default_language=default_language,
            limiter=self.limiter,
            now=lambda: self.clock[0],
        )

    def later(self, seconds: float) -> None:
        self.clock[0] += timedelta(seconds=seconds)

    def texts_to(self, telegram_id: int) -> list[str]:
        return [m.text or "" for m in self.standin.sent if m.chat_id == telegram_id]

    async def states(self) -> list[AlertState]:
        async with self.sessions() as session:
            rows = await session.exec(select(Alert).order_by(Alert.created_at))
            return [a.state for a in rows.all()]

    async def pending(self) -> set[uuid.UUID]:
        async with self.sessions() as session:
            rows = await session.exec(select(Alert.id).where(Alert.state == AlertState.PENDING))
            return set(rows.all())

    async def flip_to(self, status: Status, basis: str) -> None:
        async with self.sessions() as session, session.begin():
            group = await session.get(Group, self.group.id)
            assert group is not None
            await flip(
                session, group=group, to=status, at=self.clock[0], basis=basis, now=self.clock[0]
            )


@pytest.fixture
async def rig(
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    standin: TelegramStandIn,
    operator: object,
) -> AsyncIterator[Rig]:
    group = await make_group(session)
    users = {}
    for telegram_id, role in (
        (ACTIVISTS[0], Role.ACTIVIST),
        (ACTIVISTS[1], Role.ACTIVIST),
        (ADMIN, Role.ADMIN),
    ):
        person = await get_or_create_person(
            session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=T0
        )
        session.add(
            RoleGrant(
                person_id=person.id,
                role=role,
                group_id=group.id if role is Role.ACTIVIST else None,
            )
        )
        users[telegram_id] = standin.user(telegram_id, language_code="en")
    await session.commit()
    async with Bot(standin.token, base_url=standin.base_url) as bot:
        yield Rig(
            standin=standin,
            sessions=session_factory(engine),
            server=server,
            bot=bot,
            limiter=Limiter(per_chat=0.0),
            group=group,
            clock=[T0],
            users=users,
        )


async def test_each_alert_is_sent_once_with_its_buttons(rig: Rig) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    assert (await rig.deliver()).sent == 2
    assert (await rig.deliver()).sent == 0  # nothing twice
    for telegram_id in ACTIVISTS:
        [text] = rig.texts_to(telegram_id)
        assert text.startswith("⚠ Alert: PINE-7 is SILENT (no check-in by the end of the grace")
    assert rig.texts_to(ADMIN) == []
    assert await rig.states() == [AlertState.SENT, AlertState.SENT]


async def test_someone_who_never_chose_a_language_is_alerted_in_the_installations(
    rig: Rig,
) -> None:
    """Enrolled before /start stored Telegram's language, and never used /language: the
    installation's [display] language, not English by default."""
    await rig.flip_to(Status.SILENT, "grace ran out")
    sender = rig.sender(default_language="ko")
    assert (await sender.deliver_due()).sent == 2
    await sender.settle()
    for telegram_id in ACTIVISTS:
        [alert] = rig.texts_to(telegram_id)
        assert "연락 두절" in alert, alert
        assert "SILENT" not in alert


async def test_a_delivery_does_not_wait_for_its_marks_nor_sends_an_unmarked_alert_again(
    rig: Rig, database: Database
) -> None:
    """The next delivery may start while the last one's marks wait for the write lock
    (the engine's passes hold it while deadlines fall); what was sent and is not yet
    marked still reads as pending, and must not go twice."""
    if database.path is None:
        pytest.skip(
            "on PostgreSQL the rows are claimed as they are taken, and a claimed row is "
            "not taken again (test_alerts_claimed_by_a_sender_that_died_are_sent_by_the_next)"
        )
    await rig.flip_to(Status.SILENT, "grace ran out")
    sender = rig.sender()
    writer = sqlite3.connect(database.path, isolation_level=None)
    try:
        # Another writer holds the write lock: no mark can be committed, readers read.
        writer.execute("BEGIN IMMEDIATE")
        assert (await sender.deliver_due()).sent == 2
        assert len(sender.in_flight) == 2  # sent, and still pending in the database
        assert (await sender.deliver_due()).claimed == 0
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    await sender.settle()
    assert sender.in_flight == set()
    assert await rig.states() == [AlertState.SENT, AlertState.SENT]
    assert [len(rig.texts_to(t)) for t in ACTIVISTS] == [1, 1]


async def test_a_chat_waiting_its_turn_holds_no_other_recipients_alert(rig: Rig) -> None:
    """Telegram takes one message a second to a chat, and a 429 can ask a chat to wait
    longer: that chat's messages wait, every other recipient's go at once, and the
    waiting chat's messages still go in the order they were written."""
    held, free = ACTIVISTS
    rig.limiter.hold(held, 3600)  # as a retry_after of an hour would
    sender = rig.sender()
    await rig.flip_to(Status.SILENT, "grace ran out")
    assert await sender.start_due() == 2
    await eventually(lambda: len(rig.texts_to(free)) == 1)
    # Its "sent" mark is written behind the send: committed, so that what is pending
    # below is read after it (read before and counted after, it was an alert too many).
    await sender.settle()
    rig.later(60)
    await rig.flip_to(Status.DETAINED, "silence")
    new = await rig.pending() - sender.in_flight
    # Not taken twice: the SILENT alert to `held` is still on its way.
    assert await sender.start_due() == len(new) > 0
    await eventually(lambda: len(rig.texts_to(free)) == 2)
    assert rig.texts_to(held) == []
    # Stopped (the bot stops): what waited is not in flight, and still pending.
    await sender.close()
    assert sender.in_flight == set()
    waited = await rig.pending()
    assert len(waited) == 2
    # The next start sends them, in order (on PostgreSQL once the claims are let go:
    # a real stop releases its run's at once, storage.runs).
    rig.limiter = Limiter(per_chat=0.0)
    rig.later(CLAIM_FOR.total_seconds() + 1)
    assert (await rig.deliver()).sent == 2
    assert [t.split(" is ")[1].split(" ")[0] for t in rig.texts_to(held)] == [
        "SILENT",
        "DETAINED",
    ]
    assert await rig.pending() == set()


async def test_http_429_waits_its_retry_after_then_delivers_once(rig: Rig) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    rig.standin.fail_next("sendMessage", status=429, retry_after=7)
    first = await rig.deliver()
    assert (first.sent, first.retried) == (1, 1)
    rig.later(6)
    assert (await rig.deliver()).sent == 0  # retry_after is honoured
    rig.later(2)
    rig.limiter = Limiter(per_chat=0.0)  # the real limiter would also hold that chat 7 s
    assert (await rig.deliver()).sent == 1
    assert sorted(len(rig.texts_to(t)) for t in ACTIVISTS) == [1, 1]


@pytest.mark.parametrize("status", [500, 502])
async def test_server_errors_back_off_and_deliver_once(rig: Rig, status: int) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    rig.standin.fail_next("sendMessage", status=status, retry_after=None, count=2)
    assert (await rig.deliver()).retried == 2
    rig.later(1)
    assert (await rig.deliver()).sent == 0  # backing off
    rig.later(5)
    assert (await rig.deliver()).sent == 2
    assert [len(rig.texts_to(t)) for t in ACTIVISTS] == [1, 1]


async def test_a_slow_answer_is_waited_for_not_sent_twice(rig: Rig) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    rig.standin.delay_next("sendMessage", seconds=6)  # longer than the library's 5 s default
    assert (await rig.deliver()).sent == 2
    rig.later(120)
    assert (await rig.deliver()).sent == 0
    assert [len(rig.texts_to(t)) for t in ACTIVISTS] == [1, 1]


async def test_telegram_out_of_reach_delays_alerts_without_losing_them(rig: Rig) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    await rig.standin.go_down()
    assert (await rig.deliver()).retried == 2
    await rig.standin.come_back()
    rig.later(10)
    assert (await rig.deliver()).sent == 2
    assert [len(rig.texts_to(t)) for t in ACTIVISTS] == [1, 1]


async def test_a_recipient_who_blocked_the_bot_is_flagged_and_the_admins_are_told(rig: Rig) -> None:
    rig.standin.block(rig.users[ACTIVISTS[0]])
    await rig.flip_to(Status.SILENT, "grace ran out")
    first = await rig.deliver()
    assert (first.sent, first.unreachable) == (1, 1)
    async with rig.sessions() as session:
        person = (
            await session.exec(select(Person).where(Person.unreachable_at.is_not(None)))
        ).one()
        assert person.unreachable_at == T0
    assert (await rig.deliver()).sent == 1  # the notice to the admin
    [notice] = rig.texts_to(ADMIN)
    assert "could not reach P-" in notice
    assert "PINE-7" in notice
    assert str(ACTIVISTS[0]) not in notice
    assert (await rig.deliver()).sent == 0
    assert sorted(await rig.states()) == sorted(
        [AlertState.UNREACHABLE, AlertState.SENT, AlertState.SENT]
    )


async def test_a_recipient_whose_chat_is_not_kept_is_flagged_not_left_pending(rig: Rig) -> None:
    # Their chat id erased while they still get alerts (storage.people keeps it only
    # with a watching role; an older version or a hand-edited row can still leave it so).
    async with rig.sessions() as session, session.begin():
        for person in (await session.exec(select(Person))).all():
            if chat_id_of(rig.server, person) == ACTIVISTS[0]:
                person.chat_sealed = b""
                session.add(person)
    await rig.flip_to(Status.SILENT, "grace ran out")
    sender = rig.sender()
    first = await sender.deliver_due()
    await sender.settle()
    assert (first.sent, first.unreachable) == (1, 1)
    assert sender.in_flight == set()  # nothing held for good
    assert (await sender.deliver_due()).sent == 1  # the admins hear of it
    await sender.settle()
    assert any("could not reach P-" in t for t in rig.texts_to(ADMIN))
    assert (await sender.deliver_due()).claimed == 0
    assert sorted(await rig.states()) == sorted(
        [AlertState.UNREACHABLE, AlertState.SENT, AlertState.SENT]
    )


async def test_a_recipient_still_unreachable_is_reported_to_the_admins_once(rig: Rig) -> None:
    rig.standin.block(rig.users[ACTIVISTS[0]])
    await rig.flip_to(Status.SILENT, "grace ran out")
    await rig.deliver()
    await rig.deliver()  # the notice to the admin
    # Round after round of reminders fails again for them: nothing new for the admins.
    for status, basis in ((Status.DETAINED, "silence"), (Status.SILENT, "grace ran out")):
        await rig.flip_to(status, basis)
        rig.later(60)
        await rig.deliver()
        await rig.deliver()
    [notice] = [t for t in rig.texts_to(ADMIN) if "could not reach" in t]
    assert "P-" in notice


async def test_alerts_claimed_by_a_sender_that_died_are_sent_by_the_next(rig: Rig) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    async with rig.sessions() as session, session.begin():
        claimed = await take_due(session, now=rig.clock[0], limit=10, claim=True)
    assert len(claimed) == 2  # ...and the process dies before sending them
    assert (await rig.deliver()).sent == 0  # still held by the dead sender's claim
    rig.later(CLAIM_FOR.total_seconds() + 1)
    assert (await rig.deliver()).sent == 2
    assert [len(rig.texts_to(t)) for t in ACTIVISTS] == [1, 1]


@pytest.mark.parametrize("claim", [False, True])
async def test_alerts_on_their_way_are_left_by_one_statement_whatever_their_number(
    rig: Rig, session: AsyncSession, engine: AsyncEngine, claim: bool
) -> None:
    """The ids on their way are one bound value: a statement per count was prepared
    and cached anew by the driver, and with a thousand on their way the bot grew."""
    await alerted_groups(rig, session, 6)
    async with rig.sessions() as s:
        ids = sorted((await s.exec(select(Alert.id))).all())
    assert len(ids) == 12
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if "next_attempt_at <=" in statement:  # the due rows' choice
            statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        for n in (0, 1, 5, len(ids) - 1):
            async with rig.sessions() as s:
                taken = await take_due(s, now=rig.clock[0], limit=100, claim=claim, besides=ids[:n])
                took = sorted(t.alert.id for t in taken)
                await s.rollback()  # a claim is not kept: the next take sees them all
            assert took == ids[n:]
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert len(statements) == 4
    assert len(set(statements)) == 1


async def test_more_than_three_alerts_for_one_chat_go_as_one_digest(
    rig: Rig, session: AsyncSession
) -> None:
    others = [await make_group(session, codename=f"OAK-{n}") for n in range(4)]
    async with rig.sessions() as s, s.begin():
        for group in others:
            mine = await s.get(Group, group.id)
            assert mine is not None
            await flip(s, group=mine, to=Status.DETAINED, at=T0, basis="silence", now=T0)
    result = await rig.deliver()
    assert result.sent == 4 * 3
    [digest] = rig.texts_to(ADMIN)
    assert digest.startswith("4 alerts:")
    assert all(f"OAK-{n} is DETAINED" in digest for n in range(4))
    [message] = [m for m in rig.standin.sent if m.chat_id == ADMIN]
    assert message.callback_data == ["al:ackall"]


async def test_the_all_clear_goes_to_everyone_alerted_and_asks_nothing(rig: Rig) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    await rig.deliver()
    rig.later(60)
    await rig.flip_to(Status.OK, "checked in")
    assert (await rig.deliver()).sent == 2
    for telegram_id in ACTIVISTS:
        # Never OK before this: an all-clear, not "again".
        assert rig.texts_to(telegram_id)[-1].startswith("✓ PINE-7 is OK (checked in)")
    clears = [m for m in rig.standin.sent if (m.text or "").startswith("✓")]
    assert all(m.reply_markup is None for m in clears)
    async with rig.sessions() as s:
        purposes = (await s.exec(select(Alert.purpose))).all()
    assert sorted(purposes).count(AlertPurpose.ALL_CLEAR) == 2


async def alerted_groups(rig: Rig, session: AsyncSession, count: int) -> list[str]:
    """``count`` more groups of the rig's two activists, each flipped to SILENT:
    each activist has ``count`` alerts waiting, written group by group, so that the
    two activists' rows interleave in the outbox."""
    codenames = []
    people = (
        await session.exec(select(RoleGrant.person_id).where(RoleGrant.group_id == rig.group.id))
    ).all()
    for n in range(count):
        group = await make_group(session, codename=f"BURST-{n:02d}", kem=KemName.X25519)
        session.add_all(
            RoleGrant(person_id=p, role=Role.ACTIVIST, group_id=group.id) for p in people
        )
        await session.commit()
        async with rig.sessions() as writer, writer.begin():
            mine = await writer.get(Group, group.id)
            assert mine is not None
            await flip(writer, group=mine, to=Status.SILENT, at=T0, basis="grace ran out", now=T0)
        codenames.append(group.codename)
    return codenames


async def test_an_activist_with_many_alerts_gets_one_digest_whatever_the_row_order(
    rig: Rig, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    codenames = await alerted_groups(rig, session, 6)
    # One recipient per take: taken by row, the first take would have held one alert
    # of one activist, and every alert would have gone alone.
    monkeypatch.setattr("bot.alerts.CLAIM_BATCH", 1)
    assert (await rig.deliver()).sent == 6
    assert (await rig.deliver()).sent == 6
    for telegram_id in ACTIVISTS:
        [digest] = rig.texts_to(telegram_id)
        assert digest.startswith("6 alerts:")
        assert all(codename in digest for codename in codenames)


async def test_a_digest_too_long_for_one_message_is_split_and_loses_nothing(
    rig: Rig, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    codenames = await alerted_groups(rig, session, 20)
    # Telegram's limit is 4096; a smaller one here splits twenty alerts.
    monkeypatch.setattr("bot.alerts.MESSAGE_LIMIT", 1000)
    assert (await rig.deliver()).sent == 40
    for telegram_id in ACTIVISTS:
        digests = rig.texts_to(telegram_id)
        assert len(digests) > 1
        # Each leaves room for the line it keeps once answered (bot.alerts.ANSWER_ROOM).
        assert all(len(d.encode("utf-16-le")) // 2 <= 1000 - ANSWER_ROOM for d in digests)
        told = "".join(digests)
        assert all(told.count(codename) == 1 for codename in codenames)


async def _unscheduled(rig: Rig) -> None:
    """The group left to people and alerts alone: no deadline of its own falls meanwhile."""
    async with rig.sessions() as session, session.begin():
        group = await session.get(Group, rig.group.id)
        assert group is not None
        group.next_transition_at = None
        session.add(group)


async def test_an_escalated_alert_says_no_one_acknowledged_and_for_how_long(rig: Rig) -> None:
    await rig.flip_to(Status.SILENT, "grace ran out")
    await _unscheduled(rig)
    await rig.deliver()
    assert rig.texts_to(ADMIN) == []  # a first alert goes to the group's activists
    timing = AlertTiming(repeat_every=timedelta(hours=5), escalate_after=timedelta(minutes=20))
    rig.later(21 * 60)
    await run_pass(rig.sessions, now=rig.clock[0], timing=timing)
    await rig.deliver()
    [escalated] = rig.texts_to(ADMIN)
    assert escalated.startswith("⚠ Escalated, no one acknowledged for 21 minutes: PINE-7 is SILENT")


async def test_whoever_marks_a_group_detained_is_not_reminded_of_their_own_mark(rig: Rig) -> None:
    async with rig.sessions() as session, session.begin():
        group = await session.get(Group, rig.group.id)
        assert group is not None
        author = await find_person(session, server=rig.server, telegram_id=ACTIVISTS[0])
        assert author is not None
        await mark_detained(session, group=group, author=author, now=rig.clock[0])
    await rig.deliver()
    timing = AlertTiming(repeat_every=timedelta(minutes=5), escalate_after=timedelta(hours=5))
    for _ in range(4):
        rig.later(6 * 60)
        await run_pass(rig.sessions, now=rig.clock[0], timing=timing)
        await rig.deliver()
    assert rig.texts_to(ACTIVISTS[0]) == []
    told = rig.texts_to(ACTIVISTS[1])
    assert told[0].startswith("⚠ Alert: PINE-7 is DETAINED (marked by an activist)")
    assert [t.split(",")[0] for t in told[1:]] == [
        "⚠ 1st reminder",
        "⚠ 2nd reminder",
        "⚠ 3rd reminder",
        "⚠ 4th reminder",
    ]


async def test_an_all_clear_says_again_when_the_group_was_so_before(rig: Rig) -> None:
    await rig.flip_to(Status.OK, "checked in")
    rig.later(60)
    await rig.flip_to(Status.SILENT, "grace ran out")
    await rig.deliver()
    rig.later(60)
    await rig.flip_to(Status.OK, "checked in")
    await rig.deliver()
    for telegram_id in ACTIVISTS:
        assert rig.texts_to(telegram_id)[-1].startswith("✓ PINE-7 is OK again (checked in)")
