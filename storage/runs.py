"""Bot processes ("runs") and their heartbeats: a crash costs seconds, not a claim;
and which of several processes sends the alerts.

Each running bot registers a ``Run``; on PostgreSQL it beats every
``BEAT_EVERY`` (a SQLite file has one bot process, whose sender only reads the
outbox: ``storage.alerts.take_due``). A sender on PostgreSQL claims alerts in
its run's name (``alerts.claimed_by``). A run is dead when its
process is gone from this machine (same boot, no such pid: a restart sees that
at once) or when its heartbeat is older than ``STALE_AFTER`` (a run on another
machine, or a hung one). The claims of dead runs are released at start and at
every beat, so the alerts a killed process held go out within seconds instead
of after ``storage.alerts.CLAIM_FOR``.

Several bot processes on one PostgreSQL database all run the deadline engine,
but only one sends (``SenderLock``): Telegram's limits (30 messages a second,
one a second to a chat) are per bot, not per process, and one activist's alerts
make one digest only if one sender gathers them. The others wait for the lock
and take over when its holder's connection ends (a stop, a crash, a lost
network). Claims still guard each alert, so that even two senders at once (a
holder that has not yet noticed its connection is gone) never send one twice.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.models import Alert, AlertState, Run
from storage.session import AsyncSession

# A beat is a write: every 5 s keeps the idle bot near zero. A restart on the same
# machine does not wait for staleness (the dead pid is seen at once); staleness is
# for a run on another machine, or a hung one. Three beats missed: a busy event
# loop can delay one, not three.
BEAT_EVERY = timedelta(seconds=5)
STALE_AFTER = timedelta(seconds=15)
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# PostgreSQL advisory lock of the process that sends a bot's alerts: this class with
# the bot's id (beside bot.startup's poller lock, 0x1A7A4E).
SENDER_LOCK_CLASS = 0x1A7A4F


def boot_id() -> str:
    """This machine's current boot (random, changes at each boot; names nothing)."""
    try:
        return _BOOT_ID.read_text().strip()[:40]
    except OSError:
        return "unknown"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


async def register(session: AsyncSession, *, run_id: uuid.UUID, now: datetime) -> None:
    session.add(
        Run(id=run_id, boot_id=boot_id(), pid=os.getpid(), started_at=now, heartbeat_at=now)
    )
    await session.flush()


async def beat(session: AsyncSession, *, run_id: uuid.UUID, now: datetime) -> None:
    beaten = await session.exec(update(Run).where(Run.id == run_id).values(heartbeat_at=now))
    if beaten.rowcount == 0:  # judged dead while paused (and its claims released): back
        await register(session, run_id=run_id, now=now)


def is_dead(run: Run, *, now: datetime, here: str) -> bool:
    """Pure but for the pid look-up: a run gone from this machine, or silent too long."""
    if run.heartbeat_at < now - STALE_AFTER:
        return True
    return run.boot_id == here and run.pid != os.getpid() and not process_alive(run.pid)


async def release_dead(session: AsyncSession, *, run_id: uuid.UUID, now: datetime) -> int:
    """Forget dead runs and release the alerts they had claimed; returns how many."""
    here = boot_id()
    others = (await session.exec(select(Run).where(Run.id != run_id))).all()
    dead = [run.id for run in others if is_dead(run, now=now, here=here)]
    if not dead:
        return 0
    released = await session.exec(
        update(Alert)
        .where(Alert.claimed_by.in_(dead), Alert.state == AlertState.PENDING)
        .values(claimed_until=None, claimed_by=None)
    )
    await session.exec(delete(Run).where(Run.id.in_(dead)))
    return released.rowcount


async def end(session: AsyncSession, *, run_id: uuid.UUID) -> None:
    """A clean stop: release this run's own claims and forget it."""
    await session.exec(
        update(Alert)
        .where(Alert.claimed_by == run_id, Alert.state == AlertState.PENDING)
        .values(claimed_until=None, claimed_by=None)
    )
    await session.exec(delete(Run).where(Run.id == run_id))


class SenderLock:
    """Whether this process sends the alerts of bot ``bot_id``.

    On PostgreSQL, the holder of a session advisory lock, taken on a connection
    kept for it: ``take`` waits in the server (no polling) until no other process
    holds it, and the server releases it when the holder's connection ends. On
    SQLite the bot is the only process on the file (``bot.startup.sqlite_lock``),
    so it always sends.
    """

    def __init__(self, engine: AsyncEngine, bot_id: int) -> None:
        self._engine = engine
        self._key = {"cls": SENDER_LOCK_CLASS, "obj": bot_id % 2**31}
        self._shared = engine.dialect.name == "postgresql"
        self._connection: AsyncConnection | None = None
        self._driver: Any = None

    @property
    def held(self) -> bool:
        if not self._shared:
            return True
        # asyncpg marks its connection closed as soon as the socket is: a holder
        # whose connection dropped (and with it the lock) stops sending at once.
        return self._driver is not None and not self._driver.is_closed()

    async def take(self) -> None:
        """Return once this process holds the lock (at once on SQLite)."""
        if self.held:
            return
        await self.close()
        connection = await self._engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(sa.text("SELECT pg_advisory_lock(:cls, :obj)"), self._key)
            raw = await connection.get_raw_connection()
        except BaseException:
            await _discard(connection)
            raise
        self._connection, self._driver = connection, raw.driver_connection

    async def close(self) -> None:
        """Give the lock up (a closed session releases its advisory locks)."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            await _discard(connection)


async def _discard(connection: AsyncConnection) -> None:
    """Close a connection for good, not back to the pool: a pooled connection
    would keep the session, and with it the lock (or a cancelled wait for it)."""
    with contextlib.suppress(Exception):
        await connection.invalidate()
    with contextlib.suppress(Exception):
        await connection.close()
