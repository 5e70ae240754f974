"""The engine sleeps until the next stored deadline and is woken by the writes that
move it: no test here waits for a periodic look, because the safety look is an hour
wherever the wake-up itself is under test.

- A commit in the bot's own process that brings a deadline forward wakes its engine.
- A write by another process wakes it: on PostgreSQL through LISTEN/NOTIFY, on
  SQLite through a watch on the database file.
- With notifications off, another process's write is seen at the safety look.
- Told to stop as an alarm rings, the loops stop (Python 3.11's wait_for lost that
  cancellation, and the bot never stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot import watch
from bot.app import serve
from bot.intake import BotApplication
from bot.standin import TelegramStandIn
from bot.watch import Alarm
from storage.crypto import KemName, PrivateKey
from storage.db import open_database, session_factory
from storage.models import Flip, Group, ScheduleKind, Status
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, RunningBot, eventually, install
from tests.conftest import Database

INTERVAL = timedelta(hours=1)
GRACE = timedelta(minutes=30)
FAR = timedelta(hours=10)  # a deadline the engine would sleep an hour towards


@contextlib.asynccontextmanager
async def running(installation: Installation) -> AsyncIterator[RunningBot]:
    """The bot in this process, with its Application at hand once the engine runs."""
    stop = asyncio.Event()
    drained: list[BotApplication] = []

    async def after_drain(application: BotApplication) -> None:
        drained.append(application)

    task = asyncio.create_task(serve(installation.settings, stop=stop, after_drain=after_drain))
    try:
        await eventually(lambda: task.done() or bool(drained and "watchers" in drained[0].bot_data))
        if task.done():
            task.result()
        bot = RunningBot(drained[0])
        # Its first looks are done (each loop looks once at start), so that any
        # later look is one a wake-up (or the safety look) caused.
        await eventually(lambda: len(bot.watchers.looks) == 2)
        yield bot
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


async def installed(
    tmp_path: Path, database: Database, standin: TelegramStandIn, *, extra: str
) -> tuple[Installation, uuid.UUID]:
    """An installation with one group whose check-in is overdue, but whose stored
    next deadline is far away (as if it had just been pushed back)."""
    installation = await install(
        tmp_path / "server", standin=standin, database_url=database.url, extra=extra
    )
    last = utc_now() - INTERVAL - timedelta(minutes=5)
    group = Group(
        codename="WAKE-1",
        schedule_kind=ScheduleKind.INTERVAL,
        interval_s=int(INTERVAL.total_seconds()),
        grace_s=int(GRACE.total_seconds()),
        detained_after_s=int(timedelta(days=3).total_seconds()),
        status=Status.OK,
        status_since=last,
        status_basis="checked in",
        last_checkin_at=last,
        next_transition_at=utc_now() + FAR,
        kem=KemName.X25519.value,
        public_key=PrivateKey.generate(KemName.X25519).public_key().raw,
        created_at=last,
    )
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        session.add(group)
    return installation, group.id


def config(*, safety_look: str, notifications: bool) -> str:
    return (
        f'[alerts]\nsafety_look = "{safety_look}"\n'
        f"notifications = {'true' if notifications else 'false'}\n"
    )


async def flips(url: str, group_id: uuid.UUID) -> list[tuple[Status, datetime]]:
    async with open_database(url) as engine, session_factory(engine)() as session:
        rows = await session.exec(
            select(Flip.to_status, Flip.at)
            .where(Flip.group_id == group_id)
            .order_by(Flip.recorded_at)
        )
        return [(Status(s), at) for s, at in rows.all()]


async def deadline_is_due(url: str, group_id: uuid.UUID) -> datetime:
    """Bring the group's stored deadline back to when its check-in was due (the
    engine backdates the flip to it), through an engine of its own."""
    async with (
        open_database(url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        group = await session.get(Group, group_id)
        assert group is not None
        assert group.last_checkin_at is not None
        group.next_transition_at = group.last_checkin_at + INTERVAL
        return group.next_transition_at


async def eventually_flipped(url: str, group_id: uuid.UUID) -> list[tuple[Status, datetime]]:
    found: list[tuple[Status, datetime]] = []
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30
    while not found and loop.time() < give_up:
        found = await flips(url, group_id)
        await asyncio.sleep(0.05)
    return found


async def test_a_commit_that_brings_a_deadline_forward_wakes_the_engine(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation, group_id = await installed(
        tmp_path, database, standin, extra=config(safety_look="1h", notifications=False)
    )
    async with running(installation) as bot:
        looks = bot.watchers.looks["deadline engine"]
        assert await flips(database.url, group_id) == []
        # The write goes through the bot's own engine, as a check-in or a new group does.
        async with bot.runtime.sessions() as session, session.begin():
            group = await session.get(Group, group_id)
            assert group is not None
            assert group.last_checkin_at is not None
            deadline = group.last_checkin_at + INTERVAL
            group.next_transition_at = deadline
            session.add(group)
        found = await eventually_flipped(database.url, group_id)
        assert bot.watchers.engine_alarm.rung >= 1
        assert bot.watchers.looks["deadline engine"] > looks
    # Flipped to LATE, dated at the deadline it missed, not at the look.
    assert found == [(Status.LATE, deadline)]


async def test_another_process_wakes_the_engine_by_notify_or_the_file_watch(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    """PostgreSQL: LISTEN/NOTIFY. SQLite: the database file written (inotify)."""
    installation, group_id = await installed(
        tmp_path, database, standin, extra=config(safety_look="1h", notifications=True)
    )
    async with running(installation) as bot:
        assert bot.watchers.listener.listening
        rung = bot.watchers.engine_alarm.rung
        # A second process (a Python of its own) writes the deadline.
        script = (
            "import asyncio, sys, uuid\n"
            "from tests.bot.test_wake import deadline_is_due\n"
            "asyncio.run(deadline_is_due(sys.argv[1], uuid.UUID(sys.argv[2])))\n"
        )
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, database.url, str(group_id), cwd=Path.cwd()
        )
        assert await writer.wait() == 0
        found = await eventually_flipped(database.url, group_id)
        assert bot.watchers.engine_alarm.rung > rung
    [(status, _)] = found
    assert status is Status.LATE


async def test_with_notifications_off_the_safety_look_still_flips(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation, group_id = await installed(
        tmp_path, database, standin, extra=config(safety_look="1s", notifications=False)
    )
    async with running(installation) as bot:
        assert not bot.watchers.listener.listening
        # Written through an engine of its own: nothing in the bot hears of it.
        deadline = await deadline_is_due(database.url, group_id)
        found = await eventually_flipped(database.url, group_id)
    assert found == [(Status.LATE, deadline)]


async def test_an_idle_bot_repeats_no_job_more_often_than_once_a_minute(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    # Everything that must happen at once is woken by what causes it (a commit, a
    # notification, a rejected row): a job repeated every few seconds would wake an
    # idle bot for nothing, and on a busy host each wake costs milliseconds.
    installation, _ = await installed(
        tmp_path, database, standin, extra=config(safety_look="1h", notifications=True)
    )
    async with running(installation) as bot:
        queue = bot.application.job_queue
        assert queue is not None
        # The jobs start after the engine (bot.watch.start), the heartbeat last.
        await eventually(lambda: "heartbeat" in {job.name for job in queue.jobs()})
        repeating = {
            job.name: job.job.trigger.interval
            for job in queue.jobs()
            if isinstance(job.job.trigger, IntervalTrigger)
        }
    assert {"heartbeat", "retention", "forget-chats", "audit-checkpoint"} <= set(repeating)
    assert {name: every for name, every in repeating.items() if every < timedelta(minutes=1)} == {}


def awaiting(task: asyncio.Task[None]) -> list[Any]:
    """The coroutines a task awaits through, its own first."""
    chain = []
    awaited: Any = task.get_coro()
    while inspect.iscoroutine(awaited):
        chain.append(awaited)
        awaited = awaited.cr_await
    return chain


def asleep(task: asyncio.Task[None]) -> bool:
    """Whether a loop waits in ``Alarm.sleep`` (between its looks), started and waiting."""
    return any(
        coroutine.cr_code.co_qualname == "Alarm.sleep" and coroutine.cr_await is not None
        for coroutine in awaiting(task)
    )


async def test_a_sleep_cancelled_as_its_alarm_rings_is_cancelled() -> None:
    alarm = Alarm()
    sleeping = asyncio.create_task(alarm.sleep(3600))
    await eventually(lambda: asleep(sleeping))
    # Both in one turn of the event loop: the wait ends as the cancellation arrives.
    alarm.ring()
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping


async def test_the_bot_stops_when_told_to_as_its_loops_are_woken(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation, _ = await installed(
        tmp_path, database, standin, extra=config(safety_look="1h", notifications=False)
    )
    async with running(installation) as bot:
        watchers = bot.watchers
        # The engine's and the sender's loops (on PostgreSQL a heartbeat runs too).
        loops = [
            t for t in watchers.tasks if awaiting(t)[0].cr_code.co_qualname == "Watchers._loop"
        ]
        assert len(loops) == 2
        await eventually(lambda: all(asleep(task) for task in loops))
        # A commit rings both alarms just as SIGTERM stops the bot.
        watchers.engine_alarm.ring()
        watchers.send_alarm.ring()
        stopping = asyncio.create_task(watch.stop(bot.application))
        await asyncio.wait({stopping}, timeout=30)
        stopped = stopping.done()
        if not stopped:  # a loop lost its cancellation: cancel again, so the test ends
            for task in watchers.tasks:
                task.cancel()
            await stopping
        assert stopped
