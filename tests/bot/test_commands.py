"""Activists' commands through the stand-in: the allowed act, everyone else gets
what any message gets, and every use is audited."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.commands import ACTIONS
from bot.received import WATCHER_COMMANDS
from bot.standin import SimUser, TelegramStandIn
from storage.checkins import record_signal
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.legs import add_leg
from storage.models import AuditEvent, Group, Role, RoleGrant, Signal, Status
from storage.people import create_invite, find_person, get_or_create_person
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

OWN, OTHER, ADMIN, RELATIVE, STRANGER, NEWCOMER = (6_700_000_000 + n for n in range(1, 7))
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)


@dataclass
class World:
    standin: TelegramStandIn
    installation: Installation
    users: dict[int, SimUser]

    async def ask(self, telegram_id: int, text: str) -> str:
        mark = len(self.standin.sent)
        self.standin.send_text(self.users[telegram_id], text)
        await eventually(lambda: any(m.chat_id == telegram_id for m in self.standin.sent[mark:]))
        return next(m.text or "" for m in self.standin.sent[mark:] if m.chat_id == telegram_id)

    async def invites(self, roles: dict[int, Role]) -> dict[int, str]:
        """A one-time invite to PINE-7 for each of these people, in that role."""
        server = ServerKeys(self.installation.settings.server_secret_bytes())
        codes = {}
        async with (
            open_database(self.installation.settings.database.url) as engine,
            session_factory(engine)() as session,
            session.begin(),
        ):
            pine = await get_group(session, codename="PINE-7")
            for who, role in roles.items():
                _, codes[who] = await create_invite(
                    session,
                    server=server,
                    role=role,
                    group=pine,
                    ttl=timedelta(hours=1),
                    now=utc_now(),
                )
        return codes

    async def group(self, codename: str = "PINE-7") -> Group:
        async with (
            open_database(self.installation.settings.database.url) as engine,
            session_factory(engine)() as session,
        ):
            return await get_group(session, codename=codename)

    async def until(self, status: Status, codename: str = "PINE-7") -> None:
        """Wait for the deadline engine's next pass (it looks four times a second)."""
        for _ in range(200):
            if (await self.group(codename)).status is status:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{codename} did not become {status.value}")

    async def audited(self, action: str) -> list[bool]:
        """Whether each use of a command was allowed, in order."""
        async with (
            open_database(self.installation.settings.database.url) as engine,
            session_factory(engine)() as session,
        ):
            rows = await session.exec(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
            return [json.loads(e.details)["allowed"] for e in rows.all()]


@pytest.fixture
async def world(tmp_path: Path, database: Database, standin: TelegramStandIn) -> World:
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
        await add_leg(session, server=server, group=pine, name="Kunming", now=now)
        for telegram_id, role, group in (
            (OWN, Role.ACTIVIST, pine),
            (OTHER, Role.ACTIVIST, oak),
            (ADMIN, Role.ADMIN, None),
            (RELATIVE, Role.RELATIVE, pine),
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
    users = {
        t: standin.user(t, language_code="en") for t in (OWN, OTHER, ADMIN, RELATIVE, STRANGER)
    }
    return World(standin=standin, installation=installation, users=users)


async def test_the_groups_activist_marks_it_safe_and_the_others_change_nothing(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        for refused in (RELATIVE, STRANGER):
            answer = await world.ask(refused, "/safe PINE-7")
            assert answer.startswith("Received, thank you. Ref "), refused
        # Another group's activist is answered as an activist: a mistyped or foreign
        # codename must not read like success (nor say whose the group is).
        assert await world.ask(OTHER, "/safe PINE-7") == "No group PINE-7 among yours."
        assert (await world.group()).status is not Status.SAFE
        assert await world.ask(OWN, "/safe PINE-7") == "PINE-7 is marked SAFE."
        assert (await world.group()).status is Status.SAFE
        # A SAFE group has arrived: a pause is refused, with the reason, and changes nothing.
        assert await world.ask(OWN, "/pause PINE-7 6h") == (
            "PINE-7 is SAFE: it has arrived, so there is no schedule to pause."
        )
        assert (await world.group()).status is Status.SAFE
    assert await world.audited("command.safe") == [False, False, False, True]


async def test_an_activists_mistyped_command_is_answered_and_never_stored(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        assert await world.ask(OWN, "/detained PINE7") == "No group PINE7 among yours."
        assert await world.ask(OWN, "/pause") == "Use: /pause CODENAME 12h"
        assert await world.ask(OWN, "/clear PINE7") == "No group PINE7 among yours."
        assert await world.ask(OWN, "/clear") == "Use: /clear CODENAME"
        legs = await world.ask(OWN, "/stage PINE-7 nowhere")
        assert legs.splitlines() == ["Use: /stage CODENAME LEG", "Known legs: Kunming"]
        assert not any((m.text or "").startswith("Received") for m in world.standin.sent)
    assert await world.installation.stored() == []  # commands are not inbox messages


async def test_status_group_pause_resume_stage_and_detained(world: World) -> None:
    async with running_bot(world.installation, world.standin):
        await world.until(Status.OK, "OAK-2")
        await world.until(Status.OK, "PINE-7")
        overview = await world.ask(ADMIN, "/status")
        assert "OAK-2: OK since" in overview
        assert "PINE-7: OK since" in overview
        assert "OAK-2" not in await world.ask(OWN, "/status")

        assert await world.ask(OWN, "/stage PINE-7 kunming") == "PINE-7 is on the leg Kunming."
        assert (await world.group()).current_leg == 1
        detail = await world.ask(OWN, "/group PINE-7")
        assert detail.startswith("PINE-7: OK (checked in) since")
        assert "Leg: Kunming." in detail
        assert "Next deadline:" in detail

        assert (await world.ask(OWN, "/pause PINE-7 6h")).startswith("PINE-7 is paused until")
        paused = await world.group()
        assert paused.status is Status.PAUSED
        assert paused.paused_until is not None
        assert await world.ask(OWN, "/resume PINE-7") == (
            "PINE-7 follows its schedule again from now."
        )

        await world.until(Status.OK)

        assert (await world.ask(OTHER, "/timezone Europe/Riga")).startswith(
            "Times are now shown in Europe/Riga (EE"
        )
        assert (await world.ask(OTHER, "/timezone Mars/Olympus")).startswith("Use: /timezone")
        # A region alone names a folder of zones, not a zone (IsADirectoryError on 3.11).
        assert (await world.ask(OTHER, "/timezone Asia")).startswith("Use: /timezone")
        mark = len(world.standin.sent)
        assert await world.ask(ADMIN, "/detained PINE-7") == "PINE-7 is marked DETAINED."
        await eventually(
            lambda: any(
                m.chat_id == OTHER and "DETAINED (marked by an activist)" in (m.text or "")
                for m in world.standin.sent[mark:]
            )
        )
        alert = next(
            m.text or "" for m in world.standin.sent[mark:] if m.chat_id == OTHER and m.text
        )
        assert "EET" in alert or "EEST" in alert  # Riga time, as the activist chose
        assert (await world.group()).status_basis == "marked"


async def test_an_activists_menu_has_the_watchers_commands_and_a_relatives_does_not(
    world: World,
) -> None:
    codes = await world.invites({STRANGER: Role.ACTIVIST, NEWCOMER: Role.RELATIVE})
    world.users[NEWCOMER] = world.standin.user(NEWCOMER, language_code="en")
    async with running_bot(world.installation, world.standin):
        for who, code in codes.items():
            await world.ask(who, f"/start {code}")
        await eventually(lambda: f"chat:{NEWCOMER}" in world.standin.commands)
        await eventually(lambda: f"chat:{STRANGER}" in world.standin.commands)
    menu = {
        who: [c["command"] for c in world.standin.commands[f"chat:{who}"]]
        for who in (STRANGER, NEWCOMER)
    }
    assert menu[NEWCOMER] == ["help", "language", "wipe"]
    assert menu[STRANGER][:3] == ["help", "language", "wipe"]
    assert {"status", "group", "pause", "resume", "safe", "detained", "stage"} <= set(
        menu[STRANGER]
    )


async def test_start_keeps_telegrams_language_and_greets_and_helps_each_role_in_it(
    world: World,
) -> None:
    """An activist whose Telegram is in Korean is greeted, helped and alerted in Korean;
    one whose Telegram is in Japanese gets the installation's language; a relative's
    welcome and help stay the neutral ones."""
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    korean, japanese = 6_700_000_101, 6_700_000_102
    codes = await world.invites(
        {korean: Role.ACTIVIST, japanese: Role.ACTIVIST, NEWCOMER: Role.RELATIVE}
    )
    world.users[korean] = world.standin.user(korean, language_code="ko")
    world.users[japanese] = world.standin.user(japanese, language_code="ja")
    world.users[NEWCOMER] = world.standin.user(NEWCOMER, language_code="en")
    async with running_bot(world.installation, world.standin):
        welcome = {who: await world.ask(who, f"/start {code}") for who, code in codes.items()}
        assert welcome[korean].startswith("환영해요. 활동가로 등록됐어요.")
        assert welcome[japanese].startswith("Welcome. You are an activist here")
        assert welcome[NEWCOMER] == "Welcome. You can send messages here at any time."
        helped = await world.ask(korean, "/help")
        assert "/pause — 일행의 일정을 잠시 멈추기" in helped
        assert "예: /pause PINE-7 12h" in helped
        assert (await world.ask(ADMIN, "/help")).startswith("Your commands, on every group")
        assert (await world.ask(NEWCOMER, "/help")).startswith("Forward or paste the messages")

        mark = len(world.standin.sent)
        assert await world.ask(OWN, "/detained PINE-7") == "PINE-7 is marked DETAINED."
        await eventually(
            lambda: any(
                m.chat_id == korean and (m.text or "").startswith("⚠ 알림: PINE-7")
                for m in world.standin.sent[mark:]
            )
        )
        alert = next(
            m.text or "" for m in world.standin.sent[mark:] if m.chat_id == korean and m.text
        )
        assert "억류 상태예요(활동가가 표시함)" in alert
        assert "UTC" in alert  # the installation's [display] timezone, as they chose none
        # Whoever marked it is answered by the command and not alerted about it.
        await world.ask(OWN, "/status")
        assert not any(
            (m.text or "").startswith("⚠") for m in world.standin.sent[mark:] if m.chat_id == OWN
        )
    async with (
        open_database(world.installation.settings.database.url) as engine,
        session_factory(engine)() as session,
    ):
        for who, language in ((korean, "ko"), (japanese, "en"), (NEWCOMER, "en")):
            person = await find_person(session, server=server, telegram_id=who)
            assert person is not None
            assert person.language == language


def test_the_commands_kept_out_of_the_inbox_are_the_commands_answered() -> None:
    # One list: a watcher's command answered by bot.commands is never stored as a message.
    assert set(ACTIONS) == WATCHER_COMMANDS
