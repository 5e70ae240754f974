"""Alerts claimed by a bot process that died go out within seconds, not when the claim
runs out (#15): the bot releases a dead run's claims when it starts (the previous
process of this machine, killed: its pid is gone) and at every heartbeat (a process on
another machine, or a hung one: its heartbeat is stale), and then sends them.

The claims here are an hour long, so that only their release can let them out within
the test's wait. PostgreSQL only: a SQLite file has one bot process, whose sender
claims nothing (storage.alerts.take_due) and which beats nothing.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.standin import TelegramStandIn
from storage.db import open_database, session_factory
from storage.models import Alert, Flip, Group, RoleGrant, Run, Status
from storage.runs import STALE_AFTER, boot_id
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually
from tests.bot.test_one_sender import (
    ACTIVISTS,
    QUIET,
    add_groups,
    installed,
    postgres_only,
    process,
    told,
)
from tests.conftest import Database

CLAIMED_FOR = timedelta(hours=1)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


async def claimed_by_a_dead_run(installation: Installation, codename: str, run: Run) -> None:
    """``codename`` SILENT, its alerts to both activists pending and claimed for an
    hour by ``run``, as a process killed mid-delivery leaves them."""
    [group_id] = await add_groups(installation, [codename], due_at=utc_now() + CLAIMED_FOR)
    now = utc_now()
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        await session.exec(
            update(Group)
            .where(Group.id == group_id)
            .values(status=Status.SILENT, status_since=now, status_basis="grace")
        )
        silent = Flip(
            group_id=group_id,
            from_status=Status.LATE,
            to_status=Status.SILENT,
            at=now,
            basis="grace",
        )
        session.add_all([run, silent])
        await session.flush()
        activists = (
            await session.exec(select(RoleGrant.person_id).where(RoleGrant.group_id == group_id))
        ).all()
        assert len(activists) == len(ACTIVISTS)
        session.add_all(
            Alert(
                flip_id=silent.id,
                recipient_id=person_id,
                next_attempt_at=now,
                claimed_by=run.id,
                claimed_until=now + CLAIMED_FOR,
            )
            for person_id in activists
        )


async def runs_left(installation: Installation) -> set[uuid.UUID]:
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
    ):
        return set((await session.exec(select(Run.id))).all())


def everyone_told(standin: TelegramStandIn, codename: str) -> bool:
    return all(any(f"{codename} is SILENT" in text for text in told(standin, t)) for t in ACTIVISTS)


async def test_a_killed_processs_claims_are_released_at_start_and_its_alerts_sent(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    postgres_only(database)
    installation = await installed(tmp_path, database, standin)
    now = utc_now()
    # The previous process on this machine, killed a moment ago: its heartbeat is
    # fresh, its pid is gone.
    killed = Run(boot_id=boot_id(), pid=dead_pid(), started_at=now, heartbeat_at=now)
    await claimed_by_a_dead_run(installation, "KILLED-1", killed)
    async with process(installation):
        await eventually(lambda: everyone_told(standin, "KILLED-1"))
        assert killed.id not in await runs_left(installation)


async def test_a_silent_processs_claims_are_released_at_a_heartbeat_and_its_alerts_sent(
    tmp_path: Path, database: Database, standin: TelegramStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_only(database)
    # A beat every fifth of a second: what is tested is that a beat releases and
    # wakes the sender, not how often it comes.
    monkeypatch.setattr("bot.watch.BEAT_EVERY", timedelta(seconds=0.2))
    # No notifications and no safety look for an hour: only the beat's ring sends.
    installation = await installed(tmp_path, database, standin, extra=QUIET)
    async with process(installation):
        now = utc_now()
        # A process on another machine that stopped beating (its pid means nothing here).
        silent = Run(
            boot_id="another machine",
            pid=1,
            started_at=now - CLAIMED_FOR,
            heartbeat_at=now - STALE_AFTER - timedelta(seconds=1),
        )
        await claimed_by_a_dead_run(installation, "SILENT-1", silent)
        await eventually(lambda: everyone_told(standin, "SILENT-1"))
        assert silent.id not in await runs_left(installation)
