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
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from telegram import Update
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ApplicationBuilder
from telegram.request import HTTPXRequest
from telegram.warnings import PTBUserWarning

from bot import handlers, startup, tls, watch
from bot.config import Settings
from bot.intake import BotApplication, Intake, Runtime, Taken
from bot.integrity import jobs as integrity_jobs
from bot.received import unreadable_update
from storage.db import DatabaseError, open_database, reason, session_factory
from storage.groups import count_live_groups
from storage.models import Operator
from storage.timeutil import utc_now
from storage.trust import bind_installation

log = logging.getLogger(__name__)
LONG_POLL_SECONDS = 25
MAX_BACKOFF_SECONDS = 30.0
# A 409 Conflict on getUpdates that lasts longer than this is another process polling
# the same bot token (or a webhook set for it): the run ends, status 69, rather than
# the two taking each other's updates forever. One long poll and more: a restart may
# meet its predecessor's poll, still open at Telegram, once.
CONFLICT_LIMIT_SECONDS = 2.0 * LONG_POLL_SECONDS + 10

# What runs once the backlog is drained, before the deadline engine starts
# (bot.watch) and live updates are taken: the bot's own downtime never looks
# like silence.
AfterDrain = Callable[[BotApplication], Awaitable[None]]


def build_application(settings: Settings, runtime: Runtime) -> BotApplication:
    # PTB's defaults (256 connections, 1 for getUpdates), with the one TLS context.
    verify = {"verify": tls.context()}
    application = (
        ApplicationBuilder()
        .token(settings.require_token())
        .request(HTTPXRequest(connection_pool_size=256, httpx_kwargs=verify))
        .get_updates_request(HTTPXRequest(connection_pool_size=1, httpx_kwargs=verify))
        .base_url(settings.telegram.base_url)
        .base_file_url(settings.telegram.file_base_url)
        .updater(None)
        .build()
    )
    application.bot_data["runtime"] = runtime
    queue = application.job_queue
    if queue is not None:
        # A job is run however late it comes: APScheduler skipped one more than a second
        # late (an event loop busy with a burst, a slow disk), and with it a receipt's
        # deletion, left in the relative's chat until the next restart.
        queue.scheduler.configure(
            **queue.scheduler_configuration, job_defaults={"misfire_grace_time": None}
        )
    handlers.register(application)
    return application


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[BotApplication, Intake]]:
    """Open the database and the Application; close both, in one place.

    Whatever keeps the bot from starting is a ``StartupFailure`` (one line, no token):
    another process on the SQLite file, a database that is missing or unreachable, no
    operator key, a token Telegram refuses, Telegram out of reach."""
    with startup.sqlite_lock(settings.database.url):
        try:
            async with open_database(settings.database.url, must_exist=True) as engine:
                installation = bind_installation(
                    engine, secret=settings.server_secret_bytes(), config_dir=settings.config_dir
                )
                sessions = session_factory(engine)
                async with sessions() as session:
                    if (await session.exec(select(Operator.id).limit(1))).first() is None:
                        raise startup.StartupFailure(
                            "no operator key is registered, so nothing received could be "
                            "sealed: run `intake operator add` first",
                            status=startup.EX_CONFIG,
                        )
                runtime = Runtime(
                    settings=settings,
                    server=installation.server,
                    engine=engine,
                    sessions=sessions,
                )
                application = build_application(settings, runtime)
                try:
                    await _initialize(settings, application)
                    await application.start()  # the job queue (self-deleting replies)
                    try:
                        yield application, Intake(application, runtime)
                    finally:
                        await watch.stop(application)
                        await application.stop()
                finally:
                    await application.shutdown()
        except DatabaseError as exc:
            raise startup.StartupFailure(str(exc), status=startup.EX_UNAVAILABLE) from None
        except (OSError, SQLAlchemyError) as exc:
            raise startup.StartupFailure(
                f"database: {reason(exc)}", status=startup.EX_UNAVAILABLE
            ) from None


async def _initialize(settings: Settings, application: BotApplication) -> None:
    """``Application.initialize``, which asks Telegram who the bot is (getMe): the
    token is checked here. Messages name the host only (the token is in the URL)."""
    host = startup.telegram_host(settings)
    try:
        await application.initialize()
    except (InvalidToken, Forbidden) as exc:
        del exc  # its text may carry the token
        raise startup.StartupFailure(
            f"Telegram at {host} refused the bot token: check [telegram] token "
            "(as @BotFather gave it)",
            status=startup.EX_CONFIG,
        ) from None
    except TelegramError as exc:
        raise startup.StartupFailure(
            f"cannot reach Telegram at {host} ({type(exc).__name__}); is the network up?",
            status=startup.EX_UNAVAILABLE,
        ) from None


@contextlib.contextmanager
def _telegram_at_start(settings: Settings, doing: str, *, fix: str) -> Iterator[None]:
    """A Bot API call made at start that fails is a ``StartupFailure``: 78 when Telegram
    refuses what the configuration asks (``fix`` says what to change), 69 when Telegram
    cannot be reached. The message names the host only and never holds the token."""
    host = startup.telegram_host(settings)
    try:
        yield
    except (InvalidToken, Forbidden) as exc:
        del exc  # its text may carry the token
        raise startup.StartupFailure(
            f"Telegram at {host} refused the bot token while {doing}: check [telegram] token",
            status=startup.EX_CONFIG,
        ) from None
    except BadRequest as exc:  # before NetworkError, of which it is a kind
        said = _without_token(exc.message, settings)
        raise startup.StartupFailure(
            f"Telegram at {host} refused {doing}: {said}; {fix}", status=startup.EX_CONFIG
        ) from None
    except TelegramError as exc:
        raise startup.StartupFailure(
            f"cannot reach Telegram at {host} while {doing} ({type(exc).__name__}); "
            "is the network up?",
            status=startup.EX_UNAVAILABLE,
        ) from None


def _without_token(text: str, settings: Settings) -> str:
    token = settings.telegram.token
    if token is not None:
        secret = token.get_secret_value()
        for part in (secret, secret.partition(":")[2]):
            if part:
                text = text.replace(part, "<token>")
    return " ".join(text.split())


@dataclass
class _Conflicts:
    """How long getUpdates has met 409 Conflict without a call going through."""

    limit: float
    since: float | None = None

    def met(self, exc: Conflict) -> None:
        now = asyncio.get_running_loop().time()
        if self.since is None:
            self.since = now
            log.warning("getUpdates met a conflict (%s); trying again", _conflict_cause(exc))
            return
        if now - self.since > self.limit:
            raise startup.StartupFailure(
                f"Telegram refused getUpdates for {now - self.since:.0f}s: "
                f"{_conflict_cause(exc)}; stop it, or give this bot its own token",
                status=startup.EX_UNAVAILABLE,
            )

    def cleared(self) -> None:
        if self.since is not None:
            log.info("getUpdates goes through again")
        self.since = None


def _conflict_cause(exc: Conflict) -> str:
    if "webhook" in exc.message.lower():
        return "a webhook is set for this bot token (another process runs in webhook mode)"
    return "another process polls this bot token"


def _conflicts(application: BotApplication) -> _Conflicts:
    found = application.bot_data.get("conflicts")
    if not isinstance(found, _Conflicts):
        found = application.bot_data["conflicts"] = _Conflicts(CONFLICT_LIMIT_SECONDS)
    return found


async def _take_down_webhook(settings: Settings, application: BotApplication) -> None:
    """Polling mode: a webhook left set (the mode was webhook before) holds back every
    getUpdates with 409 Conflict, so it is deleted, with one line saying so."""
    bot = application.bot
    with _telegram_at_start(settings, "the webhook check", fix="try again later"):
        info = await bot.get_webhook_info()
        if not info.url:
            return
        await bot.delete_webhook(drop_pending_updates=False)
    log.warning(
        "a webhook to %s was set for this bot: deleted it, as polling needs",
        startup.url_host(info.url),
    )


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event,
    after_drain: AfterDrain | None = None,
    conflict_limit: float | None = None,
) -> None:
    """Serve until ``stop``. ``conflict_limit``: how long a 409 Conflict on getUpdates
    may last before the run ends (``CONFLICT_LIMIT_SECONDS`` unless given)."""
    started_at = utc_now()
    async with running(settings) as (application, intake), contextlib.AsyncExitStack() as held:
        bot = application.bot
        application.bot_data["conflicts"] = _Conflicts(
            CONFLICT_LIMIT_SECONDS if conflict_limit is None else conflict_limit
        )
        if settings.telegram.mode == "webhook":
            # Listen first: if the port is taken (another bot runs here), stop before
            # touching the webhook that bot is being sent to. (aiohttp loads only here.)
            from bot.webhook import listening

            listener = await held.enter_async_context(
                listening(settings, application, intake, runtime_of(application))
            )
            where = f"webhook on {listener}"
        else:
            await held.enter_async_context(
                startup.poller_lock(runtime_of(application).engine, bot.id)
            )
            where = "polling"
            await _take_down_webhook(settings, application)
        # This process serves now: alerts decided before a crash go out at once, while
        # the menus are set and the backlog is drained (the engine waits for that).
        await watch.start_sender(application)
        log.info(
            "started: %s as @%s, database %s, watching %s",
            where,
            bot.username,
            startup.database_kind(settings.database.url),
            plural_groups(await _groups_watched(application)),
        )
        with _telegram_at_start(settings, "the command menus", fix="try again later"):
            await handlers.set_default_commands(bot)
        if settings.telegram.mode == "webhook":
            # Telegram holds back getUpdates while a webhook is set: take the
            # webhook down, drain, and put it back.
            with _telegram_at_start(settings, "deleting the webhook", fix="try again later"):
                await bot.delete_webhook(drop_pending_updates=False)
        # Replies and messages a restart or a crash left behind go first (promise 3).
        await handlers.restore_deletions(application)
        offset = await drain(application, intake, stop=stop)
        if stop.is_set():
            await _confirm(application, offset)
            return
        if after_drain is not None:
            await after_drain(application)
        await watch.start(application, started_at=started_at)
        handlers.schedule_news_notes(application)
        try:
            if settings.telegram.mode == "webhook":
                from bot.webhook import set_webhook  # aiohttp loads only for a webhook

                public = settings.webhook.public_url
                with _telegram_at_start(
                    settings,
                    f"the webhook {public}",
                    fix="[webhook] public_url must be an https address Telegram can reach",
                ):
                    await set_webhook(settings, application)
                await stop.wait()
            else:
                await poll(application, intake, offset=offset, stop=stop)
        finally:
            await integrity_jobs.checkpoint_at_shutdown(application.bot, runtime_of(application))


def runtime_of(application: BotApplication) -> Runtime:
    runtime = application.bot_data["runtime"]
    assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in build_application)
    return runtime


async def _groups_watched(application: BotApplication) -> int:
    async with runtime_of(application).sessions() as session:
        return await count_live_groups(session)


def plural_groups(count: int) -> str:
    return f"{count} group" if count == 1 else f"{count} groups"


async def _confirm(application: BotApplication, offset: int | None) -> None:
    """Confirm what was committed, so that it is not given again."""
    if offset is not None:
        with contextlib.suppress(TelegramError):
            await application.bot.get_updates(offset=offset, timeout=0, limit=1)


async def drain(
    application: BotApplication, intake: Intake, *, stop: asyncio.Event | None = None
) -> int | None:
    """Take in every update that queued while the bot was down, oldest first, a
    getUpdates batch per transaction."""
    offset: int | None = None
    count = 0
    backoff = 1.0
    replies = handlers.Replies(application)
    try:
        while stop is None or not stop.is_set():
            # SIGTERM is honoured between batches: what was committed is confirmed
            # by the caller; what was not is given again at the next start.
            updates = await _get_updates(application, offset=offset, poll_seconds=0)
            if updates is None:
                continue
            if not updates:
                break
            try:
                committed = await _take_in(intake, updates)
            except _NotCommitted:
                committed = []
            if committed:
                # Confirmed by the next getUpdates, while the replies run.
                offset = updates[len(committed) - 1].update_id + 1
                count += len(committed)
                backoff = 1.0
                await replies.start(updates[: len(committed)], committed)
            if len(committed) < len(updates):
                # The database is away (PostgreSQL restarting, SQLite locked): not
                # confirmed, so Telegram gives it again; wait, as poll() does.
                log.error(
                    "could not store update %d; retrying in %.0fs",
                    updates[len(committed)].update_id,
                    backoff,
                )
                if stop is None:
                    await asyncio.sleep(backoff)
                else:
                    await _sleep_or_stop(backoff, stop)
                    if stop.is_set():
                        break
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
    finally:
        await replies.finish()
    log.info("drained %d update(s) that queued while the bot was down", count)
    return offset


async def poll(
    application: BotApplication,
    intake: Intake,
    *,
    offset: int | None,
    stop: asyncio.Event,
) -> None:
    """Long-poll until ``stop``; the offset moves past a batch only once it is committed."""
    backoff = 1.0
    replies = handlers.Replies(application)
    try:
        while not stop.is_set():
            updates = await _wait_or_stop(
                _get_updates(application, offset=offset, poll_seconds=LONG_POLL_SECONDS), stop
            )
            if not updates:
                continue
            try:
                committed = await _take_in(intake, updates)
            except _NotCommitted:
                committed = []
            if committed:
                offset = updates[len(committed) - 1].update_id + 1
                backoff = 1.0
                await replies.start(updates[: len(committed)], committed)
            if len(committed) < len(updates):
                # Not committed, so not confirmed: Telegram gives it again next time.
                log.error(
                    "could not store update %d; retrying in %.0fs",
                    updates[len(committed)].update_id,
                    backoff,
                )
                await _sleep_or_stop(backoff, stop)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
    finally:
        await replies.finish()
    # Confirm what was committed since the last call, so it is not redelivered.
    await _confirm(application, offset)


class _NotCommitted(Exception):
    """Not even the first update of a batch could be committed."""

    def __init__(self, update_id: int) -> None:
        super().__init__(f"could not store update {update_id}")


async def _take_in(intake: Intake, updates: list[Update]) -> list[Taken]:
    """Commit a batch in one transaction; if that fails, one update at a time, so that
    one update that cannot be stored holds back only itself and those after it.
    Returns the ``Taken`` of the committed first part of the batch, in order; raises
    ``_NotCommitted`` if not even the first update could be committed."""
    try:
        return await intake.take_in_batch(updates, now=utc_now())
    except Exception as exc:
        log.warning(
            "a batch of %d update(s) was not committed (%s); taking them one at a time",
            len(updates),
            type(exc).__name__,
        )
    taken: list[Taken] = []
    for update in updates:
        try:
            taken.append(await intake.take_in(update, now=utc_now()))
            continue
        except Exception as exc:
            if _may_pass(exc):
                log.error("could not store update %d (%s)", update.update_id, type(exc).__name__)
                break
            # Not the database or the network: this update itself cannot be taken in
            # (a malformed value), and retrying it forever would hold back every
            # update behind it.
            log.warning(
                "update %d could not be taken in (%s); confirmed without content",
                update.update_id,
                type(exc).__name__,
            )
        try:
            taken.append(await intake.set_aside(update, now=utc_now()))
        except Exception as exc:
            log.error("could not store update %d (%s)", update.update_id, type(exc).__name__)
            break
    if not taken:
        raise _NotCommitted(updates[0].update_id)
    return taken


def _may_pass(exc: BaseException) -> bool:
    """A failure that a later try may not meet: the database or the network."""
    return isinstance(exc, SQLAlchemyError | OSError | TimeoutError | TelegramError)


async def _get_updates(
    application: BotApplication,
    *,
    offset: int | None,
    poll_seconds: int,
) -> list[Update] | None:
    """One getUpdates call; None after a transient failure (already waited out).
    A 409 Conflict that lasts past ``_Conflicts.limit`` is a ``StartupFailure``."""
    conflicts = _conflicts(application)
    try:
        updates = list(
            await application.bot.get_updates(
                offset=offset,
                timeout=poll_seconds,
                allowed_updates=Update.ALL_TYPES,
                read_timeout=poll_seconds + 10,
            )
        )
        conflicts.cleared()
        return updates
    except RetryAfter as exc:
        delay = exc.retry_after
        await asyncio.sleep(
            delay.total_seconds() if hasattr(delay, "total_seconds") else float(delay)
        )
    except Conflict as exc:
        conflicts.met(exc)
        await asyncio.sleep(1)
    except (TimedOut, NetworkError) as exc:
        log.warning("getUpdates failed (%s); trying again", type(exc).__name__)
        await asyncio.sleep(1)
    except TelegramError:
        raise
    except Exception as exc:
        # One update the library cannot read would make every later getUpdates fail
        # the same way, and the bot would never get past it: read the batch one by one.
        log.warning("a getUpdates batch could not be read (%s)", type(exc).__name__)
        return await _get_updates_one_by_one(application, offset=offset)
    return None


async def _get_updates_one_by_one(
    application: BotApplication, *, offset: int | None
) -> list[Update] | None:
    """The batch as raw JSON, each update parsed alone. One that does not parse is a
    stand-in carrying the raw JSON (``bot.received.unreadable_update``: sealed for
    operators, receipted where its private chat can be read, never dropped); only one with
    nothing to seal (a service message, a group's message, the number alone) is a bare
    ``Update(update_id)``, taken in as nothing and confirmed in its place. Either way one
    log line names only its number."""
    bot = application.bot
    kwargs: dict[str, object] = {"timeout": 0, "allowed_updates": Update.ALL_TYPES}
    if offset is not None:
        kwargs["offset"] = offset
    try:
        with warnings.catch_warnings():
            # PTB suggests Bot.get_updates, which is the call that could not parse.
            warnings.simplefilter("ignore", PTBUserWarning)
            raw = await bot.do_api_request("getUpdates", api_kwargs=kwargs)
    except Conflict as exc:
        _conflicts(application).met(exc)
        await asyncio.sleep(1)
        return None
    except (TimedOut, NetworkError) as exc:
        log.warning("getUpdates failed (%s); trying again", type(exc).__name__)
        await asyncio.sleep(1)
        return None
    updates: list[Update] = []
    for item in raw if isinstance(raw, list) else []:
        update_id = item.get("update_id") if isinstance(item, dict) else None
        if not isinstance(update_id, int):
            log.warning("getUpdates gave an update without a number; skipped")
            continue
        try:
            update = Update.de_json(item, bot)
        except Exception as exc:
            stand_in = unreadable_update(item)
            log.warning(
                "update %d could not be read (%s); %s",
                update_id,
                type(exc).__name__,
                "sealed as it came" if stand_in is not None else "confirmed without content",
            )
            update = stand_in or Update(update_id=update_id)
            update.set_bot(bot)
        updates.append(update)
    return updates


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
        async with asyncio.timeout(seconds):
            await stop.wait()


def run_forever(settings: Settings) -> None:
    """`intake run`: serve until SIGINT or SIGTERM; one log line at start and at stop."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals: list[str] = []

        def on_signal(sig: signal.Signals) -> None:
            signals.append(sig.name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        began = loop.time()
        await serve(settings, stop=stop)
        log.info(
            "stopped (%s) after %.0fs",
            signals[0] if signals else "ended",
            loop.time() - began,
        )

    asyncio.run(main())
