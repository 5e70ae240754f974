"""Reading and writing people's acts on a group: the thin layer over
``bot.acts.rules`` that the Telegram commands, the alert buttons and the
``intake group`` commands share.

Every act is told at once to everyone else who is alerted about the group,
naming who did it (PRODUCT promise 7): a seized phone cannot quietly pause or
close a case. A request that needs a second person changes nothing until it is
confirmed: the group's status and its alerts go on.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from bot.acts.rules import CLEARED, Outcome, decide, is_live, pause_end, safe_basis
from bot.deadlines import evaluate
from storage import audit
from storage.alerts import enqueue_notice, latest_flip, watchers
from storage.checkins import flip, lock_group
from storage.crypto import ServerKeys
from storage.models import ActKind, Alert, AlertState, Flip, Group, GroupAct, Leg, Person, Status
from storage.people import display_name, pseudonym
from storage.session import AsyncSession

COMMAND_LINE_ACTOR = "admin@cli"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a person in Telegram, or (``person`` None) an admin on the command line."""

    person: Person | None
    name: str

    @property
    def id(self) -> uuid.UUID | None:
        return self.person.id if self.person is not None else None

    @property
    def audit_name(self) -> str:
        return pseudonym(self.person) if self.person is not None else COMMAND_LINE_ACTOR


async def actor_for(session: AsyncSession, *, server: ServerKeys, person: Person) -> Actor:
    return Actor(person, await display_name(session, server=server, person=person))


COMMAND_LINE = Actor(None, "an admin on the command line")


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings the acts follow (``[alerts] confirm_within`` and ``max_pause``)."""

    confirm_within: timedelta
    max_pause: timedelta


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    status: Status  # the group's status after this
    waits_until: datetime | None = None  # a request: when it lapses
    paused_until: datetime | None = None
    capped: bool = False  # the pause asked for was longer than max_pause


async def pending(session: AsyncSession, *, group: Group, act: ActKind) -> GroupAct | None:
    query = (
        select(GroupAct)
        .where(GroupAct.group_id == group.id, GroupAct.act == act, GroupAct.done_at.is_(None))
        .order_by(GroupAct.requested_at.desc())
    )
    return (await session.exec(query)).first()


async def request(
    session: AsyncSession,
    *,
    server: ServerKeys,
    group: Group,
    act: ActKind,
    actor: Actor,
    rules: Rules,
    now: datetime,
    length: timedelta | None = None,
) -> Result:
    """``actor`` asks for ``act`` on ``group``: done at once, asked of a second
    person, or confirmed (this is the second person), as ``rules.decide`` says.
    Decided from the group as it is under its row lock, not as the caller read it: a
    pause asked of a group the engine has just made SILENT needs a second person."""
    await lock_group(session, group)
    waiting = await pending(session, group=group, act=act)
    if waiting is not None and not is_live(waiting, status=group.status, now=now):
        waiting.done_at, waiting.outcome = now, "lapsed"
        session.add(waiting)
        waiting = None
    outcome = decide(act, status=group.status, pending=waiting, actor=actor.id, now=now)
    result = Result(outcome, group.status)
    if outcome is Outcome.WAITING and waiting is not None:
        result = Result(outcome, group.status, waits_until=waiting.expires_at)
    elif outcome is Outcome.ASK:
        row = GroupAct(
            group_id=group.id,
            act=act,
            from_status=group.status,
            requested_by=actor.id,
            requested_at=now,
            expires_at=now + rules.confirm_within,
            pause_s=int(length.total_seconds()) if length is not None else None,
        )
        session.add(row)
        result = Result(outcome, group.status, waits_until=row.expires_at)
        await _tell(
            session,
            server=server,
            group=group,
            skip=actor.id,
            now=now,
            notice={
                "kind": "asked",
                "act": act.value,
                "who": actor.name,
                "within_s": int(rules.confirm_within.total_seconds()),
            },
        )
    elif outcome in (Outcome.APPLY, Outcome.CONFIRM):
        first = None
        if outcome is Outcome.CONFIRM and waiting is not None:
            if not await _settle(session, act=waiting, by=actor.id, now=now):
                # Someone else confirmed it in the same instant: theirs took effect.
                return Result(Outcome.WAITING, group.status, waits_until=waiting.expires_at)
            if waiting.pause_s is not None:
                length = timedelta(seconds=waiting.pause_s)
            first = await _name(session, server=server, person_id=waiting.requested_by)
        result = await _apply(
            session,
            group=group,
            act=act,
            outcome=outcome,
            actor=actor,
            rules=rules,
            length=length,
            now=now,
        )
        notice: dict[str, object] = {
            "kind": "confirmed" if first is not None else "done",
            "act": act.value,
            "who": actor.name,
            "status": result.status.value,
        }
        if first is not None:
            notice["first"] = first
        if result.paused_until is not None:
            notice["until"] = result.paused_until.isoformat()
        await _tell(session, server=server, group=group, skip=actor.id, now=now, notice=notice)
    await audit.append(
        session,
        actor=actor.audit_name,
        action=f"group.{act.value}",
        subject=group.codename,
        at=now,
        details={"outcome": outcome.value, "status": result.status.value},
    )
    return result


async def resume(
    session: AsyncSession,
    *,
    server: ServerKeys,
    group: Group,
    actor: Actor,
    now: datetime,
) -> bool:
    """End a pause now (one person may: it only brings the alerts back); told to the others.

    The schedule starts again from now, recorded as a resume (no check-in is
    invented): the pause ends now, and the status that follows is written at once."""
    await lock_group(session, group)
    if group.status is not Status.PAUSED:
        return False
    group.paused_until = now
    leg = None
    if group.current_leg is not None:
        legs = select(Leg).where(Leg.group_id == group.id, Leg.position == group.current_leg)
        leg = (await session.exec(legs)).first()
    after = evaluate(group, now=now, leg=leg)
    record = await flip(session, group=group, to=after.status, at=now, basis=after.basis, now=now)
    await not_to_author(session, record, actor)
    await _tell(
        session,
        server=server,
        group=group,
        skip=actor.id,
        now=now,
        notice={"kind": "done", "act": "resume", "who": actor.name, "status": after.status.value},
    )
    await audit.append(
        session, actor=actor.audit_name, action="group.resume", subject=group.codename, at=now
    )
    return True


async def mark_detained(
    session: AsyncSession, *, group: Group, author: Actor | Person, now: datetime
) -> Flip | None:
    """Someone raises the alarm (one person may: it only makes people look); the flip,
    or None when the group is DETAINED already. Decided under the group's row lock, as
    a recorded signal is (storage.checkins.lock_group): two marks at once flip it once,
    and a mark during an engine flip starts from the engine's status, not a stale one."""
    await lock_group(session, group)
    if group.status is Status.DETAINED:
        return None
    record = await flip(session, group=group, to=Status.DETAINED, at=now, basis="marked", now=now)
    await not_to_author(session, record, author)
    return record


async def not_to_author(session: AsyncSession, record: Flip, author: Actor | Person) -> None:
    """Whoever made a change is told by the command's answer: the alert, its reminders
    and the broadcast about their own act go to the others only (they hear of it in
    the notice naming who did it, which skips the actor too)."""
    if author.id is None:  # an admin on the command line is alerted in no chat
        return
    await session.flush()
    await session.exec(
        delete(Alert).where(
            Alert.flip_id == record.id,
            Alert.recipient_id == author.id,
            Alert.state == AlertState.PENDING,
        )
    )


async def _apply(
    session: AsyncSession,
    *,
    group: Group,
    act: ActKind,
    outcome: Outcome,
    actor: Actor,
    rules: Rules,
    length: timedelta | None,
    now: datetime,
) -> Result:
    if act is ActKind.PAUSE:
        asked = length if length is not None else rules.max_pause
        until = pause_end(asked, now=now, max_pause=rules.max_pause)
        basis = "confirmed" if outcome is Outcome.CONFIRM else "paused"
        record = await flip(session, group=group, to=Status.PAUSED, at=now, basis=basis, now=now)
        await not_to_author(session, record, actor)
        group.paused_until = until
        session.add(group)
        return Result(outcome, group.status, paused_until=until, capped=asked > rules.max_pause)
    if act is ActKind.SAFE:
        if group.status is not Status.SAFE:
            basis = safe_basis(outcome, command_line=actor.person is None)
            record = await flip(session, group=group, to=Status.SAFE, at=now, basis=basis, now=now)
            await not_to_author(session, record, actor)
        return Result(outcome, group.status)
    # Clearing: the group is OK from now, and its schedule counts from now.
    group.schedule_from = now
    record = await flip(session, group=group, to=Status.OK, at=now, basis=CLEARED, now=now)
    await not_to_author(session, record, actor)
    return Result(outcome, group.status)


async def _settle(
    session: AsyncSession, *, act: GroupAct, by: uuid.UUID | None, now: datetime
) -> bool:
    """Mark a waiting act confirmed, once: a conditional UPDATE whose row count
    says whether this confirmation is the one that counts (two people pressing
    at once on PostgreSQL must not apply it twice)."""
    done = await session.exec(
        update(GroupAct)
        .where(GroupAct.id == act.id, GroupAct.done_at.is_(None))
        .values(done_at=now, outcome="confirmed", confirmed_by=by)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        return False
    await session.refresh(act)
    return True


async def _name(session: AsyncSession, *, server: ServerKeys, person_id: uuid.UUID | None) -> str:
    if person_id is None:
        return COMMAND_LINE.name
    person = await session.get(Person, person_id)
    return await display_name(session, server=server, person=person) if person else "?"


async def _tell(
    session: AsyncSession,
    *,
    server: ServerKeys,
    group: Group,
    skip: uuid.UUID | None,
    notice: dict[str, object],
    now: datetime,
) -> None:
    """Tell everyone alerted about the group (but the actor) at once."""
    about = await latest_flip(session, group_id=group.id)
    if about is None:  # a group never flipped has had no alerts, and nobody to tell
        return
    recipients = [p for p in await watchers(session, group_id=group.id) if p != skip]
    await enqueue_notice(
        session,
        flip=about,
        recipients=recipients,
        about=json.dumps(notice),
        server=server,
        now=now,
    )
