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

import sqlalchemy as sa
from sqlmodel import Field, SQLModel
from sqlmodel._compat import SQLModelConfig

from storage import vocabulary
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


class _Table(SQLModel):
    """Every table's base. Nothing validates or serializes a table row through
    pydantic (SQLModel builds table rows without validation), so pydantic builds
    their validators and serializers only if something ever asks (``defer_build``):
    built eagerly they were 0.7 MB and 10-20 ms of every process's start."""

    model_config = SQLModelConfig(
        from_attributes=True, defer_build=True
    )  # SQLModel's own, deferred


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


class Group(_Table, table=True):
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

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    codename: str = Field(max_length=32, unique=True)
    schedule_kind: ScheduleKind = Field(sa_type=_enum(ScheduleKind, "schedule_kind"))
    interval_s: int | None = None
    cron: str | None = Field(default=None, max_length=120)
    tz: str | None = Field(default=None, max_length=64)
    grace_s: int
    detained_after_s: int
    status: Status = Field(default=Status.PENDING, sa_type=_enum(Status, "status"))
    status_since: datetime = Field(default_factory=utc_now)
    status_basis: str | None = Field(default=None, max_length=32)
    last_checkin_at: datetime | None = None
    # The deadline engine's work list: the next moment this group's status can
    # change on its own. Indexed so a pass reads only the due rows.
    next_transition_at: datetime | None = Field(default=None, index=True)
    # The leg the group is on, by its position (legs are ordered).
    current_leg: int | None = None
    paused_until: datetime | None = None
    # The schedule counts from here when it is later than the last check-in: a
    # pause ended (by its end, or early by /resume), or two people cleared a
    # warning (no check-in is invented).
    schedule_from: datetime | None = None
    kem: str = Field(max_length=24)
    public_key: bytes
    created_at: datetime = Field(default_factory=utc_now)
    shredded_at: datetime | None = None
    # An operator's signature over the fields the bot trusts (storage/trust.py), and
    # the signing key's fingerprint; a row that does not verify is not used.
    signature: bytes | None = None
    signed_by: str | None = Field(default=None, max_length=64)


class Leg(_Table, table=True):
    """A named stretch of a route, checked on its own schedule."""

    __tablename__ = "legs"
    __table_args__ = (sa.UniqueConstraint("group_id", "position"),)

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", ondelete="CASCADE", index=True)
    position: int
    name_sealed: bytes
    interval_s: int | None = None
    grace_s: int | None = None
    dead_zone_s: int | None = None


class Operator(_Table, table=True):
    __tablename__ = "operators"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    name_sealed: bytes
    kem: str = Field(max_length=24)
    public_key: bytes = Field(unique=True)
    fingerprint: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utc_now)
    removed_at: datetime | None = None
    # An operator's signature over the fields the bot trusts (storage/trust.py), and
    # the signing key's fingerprint; a row that does not verify is not used.
    signature: bytes | None = None
    signed_by: str | None = Field(default=None, max_length=64)


class GroupKeyWrap(_Table, table=True):
    """A group's private key, sealed to one operator's public key."""

    __tablename__ = "group_key_wraps"
    __table_args__ = (sa.UniqueConstraint("group_id", "operator_id"),)

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", ondelete="CASCADE", index=True)
    operator_id: uuid.UUID = Field(foreign_key="operators.id", ondelete="CASCADE", index=True)
    wrapped: bytes
    created_at: datetime = Field(default_factory=utc_now)


class KeyWrap(_Table, table=True):
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

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    subject_table: str = Field(max_length=32)
    subject_id: uuid.UUID
    group_id: uuid.UUID | None = Field(
        default=None, foreign_key="groups.id", ondelete="CASCADE", index=True
    )
    operator_id: uuid.UUID | None = Field(
        default=None, foreign_key="operators.id", ondelete="CASCADE", index=True
    )
    wrapped: bytes


# --------------------------------------------------------------------------- people


class Member(_Table, table=True):
    """A traveller. Name and notes are sealed to the group's key."""

    __tablename__ = "members"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", ondelete="CASCADE", index=True)
    details_sealed: bytes | None = None
    created_at: datetime = Field(default_factory=utc_now)


class MemberIdentifier(_Table, table=True):
    __tablename__ = "member_identifiers"
    __table_args__ = (sa.UniqueConstraint("group_id", "kind", "blind_index"),)

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    member_id: uuid.UUID = Field(foreign_key="members.id", ondelete="CASCADE", index=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", ondelete="CASCADE")
    kind: IdentifierKind = Field(sa_type=_enum(IdentifierKind, "kind"))
    blind_index: bytes = Field(index=True)


class Person(_Table, table=True):
    """Someone who wrote to the bot. Known by a blind index of their Telegram id."""

    __tablename__ = "people"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    telegram_index: bytes = Field(unique=True)
    # Kept only while the bot writes to them first (activists, admins, operators:
    # storage.people.CHAT_ROLES); a relative's or a stranger's is never kept. Empty: not
    # kept (an empty value, not NULL: making the column nullable would copy the table on
    # SQLite, whose DROP cascades to every role grant while foreign keys are on).
    chat_sealed: bytes = b""
    language: str | None = Field(default=None, max_length=16)
    # For the times shown to this person; None means [display] timezone.
    tz: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utc_now)
    unreachable_at: datetime | None = None
    # When they last wrote or pressed a button: for ``intake people list``.
    last_seen_at: datetime | None = None


class RoleGrant(_Table, table=True):
    __tablename__ = "role_grants"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="people.id", ondelete="CASCADE", index=True)
    role: Role = Field(sa_type=_enum(Role, "role"))
    group_id: uuid.UUID | None = Field(
        default=None, foreign_key="groups.id", ondelete="CASCADE", index=True
    )
    invite_id: uuid.UUID | None = Field(default=None, foreign_key="invites.id", ondelete="SET NULL")
    # A relative of several groups chooses among them by this short, neutral word
    # fixed at invite time ("1", "A"): never the codename, which the chat must not show.
    chat_label: str | None = Field(default=None, max_length=16)
    granted_at: datetime = Field(default_factory=utc_now)
    revoked_at: datetime | None = None


class Invite(_Table, table=True):
    """A one-time code. Only its keyed digest is stored."""

    __tablename__ = "invites"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    code_digest: bytes = Field(unique=True)
    role: Role = Field(sa_type=_enum(Role, "role"))
    group_id: uuid.UUID | None = Field(
        default=None, foreign_key="groups.id", ondelete="CASCADE", index=True
    )
    chat_label: str | None = Field(default=None, max_length=16)  # given to the grant
    created_at: datetime = Field(default_factory=utc_now)
    expires_at: datetime
    redeemed_at: datetime | None = None
    redeemed_by: uuid.UUID | None = Field(
        default=None, foreign_key="people.id", ondelete="SET NULL"
    )
    # What the admin calls the person ("Ji-woo"), sealed with the server key:
    # admins' notices and ``intake people list`` name people by it.
    label_sealed: bytes | None = None


# --------------------------------------------------------------------------- messages


class Message(_Table, table=True):
    """One received message (or one version of an edited one)."""

    __tablename__ = "messages"
    __table_args__ = (sa.Index("ix_messages_group_received", "group_id", "received_at"),)

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    # Telegram's update counter for this bot: an update seen again after a
    # crash is recognised by it. Not an identifier of a person.
    update_id: int | None = Field(default=None, unique=True)
    sender_id: uuid.UUID | None = Field(
        default=None, foreign_key="people.id", ondelete="SET NULL", index=True
    )
    group_id: uuid.UUID | None = Field(default=None, foreign_key="groups.id", ondelete="CASCADE")
    link_reason: LinkReason | None = Field(default=None, sa_type=_enum(LinkReason, "link_reason"))
    kind: MessageKind = Field(sa_type=_enum(MessageKind, "kind"))
    signal: Signal | None = Field(default=None, sa_type=_enum(Signal, "signal"))
    possible_detention: bool = False
    # A relative's message with no signal about a group that was LATE, SILENT or DETAINED
    # when it came: its activists were told "unconfirmed news arrived" (no content), and
    # operators see it first (intake inbox list --unconfirmed) until a signal is recorded
    # for it or an operator links it.
    unconfirmed: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # Indexed: a message's later versions are found by it (opening one message,
    # and each of thousands, must not read the whole table).
    previous_id: uuid.UUID | None = Field(
        default=None, foreign_key="messages.id", ondelete="SET NULL", index=True
    )
    version: int = 1
    origin_kind: OriginKind | None = Field(default=None, sa_type=_enum(OriginKind, "origin_kind"))
    origin_index: bytes | None = Field(default=None, index=True)
    origin_at: datetime | None = None
    # When the relative sent it to the bot (Telegram's date), and when the bot
    # took it in: after downtime the two differ, and deadlines use the first.
    sent_at: datetime | None = None
    received_at: datetime = Field(default_factory=utc_now)
    # Equal for equal normalised texts with equal origin dates, so that one
    # check-in forwarded by several relatives is counted once. Keyed.
    text_digest: bytes | None = Field(default=None, index=True)
    body_sealed: bytes
    # Where the message sits in the relative's chat, so that it can be deleted
    # there; sealed with the server key because the bot must read it back.
    chat_ref_sealed: bytes | None = None
    # A keyed digest of (chat, message id): how an edit finds the message it edits.
    chat_ref_digest: bytes | None = Field(default=None, index=True)
    deleted_in_chat_at: datetime | None = None


class PendingDeletion(_Table, table=True):
    """One of the bot's replies in a private chat that is still to delete itself: kept in
    the database, so that a restart or a crash leaves nothing behind (promise 3). The
    chat is sealed with the server secret and found by a keyed digest; the row goes once
    the reply is deleted, or once Telegram's 48 hours have passed."""

    __tablename__ = "pending_deletions"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    chat_digest: bytes = Field(index=True)
    chat_sealed: bytes
    message_id: int
    sent_at: datetime
    due_at: datetime = Field(index=True)


class Attachment(_Table, table=True):
    __tablename__ = "attachments"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    message_id: uuid.UUID = Field(foreign_key="messages.id", ondelete="CASCADE", index=True)
    kind: MessageKind = Field(sa_type=_enum(MessageKind, "kind"))
    too_large: bool = False
    meta_sealed: bytes
    content_sealed: bytes | None = None


class Note(_Table, table=True):
    """An operator's note on a message, sealed to operators."""

    __tablename__ = "notes"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    message_id: uuid.UUID = Field(foreign_key="messages.id", ondelete="CASCADE", index=True)
    operator_id: uuid.UUID | None = Field(
        default=None, foreign_key="operators.id", ondelete="SET NULL"
    )
    body_sealed: bytes
    created_at: datetime = Field(default_factory=utc_now)


class MessageMark(_Table, table=True):
    """Per-operator reading state."""

    __tablename__ = "message_marks"
    __table_args__ = (sa.UniqueConstraint("message_id", "operator_id"),)

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    message_id: uuid.UUID = Field(foreign_key="messages.id", ondelete="CASCADE")
    operator_id: uuid.UUID = Field(foreign_key="operators.id", ondelete="CASCADE")
    seen_at: datetime | None = None
    starred: bool = False


class ProcessedUpdate(_Table, table=True):
    """Every update whose effects are committed, so a redelivery is a no-op."""

    __tablename__ = "processed_updates"

    update_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    processed_at: datetime = Field(default_factory=utc_now)


# --------------------------------------------------------------------------- signals


class CodebookEntry(_Table, table=True):
    """An agreed phrase and what it signals; no group means organisation-wide."""

    __tablename__ = "codebook_entries"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    group_id: uuid.UUID | None = Field(
        default=None, foreign_key="groups.id", ondelete="CASCADE", index=True
    )
    phrase_sealed: bytes
    means: Signal = Field(sa_type=_enum(Signal, "means"))
    leg_id: uuid.UUID | None = Field(default=None, foreign_key="legs.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now)
    # An operator's signature over the fields the bot trusts (storage/trust.py), and
    # the signing key's fingerprint; a row that does not verify is not used.
    signature: bytes | None = None
    signed_by: str | None = Field(default=None, max_length=64)


class CheckinEvent(_Table, table=True):
    """A signal about a group at a time: what the deadline engine reads."""

    __tablename__ = "checkin_events"
    __table_args__ = (sa.Index("ix_checkin_events_group_at", "group_id", "at"),)

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", ondelete="CASCADE")
    message_id: uuid.UUID | None = Field(
        default=None, foreign_key="messages.id", ondelete="SET NULL"
    )
    signal: Signal = Field(sa_type=_enum(Signal, "signal"))
    leg_id: uuid.UUID | None = Field(default=None, foreign_key="legs.id", ondelete="SET NULL")
    # When the traveller sent it (the forward origin's date), not when a
    # relative forwarded it.
    at: datetime
    recorded_at: datetime = Field(default_factory=utc_now)
    source: str = Field(max_length=24)
    # A check-in that came while a report stood (duress, detention, a person's
    # mark): recorded and announced, but it clears nothing (captors can force it).
    after_report: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class Flip(_Table, table=True):
    __tablename__ = "flips"
    __table_args__ = (sa.Index("ix_flips_group_at", "group_id", "at"),)

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", ondelete="CASCADE")
    from_status: Status = Field(sa_type=_enum(Status, "from_status"))
    to_status: Status = Field(sa_type=_enum(Status, "to_status"))
    # The deadline itself, not the moment the engine noticed it.
    at: datetime
    basis: str = Field(max_length=32)
    recorded_at: datetime = Field(default_factory=utc_now)
    acknowledged_at: datetime | None = None
    # The deadline engine's second work list: when an unacknowledged alert is
    # repeated or escalated next. Indexed so a pass reads only the due rows.
    next_reminder_at: datetime | None = Field(default=None, index=True)
    escalated_at: datetime | None = None


class Alert(_Table, table=True):
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

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    flip_id: uuid.UUID = Field(foreign_key="flips.id", ondelete="CASCADE", index=True)
    recipient_id: uuid.UUID = Field(foreign_key="people.id", ondelete="CASCADE", index=True)
    purpose: AlertPurpose = Field(
        default=AlertPurpose.ALERT, sa_type=_enum(AlertPurpose, "purpose")
    )
    # Who a CLAIMED or UNREACHABLE notice is about: a display name or a
    # pseudonym, sealed with the server key (the bot must read it back).
    about_sealed: bytes | None = None
    tier: int = 1
    round: int = 0
    state: AlertState = Field(default=AlertState.PENDING, sa_type=_enum(AlertState, "state"))
    attempts: int = 0
    next_attempt_at: datetime | None = None
    claimed_until: datetime | None = None
    # The bot process (``Run``) holding the claim: when that process is found
    # dead, its claims are released at once instead of waiting out ``claimed_until``.
    claimed_by: uuid.UUID | None = None
    sent_at: datetime | None = None
    telegram_message_id: int | None = None
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utc_now)


class GroupAct(_Table, table=True):
    """One person's request to pause, mark SAFE or clear a group that is SILENT
    or DETAINED: it waits for a second person (``bot.acts``) and lapses after
    ``[alerts] confirm_within``. Until then the group and its alerts go on."""

    __tablename__ = "group_acts"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", ondelete="CASCADE", index=True)
    act: ActKind = Field(sa_type=_enum(ActKind, "act"))
    # The status the group had when it was asked: a confirmation applies only
    # while the group is still in it.
    from_status: Status = Field(sa_type=_enum(Status, "from_status"))
    # None when asked on the command line (an admin there counts as one person).
    requested_by: uuid.UUID | None = Field(
        default=None, foreign_key="people.id", ondelete="SET NULL"
    )
    requested_at: datetime
    expires_at: datetime
    pause_s: int | None = None
    confirmed_by: uuid.UUID | None = Field(
        default=None, foreign_key="people.id", ondelete="SET NULL"
    )
    done_at: datetime | None = None
    # "confirmed" (in Telegram or on the command line) or "lapsed".
    outcome: str | None = Field(default=None, max_length=16)


class Acknowledgement(_Table, table=True):
    __tablename__ = "acknowledgements"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    flip_id: uuid.UUID = Field(foreign_key="flips.id", ondelete="CASCADE", index=True)
    person_id: uuid.UUID = Field(foreign_key="people.id", ondelete="CASCADE")
    kind: AckKind = Field(sa_type=_enum(AckKind, "kind"))
    at: datetime = Field(default_factory=utc_now)


class WatchState(_Table, table=True):
    """The bot's own vital signs, such as when it last ran a deadline pass:
    after a restart, admins are told how long it was away."""

    __tablename__ = "watch_state"

    name: str = Field(primary_key=True, max_length=32)
    at: datetime


class Run(_Table, table=True):
    """One running bot process and its heartbeat: the claims of a run whose
    heartbeat stopped, or whose process is gone from this machine, are released
    (storage.runs). ``boot_id`` is the machine's boot (Linux's random boot id,
    no name), so that ``pid`` is only ever checked on the machine it belongs to."""

    __tablename__ = "runs"

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    boot_id: str = Field(max_length=40)
    pid: int
    started_at: datetime
    heartbeat_at: datetime


# --------------------------------------------------------------------------- audit


class AuditEvent(_Table, table=True):
    """A hash chain: each entry's hash covers the previous one. The database
    refuses updates and deletes on this table (triggers in the migration)."""

    __tablename__ = "audit_events"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime
    actor: str = Field(max_length=80)
    action: str = Field(max_length=48)
    subject: str | None = Field(default=None, max_length=80)
    details: str = "{}"
    prev_hash: bytes
    hash: bytes = Field(unique=True)
