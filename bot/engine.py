"""The deadline engine: one pass finds the groups whose next transition is due,
flips them, and repeats or escalates unacknowledged alerts.

Decisions are pure (``bot.deadlines.transitions``, ``storage.alerts.plan_reminder``);
this module only reads the due rows, claims them, and writes what was decided.
A pass touches only due rows: ``groups.next_transition_at`` and
``flips.next_reminder_at`` are indexed, so a pass with nothing due is one index
probe per list however many groups are watched.

Two bot processes may share one PostgreSQL database. The pass claims its due
groups as it reads them, in the transaction that writes their flips: on
PostgreSQL with ``SELECT … FOR UPDATE SKIP LOCKED`` (a group another pass
holds is skipped, and once that pass commits the group is no longer due); on
SQLite the pass's transaction holds the only write lock (``BEGIN IMMEDIATE``)
before it reads, so a second pass reads after the first committed. Either way
a group is flipped once. A pass decides every group's steps first (pure) and
writes them together: a thousand deadlines passing at once are a few bulk
statements, not thousands of round trips.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.deadlines import evaluate, transitions
from storage.alerts import (
    ReminderPlan,
    apply_reminder,
    due_reminders,
    enqueue_for_flips,
    last_round,
    plan_reminder,
)
from storage.checkins import new_flip
from storage.models import Flip, Group, Leg
from storage.session import AsyncSession

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
    looked_at: int = 0  # due groups and due reminders read
    flips: int = 0
    alerts: int = 0
    reminders: int = 0
    set_aside: int = 0

    @property
    def wrote(self) -> bool:
        return bool(self.flips or self.alerts or self.reminders or self.set_aside)


async def run_pass(
    sessions: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    timing: AlertTiming,
    reminders: bool = True,
    alerted: Callable[[], None] | None = None,
) -> PassResult:
    """One look at every due group and every due reminder, as of ``now``.

    ``reminders=False``: the caller knows no reminder is due by ``now`` (its probe
    said so), and the pass spares that query. ``alerted`` is called as the pass's
    commit completes, if it wrote alerts, before anything else may run: the sender
    is told there is work without looking."""
    result = PassResult()
    async with sessions() as session, session.begin():
        postgres = session.bind.dialect.name == "postgresql" if session.bind else False
        groups = await _due_groups(session, now=now, skip_locked=postgres)
        await _flip_due(session, groups, now=now, timing=timing, result=result)
        due = await due_reminders(session, now=now, limit=BATCH) if reminders else ()
        for reminder in due:
            result.looked_at += 1
            owner = await session.get(Group, reminder.group_id)
            if owner is None:
                # Nothing left to remind about: clear it, or the engine, which now
                # sleeps until the earliest reminder, would find it due forever.
                nothing = ReminderPlan(escalate=False, repeat=False, next_reminder_at=None)
                await apply_reminder(
                    session,
                    flip=reminder,
                    plan=nothing,
                    expected=reminder.next_reminder_at,
                    now=now,
                )
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
        if alerted is not None and (result.alerts or result.reminders):
            event.listen(session.sync_session, "after_commit", lambda _: alerted(), once=True)
    return result


async def _flip_due(
    session: AsyncSession,
    groups: Sequence[Group],
    *,
    now: datetime,
    timing: AlertTiming,
    result: PassResult,
) -> None:
    """Decide every due group's steps (pure), then write them all at once."""
    legs = await _current_legs(session, groups)
    alerting: list[tuple[Flip, Group]] = []
    for group in groups:
        result.looked_at += 1
        leg = legs.get(group.id)
        try:
            steps = transitions(group, now=now, leg=leg)
            following = steps[-1].next_transition if steps else _next_of(group, leg, now)
        except Exception as exc:
            # Logged without content, and only this group waits: one broken
            # row must neither stop the others nor spin the engine.
            log.error(
                "deadline engine: group %s set aside (%s)", group.id.hex[:8], type(exc).__name__
            )
            group.next_transition_at = now + SET_ASIDE
            session.add(group)
            result.set_aside += 1
            continue
        for step in steps:
            record = new_flip(group, to=step.status, at=step.since, basis=step.basis, now=now)
            result.flips += 1
            if step is steps[-1]:
                # After downtime the record holds every step; people hear only where it is now.
                alerting.append((record, group))
            else:
                session.add(record)
        group.next_transition_at = following
        session.add(group)

    def reminder_at(record: Flip, group: Group) -> datetime | None:
        # An alert went out now: when to repeat or escalate it.
        return plan_reminder(
            flip=record,
            group_status=group.status,
            last_round_at=now,
            now=now,
            repeat_every=timing.repeat_every,
            escalate_after=timing.escalate_after,
        ).next_reminder_at

    # The groups and the steps before each last one now; the last flips, which
    # their alerts complete, are written there, with the alerts, each once.
    await session.flush()
    result.alerts += await enqueue_for_flips(
        session, flips=alerting, now=now, reminder_at=reminder_at
    )


async def _due_groups(session: AsyncSession, *, now: datetime, skip_locked: bool) -> list[Group]:
    query = (
        select(Group)
        .where(Group.next_transition_at <= now, Group.shredded_at.is_(None))
        .order_by(Group.next_transition_at)
        .limit(BATCH)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list((await session.exec(query)).all())


async def _current_legs(session: AsyncSession, groups: Sequence[Group]) -> dict[uuid.UUID, Leg]:
    on_a_leg = {g.id: g.current_leg for g in groups if g.current_leg is not None}
    if not on_a_leg:
        return {}
    legs = await session.exec(select(Leg).where(Leg.group_id.in_(list(on_a_leg))))
    return {leg.group_id: leg for leg in legs.all() if on_a_leg.get(leg.group_id) == leg.position}


def _next_of(group: Group, leg: Leg | None, now: datetime) -> datetime | None:
    return evaluate(group, now=now, leg=leg).next_transition
