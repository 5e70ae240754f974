"""Fault injection: the real bot (``intake run`` as a process) against the stand-in's faults.

Each test starts the bot on an installation of its own, lets relatives write to it, and then
breaks something the bot depends on: Telegram answers 429 (flood control, with retry_after),
5xx or nothing in time, on getUpdates, sendMessage or deleteMessages; Telegram disappears and
comes back on the same port; the database is unreachable (PostgreSQL behind a TCP proxy that
the test cuts) or locked (SQLite, another connection holding BEGIN EXCLUSIVE). Each test then
checks the three things this issue is about:

* the bot keeps running (the process is alive through the fault, and stops cleanly after);
* it loses nothing it confirmed: every update the stand-in saw confirmed is stored, exactly
  once, at every point the test looks (during the fault as well as after);
* it catches up: every update is eventually confirmed, stored exactly once, and receipted (the
  relative gets a receipt naming the stored message's reference).

Every test also proves that its fault happened (the faulted calls were made, or the bot's
log names the failure), so none can pass because the fault missed. The PostgreSQL tests use
INTAKE_TEST_DATABASE_URL, or else the local server on 127.0.0.1:5432, in a throwaway database
reached through a TCP proxy in this file; they are skipped if no server answers.

Two defects these tests found are fixed: a receipt refused with 429 or a 5xx is now sent
again (``bot.handlers._say``), and a database outage while the start-up backlog drains no
longer ends the bot (``bot.app.drain`` backs off and retries, as ``poll`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.standin import SimUser, TelegramStandIn
from storage.db import open_database
from tests.bot.intake_harness import install
from tests.bot.test_crash import BotProcess, Intake, bot_process, read_intake

RELATIVES = tuple(6_400_000_001 + n for n in range(4))
# A few dozen texts from four people in a minute or two would run into the default
# per-person limit (120 an hour) in the longer tests: these tests are about every update.
NO_RATE_LIMIT = "rate_limit_per_hour = 1000000"
RECEIPT_REF = re.compile(r"\bRef ([0-9A-F]{6})\b")
# How long the bot has to catch up once a fault is over: its longest waits are the
# database backoff (doubling up to 30 s) and a deletion retried after retry_after + 5 s.
CATCH_UP = 90.0
# Receipts follow a stored batch at once; one refused and retried after its retry_after
# (1 s here, at most six times in a row) or after a 5xx would still come well within this.
RECEIPTS_WITHIN = 10.0
# python-telegram-bot answers "timed out" after 5 s on an ordinary call (HTTPXRequest's
# default read timeout), and after poll + 10 s on getUpdates (bot.app._get_updates): the
# stand-in's delays are just longer than these.
CALL_TIMEOUT_PLUS = 6.0
DRAIN_TIMEOUT_PLUS = 11.0


# --------------------------------------------------------------------------- the rig


class BotDied(AssertionError):
    """The bot process ended during a fault."""


class Lost(AssertionError):
    """A confirmed update is not stored, or an update is stored twice."""


class NotCaughtUp(AssertionError):
    """Something was not confirmed or stored in time after the fault."""


class NotReceipted(NotCaughtUp):
    """A stored message got no receipt in time after the fault."""


@dataclass
class Rig:
    """A stand-in, an installation and the bot process that serves it."""

    standin: TelegramStandIn
    bot: BotProcess
    read_url: str  # the database, reached directly (not through a proxy the test may cut)
    people: list[SimUser]
    queued: list[int] = field(default_factory=list)  # every update id the relatives sent
    sender_of: dict[int, int] = field(default_factory=dict)  # update id -> relative's user id
    _sent: int = 0

    def send(self, count: int, label: str, *, only: list[SimUser] | None = None) -> list[int]:
        """``count`` texts, round the relatives (or ``only`` these), queued at the stand-in."""
        senders = only or self.people
        ids = []
        for n in range(count):
            self._sent += 1
            person = senders[n % len(senders)]
            update = self.standin.send_text(person, f"{label} {self._sent:04d}")
            ids.append(int(update["update_id"]))
            self.sender_of[ids[-1]] = person.id
        self.queued += ids
        return ids

    async def until(
        self,
        condition: Callable[[], bool],
        *,
        within: float,
        what: str,
        late: type[NotCaughtUp] = NotCaughtUp,
    ) -> None:
        """Wait for a condition on the stand-in (checked at each of its changes); raise
        ``late`` after ``within`` seconds, and ``BotDied`` at once if the bot exits first."""
        try:
            await self.standin.wait_for(lambda: condition() or self.bot.exited(), within=within)
        except TimeoutError:
            raise late(f"timed out waiting for {what}\n{self.log_tail()}") from None
        if not condition():
            self.assert_alive(f"the wait for {what}")

    def log_tail(self) -> str:
        return self.bot.output()[-4000:]

    def assert_alive(self, during: str) -> None:
        if self.bot.exited():
            raise BotDied(
                f"the bot exited ({self.bot.proc.returncode}) during {during}\n{self.log_tail()}"
            )

    async def intake(self) -> Intake:
        return await read_intake(self.read_url)

    async def assert_nothing_confirmed_is_lost(self) -> Intake:
        """What the stand-in saw confirmed is stored, each exactly once; nothing twice."""
        confirmed = self.standin.confirmed_update_ids()
        now = await self.intake()
        if not confirmed <= now.processed:
            raise Lost(f"confirmed but not marked processed: {sorted(confirmed - now.processed)}")
        if not confirmed & set(self.queued) <= now.stored_once:
            missing = confirmed & set(self.queued) - now.stored_once
            raise Lost(f"confirmed but not stored once: {sorted(missing)}")
        if now.stored_twice:
            raise Lost(f"stored twice: {sorted(now.stored_twice)}")
        assert set(now.message_update_ids) <= set(self.queued)
        return now

    async def refs(self) -> dict[int, str]:
        """The receipt reference of every stored message, by update_id (bot.handlers)."""
        async with (
            open_database(self.read_url, migrate_to_head=False) as engine,
            engine.connect() as conn,
        ):
            rows = (await conn.execute(sa.text("SELECT id, update_id FROM messages"))).all()
        return {int(u): _uuid(i).hex[:6].upper() for i, u in rows}

    def receipted_refs(self) -> set[str]:
        """References named by the receipts the bot sent to the relatives."""
        chats = {p.id for p in self.people}
        return {
            match.group(1)
            for m in self.standin.sent
            if m.chat_id in chats and m.text
            for match in [RECEIPT_REF.search(m.text)]
            if match
        }

    async def assert_caught_up(self, *, receipted: set[int] | None = None) -> Intake:
        """Every queued update confirmed and stored exactly once, and a receipt for every one
        (or for the ``receipted`` ones) naming its stored message; the bot still running."""
        everything = set(self.queued)
        await self.until(
            lambda: everything <= self.standin.confirmed_update_ids(),
            within=CATCH_UP,
            what=f"all {len(everything)} updates to be confirmed",
        )
        final = await self.assert_nothing_confirmed_is_lost()
        assert final.stored_once == everything
        assert len(final.message_update_ids) == len(everything)
        assert final.processed >= everything
        refs = await self.refs()
        wanted = {refs[u] for u in (everything if receipted is None else receipted)}
        await self.until(
            lambda: wanted <= self.receipted_refs(),
            within=RECEIPTS_WITHIN,
            what=f"a receipt for each of {len(wanted)} stored messages",
            late=NotReceipted,
        )
        self.assert_alive("the catch-up")
        return final

    async def assert_chats_emptied(self) -> None:
        """Promise 3 kept through the faults: every relative's messages, and the bot's
        receipts (which delete themselves after receipt_ttl), are gone from their chats."""
        await self.until(
            lambda: not any(self.standin.messages_in(p.id) for p in self.people),
            within=CATCH_UP,
            what="every relative's chat with the bot to be empty",
        )

    async def stop_cleanly(self) -> None:
        assert await self.bot.stop() == 0, self.log_tail()


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@contextlib.asynccontextmanager
async def rig(
    folder: Path,
    standin: TelegramStandIn,
    *,
    database_url: str,
    read_url: str | None = None,
) -> AsyncIterator[Rig]:
    installation = await install(
        folder / "server", standin=standin, database_url=database_url, extra=NO_RATE_LIMIT
    )
    people = [
        standin.user(uid, f"Relative {n}", language_code="en") for n, uid in enumerate(RELATIVES)
    ]
    async with bot_process(installation) as bot:
        yield Rig(standin=standin, bot=bot, read_url=read_url or database_url, people=people)


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'intake.db'}"


async def started(r: Rig) -> None:
    """Start the bot and wait until it asks the stand-in for updates."""
    await r.bot.start()
    await r.until(
        lambda: "getUpdates" in r.standin.calls, within=60, what="the bot's first getUpdates"
    )


def calls(standin: TelegramStandIn, method: str) -> int:
    return standin.calls.count(method)


# ------------------------------------------------------------- Telegram: getUpdates


# (status, retry_after, count) faults queued in this order
GET_UPDATES_FAULTS: dict[str, list[tuple[int, int | None, int]]] = {
    # A 429 storm: every call for a while is told to wait, as Telegram's flood control does.
    "429 storm": [(429, 1, 5)],
    # Telegram's front end failing in each of the ways it does (502 is nginx's HTML page).
    "5xx": [(500, None, 1), (502, None, 1), (503, None, 1), (504, None, 1)],
}


@pytest.mark.parametrize("fault", sorted(GET_UPDATES_FAULTS))
async def test_get_updates_errors_hold_back_intake_and_lose_nothing(
    tmp_path: Path, standin: TelegramStandIn, fault: str
) -> None:
    async with rig(tmp_path, standin, database_url=sqlite_url(tmp_path)) as r:
        await started(r)
        r.send(12, "before")
        await r.assert_caught_up()

        before = calls(standin, "getUpdates")
        storm = GET_UPDATES_FAULTS[fault]
        for status, retry_after, count in storm:
            standin.fail_next("getUpdates", status=status, retry_after=retry_after, count=count)
        failing = sum(count for _, _, count in storm)
        # The long poll in flight ends when these arrive; every later call fails for a while.
        r.send(20, "during")
        await r.until(
            lambda: calls(standin, "getUpdates") > before + failing,
            within=60,
            what="the bot to call getUpdates through the storm",
        )
        r.assert_alive(fault)
        await r.assert_nothing_confirmed_is_lost()
        r.send(8, "after")
        await r.assert_caught_up()
        await r.stop_cleanly()
    output = r.bot.output()
    if fault == "5xx":
        assert "getUpdates failed (NetworkError)" in output


async def test_get_updates_timeouts_while_draining_a_backlog(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    """getUpdates carried out by Telegram but answered too late for the bot (its offset
    confirms what the bot committed; the batch it returns never reaches the bot)."""
    async with rig(tmp_path, standin, database_url=sqlite_url(tmp_path)) as r:
        r.send(250, "queued while the bot was stopped")
        # The drain asks with poll 0, so with a 10 s read timeout: its third call (whose
        # offset confirms the second batch) is carried out but answered too late.
        standin.delay_next("getUpdates", 0.0, count=2)
        standin.delay_next("getUpdates", DRAIN_TIMEOUT_PLUS)
        await r.bot.start()
        await r.until(
            lambda: calls(standin, "getUpdates") >= 4, within=60, what="the call after the delay"
        )
        await r.assert_nothing_confirmed_is_lost()
        r.send(10, "live")
        await r.assert_caught_up()
        await r.stop_cleanly()
    assert "getUpdates failed (TimedOut)" in r.bot.output()


# ------------------------------------------------ Telegram: sendMessage, deleteMessages


def _arm(standin: TelegramStandIn, method: str, kind: str) -> None:
    if kind == "429 storm":
        standin.fail_next(method, status=429, retry_after=1, count=6)
    elif kind == "5xx":
        for status in (500, 502, 503, 504):
            standin.fail_next(method, status=status, count=2)
    else:  # timeout: carried out, answered after the client gave up
        standin.delay_next(method, CALL_TIMEOUT_PLUS, count=2)


REPLY_FAULTS = [
    pytest.param("sendMessage", "429 storm"),
    pytest.param("sendMessage", "5xx"),
    pytest.param("sendMessage", "timeout"),
    pytest.param("deleteMessages", "429 storm"),
    pytest.param("deleteMessages", "5xx"),
    pytest.param("deleteMessages", "timeout"),
]


@pytest.mark.parametrize(("method", "kind"), REPLY_FAULTS)
async def test_reply_faults_neither_stop_nor_lose_and_everything_is_receipted(
    tmp_path: Path, standin: TelegramStandIn, method: str, kind: str
) -> None:
    """Faults on the replies that follow a committed batch: the receipt (sendMessage) and
    the deletion of the relative's message and, after receipt_ttl, of the receipt
    (deleteMessages). A receipt whose answer timed out was sent, but the bot never learnt its
    message_id and cannot delete it: a limit of promise 3 under timeouts, not checked here."""
    async with rig(tmp_path, standin, database_url=sqlite_url(tmp_path)) as r:
        await started(r)
        before = calls(standin, method)
        _arm(standin, method, kind)
        sent = r.send(24, "check-in")
        await r.until(
            lambda: calls(standin, method) >= before + 8,
            within=60,
            what=f"the bot to call {method} through the faults",
        )
        r.assert_alive(f"{kind} on {method}")
        await r.assert_nothing_confirmed_is_lost()
        if kind == "429 storm":
            # A chat Telegram holds back gets the receipt of its newest message only
            # (bot.flood, #14): the others give way to it, still stored and deleted.
            newest = {r.sender_of[update_id]: update_id for update_id in sent}
            await r.assert_caught_up(receipted=set(newest.values()))
        else:
            await r.assert_caught_up()
        # Promise 3 held through the faults: every relative's message left their chat.
        if method == "deleteMessages":
            await r.assert_chats_emptied()
        await r.stop_cleanly()


async def test_a_relative_who_blocked_the_bot_holds_back_no_one(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    """403 "bot was blocked by the user" on that relative's receipts and deletions: the
    bot stores their messages, and everyone else's, and keeps going."""
    async with rig(tmp_path, standin, database_url=sqlite_url(tmp_path)) as r:
        blocker, others = r.people[0], r.people[1:]
        theirs = r.send(6, "sent, then blocked", only=[blocker])
        standin.block(blocker)  # a my_chat_member update (member -> kicked) follows
        earlier = r.send(9, "queued", only=others)
        await r.bot.start()
        later = r.send(9, "live", only=others)
        await r.assert_caught_up(receipted=set(earlier + later))
        r.send(3, "more")  # the blocked relative writes again, which unblocks the bot
        await r.assert_caught_up(receipted=set(earlier + later) | set(r.queued[-3:]))
        await r.stop_cleanly()
    assert set(theirs) <= (await r.intake()).stored_once
    assert "a reply was not sent (Forbidden)" in r.bot.output()


# ------------------------------------------------------------- Telegram: gone


# How long Telegram is gone. The bot's getUpdates loop (bot.app._get_updates) waits 1 s
# after each failed call and tries again, with no count of failures, no growing wait and no
# give-up: twelve seconds is a dozen failed calls in a row (the test counts them in the log),
# the same path that a minute or an hour would take. It is also longer than the bot's other
# waits on Telegram: a refused deletion is retried after 5 s (bot.handlers), so the
# receipts' self-deletions due during the absence fail at least twice before they succeed.
GONE_FOR = 12.0


@pytest.mark.slow
async def test_telegram_gone_for_a_while_and_back_on_the_same_port(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    async with rig(tmp_path, standin, database_url=sqlite_url(tmp_path)) as r:
        await started(r)
        r.send(20, "before")
        await r.assert_caught_up()
        port = standin.port

        await standin.go_down()  # the long poll in flight is dropped; the port refuses
        while_gone = r.send(30, "while gone")
        await asyncio.sleep(GONE_FOR)
        r.assert_alive("Telegram's absence")
        assert not set(while_gone) & standin.confirmed_update_ids()
        await r.assert_nothing_confirmed_is_lost()

        await standin.come_back()
        assert standin.port == port
        r.send(10, "after")
        await r.assert_caught_up()
        await r.assert_chats_emptied()  # deletions refused while it was gone were retried
        await r.stop_cleanly()
    output = r.bot.output()
    assert output.count("getUpdates failed (NetworkError)") >= GONE_FOR * 2 / 3
    assert "deleting messages failed for now (NetworkError)" in output


# ------------------------------------------------------------- the database


# How long the database is gone. Longer than SQLite's busy timeout (10 s, storage.db), so a
# locked database fails the bot's writes rather than only slowing them; and on PostgreSQL
# (where a refused connection fails at once) long enough for the bot's backoff after failed
# commits (1, 2, 4, 8 s ... bot.app.poll) to fail four times in a row, with the jobs that
# share the database (deadline engine, alert sender) failing several times a second.
DB_GONE_FOR = 12.0
PG_ENV = "INTAKE_TEST_DATABASE_URL"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"


class TcpProxy:
    """127.0.0.1:<port> -> target. ``cut()`` closes every connection and refuses new ones
    (the port stops listening); ``restore()`` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._refusing = False

    async def start(self) -> None:
        self._refusing = False
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        self._refusing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def restore(self) -> None:
        await self.start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self._refusing:  # accepted just before the cut
            up_writer.transport.abort()
            writer.transport.abort()
            return
        self.connections += 1
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._open.discard(w)
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        writer.close()


@contextlib.asynccontextmanager
async def postgres_behind_proxy() -> AsyncIterator[tuple[str, str, TcpProxy]]:
    """A throwaway database on the local server; yields (URL through the proxy, direct
    URL, proxy). The database is dropped afterwards."""
    admin_url = make_url(os.environ.get(PG_ENV, LOCAL_PG)).set(drivername="postgresql+asyncpg")
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"intake_faults_{uuid.uuid4().hex[:12]}"
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except (OSError, sa.exc.DBAPIError) as exc:
        await admin.dispose()
        pytest.skip(f"no PostgreSQL server to test against ({type(exc).__name__})")
    proxy = TcpProxy(admin_url.host or "127.0.0.1", admin_url.port or 5432)
    await proxy.start()
    direct = admin_url.set(database=name)
    proxied = direct.set(host="127.0.0.1", port=proxy.port)
    try:
        yield (
            proxied.render_as_string(hide_password=False),
            direct.render_as_string(hide_password=False),
            proxy,
        )
    finally:
        await proxy.cut()
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.mark.slow
async def test_postgresql_unreachable_for_a_while_mid_burst(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    async with (
        postgres_behind_proxy() as (proxied, direct, proxy),
        rig(tmp_path, standin, database_url=proxied, read_url=direct) as r,
    ):
        await started(r)
        burst = set(r.send(400, "burst"))
        await r.until(
            lambda: len(burst & standin.confirmed_update_ids()) >= 100,
            within=60,
            what="100 confirmations",
        )
        await proxy.cut()
        assert not burst <= standin.confirmed_update_ids(), "the cut came after the burst"
        r.send(20, "while the database is gone")
        await asyncio.sleep(DB_GONE_FOR)
        r.assert_alive("the database's absence")
        stuck = standin.confirmed_update_ids()
        await r.assert_nothing_confirmed_is_lost()
        assert set(r.queued) - stuck, "everything was confirmed: the cut did not bite"

        before_restore = proxy.connections
        await proxy.restore()
        r.send(10, "after")
        await r.assert_caught_up()
        await r.stop_cleanly()
    assert proxy.connections > before_restore, "the bot never connected again"
    assert "could not store update" in r.bot.output()


@contextlib.asynccontextmanager
async def sqlite_locked(path: Path) -> AsyncIterator[None]:
    """Another process's exclusive write lock on the SQLite file (BEGIN EXCLUSIVE), taken
    in a thread: waiting for the bot's own transaction must not stall the stand-in."""
    conn = await asyncio.to_thread(
        sqlite3.connect, str(path), timeout=30, isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(conn.execute, "BEGIN EXCLUSIVE")
        yield
        await asyncio.to_thread(conn.execute, "ROLLBACK")
    finally:
        await asyncio.to_thread(conn.close)


@pytest.mark.slow
async def test_sqlite_locked_for_a_while_mid_burst(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    async with rig(tmp_path, standin, database_url=sqlite_url(tmp_path)) as r:
        await started(r)
        # Long enough that the lock, which waits for the bot's transaction of the moment,
        # still comes mid-burst on a fast machine (400 were once all in before it).
        burst = set(r.send(1000, "burst"))
        await r.until(
            lambda: len(burst & standin.confirmed_update_ids()) >= 100,
            within=60,
            what="100 confirmations",
        )
        async with sqlite_locked(tmp_path / "intake.db"):
            loop = asyncio.get_running_loop()
            locked_at = loop.time()
            assert not burst <= standin.confirmed_update_ids(), "the lock came after the burst"
            r.send(20, "while the database is locked")
            held = standin.confirmed_update_ids()
            # Held until the bot has given up on a batch (bot.app._take_in: the batch's
            # transaction, then its first update alone, each failing after the 10 s busy
            # timeout), so that it goes round poll()'s backoff with nothing committed; and
            # for DB_GONE_FOR at least.
            await r.until(
                lambda: "could not store update" in r.bot.output(),
                within=45,
                what="the bot to give up on a batch under the lock",
            )
            await asyncio.sleep(max(0.0, locked_at + DB_GONE_FOR - loop.time()))
            r.assert_alive("the lock")
            # Nothing was confirmed while nothing could be committed (but the batch committed
            # just before the lock, which the next getUpdates confirms).
            assert len(standin.confirmed_update_ids() - held) <= 100
        await r.assert_nothing_confirmed_is_lost()
        r.send(10, "after")
        await r.assert_caught_up()
        await r.stop_cleanly()


@pytest.mark.slow
async def test_postgresql_unreachable_while_the_backlog_drains(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    async with (
        postgres_behind_proxy() as (proxied, direct, proxy),
        rig(tmp_path, standin, database_url=proxied, read_url=direct) as r,
    ):
        backlog = set(r.send(1_500, "queued while the bot was stopped"))
        await r.bot.start()
        await r.until(
            lambda: len(backlog & standin.confirmed_update_ids()) >= 100,
            within=60,
            what="100 confirmations of the backlog",
        )
        await proxy.cut()
        assert not backlog <= standin.confirmed_update_ids(), "the drain was over"
        with contextlib.suppress(TimeoutError):  # the bot exiting ends the wait early
            await asyncio.wait_for(r.bot.proc.wait(), DB_GONE_FOR)
        # Whether or not the bot survived, nothing it confirmed may be missing (a Lost here
        # is a real failure, not the expected one).
        await r.assert_nothing_confirmed_is_lost()
        r.assert_alive("a database outage while draining")
        await proxy.restore()
        await r.assert_caught_up()
        await r.stop_cleanly()
