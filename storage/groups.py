"""Groups: creating them with their keys, listing them, shredding them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import delete, select

from storage.crypto import KemName, SigningKey
from storage.models import (
    Attachment,
    CodebookEntry,
    Group,
    GroupKeyWrap,
    KeyWrap,
    Leg,
    Member,
    Message,
    Note,
    ScheduleKind,
)
from storage.sealing import active_operators, new_group_keys
from storage.session import AsyncSession
from storage.trust import sign

# Every table that holds a shredded group's sealed rows or wrapped keys.
SHREDDED_TABLES = (
    "key_wraps",
    "group_key_wraps",
    "messages",
    "attachments",
    "notes",
    "members",
    "member_identifiers",
    "codebook_entries",
    "legs",
)


class GroupExists(Exception):
    pass


class UnknownGroup(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Schedule:
    """A group's check-in policy: every ``interval``, or at ``cron`` times in ``tz``."""

    grace: timedelta
    detained_after: timedelta
    interval: timedelta | None = None
    cron: str | None = None
    tz: str | None = None

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("a schedule has either an interval or a cron expression")
        if self.cron is not None and not self.tz:
            raise ValueError("a cron schedule needs a time zone")


async def create_group(
    session: AsyncSession,
    *,
    codename: str,
    schedule: Schedule,
    kem: KemName,
    now: datetime,
    signing: SigningKey | None = None,
) -> Group:
    """Create a group and its key pair; the private key leaves only wrapped to operators.
    With an operator's ``signing`` key the group's public key is signed at once (else
    the bot does not seal to it until an operator signs it: storage/trust.py)."""
    if await find_group(session, codename=codename) is not None:
        raise GroupExists(f"group {codename} already exists")
    group_id = uuid.uuid4()
    public, wraps = new_group_keys(
        group_id=group_id, kem=kem, operators=await active_operators(session)
    )
    group = Group(
        id=group_id,
        codename=codename,
        schedule_kind=ScheduleKind.INTERVAL if schedule.interval else ScheduleKind.CRON,
        interval_s=int(schedule.interval.total_seconds()) if schedule.interval else None,
        cron=schedule.cron,
        tz=schedule.tz,
        grace_s=int(schedule.grace.total_seconds()),
        detained_after_s=int(schedule.detained_after.total_seconds()),
        kem=kem.value,
        public_key=public.raw,
        created_at=now,
        status_since=now,
    )
    if signing is not None:
        sign(group, signing)
    session.add(group)
    await session.flush()
    session.add_all(wraps)
    await session.flush()
    return group


def set_schedule(group: Group, schedule: Schedule, *, now: datetime) -> None:
    """Give a group a new check-in policy; the deadline engine looks at it again at once
    (its next pass), so a shorter schedule can make the group late straight away."""
    group.schedule_kind = ScheduleKind.INTERVAL if schedule.interval else ScheduleKind.CRON
    group.interval_s = int(schedule.interval.total_seconds()) if schedule.interval else None
    group.cron = schedule.cron
    group.tz = schedule.tz
    group.grace_s = int(schedule.grace.total_seconds())
    group.detained_after_s = int(schedule.detained_after.total_seconds())
    group.next_transition_at = now


async def find_group(session: AsyncSession, *, codename: str) -> Group | None:
    return (await session.exec(select(Group).where(Group.codename == codename))).first()


async def get_group(session: AsyncSession, *, codename: str) -> Group:
    group = await find_group(session, codename=codename)
    if group is None:
        raise UnknownGroup(f"no group {codename}")
    return group


async def list_groups(session: AsyncSession) -> Sequence[Group]:
    return (await session.exec(select(Group).order_by(Group.codename))).all()


async def count_live_groups(session: AsyncSession) -> int:
    """The groups not shredded: all of them less the shredded ones, each count read from
    an index (``ix_groups_shredded`` holds the shredded only, on SQLite). A filter on
    shredded_at read every group row, public key and all: a third of a second at every
    start of the bot with 100,000 groups."""
    every = select(sa.func.count()).select_from(Group).scalar_subquery()
    shredded = (
        select(sa.func.count())
        .select_from(Group)
        .where(Group.shredded_at.is_not(None))
        .scalar_subquery()
    )
    return int((await session.exec(select(every - shredded))).one())


async def shred_group(session: AsyncSession, *, group: Group, now: datetime) -> None:
    """Delete every wrapped copy of the group's key and every sealed row of it.

    The status timeline (flips, check-in times) stays. Without the group's
    private key nothing sealed to it opens again; the sealed rows go too so
    that nothing lingers. After the commit, ``storage.db.reclaim_deleted``
    with ``SHREDDED_TABLES`` clears what the database keeps of deleted rows.
    """
    message_ids = select(Message.id).where(Message.group_id == group.id)
    sealed_ids = sa.union_all(
        message_ids,
        select(Attachment.id).where(Attachment.message_id.in_(message_ids)),
        select(Note.id).where(Note.message_id.in_(message_ids)),
        select(Member.id).where(Member.group_id == group.id),
    )
    await session.exec(delete(KeyWrap).where(KeyWrap.group_id == group.id))
    await session.exec(delete(KeyWrap).where(KeyWrap.subject_id.in_(sealed_ids)))
    await session.exec(delete(GroupKeyWrap).where(GroupKeyWrap.group_id == group.id))
    await session.exec(delete(Message).where(Message.group_id == group.id))
    await session.exec(delete(Member).where(Member.group_id == group.id))
    await session.exec(delete(CodebookEntry).where(CodebookEntry.group_id == group.id))
    await session.exec(delete(Leg).where(Leg.group_id == group.id))
    group.current_leg = None
    group.public_key = b""
    group.shredded_at = now
    session.add(group)
    await session.flush()
