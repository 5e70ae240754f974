"""The deadline engine on a real database: due groups flip once, dated at their
deadlines, with their alerts written in the same transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine import AlertTiming, run_pass
from storage.alerts import acknowledge
from storage.checkins import record_signal
from storage.crypto import ServerKeys
from storage.db import open_database, session_factory
from storage.models import (
    AckKind,
    Alert,
    AlertPurpose,
    Flip,
    Group,
    Person,
    Role,
    RoleGrant,
    ScheduleKind,
    Signal,
    Status,
)
from storage.people import get_or_create_person
from storage.session import AsyncSession
from tests.conftest import Database
from tests.storage.helpers import make_group

T0 = datetime(2026, 8, 10, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
TIMING = AlertTiming(repeat_every=timedelta(minutes=15), escalate_after=H)


async def person(
    session: AsyncSession, server: ServerKeys, telegram_id: int, role: Role, group: Group | None
) -> Person:
    someone = await get_or_create_person(
        session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=T0
    )
    session.add(RoleGrant(person_id=someone.id, role=role, group_id=group.id if group else None))
    await session.commit()
    return someone


async def fresh(session: AsyncSession, group: Group) -> Group:
    await session.refresh(group)
    await session.commit()
    return group


async def checked_in(session: AsyncSession, group: Group, at: datetime) -> None:
    await record_signal(session, group=group, signal=Signal.CHECKIN, at=at, source="test", now=at)
    await session.commit()


async def flips_of(session: AsyncSession, group: Group) -> list[tuple[Status, Status, datetime]]:
    rows = await session.exec(
        select(Flip).where(Flip.group_id == group.id).order_by(Flip.at, Flip.recorded_at)
    )
    found = [(f.from_status, f.to_status, f.at) for f in rows.all()]
    await session.commit()  # SQLite: a reader holding BEGIN IMMEDIATE would block the engine
    return found


async def alerts_to(session: AsyncSession, someone: Person) -> list[tuple[AlertPurpose, int]]:
    rows = await session.exec(
        select(Alert).where(Alert.recipient_id == someone.id).order_by(Alert.created_at)
    )
    found = [(a.purpose, a.tier) for a in rows.all()]
    await session.commit()
    return found


@pytest.fixture
async def watched(
    session: AsyncSession, server: ServerKeys, operator: object
) -> tuple[Group, Person, Person, Person]:
    group = await make_group(session)  # every 12h, grace 2h, detained after 2d
    own = await person(session, server, 1001, Role.ACTIVIST, group)
    other = await person(session, server, 1002, Role.ACTIVIST, None)
    admin = await person(session, server, 1003, Role.ADMIN, None)
    await checked_in(session, group, T0)
    return group, own, other, admin


async def test_silent_group_alerts_its_activists_and_is_dated_at_its_deadline(
    engine: AsyncEngine, session: AsyncSession, watched: tuple[Group, Person, Person, Person]
) -> None:
    group, own, other, admin = watched
    sessions = session_factory(engine)
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    await run_pass(sessions, now=T0 + 13 * H, timing=TIMING)  # LATE: nobody is told yet
    assert await alerts_to(session, own) == []
    result = await run_pass(sessions, now=T0 + 14 * H + timedelta(seconds=3), timing=TIMING)
    assert result.flips == 1
    await fresh(session, group)
    assert group.status is Status.SILENT
    assert group.next_transition_at == T0 + 14 * H + 48 * H
    assert await flips_of(session, group) == [
        (Status.PENDING, Status.OK, T0),
        (Status.OK, Status.LATE, T0 + 12 * H),
        (Status.LATE, Status.SILENT, T0 + 14 * H),  # the deadline, not the look
    ]
    assert await alerts_to(session, own) == [(AlertPurpose.ALERT, 1)]
    assert await alerts_to(session, other) == []
    assert await alerts_to(session, admin) == []


async def test_a_bot_away_for_days_records_every_step_at_its_own_time(
    engine: AsyncEngine, session: AsyncSession, watched: tuple[Group, Person, Person, Person]
) -> None:
    group, own, other, admin = watched
    sessions = session_factory(engine)
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    await run_pass(sessions, now=T0 + 100 * H, timing=TIMING)
    assert [(to, at) for _, to, at in await flips_of(session, group)] == [
        (Status.OK, T0),
        (Status.LATE, T0 + 12 * H),
        (Status.SILENT, T0 + 14 * H),
        (Status.DETAINED, T0 + 62 * H),
    ]
    # Everyone hears about the detention once; nobody gets a stale SILENT alert too.
    for someone in (own, other, admin):
        assert await alerts_to(session, someone) == [(AlertPurpose.ALERT, 2)]


async def test_unacknowledged_alerts_repeat_and_escalate_until_acknowledged(
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    watched: tuple[Group, Person, Person, Person],
) -> None:
    _group, own, other, admin = watched
    sessions = session_factory(engine)
    silent = T0 + 14 * H
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    await run_pass(sessions, now=silent, timing=TIMING)
    await run_pass(sessions, now=silent + timedelta(minutes=1), timing=TIMING)
    assert await alerts_to(session, own) == [(AlertPurpose.ALERT, 1)]
    await run_pass(sessions, now=silent + timedelta(minutes=16), timing=TIMING)
    assert await alerts_to(session, own) == [(AlertPurpose.ALERT, 1), (AlertPurpose.REMINDER, 0)]
    await run_pass(sessions, now=silent + H + timedelta(seconds=1), timing=TIMING)
    assert (AlertPurpose.ALERT, 2) in await alerts_to(session, other)
    assert (AlertPurpose.ALERT, 2) in await alerts_to(session, admin)

    first = (await session.exec(select(Alert).where(Alert.recipient_id == own.id))).first()
    assert first is not None
    flip, was_first = await acknowledge(
        session,
        alert_id=first.id,
        person=own,
        kind=AckKind.ACKNOWLEDGE,
        about=None,
        server=server,
        now=silent + H + timedelta(minutes=2),
    )
    await session.commit()
    assert was_first
    assert flip.next_reminder_at is None
    before = len(await alerts_to(session, other))
    await run_pass(sessions, now=silent + 3 * H, timing=TIMING)
    assert len(await alerts_to(session, other)) == before


async def test_a_pass_told_no_reminder_is_due_leaves_them_to_the_next(
    engine: AsyncEngine, session: AsyncSession, watched: tuple[Group, Person, Person, Person]
) -> None:
    _group, own, _other, _admin = watched
    sessions = session_factory(engine)
    silent = T0 + 14 * H
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    await run_pass(sessions, now=silent, timing=TIMING)
    later = silent + timedelta(minutes=16)  # the first reminder is due
    skipped = await run_pass(sessions, now=later, timing=TIMING, reminders=False)
    assert (skipped.looked_at, skipped.reminders) == (0, 0)
    assert await alerts_to(session, own) == [(AlertPurpose.ALERT, 1)]
    taken = await run_pass(sessions, now=later, timing=TIMING)
    assert taken.reminders == 1
    assert await alerts_to(session, own) == [(AlertPurpose.ALERT, 1), (AlertPurpose.REMINDER, 0)]


async def test_the_pass_says_it_alerted_as_it_commits_and_only_then(
    engine: AsyncEngine, session: AsyncSession, watched: tuple[Group, Person, Person, Person]
) -> None:
    _group, own, _other, _admin = watched
    sessions = session_factory(engine)
    told: list[bool] = []

    def alerted() -> None:
        told.append(True)

    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING, alerted=alerted)
    await run_pass(sessions, now=T0 + 13 * H, timing=TIMING, alerted=alerted)  # LATE
    assert told == []
    result = await run_pass(sessions, now=T0 + 14 * H, timing=TIMING, alerted=alerted)
    assert result.alerts == 1
    assert len(told) == 1
    assert await alerts_to(session, own) == [(AlertPurpose.ALERT, 1)]
    await run_pass(sessions, now=T0 + 14 * H + timedelta(seconds=1), timing=TIMING, alerted=alerted)
    assert len(told) == 1


async def test_a_check_in_after_silence_sends_the_all_clear_to_everyone_alerted(
    engine: AsyncEngine, session: AsyncSession, watched: tuple[Group, Person, Person, Person]
) -> None:
    group, own, other, _admin = watched
    sessions = session_factory(engine)
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    await run_pass(sessions, now=T0 + 15 * H, timing=TIMING)
    await fresh(session, group)
    await checked_in(session, group, T0 + 16 * H)
    await run_pass(sessions, now=T0 + 16 * H + timedelta(seconds=1), timing=TIMING)
    await fresh(session, group)
    assert group.status is Status.OK
    assert await alerts_to(session, own) == [(AlertPurpose.ALERT, 1), (AlertPurpose.ALL_CLEAR, 0)]
    assert await alerts_to(session, other) == []


async def test_a_pass_with_nothing_due_writes_nothing(
    engine: AsyncEngine, session: AsyncSession, watched: tuple[Group, Person, Person, Person]
) -> None:
    sessions = session_factory(engine)
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    result = await run_pass(sessions, now=T0 + 2 * H, timing=TIMING)
    assert (result.looked_at, result.wrote) == (0, False)


async def test_two_engines_flip_each_group_once(
    engine: AsyncEngine, session: AsyncSession, server: ServerKeys, operator: object
) -> None:
    groups = [await make_group(session, codename=f"G-{n}") for n in range(20)]
    activist = await person(session, server, 2001, Role.ACTIVIST, None)
    for group in groups:
        session.add(RoleGrant(person_id=activist.id, role=Role.ACTIVIST, group_id=group.id))
        await checked_in(session, group, T0)
    sessions = session_factory(engine)
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    at = T0 + 14 * H + timedelta(seconds=1)
    await asyncio.gather(*(run_pass(sessions, now=at, timing=TIMING) for _ in range(4)))
    silent = await session.exec(select(Flip).where(Flip.to_status == Status.SILENT))
    assert len(silent.all()) == len(groups)
    assert len(await alerts_to(session, activist)) == len(groups)


async def test_a_group_that_cannot_be_evaluated_is_set_aside_and_the_others_carry_on(
    engine: AsyncEngine, session: AsyncSession, server: ServerKeys, operator: object
) -> None:
    broken = await make_group(session, codename="BROKEN-1")
    fine = await make_group(session, codename="FINE-1")
    for group in (broken, fine):
        await checked_in(session, group, T0)
    # A cron group whose time zone vanished from the tz database.
    broken.schedule_kind, broken.cron, broken.tz = "cron", "0 8 * * *", "Mars/Olympus"  # type: ignore[assignment]
    broken.interval_s = None
    session.add(broken)
    await session.commit()
    result = await run_pass(session_factory(engine), now=T0 + 15 * H, timing=TIMING)
    assert result.set_aside == 1
    await fresh(session, fine)
    await fresh(session, broken)
    assert fine.status is Status.SILENT
    assert broken.next_transition_at == T0 + 15 * H + timedelta(minutes=5)


async def test_two_bot_processes_and_a_thousand_deadlines_give_one_flip_and_one_alert_each(
    database: Database, session: AsyncSession, server: ServerKeys, operator: object
) -> None:
    """Two engines with their own connection pools (as two processes have) on one
    database, and 1,000 groups whose grace ends at the same moment."""
    activist = await person(session, server, 3001, Role.ACTIVIST, None)
    admin = await person(session, server, 3002, Role.ADMIN, None)
    groups = []
    for n in range(1000):
        group = Group(
            codename=f"G-{n:04d}",
            schedule_kind=ScheduleKind.INTERVAL,
            interval_s=12 * 3600,
            grace_s=2 * 3600,
            detained_after_s=48 * 3600,
            kem="X25519",
            public_key=b"",
            status=Status.LATE,
            status_since=T0 + 12 * H,
            last_checkin_at=T0,
            next_transition_at=T0 + 14 * H,
        )
        groups.append(group)
    session.add_all(groups)
    await session.flush()
    session.add_all(
        RoleGrant(person_id=activist.id, role=Role.ACTIVIST, group_id=g.id) for g in groups
    )
    await session.commit()
    at = T0 + 14 * H + timedelta(milliseconds=1)
    async with (
        open_database(database.url, migrate_to_head=False) as first,
        open_database(database.url, migrate_to_head=False) as second,
    ):
        passes = [run_pass(session_factory(eng), now=at, timing=TIMING) for eng in (first, second)]
        results = await asyncio.gather(*passes)
    assert sum(r.flips for r in results) == 1000
    flips = (await session.exec(select(Flip.group_id).where(Flip.to_status == Status.SILENT))).all()
    assert sorted(flips) == sorted(g.id for g in groups)
    sent_to = (await session.exec(select(Alert.flip_id, Alert.recipient_id, Alert.purpose))).all()
    assert len(sent_to) == len(set(sent_to)) == 1000
    assert {r for _, r, _ in sent_to} == {activist.id}
    assert admin.id not in {r for _, r, _ in sent_to}


async def test_a_duress_phrase_after_a_silence_detention_makes_it_a_reported_one(
    engine: AsyncEngine, session: AsyncSession, watched: tuple[Group, Person, Person, Person]
) -> None:
    group, _own, _other, _admin = watched
    sessions = session_factory(engine)
    await run_pass(sessions, now=T0 + timedelta(minutes=1), timing=TIMING)
    await run_pass(sessions, now=T0 + 100 * H, timing=TIMING)
    await fresh(session, group)
    assert (group.status, group.status_basis) == (Status.DETAINED, "silence")
    late = T0 + 101 * H
    await record_signal(session, group=group, signal=Signal.DURESS, at=late, source="t", now=late)
    await session.commit()
    assert (group.status, group.status_basis) == (Status.DETAINED, "duress")
    # A second report changes nothing more, and the engine leaves a report standing.
    await record_signal(session, group=group, signal=Signal.DETAINED, at=late, source="t", now=late)
    await session.commit()
    await run_pass(sessions, now=late + 100 * H, timing=TIMING)
    await fresh(session, group)
    assert (group.status, group.status_basis) == (Status.DETAINED, "duress")
    detained = await session.exec(select(Flip.basis).where(Flip.to_status == Status.DETAINED))
    assert sorted(detained.all()) == ["duress", "silence"]
