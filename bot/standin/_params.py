"""Reading a Bot API request's parameters the way Telegram does.

Telegram accepts parameters in the query string, as ``application/x-www-form-urlencoded``,
as ``multipart/form-data`` or as a JSON object. In the form encodings every value is a string
(python-telegram-bot sends strings as they are and JSON-encodes everything else: ``123``,
``true``, ``{"inline_keyboard": ...}``), so each parameter is read according to its documented
type.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from aiohttp import web


class Kind(Enum):
    INT = "int"
    STR = "str"
    BOOL = "bool"
    JSON = "json"  # an object or array, JSON-serialized in form encodings
    CHAT = "chat"  # Integer or String (@username)
    FILE = "file"  # InputFile (an upload, kept as bytes) or String (a file_id or attach://)


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


_I, _S, _B, _J, _C, _F = Kind.INT, Kind.STR, Kind.BOOL, Kind.JSON, Kind.CHAT, Kind.FILE

METHOD_PARAMS: dict[str, dict[str, Kind]] = {
    "getMe": {},
    "logOut": {},
    "close": {},
    "getUpdates": {"offset": _I, "limit": _I, "timeout": _I, "allowed_updates": _J},
    "setWebhook": {
        "url": _S,
        "ip_address": _S,
        "max_connections": _I,
        "allowed_updates": _J,
        "drop_pending_updates": _B,
        "secret_token": _S,
    },
    "deleteWebhook": {"drop_pending_updates": _B},
    "getWebhookInfo": {},
    "sendMessage": {
        "business_connection_id": _S,
        "chat_id": _C,
        "message_thread_id": _I,
        "text": _S,
        "parse_mode": _S,
        "entities": _J,
        "link_preview_options": _J,
        "disable_web_page_preview": _B,
        "disable_notification": _B,
        "protect_content": _B,
        "allow_paid_broadcast": _B,
        "message_effect_id": _S,
        "reply_parameters": _J,
        "reply_to_message_id": _I,
        "allow_sending_without_reply": _B,
        "reply_markup": _J,
    },
    "sendPhoto": {
        "business_connection_id": _S,
        "chat_id": _C,
        "message_thread_id": _I,
        "photo": _F,
        "caption": _S,
        "parse_mode": _S,
        "show_caption_above_media": _B,
        "has_spoiler": _B,
        "disable_notification": _B,
        "protect_content": _B,
        "allow_paid_broadcast": _B,
        "message_effect_id": _S,
        "reply_parameters": _J,
        "reply_to_message_id": _I,
        "allow_sending_without_reply": _B,
        "reply_markup": _J,
    },
    "editMessageText": {
        "business_connection_id": _S,
        "chat_id": _C,
        "message_id": _I,
        "inline_message_id": _S,
        "text": _S,
        "parse_mode": _S,
        "entities": _J,
        "link_preview_options": _J,
        "disable_web_page_preview": _B,
        "reply_markup": _J,
    },
    "editMessageReplyMarkup": {
        "business_connection_id": _S,
        "chat_id": _C,
        "message_id": _I,
        "inline_message_id": _S,
        "reply_markup": _J,
    },
    "answerCallbackQuery": {
        "callback_query_id": _S,
        "text": _S,
        "show_alert": _B,
        "url": _S,
        "cache_time": _I,
    },
    "deleteMessage": {"chat_id": _C, "message_id": _I},
    "deleteMessages": {"chat_id": _C, "message_ids": _J},
    "getFile": {"file_id": _S},
    "setMyCommands": {"commands": _J, "scope": _J, "language_code": _S},
    "deleteMyCommands": {"scope": _J, "language_code": _S},
    "getMyCommands": {"scope": _J, "language_code": _S},
    "leaveChat": {"chat_id": _C},
    "sendChatAction": {
        "business_connection_id": _S,
        "chat_id": _C,
        "message_thread_id": _I,
        "action": _S,
    },
}


async def read_raw(request: web.Request) -> dict[str, Any]:
    """All parameters of a request, from the query string and the body (body wins)."""
    raw: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return raw
    ctype = request.content_type
    if ctype == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request("can't parse JSON object") from exc
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON object: an object expected")
        raw.update(body)
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                raw[key] = value.file.read()
            else:
                raw[key] = value
    return raw


def coerce(method: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The known parameters of ``method`` with their documented types; others are ignored."""
    spec = METHOD_PARAMS.get(method, {})
    params: dict[str, Any] = {}
    for name, kind in spec.items():
        if name not in raw or raw[name] is None:
            continue
        value = raw[name]
        if kind is Kind.FILE and isinstance(value, str) and value.startswith("attach://"):
            value = raw.get(value.removeprefix("attach://"))
            if value is None:
                raise bad_request(f"wrong file identifier/HTTP URL specified for {name}")
        params[name] = _coerce_one(name, kind, value)
    return params


def _coerce_one(name: str, kind: Kind, value: Any) -> Any:
    if kind is Kind.FILE and isinstance(value, bytes):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if kind in (Kind.STR, Kind.FILE):
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return json.dumps(value)
    if kind is Kind.INT:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError as exc:
            raise bad_request(f"wrong parameter {name} specified") from exc
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return bool(value)
        return str(value).strip().lower() in ("true", "1", "yes", "on")
    if kind is Kind.CHAT:
        if isinstance(value, bool):
            raise bad_request("chat not found")
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            if text.startswith("@"):
                return text
            raise bad_request("chat not found") from None
    # Kind.JSON
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise bad_request(f"can't parse {name} JSON object") from exc
    return value
