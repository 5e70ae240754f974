"""Bot API objects as Telegram builds them: users, chats, message origins, chat members.

The ``origin_*`` helpers build the four kinds of ``MessageOrigin`` for forwarded messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

JSON = dict[str, Any]


def unix_time(value: datetime | int | float) -> int:
    """Unix time of an aware datetime (or a number of seconds, passed through)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("use an aware datetime (Telegram's dates are Unix times)")
        return int(value.timestamp())
    return int(value)


@dataclass(frozen=True, slots=True)
class SimUser:
    """A person using Telegram, with a private chat with the bot (chat id == user id)."""

    id: int
    first_name: str = "Relative"
    language_code: str | None = "ko"
    username: str | None = None
    last_name: str | None = None

    @property
    def chat_id(self) -> int:
        return self.id

    def to_dict(self) -> JSON:
        """The ``User`` object, as it appears in ``from`` of the user's messages."""
        user: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name is not None:
            user["last_name"] = self.last_name
        if self.username is not None:
            user["username"] = self.username
        if self.language_code is not None:
            user["language_code"] = self.language_code
        return user

    def private_chat(self) -> JSON:
        """The ``Chat`` object of the user's private chat with the bot."""
        chat: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name is not None:
            chat["last_name"] = self.last_name
        if self.username is not None:
            chat["username"] = self.username
        return chat


def group_chat(chat_id: int, title: str) -> JSON:
    """A group (or, for ids of the ``-100…`` form, a supergroup) ``Chat``."""
    kind = "supergroup" if str(chat_id).startswith("-100") and len(str(chat_id)) > 13 else "group"
    return {"id": chat_id, "type": kind, "title": title}


def channel_chat(chat_id: int, title: str, username: str | None = None) -> JSON:
    chat: JSON = {"id": chat_id, "type": "channel", "title": title}
    if username is not None:
        chat["username"] = username
    return chat


def _user_dict(user: SimUser | JSON) -> JSON:
    return user.to_dict() if isinstance(user, SimUser) else dict(user)


def origin_user(user: SimUser | JSON, date: datetime | int) -> JSON:
    """A message first sent by a user who allows linking to their account."""
    return {"type": "user", "date": unix_time(date), "sender_user": _user_dict(user)}


def origin_hidden_user(name: str, date: datetime | int) -> JSON:
    """A message first sent by a user who hides their account in forwards."""
    return {"type": "hidden_user", "date": unix_time(date), "sender_user_name": name}


def origin_chat(chat: JSON, date: datetime | int, author_signature: str | None = None) -> JSON:
    """A message first sent on behalf of a chat (an anonymous group admin, say)."""
    origin: JSON = {"type": "chat", "date": unix_time(date), "sender_chat": dict(chat)}
    if author_signature is not None:
        origin["author_signature"] = author_signature
    return origin


def origin_channel(
    chat: JSON, message_id: int, date: datetime | int, author_signature: str | None = None
) -> JSON:
    """A message first posted in a channel."""
    origin: JSON = {
        "type": "channel",
        "date": unix_time(date),
        "chat": dict(chat),
        "message_id": message_id,
    }
    if author_signature is not None:
        origin["author_signature"] = author_signature
    return origin


def member(status: str, user: JSON) -> JSON:
    """A ``ChatMember`` of the given status with the fields its subtype requires."""
    if status == "member":
        return {"status": "member", "user": user}
    if status == "left":
        return {"status": "left", "user": user}
    if status == "kicked":
        return {"status": "kicked", "user": user, "until_date": 0}
    if status == "administrator":
        rights = (
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
        )
        admin: JSON = {
            "status": "administrator",
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
        }
        admin.update(dict.fromkeys(rights, True))
        return admin
    raise ValueError(f"unsupported member status {status!r}")


UPDATE_KINDS: tuple[str, ...] = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "guest_message",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "managed_bot",
)
DEFAULT_EXCLUDED: frozenset[str] = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)


def update_kind(update: JSON) -> str | None:
    for kind in UPDATE_KINDS:
        if kind in update:
            return kind
    return None
