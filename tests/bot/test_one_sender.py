"""Several bot processes on one PostgreSQL database: every one runs the deadline
engine, one sends the alerts (Telegram's limits are per bot, and an activist's
alerts make one digest only if one sender gathers them).

- Of two processes, one holds the sender's lock and the other never looks at the
  outbox; a burst flipped by both engines reaches each activist as one digest; when
  the sender stops, the other takes over.
- The sender waits while another process's engine still holds groups that were due,
  so that their alerts join the same digest.

PostgreSQL only: a SQLite file has one bot process (bot.startup.sqlite_lock).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from bot import app, watch
from bot.standin import TelegramStandIn
from storage.crypto import KemName, PrivateKey, ServerKeys
from storage.db import open_database, session_factory
from storage.models import Flip, Group, Role, RoleGrant, ScheduleKind, Status
from storage.people import get_or_create_person
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, RunningBot, eventually, install
from tests.conftest import Database

ACTIVISTS = (6_600_000_001, 6_600_000_002)
INTERVAL = timedelta(hours=1)
GRACE = timedelta(minutes=30)
QUIET = '[alerts]\nsafety_look = "1h"\nnotifications = false\n'


class Process(RunningBot):
    """One bot process's engine and sender (without polling: one process polls a bot,
    bot.startup.poller_lock, and nothing here needs updates)."""

    @property
    def sends(self) -> bool:
        return self.watchers.sender_lock.held


@contextlib.asynccontextmanager
async def process(installation: Installation) -> AsyncIterator[Process]:
    """A bot process as `intake run` makes one, its own engine and connections."""
    async with app.running(installation.settings) as (application, _):
        await watch.start(application, started_at=utc_now())
        yield Process(application)


def postgres_only(database: Database) -> None:
    if database.backend != "postgresql":
        pytest.skip("one bot process per SQLite file (flock): several need PostgreSQL")


async def installed(
    tmp_path: Path, database: Database, standin: TelegramStandIn, *, extra: str = ""
) -> Installation:
    installation = await install(
        tmp_path / "server", standin=standin, database_url=database.url, extra=extra
    )
    for telegram_id in ACTIVISTS:
        standin.user(telegram_id, language_code="en")
    return installation


async def add_groups(
    installation: Installation, codenames: list[str], *, due_at: datetime | None
) -> list[uuid.UUID]:
    """Groups LATE since their check-in was due, watched by both activists, SILENT
    at ``due_at`` (their stored next transition; None: an hour from now)."""
    settings = installation.settings
    server = ServerKeys(settings.server_secret_bytes())
    last = utc_now() - INTERVAL - GRACE - timedelta(minutes=5)
    async with (
        open_database(settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        people = [
            await get_or_create_person(
                session, server=server, telegram_id=t, chat_id=t, now=utc_now()
            )
            for t in ACTIVISTS
        ]
        groups = [
            Group(
                codename=codename,
                schedule_kind=ScheduleKind.INTERVAL,
                interval_s=int(INTERVAL.total_seconds()),
                grace_s=int(GRACE.total_seconds()),
                detained_after_s=int(timedelta(days=3).total_seconds()),
                status=Status.LATE,
                status_since=last + INTERVAL,
                status_basis="check-in due",
                last_checkin_at=last,
                next_transition_at=due_at or utc_now() + INTERVAL,
                kem=KemName.X25519.value,
                public_key=PrivateKey.generate(KemName.X25519).public_key().raw,
                created_at=last,
            )
            for codename in codenames
        ]
        session.add_all(groups)
        await session.flush()
        session.add_all(
            RoleGrant(person_id=p.id, role=Role.ACTIVIST, group_id=g.id)
            for g in groups
            for p in people
        )
        return [g.id for g in groups]


async def silent_flips(url: str) -> dict[str, int]:
    async with open_database(url) as engine, session_factory(engine)() as session:
        rows = await session.exec(
            select(Group.codename, sa.func.count())
            .join(Flip, Flip.group_id == Group.id)
            .where(Flip.to_status == Status.SILENT)
            .group_by(Group.codename)
        )
        return dict(rows.all())


def told(standin: TelegramStandIn, telegram_id: int) -> list[str]:
    return [m.text or "" for m in standin.sent if m.chat_id == telegram_id]


async def test_of_two_processes_one_sends_and_the_other_takes_over_when_it_stops(
    tmp_path: Path,
    database: Database,
    standin: TelegramStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_only(database)
    installation = await installed(tmp_path, database, standin)
    # Small passes: both engines take part in flipping the burst.
    monkeypatch.setattr("bot.engine.BATCH", 2)
    async with contextlib.AsyncExitStack() as one, contextlib.AsyncExitStack() as two:
        stacks = [one, two]
        processes = [await stack.enter_async_context(process(installation)) for stack in stacks]
        await eventually(lambda: any(p.sends for p in processes))
        sending = 0 if processes[0].sends else 1
        sender, other = processes[sending], processes[1 - sending]
        burst = [f"BURST-{n}" for n in range(8)]
        await add_groups(installation, burst, due_at=utc_now())
        await eventually(lambda: all(told(standin, t) for t in ACTIVISTS))
        assert not other.sends
        # The other process's sender never looked at the outbox.
        assert "alert sender" not in other.watchers.looks
        assert await silent_flips(database.url) == dict.fromkeys(burst, 1)
        for telegram_id in ACTIVISTS:
            # One digest each, whichever engine flipped which group.
            [digest] = told(standin, telegram_id)
            assert digest.startswith("8 alerts:")
            assert all(f"{codename} is SILENT" in digest for codename in burst)

        assert "alert sender" in sender.watchers.looks
        await stacks[sending].aclose()  # the sender stops; the other takes over
        await eventually(lambda: other.sends)
        await add_groups(installation, ["AFTER-1"], due_at=utc_now())
        await eventually(lambda: all(len(told(standin, t)) == 2 for t in ACTIVISTS))
        for telegram_id in ACTIVISTS:
            assert "AFTER-1 is SILENT" in told(standin, telegram_id)[-1]
        assert "alert sender" in other.watchers.looks


async def test_the_sender_waits_for_another_engine_still_flipping_what_was_due(
    tmp_path: Path,
    database: Database,
    standin: TelegramStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_only(database)
    # Hours, not seconds: how long it waits is not what this test is about.
    monkeypatch.setattr("bot.watch.MAX_HOLD", 3600.0)
    # Notifications off and the safety look an hour away: the process looks only
    # when this test rings it, so that the other "engine" (this test) can hold
    # half of the due groups first.
    installation = await installed(tmp_path, database, standin, extra=QUIET)
    codenames = [f"HELD-{n}" for n in range(10)]
    async with process(installation) as bot:
        ids = await add_groups(installation, codenames, due_at=utc_now())
        async with (
            open_database(database.url) as engine,
            session_factory(engine)() as other_engine,
            other_engine.begin(),
        ):
            # Another process's engine in the middle of its pass: five due groups locked.
            await other_engine.exec(select(Group.id).where(Group.id.in_(ids[:5])).with_for_update())
            bot.watchers.engine_alarm.ring()
            await eventually(lambda: bot.watchers.held_for_others > 0)
            # The five it could take are flipped, but their alerts wait for the rest.
            assert sum((await silent_flips(database.url)).values()) == 5
            assert all(told(standin, t) == [] for t in ACTIVISTS)
            await other_engine.rollback()  # that engine gives them up
        bot.watchers.engine_alarm.ring()
        await eventually(lambda: all(told(standin, t) for t in ACTIVISTS))
        assert await silent_flips(database.url) == dict.fromkeys(codenames, 1)
        for telegram_id in ACTIVISTS:
            [digest] = told(standin, telegram_id)
            assert digest.startswith("10 alerts:")
            assert all(f"{codename} is SILENT" in digest for codename in codenames)
