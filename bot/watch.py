"""The bot watching the groups, and itself: the deadline engine and the alert
sender, a heartbeat, and the note to admins after a restart.

The engine and the sender each sleep until the earliest stored moment
something is due for them (``storage.due``): a group's next transition, a
reminder, an alert's next attempt or the end of a claim. A commit in this
process that may move that moment wakes them at once; on PostgreSQL, so does
one in any other process (LISTEN/NOTIFY). A slow safety look
(``[alerts] safety_look``) covers a lost wake-up. A look with nothing due is
one read-only probe. Of several processes on one PostgreSQL database, every
one runs the engine but one sends (``storage.runs.SenderLock``): Telegram's
limits are per bot, and an activist's alerts make one digest only if one
sender gathers them. Receipts delete themselves at their own moment from the
JobQueue (``bot.handlers``), where the heartbeat and retention run too.

The engine starts only after the backlog that queued while the bot was down has
been taken in (``bot.app.serve``), so that the bot's own absence never looks
like silence. The sender starts before it, as soon as the bot knows it is the one
serving: alerts decided before a crash or a stop go out at once (the dead run's
claims released first), not after the menus are set and the backlog is drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import texts, tls
from bot.alerts import Limiter, Sender
from bot.durations import format_duration
from bot.engine import BATCH, AlertTiming, run_pass
from bot.i18n import Words, pick_language
from bot.intake import BotApplication, Runtime
from bot.integrity import jobs as integrity_jobs
from storage import deletions
from storage.alerts import admins
from storage.db import reclaim_deleted
from storage.due import ENGINE_TABLES, SEND_TABLES, Listener, Probe, earliest, subscribe
from storage.groups import SHREDDED_TABLES
from storage.messages import forget_chat_refs
from storage.models import Person, ProcessedUpdate, WatchState
from storage.people import forget_chats, reachable
from storage.retention import apply_retention
from storage.runs import BEAT_EVERY, SenderLock, beat, end, register, release_dead
from storage.timeutil import utc_now

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
# Something is due but this process could not take it (another process holds
# it, on PostgreSQL): look again after this, or when that process's commit wakes us.
BUSY_WAIT = 1.0
# While the engine flips a burst batch by batch, the sender waits (at most this
# many seconds) so that one activist's alerts go as one digest.
MAX_HOLD = 3.0
# While another process's engine flips what was due (PostgreSQL), the sender
# looks again this often: that engine's commit reaches this process as a wake-up
# of its engine, not of its sender.
HOLD_LOOK = 0.02
# After a failed look (the database away), wait this long, doubling up to the last.
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0
HEARTBEAT_EVERY = timedelta(minutes=1)
RETENTION_EVERY = timedelta(hours=6)
# How often chat ids nothing is left to do with are erased: a stored message's place in
# its chat is kept at most Telegram's 48 hours and this much more.
FORGET_CHATS_EVERY = timedelta(minutes=10)
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


async def start_sender(application: BotApplication) -> Watchers:
    """Release the claims of a run that died and start the alert sender (and this run's
    heartbeat): the first thing the bot does once it knows it serves. What it sends was
    decided before (the engine is not running yet), so nothing queued at Telegram can
    change it."""
    runtime: Runtime = application.bot_data["runtime"]
    watchers = application.bot_data.get("watchers")
    if not isinstance(watchers, Watchers):
        application.bot_data.setdefault("limiter", Limiter())
        watchers = await Watchers.start(application, runtime)
        application.bot_data["watchers"] = watchers
    return watchers


async def start(application: BotApplication, *, started_at: datetime) -> None:
    """Once the backlog is taken in: start the deadline engine (and the sender, if
    ``start_sender`` did not), tell admins about the absence just ended, start the jobs."""
    runtime: Runtime = application.bot_data["runtime"]
    queue = application.job_queue
    if queue is None:
        raise RuntimeError("the deadline engine needs python-telegram-bot[job-queue]")
    (await start_sender(application)).start_engine()
    await _tell_admins_we_are_back(application, runtime, started_at=started_at)
    queue.run_repeating(
        retention_job,
        interval=RETENTION_EVERY,
        first=AT_ONCE,
        name="retention",
        job_kwargs=_JOB_OPTIONS,
    )
    queue.run_repeating(
        forget_chats_job,
        interval=FORGET_CHATS_EVERY,
        first=AT_ONCE,
        name="forget-chats",
        job_kwargs=_JOB_OPTIONS,
    )
    integrity_jobs.schedule(queue, runtime, options=_JOB_OPTIONS)
    queue.run_repeating(
        heartbeat_job,
        interval=HEARTBEAT_EVERY,
        first=AT_ONCE,
        name="heartbeat",
        job_kwargs=_JOB_OPTIONS,
    )


async def stop(application: BotApplication) -> None:
    """Stop the engine and the sender (before the Application stops)."""
    integrity_jobs.unschedule(application.bot_data["runtime"])
    watchers = application.bot_data.pop("watchers", None)
    if isinstance(watchers, Watchers):
        await watchers.stop()


class Alarm:
    """Wakes a sleeping loop early: ``ring`` from a commit or a notification."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.rung = 0  # how many times: tests and benchmarks read it

    def ring(self) -> None:
        self.rung += 1
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def sleep(self, seconds: float) -> None:
        """Until ``seconds`` pass or the alarm rings (at once if it rang since ``clear``)."""
        if seconds > 0 and not self._event.is_set():
            # Not wait_for: on Python 3.11 it loses a stop that arrives as the alarm
            # rings, and the loop, never cancelled, keeps the bot from stopping.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._event.wait()


# One turn of a loop: the earliest moment it is due (probe), and what to do when
# due, given "now" and that moment; the latter says whether it took anything.
Probed = Callable[[], Awaitable[datetime | None]]
Work = Callable[[datetime, datetime], Awaitable[bool]]


@dataclass(slots=True)
class Watchers:
    """The engine and the sender loops of one bot process, and what wakes them."""

    runtime: Runtime
    run_id: uuid.UUID
    engine_alarm: Alarm
    send_alarm: Alarm
    probes: list[Probe]
    listener: Listener
    sender_lock: SenderLock
    safety: float
    # Clear while the engine's last pass filled its batch: more is being flipped now.
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)
    looks: dict[str, int] = field(default_factory=dict)
    # The engine's loop, started by ``start_engine`` once the backlog is taken in.
    engine_loop: Callable[[], Coroutine[Any, Any, None]] | None = None
    # Times the sender found a group due that another process's engine held: tests read it.
    held_for_others: int = 0
    # Per loop, the due moment its last turn could not take (another process held
    # it) and when: not looked at again until that process commits or BUSY_WAIT ends.
    busy: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    sender: Sender | None = None
    # The earliest reminder the engine's last look saw (None: none waits).
    reminder_at: datetime | None = None
    # Alerts this process's engine just committed, due at this moment: the sender's
    # next turn takes them without a look (the look is a round trip on PostgreSQL).
    handed: datetime | None = None

    @classmethod
    async def start(cls, application: BotApplication, runtime: Runtime) -> Watchers:
        alerts = runtime.settings.alerts
        engine_probe, send_probe = Probe(runtime.engine), Probe(runtime.engine)
        engine_alarm, send_alarm = Alarm(), Alarm()
        listener = Listener(
            runtime.engine,
            [(ENGINE_TABLES, engine_alarm.ring), (SEND_TABLES, send_alarm.ring)],
            enabled=alerts.notifications,
        )
        watchers = cls(
            runtime=runtime,
            run_id=uuid.uuid4(),
            engine_alarm=engine_alarm,
            send_alarm=send_alarm,
            probes=[engine_probe, send_probe],
            listener=listener,
            sender_lock=SenderLock(runtime.engine, application.bot.id),
            safety=alerts.safety_look.total_seconds(),
        )
        watchers.caught_up.set()
        watchers.unsubscribe = [
            subscribe(runtime.engine, engine_alarm.ring, tables=ENGINE_TABLES),
            subscribe(runtime.engine, send_alarm.ring, tables=SEND_TABLES),
        ]
        await listener.ensure()
        # Before the first look: the claims of a run that died (this bot's previous
        # process, killed) are released now, not when they run out.
        async with runtime.sessions() as session, session.begin():
            await register(session, run_id=watchers.run_id, now=utc_now())
            released = await release_dead(session, run_id=watchers.run_id, now=utc_now())
        if released:
            log.info("released %d alert(s) claimed by a bot process that died", released)
        timing = AlertTiming(repeat_every=alerts.repeat_every, escalate_after=alerts.escalate_after)

        async def engine_look() -> datetime | None:
            transition, reminder = await engine_probe.engine_moments()
            watchers.reminder_at = reminder
            return earliest(transition, reminder)

        def alerted(now: datetime) -> Callable[[], None]:
            def tell() -> None:
                # In the pass's commit, before anything else runs: the sender's next
                # turn takes what is due as of ``now`` without a look of its own.
                watchers.handed = now if watchers.handed is None else min(watchers.handed, now)

            return tell

        async def flip(now: datetime, _due: datetime) -> bool:
            # Cleared before the pass: its own commit wakes the sender, which must
            # not take the first batch of a burst before knowing more is coming.
            watchers.caught_up.clear()
            # No reminder due (the look said so): the pass spares that query.
            reminders = watchers.reminder_at is not None and watchers.reminder_at <= now
            try:
                result = await run_pass(
                    runtime.sessions,
                    now=now,
                    timing=timing,
                    reminders=reminders,
                    alerted=alerted(now),
                )
            except BaseException:
                watchers.caught_up.set()
                raise
            if result.flips or result.reminders:
                log.info(
                    "deadline engine: %d flip(s), %d alert(s), %d reminder(s)",
                    result.flips,
                    result.alerts,
                    result.reminders,
                )
            # A full batch: more is due at once (an outage of many groups). The sender
            # waits for the rest, so each activist gets one digest, not one per batch.
            if result.looked_at >= BATCH:
                watchers.caught_up.clear()
            else:
                watchers.caught_up.set()
            if result.alerts or result.reminders:
                send_alarm.ring()
            return result.looked_at > 0

        watchers.sender = Sender(
            runtime.sessions,
            application.bot,
            server=runtime.server,
            default_tz=runtime.settings.display.timezone,
            default_language=runtime.settings.display.language,
            limiter=application.bot_data.setdefault("limiter", Limiter()),
            now=utc_now,
            run_id=watchers.run_id,
        )

        async def send_look() -> datetime | None:
            handed, watchers.handed = watchers.handed, None
            return handed if handed is not None else await send_probe.send_due()

        async def send(now: datetime, due: datetime) -> bool:
            await watchers._hold(due, send_probe)
            assert watchers.sender is not None  # noqa: S101 (set just above)
            # Started, not waited for: one chat's pace holds no other chat's alert.
            return await watchers.sender.start_due() > 0

        watchers.engine_loop = lambda: watchers._loop(
            "deadline engine", engine_alarm, engine_look, flip
        )
        watchers.tasks = [
            asyncio.create_task(
                watchers._loop(
                    "alert sender", send_alarm, send_look, send, duty=watchers.sender_lock
                )
            ),
        ]
        if runtime.engine.dialect.name == "postgresql":
            # Other processes release a dead one's claims by its silence. A SQLite
            # file has one bot process, whose sender claims nothing: a beat there
            # was a write (and its fsyncs, and a look woken by it) every 5 s at rest.
            watchers.tasks.append(asyncio.create_task(watchers._beat()))
        return watchers

    def start_engine(self) -> None:
        """Start the deadline engine's loop (once)."""
        if self.engine_loop is not None:
            self.tasks.append(asyncio.create_task(self.engine_loop()))
            self.engine_loop = None

    async def _beat(self) -> None:
        """This run's heartbeat; and the claims of runs found dead are released."""
        while True:
            await asyncio.sleep(BEAT_EVERY.total_seconds())
            try:
                async with self.runtime.sessions() as session, session.begin():
                    await beat(session, run_id=self.run_id, now=utc_now())
                    released = await release_dead(session, run_id=self.run_id, now=utc_now())
            except Exception as exc:
                log.warning("run heartbeat: not written (%s)", type(exc).__name__)
                continue
            if released:
                log.info("released %d alert(s) claimed by a bot process that died", released)
                self.send_alarm.ring()

    async def _hold(self, written: datetime, probe: Probe) -> None:
        """Wait (at most ``MAX_HOLD``) while an engine is still flipping what was
        due when the waiting alerts were ``written``, so that each activist's
        alerts of a burst go as one digest: this process's engine (``caught_up``),
        and on PostgreSQL the others' (a group due by then and not yet flipped:
        another engine holds it). A group due since is a later event: its alerts
        do not hold these back."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + MAX_HOLD
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(MAX_HOLD):
                await self.caught_up.wait()
        if self.runtime.engine.dialect.name != "postgresql":
            return  # one process on a SQLite file: its own engine is the only one
        while loop.time() < give_up:
            due = await probe.engine_due()
            if due is None or due > written:
                return
            self.held_for_others += 1
            await asyncio.sleep(HOLD_LOOK)

    async def _loop(
        self,
        name: str,
        alarm: Alarm,
        probe: Probed,
        work: Work,
        *,
        duty: SenderLock | None = None,
    ) -> None:
        """Look, work, sleep; with ``duty``, only while holding it (waiting for it
        first: the alert sender of a process that does not send sleeps there)."""
        backoff = FIRST_BACKOFF
        while True:
            alarm.clear()  # a ring from here on wakes the sleep below at once
            try:
                if duty is not None and not duty.held:
                    await duty.take()
                    log.info("%s: this process sends the alerts", name)
                wait = await self._turn(name, probe, work, alarm is self.engine_alarm)
                backoff = FIRST_BACKOFF
            except Exception as exc:
                self.caught_up.set()  # a failed pass holds no sender back
                # The database away (a restart, a lock held too long): try again, never die.
                log.error(
                    "%s: a look failed (%s); again in %.0fs", name, type(exc).__name__, backoff
                )
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF)
            await alarm.sleep(wait)

    async def _turn(self, name: str, probe: Probed, work: Work, is_engine: bool) -> float:
        """One look; returns how long to sleep before the next one."""
        if is_engine and self.listener.wanted and not self.listener.listening:
            await self.listener.ensure()  # the connection was lost: listen again
        self.looks[name] = self.looks.get(name, 0) + 1
        now = utc_now()
        due = await probe()
        if due is None or due > now:
            if is_engine:  # the engine has nothing more due: the sender holds no longer
                self.caught_up.set()
            return self.safety if due is None else min(self.safety, (due - now).total_seconds())
        clock = asyncio.get_running_loop().time()
        busy = self.busy.get(name) if is_engine else None
        if busy is not None and busy[0] == due and clock - busy[1] < BUSY_WAIT:
            # Still what another process holds (woken by a write of its own that did
            # not move it): its commit will; a pass now would only skip it again.
            return BUSY_WAIT - (clock - busy[1])
        took = await work(now, due)
        if took:
            self.busy.pop(name, None)
            return 0.0
        # The engine: another process holds what is due. The sender: what is due
        # is its own, sent and being marked; that commit wakes it, as does any new
        # alert, and it looks again each time.
        self.busy[name] = (due, clock)
        return BUSY_WAIT

    async def stop(self) -> None:
        for unsubscribe in self.unsubscribe:
            unsubscribe()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.sender is not None:
            # What is still waiting for its chat's turn stops (taken again at the
            # next start); what Telegram took is marked before the claims are
            # released below (unmarked, it would go again at the next start).
            with contextlib.suppress(Exception):
                await self.sender.close()
        await self.listener.close()
        await self.sender_lock.close()
        for probe in self.probes:
            await probe.close()
        try:
            async with self.runtime.sessions() as session, session.begin():
                await end(session, run_id=self.run_id)
        except Exception as exc:  # the database away: the next start releases them
            log.warning("could not release this run's claims (%s)", type(exc).__name__)


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


async def forget_chats_job(context: Context) -> None:
    """Erase the chat ids nothing is left to say or delete in: the place in its chat of
    every message past Telegram's 48 hours (deleted or not: the bot may delete nothing
    there any more), and the chat of everyone the bot no longer writes to first."""
    runtime = _runtime(context)
    async with runtime.sessions() as session, session.begin():
        refs = await forget_chat_refs(session, received_before=utc_now() - deletions.DELETABLE_FOR)
        people = await forget_chats(session)
    if refs or people:
        log.info("erased the chat of %d message(s) and of %d person(s)", refs, people)


async def heartbeat_job(context: Context) -> None:
    runtime = _runtime(context)
    await _record_alive(runtime, utc_now())
    url = runtime.settings.alerts.heartbeat_url
    if url is None:
        return
    # httpx, the HTTP client python-telegram-bot already loaded: no second stack
    # (aiohttp) in the bot's memory for one request a minute.
    try:
        async with httpx.AsyncClient(timeout=10, verify=tls.context()) as http:
            response = await http.get(url)
        if response.status_code >= 400:
            log.warning("heartbeat: the monitor answered HTTP %d", response.status_code)
    except httpx.HTTPError as exc:
        # The URL itself is a secret of the monitor's: never logged.
        log.warning("heartbeat: the monitor could not be reached (%s)", type(exc).__name__)


async def _record_alive(runtime: Runtime, now: datetime) -> None:
    try:
        async with runtime.sessions() as session, session.begin():
            state = await session.get(WatchState, ALIVE)
            if state is None:
                session.add(WatchState(name=ALIVE, at=now))
            else:
                state.at = now
                session.add(state)
    except IntegrityError:  # another bot process wrote it first: it is alive too
        return


async def _tell_admins_we_are_back(
    application: BotApplication, runtime: Runtime, *, started_at: datetime
) -> None:
    try:
        away, drained, targets = await _absence(runtime, started_at=started_at)
    except IntegrityError:
        # Two bot processes started at once on a new database, and the other one
        # wrote the first vital sign: nobody was away.
        return
    if away is None or away < WORTH_TELLING:
        return
    log.info("back after %s away; %d update(s) had queued", format_duration(away), drained)
    for chat_id, language in targets:
        words = Words(pick_language(language, None, default=runtime.settings.display.language), UTC)
        text = words.n_(texts.BACK_ONLINE, drained).format(away=words.duration(away), count=drained)
        if runtime.unreadable_taken:
            # Never dropped: kept sealed as raw data, which operators open like any message.
            text += " " + words._(texts.UNREADABLE_KEPT).format(count=runtime.unreadable_taken)
        try:
            await application.bot.send_message(chat_id, text, protect_content=True)
        except TelegramError as exc:
            log.info("could not tell an admin the bot is back (%s)", type(exc).__name__)


async def _absence(
    runtime: Runtime, *, started_at: datetime
) -> tuple[timedelta | None, int, list[tuple[int, str | None]]]:
    """How long the bot was away (None: never ran), what queued, and whom to tell."""
    away: timedelta | None = None
    async with runtime.sessions() as session, session.begin():
        state = await session.get(WatchState, ALIVE)
        drained = (
            await session.exec(
                select(sa.func.count()).where(ProcessedUpdate.processed_at >= started_at)
            )
        ).one()
        people = [p for p in [await session.get(Person, i) for i in await admins(session)] if p]
        targets = [(chat_id, p.language) for chat_id, p in reachable(runtime.server, people)]
        now = utc_now()
        if state is None:
            session.add(WatchState(name=ALIVE, at=now))
        else:
            away = started_at - state.at
            state.at = now
            session.add(state)
    return away, drained, targets
