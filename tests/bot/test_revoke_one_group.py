"""Revoking one group's role of someone who watches several (issue 13), end to end:
`intake invite --label`, `intake people list --group` and `intake role revoke --role
--group` through the real command line, and the stand-in for the chat."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.standin import SentMessage, TelegramStandIn
from storage.checkins import record_signal
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group
from storage.models import Alert, AuditEvent, Flip, Role, RoleGrant, Signal
from storage.people import find_person, get_or_create_person, pseudonym, redeem_invite
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

TWO, PINE_ONLY, OAK_ONLY = 6_310_000_001, 6_310_000_002, 6_310_000_003
EXTRA = '[alerts]\nrepeat_every = "2s"\n'
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)


@dataclass
class World:
    standin: TelegramStandIn
    installation: Installation

    @property
    def url(self) -> str:
        return self.installation.settings.database.url

    def texts_to(self, who: int, since: int = 0) -> list[str]:
        return [m.text or "" for m in self.standin.sent[since:] if m.chat_id == who]

    async def told(self, who: int, words: str, *, since: int = 0) -> SentMessage:
        def found() -> bool:
            return any(words in t for t in self.texts_to(who, since))

        await eventually(found, within=30)
        return next(
            m for m in self.standin.sent[since:] if m.chat_id == who and words in (m.text or "")
        )

    async def ask(self, who: int, text: str) -> str:
        mark = len(self.standin.sent)
        self.standin.send_text(self.standin.user(who, "Activist", language_code="en"), text)
        await eventually(lambda: bool(self.texts_to(who, mark)), within=30)
        return self.texts_to(who, mark)[0]

    async def intake(self, *args: str) -> str:
        """The real command line, as a process, on this installation; what it printed."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        config = self.installation.path / "config.toml"
        ran = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot.cli", *args, "--config", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        return ran.stdout


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
        groups = {}
        # PINE-7 last checked in 15 hours ago: SILENT at the engine's first look, and its
        # alert goes to its own activists only (tier 1). OAK-2 is OK.
        for codename, last in (("PINE-7", now - timedelta(hours=15)), ("OAK-2", now)):
            group = await create_group(
                session, codename=codename, schedule=SCHEDULE, kem=KemName.X25519, now=last
            )
            await record_signal(
                session, group=group, signal=Signal.CHECKIN, at=last, source="test", now=last
            )
            groups[codename] = group
        for telegram_id, codename in ((PINE_ONLY, "PINE-7"), (OAK_ONLY, "OAK-2")):
            person = await get_or_create_person(
                session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=now
            )
            session.add(
                RoleGrant(person_id=person.id, role=Role.ACTIVIST, group_id=groups[codename].id)
            )
    for telegram_id in (TWO, PINE_ONLY, OAK_ONLY):
        standin.user(telegram_id, "Activist", language_code="en")
    yield World(standin, installation)
    await standin.stop()


async def _enrol(world: World, telegram_id: int, codename: str, label: str) -> None:
    """An invite made on the command line, with a label, and redeemed (before the bot
    starts, so that PINE-7's first alert reaches them)."""
    printed = await world.intake(
        "invite", "--role", "activist", "--group", codename, "--label", label
    )
    code = printed.split()[0]
    server = ServerKeys(world.installation.settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(world.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        person = await get_or_create_person(
            session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=now
        )
        await redeem_invite(session, server=server, code=code, person=person, now=now)


async def test_revoking_one_groups_role_cuts_that_group_alone(
    world: World, database: Database
) -> None:
    from tests.storage.scan import database_bytes, find, text_encodings

    server = ServerKeys(world.installation.settings.server_secret_bytes())
    await _enrol(world, TWO, "PINE-7", "Ji-woo")
    await _enrol(world, TWO, "OAK-2", "Ji-woo")
    async with running_bot(world.installation, world.standin):
        alert = await world.told(TWO, "PINE-7")
        await world.told(PINE_ONLY, "PINE-7")
        async with open_database(world.url) as engine, session_factory(engine)() as session:
            person = await find_person(session, server=server, telegram_id=TWO)
            assert person is not None
            name = pseudonym(person)

            async def sent_recorded() -> bool:
                rows = await session.exec(
                    select(Alert.id).where(
                        Alert.recipient_id == person.id,
                        Alert.telegram_message_id == alert.message_id,
                    )
                )
                return rows.first() is not None

            for _ in range(200):
                if await sent_recorded():
                    break
                await asyncio.sleep(0.05)
                await session.rollback()  # a fresh snapshot on the next look

        # The label given on the command line names them in the people list, by group.
        listed = [
            json.loads(line)
            for line in (
                await world.intake("people", "list", "--group", "PINE-7", "--format", "json")
            ).splitlines()
        ]
        [row] = [r for r in listed if r["pseudonym"] == name]
        assert row["label"] == "Ji-woo"
        assert sorted(row["roles"]) == ["activist OAK-2", "activist PINE-7"]
        assert str(TWO) not in json.dumps(listed)

        said = await world.intake("role", "revoke", name, "--role", "activist", "--group", "PINE-7")
        assert said.startswith(f"Revoked {name}: activist PINE-7.")

        # The buttons under the PINE-7 alert sent before: refused like a stranger's.
        for button in ("al:ack", "al:claim", "al:clear"):
            press = world.standin.press_button(
                world.standin.user(TWO, "Activist", language_code="en"), alert.message, button
            )
            query = press["callback_query"]["id"]

            def answered(q: object = query) -> bool:
                return q in world.standin.answered_callbacks

            await eventually(answered)
            assert world.standin.callback_answers[query]["text"] == (
                "This alert was not sent to you."
            ), button
        # Still OAK-2's activist: PINE-7 is no longer among their groups.
        assert await world.ask(TWO, "/clear PINE-7") == "No group PINE-7 among yours."
        status = await world.ask(TWO, "/status")
        assert "OAK-2" in status
        assert "PINE-7" not in status
        # PINE-7's own activist is still reminded; they are not.
        mark = len(world.standin.sent)
        await world.told(PINE_ONLY, "reminder, not acknowledged yet", since=mark)
        await world.told(PINE_ONLY, "reminder, not acknowledged yet", since=len(world.standin.sent))
        assert not any("PINE-7" in t for t in world.texts_to(TWO, mark))

        pine_list = [
            json.loads(line)
            for line in (
                await world.intake("people", "list", "--group", "PINE-7", "--format", "json")
            ).splitlines()
        ]
        assert name not in [r["pseudonym"] for r in pine_list]
        oak_list = (await world.intake("people", "list", "--group", "OAK-2")).splitlines()
        assert any(name in line and "Ji-woo" in line for line in oak_list), oak_list

    async with open_database(world.url) as engine, session_factory(engine)() as session:
        flips = (await session.exec(select(Flip))).all()
        audited = (await session.exec(select(AuditEvent).where(AuditEvent.actor == name))).all()
    assert all(f.acknowledged_at is None for f in flips)
    assert ("alert.refused", False) in [
        (e.action, json.loads(e.details).get("allowed")) for e in audited
    ]
    # The label given on the command line is sealed like every name.
    files = await database_bytes(database)
    assert find([b"PINE-7"], files), "the scan must see the database"
    assert find(list(text_encodings("Ji-woo")), files) == []
