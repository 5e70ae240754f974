"""A chat id is kept only while something is still to be said or deleted in that chat
(issue #14), end to end through the stand-in: once a relative's and a stranger's messages
are deleted from their chats and the replies have deleted themselves, the database holds
no chat id of theirs that the server secret opens; an activist keeps theirs (alerts need
it) until their last watching role is revoked; /wipe still works right after sending."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from bot import handlers
from bot.config import load_settings
from bot.intake import Runtime
from bot.standin import TelegramStandIn
from storage.checkins import flip
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.messages import chat_ref_of
from storage.models import Message, PendingDeletion, Person, Role, Status
from storage.people import (
    chat_id_of,
    create_invite,
    find_person,
    get_or_create_person,
    pseudonym,
    redeem_invite,
)
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

RELATIVE, STRANGER, ACTIVIST = 6_810_000_001, 6_810_000_002, 6_810_000_003
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)
NEWS = "Unconfirmed news about PINE-7 arrived; operators can read it."


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("the bot did not get there in time")
        await asyncio.sleep(0.1)


class Chats:
    """What the database holds of chat ids, read with the server secret (as a seized
    running server would)."""

    def __init__(self, installation: Installation) -> None:
        self.url = installation.settings.database.url
        self.server = ServerKeys(installation.settings.server_secret_bytes())

    async def opened(self) -> dict[str, list[int]]:
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            people = (await session.exec(select(Person))).all()
            messages = (await session.exec(select(Message))).all()
            pending = (await session.exec(select(PendingDeletion))).all()
            refs = [chat_ref_of(self.server, m) for m in messages]
            return {
                "people": sorted(c for p in people if (c := chat_id_of(self.server, p))),
                "messages": sorted(r.chat_id for r in refs if r is not None),
                "pending_deletions": [len(p.chat_sealed) for p in pending],
            }

    async def sealed_bytes(self) -> int:
        """Every byte of every column that holds a chat id (the digests open nothing)."""
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            total = 0
            for column in (
                Person.chat_sealed,
                Message.chat_ref_sealed,
                PendingDeletion.chat_sealed,
            ):
                size = sa.func.coalesce(sa.func.sum(sa.func.length(column)), 0)
                total += int((await session.exec(select(size))).one())
            return total

    async def person(self, telegram_id: int) -> Person:
        async with open_database(self.url) as engine, session_factory(engine)() as session:
            found = await find_person(session, server=self.server, telegram_id=telegram_id)
            assert found is not None
            return found


async def _installed(
    tmp_path: Path, database: Database, standin: TelegramStandIn, extra: str = ""
) -> tuple[Installation, dict[Role, str]]:
    """An installation with PINE-7 and an invite for a relative and an activist of it."""
    installation = await install(
        tmp_path / "server", standin=standin, database_url=database.url, extra=extra
    )
    server = ServerKeys(installation.settings.server_secret_bytes())
    now = utc_now()
    codes = {}
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await create_group(
            session, codename="PINE-7", schedule=SCHEDULE, kem=KemName.X25519, now=now
        )
        for role in (Role.RELATIVE, Role.ACTIVIST):
            _, codes[role] = await create_invite(
                session, server=server, role=role, group=pine, ttl=timedelta(days=1), now=now
            )
    return installation, codes


def _texts(standin: TelegramStandIn, chat_id: int) -> list[str]:
    return [m.text or "" for m in standin.sent if m.chat_id == chat_id]


async def test_a_relatives_and_a_strangers_chat_ids_go_once_nothing_is_left_to_do(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation, codes = await _installed(tmp_path, database, standin)
    chats = Chats(installation)
    relative = standin.user(RELATIVE, language_code="en")
    stranger = standin.user(STRANGER, language_code="en")
    async with running_bot(installation, standin):
        standin.send_text(relative, f"/start {codes[Role.RELATIVE]}")
        await eventually(lambda: any(t.startswith("Welcome") for t in _texts(standin, RELATIVE)))
        sent = [
            standin.send_text(relative, "we reached the station"),
            standin.send_text(stranger, "hello"),
        ]
        await eventually(lambda: {u["update_id"] for u in sent} <= standin.confirmed_update_ids())
        # While the replies are on the phones, their chats are known (to delete them).
        await eventually(lambda: len(_texts(standin, STRANGER)) >= 2)
        assert (await chats.opened())["pending_deletions"] != []
        # Then everything deletes itself (receipt_ttl and question_ttl are 1 s here).
        await eventually(
            lambda: standin.messages_in(RELATIVE) == [] and standin.messages_in(STRANGER) == [],
            within=30,
        )

        async def nothing_left() -> bool:
            return await chats.opened() == {
                "people": [],
                "messages": [],
                "pending_deletions": [],
            }

        await _eventually(nothing_left)
    assert len(await installation.stored()) == 2  # both messages are kept, sealed
    assert await chats.sealed_bytes() == 0
    assert (await chats.person(RELATIVE)).chat_sealed == b""


async def test_an_activist_keeps_their_chat_for_alerts_until_revoked(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation, codes = await _installed(tmp_path, database, standin)
    chats = Chats(installation)
    server = chats.server
    now = utc_now()
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await get_group(session, codename="PINE-7")
        await flip(session, group=pine, to=Status.SILENT, at=now, basis="grace", now=now)
        pine.next_transition_at = now + timedelta(days=1)  # the engine leaves it be
        session.add(pine)
        person = await get_or_create_person(session, server=server, telegram_id=RELATIVE, now=now)
        await redeem_invite(
            session, server=server, code=codes[Role.RELATIVE], person=person, now=now
        )
    relative = standin.user(RELATIVE, language_code="en")
    activist = standin.user(ACTIVIST, language_code="en")
    async with running_bot(installation, standin):
        standin.send_text(activist, f"/start {codes[Role.ACTIVIST]}")
        await eventually(lambda: any(t.startswith("Welcome") for t in _texts(standin, ACTIVIST)))
        assert chat_id_of(server, await chats.person(ACTIVIST)) == ACTIVIST
        standin.send_text(relative, "saw them, all fine")
        await eventually(lambda: NEWS in _texts(standin, ACTIVIST), within=30)
        assert (await chats.opened())["people"] == [ACTIVIST]  # the relative's is not kept

        # Revoked with the real command line: the chat id goes with the role.
        name = pseudonym(await chats.person(ACTIVIST))
        await _intake(installation, "role", "revoke", name)
        assert (await chats.person(ACTIVIST)).chat_sealed == b""
        told = len(_texts(standin, ACTIVIST))
        update = standin.send_text(relative, "saw them again")
        await eventually(lambda: update["update_id"] in standin.confirmed_update_ids())
        await asyncio.sleep(7)  # longer than the note's delay: nothing more reaches them
        assert len(_texts(standin, ACTIVIST)) == told
    assert (await chats.opened())["people"] == []


async def test_wipe_right_after_sending_deletes_the_message_when_it_was_left_in_the_chat(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation, _ = await _installed(
        tmp_path, database, standin, extra="delete_forwarded = false"
    )
    config = installation.path / "config.toml"
    config.write_text(config.read_text().replace('receipt_ttl = "1s"', 'receipt_ttl = "60s"'))
    installation.settings = load_settings(config)
    chats = Chats(installation)
    stranger = standin.user(STRANGER, language_code="en")
    async with running_bot(installation, standin):
        standin.send_text(stranger, "please delete this later")
        await eventually(lambda: len(_texts(standin, STRANGER)) >= 1)
        # The message stays (delete_forwarded is off): where it sits is still known.
        first = standin.messages_in(STRANGER)[0]
        assert first.get("text") == "please delete this later"
        assert (await chats.opened())["messages"] == [STRANGER]
        standin.send_text(stranger, "/wipe")
        await eventually(lambda: "Done." in _texts(standin, STRANGER))
        left = standin.messages_in(STRANGER)
        assert [m.get("text") for m in left] == ["Done."], left
        await _eventually(lambda: _no_message_refs(chats))


async def test_wipe_deletes_a_reply_whose_deletion_is_not_yet_written_down(
    tmp_path: Path, database: Database, standin: TelegramStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI once saw it: the receipt and the question were sent, their deletions still on
    # their way to the database, and /wipe (reading only the database) left both.
    installation, _ = await _installed(tmp_path, database, standin)
    config = installation.path / "config.toml"
    config.write_text(config.read_text().replace('receipt_ttl = "1s"', 'receipt_ttl = "60s"'))
    installation.settings = load_settings(config)
    write = handlers._write_deletions

    async def slow_write(runtime: Runtime) -> None:
        await asyncio.sleep(3)  # a database busy with a burst
        await write(runtime)

    monkeypatch.setattr(handlers, "_write_deletions", slow_write)
    stranger = standin.user(STRANGER, language_code="en")
    async with running_bot(installation, standin):
        standin.send_text(stranger, "delete this")
        await eventually(lambda: len(_texts(standin, STRANGER)) >= 2)  # receipt, question
        standin.send_text(stranger, "/wipe")
        await eventually(lambda: "Done." in _texts(standin, STRANGER))
        left = standin.messages_in(STRANGER)
        assert [m.get("text") for m in left] == ["Done."], left


async def _no_message_refs(chats: Chats) -> bool:
    return (await chats.opened())["messages"] == []


async def _intake(installation: Installation, *args: str) -> str:
    """The real command line, as a process, on this installation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    ran = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bot.cli",
            *args,
            "--config",
            str(installation.path / "config.toml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout
