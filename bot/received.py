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
    Chat,
    Message,
    MessageOrigin,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
    User,
)

from bot import texts
from storage.models import MessageKind, OriginKind

# Commands the bot answers itself; their messages are not content to store.
COMMANDS = frozenset({"start", "help", "language", "wipe"})
# Activists' and admins' commands (bot.commands.ACTIONS, listed with their menu words in
# bot.texts, the one list): not content when one of them types it; anyone else's is a
# message like any other, and gets the same receipt.
WATCHER_COMMANDS = frozenset(name for name, _ in texts.WATCHER_COMMANDS)


# Service messages are not messages (issue #14): an auto-delete timer set, a pin, write
# access allowed, a chat background... make no row, no receipt and no question, so that
# nothing the relative did not send becomes a signal. Every Message field of Bot API 10.0
# that its description calls a service message, and the chat events beside them
# (tests/bot/test_replay.py derives the list from api.json and compares).
SERVICE_FIELDS = frozenset(
    {
        # chat events
        "new_chat_members",
        "left_chat_member",
        "new_chat_title",
        "new_chat_photo",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "pinned_message",
        "connected_website",
        # "Service message: ..."
        "chat_owner_left",
        "chat_owner_changed",
        "delete_chat_photo",
        "group_chat_created",
        "supergroup_chat_created",
        "channel_chat_created",
        "message_auto_delete_timer_changed",
        "successful_payment",
        "refunded_payment",
        "users_shared",
        "chat_shared",
        "gift",
        "unique_gift",
        "gift_upgrade_sent",
        "write_access_allowed",
        "proximity_alert_triggered",
        "boost_added",
        "chat_background_set",
        "checklist_tasks_done",
        "checklist_tasks_added",
        "direct_message_price_changed",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        "giveaway_created",
        "giveaway_completed",
        "managed_bot_created",
        "paid_message_price_changed",
        "poll_option_added",
        "poll_option_deleted",
        "suggested_post_approved",
        "suggested_post_approval_failed",
        "suggested_post_declined",
        "suggested_post_paid",
        "suggested_post_refunded",
        "video_chat_scheduled",
        "video_chat_started",
        "video_chat_ended",
        "video_chat_participants_invited",
        "web_app_data",
    }
)
# Content kinds read as they are (no attachment to fetch): their whole JSON is sealed in
# the body, so that a poll's question and options, a story, a checklist, a dice's value
# or paid media reach operators. Fields the library does not know (a newer Bot API) are
# sealed the same way.
SEALED_KINDS = frozenset(
    {
        "animation",
        "live_photo",
        "paid_media",
        "story",
        "checklist",
        "dice",
        "game",
        "poll",
        "invoice",
        "giveaway",
        "giveaway_winners",
        "passport_data",
        "reply_to_story",
        "external_reply",
        "quote",
    }
)
# The forward fields of Bot API 6.x and before (replaced by forward_origin in 7.0); a
# self-hosted Bot API server of an older version still sends them.
OLD_FORWARD = frozenset(
    {
        "forward_from",
        "forward_from_chat",
        "forward_from_message_id",
        "forward_signature",
        "forward_sender_name",
        "forward_date",
    }
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
    unreadable: bool = False  # the library could not parse it: its raw JSON is the body


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


def is_service(raw: dict[str, Any]) -> bool:
    """Whether a message (as JSON) is a service message. The library writes the
    ``*_created`` and ``delete_chat_photo`` flags as false on every message."""
    return any(raw.get(name) not in (None, False) for name in SERVICE_FIELDS)


def _sealed_kinds(message: Message, raw: dict[str, Any]) -> dict[str, Any]:
    unknown = set(message.api_kwargs) - OLD_FORWARD - SERVICE_FIELDS
    return {k: raw[k] for k in sorted(SEALED_KINDS | unknown) if raw.get(k) is not None}


def _old_forward(raw: dict[str, Any]) -> MessageOrigin | None:
    """A pre-7.0 forward (forward_from, forward_date...) read as the origin it means."""
    date = raw.get("forward_date")
    if not isinstance(date, int):
        return None
    data: dict[str, Any] = {"date": date}
    if isinstance(raw.get("forward_from"), dict):
        data |= {"type": "user", "sender_user": raw["forward_from"]}
    elif isinstance(raw.get("forward_from_chat"), dict):
        chat = raw["forward_from_chat"]
        if chat.get("type") == "channel":
            data |= {
                "type": "channel",
                "chat": chat,
                "message_id": raw.get("forward_from_message_id") or 0,
            }
        else:
            data |= {"type": "chat", "sender_chat": chat}
        if raw.get("forward_signature"):
            data["author_signature"] = raw["forward_signature"]
    else:
        data |= {"type": "hidden_user", "sender_user_name": raw.get("forward_sender_name") or ""}
    try:
        return MessageOrigin.de_json(data, None)
    except Exception:  # a shape not even the old API sent: the date alone is still kept
        return None


def read_update(update: Update) -> Received | None:
    """The content of a private message or edit; None for anything else (a service
    message included)."""
    message = update.message or update.edited_message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    if update.message is not None and is_command(message):
        return None
    raw = message.to_dict()
    if is_service(raw):
        return None
    kind, files, extra = _files_and_kind(message)
    body: dict[str, Any] = {"text": message.text, "caption": message.caption, **extra}
    content = _sealed_kinds(message, raw)
    if content:
        body["content"] = content
    entities = message.entities or message.caption_entities
    if entities:
        body["entities"] = [e.to_dict() for e in entities]
    origin_kind = origin_user_id = origin_at = None
    origin = message.forward_origin or _old_forward(raw)
    if origin is not None:
        origin_kind, origin_user_id, names = _origin(origin)
        origin_at = _utc(origin.date)
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
        unreadable=UNREADABLE in message.api_kwargs,
    )


UNREADABLE = "unreadable"  # the body's key for the raw JSON of an update the library refused
# The number of a stand-in message whose own number could not be read: Telegram numbers
# messages from 1, so nothing in the chat has it (the replies delete nothing by it).
NO_NUMBER = 0
_NOT_PRIVATE = frozenset({"group", "supergroup", "channel"})


def unreadable_update(item: dict[str, Any]) -> Update | None:
    """For an update python-telegram-bot cannot parse (an older or newer Bot API shape):
    a stand-in that carries the raw JSON, so that it is sealed as an "unreadable" message
    operators can open, never dropped. Where a private message (sender, chat, number,
    date) can be read from it, the stand-in is that message, receipted and deleted like
    any other; else ``raw_stand_in``'s. None when there is nothing to seal."""
    update_id = item.get("update_id")
    kind = next((k for k in ("message", "edited_message") if isinstance(item.get(k), dict)), None)
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    if kind is None:
        return raw_stand_in(update_id, item)
    raw = item[kind]
    chat, sender = raw.get("chat"), raw.get("from")
    numbers = (
        raw.get("message_id"),
        raw.get("date"),
        chat.get("id") if isinstance(chat, dict) else None,
        sender.get("id") if isinstance(sender, dict) else None,
    )
    if (
        not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)
        or not isinstance(chat, dict)
        or chat.get("type") != "private"
        or is_service(raw)
    ):
        return raw_stand_in(update_id, item)
    message_id, date, chat_id, sender_id = numbers
    assert isinstance(sender, dict)  # noqa: S101 (checked above; for the type checker)
    message = Message(
        message_id=int(str(message_id)),
        date=datetime.fromtimestamp(int(str(date)), UTC),
        chat=Chat(id=int(str(chat_id)), type=Chat.PRIVATE),
        from_user=User(
            id=int(str(sender_id)),
            is_bot=False,
            first_name="",
            language_code=sender.get("language_code")
            if isinstance(sender.get("language_code"), str)
            else None,
        ),
        api_kwargs={UNREADABLE: item},
    )
    if kind == "edited_message":
        message = Message(
            message_id=message.message_id,
            date=message.date,
            chat=message.chat,
            from_user=message.from_user,
            edit_date=message.date,
            api_kwargs={UNREADABLE: item},
        )
        return Update(update_id=update_id, edited_message=message)
    return Update(update_id=update_id, message=message)


def raw_stand_in(update_id: int, item: dict[str, Any]) -> Update | None:
    """An update from which no private message with its sender can be read (no ``from``,
    no number, no date; a kind no Bot API had yet): a stand-in that carries its raw JSON
    (``sealed_raw``), sealed without a sender for operators as an "unreadable" message.
    It is a message in the private chat when that chat's id can be read from it (so that
    the chat gets the usual receipt), else it is in no chat. None when there is nothing
    to seal (the number alone), or when what it carries is no message the bot keeps: a
    service message, or a message of a group or channel."""
    if not set(item) - {"update_id"}:
        return None
    kind: str = next((k for k in ("message", "edited_message") if k in item), "") or next(
        k for k in item if k != "update_id"
    )
    found = item.get(kind)
    chat = found.get("chat") if isinstance(found, dict) else None
    kind_of_chat = chat.get("type") if isinstance(chat, dict) else None
    if isinstance(found, dict) and (is_service(found) or kind_of_chat in _NOT_PRIVATE):
        return None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if (
        kind in ("message", "edited_message")
        and kind_of_chat == "private"
        and isinstance(chat_id, int)
        and not isinstance(chat_id, bool)
    ):
        date = found.get("date") if isinstance(found, dict) else None
        message = Message(
            message_id=NO_NUMBER,
            date=datetime.fromtimestamp(
                date if isinstance(date, int) and not isinstance(date, bool) else 0, UTC
            ),
            chat=Chat(id=chat_id, type=Chat.PRIVATE),
            api_kwargs={UNREADABLE: item},
        )
        if kind == "edited_message":
            return Update(update_id=update_id, edited_message=message)
        return Update(update_id=update_id, message=message)
    return Update(update_id=update_id, api_kwargs={UNREADABLE: item})


def sealed_raw(update: Update) -> dict[str, Any] | None:
    """The raw JSON a ``raw_stand_in`` carries (to seal without a sender), or None."""
    message = update.message or update.edited_message
    kwargs = update.api_kwargs if message is None else message.api_kwargs
    raw = kwargs.get(UNREADABLE)
    if not isinstance(raw, dict) or (message is not None and message.from_user is not None):
        return None
    return dict(_whole(raw))
