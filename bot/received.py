"""What an incoming Telegram message carries, read into plain data.

Pure: no I/O. The intake seals ``body`` as it is, so everything readable in a
message (text, caption, the forward origin's names, a location, a contact)
goes into ``body`` and nowhere else; the fields beside it are what the store
keeps in the open or as keyed digests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telegram import (
    Message,
    MessageOrigin,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
)

from storage.models import MessageKind, OriginKind

# Commands the bot answers itself; their messages are not content to store.
COMMANDS = frozenset({"start", "help", "language", "wipe"})
# Activists' and admins' commands (bot.commands.ACTIONS): not content when one of them
# types it; anyone else's is a message like any other, and gets the same receipt.
WATCHER_COMMANDS = frozenset(
    {"status", "group", "pause", "resume", "safe", "detained", "stage", "timezone", "timeline"}
)


@dataclass(frozen=True, slots=True)
class FileRef:
    """An attachment to fetch from Telegram."""

    kind: MessageKind
    file_id: str
    size: int | None
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Received:
    update_id: int
    sender_id: int
    chat_id: int
    message_id: int
    sent_at: datetime
    kind: MessageKind
    body: dict[str, Any]
    is_edit: bool = False
    origin_kind: OriginKind | None = None
    origin_user_id: int | None = None
    origin_at: datetime | None = None
    files: list[FileRef] = field(default_factory=list)
    language: str | None = None


def _whole(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate in its strings replaced by U+FFFD.

    JSON may carry half of a surrogate pair (``"\\ud83d"``), and Python's json and
    python-telegram-bot accept it; but such a string cannot be encoded as UTF-8, so
    it could be neither sealed nor digested, and the update would fail again at
    every delivery. Nothing else in the bot sees the strings before this."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_whole(k): _whole(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_whole(v) for v in value]
    return value


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _command_name(text: str) -> str:
    if not text.startswith("/") or len(text) < 2:
        return ""
    words = text[1:].split(maxsplit=1)
    return words[0].split("@", 1)[0].casefold() if words else ""


def is_command(message: Message) -> bool:
    return _command_name(message.text or "") in COMMANDS


def watcher_command(received: Received) -> bool:
    """Whether a new message is one of the activists' commands (not an edit of one)."""
    text = received.body.get("text")
    return (
        not received.is_edit and isinstance(text, str) and _command_name(text) in WATCHER_COMMANDS
    )


def _origin(origin: MessageOrigin) -> tuple[OriginKind, int | None, dict[str, Any]]:
    names: dict[str, Any] = {}
    if isinstance(origin, MessageOriginUser):
        user = origin.sender_user
        names = {"name": user.full_name, "username": user.username}
        return OriginKind.USER, user.id, names
    if isinstance(origin, MessageOriginHiddenUser):
        return OriginKind.HIDDEN_USER, None, {"name": origin.sender_user_name}
    if isinstance(origin, MessageOriginChat):
        chat = origin.sender_chat
        names = {"chat": chat.title, "signature": origin.author_signature}
        return OriginKind.CHAT, None, names
    if isinstance(origin, MessageOriginChannel):
        chat = origin.chat
        names = {
            "chat": chat.title,
            "message_id": origin.message_id,
            "signature": origin.author_signature,
        }
        return OriginKind.CHANNEL, None, names
    return OriginKind.USER, None, {}


_FILE_META = (
    "file_name",
    "mime_type",
    "duration",
    "width",
    "height",
    "emoji",
    "title",
    "performer",
)


def _files_and_kind(message: Message) -> tuple[MessageKind, list[FileRef], dict[str, Any]]:
    extra: dict[str, Any] = {}
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        meta = {"width": largest.width, "height": largest.height, "size": largest.file_size}
        return (
            MessageKind.PHOTO,
            [FileRef(MessageKind.PHOTO, largest.file_id, largest.file_size, meta)],
            extra,
        )
    attachments: list[tuple[MessageKind, Any]] = [
        (MessageKind.DOCUMENT, message.document),
        (MessageKind.VOICE, message.voice),
        (MessageKind.AUDIO, message.audio),
        (MessageKind.VIDEO, message.video),
        (MessageKind.VIDEO_NOTE, message.video_note),
        (MessageKind.STICKER, message.sticker),
    ]
    for kind, item in attachments:
        if item is None:
            continue
        # From the JSON form: durations stay whole seconds, as Telegram sent them.
        raw = item.to_dict()
        meta = {key: raw[key] for key in _FILE_META if raw.get(key) is not None}
        meta["size"] = item.file_size
        return kind, [FileRef(kind, item.file_id, item.file_size, meta)], extra
    if message.venue:
        v = message.venue
        extra["venue"] = {
            "latitude": v.location.latitude,
            "longitude": v.location.longitude,
            "title": v.title,
            "address": v.address,
        }
        return MessageKind.VENUE, [], extra
    if message.location:
        loc = message.location
        extra["location"] = {
            "latitude": loc.latitude,
            "longitude": loc.longitude,
            "accuracy": loc.horizontal_accuracy,
        }
        return MessageKind.LOCATION, [], extra
    if message.contact:
        c = message.contact
        extra["contact"] = {
            "phone_number": c.phone_number,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "user_id": c.user_id,
        }
        return MessageKind.CONTACT, [], extra
    if message.text is not None:
        return MessageKind.TEXT, [], extra
    return MessageKind.OTHER, [], extra


def read_update(update: Update) -> Received | None:
    """The content of a private message or edit; None for anything else."""
    message = update.message or update.edited_message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    if update.message is not None and is_command(message):
        return None
    kind, files, extra = _files_and_kind(message)
    body: dict[str, Any] = {"text": message.text, "caption": message.caption, **extra}
    entities = message.entities or message.caption_entities
    if entities:
        body["entities"] = [e.to_dict() for e in entities]
    origin_kind = origin_user_id = origin_at = None
    if message.forward_origin is not None:
        origin_kind, origin_user_id, names = _origin(message.forward_origin)
        origin_at = _utc(message.forward_origin.date)
        body["origin"] = {"kind": origin_kind.value, **names, "date": origin_at.isoformat()}
    sent_at = _utc(
        message.edit_date if update.edited_message and message.edit_date else message.date
    )
    return Received(
        update_id=update.update_id,
        sender_id=message.from_user.id,
        chat_id=message.chat.id,
        message_id=message.message_id,
        sent_at=sent_at,
        kind=kind,
        body=_whole(body),
        is_edit=update.edited_message is not None,
        origin_kind=origin_kind,
        origin_user_id=origin_user_id,
        origin_at=origin_at,
        files=[FileRef(f.kind, _whole(f.file_id), f.size, _whole(f.meta)) for f in files],
        language=_whole(message.from_user.language_code),
    )
