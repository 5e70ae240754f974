"""Bot processes ("runs") and their heartbeats: a crash costs seconds, not a claim.

Each running bot registers a ``Run`` and beats every ``BEAT_EVERY``. A sender
claims alerts in its run's name (``alerts.claimed_by``). A run is dead when its
process is gone from this machine (same boot, no such pid: a restart sees that
at once) or when its heartbeat is older than ``STALE_AFTER`` (a run on another
machine, or a hung one). The claims of dead runs are released at start and at
every beat, so the alerts a killed process held go out within seconds instead
of after ``storage.alerts.CLAIM_FOR``.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Alert, AlertState, Run

# A beat is a write: every 5 s keeps the idle bot near zero. A restart on the same
# machine does not wait for staleness (the dead pid is seen at once); staleness is
# for a run on another machine, or a hung one. Three beats missed: a busy event
# loop can delay one, not three.
BEAT_EVERY = timedelta(seconds=5)
STALE_AFTER = timedelta(seconds=15)
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This machine's current boot (random, changes at each boot; names nothing)."""
    try:
        return _BOOT_ID.read_text().strip()[:40]
    except OSError:
        return "unknown"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


async def register(session: AsyncSession, *, run_id: uuid.UUID, now: datetime) -> None:
    session.add(
        Run(id=run_id, boot_id=boot_id(), pid=os.getpid(), started_at=now, heartbeat_at=now)
    )
    await session.flush()


async def beat(session: AsyncSession, *, run_id: uuid.UUID, now: datetime) -> None:
    beaten = await session.exec(update(Run).where(col(Run.id) == run_id).values(heartbeat_at=now))
    if beaten.rowcount == 0:  # judged dead while paused (and its claims released): back
        await register(session, run_id=run_id, now=now)


def is_dead(run: Run, *, now: datetime, here: str) -> bool:
    """Pure but for the pid look-up: a run gone from this machine, or silent too long."""
    if run.heartbeat_at < now - STALE_AFTER:
        return True
    return run.boot_id == here and run.pid != os.getpid() and not process_alive(run.pid)


async def release_dead(session: AsyncSession, *, run_id: uuid.UUID, now: datetime) -> int:
    """Forget dead runs and release the alerts they had claimed; returns how many."""
    here = boot_id()
    others = (await session.exec(select(Run).where(col(Run.id) != run_id))).all()
    dead = [run.id for run in others if is_dead(run, now=now, here=here)]
    if not dead:
        return 0
    released = await session.exec(
        update(Alert)
        .where(col(Alert.claimed_by).in_(dead), col(Alert.state) == AlertState.PENDING)
        .values(claimed_until=None, claimed_by=None)
    )
    await session.exec(delete(Run).where(col(Run.id).in_(dead)))
    return released.rowcount


async def end(session: AsyncSession, *, run_id: uuid.UUID) -> None:
    """A clean stop: release this run's own claims and forget it."""
    await session.exec(
        update(Alert)
        .where(col(Alert.claimed_by) == run_id, col(Alert.state) == AlertState.PENDING)
        .values(claimed_until=None, claimed_by=None)
    )
    await session.exec(delete(Run).where(col(Run.id) == run_id))
