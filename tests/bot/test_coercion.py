"""Signals that hold under coercion (issue 13), end to end through the stand-in:
a forced "all is well" after a duress phrase or a report leaves the group
DETAINED and is told to its people; only two people clear it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.standin import SentMessage, SimUser, TelegramStandIn, origin_user
from bot.timeline import gather
from storage.codebook import add_phrase
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.inbox import AFTER_REPORT, place_of
from storage.members import add_member
from storage.models import (
    Alert,
    AuditEvent,
    CheckinEvent,
    Flip,
    Group,
    GroupAct,
    IdentifierKind,
    Invite,
    Message,
    Role,
    RoleGrant,
    Signal,
    Status,
)
from storage.people import (
    create_invite,
    find_person,
    get_or_create_person,
    pseudonym,
    redeem_invite,
    revoke,
)
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

RELATIVE = 6_300_000_001
FIRST, SECOND, ADMIN = 6_300_000_011, 6_300_000_012, 6_300_000_013
MEMBER_ID = 7_300_000_001
# Reminders come quickly, and a pause lasts at most a few seconds, so the tests see both.
EXTRA = '[alerts]\nrepeat_every = "2s"\nmax_pause = "6s"\n'
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)


@dataclass
class World:
    standin: TelegramStandIn
    installation: Installation
    relative: SimUser
    sent_at: datetime

    @property
    def url(self) -> str:
        return self.installation.settings.database.url

    async def pine(self) -> Group:
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            return await get_group(session, codename="PINE-7")

    async def events(self) -> list[CheckinEvent]:
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            rows = await session.exec(select(CheckinEvent).order_by(CheckinEvent.at))
            return list(rows.all())

    def texts_to(self, who: int, since: int = 0) -> list[str]:
        return [m.text or "" for m in self.standin.sent[since:] if m.chat_id == who]

    async def told(self, who: int, words: str, *, since: int = 0) -> str:
        def found() -> bool:
            return any(words in t for t in self.texts_to(who, since))

        await eventually(found, within=30)
        return next(t for t in self.texts_to(who, since) if words in t)

    async def ask(self, who: int, text: str, expect: str) -> str:
        mark = len(self.standin.sent)
        self.standin.send_text(self.standin.user(who, "Activist", language_code="en"), text)
        return await self.told(who, expect, since=mark)

    async def taken_in(self, update: dict[str, object]) -> None:
        await eventually(lambda: update["update_id"] in self.standin.confirmed_update_ids())


@pytest.fixture
async def world(tmp_path: Path, database: Database) -> AsyncIterator[World]:
    standin = TelegramStandIn()
    await standin.start()
    installation = await install(
        tmp_path / "server", standin=standin, database_url=database.url, extra=EXTRA
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
        await add_member(
            session,
            server=server,
            group=pine,
            name="Kim",
            notes=None,
            now=now,
            identifiers=[(IdentifierKind.TELEGRAM_ID, str(MEMBER_ID))],
        )
        for phrase, means in (("the tea is warm", Signal.CHECKIN), ("rain stopped", Signal.DURESS)):
            await add_phrase(
                session, server=server, group=pine, phrase=phrase, means=means, now=now
            )
        for telegram_id, role, group, label in (
            (RELATIVE, Role.RELATIVE, pine, None),
            (FIRST, Role.ACTIVIST, pine, "Ji-woo"),
            (SECOND, Role.ACTIVIST, pine, "Min-seo"),
            (ADMIN, Role.ADMIN, None, "Desk"),
        ):
            person = await get_or_create_person(
                session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=now
            )
            _, code = await create_invite(
                session,
                server=server,
                role=role,
                group=group,
                ttl=timedelta(days=1),
                now=now,
                label=label,
            )
            await redeem_invite(session, server=server, code=code, person=person, now=now)
    for telegram_id in (FIRST, SECOND, ADMIN):
        standin.user(telegram_id, "Activist", language_code="en")
    yield World(standin, installation, standin.user(RELATIVE, language_code="en"), now)
    await standin.stop()


async def _duress(world: World) -> datetime:
    """The traveller's duress phrase, forwarded: PINE-7 becomes DETAINED (duress)."""
    at = utc_now() - timedelta(minutes=10)
    member = world.standin.user(MEMBER_ID, "Kim")
    update = world.standin.send_forward(
        world.relative, "mum, rain stopped", origin=origin_user(member, at)
    )
    await world.taken_in(update)
    await eventually(lambda: any("⚠" in t for t in world.texts_to(FIRST)), within=30)
    group = await world.pine()
    assert (group.status, group.status_basis) == (Status.DETAINED, "duress")
    return at


async def _forced_checkin(world: World, how: str) -> None:
    """A forced "all is well" after the duress phrase, in one of three ways."""
    member = world.standin.user(MEMBER_ID, "Kim")
    if how == "forwarded":
        update = world.standin.send_forward(
            world.relative, "all is well", origin=origin_user(member, utc_now())
        )
        await world.taken_in(update)
    elif how == "typed phrase":
        await world.taken_in(world.standin.send_text(world.relative, "the tea is warm"))
    else:  # the relative answers "Yes" to "Did this come from them?"
        asked = await _question(world)
        assert asked.reply_markup is not None
        yes = asked.reply_markup["inline_keyboard"][0][0]["callback_data"]
        await world.taken_in(world.standin.press_button(world.relative, asked.message, yes))


async def _question(world: World) -> SentMessage:
    """The relative sends a plain note; the question the bot asks about it."""
    mark = len(world.standin.sent)
    await world.taken_in(world.standin.send_text(world.relative, "saw them at the station"))

    def question() -> bool:
        return any(m.reply_markup and m.chat_id == RELATIVE for m in world.standin.sent[mark:])

    await eventually(question)
    asked = next(m for m in world.standin.sent[mark:] if m.reply_markup)
    assert asked.text == "Did this come from them?"
    return asked


@pytest.mark.parametrize("how", ["forwarded", "typed phrase", "relatives yes"])
async def test_a_forced_check_in_after_duress_leaves_the_group_detained_and_is_told(
    world: World, how: str
) -> None:
    async with running_bot(world.installation, world.standin):
        duress_at = await _duress(world)
        mark = len(world.standin.sent)
        await _forced_checkin(world, how)
        for who in (FIRST, SECOND, ADMIN):
            notice = await world.told(who, "a check-in arrived after the duress signal", since=mark)
            assert notice.startswith("PINE-7: ")
            assert "stays DETAINED until one of you clears it" in notice
        # Nobody hears an all-clear, and the group stays as the duress phrase left it.
        assert not any("✓" in t for who in (FIRST, SECOND, ADMIN) for t in world.texts_to(who))
        group = await world.pine()
        assert (group.status, group.status_basis) == (Status.DETAINED, "duress")
        assert group.last_checkin_at is not None
        assert group.last_checkin_at > duress_at
    forced = [e for e in await world.events() if e.after_report]
    assert [e.signal for e in forced] == [Signal.CHECKIN]
    # The timeline and the inbox show it as a check-in after a report.
    async with open_database(world.url) as engine, session_factory(engine)() as session:
        group = await get_group(session, codename="PINE-7")
        journey = await gather(session, group=group, now=utc_now())
        message = await session.get(Message, forced[0].message_id)
        assert message is not None
        place = await place_of(session, message=message)
    assert journey.after_report == (forced[0].at,)
    assert forced[0].at not in journey.checkins
    assert place is not None
    assert any(AFTER_REPORT in e.what for e in place.before if e.this_message)


async def test_clear_by_one_activist_waits_for_a_second_then_sends_the_all_clear(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        await _duress(world)
        await _forced_checkin(world, "forwarded")
        mark = len(world.standin.sent)
        reply = await world.ask(FIRST, "/clear PINE-7", "stays DETAINED until a second person")
        assert "/clear PINE-7" in reply
        # The others are told at once, by the label the admin gave and the pseudonym.
        for who in (SECOND, ADMIN):
            notice = await world.told(who, "asked to clear it", since=mark)
            assert notice.startswith("PINE-7: Ji-woo (P-")
        assert (await world.pine()).status is Status.DETAINED
        mark = len(world.standin.sent)
        await world.ask(SECOND, "/clear PINE-7", "PINE-7 is cleared")
        # The all-clear goes to the others; the one who confirmed is answered by the command.
        for who in (FIRST, ADMIN):
            await world.told(who, "✓ PINE-7 is OK", since=mark)
        notice = await world.told(FIRST, "confirmed the request of Ji-woo", since=mark)
        assert not any(t.startswith("✓") for t in world.texts_to(SECOND, mark))
        assert notice.startswith("PINE-7: Min-seo (P-")
    group = await world.pine()
    assert (group.status, group.status_basis) == (Status.OK, "cleared")
    async with open_database(world.url) as engine, session_factory(engine)() as session:
        acts = (await session.exec(select(GroupAct))).all()
    assert [(a.act.value, a.outcome) for a in acts] == [("clear", "confirmed")]


async def test_a_check_in_ends_detention_by_silence_alone(world: World) -> None:
    async with (
        open_database(world.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        group = await get_group(session, codename="PINE-7")
        long_ago = utc_now() - timedelta(days=5)
        group.last_checkin_at = long_ago
        group.status, group.status_since, group.status_basis = Status.OK, long_ago, "checked in"
        group.next_transition_at = utc_now()
        session.add(group)
    async with running_bot(world.installation, world.standin):
        await eventually(lambda: any("DETAINED" in t for t in world.texts_to(FIRST)), within=30)
        assert (await world.pine()).status_basis == "silence"
        await _forced_checkin(world, "typed phrase")
        await world.told(FIRST, "✓ PINE-7 is OK")
    assert not any(e.after_report for e in await world.events())
    assert (await world.pine()).status is Status.OK


async def _pseudonym_of(world: World, telegram_id: int) -> str:
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    async with open_database(world.url) as engine, session_factory(engine)() as session:
        person = await find_person(session, server=server, telegram_id=telegram_id)
        assert person is not None
        return pseudonym(person)


async def _intake(world: World, *args: str) -> str:
    """The real command line, as a process, on this installation; what it printed."""
    ran = await _intake_ran(world, *args)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


async def _intake_ran(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, as a process, on this installation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    config = world.installation.path / "config.toml"
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", *args, "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_seized_phone_alone_cannot_pause_mark_safe_or_clear_a_detained_group(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        await _duress(world)
        mark = len(world.standin.sent)
        for command, act in (
            ("/pause PINE-7 3650d", "pause it"),
            ("/safe PINE-7", "mark it SAFE"),
            ("/clear PINE-7", "clear it"),
        ):
            await world.ask(FIRST, command, "PINE-7 stays DETAINED until a second person")
            group = await world.pine()
            assert (group.status, group.status_basis, group.paused_until) == (
                Status.DETAINED,
                "duress",
                None,
            )
            # The others are told at once, naming who asked.
            for who in (SECOND, ADMIN):
                notice = await world.told(who, f"asked to {act}", since=mark)
                assert notice.startswith("PINE-7: Ji-woo (P-")
        # The alerts go on: the others keep being reminded.
        mark = len(world.standin.sent)
        for who in (SECOND, ADMIN):
            await world.told(who, "reminder, not acknowledged yet: PINE-7 is DETAINED", since=mark)
        assert (await world.pine()).status is Status.DETAINED
        # A second person agrees to the pause: it lasts at most [alerts] max_pause.
        reply = await world.ask(SECOND, "/pause PINE-7 3650d", "PINE-7 is paused until")
        assert "A pause lasts at most 6 seconds." in reply
        paused = await world.pine()
        assert (paused.status, paused.status_basis) == (Status.PAUSED, "confirmed")
        assert paused.paused_until is not None
        assert paused.paused_until - utc_now() < timedelta(seconds=7)
        await world.told(FIRST, "confirmed the request of Ji-woo", since=mark)
        # ...and then ends by itself: the schedule resumes.
        for _ in range(300):
            if (await world.pine()).status is not Status.PAUSED:
                break
            await asyncio.sleep(0.1)
        assert (await world.pine()).status is not Status.PAUSED


async def test_a_revoked_activist_is_refused_everything_and_alerted_no_more(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        await _duress(world)
        alert = next(m for m in world.standin.sent if m.chat_id == FIRST and "⚠" in (m.text or ""))
        name = await _pseudonym_of(world, FIRST)

        async def sent_recorded() -> bool:
            async with open_database(world.url) as engine, session_factory(engine)() as session:
                rows = await session.exec(
                    select(Alert).where(Alert.telegram_message_id == alert.message_id)
                )
                return rows.first() is not None

        for _ in range(200):
            if await sent_recorded():
                break
            await asyncio.sleep(0.05)
        said = await _intake(world, "role", "revoke", name)
        assert said.startswith(f"Revoked {name}: activist PINE-7.")
        # Acknowledge, under an alert sent before the revocation: refused like a stranger's.
        press = world.standin.press_button(
            world.standin.user(FIRST, "Activist", language_code="en"), alert.message, "al:ack"
        )
        query = press["callback_query"]["id"]
        await eventually(lambda: query in world.standin.answered_callbacks)
        assert world.standin.callback_answers[query]["text"] == "This alert was not sent to you."
        # Every command: the receipt any message gets.
        for command in ("/status", "/clear PINE-7", "/safe PINE-7", "/pause PINE-7 1h"):
            reply = await world.ask(FIRST, command, "Received, thank you.")
            assert reply.startswith("Received, thank you. Ref ")
        # No further alert: the others are reminded, the revoked one is not.
        mark = len(world.standin.sent)
        await world.told(SECOND, "reminder, not acknowledged yet", since=mark)
        await world.told(SECOND, "reminder, not acknowledged yet", since=len(world.standin.sent))
        assert not any("PINE-7" in t for t in world.texts_to(FIRST, mark))
        group = await world.pine()
    assert (group.status, group.status_basis) == (Status.DETAINED, "duress")
    async with open_database(world.url) as engine, session_factory(engine)() as session:
        flips = (await session.exec(select(Flip))).all()
        audited = (await session.exec(select(AuditEvent).where(AuditEvent.actor == name))).all()
    assert all(f.acknowledged_at is None for f in flips)
    refusals = [(e.action, json.loads(e.details).get("allowed")) for e in audited]
    assert ("alert.refused", False) in refusals
    assert ("command.clear", False) in refusals
    assert ("command.status", False) in refusals
    # The admin sees them by label and pseudonym, with the role they lost; no identifier.
    listed = [
        json.loads(line)
        for line in (await _intake(world, "people", "list", "--format", "json")).splitlines()
    ]
    [row] = [r for r in listed if r["pseudonym"] == name]
    assert (row["label"], row["roles"], row["revoked"]) == ("Ji-woo", [], ["activist PINE-7"])
    assert str(FIRST) not in json.dumps(listed)
    activists = (await _intake(world, "people", "list", "--role", "activist")).splitlines()
    assert any("Min-seo" in line for line in activists), activists
    assert not any("Ji-woo" in line for line in activists)


async def test_five_accounts_redeeming_one_invite_at_once_get_one_grant(world: World) -> None:
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    async with (
        open_database(world.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        invite, code = await create_invite(
            session,
            server=server,
            role=Role.ADMIN,
            group=None,
            ttl=timedelta(hours=1),
            now=utc_now(),
        )
    # Queued before the bot starts: one getUpdates batch, handled side by side.
    people = [world.standin.user(6_300_100_000 + n, language_code="en") for n in range(5)]
    updates = [world.standin.send_text(p, f"/start {code}") for p in people]
    async with running_bot(world.installation, world.standin):
        for update in updates:
            await world.taken_in(update)
    async with open_database(world.url) as engine, session_factory(engine)() as session:
        grants = (
            await session.exec(select(RoleGrant).where(RoleGrant.invite_id == invite.id))
        ).all()
        redeemed = await session.get(Invite, invite.id)
    assert len(grants) == 1
    assert redeemed is not None
    assert redeemed.redeemed_by == grants[0].person_id


async def test_an_admin_on_the_command_line_is_one_person_and_telegram_confirms(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        await _duress(world)
        mark = len(world.standin.sent)
        said = await _intake(world, "group", "clear", "PINE-7")
        assert said.startswith("PINE-7 stays DETAINED until a second person")
        for who in (FIRST, SECOND, ADMIN):
            notice = await world.told(who, "asked to clear it", since=mark)
            assert notice.startswith("PINE-7: an admin on the command line asked")
        # The command line cannot tell two admins apart: a second command is the same person.
        again = await _intake(world, "group", "clear", "PINE-7")
        assert again.startswith("Asked already on the command line")
        assert (await world.pine()).status is Status.DETAINED
        await world.ask(SECOND, "/clear PINE-7", "PINE-7 is cleared")
        await world.told(FIRST, "✓ PINE-7 is OK", since=mark)
    group = await world.pine()
    assert (group.status, group.status_basis) == (Status.OK, "cleared")


async def test_group_safe_on_the_command_line_waits_for_a_second_person_in_telegram(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        await _duress(world)
        mark = len(world.standin.sent)
        said = await _intake(world, "group", "safe", "PINE-7")
        assert said.startswith("PINE-7 stays DETAINED until a second person"), said
        for who in (FIRST, SECOND, ADMIN):
            notice = await world.told(who, "asked to mark it SAFE", since=mark)
            assert notice.startswith("PINE-7: an admin on the command line asked"), notice
        assert (await world.pine()).status is Status.DETAINED
        await world.ask(SECOND, "/safe PINE-7", "PINE-7 is marked SAFE")
        await world.told(FIRST, "✓ PINE-7 is SAFE", since=mark)
    assert (await world.pine()).status is Status.SAFE


async def test_group_pause_on_the_command_line_on_a_detained_group_only_asks(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        await _duress(world)
        mark = len(world.standin.sent)
        said = await _intake(world, "group", "pause", "PINE-7", "--for", "1h")
        assert said.startswith("PINE-7 stays DETAINED until a second person"), said
        for who in (FIRST, SECOND, ADMIN):
            notice = await world.told(who, "asked to pause it", since=mark)
            assert notice.startswith("PINE-7: an admin on the command line asked"), notice
    group = await world.pine()
    assert (group.status, group.paused_until) == (Status.DETAINED, None)


async def test_group_pause_and_resume_on_the_command_line_act_at_once_and_are_announced(
    world: World,
) -> None:
    # The command reads the config afresh: a pause long enough to resume by hand.
    config = world.installation.path / "config.toml"
    config.write_text(config.read_text().replace('max_pause = "6s"', 'max_pause = "1d"'))
    async with running_bot(world.installation, world.standin):
        assert (await world.pine()).status not in (Status.SILENT, Status.DETAINED)
        mark = len(world.standin.sent)
        said = await _intake(world, "group", "pause", "PINE-7", "--for", "2h")
        assert said.startswith("PINE-7 is paused until "), said
        assert said.strip().endswith("Everyone alerted about it was told."), said
        for who in (FIRST, SECOND, ADMIN):
            notice = await world.told(who, "chose to pause it until", since=mark)
            assert notice.startswith("PINE-7: an admin on the command line chose"), notice
        paused = await world.pine()
        assert paused.status is Status.PAUSED
        assert paused.paused_until is not None
        assert paused.paused_until - utc_now() > timedelta(hours=1)
        mark = len(world.standin.sent)
        said = await _intake(world, "group", "resume", "PINE-7")
        assert (
            said.strip() == "PINE-7 follows its schedule again. Everyone alerted about it was told."
        )
        for who in (FIRST, SECOND, ADMIN):
            await world.told(who, "chose to resume its schedule", since=mark)
        assert (await world.pine()).status is not Status.PAUSED
        again = await _intake_ran(world, "group", "resume", "PINE-7")
        assert again.returncode != 0
        assert "PINE-7 is not paused" in again.stderr
        assert "Traceback" not in again.stderr


async def test_a_revoked_relatives_yes_records_nothing(world: World) -> None:
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    async with running_bot(world.installation, world.standin):
        asked = await _question(world)
        async with (
            open_database(world.url) as engine,
            session_factory(engine)() as session,
            session.begin(),
        ):
            person = await find_person(session, server=server, telegram_id=RELATIVE)
            assert person is not None
            await revoke(session, person=person, role=None, group_id=None, now=utc_now())
        assert asked.reply_markup is not None
        yes = asked.reply_markup["inline_keyboard"][0][0]["callback_data"]
        await world.taken_in(world.standin.press_button(world.relative, asked.message, yes))
    assert await world.events() == []
    assert (await world.pine()).last_checkin_at is None


async def test_labels_are_sealed_in_the_database(world: World, database: Database) -> None:
    from tests.storage.scan import database_bytes, find, text_encodings

    files = await database_bytes(database)
    assert find([b"PINE-7"], files), "the scan must see the database"
    assert find([*text_encodings("Ji-woo"), *text_encodings("Min-seo")], files) == []


async def test_a_telegram_resume_and_safe_on_a_quiet_group_are_announced_to_the_others(
    world: World,
) -> None:
    """#13: one person's /resume or /safe on a quiet group acts at once, and everyone
    else alerted about the group is told who did it."""
    config = world.installation.path / "config.toml"
    config.write_text(config.read_text().replace('max_pause = "6s"', 'max_pause = "1d"'))
    async with running_bot(world.installation, world.standin):
        assert (await world.pine()).status not in (Status.SILENT, Status.DETAINED)
        await world.ask(FIRST, "/pause PINE-7 2h", "PINE-7 is paused until")
        assert (await world.pine()).status is Status.PAUSED
        mark = len(world.standin.sent)
        await world.ask(FIRST, "/resume PINE-7", "PINE-7 follows its schedule again")
        for who in (SECOND, ADMIN):
            notice = await world.told(who, "chose to resume its schedule", since=mark)
            assert notice.startswith("PINE-7: Ji-woo ("), notice
        assert (await world.pine()).status is not Status.PAUSED

        mark = len(world.standin.sent)
        await world.ask(FIRST, "/safe PINE-7", "PINE-7 is marked SAFE.")
        for who in (SECOND, ADMIN):
            notice = await world.told(who, "chose to mark it SAFE", since=mark)
            assert notice.startswith("PINE-7: Ji-woo ("), notice
        assert not any("chose to" in t for t in world.texts_to(FIRST, mark))
        group = await world.pine()
    assert (group.status, group.status_basis) == (Status.SAFE, "marked")
