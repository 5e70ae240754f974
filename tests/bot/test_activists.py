"""Activists' commands through the stand-in, against the real bot.

The allowed roles act (the database shows the flip, the pause, the leg; the
alert or the all-clear reaches the stand-in); everyone else (a stranger, a
relative, an operator, an activist of another group) gets what an unknown
command gets, changes nothing, and is audited.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.standin import SentMessage, SimUser, TelegramStandIn
from bot.timeline import gather
from storage.checkins import BY_HAND, record_signal
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.legs import add_leg
from storage.models import (
    Alert,
    AlertState,
    AuditEvent,
    CheckinEvent,
    Flip,
    Group,
    Role,
    RoleGrant,
    Signal,
    Status,
)
from storage.people import find_person, get_or_create_person, pseudonym
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

OWN, OTHER, ADMIN, ROVING, RELATIVE, OPERATOR, STRANGER = (6_800_000_000 + n for n in range(1, 8))
ALERTED = (OWN, OTHER, ADMIN, ROVING)  # a DETAINED flip reaches every activist and admin
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)
BORDER = timedelta(hours=1)  # the Laos border leg is checked more tightly
GROUP_COMMANDS = (
    "/group PINE-7",
    "/pause PINE-7 6h",
    "/resume PINE-7",
    "/safe PINE-7",
    "/detained PINE-7",
    "/stage PINE-7 Qingdao",
    "/timeline PINE-7",
)
REF = re.compile(r"[0-9A-F]{6}$")  # the receipt's reference, last on its line


@dataclass
class World:
    standin: TelegramStandIn
    installation: Installation
    users: dict[int, SimUser]

    @property
    def url(self) -> str:
        return self.installation.settings.database.url

    async def ask(self, who: int, text: str, *, expect: str = "") -> SentMessage:
        """``who`` writes ``text``; the bot's first message to them after it that
        contains ``expect`` (an alert may arrive beside a reply)."""
        mark = len(self.standin.sent)
        self.standin.send_text(self.users[who], text)

        def found() -> SentMessage | None:
            return next(
                (
                    m
                    for m in self.standin.sent[mark:]
                    if m.chat_id == who and expect in (m.text or "")
                ),
                None,
            )

        await eventually(lambda: found() is not None)
        reply = found()
        assert reply is not None
        return reply

    async def replies(self, who: int, text: str, count: int) -> list[str]:
        """What the bot answers ``who`` writing ``text`` (``count`` messages, the receipt's
        reference masked), once it has deleted their message from the chat."""
        mark = len(self.standin.sent)
        update = self.standin.send_text(self.users[who], text)
        sent = (who, update["message"]["message_id"])
        await eventually(lambda: sent in self.standin.deleted)
        await eventually(lambda: len(self.texts_to(who, mark)) >= count)
        answers = [m for m in self.standin.sent[mark:] if m.chat_id == who][:count]
        assert all(m.protect_content for m in answers)
        return [_shape(m.text or "") for m in answers]

    async def pine(self) -> Group:
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            return await get_group(session, codename="PINE-7")

    async def until(self, check: Callable[[Group], bool], what: str) -> Group:
        """Wait for the deadline engine's next pass (it looks four times a second)."""
        for _ in range(200):
            group = await self.pine()
            if check(group):
                return group
            await asyncio.sleep(0.05)
        raise AssertionError(f"PINE-7 never got {what}")

    async def counts(self) -> tuple[int, int]:
        """How many flips and signals PINE-7 has."""
        group = await self.pine()
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            flips = await session.exec(
                select(func.count()).select_from(Flip).where(Flip.group_id == group.id)
            )
            events = await session.exec(
                select(func.count())
                .select_from(CheckinEvent)
                .where(CheckinEvent.group_id == group.id)
            )
            return flips.one(), events.one()

    async def stage_events(self) -> list[CheckinEvent]:
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            rows = await session.exec(
                select(CheckinEvent)
                .where(CheckinEvent.signal == Signal.STAGE)
                .order_by(CheckinEvent.recorded_at)
            )
            return list(rows.all())

    async def audited(self, action: str) -> list[tuple[str, str | None, dict[str, object]]]:
        """Each use of a command, in order: who (a pseudonym), about what, and the details."""
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            rows = await session.exec(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
            return [(e.actor, e.subject, json.loads(e.details)) for e in rows.all()]

    async def alert_recorded_as_sent(self, telegram_id: int) -> None:
        server = ServerKeys(self.installation.settings.server_secret_bytes())
        for _ in range(200):
            async with open_database(self.url) as engine, session_factory(engine)() as session:
                person = await find_person(session, server=server, telegram_id=telegram_id)
                assert person is not None
                sent = await session.exec(
                    select(Alert).where(
                        Alert.recipient_id == person.id,
                        Alert.state == AlertState.SENT,
                        Alert.telegram_message_id.is_not(None),
                    )
                )
                if sent.first() is not None:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("the alert was never recorded as sent")

    async def actor(self, telegram_id: int) -> str:
        server = ServerKeys(self.installation.settings.server_secret_bytes())
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            person = await find_person(session, server=server, telegram_id=telegram_id)
            return "unknown" if person is None else pseudonym(person)

    async def everyone_told(
        self, people: tuple[int, ...], *, since: int, starts: str, status: tuple[str, ...]
    ) -> None:
        """Each of ``people`` got an alert (or all-clear) about PINE-7 being ``status``
        (its name in English or in Korean)."""

        def told(who: int) -> bool:
            return any(
                t.startswith(starts) and "PINE-7" in t and any(s in t for s in status)
                for t in self.texts_to(who, since)
            )

        for who in people:
            await eventually(partial(told, who))

    def texts_to(self, who: int, since: int = 0) -> list[str]:
        return [m.text or "" for m in self.standin.sent[since:] if m.chat_id == who]


@pytest.fixture
async def world(tmp_path: Path, database: Database, standin: TelegramStandIn) -> World:
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra='[display]\ntimezone = "Asia/Seoul"\n',
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
        await add_leg(session, server=server, group=pine, name="Qingdao", now=now)
        await add_leg(
            session,
            server=server,
            group=pine,
            name="Laos border",
            interval=BORDER,
            grace=timedelta(minutes=30),
            now=now,
        )
        for telegram_id, role, group in (
            (OWN, Role.ACTIVIST, pine),
            (OTHER, Role.ACTIVIST, oak),
            (ADMIN, Role.ADMIN, None),
            (ROVING, Role.ACTIVIST, None),  # a grant naming no group: every group
            (RELATIVE, Role.RELATIVE, pine),
            (OPERATOR, Role.OPERATOR, None),
        ):
            person = await get_or_create_person(
                session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=now
            )
            session.add(
                RoleGrant(person_id=person.id, role=role, group_id=group.id if group else None)
            )
        for group in (pine, oak):
            await record_signal(
                session, group=group, signal=Signal.CHECKIN, at=now, source="test", now=now
            )
    languages = {ROVING: "ko", STRANGER: "ko"}
    users = {
        t: standin.user(t, language_code=languages.get(t, "en"))
        for t in (OWN, OTHER, ADMIN, ROVING, RELATIVE, OPERATOR, STRANGER)
    }
    return World(standin=standin, installation=installation, users=users)


def _shape(text: str) -> str:
    return REF.sub("?", text)


def _state(group: Group) -> tuple[object, ...]:
    return (
        group.status,
        group.status_basis,
        group.status_since,
        group.paused_until,
        group.current_leg,
        group.last_checkin_at,
    )


def refused_to(who: int, refused: dict[str, tuple[int, ...]]) -> list[str]:
    return [command for command, senders in refused.items() if who in senders]


async def test_refused_senders_get_an_unknown_commands_reply_change_nothing_and_are_audited(
    world: World,
) -> None:
    refused = {
        "/status": (STRANGER, RELATIVE, OPERATOR),
        **{command: (STRANGER, RELATIVE, OPERATOR, OTHER) for command in GROUP_COMMANDS},
    }
    async with running_bot(world.installation, world.standin):
        before = await world.until(lambda g: g.status is Status.OK, "OK")
        counts = await world.counts()
        for who in (STRANGER, RELATIVE, OPERATOR):
            # Any message gets a receipt and the same question after it (#14: one follow-up
            # for everyone and everything, so nothing tells who is a relative).
            unknown = await world.replies(who, "/nonsense PINE-7", 2)
            assert unknown[0] in ("Received, thank you. Ref ?", "잘 받았어요. 감사해요. 접수번호 ?")
            for command in (c for c, senders in refused.items() if who in senders):
                assert await world.replies(who, command, 2) == unknown, (who, command)
        # An activist of another group is answered as a command (#14): a group not theirs
        # is not told apart from none at all.
        for command in refused_to(OTHER, refused):
            await world.ask(OTHER, command, expect="No group PINE-7 among yours.")
        # Nothing moved, and nobody was alerted.
        after = await world.pine()
        assert _state(after) == _state(before)
        assert await world.counts() == counts
        for watcher in (OWN, ADMIN, ROVING):
            assert world.texts_to(watcher) == []
    # A stranger's command is stored like any message, which makes them a person.
    actors = {who: await world.actor(who) for who in (STRANGER, RELATIVE, OPERATOR, OTHER)}
    assert "unknown" not in actors.values()
    for command, senders in refused.items():
        action = "command." + command.split()[0].removeprefix("/")
        subject = "PINE-7" if " " in command else None
        expected = [(actors[who], subject, {"allowed": False}) for who in senders]
        assert sorted(await world.audited(action)) == sorted(expected), command


async def test_what_a_refused_sender_typed_after_a_command_is_not_audited_in_clear(
    world: World,
) -> None:
    """The audit table is not sealed: it names a group only by a codename the organisation
    knows, never by what someone typed (which may be anything they meant to tell us)."""
    async with running_bot(world.installation, world.standin):
        await world.replies(STRANGER, "/group CANARY-HUSBAND-LI", 2)
        # An activist's command is answered as a command (#14), and stays in their chat.
        await world.ask(OWN, "/group CANARY-HUSBAND-LI", expect="among yours")
    assert sorted(await world.audited("command.group")) == sorted(
        [
            (await world.actor(STRANGER), None, {"allowed": False}),
            (await world.actor(OWN), None, {"allowed": False}),
        ]
    )


async def test_the_groups_activist_and_the_admins_act_and_the_alerts_reach_everyone(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        start = await world.until(lambda g: g.status is Status.OK, "OK")
        checked_in = start.last_checkin_at
        assert checked_in is not None

        mine = await world.ask(OWN, "/status")
        assert mine.protect_content
        assert re.fullmatch(
            r"PINE-7: OK since .+; last check-in .+ ago\. Next deadline: .+\.",
            mine.text or "",
        ), mine.text
        everything = (await world.ask(ROVING, "/status")).text or ""
        # The roving activist reads Korean: statuses and durations too.
        assert re.search(r"OAK-2: .+부터 정상, 마지막 연락 \d+초 전", everything), everything
        assert re.search(r"PINE-7: .+부터 정상", everything), everything

        # /stage to the border: a tighter leg, applied at once, and no check-in.
        staged = await world.ask(OWN, "/stage PINE-7 laos border")
        assert staged.text == "PINE-7 is on the leg Laos border."
        await world.until(
            lambda g: g.current_leg == 2 and g.next_transition_at == checked_in + BORDER,
            "the border leg's deadline",
        )
        assert (await world.pine()).last_checkin_at == checked_in
        # A person may correct it, moving the group back (a late phrase could not).
        await world.ask(OWN, "/stage PINE-7 Qingdao")
        await world.until(lambda g: g.current_leg == 1, "back on the Qingdao leg")
        assert [(e.source, e.message_id) for e in await world.stage_events()] == [
            (BY_HAND, None),
            (BY_HAND, None),
        ]
        detail = (await world.ask(OWN, "/group PINE-7")).text or ""
        assert detail.startswith("PINE-7: OK (checked in) since")
        assert "Leg: Qingdao." in detail
        assert "Next deadline:" in detail
        assert "KST" in detail  # the organisation's zone, as the activist chose none

        # /pause, then /resume: the schedule starts again from now, no check-in invented.
        paused_at = utc_now()
        assert ((await world.ask(OWN, "/pause PINE-7 6h")).text or "").startswith(
            "PINE-7 is paused until"
        )
        paused = await world.pine()
        assert (paused.status, paused.status_basis) == (Status.PAUSED, "paused")
        assert paused.paused_until is not None
        assert abs(paused.paused_until - (paused_at + timedelta(hours=6))) < timedelta(minutes=1)
        resumed_at = utc_now()
        # The activist's pause notice may reach the admin first (#13): wait for the answer.
        await world.ask(
            ADMIN, "/resume PINE-7", expect="PINE-7 follows its schedule again from now."
        )
        resumed = await world.until(lambda g: g.status is Status.OK, "resumed")
        assert resumed.last_checkin_at == checked_in
        assert resumed.paused_until is None
        assert resumed.status_basis == "resumed"  # recorded as a resume, not a check-in
        assert _near(resumed.status_since, resumed_at)
        assert resumed.schedule_from is not None
        assert _near(resumed.schedule_from, resumed_at)
        # Another person's act may still be told meanwhile (#13): wait for this answer itself.
        await world.ask(OWN, "/resume PINE-7", expect="PINE-7 is not paused: it is OK.")

        # /detained: tier 2, to every activist and admin at once.
        mark = len(world.standin.sent)
        await world.ask(ADMIN, "/detained PINE-7", expect="PINE-7 is marked DETAINED.")
        detained = await world.pine()
        assert (detained.status, detained.status_basis) == (Status.DETAINED, "marked")
        # Whoever marked it is answered by the command, not alerted about their own mark.
        others = tuple(p for p in ALERTED if p != ADMIN)
        await world.everyone_told(others, since=mark, starts="⚠", status=("DETAINED", "억류"))
        assert "not acknowledged" in ((await world.ask(OWN, "/group PINE-7")).text or "")
        alert = next(
            m for m in world.standin.sent[mark:] if m.chat_id == OWN and "⚠" in (m.text or "")
        )
        # The button answers once the bot has recorded the alert as sent (after Telegram
        # took it), so it is pressed after that, as a person would.
        await world.alert_recorded_as_sent(OWN)
        press = world.standin.press_button(world.users[OWN], alert.message, "al:ack")
        query = press["callback_query"]["id"]
        await eventually(lambda: query in world.standin.answered_callbacks)
        assert world.standin.callback_answers[query]["text"] == "Acknowledged. Reminders stop."
        acknowledged = await world.ask(OWN, "/group PINE-7")
        assert "The alert was acknowledged at" in (acknowledged.text or "")

        # /safe of a DETAINED group: one person's word changes nothing, and the
        # others hear of it at once (a seized phone cannot quietly close a case).
        mark = len(world.standin.sent)
        await world.ask(OWN, "/safe PINE-7", expect="PINE-7 stays DETAINED until a second person")
        assert (await world.pine()).status is Status.DETAINED
        await world.everyone_told(
            (OTHER, ADMIN), since=mark, starts="PINE-7: ", status=("asked to mark it SAFE",)
        )
        await world.everyone_told(
            (ROVING,), since=mark, starts="PINE-7: ", status=("/safe PINE-7",)
        )
        # The same person asking again is still one person.
        await world.ask(OWN, "/safe PINE-7", expect="You asked already")
        # A second person confirms: SAFE, and the all-clear goes to everyone who was alerted.
        mark = len(world.standin.sent)
        await world.ask(ADMIN, "/safe PINE-7", expect="PINE-7 is marked SAFE.")
        safe = await world.pine()
        assert (safe.status, safe.status_basis) == (Status.SAFE, "confirmed")
        # Whoever confirmed it (and so made the change) is answered by the command; the
        # one who asked hears that it was confirmed, and the all-clear, like everyone else.
        told = tuple(p for p in ALERTED if p != ADMIN)
        await world.everyone_told(told, since=mark, starts="✓", status=("SAFE", "안전"))
        await world.everyone_told((OWN,), since=mark, starts="PINE-7: ", status=("confirmed",))
        # The one who marked it DETAINED and confirmed SAFE heard of neither act except in
        # its answer; the first acknowledgement stopped reminders.
        assert not [t for t in world.texts_to(ADMIN, mark) if t.startswith(("⚠", "✓"))]
    # The journey's picture shows the stages set by hand, and no check-in for them.
    async with open_database(world.url) as engine, session_factory(engine)() as session:
        journey = await gather(
            session, group=await get_group(session, codename="PINE-7"), now=utc_now()
        )
    assert journey.checkins == (checked_in,)
    assert [position for _, position in journey.stages] == [2, 1]
    allowed = {"allowed": True}
    assert await world.audited("command.stage") == [
        (await world.actor(OWN), "PINE-7", allowed),
        (await world.actor(OWN), "PINE-7", allowed),
    ]
    assert await world.audited("command.status") == [
        (await world.actor(OWN), None, allowed),
        (await world.actor(ROVING), None, allowed),
    ]
    assert await world.audited("command.resume") == [
        (await world.actor(ADMIN), "PINE-7", allowed),
        (await world.actor(OWN), "PINE-7", allowed),
    ]
    assert await world.audited("command.detained") == [
        (await world.actor(ADMIN), "PINE-7", allowed)
    ]
    assert await world.audited("command.safe") == [
        (await world.actor(OWN), "PINE-7", allowed),
        (await world.actor(OWN), "PINE-7", allowed),
        (await world.actor(ADMIN), "PINE-7", allowed),
    ]
    assert [d["outcome"] for _, _, d in await world.audited("group.safe")] == [
        "asked",
        "waiting",
        "confirmed",
    ]


async def test_timeline_sends_the_groups_activist_a_picture_of_its_journey(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        await world.until(lambda g: g.status is Status.OK, "OK")
        picture = await world.ask(OWN, "/timeline pine-7")
        assert picture.photo is not None
        assert picture.photo.startswith(b"\x89PNG\r\n\x1a\n")
        assert picture.protect_content
        caption = picture.message["caption"]
        assert re.fullmatch(
            r"PINE-7: Up to \S+ \S+ KST\. Next check-in due: \S+ \S+ KST\.", caption
        ), caption
        # Korean for the roving activist, who reads Korean.
        roving = await world.ask(ROVING, "/timeline PINE-7")
        assert roving.photo is not None
        assert "다음 연락 예정" in roving.message["caption"]
    # What it draws is the journey that gather() reads, and nothing but times, statuses and
    # leg numbers (bot/timeline.py); here, the one check-in the fixture made.
    async with open_database(world.url) as engine, session_factory(engine)() as session:
        journey = await gather(
            session, group=await get_group(session, codename="PINE-7"), now=utc_now()
        )
    assert len(journey.checkins) == 1
    assert await world.audited("command.timeline") == [
        (await world.actor(OWN), "PINE-7", {"allowed": True}),
        (await world.actor(ROVING), "PINE-7", {"allowed": True}),
    ]


def _near(moment: datetime, expected: datetime) -> bool:
    return abs(moment - expected) < timedelta(seconds=10)
