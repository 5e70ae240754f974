"""The whole domain as tables.

What a seized copy of the database shows is decided here. Columns named
``*_sealed`` hold ciphertexts from ``storage.crypto``; columns named
``*_index`` or ``*_digest`` hold keyed one-way values. No column holds message
text, a phone number, a Telegram id, a person's name or a codebook phrase in
clear: codenames, statuses and times are the only readable facts.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedAsDataclass, mapped_column

from storage import vocabulary
from storage.sqltypes import UTCDateTime
from storage.timeutil import utc_now


def _enum(kind: type[enum.Enum], column: str) -> sa.Enum:
    # Stored as text with a CHECK, not as a PostgreSQL ENUM type, so that adding
    # a value is an ordinary migration on both databases. The CHECK is named
    # after its column: PostgreSQL wants distinct names within a table.
    return sa.Enum(
        kind,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda e: [m.value for m in e],
        name=f"{column}_values",
    )


def _id() -> uuid.UUID:
    return uuid.uuid4()


class Base(MappedAsDataclass, DeclarativeBase, kw_only=True, eq=False):
    """Every table's base: SQLAlchemy's declarative mapping, with each row a dataclass.

    A row is built with keywords only, and what is not given takes its default at
    once (an id, a time), before the row is ever flushed: code that builds a group and
    its key wraps reads ``group.id`` straight away. A column's ``default_factory`` is
    also its ``insert_default``, so that an INSERT written as a statement gets the same.
    Rows compare by identity (``eq=False``), as the session's identity map does. Each
    table says ``kw_only=True`` again because type checkers read a dataclass's options
    from its own class statement, not from its base."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


# Every table, for the migrations (storage/migrations/env.py) and the schema tests.
metadata = Base.metadata

# --------------------------------------------------------------------------- vocabularies

# Defined in storage.vocabulary (light to import); named here too, beside the tables.
Status = vocabulary.Status
ScheduleKind = vocabulary.ScheduleKind
Role = vocabulary.Role
Signal = vocabulary.Signal
IdentifierKind = vocabulary.IdentifierKind
MessageKind = vocabulary.MessageKind
OriginKind = vocabulary.OriginKind
LinkReason = vocabulary.LinkReason
AlertState = vocabulary.AlertState
AlertPurpose = vocabulary.AlertPurpose
ActKind = vocabulary.ActKind
AckKind = vocabulary.AckKind


# --------------------------------------------------------------------------- groups and keys


class Group(Base, kw_only=True):
    __tablename__ = "groups"
    # So that the live groups are counted from indexes alone (bot.app, at every start:
    # all groups less the shredded). On SQLite it holds the shredded groups only, so that
    # no query for live groups (shredded_at IS NULL) is ever planned on it: SQLite plans
    # without statistics, PostgreSQL with them. (No postgresql_where: naming it would
    # load the PostgreSQL dialect into every bot on SQLite.)
    __table_args__ = (
        sa.Index(
            "ix_groups_shredded", "shredded_at", sqlite_where=sa.text("shredded_at IS NOT NULL")
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    codename: Mapped[str] = mapped_column(sa.String(32), unique=True)
    schedule_kind: Mapped[ScheduleKind] = mapped_column(_enum(ScheduleKind, "schedule_kind"))
    interval_s: Mapped[int | None] = mapped_column(default=None)
    cron: Mapped[str | None] = mapped_column(sa.String(120), default=None)
    tz: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    grace_s: Mapped[int]
    detained_after_s: Mapped[int]
    status: Mapped[Status] = mapped_column(_enum(Status, "status"), default=Status.PENDING)
    status_since: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    status_basis: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    last_checkin_at: Mapped[datetime | None] = mapped_column(default=None)
    # The deadline engine's work list: the next moment this group's status can
    # change on its own. Indexed so a pass reads only the due rows.
    next_transition_at: Mapped[datetime | None] = mapped_column(index=True, default=None)
    # The leg the group is on, by its position (legs are ordered).
    current_leg: Mapped[int | None] = mapped_column(default=None)
    paused_until: Mapped[datetime | None] = mapped_column(default=None)
    # The schedule counts from here when it is later than the last check-in: a
    # pause ended (by its end, or early by /resume), or two people cleared a
    # warning (no check-in is invented).
    schedule_from: Mapped[datetime | None] = mapped_column(default=None)
    kem: Mapped[str] = mapped_column(sa.String(24))
    public_key: Mapped[bytes]
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    shredded_at: Mapped[datetime | None] = mapped_column(default=None)
    # An operator's signature over the fields the bot trusts (storage/trust.py), and
    # the signing key's fingerprint; a row that does not verify is not used.
    signature: Mapped[bytes | None] = mapped_column(default=None)
    signed_by: Mapped[str | None] = mapped_column(sa.String(64), default=None)


class Leg(Base, kw_only=True):
    """A named stretch of a route, checked on its own schedule."""

    __tablename__ = "legs"
    __table_args__ = (sa.UniqueConstraint("group_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    group_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    name_sealed: Mapped[bytes]
    interval_s: Mapped[int | None] = mapped_column(default=None)
    grace_s: Mapped[int | None] = mapped_column(default=None)
    dead_zone_s: Mapped[int | None] = mapped_column(default=None)


class Operator(Base, kw_only=True):
    __tablename__ = "operators"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    name_sealed: Mapped[bytes]
    kem: Mapped[str] = mapped_column(sa.String(24))
    public_key: Mapped[bytes] = mapped_column(unique=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)
    # An operator's signature over the fields the bot trusts (storage/trust.py), and
    # the signing key's fingerprint; a row that does not verify is not used.
    signature: Mapped[bytes | None] = mapped_column(default=None)
    signed_by: Mapped[str | None] = mapped_column(sa.String(64), default=None)


class GroupKeyWrap(Base, kw_only=True):
    """A group's private key, sealed to one operator's public key."""

    __tablename__ = "group_key_wraps"
    __table_args__ = (sa.UniqueConstraint("group_id", "operator_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    group_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    operator_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    wrapped: Mapped[bytes]
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)


class KeyWrap(Base, kw_only=True):
    """One sealed record's data key, sealed to a group key or to one operator.

    A linked record has one wrap, to its group; a record no group claims yet has
    one wrap per operator.
    """

    __tablename__ = "key_wraps"
    __table_args__ = (
        sa.Index("ix_key_wraps_subject", "subject_table", "subject_id"),
        sa.CheckConstraint(
            "(group_id IS NULL) <> (operator_id IS NULL)", name="key_wraps_one_recipient"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    subject_table: Mapped[str] = mapped_column(sa.String(32))
    subject_id: Mapped[uuid.UUID]
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True, default=None
    )
    operator_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("operators.id", ondelete="CASCADE"), index=True, default=None
    )
    wrapped: Mapped[bytes]


# --------------------------------------------------------------------------- people


class Member(Base, kw_only=True):
    """A traveller. Name and notes are sealed to the group's key."""

    __tablename__ = "members"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    group_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    details_sealed: Mapped[bytes | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)


class MemberIdentifier(Base, kw_only=True):
    __tablename__ = "member_identifiers"
    __table_args__ = (sa.UniqueConstraint("group_id", "kind", "blind_index"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    member_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    kind: Mapped[IdentifierKind] = mapped_column(_enum(IdentifierKind, "kind"))
    blind_index: Mapped[bytes] = mapped_column(index=True)


class Person(Base, kw_only=True):
    """Someone who wrote to the bot. Known by a blind index of their Telegram id."""

    __tablename__ = "people"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    telegram_index: Mapped[bytes] = mapped_column(unique=True)
    # Kept only while the bot writes to them first (activists, admins, operators:
    # storage.people.CHAT_ROLES); a relative's or a stranger's is never kept. Empty: not
    # kept (an empty value, not NULL: making the column nullable would copy the table on
    # SQLite, whose DROP cascades to every role grant while foreign keys are on).
    chat_sealed: Mapped[bytes] = mapped_column(default=b"")
    language: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    # For the times shown to this person; None means [display] timezone.
    tz: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    unreachable_at: Mapped[datetime | None] = mapped_column(default=None)
    # When they last wrote or pressed a button: for ``intake people list``.
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)


class RoleGrant(Base, kw_only=True):
    __tablename__ = "role_grants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    person_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True, default=None
    )
    invite_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("invites.id", ondelete="SET NULL"), default=None
    )
    # A relative of several groups chooses among them by this short, neutral word
    # fixed at invite time ("1", "A"): never the codename, which the chat must not show.
    chat_label: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    granted_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Invite(Base, kw_only=True):
    """A one-time code. Only its keyed digest is stored."""

    __tablename__ = "invites"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    code_digest: Mapped[bytes] = mapped_column(unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True, default=None
    )
    # Given to the grant when the invite is redeemed.
    chat_label: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    expires_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None] = mapped_column(default=None)
    redeemed_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("people.id", ondelete="SET NULL"), default=None
    )
    # What the admin calls the person ("Ji-woo"), sealed with the server key:
    # admins' notices and ``intake people list`` name people by it.
    label_sealed: Mapped[bytes | None] = mapped_column(default=None)


# --------------------------------------------------------------------------- messages


class Message(Base, kw_only=True):
    """One received message (or one version of an edited one)."""

    __tablename__ = "messages"
    __table_args__ = (sa.Index("ix_messages_group_received", "group_id", "received_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    # Telegram's update counter for this bot: an update seen again after a
    # crash is recognised by it. Not an identifier of a person.
    update_id: Mapped[int | None] = mapped_column(unique=True, default=None)
    sender_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("people.id", ondelete="SET NULL"), index=True, default=None
    )
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), default=None
    )
    link_reason: Mapped[LinkReason | None] = mapped_column(
        _enum(LinkReason, "link_reason"), default=None
    )
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind, "kind"))
    signal: Mapped[Signal | None] = mapped_column(_enum(Signal, "signal"), default=None)
    possible_detention: Mapped[bool] = mapped_column(default=False)
    # A relative's message with no signal about a group that was LATE, SILENT or DETAINED
    # when it came: its activists were told "unconfirmed news arrived" (no content), and
    # operators see it first (intake inbox list --unconfirmed) until a signal is recorded
    # for it or an operator links it.
    unconfirmed: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Indexed: a message's later versions are found by it (opening one message,
    # and each of thousands, must not read the whole table).
    previous_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="SET NULL"), index=True, default=None
    )
    version: Mapped[int] = mapped_column(default=1)
    origin_kind: Mapped[OriginKind | None] = mapped_column(
        _enum(OriginKind, "origin_kind"), default=None
    )
    origin_index: Mapped[bytes | None] = mapped_column(index=True, default=None)
    origin_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the relative sent it to the bot (Telegram's date), and when the bot
    # took it in: after downtime the two differ, and deadlines use the first.
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    received_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    # Equal for equal normalised texts with equal origin dates, so that one
    # check-in forwarded by several relatives is counted once. Keyed.
    text_digest: Mapped[bytes | None] = mapped_column(index=True, default=None)
    body_sealed: Mapped[bytes]
    # Where the message sits in the relative's chat, so that it can be deleted
    # there; sealed with the server key because the bot must read it back.
    chat_ref_sealed: Mapped[bytes | None] = mapped_column(default=None)
    # A keyed digest of (chat, message id): how an edit finds the message it edits.
    chat_ref_digest: Mapped[bytes | None] = mapped_column(index=True, default=None)
    deleted_in_chat_at: Mapped[datetime | None] = mapped_column(default=None)


class PendingDeletion(Base, kw_only=True):
    """One of the bot's replies in a private chat that is still to delete itself: kept in
    the database, so that a restart or a crash leaves nothing behind (promise 3). The
    chat is sealed with the server secret and found by a keyed digest; the row goes once
    the reply is deleted, or once Telegram's 48 hours have passed."""

    __tablename__ = "pending_deletions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    chat_digest: Mapped[bytes] = mapped_column(index=True)
    chat_sealed: Mapped[bytes]
    message_id: Mapped[int]
    sent_at: Mapped[datetime]
    due_at: Mapped[datetime] = mapped_column(index=True)


class Attachment(Base, kw_only=True):
    __tablename__ = "attachments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    message_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind, "kind"))
    too_large: Mapped[bool] = mapped_column(default=False)
    meta_sealed: Mapped[bytes]
    content_sealed: Mapped[bytes | None] = mapped_column(default=None)


class Note(Base, kw_only=True):
    """An operator's note on a message, sealed to operators."""

    __tablename__ = "notes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    message_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    operator_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("operators.id", ondelete="SET NULL"), default=None
    )
    body_sealed: Mapped[bytes]
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)


class MessageMark(Base, kw_only=True):
    """Per-operator reading state."""

    __tablename__ = "message_marks"
    __table_args__ = (sa.UniqueConstraint("message_id", "operator_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    message_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("messages.id", ondelete="CASCADE"))
    operator_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("operators.id", ondelete="CASCADE")
    )
    seen_at: Mapped[datetime | None] = mapped_column(default=None)
    starred: Mapped[bool] = mapped_column(default=False)


class ProcessedUpdate(Base, kw_only=True):
    """Every update whose effects are committed, so a redelivery is a no-op."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)


# --------------------------------------------------------------------------- signals


class CodebookEntry(Base, kw_only=True):
    """An agreed phrase and what it signals; no group means organisation-wide."""

    __tablename__ = "codebook_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True, default=None
    )
    phrase_sealed: Mapped[bytes]
    means: Mapped[Signal] = mapped_column(_enum(Signal, "means"))
    leg_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("legs.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    # An operator's signature over the fields the bot trusts (storage/trust.py), and
    # the signing key's fingerprint; a row that does not verify is not used.
    signature: Mapped[bytes | None] = mapped_column(default=None)
    signed_by: Mapped[str | None] = mapped_column(sa.String(64), default=None)


class CheckinEvent(Base, kw_only=True):
    """A signal about a group at a time: what the deadline engine reads."""

    __tablename__ = "checkin_events"
    __table_args__ = (sa.Index("ix_checkin_events_group_at", "group_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    group_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="SET NULL"), default=None
    )
    signal: Mapped[Signal] = mapped_column(_enum(Signal, "signal"))
    leg_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("legs.id", ondelete="SET NULL"), default=None
    )
    # When the traveller sent it (the forward origin's date), not when a
    # relative forwarded it.
    at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    source: Mapped[str] = mapped_column(sa.String(24))
    # A check-in that came while a report stood (duress, detention, a person's
    # mark): recorded and announced, but it clears nothing (captors can force it).
    after_report: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Flip(Base, kw_only=True):
    __tablename__ = "flips"
    __table_args__ = (sa.Index("ix_flips_group_at", "group_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    group_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    from_status: Mapped[Status] = mapped_column(_enum(Status, "from_status"))
    to_status: Mapped[Status] = mapped_column(_enum(Status, "to_status"))
    # The deadline itself, not the moment the engine noticed it.
    at: Mapped[datetime]
    basis: Mapped[str] = mapped_column(sa.String(32))
    recorded_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    # The deadline engine's second work list: when an unacknowledged alert is
    # repeated or escalated next. Indexed so a pass reads only the due rows.
    next_reminder_at: Mapped[datetime | None] = mapped_column(index=True, default=None)
    escalated_at: Mapped[datetime | None] = mapped_column(default=None)


class Alert(Base, kw_only=True):
    """The outbox: one message to one recipient about one flip.

    Written in the transaction that writes the flip; marked sent only after
    Telegram accepted it. The unique key is what keeps two engines (or a
    restart in the middle) from writing the same message twice.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        sa.UniqueConstraint("flip_id", "recipient_id", "purpose", "round"),
        sa.Index("ix_alerts_due", "state", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    flip_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("flips.id", ondelete="CASCADE"), index=True
    )
    recipient_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[AlertPurpose] = mapped_column(
        _enum(AlertPurpose, "purpose"), default=AlertPurpose.ALERT
    )
    # Who a CLAIMED or UNREACHABLE notice is about: a display name or a
    # pseudonym, sealed with the server key (the bot must read it back).
    about_sealed: Mapped[bytes | None] = mapped_column(default=None)
    tier: Mapped[int] = mapped_column(default=1)
    round: Mapped[int] = mapped_column(default=0)
    state: Mapped[AlertState] = mapped_column(
        _enum(AlertState, "state"), default=AlertState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    # The bot process (``Run``) holding the claim: when that process is found
    # dead, its claims are released at once instead of waiting out ``claimed_until``.
    claimed_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    telegram_message_id: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)


class GroupAct(Base, kw_only=True):
    """One person's request to pause, mark SAFE or clear a group that is SILENT
    or DETAINED: it waits for a second person (``bot.acts``) and lapses after
    ``[alerts] confirm_within``. Until then the group and its alerts go on."""

    __tablename__ = "group_acts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    group_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    act: Mapped[ActKind] = mapped_column(_enum(ActKind, "act"))
    # The status the group had when it was asked: a confirmation applies only
    # while the group is still in it.
    from_status: Mapped[Status] = mapped_column(_enum(Status, "from_status"))
    # None when asked on the command line (an admin there counts as one person).
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("people.id", ondelete="SET NULL"), default=None
    )
    requested_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    pause_s: Mapped[int | None] = mapped_column(default=None)
    confirmed_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("people.id", ondelete="SET NULL"), default=None
    )
    done_at: Mapped[datetime | None] = mapped_column(default=None)
    # "confirmed" (in Telegram or on the command line) or "lapsed".
    outcome: Mapped[str | None] = mapped_column(sa.String(16), default=None)


class Acknowledgement(Base, kw_only=True):
    __tablename__ = "acknowledgements"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    flip_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("flips.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("people.id", ondelete="CASCADE"))
    kind: Mapped[AckKind] = mapped_column(_enum(AckKind, "kind"))
    at: Mapped[datetime] = mapped_column(default_factory=utc_now, insert_default=utc_now)


class WatchState(Base, kw_only=True):
    """The bot's own vital signs, such as when it last ran a deadline pass:
    after a restart, admins are told how long it was away."""

    __tablename__ = "watch_state"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    at: Mapped[datetime]


class Run(Base, kw_only=True):
    """One running bot process and its heartbeat: the claims of a run whose
    heartbeat stopped, or whose process is gone from this machine, are released
    (storage.runs). ``boot_id`` is the machine's boot (Linux's random boot id,
    no name), so that ``pid`` is only ever checked on the machine it belongs to."""

    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default_factory=_id, insert_default=_id)
    boot_id: Mapped[str] = mapped_column(sa.String(40))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


# --------------------------------------------------------------------------- audit


class AuditEvent(Base, kw_only=True):
    """A hash chain: each entry's hash covers the previous one. The database
    refuses updates and deletes on this table (triggers in the migration)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(80))
    action: Mapped[str] = mapped_column(sa.String(48))
    subject: Mapped[str | None] = mapped_column(sa.String(80), default=None)
    details: Mapped[str] = mapped_column(default="{}")
    prev_hash: Mapped[bytes]
    hash: Mapped[bytes] = mapped_column(unique=True)
