"""Signals about a group, and the flips they cause directly.

The deadline engine (``bot.engine``) decides flips that silence causes; here
are only the facts a message brings: a check-in at a time, a stage reached, a
duress phrase or a detention report (which flip the group to DETAINED at
once, with their basis recorded), a safe arrival.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from storage.alerts import enqueue_for_flips, enqueue_notice, latest_flip, watchers
from storage.models import (
    Attachment,
    CheckinEvent,
    Flip,
    Group,
    KeyWrap,
    Leg,
    LinkReason,
    Message,
    Role,
    RoleGrant,
    Signal,
    Status,
)
from storage.session import AsyncSession

# The signals that show the group was alive and free when the message was sent.
CHECKIN_SIGNALS = frozenset({Signal.CHECKIN, Signal.STAGE})
# The source of a stage an activist set by hand (/stage): their word moves the
# group along its route but is no news from the group, so not a check-in.
BY_HAND = "activist"
# The basis recorded on a DETAINED flip caused by a message.
DETENTION_BASIS = {Signal.DETAINED: "reported", Signal.DURESS: "duress"}
REPORTED_BASES = frozenset({*DETENTION_BASIS.values(), "marked"})
# A leg's dead zone pauses the group only from these: a warning (SILENT, DETAINED)
# is stood down by two people (``bot.acts``), never by one activist's /stage or a
# stage phrase that captors may have forced; a SAFE group has arrived.
NO_DEAD_ZONE_FROM = frozenset({Status.SILENT, Status.DETAINED, Status.SAFE})


async def forwarder_groups(session: AsyncSession, *, person_id: uuid.UUID) -> list[Group]:
    """The groups a person forwards for (their relative invites)."""
    result = await session.exec(
        select(Group)
        .join(RoleGrant, RoleGrant.group_id == Group.id)
        .where(
            RoleGrant.person_id == person_id,
            RoleGrant.role == Role.RELATIVE,
            RoleGrant.revoked_at.is_(None),
            Group.shredded_at.is_(None),
        )
        .order_by(Group.codename)
    )
    return list(result.unique().all())


async def forwarder_labels(
    session: AsyncSession, *, person_id: uuid.UUID
) -> list[tuple[Group, str]]:
    """The person's groups, each with the neutral label their chat shows for it: the one
    fixed at invite time, else its place in the order of the grants ("1", "2"...).
    Never the codename, which must not appear in a relative's chat."""
    result = await session.exec(
        select(RoleGrant, Group)
        .join(Group, RoleGrant.group_id == Group.id)
        .where(
            RoleGrant.person_id == person_id,
            RoleGrant.role == Role.RELATIVE,
            RoleGrant.revoked_at.is_(None),
            Group.shredded_at.is_(None),
        )
        .order_by(RoleGrant.granted_at, RoleGrant.id)
    )
    labelled: list[tuple[Group, str]] = []
    seen: set[uuid.UUID] = set()
    for grant, group in result.all():
        if group.id in seen:
            continue
        seen.add(group.id)
        labelled.append((group, grant.chat_label or str(len(labelled) + 1)))
    # Shown in the order of their labels ("1" before "2"), as the relative was told.
    return sorted(labelled, key=lambda pair: (len(pair[1]), pair[1]))


async def already_counted(session: AsyncSession, *, group: Group, text_digest: bytes) -> bool:
    """Whether the same text with the same origin date was already a check-in of
    this group (forwarded by another relative): one check-in, several forwarders."""
    result = await session.exec(
        select(CheckinEvent.id)
        .join(Message, Message.id == CheckinEvent.message_id)
        .where(CheckinEvent.group_id == group.id, Message.text_digest == text_digest)
        .limit(1)
    )
    return result.first() is not None


async def record_signal(
    session: AsyncSession,
    *,
    group: Group,
    signal: Signal,
    at: datetime,
    source: str,
    now: datetime,
    message: Message | None = None,
    leg_id: uuid.UUID | None = None,
) -> CheckinEvent:
    await lock_group(session, group)
    told = signal in CHECKIN_SIGNALS and source != BY_HAND and after_report(group, at=at)
    event = CheckinEvent(
        group_id=group.id,
        message_id=message.id if message else None,
        signal=signal,
        leg_id=leg_id,
        at=at,
        recorded_at=now,
        source=source,
        after_report=told,
    )
    session.add(event)
    if told:
        # Recorded, and the group's people are told, but the status stays: a
        # forced "all is well" must not end a duress alarm (PRODUCT "Statuses").
        report = await latest_flip(session, group_id=group.id)
        if report is not None:
            recipients = await watchers(session, group_id=group.id)
            await enqueue_notice(
                session, flip=report, recipients=recipients, about=None, server=None, now=now
            )
    if signal in CHECKIN_SIGNALS and (group.last_checkin_at is None or at > group.last_checkin_at):
        group.last_checkin_at = at
        # The deadline engine recomputes the status on its next pass (within a
        # second): a check-in can end a silence, and that sends the all-clear.
        group.next_transition_at = now
    leg = await session.get(Leg, leg_id) if signal is Signal.STAGE and leg_id else None
    if leg is not None and leg.group_id == group.id:
        await enter_leg(session, group=group, leg=leg, at=at, now=now)
    if signal in DETENTION_BASIS and _report_changes_status(group):
        await flip(
            session, group=group, to=Status.DETAINED, at=at, basis=DETENTION_BASIS[signal], now=now
        )
    session.add(group)
    await session.flush()
    return event


def standing_report(group: Group) -> bool:
    """DETAINED because someone said so (a duress phrase, a relative's report, a
    person's mark), not by the clock: only people clear it (``bot.acts``)."""
    return group.status is Status.DETAINED and group.status_basis in REPORTED_BASES


def after_report(group: Group, *, at: datetime) -> bool:
    """Whether a check-in sent at ``at`` came while a report stood: captors can
    force an "all is well", so it is told to the group's people and clears nothing."""
    return standing_report(group) and at >= group.status_since


def _report_changes_status(group: Group) -> bool:
    """A duress phrase or a detention report flips the group to DETAINED unless it
    is SAFE or already DETAINED by a report: one DETAINED by silence alone becomes
    DETAINED as reported, which the clock can no longer clear (and everyone hears)."""
    if group.status is Status.SAFE:
        return False
    return not standing_report(group)


def counts_as_checkin(event: CheckinEvent) -> bool:
    """Whether a recorded signal showed the group alive (a stage set by hand did not)."""
    return event.signal in CHECKIN_SIGNALS and event.source != BY_HAND


async def stage_by_hand(
    session: AsyncSession, *, group: Group, leg: Leg, now: datetime
) -> CheckinEvent:
    """An activist's /stage: recorded as a stage signal, not as a check-in, and
    it may move the group back (a person correcting a mistake, not a late phrase).
    It cannot pause a warning: on a SILENT or DETAINED group the leg moves, its
    dead zone does not start (``enter_leg``)."""
    # Decided from the status as it is now, not as the command read it: the engine
    # or a second person may have flipped the group since.
    await lock_group(session, group)
    event = CheckinEvent(
        group_id=group.id,
        signal=Signal.STAGE,
        leg_id=leg.id,
        at=now,
        recorded_at=now,
        source=BY_HAND,
    )
    session.add(event)
    await enter_leg(session, group=group, leg=leg, at=now, now=now, backwards=True)
    session.add(group)
    await session.flush()
    return event


async def enter_leg(
    session: AsyncSession,
    *,
    group: Group,
    leg: Leg,
    at: datetime,
    now: datetime,
    backwards: bool = False,
) -> None:
    """The group reached ``leg`` (a stage phrase, or an activist's /stage)."""
    if not backwards and group.current_leg is not None and leg.position < group.current_leg:
        return  # an old stage phrase forwarded late does not move the group back
    group.current_leg = leg.position
    # The new leg's interval and grace apply at once: the engine looks again now.
    group.next_transition_at = now
    if leg.dead_zone_s and group.status not in NO_DEAD_ZONE_FROM:
        # A planned dead zone: no check-in is expected until it ends. Not from a
        # warning: one person's word (or a forced phrase) would stop its alerts and
        # reminders for days; a genuine stage phrase still ends a silence as any
        # check-in does, and the alerts go on until then.
        group.paused_until = at + timedelta(seconds=leg.dead_zone_s)
        await flip(session, group=group, to=Status.PAUSED, at=at, basis="dead zone", now=now)


def new_flip(group: Group, *, to: Status, at: datetime, basis: str, now: datetime) -> Flip:
    """The record of a status change, applied to ``group``; no I/O (the caller
    adds both to its session, and writes the alerts)."""
    record = Flip(
        group_id=group.id,
        from_status=group.status,
        to_status=to,
        at=at,
        basis=basis,
        recorded_at=now,
    )
    if group.status is Status.PAUSED and to is not Status.PAUSED:
        # The schedule starts again from the end of the pause (or from now when it is
        # ended early, as /resume does), not from the last check-in; never earlier
        # than a restart already recorded.
        ended = at if group.paused_until is None else min(group.paused_until, at)
        group.schedule_from = max(ended, group.schedule_from or ended)
    group.status, group.status_since, group.status_basis = to, at, basis
    if to is not Status.PAUSED:
        group.paused_until = None
    # Let the engine store the next transition that follows from the new status.
    group.next_transition_at = now
    return record


async def lock_group(session: AsyncSession, group: Group) -> None:
    """Take the group's row lock and read it again before deciding from its status: the
    deadline engine (``SELECT … FOR UPDATE SKIP LOCKED``), a signal or another person's
    act may have flipped it since the caller read it, and writing the stale status back
    would undo that flip (or flip it twice). On PostgreSQL the lock is the row's; on
    SQLite it is the transaction's (BEGIN IMMEDIATE holds the database's write lock), and
    reading again still matters for a group read in an earlier transaction."""
    await session.flush()  # keep this transaction's own changes through the refresh
    if session.get_bind().dialect.name == "postgresql":
        await session.refresh(group, with_for_update=True)
    else:
        await session.refresh(group)


async def flip(
    session: AsyncSession,
    *,
    group: Group,
    to: Status,
    at: datetime,
    basis: str,
    now: datetime,
) -> Flip:
    """Record a status change and write its alerts, in the caller's transaction."""
    record = new_flip(group, to=to, at=at, basis=basis, now=now)
    session.add_all([record, group])
    await session.flush()
    await enqueue_for_flips(session, flips=[(record, group)], now=now)
    return record


async def link_to_chosen(session: AsyncSession, *, message: Message, group: Group) -> None:
    """Keep only the chosen group's wraps of a message (and its attachments):
    the other candidates and the operators' wraps go."""
    attachment_ids = select(Attachment.id).where(Attachment.message_id == message.id)
    subjects = [message.id, *(await session.exec(attachment_ids)).all()]
    await session.exec(
        delete(KeyWrap).where(
            KeyWrap.subject_id.in_(subjects),
            (KeyWrap.group_id.is_(None)) | (KeyWrap.group_id != group.id),
        )
    )
    message.group_id = group.id
    message.link_reason = LinkReason.CHOSEN
    session.add(message)
    await session.flush()


async def signals_of(session: AsyncSession, *, group: Group) -> Sequence[CheckinEvent]:
    result = await session.exec(
        select(CheckinEvent).where(CheckinEvent.group_id == group.id).order_by(CheckinEvent.at)
    )
    return result.all()
