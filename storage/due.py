"""When something is next due, and who wants to hear that it moved.

The deadline engine and the alert sender sleep until the earliest stored
moment something is due for them (``engine_due``, ``send_due``) instead of
looking on a tick. A write that can move that moment wakes them early:

- in this process, every session commit that wrote ``groups``, ``flips``,
  ``alerts`` or ``legs`` calls the callbacks subscribed for its engine
  (``subscribe``), after the commit, so the woken look sees the write;
- across processes on PostgreSQL, statement triggers on those tables
  (migration 0006) ``NOTIFY intake_due`` at commit, and ``Listener`` turns the
  notification into the same callbacks;
- across processes on SQLite (``intake`` commands beside the bot), ``Listener``
  watches the database file with Linux's inotify: another process's commit
  writes the file, and the bot looks again (any write: it costs one probe).

A lost notification (a dropped connection, no inotify) is covered by the
callers' slow safety look.

A look (``Probe``) is one read-only statement on a connection kept for it,
outside any write transaction: on PostgreSQL in autocommit; on SQLite through
a read-only connection of the plain driver, run in the event loop itself (a
few index pages: tens of microseconds, where aiosqlite's thread hops and
SQLAlchemy's framing cost milliseconds under load). It never waits for a lock:
a writer holding one is committing (SQLite's readers wait only for a commit), so
the look answers with what it last knew, or ``LOCKED_RETRY`` from now if that is
sooner. The watch on the file wakes the bot as a commit begins to write, so such
a look is common; answering "in 50 ms" then made the engine sleep through
deadlines it already knew were sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from storage.models import Alert, AlertState, Flip, Group
from storage.timeutil import utc_now

log = logging.getLogger(__name__)
CHANNEL = "intake_due"
# The tables whose writes can move what is due next.
WATCHED = frozenset({"groups", "flips", "alerts", "legs"})
# An execution option that tells storage.db's "begin" hook not to take
# SQLite's write lock: the probe only reads.
PROBE_OPTION = "intake_probe"
# SQLite locked by a committing writer: look again this soon (a commit holds
# readers off for its fsyncs, milliseconds; its own process's commit also wakes us).
LOCKED_RETRY = timedelta(milliseconds=5)
_FLAG = "intake_due_moved"

# What the engine and the sender each wait for.
ENGINE_TABLES = frozenset({"groups", "flips", "legs"})
SEND_TABLES = frozenset({"alerts"})

Callback = Callable[[], None]
_Subscription = tuple[frozenset[str], Callback]
_subscribers: weakref.WeakKeyDictionary[sa.Engine, list[_Subscription]] = (
    weakref.WeakKeyDictionary()
)


def subscribe(
    engine: AsyncEngine, callback: Callback, *, tables: frozenset[str]
) -> Callable[[], None]:
    """Call ``callback`` after each commit through ``engine`` (this process) that
    wrote one of ``tables``. Returns the function that unsubscribes."""
    _install()
    subscriptions = _subscribers.setdefault(engine.sync_engine, [])
    mine = (tables, callback)
    subscriptions.append(mine)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            subscriptions.remove(mine)

    return unsubscribe


def _wake(engine: sa.Engine | None, written: set[str]) -> None:
    if engine is None:
        return
    for tables, callback in list(_subscribers.get(engine, ())):
        if tables & written:
            callback()


def _install() -> None:
    """Session hooks, installed once for every session of the process."""
    if event.contains(Session, "after_commit", _after_commit):
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)


def _table_of(instance: object) -> str | None:
    table = getattr(type(instance), "__tablename__", None)
    return table if isinstance(table, str) else None


def _written(session: Session) -> set[str]:
    written = session.info.get(_FLAG)
    if not isinstance(written, set):
        written = session.info[_FLAG] = set()
    return written


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    for instance in (*session.new, *session.dirty, *session.deleted):
        table = _table_of(instance)
        if table in WATCHED:
            _written(session).add(table)


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_insert or state.is_delete):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    if isinstance(name, str) and name in WATCHED:
        _written(state.session).add(name)


def _after_commit(session: Session) -> None:
    written = session.info.pop(_FLAG, None)
    if written:
        bind = session.bind
        _wake(bind if isinstance(bind, sa.Engine) else None, written)


def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)


# --------------------------------------------------------------------------- probes

# One row of two moments, either of which may be missing.
_Moments = sa.Select[datetime | None, datetime | None]


def _engine_due_query() -> _Moments:
    transition = (
        sa.select(Group.next_transition_at)
        .where(Group.next_transition_at.is_not(None), Group.shredded_at.is_(None))
        .order_by(Group.next_transition_at)
        .limit(1)
        .scalar_subquery()
    )
    reminder = (
        sa.select(Flip.next_reminder_at)
        .where(Flip.next_reminder_at.is_not(None))
        .order_by(Flip.next_reminder_at)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(transition, reminder)


def _send_due_query() -> _Moments:
    pending = Alert.state == AlertState.PENDING
    unclaimed = (
        sa.select(Alert.next_attempt_at)
        .where(pending, Alert.claimed_until.is_(None))
        .order_by(Alert.next_attempt_at)
        .limit(1)
        .scalar_subquery()
    )
    # A claimed row is due again when its claim runs out (a dead sender's), or
    # when its attempt is due, whichever is later: the earliest claim end bounds it.
    claimed = (
        sa.select(Alert.claimed_until)
        .where(pending, Alert.claimed_until.is_not(None))
        .order_by(Alert.claimed_until)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(unclaimed, claimed)


ENGINE_DUE = _engine_due_query()
SEND_DUE = _send_due_query()


def earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


class Probe:
    """Looks up when something is next due, on one connection kept for it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._plain: sqlite3.Connection | None = None
        database = engine.url.database
        self._file = (
            Path(database).absolute()
            if engine.dialect.name == "sqlite" and database and database != ":memory:"
            else None
        )
        self._compiled: dict[int, tuple[str, list[Any]]] = {}
        # The last answer of each query: what a look blocked by a commit falls back on.
        self._known: dict[int, datetime | None] = {}

    async def _open(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            if self._engine.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            else:
                await connection.execution_options(**{PROBE_OPTION: True})
            self._connection = connection
        return self._connection

    def _plain_sqlite(self, query: _Moments) -> tuple[datetime | None, datetime | None] | None:
        """The look through the plain driver; None where it cannot tell (then the
        SQLAlchemy path looks)."""
        if self._file is None:
            return None
        if self._plain is None:
            self._plain = sqlite3.connect(
                f"{self._file.as_uri()}?mode=ro",
                uri=True,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
            )
        compiled = self._compiled.get(id(query))
        if compiled is None:
            dialect = self._engine.dialect
            sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            processors = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in query.selected_columns
            ]
            compiled = self._compiled[id(query)] = (sql, processors)
        sql, processors = compiled
        try:
            row = self._plain.execute(sql).fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                now = utc_now()
                known = self._known.get(id(query))
                # A moment already past was taken, or will be seen in LOCKED_RETRY.
                return now + LOCKED_RETRY, known if known is not None and known > now else None
            log.debug("the plain probe failed (%s); through SQLAlchemy", type(exc).__name__)
            return None
        first, second = (p(v) if p else v for p, v in zip(processors, row, strict=True))
        self._known[id(query)] = earliest(first, second)
        return first, second

    async def _earliest(self, query: _Moments) -> datetime | None:
        return earliest(*await self._moments(query))

    async def _moments(self, query: _Moments) -> tuple[datetime | None, datetime | None]:
        plain = self._plain_sqlite(query)
        if plain is not None:
            return plain
        connection = await self._open()
        try:
            row = (await connection.execute(query)).one()
            if connection.in_transaction():
                # SQLite: nothing began (no BEGIN was sent); end SQLAlchemy's
                # own bookkeeping of the statement's implicit transaction.
                await connection.rollback()
        except BaseException:
            await self.close()
            raise
        return row[0], row[1]

    async def engine_due(self) -> datetime | None:
        """The earliest next transition or reminder, or None if nothing waits."""
        return await self._earliest(ENGINE_DUE)

    async def engine_moments(self) -> tuple[datetime | None, datetime | None]:
        """The earliest next transition and the earliest reminder (either None if
        none waits); while a writer commits on SQLite, a moment to look again and the
        earliest of both last known."""
        return await self._moments(ENGINE_DUE)

    async def send_due(self) -> datetime | None:
        """The earliest moment a pending alert may be sent (or its claim runs out)."""
        return await self._earliest(SEND_DUE)

    async def close(self) -> None:
        plain, self._plain = self._plain, None
        if plain is not None:
            plain.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


class _FileWatch:
    """Calls back when a file is written (Linux inotify through libc; no package)."""

    IN_MODIFY = 0x00000002
    IN_NONBLOCK = 0o4000
    IN_CLOEXEC = 0o2000000

    def __init__(self, path: str, callback: Callback) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(fd, os.fsencode(path), self.IN_MODIFY) < 0:
            os.close(fd)
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self._fd = fd
        self._callback = callback
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 4096):  # drain: one wake-up for a commit's writes
                pass
        self._callback()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)


class Listener:
    """Hears of writes by other processes that may move the next deadline: on
    PostgreSQL by ``LISTEN intake_due``, on SQLite by watching the database file.
    This process's own commits wake it through ``subscribe`` either way."""

    def __init__(
        self, engine: AsyncEngine, callbacks: Sequence[_Subscription], *, enabled: bool = True
    ) -> None:
        self._engine = engine
        self._callbacks = list(callbacks)
        self._postgres = engine.dialect.name == "postgresql"
        self._file = None if self._postgres else engine.url.database
        # Off ([alerts] notifications = false), or an in-memory SQLite: nothing to hear.
        self.wanted = enabled and (self._postgres or bool(self._file and self._file != ":memory:"))
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        self._watch: _FileWatch | None = None

    @property
    def listening(self) -> bool:
        if self._watch is not None:
            return True
        return self._driver is not None and not self._driver.is_closed()

    def _heard(self, _connection: object, _pid: object, _channel: object, table: object) -> None:
        # The payload is the table written (the trigger's TG_TABLE_NAME).
        for tables, callback in self._callbacks:
            if not table or table in tables:
                callback()

    def _written(self) -> None:
        for _, callback in self._callbacks:
            callback()

    async def ensure(self) -> bool:
        """Listen if not listening yet (or any more: the connection was lost);
        returns whether it listens. Called at start and before the engine's looks."""
        if not self.wanted:
            return False
        if self.listening:
            return True
        await self.close()
        if self._file is not None:
            try:
                self._watch = _FileWatch(self._file, self._written)
            except (OSError, AttributeError) as exc:  # not Linux, or no such file yet
                log.warning("could not watch the database file (%s)", type(exc).__name__)
                self.wanted = False  # the safety look it is
                return False
            return True
        try:
            connection = await self._engine.connect()
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            if driver is None:
                await connection.close()
                return False
            await driver.add_listener(CHANNEL, self._heard)
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            log.warning("could not listen for new deadlines (%s)", type(exc).__name__)
            return False
        self._connection, self._driver = connection, driver
        # Whatever was written while nobody listened: look once now.
        self._written()
        return True

    async def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
        connection, driver = self._connection, self._driver
        self._connection = self._driver = None
        if driver is not None and not driver.is_closed():
            with contextlib.suppress(Exception):
                await driver.remove_listener(CHANNEL, self._heard)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
