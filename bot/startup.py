"""What `intake run` checks before it serves, and how each failure is told.

Every start-up failure is one :class:`StartupFailure`: one line that never holds the
token or a traceback, and an exit status in systemd's terms (``sysexits.h``): 78 when
the configuration must change, 69 when something it needs is not available now, so
that ``Restart=on-failure`` with ``RestartPreventExitStatus=78`` retries only the
second kind.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config import Settings
from storage.db import sqlite_file

EX_UNAVAILABLE = 69
EX_CONFIG = 78

# PostgreSQL advisory lock of the process that polls a bot's updates: this class
# with the bot's id (two processes polling one token take each other's updates).
_POLLER_LOCK_CLASS = 0x1A7A4E


class StartupFailure(Exception):
    """The bot cannot start; ``str()`` is one line, ``status`` the exit status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status


def too_open(path: Path) -> str | None:
    """Why ``path`` is too open for a secret (readable or writable by others), or None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # reading it already failed, with its own message
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} has mode {stat.S_IMODE(mode):04o}; run `chmod 600 {path}`"
    return None


def check_secret_modes(settings: Settings) -> None:
    """Refuse secrets others may read, as ssh refuses a world-readable key."""
    for path in settings.secret_files:
        problem = too_open(path)
        if problem is not None:
            raise StartupFailure(
                f"refusing a secret file others may read: {problem}", status=EX_CONFIG
            )


@contextlib.contextmanager
def sqlite_lock(url: str) -> Iterator[None]:
    """Hold the SQLite file for this process alone while it runs.

    ``flock`` on the database file itself: SQLite's own locks are POSIX record locks,
    which ``flock`` does not touch, so other commands (`intake status`) still work.
    """
    path = sqlite_file(url)
    if path is None:
        yield
        return
    if not path.exists():
        raise StartupFailure(
            f"no database at {path}: run `intake init` first, or correct [database] url",
            status=EX_CONFIG,
        )
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupFailure(
                f"another intake process is already running on {path}", status=EX_UNAVAILABLE
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.asynccontextmanager
async def poller_lock(engine: AsyncEngine, bot_id: int) -> AsyncIterator[None]:
    """On PostgreSQL, one poller per bot: a session advisory lock held on its own
    connection for as long as the process polls. SQLite is held by ``sqlite_lock``."""
    if engine.dialect.name != "postgresql":
        yield
        return
    conn: AsyncConnection = await engine.connect()
    try:
        taken = (
            await conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:cls, :obj)"),
                {"cls": _POLLER_LOCK_CLASS, "obj": bot_id % 2**31},
            )
        ).scalar_one()
        await conn.commit()
        if not taken:
            raise StartupFailure(
                "another intake process is already polling this bot's updates on this database",
                status=EX_UNAVAILABLE,
            )
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.close()  # a closed session releases its advisory locks


def telegram_host(settings: Settings) -> str:
    """Where the Bot API is, for messages: the host only (the token is in the path)."""
    parts = urlsplit(settings.telegram.base_url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def url_host(url: str) -> str:
    """The host of an address, for a log line (not its path, which may be secret)."""
    return urlsplit(url).hostname or "?"


def database_kind(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def lighten() -> None:
    """Keep out of the bot's process what it never uses.

    httpcore (python-telegram-bot's HTTP client) imports trio whenever trio is
    installed, to tell which event loop runs it: in the test environment trio
    comes with selenium, and that is about 75 modules and 4 MB in a bot that runs
    only on asyncio. ``None`` in ``sys.modules`` makes that import fail, as it does
    where trio is not installed (as in a production install)."""
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]


def loaded() -> None:
    """Everything the bot runs is imported: what exists now lives as long as the process
    (modules, classes, functions), so it is moved out of the cyclic collector's sight
    (``gc.freeze``, a full collection never walks it again) and the collector, which
    ``bot.cli.main`` turned off for the imports, runs again for what comes next."""
    gc.freeze()
    gc.enable()


def run_from_command_line(config: Path | None) -> None:
    """`intake run`: load the settings, check them, serve until SIGINT or SIGTERM.

    Typer-free, so that the long-lived bot loads none of the other commands (typer,
    rich, matplotlib): ``bot.cli.main`` calls this straight for a plain ``run``, and
    the typer command calls it too, so both paths fail alike."""
    lighten()
    from bot import logs, tls

    tls.prepare()  # beside the imports below (bot.tls)
    from bot.config import ConfigError, load_settings, resolve_config_path

    try:
        settings = load_settings(resolve_config_path(config))
        settings.require_token()
        check_secret_modes(settings)
    except ConfigError as exc:
        _exit(str(exc), EX_CONFIG)
    except StartupFailure as exc:
        _exit(str(exc), exc.status)
    logs.configure(settings.logging.level)
    from bot import app as bot_app

    loaded()
    try:
        bot_app.run_forever(settings)
    except StartupFailure as exc:
        _exit(str(exc), exc.status)


def _exit(message: str, status: int) -> NoReturn:
    print(f"intake: error: {message}", file=sys.stderr)
    sys.exit(status)
