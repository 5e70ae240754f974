"""The vocabularies of the tables: what a status, a schedule or a signal can be.

Apart from ``storage.models`` so that a reader that needs only these words (`intake
status`, the schedules) does not load SQLAlchemy to get them; the
models take them from here and ``storage.models`` still names them all.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    PENDING = "PENDING"
    OK = "OK"
    LATE = "LATE"
    SILENT = "SILENT"
    DETAINED = "DETAINED"
    SAFE = "SAFE"
    PAUSED = "PAUSED"


class ScheduleKind(enum.StrEnum):
    INTERVAL = "interval"
    CRON = "cron"


class Role(enum.StrEnum):
    RELATIVE = "relative"
    ACTIVIST = "activist"
    OPERATOR = "operator"
    ADMIN = "admin"


# Who is told about groups and may act on them: alerts and notices go to them, their
# commands are commands (not messages to seal), and only they may press an alert's
# buttons (storage.alerts._still_watching).
WATCHER_ROLES = frozenset({Role.ACTIVIST, Role.ADMIN})


class Signal(enum.StrEnum):
    CHECKIN = "checkin"
    STAGE = "stage"
    DURESS = "duress"
    DETAINED = "detained"
    SAFE = "safe"


class IdentifierKind(enum.StrEnum):
    PHONE = "phone"
    TELEGRAM_ID = "telegram_id"
    USERNAME = "username"
    HIDDEN_NAME = "hidden_name"


class MessageKind(enum.StrEnum):
    TEXT = "text"
    PHOTO = "photo"
    DOCUMENT = "document"
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO = "video"
    VIDEO_NOTE = "video_note"
    STICKER = "sticker"
    LOCATION = "location"
    VENUE = "venue"
    CONTACT = "contact"
    OTHER = "other"


class OriginKind(enum.StrEnum):
    USER = "user"
    HIDDEN_USER = "hidden_user"
    CHAT = "chat"
    CHANNEL = "channel"


class LinkReason(enum.StrEnum):
    CHOSEN = "chosen"
    MEMBER_ORIGIN = "member_origin"
    MEMBER_PHONE = "member_phone"
    PHRASE = "phrase"
    SOLE_GROUP = "sole_group"
    OPERATOR = "operator"


class AlertState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


class AlertPurpose(enum.StrEnum):
    ALERT = "alert"  # a group flipped to SILENT or DETAINED
    REMINDER = "reminder"  # still unacknowledged after alerts.repeat_every
    ALL_CLEAR = "all_clear"  # the group checked in again (or was marked safe)
    CLAIMED = "claimed"  # another recipient is handling it
    UNREACHABLE = "unreachable"  # to admins: a recipient blocked the bot or is gone
    # To everyone alerted about a group: a person's act on it (asked, confirmed,
    # done) or a check-in after a report. What it says is in ``about_sealed``.
    NOTICE = "notice"


class ActKind(enum.StrEnum):
    """What one person asks of a group that may need a second person's word."""

    PAUSE = "pause"
    SAFE = "safe"
    CLEAR = "clear"


class AckKind(enum.StrEnum):
    ACKNOWLEDGE = "acknowledge"
    CLAIM = "claim"
