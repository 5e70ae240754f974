"""Bot processes ("runs") and their claims (storage.runs): the alerts a dead run
claimed are released at once, those of a live run are not (#15)."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.checkins import flip
from storage.crypto import ServerKeys
from storage.models import Alert, AlertState, Run, Status
from storage.people import get_or_create_person
from storage.runs import STALE_AFTER, boot_id, is_dead, release_dead
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.storage.helpers import make_group


def dead_pid() -> int:
    """The pid of a process of this machine that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_run_is_dead_when_its_process_is_gone_here_or_its_heartbeat_is_stale() -> None:
    now = utc_now()
    here = boot_id()

    def run(*, boot: str = here, pid: int = os.getpid(), beat_ago: timedelta) -> Run:
        return Run(boot_id=boot, pid=pid, started_at=now, heartbeat_at=now - beat_ago)

    fresh = timedelta(seconds=1)
    stale = STALE_AFTER + timedelta(seconds=1)
    assert not is_dead(run(beat_ago=fresh), now=now, here=here)  # this very process
    assert is_dead(run(pid=dead_pid(), beat_ago=fresh), now=now, here=here)
    # Another machine's pid is never looked up here: only its silence counts.
    assert not is_dead(run(boot="elsewhere", pid=dead_pid(), beat_ago=fresh), now=now, here=here)
    assert is_dead(run(boot="elsewhere", beat_ago=stale), now=now, here=here)
    assert is_dead(run(beat_ago=stale), now=now, here=here)


@pytest.mark.usefixtures("operator")  # a group's key needs an operator to be sealed to
async def test_the_claims_of_dead_runs_are_released_and_a_live_runs_are_kept(
    session: AsyncSession, server: ServerKeys
) -> None:
    now = utc_now()
    group = await make_group(session)
    silent = await flip(session, group=group, to=Status.SILENT, at=now, basis="grace", now=now)
    me = uuid.uuid4()
    runs = {
        "me": Run(id=me, boot_id=boot_id(), pid=os.getpid(), started_at=now, heartbeat_at=now),
        # Another process of this machine, alive (the test runner's parent).
        "alive": Run(boot_id=boot_id(), pid=os.getppid(), started_at=now, heartbeat_at=now),
        "killed": Run(boot_id=boot_id(), pid=dead_pid(), started_at=now, heartbeat_at=now),
        "silent": Run(
            boot_id="another machine",
            pid=os.getpid(),
            started_at=now - timedelta(hours=1),
            heartbeat_at=now - STALE_AFTER - timedelta(seconds=1),
        ),
    }
    session.add_all(runs.values())
    alerts: dict[str, Alert] = {}
    for n, (name, holder) in enumerate(runs.items()):
        person = await get_or_create_person(
            session, server=server, telegram_id=8_000 + n, chat_id=8_000 + n, now=now
        )
        alerts[name] = Alert(
            flip_id=silent.id,
            recipient_id=person.id,
            next_attempt_at=now,
            claimed_by=holder.id,
            claimed_until=now + timedelta(hours=1),
        )
    # A dead run's alert that was sent: nothing to release.
    person = await get_or_create_person(
        session, server=server, telegram_id=8_100, chat_id=8_100, now=now
    )
    alerts["sent"] = Alert(
        flip_id=silent.id,
        recipient_id=person.id,
        state=AlertState.SENT,
        sent_at=now,
        claimed_by=runs["killed"].id,
        claimed_until=now + timedelta(hours=1),
    )
    session.add_all(alerts.values())
    await session.commit()

    released = await release_dead(session, run_id=me, now=now)
    await session.commit()

    assert released == 2
    claims = {
        name: (
            await session.exec(
                select(Alert.claimed_by, Alert.claimed_until).where(Alert.id == alert.id)
            )
        ).one()
        for name, alert in alerts.items()
    }
    assert claims["killed"] == (None, None)
    assert claims["silent"] == (None, None)
    assert claims["me"][0] == me
    assert claims["alive"][0] == runs["alive"].id
    assert claims["sent"][0] == runs["killed"].id  # sent: its claim no longer matters
    left = set((await session.exec(select(Run.id))).all())
    assert left == {me, runs["alive"].id}
