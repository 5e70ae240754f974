"""The alert outbox: who is told about a flip, and the state of each message.

A flip writes its alert rows in its own transaction (``enqueue_for_flips``);
the sender (``bot.alerts``) takes due rows, delivers them, and marks each sent
only after Telegram accepted it. Delivery is at least once: a row stays
pending until it is sent or its recipient is found unreachable.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased, load_only
from sqlalchemy.orm.strategy_options import _AbstractLoad
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from storage.crypto import Binding, ServerKeys
from storage.models import (
    AckKind,
    Acknowledgement,
    Alert,
    AlertPurpose,
    AlertState,
    Base,
    Flip,
    Group,
    Person,
    Role,
    RoleGrant,
    Status,
)
from storage.session import AsyncSession
from storage.vocabulary import WATCHER_ROLES

# Tier 1 tells the group's own activists; tier 2 every activist and admin.
TIER_OF = {Status.SILENT: 1, Status.DETAINED: 2}
# Flips that end an alerted episode: everyone who was alerted hears the all-clear.
CLEARING = frozenset({Status.OK, Status.SAFE})
# How long a sender may hold a claimed row before another may take it over.
CLAIM_FOR = timedelta(seconds=60)


def about_binding(alert_id: uuid.UUID) -> Binding:
    return Binding("alerts", "about_sealed", alert_id)


def about_of(server: ServerKeys, alert: Alert) -> str | None:
    if alert.about_sealed is None:
        return None
    return server.open(alert.about_sealed, about_binding(alert.id)).decode()


async def audience(session: AsyncSession, *, group_id: uuid.UUID, tier: int) -> list[uuid.UUID]:
    """The people an alert of ``tier`` about a group goes to, in a stable order."""
    live = RoleGrant.revoked_at.is_(None)
    own = (RoleGrant.role == Role.ACTIVIST) & (RoleGrant.group_id == group_id)
    everyone = RoleGrant.role.in_(sorted(WATCHER_ROLES))
    result = await session.exec(
        select(RoleGrant.person_id).where(live, own if tier == 1 else everyone).distinct()
    )
    return sorted(result.all())


async def admins(session: AsyncSession) -> list[uuid.UUID]:
    # Made distinct here, not by the database: with an index on person_id and none on
    # role, SQLite answers DISTINCT by walking that index and reading every grant's
    # row in its order (about 0.3 s with 100,000 activists' grants, at every start);
    # a plain scan of the table takes 15 ms.
    result = await session.exec(
        select(RoleGrant.person_id).where(
            RoleGrant.role == Role.ADMIN, RoleGrant.revoked_at.is_(None)
        )
    )
    return sorted(set(result.all()))


def _rows(
    flip: Flip,
    recipients: Sequence[uuid.UUID],
    *,
    purpose: AlertPurpose,
    tier: int,
    round_: int,
    now: datetime,
) -> list[Alert]:
    return [
        Alert(
            flip_id=flip.id,
            recipient_id=person_id,
            purpose=purpose,
            tier=tier,
            round=round_,
            next_attempt_at=now,
            created_at=now,
        )
        for person_id in recipients
    ]


async def enqueue_for_flips(
    session: AsyncSession,
    *,
    flips: Sequence[tuple[Flip, Group]],
    now: datetime,
    reminder_at: Callable[[Flip, Group], datetime | None] | None = None,
) -> int:
    """Write the alert rows new flips call for, in the caller's transaction;
    returns how many.

    Built for the engine's bulk case (a thousand groups whose grace ended at
    once): one query for the groups' own activists, one for everyone, and the
    flips written once, with what the alerts decided (``escalated_at``, and
    ``next_reminder_at``: ``reminder_at``'s answer, or ``now`` for the engine to
    work out at its next look), then the alerts in one statement of plain rows
    (a thousand ORM objects cost more than their writes).
    """
    if not flips:
        return 0
    group_ids = [group.id for _, group in flips]
    rows: list[dict[str, object]] = []
    # Nothing written before the flips are final: an autoflush here would insert
    # them, and every change after it would be one more UPDATE of each.
    with session.no_autoflush:
        # A new flip ends the reminders of the ones before it.
        await session.exec(
            update(Flip)
            .where(Flip.group_id.in_(group_ids))
            .where(Flip.id.not_in([f.id for f, _ in flips]))
            .where(Flip.next_reminder_at.is_not(None))
            .values(next_reminder_at=None)
            # The flips in this session are new or unaffected: no need to scan them.
            .execution_options(synchronize_session=False)
        )
        own = await _own_activists(session, group_ids)
        everyone: list[uuid.UUID] | None = None
        for flip, group in flips:
            if flip.to_status in TIER_OF:
                tier = TIER_OF[flip.to_status]
                recipients = own.get(group.id, [])
                if tier == 2 or not recipients:
                    # A group without its own activist must not fall silent unheard.
                    tier = 2
                    if everyone is None:
                        everyone = await audience(session, group_id=group.id, tier=2)
                    recipients = everyone
                rows += _row_values(
                    flip, recipients, purpose=AlertPurpose.ALERT, tier=tier, round_=0, now=now
                )
                if tier == 2:
                    flip.escalated_at = now
                flip.next_reminder_at = reminder_at(flip, group) if reminder_at else now
            elif flip.to_status in CLEARING:
                recipients = await alerted_since_last_clear(session, group_id=group.id, before=flip)
                rows += _row_values(
                    flip, recipients, purpose=AlertPurpose.ALL_CLEAR, tier=0, round_=0, now=now
                )
            session.add(flip)
    await session.flush()
    if rows:
        await session.exec(sa.insert(Alert), params=rows)
    return len(rows)


def _row_values(
    flip: Flip,
    recipients: Sequence[uuid.UUID],
    *,
    purpose: AlertPurpose,
    tier: int,
    round_: int,
    now: datetime,
) -> list[dict[str, object]]:
    """``_rows`` as plain values, for a bulk insert."""
    return [
        {
            "id": uuid.uuid4(),
            "flip_id": flip.id,
            "recipient_id": person_id,
            "purpose": purpose,
            "tier": tier,
            "round": round_,
            "state": AlertState.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for person_id in recipients
    ]


async def _own_activists(
    session: AsyncSession, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    result = await session.exec(
        select(RoleGrant.group_id, RoleGrant.person_id)
        .where(
            RoleGrant.group_id.in_(group_ids),
            RoleGrant.role == Role.ACTIVIST,
            RoleGrant.revoked_at.is_(None),
        )
        .distinct()
    )
    own: dict[uuid.UUID, list[uuid.UUID]] = {}
    for group_id, person_id in result.all():
        if group_id is not None:
            own.setdefault(group_id, []).append(person_id)
    return {g: sorted(people) for g, people in own.items()}


async def alerted_since_last_clear(
    session: AsyncSession, *, group_id: uuid.UUID, before: Flip
) -> list[uuid.UUID]:
    """Everyone alerted about the group since its last OK or SAFE."""
    last_clear = (
        select(sa.func.max(Flip.recorded_at))
        .where(
            Flip.group_id == group_id,
            Flip.to_status.in_(list(CLEARING)),
            Flip.id != before.id,
        )
        .scalar_subquery()
    )
    result = await session.exec(
        select(Alert.recipient_id)
        .join(Flip, Flip.id == Alert.flip_id)
        .where(
            Flip.group_id == group_id,
            Flip.id != before.id,
            Alert.purpose.in_([AlertPurpose.ALERT, AlertPurpose.REMINDER]),
            _still_watching(),
            sa.or_(last_clear.is_(None), Flip.recorded_at >= last_clear),
        )
        .distinct()
    )
    return sorted(result.all())


# --------------------------------------------------------------------------- reminders


@dataclass(frozen=True, slots=True)
class ReminderPlan:
    """What an unacknowledged alerted flip needs now, decided by ``plan_reminder``."""

    escalate: bool
    repeat: bool
    next_reminder_at: datetime | None


def plan_reminder(
    *,
    flip: Flip,
    group_status: Status,
    last_round_at: datetime,
    now: datetime,
    repeat_every: timedelta,
    escalate_after: timedelta,
) -> ReminderPlan:
    """Pure: whether to escalate or repeat an alert now, and when to look next."""
    if flip.acknowledged_at is not None or group_status is not flip.to_status:
        return ReminderPlan(escalate=False, repeat=False, next_reminder_at=None)
    escalate_at = None if flip.escalated_at is not None else flip.recorded_at + escalate_after
    escalate = escalate_at is not None and now >= escalate_at
    repeat = now >= last_round_at + repeat_every
    next_round = (now if repeat else last_round_at) + repeat_every
    candidates = [next_round] + ([escalate_at] if escalate_at and not escalate else [])
    return ReminderPlan(escalate=escalate, repeat=repeat, next_reminder_at=min(candidates))


async def due_reminders(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Flip]:
    result = await session.exec(
        select(Flip)
        .where(Flip.next_reminder_at <= now)
        .order_by(Flip.next_reminder_at)
        .limit(limit)
    )
    return result.all()


async def last_round(session: AsyncSession, *, flip: Flip) -> tuple[int, datetime]:
    """The latest round of alerts about a flip, and when it was written."""
    row = (
        await session.exec(
            select(sa.func.max(Alert.round), sa.func.max(Alert.created_at)).where(
                Alert.flip_id == flip.id,
                Alert.purpose.in_([AlertPurpose.ALERT, AlertPurpose.REMINDER]),
            )
        )
    ).one()
    rounds, at = row
    return (rounds or 0), (at or flip.recorded_at)


def _still_watching() -> sa.ColumnElement[bool]:
    """The recipient of an alert row still watches the group its flip is about:
    a live admin grant, a live activist grant for that group or for every group, or,
    for someone alerted when the flip escalated to every activist (tier 2), any live
    activist grant (they hear it as every other activist does). Someone whose role
    was revoked, or whose grant for this group alone was, hears nothing more of it
    (reminders, all-clears and notices included) and can press nothing under it."""
    grant, about, wide = aliased(RoleGrant), aliased(Flip), aliased(Alert)
    live = (grant.person_id == Alert.recipient_id) & grant.revoked_at.is_(None)
    of_group = (
        select(grant.id)
        .where(
            live,
            about.id == Alert.flip_id,
            (grant.role == Role.ADMIN)
            | (
                (grant.role == Role.ACTIVIST)
                & (grant.group_id.is_(None) | (grant.group_id == about.group_id))
            ),
        )
        .exists()
    )
    escalated = (
        select(wide.id)
        .where(
            wide.flip_id == Alert.flip_id,
            wide.recipient_id == Alert.recipient_id,
            wide.purpose == AlertPurpose.ALERT,
            wide.tier == 2,
        )
        .exists()
    ) & select(grant.id).where(live, grant.role == Role.ACTIVIST).exists()
    return sa.or_(of_group, escalated)


async def alerted(session: AsyncSession, *, flip_id: uuid.UUID) -> list[uuid.UUID]:
    result = await session.exec(
        select(Alert.recipient_id)
        .where(Alert.flip_id == flip_id, Alert.purpose == AlertPurpose.ALERT, _still_watching())
        .distinct()
    )
    return sorted(result.all())


async def still_watched(
    session: AsyncSession, *, alert_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these alerts their recipient still watches (``_still_watching``): only
    those may be acknowledged, claimed or cleared by pressing a button under them."""
    if not alert_ids:
        return set()
    result = await session.exec(
        select(Alert.id).where(Alert.id.in_(list(alert_ids)), _still_watching())
    )
    return set(result.all())


async def watchers(session: AsyncSession, *, group_id: uuid.UUID) -> list[uuid.UUID]:
    """Everyone told about a group: its own activists, the admins, and whoever
    was alerted about it since it was last OK or SAFE (escalation widens it)."""
    people = set(await admins(session))
    people |= set((await _own_activists(session, [group_id])).get(group_id, []))
    last = (
        await session.exec(
            select(Flip).where(Flip.group_id == group_id).order_by(Flip.recorded_at.desc())
        )
    ).first()
    if last is not None:
        people |= set(await alerted_since_last_clear(session, group_id=group_id, before=last))
        people |= set(await alerted(session, flip_id=last.id))
    return sorted(people)


async def _rounds_of(session: AsyncSession, *, flip_id: uuid.UUID, purpose: AlertPurpose) -> int:
    """How many notices of ``purpose`` a flip has had: the next one's round (the
    outbox's unique key lets several notices follow one flip)."""
    result = await session.exec(
        select(sa.func.count()).where(Alert.flip_id == flip_id, Alert.purpose == purpose)
    )
    return int(result.one())


async def latest_flip(session: AsyncSession, *, group_id: uuid.UUID) -> Flip | None:
    query = select(Flip).where(Flip.group_id == group_id).order_by(Flip.recorded_at.desc())
    return (await session.exec(query)).first()


async def enqueue_notice(
    session: AsyncSession,
    *,
    flip: Flip,
    recipients: Sequence[uuid.UUID],
    about: str | None,
    server: ServerKeys | None,
    now: datetime,
) -> list[Alert]:
    """Tell ``recipients`` something about the group ``flip`` belongs to: a
    person's act (``about``: what was done and by whom, sealed with the server
    key), or, with no ``about``, that a check-in came after the report ``flip``
    records. Numbered per flip, as claims are, so several may follow one flip."""
    told_before = await _rounds_of(session, flip_id=flip.id, purpose=AlertPurpose.NOTICE)
    rows = _rows(
        flip,
        sorted(set(recipients)),
        purpose=AlertPurpose.NOTICE,
        tier=0,
        round_=told_before,
        now=now,
    )
    for row in rows:
        if about is not None and server is not None:
            row.about_sealed = server.seal(about.encode(), about_binding(row.id))
    session.add_all(rows)
    await session.flush()
    return rows


async def cancel_pending(session: AsyncSession, *, person_id: uuid.UUID, now: datetime) -> int:
    """Drop the unsent alerts to someone whose role was revoked: all of them once they
    watch nothing, else those about the groups they no longer watch."""
    result = await session.exec(
        update(Alert)
        .where(
            Alert.recipient_id == person_id,
            Alert.state == AlertState.PENDING,
            sa.not_(_still_watching()),
        )
        .values(state=AlertState.FAILED, claimed_until=None, last_error="revoked")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def apply_reminder(
    session: AsyncSession,
    *,
    flip: Flip,
    plan: ReminderPlan,
    expected: datetime | None,
    now: datetime,
) -> list[Alert]:
    """Write what ``plan`` calls for, if this worker still holds the flip.

    The conditional update is the claim: two engines that both read the flip
    as due race here, and only the one that finds ``next_reminder_at`` as it
    read it writes the reminders.
    """
    claimed = await session.exec(
        update(Flip)
        .where(Flip.id == flip.id, Flip.next_reminder_at == expected)
        .values(
            next_reminder_at=plan.next_reminder_at,
            escalated_at=now if plan.escalate else Flip.escalated_at,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return []
    rows: list[Alert] = []
    already = await alerted(session, flip_id=flip.id)
    if plan.escalate:
        wider = await audience(session, group_id=flip.group_id, tier=2)
        fresh = [p for p in wider if p not in already]
        rows += _rows(flip, fresh, purpose=AlertPurpose.ALERT, tier=2, round_=0, now=now)
    if plan.repeat and already:
        round_, _ = await last_round(session, flip=flip)
        rows += _rows(
            flip, already, purpose=AlertPurpose.REMINDER, tier=0, round_=round_ + 1, now=now
        )
    session.add_all(rows)
    await session.flush()
    return rows


# --------------------------------------------------------------------------- acknowledging


class NotYours(Exception):
    """A button pressed by someone the alert was not sent to."""


async def acknowledge(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID,
    person: Person,
    kind: AckKind,
    about: str | None,
    server: ServerKeys,
    now: datetime,
) -> tuple[Flip, bool]:
    """Record an acknowledgement (or a claim) of the flip an alert is about.

    Returns the flip and whether this was the first acknowledgement. A claim
    also tells the flip's other recipients who took it (``about``: the name the
    claimer shows on Telegram, sealed with the server key).
    """
    alert = await session.get(Alert, alert_id)
    if alert is None or alert.recipient_id != person.id:
        raise NotYours("this alert was not sent to you")
    flip = await session.get(Flip, alert.flip_id)
    if flip is None:  # the group was shredded since
        raise NotYours("this alert is gone")
    session.add(Acknowledgement(flip_id=flip.id, person_id=person.id, kind=kind, at=now))
    first = (
        await session.exec(
            update(Flip)
            .where(Flip.id == flip.id, Flip.acknowledged_at.is_(None))
            .values(acknowledged_at=now, next_reminder_at=None)
        )
    ).rowcount == 1
    if kind is AckKind.CLAIM:
        others = [p for p in await alerted(session, flip_id=flip.id) if p != person.id]
        claimed_before = await _rounds_of(session, flip_id=flip.id, purpose=AlertPurpose.CLAIMED)
        notices = _rows(
            flip, others, purpose=AlertPurpose.CLAIMED, tier=0, round_=claimed_before, now=now
        )
        for notice in notices:
            if about is not None:
                notice.about_sealed = server.seal(about.encode(), about_binding(notice.id))
        session.add_all(notices)
    await session.flush()
    await session.refresh(flip)
    return flip, first


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class Taken:
    """A due alert taken for sending, with what its message says and to whom. Of the
    group only its id, codename, last check-in and current leg are read, and of the
    person their id, chat, language and time zone: reading any other raises."""

    alert: Alert
    flip: Flip
    group: Group
    person: Person


def _due(now: datetime | sa.BindParameter[Any]) -> sa.ColumnElement[bool]:
    return sa.and_(
        Alert.state == AlertState.PENDING,
        Alert.next_attempt_at <= now,
        sa.or_(Alert.claimed_until.is_(None), Alert.claimed_until < now),
    )


class _Ids(sa.types.TypeDecorator[Collection[uuid.UUID]]):
    """Ids as one bound value: a ``uuid[]`` on PostgreSQL, a JSON array of the
    stored form (32 hex digits) on SQLite, where ``json_each`` reads it."""

    impl = sa.String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.ARRAY(sa.Uuid()))
        return dialect.type_descriptor(sa.String())

    def process_bind_param(self, value: Collection[uuid.UUID] | None, dialect: Dialect) -> Any:
        ids = list(value or ())
        if dialect.name == "postgresql":
            return ids
        return json.dumps([i.hex for i in ids])


class _NoneOf(sa.ColumnElement[bool]):
    """``column`` is none of the ids bound as one ``_Ids`` value, in a statement whose
    text is the same whatever their number. An expanding ``NOT IN`` wrote a new
    statement for each count, and the driver prepared and cached each one anew:
    with a thousand alerts on their way, taking the outbox grew the bot by 30 MB."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's own form of it)
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: sa.ColumnElement[Any], ids: sa.BindParameter[Any]) -> None:
        self.column = column
        self.ids = ids


@compiles(_NoneOf)
def _none_of_sqlite(element: _NoneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    # Both are compiled clauses (a column and a placeholder), never a value.
    return f"{column} NOT IN (SELECT value FROM json_each({ids}))"  # noqa: S608


@compiles(_NoneOf, "postgresql")
def _none_of_postgresql(element: _NoneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} <> ALL ({ids})"


_Taking = sa.Select[Alert, Flip, Group, Person]
_ALERTS = sa.inspect(Alert).local_table


def _chosen() -> sa.ColumnElement[bool]:
    """The rows ``take_due`` takes, with its arguments as bound parameters: every due
    row (but those ``besides``) of the ``limit`` recipients whose rows are oldest."""
    now = sa.bindparam("now", type_=_ALERTS.c.next_attempt_at.type)
    due = sa.and_(
        _due(now),
        _NoneOf(_ALERTS.c.id, sa.bindparam("besides", type_=_Ids())),
    )
    recipients = (
        select(Alert.recipient_id)
        .where(due)
        .group_by(Alert.recipient_id)
        .order_by(sa.func.min(Alert.next_attempt_at))
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .scalar_subquery()
    )
    return sa.and_(due, Alert.recipient_id.in_(recipients))


def _only(model: type[Base], *names: str) -> _AbstractLoad:
    """Load only these columns of ``model``; reading another raises (not a lazy load,
    which the async session cannot do)."""
    return load_only(*(getattr(model, name) for name in names), raiseload=True)


def _taking(alert: type[Alert], chosen: sa.ColumnElement[bool]) -> _Taking:
    return (
        select(alert, Flip, Group, Person)
        .join(Flip, Flip.id == alert.flip_id)
        .join(Group, Group.id == Flip.group_id)
        .join(Person, Person.id == alert.recipient_id)
        .where(chosen)
        .order_by(alert.next_attempt_at, alert.created_at)
        # Only what a message says and where it goes (``Taken``): a group's other 19
        # columns (its public key among them) were a third of reading a burst.
        .options(
            _only(Group, "id", "codename", "last_checkin_at", "current_leg"),
            _only(Person, "id", "chat_sealed", "language", "tz"),
        )
    )


def _read_statement() -> _Taking:
    """``take_due`` without a claim: one read."""
    return _taking(Alert, _chosen())


def _claim_statement() -> _Taking:
    """``take_due`` with a claim on PostgreSQL: the claim and the read in one statement
    (a data-modifying CTE); rows another sender is claiming are skipped."""
    ids = select(Alert.id).where(_chosen()).with_for_update(skip_locked=True)
    claiming = (
        sa.update(Alert)
        .where(Alert.id.in_(ids.scalar_subquery()))
        .values(
            claimed_until=sa.bindparam("until", type_=_ALERTS.c.claimed_until.type),
            claimed_by=sa.bindparam("run_id", type_=_ALERTS.c.claimed_by.type),
        )
    )
    claimed: type[Alert] = aliased(Alert, claiming.returning(*_ALERTS.c).cte("claimed"))
    return _taking(claimed, sa.true())


# Built once: building them (the CTE's aliased entity above all) cost milliseconds of
# every delivery, on the way from a deadline to its alert.
_READ_DUE = _read_statement()
_CLAIM_DUE = _claim_statement()


async def take_due(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    claim: bool,
    run_id: uuid.UUID | None = None,
    besides: Collection[uuid.UUID] = (),
) -> list[Taken]:
    """The pending rows of up to ``limit`` recipients, oldest first, each with
    its flip, group and recipient (one statement).

    By recipient, not by row: every due alert of a recipient is taken together,
    so an activist with many alerts gets one digest whatever order the rows were
    written in (taken by row, a batch boundary split one activist's alerts and a
    burst became many single messages).

    With ``claim``, the rows are claimed for this sender until ``now +
    CLAIM_FOR`` in the name of ``run_id`` (whose death releases them at once:
    storage.runs), as one ``UPDATE … RETURNING``; on PostgreSQL rows another
    sender is claiming are skipped. Without, they are only read: for a sender
    that is alone (a SQLite file has one bot process), where a claim's write, and
    its commit, would buy nothing but the time they take. Rows in ``besides``
    (this sender's own, sent and not yet marked) are left.
    """
    params: dict[str, Any] = {"now": now, "limit": limit, "besides": besides}
    postgres = session.bind is not None and session.bind.dialect.name == "postgresql"
    if not claim:
        statement = _READ_DUE
    elif postgres:
        statement = _CLAIM_DUE
        params |= {"until": now + CLAIM_FOR, "run_id": run_id}
    else:
        # SQLite has no UPDATE in a CTE: the ids it claims, then the read.
        claiming = (
            sa.update(Alert)
            .where(Alert.id.in_(select(Alert.id).where(_chosen()).scalar_subquery()))
            .values(claimed_until=now + CLAIM_FOR, claimed_by=run_id)
            .returning(Alert.id)
        )
        claimed = (await session.execute(claiming, params)).scalars().all()
        statement = _taking(Alert, Alert.id.in_(list(claimed)))
        params = {}
    rows = await session.execute(statement, params)
    return [Taken(*row) for row in rows.all()]


async def mark_sent(
    session: AsyncSession, *, alert_ids: Sequence[uuid.UUID], message_id: int, now: datetime
) -> None:
    await session.exec(
        update(Alert)
        .where(Alert.id.in_(alert_ids))
        .values(
            state=AlertState.SENT,
            sent_at=now,
            telegram_message_id=message_id,
            claimed_until=None,
            claimed_by=None,
            attempts=Alert.attempts + 1,
        )
    )


async def retry_later(
    session: AsyncSession, *, alert_ids: Sequence[uuid.UUID], at: datetime, error: str
) -> None:
    await session.exec(
        update(Alert)
        .where(Alert.id.in_(alert_ids))
        .values(
            next_attempt_at=at,
            claimed_until=None,
            claimed_by=None,
            attempts=Alert.attempts + 1,
            last_error=error[:64],
        )
    )


async def mark_unreachable(
    session: AsyncSession,
    *,
    alerts: Sequence[Alert],
    person: Person,
    about: str,
    server: ServerKeys,
    error: str,
    now: datetime,
) -> list[Alert]:
    """The recipient blocked the bot or their chat is gone: stop trying them and
    tell the admins (unless the unreachable one is the only admin left)."""
    await session.exec(
        update(Alert)
        .where(Alert.id.in_([a.id for a in alerts]))
        .values(
            state=AlertState.UNREACHABLE, claimed_until=None, claimed_by=None, last_error=error[:64]
        )
    )
    already_told = person.unreachable_at is not None
    person.unreachable_at = now
    session.add(person)
    notices: list[Alert] = []
    if already_told:
        # The admins heard it when it first happened; every later round of
        # reminders failing again says nothing new (until the person writes).
        await session.flush()
        return notices
    flips = {a.flip_id for a in alerts if a.purpose is not AlertPurpose.UNREACHABLE}
    for flip_id in sorted(flips):
        flip = await session.get(Flip, flip_id)
        if flip is None:
            continue
        told_before = await _rounds_of(session, flip_id=flip_id, purpose=AlertPurpose.UNREACHABLE)
        recipients = [p for p in await admins(session) if p != person.id]
        rows = _rows(
            flip,
            recipients,
            purpose=AlertPurpose.UNREACHABLE,
            tier=0,
            round_=told_before,
            now=now,
        )
        for row in rows:
            row.about_sealed = server.seal(about.encode(), about_binding(row.id))
        notices += rows
    session.add_all(notices)
    await session.flush()
    return notices


async def reachable_again(session: AsyncSession, *, person: Person) -> None:
    """Someone marked unreachable wrote to the bot: they can be alerted again."""
    if person.unreachable_at is not None:
        person.unreachable_at = None
        session.add(person)
        await session.flush()
