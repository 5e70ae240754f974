"""The bot watching the groups, and itself: the jobs that run the deadline
engine and deliver alerts, a heartbeat, and the note to admins after a restart.

All of it runs on python-telegram-bot's JobQueue (APScheduler), started only
after the backlog that queued while the bot was down has been taken in
(``bot.app.serve``), so that the bot's own absence never looks like silence.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlmodel import col, select
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import texts
from bot.alerts import Limiter, deliver_due
from bot.durations import format_duration
from bot.engine import AlertTiming, run_pass
from bot.i18n import Words, pick_language
from bot.intake import BotApplication, Runtime
from storage.alerts import admins
from storage.db import reclaim_deleted
from storage.groups import SHREDDED_TABLES
from storage.models import Person, ProcessedUpdate, WatchState
from storage.people import chat_id_of
from storage.retention import apply_retention
from storage.timeutil import utc_now

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
# How often the engine looks. With the next deadline stored and indexed, a
# look with nothing due is one index probe, so looking often is cheap; it is
# what keeps an alert within a second of its deadline.
ENGINE_EVERY = timedelta(milliseconds=250)
SEND_EVERY = timedelta(milliseconds=250)
HEARTBEAT_EVERY = timedelta(minutes=1)
RETENTION_EVERY = timedelta(hours=6)
ALIVE = "alive"
# Away for less than this is a restart, not an absence worth telling admins about.
WORTH_TELLING = timedelta(minutes=2)
# python-telegram-bot reads first=0 as "after one interval"; this is "now".
AT_ONCE = timedelta(milliseconds=10)
_JOB_OPTIONS: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}


def _runtime(context: Context) -> Runtime:
    runtime = context.bot_data["runtime"]
    assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in app.build_application)
    return runtime


async def start(application: BotApplication, *, started_at: datetime) -> None:
    """Tell admins about the absence just ended, then start the jobs."""
    runtime: Runtime = application.bot_data["runtime"]
    await _tell_admins_we_are_back(application, runtime, started_at=started_at)
    queue = application.job_queue
    if queue is None:
        raise RuntimeError("the deadline engine needs python-telegram-bot[job-queue]")
    application.bot_data["limiter"] = Limiter()
    queue.run_repeating(
        engine_job,
        interval=ENGINE_EVERY,
        first=AT_ONCE,
        name="deadline-engine",
        job_kwargs=_JOB_OPTIONS,
    )
    queue.run_repeating(
        send_job, interval=SEND_EVERY, first=AT_ONCE, name="alert-sender", job_kwargs=_JOB_OPTIONS
    )
    queue.run_repeating(
        retention_job,
        interval=RETENTION_EVERY,
        first=AT_ONCE,
        name="retention",
        job_kwargs=_JOB_OPTIONS,
    )
    queue.run_repeating(
        heartbeat_job,
        interval=HEARTBEAT_EVERY,
        first=AT_ONCE,
        name="heartbeat",
        job_kwargs=_JOB_OPTIONS,
    )


async def engine_job(context: Context) -> None:
    runtime = _runtime(context)
    alerts = runtime.settings.alerts
    timing = AlertTiming(repeat_every=alerts.repeat_every, escalate_after=alerts.escalate_after)
    result = await run_pass(runtime.sessions, now=utc_now(), timing=timing)
    if result.flips or result.reminders:
        log.info(
            "deadline engine: %d flip(s), %d alert(s), %d reminder(s)",
            result.flips,
            result.alerts,
            result.reminders,
        )
        if context.job_queue is not None:  # deliver now rather than at the next tick
            context.job_queue.run_once(send_job, when=0, name="alert-sender-now")


async def send_job(context: Context) -> None:
    runtime = _runtime(context)
    limiter = context.bot_data.setdefault("limiter", Limiter())
    assert isinstance(limiter, Limiter)  # noqa: S101
    await deliver_due(
        runtime.sessions,
        context.bot,
        server=runtime.server,
        default_tz=runtime.settings.display.timezone,
        limiter=limiter,
        now=utc_now,
    )


async def retention_job(context: Context) -> None:
    """Shred the contents of groups SAFE for longer than [retention] after_safe."""
    runtime = _runtime(context)
    async with runtime.sessions() as session, session.begin():
        done = await apply_retention(
            session,
            now=utc_now(),
            after_safe=runtime.settings.retention.after_safe,
            actor="bot@retention",
        )
    if done:
        await reclaim_deleted(runtime.engine, tables=SHREDDED_TABLES)
        log.info("retention: shredded the contents of %d group(s)", len(done))


async def heartbeat_job(context: Context) -> None:
    runtime = _runtime(context)
    await _record_alive(runtime, utc_now())
    url = runtime.settings.alerts.heartbeat_url
    if url is None:
        return
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(url) as response,
        ):
            if response.status >= 400:
                log.warning("heartbeat: the monitor answered HTTP %d", response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The URL itself is a secret of the monitor's: never logged.
        log.warning("heartbeat: the monitor could not be reached (%s)", type(exc).__name__)


async def _record_alive(runtime: Runtime, now: datetime) -> None:
    async with runtime.sessions() as session, session.begin():
        state = await session.get(WatchState, ALIVE)
        if state is None:
            session.add(WatchState(name=ALIVE, at=now))
        else:
            state.at = now
            session.add(state)


async def _tell_admins_we_are_back(
    application: BotApplication, runtime: Runtime, *, started_at: datetime
) -> None:
    async with runtime.sessions() as session, session.begin():
        state = await session.get(WatchState, ALIVE)
        drained = (
            await session.exec(
                select(sa.func.count()).where(col(ProcessedUpdate.processed_at) >= started_at)
            )
        ).one()
        people = [p for p in [await session.get(Person, i) for i in await admins(session)] if p]
        targets = [(chat_id_of(runtime.server, p), p.language) for p in people]
        now = utc_now()
        if state is None:
            session.add(WatchState(name=ALIVE, at=now))
        else:
            away = started_at - state.at
            state.at = now
            session.add(state)
    if state is None or away < WORTH_TELLING:
        return
    log.info("back after %s away; %d update(s) had queued", format_duration(away), drained)
    for chat_id, language in targets:
        words = Words(pick_language(language, None), UTC)
        text = words.n_(texts.BACK_ONLINE, drained).format(away=words.duration(away), count=drained)
        if runtime.unreadable_taken:
            # Never dropped: kept sealed as raw data, which operators open like any message.
            text += " " + words._(texts.UNREADABLE_KEPT).format(count=runtime.unreadable_taken)
        try:
            await application.bot.send_message(chat_id, text, protect_content=True)
        except TelegramError as exc:
            log.info("could not tell an admin the bot is back (%s)", type(exc).__name__)
