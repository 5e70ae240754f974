"""The database: one async engine per process, opened in one place.

SQLite is the embedded default, PostgreSQL the shared store for several bot
processes. Both are reached through SQLAlchemy's async engine so that the
bot's event loop never waits on a query.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from storage.glance import MIGRATIONS, head_from_files
from storage.session import AsyncSession

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (about 10 MB of imports) loads only when a migration is to run: a
# database already at the newest revision is recognised without it (head_from_files).
_RECLAIM_WAIT_STEPS = 300  # of 0.1 s: a bot's transactions last well under 30 s
# Execution options of a session's connection (``session.connection(execution_options=
# READ_ONLY)`` before its transaction begins): a transaction that only reads. On SQLite
# it begins DEFERRED, so it neither takes nor waits for the write lock.
READ_ONLY = {"intake_read": True}


class DatabaseError(Exception):
    """The database cannot be reached or used; the message is one line."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # foreign_keys: shredding a group cascades to every sealed row of it.
    # secure_delete: freed pages are zeroed, so deleted ciphertexts and wrapped
    #   keys do not linger in the file.
    # journal_mode=DELETE: the rollback journal is removed at each commit; a WAL
    #   would keep old pages (old wrapped keys) beside the file until a checkpoint.
    # temp_store=MEMORY: sorts and temporary tables never touch the disk.
    # cache_size=-512 (KiB): each connection's page cache, 2 MiB by default, filled
    #   to the brim by any scan of the groups (retention, the forgetting of chats) and
    #   kept: 2 MiB a pooled connection of the bot at rest. Its work is index seeks
    #   (the upper pages stay cached); a scan gains nothing from a cache that it
    #   sweeps, and the file's pages are in the OS's cache either way.
    for pragma in (
        "PRAGMA foreign_keys=ON",
        "PRAGMA secure_delete=ON",
        "PRAGMA journal_mode=DELETE",
        "PRAGMA temp_store=MEMORY",
        "PRAGMA busy_timeout=10000",
        "PRAGMA cache_size=-512",
    ):
        cursor.execute(pragma)
    cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL and an in-memory database."""
    if not url.startswith("sqlite"):
        return None
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def create_engine(url: str) -> AsyncEngine:
    """Create the process's engine for an async URL (``sqlite+aiosqlite`` or
    ``postgresql+asyncpg``)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 10})
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # aiosqlite's default of deferred transactions lets two writers both
        # read and then fail to upgrade their lock; BEGIN IMMEDIATE takes the
        # write lock first so they queue instead.
        sa.event.listen(engine.sync_engine, "begin", _begin_immediate)
        sa.event.listen(engine.sync_engine, "connect", _disable_pysqlite_begin)
        return engine
    try:
        return create_async_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        if exc.name != "asyncpg":
            raise
        raise DatabaseError(
            "PostgreSQL needs the asyncpg driver: pip install 'checkin-intake[postgres]'"
        ) from None


def _begin_immediate(conn: sa.Connection) -> None:
    # A probe of what is due next (storage.due) only reads: it runs without a
    # transaction of its own, so it never queues for the write lock. A READ_ONLY
    # transaction reads a consistent snapshot without the write lock.
    options = conn.get_execution_options()
    if options.get("intake_probe"):
        return
    conn.exec_driver_sql("BEGIN" if options.get("intake_read") else "BEGIN IMMEDIATE")


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    # Let the "begin" listener above issue BEGIN itself (SQLAlchemy's documented
    # recipe for SQLite transaction control).
    dbapi_connection.isolation_level = None


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command

    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise DatabaseError("the package carries no migrations (a broken install)")
    return head


def _stored_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return str(rows[0][0]) if len(rows) == 1 else None


async def _at_head(engine: AsyncEngine) -> bool:
    head = head_from_files()
    if head is None:
        return False
    async with engine.connect() as conn:
        reader = await conn.execution_options(intake_probe=True)  # reads only: no write lock
        return await reader.run_sync(_stored_revision) == head


async def migrate(engine: AsyncEngine) -> None:
    """Bring the database to the current revision (idempotent)."""
    try:
        if await _at_head(engine):
            return
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    except (OSError, sa.exc.DBAPIError) as exc:
        raise DatabaseError(f"cannot open the database: {reason(exc)}") from None


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def reclaim_deleted(
    engine: AsyncEngine,
    *,
    tables: Sequence[str],
    on_table: Callable[[str], None] | None = None,
) -> None:
    """Make rows deleted from ``tables`` unrecoverable from the database files.

    SQLite zeroes them as it deletes (secure_delete). PostgreSQL leaves dead
    rows in its data files until they are rewritten, so the tables are
    rewritten with VACUUM FULL (which cannot run inside a transaction), one at
    a time; ``on_table`` is told each table once it is done (for a progress bar).
    """
    if engine.dialect.name != "postgresql":
        for table in tables:
            if on_table is not None:
                on_table(table)
        return
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # VACUUM keeps a deleted row while a transaction older than its deletion
        # still runs, anywhere on the server (it holds back VACUUM's own snapshot):
        # wait, a bounded while, until every transaction begun before now has ended.
        mark = (await autocommit.exec_driver_sql("SELECT txid_current()")).scalar_one()
        for _ in range(_RECLAIM_WAIT_STEPS):
            oldest = (
                await autocommit.exec_driver_sql(
                    "SELECT txid_snapshot_xmin(txid_current_snapshot())"
                )
            ).scalar_one()
            if oldest > mark:
                break
            await asyncio.sleep(0.1)
        for table in tables:
            quoted = engine.dialect.identifier_preparer.quote(table)
            await autocommit.exec_driver_sql(f"VACUUM FULL {quoted}")
            if on_table is not None:
                on_table(table)
        await autocommit.exec_driver_sql("CHECKPOINT")


def reason(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's statement and parameters
    (which would print sealed values and could print codenames)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


@contextlib.asynccontextmanager
async def open_database(
    url: str, *, migrate_to_head: bool = True, must_exist: bool = False
) -> AsyncIterator[AsyncEngine]:
    """The one place a process opens (and closes) its database.

    ``must_exist``: a SQLite file that is not there is an error rather than a new,
    empty database (only `intake init` creates one; a typo in the path must not
    look like an installation with no groups)."""
    path = sqlite_file(url)
    if must_exist and path is not None and not path.exists():
        raise DatabaseError(
            f"no database at {path}: run `intake init` first, or correct [database] url"
        )
    engine = create_engine(url)
    try:
        if migrate_to_head:
            await migrate(engine)
        yield engine
    finally:
        await engine.dispose()
