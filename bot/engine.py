"""The deadline engine: one pass finds the groups whose next transition is due,
flips them, and repeats or escalates unacknowledged alerts.

Decisions are pure (``bot.deadlines.transitions``, ``storage.alerts.plan_reminder``);
this module only reads the due rows, claims them, and writes what was decided.
A pass touches only due rows: ``groups.next_transition_at`` and
``flips.next_reminder_at`` are indexed, so a pass with nothing due is one index
probe per list however many groups are watched.

Two bot processes may share one PostgreSQL database. Each due group is claimed
with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) inside the pass's
transaction, and then with a conditional update that expects the status and
next transition time the pass read: on SQLite, where one writer at a time
holds the database (``BEGIN IMMEDIATE``), the second pass finds nothing due; on
PostgreSQL, a group another pass holds is skipped, and one it already flipped
fails the condition. Either way a group is flipped once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.deadlines import evaluate, transitions
from storage.alerts import apply_reminder, due_reminders, last_round, plan_reminder
from storage.checkins import flip
from storage.models import Alert, Group, Leg

log = logging.getLogger(__name__)
# How far a pass reaches at once; what is left is taken by the next pass.
BATCH = 500
# A group whose evaluation fails is looked at again after this, not at once:
# one broken row must not spin the engine or hold up the others.
SET_ASIDE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class AlertTiming:
    repeat_every: timedelta
    escalate_after: timedelta


@dataclass(slots=True)
class PassResult:
    looked_at: int = 0
    flips: int = 0
    alerts: int = 0
    reminders: int = 0
    set_aside: int = 0

    @property
    def wrote(self) -> bool:
        return bool(self.flips or self.alerts or self.reminders or self.set_aside)


async def run_pass(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime, timing: AlertTiming
) -> PassResult:
    """One look at every due group and every due reminder, as of ``now``."""
    result = PassResult()
    async with sessions() as session, session.begin():
        postgres = session.bind.dialect.name == "postgresql" if session.bind else False
        groups = await _due_groups(session, now=now, skip_locked=postgres)
        legs = await _current_legs(session, groups)
        for group in groups:
            await _look_at(session, group, legs.get(group.id), now=now, result=result)
        for reminder in await due_reminders(session, now=now, limit=BATCH):
            owner = await session.get(Group, reminder.group_id)
            if owner is None:
                continue
            _, last_at = await last_round(session, flip=reminder)
            plan = plan_reminder(
                flip=reminder,
                group_status=owner.status,
                last_round_at=last_at,
                now=now,
                repeat_every=timing.repeat_every,
                escalate_after=timing.escalate_after,
            )
            rows = await apply_reminder(
                session, flip=reminder, plan=plan, expected=reminder.next_reminder_at, now=now
            )
            result.reminders += len(rows)
    return result


async def _due_groups(session: AsyncSession, *, now: datetime, skip_locked: bool) -> list[Group]:
    query = (
        select(Group)
        .where(col(Group.next_transition_at) <= now, col(Group.shredded_at).is_(None))
        .order_by(col(Group.next_transition_at))
        .limit(BATCH)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list((await session.exec(query)).all())


async def _current_legs(session: AsyncSession, groups: Sequence[Group]) -> dict[uuid.UUID, Leg]:
    on_a_leg = {g.id: g.current_leg for g in groups if g.current_leg is not None}
    if not on_a_leg:
        return {}
    legs = await session.exec(select(Leg).where(col(Leg.group_id).in_(list(on_a_leg))))
    return {leg.group_id: leg for leg in legs.all() if on_a_leg.get(leg.group_id) == leg.position}


async def _look_at(
    session: AsyncSession, group: Group, leg: Leg | None, *, now: datetime, result: PassResult
) -> None:
    result.looked_at += 1
    expected_status, expected_next = group.status, group.next_transition_at
    try:
        async with session.begin_nested():
            steps = transitions(group, now=now, leg=leg)
            claimed = await session.exec(
                update(Group)
                .where(
                    col(Group.id) == group.id,
                    col(Group.status) == expected_status,
                    col(Group.next_transition_at) == expected_next,
                )
                .values(next_transition_at=None)
            )
            if claimed.rowcount != 1:
                return  # another engine got there first
            for step in steps:
                record = await flip(
                    session,
                    group=group,
                    to=step.status,
                    at=step.since,
                    basis=step.basis,
                    now=now,
                    alert=step is steps[-1],
                )
                result.flips += 1
                result.alerts += await _count_alerts(session, record.id)
            group.next_transition_at = (
                steps[-1].next_transition if steps else _next_of(group, leg, now)
            )
            session.add(group)
            await session.flush()
    except Exception as exc:
        # Logged without content (a codename is not content, but a stack's
        # locals might be): the type and where, and the group is set aside.
        log.error("deadline engine: group %s set aside (%s)", group.id.hex[:8], type(exc).__name__)
        await session.exec(
            update(Group)
            .where(col(Group.id) == group.id)
            .values(next_transition_at=now + SET_ASIDE)
        )
        result.set_aside += 1


def _next_of(group: Group, leg: Leg | None, now: datetime) -> datetime | None:
    return evaluate(group, now=now, leg=leg).next_transition


async def _count_alerts(session: AsyncSession, flip_id: uuid.UUID) -> int:
    return (await session.exec(select(func.count()).where(Alert.flip_id == flip_id))).one()
