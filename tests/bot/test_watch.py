"""The bot watching itself: after a restart admins hear how long it was away and
how much had queued; a heartbeat URL is requested so an outside monitor notices
if the bot goes quiet."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from bot.standin import TelegramStandIn
from storage.crypto import ServerKeys
from storage.db import open_database, session_factory
from storage.models import Role, RoleGrant, WatchState
from storage.people import get_or_create_person
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

ADMIN = 6_600_000_001
RELATIVE = 6_600_000_002


@dataclass
class Monitor:
    """A stand-in for an outside monitor such as healthchecks.io: the paths pinged
    (GET), and the bodies posted (the audit checkpoints, bot/integrity)."""

    url: str
    pings: list[str]
    posted: list[str]


@pytest.fixture
async def monitor() -> AsyncIterator[Monitor]:
    pings: list[str] = []
    posted: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        pings.append(request.path)
        return web.Response(text="OK")

    async def post(request: web.Request) -> web.Response:
        posted.append(await request.text())
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/ping/{check}", ping)
    app.router.add_post("/ping/{check}", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Monitor(f"http://127.0.0.1:{port}/ping/c0ffee", pings, posted)
    await runner.cleanup()


def _texts_to_admin(standin: TelegramStandIn) -> list[str]:
    return [m.text or "" for m in standin.sent if m.chat_id == ADMIN]


async def installed(
    tmp_path: Path, database: Database, standin: TelegramStandIn, extra: str = ""
) -> Installation:
    installation = await install(
        tmp_path / "server", standin=standin, database_url=database.url, extra=extra
    )
    server = ServerKeys(installation.settings.server_secret_bytes())
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        admin = await get_or_create_person(
            session, server=server, telegram_id=ADMIN, chat_id=ADMIN, now=utc_now()
        )
        session.add(RoleGrant(person_id=admin.id, role=Role.ADMIN))
        session.add(WatchState(name="alive", at=utc_now() - timedelta(hours=3)))
    return installation


async def test_after_a_restart_admins_hear_how_long_the_bot_was_away_and_what_queued(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await installed(tmp_path, database, standin)
    relative = standin.user(RELATIVE, language_code="en")
    standin.user(ADMIN, language_code="en")
    standin.send_text(relative, "first, while the bot was down")
    standin.send_text(relative, "second, while the bot was down")
    async with running_bot(installation, standin):
        await eventually(lambda: any(m.chat_id == ADMIN for m in standin.sent))
    [note] = [t for t in _texts_to_admin(standin) if not t.startswith("Audit checkpoint")]
    assert note.startswith("The bot is back after 3 hours")
    assert "took in 2 updates" in note
    assert "while the bot was down" not in note
    assert "could not read" not in note  # every one of them was readable


async def test_the_admins_note_counts_updates_kept_raw_because_unreadable(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await installed(tmp_path, database, standin)
    relative = standin.user(RELATIVE, language_code="en")
    standin.user(ADMIN, language_code="en")
    standin.send_text(relative, "readable")
    # A live photo without its file: a shape python-telegram-bot refuses.
    standin.send_fields(relative, {"caption": "unreadable", "live_photo": {"x": 1}})
    async with running_bot(installation, standin):
        await eventually(lambda: any(m.chat_id == ADMIN for m in standin.sent))
    [note] = [t for t in _texts_to_admin(standin) if not t.startswith("Audit checkpoint")]
    assert "took in 2 updates" in note
    assert "1 of them this version of the bot could not read" in note
    assert len(await installation.stored()) == 2  # sealed, both


async def test_a_quick_restart_tells_nobody(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await installed(tmp_path, database, standin)
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        state = await session.get(WatchState, "alive")
        assert state is not None
        state.at = utc_now() - timedelta(seconds=30)
        session.add(state)
    async with running_bot(installation, standin):
        await eventually(lambda: "setMyCommands" in standin.calls)
    # No note of an absence (an audit checkpoint at shutdown is not one: bot/integrity).
    assert not [t for t in _texts_to_admin(standin) if not t.startswith("Audit checkpoint")]


async def test_the_heartbeat_url_is_requested_while_the_engine_runs(
    tmp_path: Path,
    database: Database,
    standin: TelegramStandIn,
    monitor: Monitor,
) -> None:
    url, pings, posted = monitor.url, monitor.pings, monitor.posted
    installation = await installed(
        tmp_path, database, standin, extra=f'[alerts]\nheartbeat_url = "{url}"\n'
    )
    async with running_bot(installation, standin):
        await eventually(lambda: bool(pings))
    assert pings == ["/ping/c0ffee"], pings
    # At shutdown the audit chain's head went to the monitor too (bot/integrity).
    [checkpoint] = posted
    assert re.fullmatch(r"audit \d+:[0-9a-f]{64}", checkpoint), checkpoint
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
    ):
        state = await session.get(WatchState, "alive")
        assert state is not None
        assert utc_now() - state.at < timedelta(minutes=1)
