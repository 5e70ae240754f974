"""Changing the set of operators: sharing every key with a newcomer, and taking
everything away from one who leaves.

Both work one group per call, so the caller commits after each and an
interrupted run simply runs again: a group already done is recognised (the
newcomer holds its key; the leaver no longer does) and skipped.

Removing an operator rotates each group's key pair: the group's records' data
keys are re-wrapped from the old group key to a new one, and the old one's
wraps are deleted. The removed key then opens nothing in the database, and
nothing sealed afterwards; a backup taken before the removal still holds what
that key could open then (see docs/security.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from storage.crypto import KemName, PrivateKey, unwrap_key, wrap_key
from storage.models import Group, GroupKeyWrap, KeyWrap, Operator
from storage.sealing import (
    Keyring,
    active_operators,
    data_key_binding,
    group_key_binding,
    lock_for_rotation,
    operator_public_key,
)
from storage.session import AsyncSession
from storage.trust import sign, trust_of

# Where a rotation leaves old bytes behind: PostgreSQL keeps the replaced and deleted
# wraps as dead rows in its files until ``storage.db.reclaim_deleted`` rewrites them.
REKEYED_TABLES = ("key_wraps", "group_key_wraps")


class LastOperator(Exception):
    """Removing the only operator would leave nothing able to open anything."""


class OperatorRemoved(Exception):
    """A removed operator is never given a key again (register a new key instead)."""


@dataclass(frozen=True, slots=True)
class Stranded:
    """What the leaver opens and the operator doing the removal cannot: removing now
    would skip those groups or lose those records."""

    groups: tuple[str, ...]
    records: int

    def __bool__(self) -> bool:
        return bool(self.groups or self.records)


async def live_groups(session: AsyncSession) -> Sequence[Group]:
    return (
        await session.exec(
            select(Group).where(Group.shredded_at.is_(None)).order_by(Group.codename)
        )
    ).all()


async def holds_key(session: AsyncSession, *, group: Group, operator: Operator) -> bool:
    wrap = await session.exec(
        select(GroupKeyWrap.id).where(
            GroupKeyWrap.group_id == group.id, GroupKeyWrap.operator_id == operator.id
        )
    )
    return wrap.first() is not None


async def share_group(
    session: AsyncSession, keyring: Keyring, *, group: Group, newcomer: Operator
) -> bool:
    """Wrap the group's key for ``newcomer``; False if they hold it already."""
    _refuse_removed(newcomer)
    _refuse_untrusted(session, newcomer)
    if await holds_key(session, group=group, operator=newcomer):
        return False
    private = await keyring.group_key(session, group)
    session.add(
        GroupKeyWrap(
            group_id=group.id,
            operator_id=newcomer.id,
            wrapped=wrap_key(
                private.raw(), operator_public_key(newcomer), group_key_binding(group.id)
            ),
        )
    )
    await session.flush()
    return True


async def share_unlinked(session: AsyncSession, keyring: Keyring, *, newcomer: Operator) -> int:
    """Wrap for ``newcomer`` the data keys of records no group claims yet."""
    _refuse_removed(newcomer)
    _refuse_untrusted(session, newcomer)
    mine = (
        await session.exec(select(KeyWrap).where(KeyWrap.operator_id == keyring.operator.id))
    ).all()
    theirs = set(
        (
            await session.exec(select(KeyWrap.subject_id).where(KeyWrap.operator_id == newcomer.id))
        ).all()
    )
    added = 0
    for wrap in mine:
        if wrap.subject_id in theirs:
            continue
        binding = data_key_binding(wrap.subject_table, wrap.subject_id)
        data_key = await keyring.data_key(session, table=wrap.subject_table, row_id=wrap.subject_id)
        session.add(
            KeyWrap(
                subject_table=wrap.subject_table,
                subject_id=wrap.subject_id,
                operator_id=newcomer.id,
                wrapped=wrap_key(data_key, operator_public_key(newcomer), binding),
            )
        )
        added += 1
    await session.flush()
    return added


async def retire(session: AsyncSession, *, leaver: Operator, now: datetime) -> None:
    """Mark the operator removed, so nothing new is sealed to them."""
    remaining = [op for op in await active_operators(session) if op.id != leaver.id]
    if not remaining:
        raise LastOperator("that is the only operator: add another before removing it")
    if leaver.removed_at is None:
        leaver.removed_at = now
        session.add(leaver)
        await session.flush()


async def rotate_group(
    session: AsyncSession, keyring: Keyring, *, group: Group, leaver: Operator
) -> bool:
    """Give the group a new key pair that ``leaver`` never held; False if done already."""
    await lock_for_rotation(session, group)
    if not await holds_key(session, group=group, operator=leaver):
        return False
    old = await keyring.group_key(session, group)
    new = PrivateKey.generate(KemName(group.kem))
    for wrap in (await session.exec(select(KeyWrap).where(KeyWrap.group_id == group.id))).all():
        binding = data_key_binding(wrap.subject_table, wrap.subject_id)
        wrap.wrapped = wrap_key(unwrap_key(wrap.wrapped, old, binding), new.public_key(), binding)
        session.add(wrap)
    await session.exec(delete(GroupKeyWrap).where(GroupKeyWrap.group_id == group.id))
    binding = group_key_binding(group.id)
    for op in await active_operators(session):
        session.add(
            GroupKeyWrap(
                group_id=group.id,
                operator_id=op.id,
                wrapped=wrap_key(new.raw(), operator_public_key(op), binding),
            )
        )
    group.public_key = new.public_key().raw
    if keyring.signing is not None:
        sign(group, keyring.signing)
    else:  # the old signature covers the old key: the new one is not trusted until signed
        group.signature = group.signed_by = None
    session.add(group)
    await session.flush()
    keyring.forget(group)
    return True


async def stranded(session: AsyncSession, keyring: Keyring, *, leaver: Operator) -> Stranded:
    """Check before removing: every group key and record the leaver opens must be
    open to ``keyring``'s operator, who re-wraps them for the others."""
    mine = await _held_groups(session, keyring.operator.id)
    theirs = await _held_groups(session, leaver.id)
    groups = (await session.exec(select(Group.codename).where(Group.id.in_(theirs - mine)))).all()
    records = await _operator_subjects(session, leaver.id)
    records -= await _operator_subjects(session, keyring.operator.id)
    records -= await _group_subjects(session, mine)
    return Stranded(groups=tuple(sorted(groups)), records=len(records))


async def hand_over_records(
    session: AsyncSession, keyring: Keyring, *, leaver: Operator
) -> tuple[int, int]:
    """Give every remaining operator their own wrap of each record the leaver holds
    one of (unless a group key already opens it for them), then delete the leaver's.
    Returns (wraps added, wraps deleted)."""
    remaining = [op for op in await active_operators(session) if op.id != leaver.id]
    held = {op.id: await _operator_subjects(session, op.id) for op in remaining}
    claimed = await _group_subjects(session, None)
    added = 0
    for subject in sorted(await _operator_subjects(session, leaver.id) - claimed):
        lacking = [op for op in remaining if subject not in held[op.id]]
        if not lacking:
            continue
        table, row_id = subject
        data_key = await keyring.data_key(session, table=table, row_id=row_id)
        binding = data_key_binding(table, row_id)
        for op in lacking:
            session.add(
                KeyWrap(
                    subject_table=table,
                    subject_id=row_id,
                    operator_id=op.id,
                    wrapped=wrap_key(data_key, operator_public_key(op), binding),
                )
            )
            added += 1
    await session.flush()
    return added, await drop_record_wraps(session, leaver=leaver)


async def drop_record_wraps(session: AsyncSession, *, leaver: Operator) -> int:
    """Delete the leaver's own wraps of records no group claims (every other active
    operator holds theirs: unlinked records are sealed to each)."""
    result = await session.exec(delete(KeyWrap).where(KeyWrap.operator_id == leaver.id))
    return int(result.rowcount or 0)


def _refuse_untrusted(session: AsyncSession, operator: Operator) -> None:
    if not trust_of(session).check(operator):
        raise OperatorRemoved(
            f"operator {operator.fingerprint[:16]}'s row fails its signature "
            "(see `intake audit verify`): no key is wrapped to it"
        )


def _refuse_removed(operator: Operator) -> None:
    if operator.removed_at is not None:
        raise OperatorRemoved(
            f"operator {operator.fingerprint[:16]} was removed; register a new key instead"
        )


Subject = tuple[str, uuid.UUID]


async def _held_groups(session: AsyncSession, operator_id: uuid.UUID) -> set[uuid.UUID]:
    live = select(Group.id).where(Group.shredded_at.is_(None))
    rows = await session.exec(
        select(GroupKeyWrap.group_id).where(
            GroupKeyWrap.operator_id == operator_id, GroupKeyWrap.group_id.in_(live)
        )
    )
    return set(rows.all())


async def _operator_subjects(session: AsyncSession, operator_id: uuid.UUID) -> set[Subject]:
    rows = await session.exec(
        select(KeyWrap.subject_table, KeyWrap.subject_id).where(KeyWrap.operator_id == operator_id)
    )
    return {(table, row_id) for table, row_id in rows.all()}


async def _group_subjects(session: AsyncSession, group_ids: set[uuid.UUID] | None) -> set[Subject]:
    """Records wrapped to any of ``group_ids`` (to any group at all if None)."""
    query = select(KeyWrap.subject_table, KeyWrap.subject_id).where(KeyWrap.group_id.is_not(None))
    if group_ids is not None:
        query = query.where(KeyWrap.group_id.in_(group_ids))
    return {(table, row_id) for table, row_id in (await session.exec(query)).all()}
