"""Sealing records on the server side and opening them on an operator's machine.

The server side (``seal_record``) needs only public keys: a fresh data key per
record seals its fields, and the data key is wrapped to the record's group
key, or, for a record no group claims yet, to every operator. The opening side
(``Keyring``) needs an operator's private key, unlocked from the key file with
the passphrase; the running bot never has one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from storage.crypto import (
    Binding,
    CryptoError,
    KemName,
    PrivateKey,
    PublicKey,
    SigningKey,
    new_data_key,
    open_content,
    seal_content,
    unwrap_key,
    wrap_key,
)
from storage.models import Group, GroupKeyWrap, KeyWrap, Operator
from storage.session import AsyncSession
from storage.trust import trusted_operators

DATA_KEY_COLUMN = "data_key"


class Wrap(Protocol):
    """A wrapped data key as read: a ``KeyWrap`` row, or the same columns selected
    alone (a whole inbox's wraps are read without building an ORM object each). What
    it seals (its binding) is known from where it was read."""

    @property
    def group_id(self) -> uuid.UUID | None: ...
    @property
    def operator_id(self) -> uuid.UUID | None: ...
    @property
    def wrapped(self) -> bytes: ...


class NoRecipients(Exception):
    """A record would be sealed to nobody, and so be lost."""


class NotReadable(Exception):
    """This operator holds no key that opens the record."""


def group_key_binding(group_id: uuid.UUID) -> Binding:
    return Binding("groups", "private_key", group_id)


def data_key_binding(table: str, row_id: uuid.UUID) -> Binding:
    return Binding(table, DATA_KEY_COLUMN, row_id)


def group_public_key(group: Group) -> PublicKey:
    return PublicKey(KemName(group.kem), group.public_key)


def operator_public_key(operator: Operator) -> PublicKey:
    return PublicKey(KemName(operator.kem), operator.public_key)


@dataclass(slots=True)
class Sealed:
    """Ciphertexts for a record's columns, and the wraps of its data key."""

    columns: dict[str, bytes]
    wraps: list[KeyWrap] = field(default_factory=list)


def seal_record(
    *,
    table: str,
    row_id: uuid.UUID,
    fields: Mapping[str, bytes],
    groups: Sequence[Group] = (),
    operators: Sequence[Operator] = (),
) -> Sealed:
    """Seal ``fields`` of one row; its data key is wrapped to each group and operator given.

    A linked record goes to its group alone; one no group claims yet goes to
    every operator (and, while a relative is asked which group it is about,
    to each candidate group too).
    """
    active = [op for op in operators if op.removed_at is None]
    if not groups and not active:
        raise NoRecipients("no operator key is registered: add one with `intake operator add`")
    data_key = new_data_key()
    columns = {
        name: seal_content(data_key, plaintext, Binding(table, name, row_id))
        for name, plaintext in fields.items()
    }
    binding = data_key_binding(table, row_id)
    wraps = [
        KeyWrap(
            subject_table=table,
            subject_id=row_id,
            group_id=group.id,
            wrapped=wrap_key(data_key, group_public_key(group), binding),
        )
        for group in groups
    ] + [
        KeyWrap(
            subject_table=table,
            subject_id=row_id,
            operator_id=op.id,
            wrapped=wrap_key(data_key, operator_public_key(op), binding),
        )
        for op in active
    ]
    return Sealed(columns=columns, wraps=wraps)


def new_group_keys(
    *, group_id: uuid.UUID, kem: KemName, operators: Sequence[Operator]
) -> tuple[PublicKey, list[GroupKeyWrap]]:
    """Make a group's key pair; its private half leaves only wrapped to operators."""
    active = [op for op in operators if op.removed_at is None]
    if not active:
        raise NoRecipients(
            "no operator key is registered: add one with `intake operator add` first"
        )
    private = PrivateKey.generate(kem)
    binding = group_key_binding(group_id)
    wraps = [
        GroupKeyWrap(
            group_id=group_id,
            operator_id=op.id,
            wrapped=wrap_key(private.raw(), operator_public_key(op), binding),
        )
        for op in active
    ]
    return private.public_key(), wraps


class Keyring:
    """An operator's unlocked key, and the group keys it opens (cached per command)."""

    def __init__(
        self, *, operator: Operator, private_key: PrivateKey, signing: SigningKey | None = None
    ) -> None:
        if private_key.public_key() != operator_public_key(operator):
            raise NotReadable("this key file does not belong to that operator")
        self.operator = operator
        # Signs what this operator changes that the bot trusts (a rotated group key).
        self.signing = signing
        self._private = private_key
        self._groups: dict[uuid.UUID, PrivateKey] = {}

    @classmethod
    async def for_key(
        cls, session: AsyncSession, private_key: PrivateKey, signing: SigningKey | None = None
    ) -> Keyring:
        public = private_key.public_key()
        operator = (
            await session.exec(select(Operator).where(Operator.public_key == public.raw))
        ).first()
        if operator is None or operator.removed_at is not None:
            raise NotReadable(
                f"key {public.fingerprint()} is not a registered operator of this database"
            )
        return cls(operator=operator, private_key=private_key, signing=signing)

    async def group_key(self, session: AsyncSession, group: Group) -> PrivateKey:
        if group.id in self._groups:
            return self._groups[group.id]
        wrap = (
            await session.exec(
                select(GroupKeyWrap).where(
                    GroupKeyWrap.group_id == group.id, GroupKeyWrap.operator_id == self.operator.id
                )
            )
        ).first()
        if wrap is None:
            raise NotReadable(f"group {group.codename} holds no key for this operator")
        return self._open_group_key(group, wrap)

    def _open_group_key(self, group: Group, wrap: GroupKeyWrap) -> PrivateKey:
        raw = unwrap_key(wrap.wrapped, self._private, group_key_binding(group.id))
        key = PrivateKey(KemName(group.kem), raw)
        if key.public_key() != group_public_key(group):
            raise CryptoError(f"group {group.codename}: the wrapped key is not the group's key")
        self._groups[group.id] = key
        return key

    async def open_group_keys(self, session: AsyncSession, group_ids: Iterable[uuid.UUID]) -> None:
        """Open, in one query, the keys of these groups that this operator was given and
        has not opened yet (a group whose key they were not given is left out)."""
        missing = {g for g in group_ids if g not in self._groups}
        if not missing:
            return
        found = await session.exec(
            select(Group, GroupKeyWrap)
            .join(GroupKeyWrap, GroupKeyWrap.group_id == Group.id)
            .where(Group.id.in_(missing), GroupKeyWrap.operator_id == self.operator.id)
        )
        for group, wrap in found.all():
            self._open_group_key(group, wrap)

    def recipient(self, wrap: Wrap) -> PrivateKey | None:
        """The key that opens this wrap, when this operator holds it open already: their
        own, or a group key opened before (``open_group_keys``)."""
        if wrap.operator_id == self.operator.id:
            return self._private
        return self._groups.get(wrap.group_id) if wrap.group_id is not None else None

    def forget(self, group: Group) -> None:
        """Drop a cached group key (the group's key pair was just rotated)."""
        self._groups.pop(group.id, None)

    async def data_key(self, session: AsyncSession, *, table: str, row_id: uuid.UUID) -> bytes:
        wraps = (
            await session.exec(
                select(KeyWrap).where(KeyWrap.subject_table == table, KeyWrap.subject_id == row_id)
            )
        ).all()
        binding = data_key_binding(table, row_id)
        for wrap in wraps:
            if wrap.operator_id == self.operator.id:
                return unwrap_key(wrap.wrapped, self._private, binding)
        for wrap in wraps:
            if wrap.group_id is not None:
                group = await session.get(Group, wrap.group_id)
                if group is None:
                    continue
                return unwrap_key(wrap.wrapped, await self.group_key(session, group), binding)
        raise NotReadable(f"no key of this operator opens {table} {row_id}")

    async def open_fields(
        self, session: AsyncSession, *, table: str, row_id: uuid.UUID, columns: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        data_key = await self.data_key(session, table=table, row_id=row_id)
        return {
            name: open_content(data_key, blob, Binding(table, name, row_id))
            for name, blob in columns.items()
        }


def _locks_rows(session: AsyncSession) -> bool:
    # SQLite takes the whole database's write lock at BEGIN IMMEDIATE (storage/db.py):
    # a rotation and a sealing never overlap there. PostgreSQL locks rows.
    return session.get_bind().dialect.name == "postgresql"


async def current_group_key(session: AsyncSession, group: Group) -> None:
    """Read the group's key again under a share lock, just before sealing to it.

    ``Group`` rows are read early in an intake batch; an operator removal that rotates
    the key in between would otherwise have the batch seal to the old key (which the
    removed operator opens and the others cannot). The share lock waits for a
    rotation in progress (``lock_for_rotation``) and holds the next one off until this
    transaction commits, so the rotation then sees, and re-wraps, what it sealed."""
    if not _locks_rows(session):
        return
    row = (
        await session.exec(
            select(Group.public_key, Group.kem, Group.signature, Group.signed_by)
            .where(Group.id == group.id)
            .with_for_update(read=True)
        )
    ).one()
    for name, value in zip(("public_key", "kem", "signature", "signed_by"), row, strict=True):
        if getattr(group, name) != value:
            set_committed_value(group, name, value)


async def lock_for_rotation(session: AsyncSession, group: Group) -> None:
    """Lock the group's row before a rotation reads its wraps (see ``current_group_key``)."""
    if _locks_rows(session):
        await session.exec(select(Group.id).where(Group.id == group.id).with_for_update())


async def active_operators(session: AsyncSession) -> list[Operator]:
    """Operators not removed whose row verifies against the pinned signers
    (storage/trust.py): nothing is ever wrapped to an operator someone inserted."""
    result = await session.exec(
        select(Operator).where(Operator.removed_at.is_(None)).order_by(Operator.created_at)
    )
    return trusted_operators(session, result.all())
