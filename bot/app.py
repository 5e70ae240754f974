"""The running bot: build the Application, drain what queued while it was down,
then receive by polling or by webhook until told to stop.

python-telegram-bot's own Updater is not used: it confirms updates to
Telegram before their handlers finish, so a crash would lose them. Here an
update is confirmed only after ``Intake.handle`` has committed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlmodel import select
from telegram import Update
from telegram.error import Conflict, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ApplicationBuilder

from bot import handlers, watch
from bot.config import Settings
from bot.intake import BotApplication, Intake, Runtime
from bot.webhook import serve_webhook
from storage.crypto import ServerKeys
from storage.db import open_database, session_factory
from storage.models import Operator
from storage.sealing import NoRecipients
from storage.timeutil import utc_now

log = logging.getLogger(__name__)
LONG_POLL_SECONDS = 25
MAX_BACKOFF_SECONDS = 30.0

# What runs once the backlog is drained, before the deadline engine starts
# (bot.watch) and live updates are taken: the bot's own downtime never looks
# like silence.
AfterDrain = Callable[[BotApplication], Awaitable[None]]


def build_application(settings: Settings, runtime: Runtime) -> BotApplication:
    application = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(settings.telegram.base_url)
        .base_file_url(settings.telegram.file_base_url)
        .updater(None)
        .build()
    )
    application.bot_data["runtime"] = runtime
    handlers.register(application)
    return application


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[BotApplication, Intake]]:
    """Open the database and the Application; close both, in one place."""
    async with open_database(settings.database.url) as engine:
        sessions = session_factory(engine)
        async with sessions() as session:
            if (await session.exec(select(Operator.id).limit(1))).first() is None:
                raise NoRecipients(
                    "no operator key is registered, so nothing received could be sealed: "
                    "run `intake operator add` first"
                )
        runtime = Runtime(
            settings=settings,
            server=ServerKeys(settings.server_secret_bytes()),
            engine=engine,
            sessions=sessions,
        )
        application = build_application(settings, runtime)
        async with application:  # initialize() ... shutdown()
            await application.start()  # the job queue (self-deleting replies)
            try:
                yield application, Intake(application, runtime)
            finally:
                await application.stop()


async def serve(
    settings: Settings, *, stop: asyncio.Event, after_drain: AfterDrain | None = None
) -> None:
    started_at = utc_now()
    async with running(settings) as (application, intake):
        await handlers.set_default_commands(application.bot)
        if settings.telegram.mode == "webhook":
            # Telegram holds back getUpdates while a webhook is set: take the
            # webhook down, drain, and put it back.
            await application.bot.delete_webhook(drop_pending_updates=False)
        offset = await drain(application, intake)
        if after_drain is not None:
            await after_drain(application)
        await watch.start(application, started_at=started_at)
        if settings.telegram.mode == "webhook":
            await serve_webhook(settings, application, intake, stop=stop)
        else:
            await poll(application, intake, offset=offset, stop=stop)


async def drain(application: BotApplication, intake: Intake) -> int | None:
    """Take in every update that queued while the bot was down, oldest first."""
    offset: int | None = None
    count = 0
    while True:
        updates = await _get_updates(application, offset=offset, poll_seconds=0)
        if updates is None:
            continue
        if not updates:
            break
        for update in updates:
            await intake.handle(update)
            offset = update.update_id + 1
            count += 1
    log.info("drained %d update(s) that queued while the bot was down", count)
    return offset


async def poll(
    application: BotApplication,
    intake: Intake,
    *,
    offset: int | None,
    stop: asyncio.Event,
) -> None:
    """Long-poll until ``stop``; an update's offset moves past it only once it is committed."""
    backoff = 1.0
    while not stop.is_set():
        updates = await _wait_or_stop(
            _get_updates(application, offset=offset, poll_seconds=LONG_POLL_SECONDS), stop
        )
        if updates is None:
            continue
        for update in updates:
            try:
                await intake.handle(update)
            except Exception as exc:
                # Not committed, so not confirmed: Telegram gives it again next time.
                log.error(
                    "could not store update %d (%s); retrying in %.0fs",
                    update.update_id,
                    type(exc).__name__,
                    backoff,
                )
                await _sleep_or_stop(backoff, stop)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                break
            offset = update.update_id + 1
            backoff = 1.0
    # Confirm what was committed since the last call, so it is not redelivered.
    if offset is not None:
        with contextlib.suppress(TelegramError):
            await application.bot.get_updates(offset=offset, timeout=0, limit=1)


async def _get_updates(
    application: BotApplication,
    *,
    offset: int | None,
    poll_seconds: int,
) -> list[Update] | None:
    """One getUpdates call; None after a transient failure (already waited out)."""
    try:
        return list(
            await application.bot.get_updates(
                offset=offset,
                timeout=poll_seconds,
                allowed_updates=Update.ALL_TYPES,
                read_timeout=poll_seconds + 10,
            )
        )
    except RetryAfter as exc:
        delay = exc.retry_after
        await asyncio.sleep(
            delay.total_seconds() if hasattr(delay, "total_seconds") else float(delay)
        )
    except (TimedOut, NetworkError, Conflict) as exc:
        log.warning("getUpdates failed (%s); trying again", type(exc).__name__)
        await asyncio.sleep(1)
    return None


async def _wait_or_stop(
    call: Awaitable[list[Update] | None], stop: asyncio.Event
) -> list[Update] | None:
    task = asyncio.ensure_future(call)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TelegramError):
        await task
    return None


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def run_forever(settings: Settings) -> None:
    """`intake run`: serve until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop=stop)

    asyncio.run(main())
