"""Retention: a group SAFE for longer than [retention] after_safe loses its contents
and keeps its timeline; nothing else is touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage.checkins import flip
from storage.models import AuditEvent, Flip, Group, GroupKeyWrap, Operator, ScheduleKind, Status
from storage.retention import apply_retention, due_for_shredding
from storage.session import AsyncSession
from tests.storage.helpers import make_group

NOW = datetime(2026, 9, 1, tzinfo=UTC)
MONTH = timedelta(days=30)


def group(
    status: Status, since: datetime, shredded: datetime | None = None, basis: str = "confirmed"
) -> Group:
    return Group(
        codename="G-1",
        schedule_kind=ScheduleKind.INTERVAL,
        interval_s=3600,
        grace_s=60,
        detained_after_s=7200,
        kem="X25519",
        public_key=b"",
        status=status,
        status_since=since,
        status_basis=basis,
        shredded_at=shredded,
    )


def test_only_groups_safe_for_long_enough_and_not_yet_shredded_are_due() -> None:
    due = group(Status.SAFE, NOW - MONTH)
    assert due_for_shredding([due], now=NOW, after_safe=MONTH) == [due]
    assert (
        due_for_shredding(
            [group(Status.SAFE, NOW - MONTH + timedelta(seconds=1))], now=NOW, after_safe=MONTH
        )
        == []
    )
    assert (
        due_for_shredding([group(Status.DETAINED, NOW - 9 * MONTH)], now=NOW, after_safe=MONTH)
        == []
    )
    assert (
        due_for_shredding([group(Status.SAFE, NOW - 9 * MONTH, NOW)], now=NOW, after_safe=MONTH)
        == []
    )


def test_only_a_safe_two_people_agreed_to_or_an_operator_made_starts_shredding() -> None:
    # One person's SAFE (perhaps from a seized phone) never destroys anything.
    alone = group(Status.SAFE, NOW - 9 * MONTH, basis="marked")
    assert due_for_shredding([alone], now=NOW, after_safe=MONTH) == []
    for basis in ("confirmed", "operator"):
        agreed = group(Status.SAFE, NOW - MONTH, basis=basis)
        assert due_for_shredding([agreed], now=NOW, after_safe=MONTH) == [agreed]


async def test_retention_shreds_contents_keeps_the_timeline_and_audits(
    session: AsyncSession, operator: Operator
) -> None:
    safe = await make_group(session, codename="SAFE-1")
    travelling = await make_group(session, codename="ON-ROAD-2")
    await flip(
        session,
        group=safe,
        to=Status.SAFE,
        at=NOW - 2 * MONTH,
        basis="confirmed",
        now=NOW - 2 * MONTH,
    )
    await session.commit()
    assert await apply_retention(session, now=NOW, after_safe=MONTH, actor="test") == ["SAFE-1"]
    await session.commit()
    await session.refresh(safe)
    assert safe.shredded_at == NOW
    wraps = (await session.exec(select(GroupKeyWrap.group_id))).all()
    assert safe.id not in wraps
    assert travelling.id in wraps
    assert (await session.exec(select(Flip).where(Flip.group_id == safe.id))).all() != []
    actions = (await session.exec(select(AuditEvent.action, AuditEvent.subject))).all()
    assert ("group.shred", "SAFE-1") in actions
    # Once is enough.
    assert await apply_retention(session, now=NOW + MONTH, after_safe=MONTH, actor="test") == []
