"""The console in process: its small decisions (where an action sends the browser back
to, which attachments it shows as pictures) and its pages and actions over a database
filled through storage, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiohttp import ClientResponse, CookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict, MultiDictProxy
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.cli import common
from bot.cli.console import console_zone
from bot.console import pages
from bot.console.app import CSP, Console, make_app
from bot.console.views import _back, picture_type
from bot.i18n import Words
from bot.timeline import Format, Journey
from storage.checkins import new_flip, signals_of
from storage.codebook import add_phrase
from storage.crypto import PrivateKey, ServerKeys
from storage.db import open_database
from storage.inbox import MESSAGE_TABLES
from storage.messages import store_message
from storage.models import Group, Message, MessageKind, Operator, Signal, Status
from storage.people import get_or_create_person
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.conftest import Database
from tests.storage.helpers import make_group
from tests.storage.scan import database_bytes, find

STRANGER = 6_900_000_777
TEA = "the tea is warm"


def test_the_console_sends_back_only_to_its_own_pages() -> None:
    def back(value: str) -> str:
        return _back(MultiDictProxy(MultiDict({"back": value})))

    assert back("/inbox?unread=1") == "/inbox?unread=1"
    for elsewhere in ("//evil.example", "/\\evil.example", "https://evil.example", "/a\\b", ""):
        assert back(elsewhere) == "/inbox"


def test_a_picture_is_recognised_by_its_own_bytes_never_by_its_name() -> None:
    assert picture_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert picture_type(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert picture_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert picture_type(b"<svg onload=alert(1)>") is None  # SVG carries script: a download
    assert picture_type(b"<html>") is None
    assert picture_type(None) is None


# --------------------------------------------------------------------------- in process
#
# The console's application served by aiohttp's test server on 127.0.0.1, logged in
# through its one-time URL, over a database filled through storage.


@dataclass
class Served:
    client: TestClient[web.Request, web.Application]
    console: Console

    @property
    def csrf(self) -> str:
        return next(iter(self.console.sessions.values()))

    async def act(self, **fields: str) -> ClientResponse:
        data = {"csrf": self.csrf, **fields}
        return await self.client.post("/act", data=data, allow_redirects=False)


@contextlib.asynccontextmanager
async def served(
    engine: AsyncEngine, key: PrivateKey, tmp_path: Path, *, tz: str = "UTC"
) -> AsyncIterator[Served]:
    console = Console(
        engine=engine,
        private_key=key,
        tz=ZoneInfo(tz),
        idle_seconds=600,
        local_audit=tmp_path / "operator.audit",
    )
    server = TestServer(make_app(console), host="127.0.0.1")
    # The session cookie is for 127.0.0.1, an address: aiohttp's jar keeps it if "unsafe".
    async with TestClient(server, cookie_jar=CookieJar(unsafe=True)) as client:
        console.port = server.port or 0
        login = await client.get(f"/login/{console.login_token}", allow_redirects=False)
        assert login.status == 303
        yield Served(client, console)


async def stranger_says(session: AsyncSession, server: ServerKeys, text: str) -> Message:
    """A stranger's message that nothing placed: unlinked, sealed to the operators."""
    stranger = await get_or_create_person(
        session, server=server, telegram_id=STRANGER, chat_id=STRANGER, now=utc_now()
    )
    stored = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": text, "caption": None},
        received_at=utc_now(),
        group=None,
        sender=stranger,
    )
    await session.commit()
    return stored


async def pine_with_its_codebook(session: AsyncSession, server: ServerKeys) -> Group:
    pine = await make_group(session)
    await add_phrase(
        session, server=server, group=pine, phrase=TEA, means=Signal.CHECKIN, now=utc_now()
    )
    await session.commit()
    return pine


async def test_linking_in_the_console_applies_the_groups_codebook(
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    operator_key: PrivateKey,
    tmp_path: Path,
) -> None:
    """As `intake inbox link` does: the text was sealed before anyone knew its group."""
    pine = await pine_with_its_codebook(session, server)
    waiting = await stranger_says(session, server, f"hello, {TEA} today")
    async with served(engine, operator_key, tmp_path) as console:
        linked = await console.act(action="link", codename="PINE-7", ids=str(waiting.id))
        assert linked.status == 303, await linked.text()
    events = await signals_of(session, group=pine)
    assert [(e.signal, e.source, e.message_id) for e in events] == [
        (Signal.CHECKIN, "operator", waiting.id)
    ]


async def test_a_console_without_the_server_secret_says_the_signal_was_not_read(
    database: Database,
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    operator_key: PrivateKey,
    tmp_path: Path,
) -> None:
    pine = await pine_with_its_codebook(session, server)
    waiting = await stranger_says(session, server, f"hello, {TEA} today")
    # A copy of the database and the key alone: the codebook stays sealed.
    async with (
        open_database(database.url, migrate_to_head=False) as copy,
        served(copy, operator_key, tmp_path) as console,
    ):
        linked = await console.act(action="link", codename="PINE-7", ids=str(waiting.id))
        page = await linked.text()
    assert linked.status == 200
    assert "could not read PINE-7&#39;s codebook" in page
    assert f"intake inbox link {waiting.id.hex[:8]} PINE-7" in page
    assert await signals_of(session, group=pine) == []
    await session.refresh(waiting)
    assert waiting.group_id == pine.id  # linked all the same


async def relation_files(database: Database) -> dict[str, int]:
    """Each message table's file on PostgreSQL (VACUUM FULL writes a new one)."""
    engine = create_async_engine(database.url)
    try:
        async with engine.connect() as conn:
            return {
                table: (
                    await conn.execute(sa.text("SELECT pg_relation_filenode(:t)"), {"t": table})
                ).scalar_one()
                for table in MESSAGE_TABLES
            }
    finally:
        await engine.dispose()


async def test_shredding_in_the_console_leaves_nothing_in_the_database_files(
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    operator_key: PrivateKey,
    database: Database,
    tmp_path: Path,
) -> None:
    """As `intake inbox shred`: PostgreSQL's deleted rows are rewritten away."""
    spam = await stranger_says(session, server, "canary-spam: buy now")
    sealed = spam.body_sealed
    before = await relation_files(database) if database.backend == "postgresql" else {}
    async with served(engine, operator_key, tmp_path) as console:
        done = await console.act(action="shred", ids=str(spam.id), confirm="yes")
        assert done.status == 200
        assert "Shredded 1 message" in await done.text()
    await session.close()
    if database.backend == "postgresql":
        after = await relation_files(database)
        assert [t for t in MESSAGE_TABLES if after[t] == before[t]] == []
    assert find([sealed], await database_bytes(database)) == []


async def test_the_timeline_picture_is_drawn_in_the_consoles_zone(
    engine: AsyncEngine,
    session: AsyncSession,
    operator: Operator,
    operator_key: PrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bot.timeline

    drawn: list[Words | None] = []
    real = bot.timeline.render

    def render(journey: Journey, fmt: Format, *, words: Words | None = None) -> bytes:
        drawn.append(words)
        return real(journey, fmt, words=words)

    monkeypatch.setattr(bot.timeline, "render", render)
    await make_group(session)
    async with served(engine, operator_key, tmp_path, tz="Asia/Seoul") as console:
        picture = await console.client.get("/timeline/PINE-7.png")
        assert picture.status == 200
        assert (await picture.read()).startswith(b"\x89PNG")
        board = await (await console.client.get("/")).text()
    assert "Asia/Seoul" in board
    assert [(w.language, w.tz) for w in drawn if w is not None] == [("en", ZoneInfo("Asia/Seoul"))]


def test_the_console_shows_the_zone_every_command_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its own --tz, else `intake --tz`, else the installation's [display] timezone."""
    monkeypatch.setattr(common, "_display", common._Display())
    assert console_zone(None, None) == ZoneInfo("UTC")
    assert console_zone(None, "Asia/Seoul") == ZoneInfo("Asia/Seoul")
    assert console_zone("Europe/Paris", "Asia/Seoul") == ZoneInfo("Europe/Paris")
    common._root(version=False, tz="Asia/Tokyo")  # intake --tz Asia/Tokyo console …
    assert console_zone(None, "Asia/Seoul") == ZoneInfo("Asia/Tokyo")
    assert console_zone("Europe/Paris", "Asia/Seoul") == ZoneInfo("Europe/Paris")


def secured(response: ClientResponse) -> bool:
    return (
        response.headers.get("Content-Security-Policy") == CSP
        and response.headers.get("Cache-Control") == "no-store"
    )


async def test_a_wrong_page_or_since_is_refused_and_a_failure_keeps_the_headers(
    engine: AsyncEngine,
    operator: Operator,
    operator_key: PrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with served(engine, operator_key, tmp_path) as console:
        for query in (
            "page=99999999999999999999",  # past SQLite's integers: OverflowError
            "page=%C2%B2",  # "²" is a digit to str.isdigit, not to int()
            "page=-3",
            "since=99999999d",  # before the year 1
            "since=yesterday",
        ):
            refused = await console.client.get(f"/inbox?{query}")
            assert refused.status == 400, query
            assert secured(refused), query
        fine = await console.client.get("/inbox?page=2&since=7d")
        assert fine.status == 200
        assert secured(fine)

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("canary-failure")

        monkeypatch.setattr(pages, "board", broken)
        failed = await console.client.get("/")
        assert failed.status == 500
        assert secured(failed)
        assert "canary-failure" not in await failed.text()
    assert any(
        r.exc_info and "canary-failure" in str(r.exc_info[1]) and "GET /" in r.getMessage()
        for r in caplog.records
    )


async def test_the_board_counts_only_the_alerts_of_the_status_a_group_is_still_in(
    session: AsyncSession, operator: Operator
) -> None:
    """An alert nobody acknowledged is over once the group left that status: the demo's
    PINE-7, silent and then cleared, shows no unacknowledged alert."""
    t0 = utc_now() - timedelta(days=1)

    async def story(codename: str, *steps: tuple[Status, bool]) -> None:
        group = await make_group(session, codename)
        for n, (status, acknowledged) in enumerate(steps, start=1):
            at = t0 + timedelta(hours=n)
            record = new_flip(group, to=status, at=at, basis="test", now=at)
            record.acknowledged_at = at if acknowledged else None
            session.add_all([record, group])
        await session.commit()

    await story("PINE-7", (Status.SILENT, False), (Status.OK, False))  # cleared
    await story("OAK-2", (Status.SILENT, False))  # still silent
    await story("ELM-3", (Status.SILENT, False), (Status.OK, False), (Status.SILENT, False))
    await story("ASH-4", (Status.DETAINED, True))  # acknowledged
    await story("FIR-5", (Status.SILENT, False), (Status.DETAINED, False))  # worse now
    rows = await pages.board(session, now=utc_now(), unread={})
    assert {r.codename: r.unacknowledged for r in rows} == {
        "ASH-4": 0,
        "ELM-3": 1,
        "FIR-5": 1,
        "OAK-2": 1,
        "PINE-7": 0,
    }
