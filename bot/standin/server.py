"""A local Telegram Bot API server for tests, the demo, and people without a Telegram account.

:class:`TelegramStandIn` answers the Bot API methods the intake bot uses, in Telegram's JSON
shapes, on 127.0.0.1, so python-telegram-bot runs against it unchanged
(``Bot(token, base_url=standin.base_url, base_file_url=standin.file_base_url)``). Test code
plays the people: :meth:`TelegramStandIn.send_text` and friends build updates as Telegram
would and queue them; what the bot did is recorded for assertions (:attr:`sent`,
:meth:`messages_in`, :attr:`deleted`, :meth:`confirmed_update_ids` …); faults are injected
with :meth:`fail_next`, :meth:`delay_next`, :meth:`block` and :meth:`go_down`.

With a ``state_file`` the stand-in keeps, across its own restarts, what a bot remembers of
Telegram: the token, the next update id, each chat's next message id, the next callback query
and file numbers. Telegram never hands out an update id twice; a restarted stand-in that began
again at its first id would hand out ids the bot had already confirmed (its next ``offset``
confirms them unseen) or taken in (the bot skips them as done), and message ids the bot may
still delete. Queued updates and stored files are not kept: they live in memory only.

Call everything from the thread that runs the event loop. The stand-in logs method names at
DEBUG level and nothing else: no message text, no identifiers, no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from ._api_methods import BOT_API_METHODS
from ._params import ApiError, bad_request, coerce, read_raw
from ._text import EntityParseError, entities_from_json, finish_text, parse_text, utf16_len
from .shapes import (
    DEFAULT_EXCLUDED,
    JSON,
    UPDATE_KINDS,
    SimUser,
    channel_chat,
    group_chat,
    member,
    origin_channel,
    origin_chat,
    origin_hidden_user,
    origin_user,
    unix_time,
    update_kind,
)

log = logging.getLogger("bot.standin")

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files, as Telegram does
DELETE_WINDOW_SECONDS = 48 * 3600
MAX_LONG_POLL_SECONDS = 50
WEBHOOK_BACKOFF_START = 0.05
WEBHOOK_BACKOFF_MAX = 0.8
LOCAL_WEBHOOK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_RE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{30,}")
SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_DEFAULT_FAULT_TEXT = {
    400: "Bad Request: injected fault",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
# the first part of a file_id says what kind of file it is, as in Telegram's ids
_FILE_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAAI",
    "document": "BQACAgIAAxkBAAI",
    "voice": "AwACAgIAAxkBAAI",
    "audio": "CQACAgIAAxkBAAI",
    "video": "BAACAgIAAxkBAAI",
    "sticker": "CAACAgIAAxkBAAI",
}
_FILE_FOLDER = {
    "photo": "photos",
    "document": "documents",
    "voice": "voice",
    "audio": "music",
    "video": "videos",
    "sticker": "stickers",
}


@dataclass(slots=True)
class SentMessage:
    """A message the bot sent, with its edits applied."""

    chat_id: int
    message_id: int
    text: str | None
    date: int
    protect_content: bool
    reply_markup: JSON | None
    entities: list[JSON]
    parse_mode: str | None = None
    disable_notification: bool = False
    reply_to_message_id: int | None = None
    edit_date: int | None = None
    edit_count: int = 0
    deleted: bool = False
    message: JSON = field(default_factory=dict)  # the Message object as it is now
    photo: bytes | None = None  # what sendPhoto uploaded (or the file it named)
    # When the stand-in took the request (wall clock, seconds): benchmarks time an
    # alert's arrival by it rather than by when they next looked at ``sent``.
    received_at: float = field(default_factory=time.time)

    @property
    def callback_data(self) -> list[str]:
        """The callback_data of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One successful Bot API call about a chat, as a border guard's view of the chat
    is made of: when, which method, which chat, with which parameters (coerced)."""

    at: float  # the stand-in's clock
    method: str
    chat_id: int
    params: JSON


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    size: int
    path: str


@dataclass(slots=True)
class _Fault:
    status: int
    description: str | None
    retry_after: int | None
    remaining: int


@dataclass(slots=True)
class _Delay:
    seconds: float
    remaining: int


_GLOBAL_SCOPES = frozenset(
    {"default", "all_private_chats", "all_group_chats", "all_chat_administrators"}
)
_API_METHODS_LOWER = frozenset(m.lower() for m in BOT_API_METHODS)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class TelegramStandIn:
    """A small Telegram Bot API server on 127.0.0.1 (see the module docstring)."""

    origin_user = staticmethod(origin_user)
    origin_hidden_user = staticmethod(origin_hidden_user)
    origin_chat = staticmethod(origin_chat)
    origin_channel = staticmethod(origin_channel)

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_username: str = "intake_test_bot",
        bot_id: int | None = None,
        bot_name: str = "Check-in intake",
        first_update_id: int = 700_000_001,
        clock: Callable[[], float] | None = None,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self._state_file = None if state_file is None else Path(state_file)
        saved = _read_state(self._state_file) if self._state_file is not None else None
        if token is None and saved is not None:
            token = saved.token
        if token is None:
            bot_id = bot_id if bot_id is not None else 7_000_000_001
            token = f"{bot_id}:AA{secrets.token_urlsafe(32)[:33]}"
        if not TOKEN_RE.fullmatch(token):
            raise ValueError("token must look like a Bot API token: <digits>:<30+ characters>")
        token_id = int(token.partition(":")[0])
        if bot_id is not None and bot_id != token_id:
            raise ValueError("bot_id must be the number before the token's colon")
        self.token: str = token
        self.bot_id: int = token_id
        self.bot_username = bot_username
        self.bot_name = bot_name
        self._clock = clock or time.time

        # what the bot did
        self.sent: list[SentMessage] = []
        self.deleted: set[tuple[int, int]] = set()
        self.commands: dict[str, list[JSON]] = {}
        self.left_chats: set[int] = set()
        self.answered_callbacks: list[str] = []
        self.callback_answers: dict[str, JSON] = {}
        self.chat_actions: list[tuple[int, str]] = []
        self.downloads: list[str] = []  # file_ids the bot downloaded
        self.calls: list[str] = []
        self.chat_calls: list[ChatCall] = []  # the successful calls that name a chat, in order
        self.errors: list[BaseException] = []  # the stand-in's own failures, for debugging

        # Telegram's side
        self._users: dict[int, SimUser] = {}
        self._chats: dict[int, JSON] = {}
        self._messages: dict[int, dict[int, JSON]] = {}
        self._next_message_id: dict[int, int] = {}
        self._sent_index: dict[tuple[int, int], SentMessage] = {}
        self._blocked: set[int] = set()
        self._files: dict[str, _StoredFile] = {}
        self._file_paths: dict[str, str] = {}
        self._open_callbacks: set[str] = set()
        self._next_callback = 4_382_000_000_000_000_001
        self._file_counter = 0

        # updates
        self._pending: list[JSON] = []
        self._confirmed: set[int] = set()
        self._next_update_id = first_update_id
        self._allowed: list[str] | None = None
        self._poll_generation = 0
        if saved is not None:
            self._next_update_id = max(first_update_id, saved.next_update_id)
            self._next_message_id = dict(saved.next_message_id)
            self._next_callback = max(self._next_callback, saved.next_callback)
            self._file_counter = saved.file_counter

        # webhook
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        self._webhook_max_connections = 40
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self.webhook_deliveries = 0  # POSTs made to the webhook, successful or not

        # faults
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, list[_Delay]] = {}

        # server
        self._host = "127.0.0.1"
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

        self._methods: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._m_get_me,
                "logOut": self._m_true,
                "close": self._m_true,
                "getUpdates": self._m_get_updates,
                "setWebhook": self._m_set_webhook,
                "deleteWebhook": self._m_delete_webhook,
                "getWebhookInfo": self._m_get_webhook_info,
                "sendMessage": self._m_send_message,
                "sendPhoto": self._m_send_photo,
                "editMessageText": self._m_edit_message_text,
                "editMessageReplyMarkup": self._m_edit_message_reply_markup,
                "answerCallbackQuery": self._m_answer_callback_query,
                "deleteMessage": self._m_delete_message,
                "deleteMessages": self._m_delete_messages,
                "getFile": self._m_get_file,
                "setMyCommands": self._m_set_my_commands,
                "deleteMyCommands": self._m_delete_my_commands,
                "getMyCommands": self._m_get_my_commands,
                "leaveChat": self._m_leave_chat,
                "sendChatAction": self._m_send_chat_action,
            }.items()
        }

    # ------------------------------------------------------------------------ server life

    @property
    def base_url(self) -> str:
        """Bot API URL without the token (python-telegram-bot appends it)."""
        return f"http://{self._url_host()}:{self._require_port()}/bot"

    @property
    def file_base_url(self) -> str:
        """File download URL without the token."""
        return f"http://{self._url_host()}:{self._require_port()}/file/bot"

    @property
    def port(self) -> int:
        return self._require_port()

    @property
    def is_up(self) -> bool:
        return self._runner is not None

    def _url_host(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    def _require_port(self) -> int:
        if not self._port:
            raise RuntimeError("the stand-in is not started")
        return self._port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("the stand-in is already running")
        self._loop = asyncio.get_running_loop()
        self._host = host
        await self._listen(port)
        self._save_state()  # the token, before any bot is given it
        self._down = False
        if self._webhook_url and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = self._loop.create_task(self._deliver_webhook())
        log.debug("stand-in listening")

    async def stop(self) -> None:
        """Stop listening and stop delivering to a webhook. State is kept."""
        await self._stop_webhook_task()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._notify()

    async def go_down(self) -> None:
        """Telegram is unreachable: the port stops accepting connections, open connections
        (long polls included) are dropped, webhook delivery pauses. State is kept."""
        self._down = True
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._notify()

    async def come_back(self) -> None:
        """Accept connections again, on the same port, with the state kept."""
        if self._runner is None:
            await self._listen(self._port)
        self._down = False
        self._notify()

    async def __aenter__(self) -> TelegramStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.2, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])

    # --------------------------------------------------------------------- change signals

    def _notify(self) -> None:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop and not loop.is_closed():
            loop.call_soon_threadsafe(self._fire)
        else:
            self._fire()

    def _fire(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, seconds: float | None) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    async def changed(self, within: float | None = None) -> None:
        """Return at the stand-in's next state change (or after ``within`` seconds)."""
        await self._wait_change(within)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; it is checked whenever the stand-in's state
        changes. Raises ``TimeoutError`` after ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the stand-in did not reach the expected state in time")
            await self._wait_change(min(remaining, 0.25))

    async def wait_confirmed(self, update_ids: Iterable[int], within: float = 5.0) -> None:
        """Wait until every one of ``update_ids`` is confirmed by the bot."""
        wanted = set(update_ids)
        await self.wait_for(lambda: wanted <= self._confirmed, within)

    # ------------------------------------------------------------------------ the people

    def user(
        self,
        user_id: int,
        first_name: str = "Relative",
        *,
        language_code: str | None = "ko",
        username: str | None = None,
        last_name: str | None = None,
    ) -> SimUser:
        """A person with a private chat with the bot (chat id == user id)."""
        if user_id <= 0:
            raise ValueError("user ids are positive")
        person = SimUser(user_id, first_name, language_code, username, last_name)
        self._users[user_id] = person
        self._chats[user_id] = person.private_chat()
        return person

    def send_text(
        self,
        user: SimUser,
        text: str,
        *,
        entities: list[JSON] | None = None,
        date: datetime | None = None,
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> JSON:
        """The user writes ``text`` (in their private chat, or in ``chat_id``, a group).
        Returns the update; its message carries automatic entities (``bot_command`` …)."""
        body = self._user_text(text, entities, limit=4096, what="text")
        return self._user_message(user, body, date=date, chat_id=chat_id, reply_to=reply_to)

    def send_fields(self, user: SimUser, fields: JSON, *, date: datetime | None = None) -> JSON:
        """The user's private message with any fields (a service message, a poll, an old
        forward, a shape of another Bot API version), put in the chat as it is."""
        return self._user_message(user, copy.deepcopy(fields), date=date)

    def send_forward(
        self,
        user: SimUser,
        text: str,
        *,
        origin: JSON,
        date: datetime | None = None,
        entities: list[JSON] | None = None,
    ) -> JSON:
        """The user forwards a text message; ``origin`` is a ``MessageOrigin`` (see the
        ``origin_*`` helpers)."""
        body = self._user_text(text, entities, limit=4096, what="text")
        return self._user_message(user, body, date=date, forward_origin=origin)

    def send_photo(
        self,
        user: SimUser,
        data: bytes,
        *,
        caption: str | None = None,
        forward_origin: JSON | None = None,
        width: int = 1280,
        height: int = 960,
        date: datetime | None = None,
        file_size: int | None = None,
        media_group_id: str | None = None,
    ) -> JSON:
        """The user sends a photo; Telegram offers it in several sizes (a ``PhotoSize`` list,
        smallest first). ``file_size`` claims a bigger size than ``data`` (for limits).
        Photos sent together as an album share a ``media_group_id``."""
        sizes: list[tuple[int, int]] = []
        for side in (90, 320, 800, 1280):
            scale = min(1.0, side / max(width, height))
            dims = (max(1, round(width * scale)), max(1, round(height * scale)))
            if dims not in sizes:
                sizes.append(dims)
        photo: list[JSON] = []
        for w, h in sizes:
            stored = self._store_file("photo", data, "jpg", file_size)
            photo.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": stored.size,
                    "width": w,
                    "height": h,
                }
            )
        body: JSON = {"photo": photo}
        if media_group_id is not None:
            body["media_group_id"] = media_group_id
        body.update(self._caption(caption))
        return self._user_message(user, body, date=date, forward_origin=forward_origin)

    def send_document(
        self,
        user: SimUser,
        data: bytes,
        *,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        forward_origin: JSON | None = None,
        date: datetime | None = None,
        file_size: int | None = None,
    ) -> JSON:
        """The user sends a file (a screenshot sent as a file, a PDF …)."""
        ext = file_name.rsplit(".", 1)[1] if "." in file_name else "bin"
        stored = self._store_file("document", data, ext, file_size)
        document = self._file_fields(stored)
        document.update({"file_name": file_name, "mime_type": mime_type})
        body: JSON = {"document": document}
        body.update(self._caption(caption))
        return self._user_message(user, body, date=date, forward_origin=forward_origin)

    def send_voice(
        self,
        user: SimUser,
        data: bytes,
        *,
        duration: int = 3,
        mime_type: str = "audio/ogg",
        caption: str | None = None,
        forward_origin: JSON | None = None,
        date: datetime | None = None,
        file_size: int | None = None,
    ) -> JSON:
        """The user sends a voice note."""
        stored = self._store_file("voice", data, "oga", file_size)
        voice = self._file_fields(stored)
        voice.update({"duration": duration, "mime_type": mime_type})
        body: JSON = {"voice": voice}
        body.update(self._caption(caption))
        return self._user_message(user, body, date=date, forward_origin=forward_origin)

    def send_audio(
        self,
        user: SimUser,
        data: bytes,
        *,
        duration: int = 30,
        file_name: str | None = "audio.mp3",
        mime_type: str = "audio/mpeg",
        title: str | None = None,
        performer: str | None = None,
        caption: str | None = None,
        forward_origin: JSON | None = None,
        date: datetime | None = None,
        file_size: int | None = None,
    ) -> JSON:
        """The user sends a music/audio file."""
        ext = file_name.rsplit(".", 1)[1] if file_name and "." in file_name else "mp3"
        stored = self._store_file("audio", data, ext, file_size)
        audio = self._file_fields(stored)
        audio["duration"] = duration
        for key, value in (
            ("performer", performer),
            ("title", title),
            ("file_name", file_name),
            ("mime_type", mime_type),
        ):
            if value is not None:
                audio[key] = value
        body: JSON = {"audio": audio}
        body.update(self._caption(caption))
        return self._user_message(user, body, date=date, forward_origin=forward_origin)

    def send_video(
        self,
        user: SimUser,
        data: bytes,
        *,
        duration: int = 5,
        width: int = 640,
        height: int = 360,
        file_name: str | None = None,
        mime_type: str = "video/mp4",
        caption: str | None = None,
        forward_origin: JSON | None = None,
        date: datetime | None = None,
        file_size: int | None = None,
    ) -> JSON:
        """The user sends a video."""
        stored = self._store_file("video", data, "mp4", file_size)
        video = self._file_fields(stored)
        video.update({"width": width, "height": height, "duration": duration})
        if file_name is not None:
            video["file_name"] = file_name
        video["mime_type"] = mime_type
        body: JSON = {"video": video}
        body.update(self._caption(caption))
        return self._user_message(user, body, date=date, forward_origin=forward_origin)

    def send_sticker(
        self,
        user: SimUser,
        data: bytes,
        *,
        emoji: str | None = "👍",
        is_animated: bool = False,
        is_video: bool = False,
        set_name: str | None = None,
        width: int = 512,
        height: int = 512,
        forward_origin: JSON | None = None,
        date: datetime | None = None,
    ) -> JSON:
        """The user sends a (regular) sticker."""
        ext = "tgs" if is_animated else ("webm" if is_video else "webp")
        stored = self._store_file("sticker", data, ext, None)
        sticker = self._file_fields(stored)
        sticker.update(
            {
                "type": "regular",
                "width": width,
                "height": height,
                "is_animated": is_animated,
                "is_video": is_video,
            }
        )
        if emoji is not None:
            sticker["emoji"] = emoji
        if set_name is not None:
            sticker["set_name"] = set_name
        return self._user_message(
            user, {"sticker": sticker}, date=date, forward_origin=forward_origin
        )

    def send_location(
        self,
        user: SimUser,
        latitude: float,
        longitude: float,
        *,
        horizontal_accuracy: float | None = None,
        live_period: int | None = None,
        date: datetime | None = None,
        forward_origin: JSON | None = None,
    ) -> JSON:
        """The user shares a location (a live location with ``live_period``)."""
        location = self._location(latitude, longitude)
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = float(horizontal_accuracy)
        if live_period is not None:
            location["live_period"] = live_period
        return self._user_message(
            user, {"location": location}, date=date, forward_origin=forward_origin
        )

    def send_venue(
        self,
        user: SimUser,
        latitude: float,
        longitude: float,
        title: str,
        address: str,
        *,
        date: datetime | None = None,
        forward_origin: JSON | None = None,
    ) -> JSON:
        """The user shares a venue; like Telegram, the message has ``location`` too."""
        location = self._location(latitude, longitude)
        body: JSON = {
            "venue": {"location": location, "title": title, "address": address},
            "location": dict(location),
        }
        return self._user_message(user, body, date=date, forward_origin=forward_origin)

    def send_contact(
        self,
        user: SimUser,
        phone_number: str,
        first_name: str,
        *,
        last_name: str | None = None,
        user_id: int | None = None,
        vcard: str | None = None,
        date: datetime | None = None,
        forward_origin: JSON | None = None,
    ) -> JSON:
        """The user shares a contact card."""
        contact: JSON = {"phone_number": phone_number, "first_name": first_name}
        if last_name is not None:
            contact["last_name"] = last_name
        if user_id is not None:
            contact["user_id"] = user_id
        if vcard is not None:
            contact["vcard"] = vcard
        return self._user_message(
            user, {"contact": contact}, date=date, forward_origin=forward_origin
        )

    def edit_text(
        self,
        user: SimUser,
        message_id: int,
        new_text: str,
        *,
        entities: list[JSON] | None = None,
        date: datetime | None = None,
    ) -> JSON:
        """The user edits one of their text messages: an ``edited_message`` update."""
        chat = self._ensure_private_chat(user)
        msg = self._messages.get(chat["id"], {}).get(message_id)
        if msg is None or (chat["id"], message_id) in self.deleted:
            raise ValueError("no such message in the user's chat")
        if msg.get("from", {}).get("id") != user.id or "text" not in msg:
            raise ValueError("a user can edit only their own text messages")
        if "forward_origin" in msg:
            raise ValueError("forwarded messages cannot be edited")
        body = self._user_text(new_text, entities, limit=4096, what="text")
        edit_date = unix_time(date) if date is not None else self._now()
        msg["edit_date"] = max(edit_date, msg["date"] + 1)
        msg["text"] = body["text"]
        msg.pop("entities", None)
        if "entities" in body:
            msg["entities"] = body["entities"]
        return self._queue({"edited_message": copy.deepcopy(msg)})

    def press_button(self, user: SimUser, message: JSON, data: str) -> JSON:
        """The user presses the inline button with callback data ``data`` under the bot's
        ``message`` (a Message dict, e.g. ``standin.sent[-1].message``)."""
        chat_id = message["chat"]["id"]
        current = self._messages.get(chat_id, {}).get(message["message_id"])
        if current is None or (chat_id, message["message_id"]) in self.deleted:
            raise ValueError("the message is not in the chat any more")
        rows = current.get("reply_markup", {}).get("inline_keyboard", [])
        if not any(b.get("callback_data") == data for row in rows for b in row):
            raise ValueError("the message has no inline button with that callback data")
        query_id = str(self._next_callback)
        self._next_callback += 1
        self._save_state()
        self._open_callbacks.add(query_id)
        query: JSON = {
            "id": query_id,
            "from": user.to_dict(),
            "message": copy.deepcopy(current),
            "chat_instance": str(-(abs(chat_id) * 7919 + self.bot_id) % 10**19),
            "data": data,
        }
        return self._queue({"callback_query": query})

    def add_bot_to_group(self, user: SimUser, *, group_id: int, title: str) -> JSON:
        """The user adds the bot to a group: a ``my_chat_member`` update (left → member),
        then the service message with ``new_chat_members``. Returns the first."""
        if group_id >= 0:
            raise ValueError("group chat ids are negative")
        chat = group_chat(group_id, title)
        self._chats[group_id] = chat
        self.left_chats.discard(group_id)
        bot = self._bot_user()
        update = self._queue(
            {
                "my_chat_member": {
                    "chat": dict(chat),
                    "from": user.to_dict(),
                    "date": self._now(),
                    "old_chat_member": member("left", bot),
                    "new_chat_member": member("member", bot),
                }
            }
        )
        self._user_message(user, {"new_chat_members": [self._bot_user()]}, chat_id=group_id)
        return update

    def channel_post(
        self,
        *,
        channel_id: int,
        title: str,
        text: str,
        username: str | None = None,
        date: datetime | None = None,
    ) -> JSON:
        """A post in a channel where the bot is an administrator: a ``channel_post`` update."""
        if channel_id >= 0:
            raise ValueError("channel ids are negative")
        chat = channel_chat(channel_id, title, username)
        self._chats[channel_id] = chat
        msg: JSON = {
            "message_id": self._take_message_id(channel_id),
            "sender_chat": dict(chat),
            "chat": dict(chat),
            "date": unix_time(date) if date is not None else self._now(),
        }
        msg.update(self._user_text(text, None, limit=4096, what="text"))
        self._messages.setdefault(channel_id, {})[msg["message_id"]] = msg
        return self._queue({"channel_post": copy.deepcopy(msg)})

    def block(self, user: SimUser) -> None:
        """The user blocks the bot: sends to their chat answer 403, and the bot gets a
        ``my_chat_member`` update (member → kicked)."""
        chat = self._ensure_private_chat(user)
        if user.id in self._blocked:
            return
        self._blocked.add(user.id)
        self._member_change(user, chat, "member", "kicked")

    def unblock(self, user: SimUser) -> None:
        """The user restarts the bot (kicked → member)."""
        chat = self._ensure_private_chat(user)
        if user.id not in self._blocked:
            return
        self._blocked.discard(user.id)
        self._member_change(user, chat, "kicked", "member")

    def inject(self, update: JSON) -> int:
        """Queue any raw update (an ``update_id`` is assigned if missing); returns its id."""
        return int(self._queue(copy.deepcopy(update))["update_id"])

    # -------------------------------------------------------------------- what happened

    def messages_in(self, chat_id: int) -> list[JSON]:
        """The chat as its members see it now: everyone's messages, edits applied, minus the
        deleted ones, oldest first."""
        messages = self._messages.get(chat_id, {})
        return [
            copy.deepcopy(messages[mid])
            for mid in sorted(messages)
            if (chat_id, mid) not in self.deleted
        ]

    def confirmed_update_ids(self) -> set[int]:
        """Update ids confirmed by a getUpdates offset, a 2xx from the webhook, or forgotten
        on the bot's request (negative offset, drop_pending_updates)."""
        return set(self._confirmed)

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates Telegram still holds for the bot, oldest first."""
        return copy.deepcopy(self._pending)

    @property
    def webhook_url(self) -> str:
        return self._webhook_url

    def file_bytes(self, file_id: str) -> bytes:
        return self._files[file_id].data

    # ---------------------------------------------------------------------------- faults

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        count: int = 1,
        description: str | None = None,
    ) -> None:
        """The next ``count`` calls of ``method`` ("*" for any) fail with ``status`` without
        being carried out. 429 answers "Too Many Requests: retry after N" with
        ``parameters.retry_after``; 502 answers nginx's HTML page, as Telegram's front end
        does; other codes answer Telegram's usual description unless one is given."""
        key = self._fault_key(method)
        self._faults.setdefault(key, []).append(_Fault(status, description, retry_after, count))

    def delay_next(self, method: str, seconds: float, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` ("*" for any) are carried out, but answered
        only after ``seconds`` (the client may time out without knowing they happened)."""
        key = self._fault_key(method)
        self._delays.setdefault(key, []).append(_Delay(seconds, count))

    def _fault_key(self, method: str) -> str:
        if method == "*":
            return "*"
        if method.lower() not in self._methods:
            raise ValueError(f"the stand-in does not implement {method!r}")
        return method.lower()

    def _take_fault(self, key: str) -> _Fault | None:
        for k in (key, "*"):
            queue = self._faults.get(k)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.pop(0)
                return fault
        return None

    def _take_delay(self, key: str) -> float:
        for k in (key, "*"):
            queue = self._delays.get(k)
            if queue:
                delay = queue[0]
                delay.remaining -= 1
                if delay.remaining <= 0:
                    queue.pop(0)
                return delay.seconds
        return 0.0

    def _fault_response(self, fault: _Fault) -> web.Response:
        if fault.status == 502 and fault.description is None:
            return web.Response(status=502, text=_NGINX_502, content_type="text/html")
        description = fault.description
        parameters: JSON | None = None
        if fault.status == 429:
            if description is None:
                description = f"Too Many Requests: retry after {fault.retry_after or 1}"
            if fault.retry_after is not None:
                parameters = {"retry_after": fault.retry_after}
        if description is None:
            description = _DEFAULT_FAULT_TEXT.get(fault.status, "Internal Server Error")
        return self._error_response(ApiError(fault.status, description, parameters))

    # ----------------------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/file/bot"):
            return self._download(path.removeprefix("/file/bot"))
        if not path.startswith("/bot"):
            return self._error_response(ApiError(404, "Not Found"))
        token, sep, method = path.removeprefix("/bot").partition("/")
        if not sep or not method or "/" in method or not TOKEN_RE.fullmatch(token):
            return self._error_response(ApiError(404, "Not Found"))
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return self._error_response(ApiError(401, "Unauthorized"))
        entry = self._methods.get(method.lower())
        if entry is None:
            self.calls.append(method if method in BOT_API_METHODS else "<unknown>")
            if method.lower() in _API_METHODS_LOWER:
                log.debug("not implemented by the stand-in: %s", method)
                return self._error_response(
                    ApiError(501, "Not Implemented: the stand-in does not implement this method")
                )
            return self._error_response(ApiError(404, "Not Found: method not found"))
        name, handler = entry
        self.calls.append(name)
        log.debug("call %s", name)
        try:
            fault = self._take_fault(name.lower())
            if fault is not None:
                return self._fault_response(fault)
            params = coerce(name, await read_raw(request))
            delay = self._take_delay(name.lower())
            try:
                result = await handler(params)
                if isinstance(params.get("chat_id"), int):
                    self.chat_calls.append(
                        ChatCall(self._clock(), name, params["chat_id"], copy.deepcopy(params))
                    )
            finally:
                self._notify()
            if delay:
                await asyncio.sleep(delay)
            if isinstance(result, _WithDescription):
                return self._json({"ok": True, "result": result.result, "description": result.text})
            return self._json({"ok": True, "result": result})
        except ApiError as err:
            return self._error_response(err)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the stand-in: answer as Telegram would, keep it
            self.errors.append(exc)
            log.debug("stand-in failure in %s (%s)", name, type(exc).__name__)
            return self._error_response(ApiError(500, "Internal Server Error"))

    def _json(self, body: JSON) -> web.Response:
        return web.Response(
            text=json.dumps(body, ensure_ascii=False), content_type="application/json"
        )

    def _error_response(self, err: ApiError) -> web.Response:
        return web.Response(
            status=err.status,
            text=json.dumps(err.body(), ensure_ascii=False),
            content_type="application/json",
        )

    def _download(self, rest: str) -> web.Response:
        token, _, file_path = rest.partition("/")
        if not TOKEN_RE.fullmatch(token):
            return self._error_response(ApiError(404, "Not Found"))
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return self._error_response(ApiError(401, "Unauthorized"))
        file_id = self._file_paths.get(file_path)
        stored = self._files.get(file_id) if file_id is not None else None
        if stored is None or stored.size > MAX_DOWNLOAD_BYTES:
            return self._error_response(ApiError(404, "Not Found"))
        self.downloads.append(stored.file_id)
        log.debug("file download")
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ----------------------------------------------------------------------- the methods

    async def _m_true(self, p: dict[str, Any]) -> bool:
        return True

    async def _m_get_me(self, p: dict[str, Any]) -> JSON:
        me = self._bot_user()
        me.update(
            {
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
            }
        )
        return me

    async def _m_get_updates(self, p: dict[str, Any]) -> list[JSON]:
        if self._webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        limit = min(max(int(p.get("limit", 100)), 1), 100)
        timeout = min(max(int(p.get("timeout", 0)), 0), MAX_LONG_POLL_SECONDS)
        if "allowed_updates" in p:
            self._set_allowed(p["allowed_updates"])
        offset = p.get("offset")
        if offset is not None and offset > 0:
            self._confirm(u for u in self._pending if u["update_id"] < offset)
        elif offset is not None and offset < 0:
            keep = -offset
            if len(self._pending) > keep:
                self._confirm(self._pending[: len(self._pending) - keep])
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # an older long poll ends with 409, as on Telegram
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._webhook_url or generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = self._pending[:limit]
            remaining = deadline - loop.time()
            if batch or remaining <= 0:
                return copy.deepcopy(batch)
            await self._wait_change(remaining)

    async def _m_set_webhook(self, p: dict[str, Any]) -> _WithDescription:
        url = str(p.get("url", ""))
        if not url:
            return await self._m_delete_webhook(p)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request("bad webhook: Wrong HTTP URL specified")
        if parts.hostname not in LOCAL_WEBHOOK_HOSTS:
            raise bad_request("bad webhook: the stand-in delivers only to 127.0.0.1")
        secret = p.get("secret_token")
        if secret is not None and not SECRET_TOKEN_RE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = int(p.get("max_connections", 40))
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        if "allowed_updates" in p:
            self._set_allowed(p["allowed_updates"])
        if p.get("drop_pending_updates"):
            self._confirm(list(self._pending))
        already = self._webhook_url == url and self._webhook_secret == secret
        self._webhook_url = url
        self._webhook_secret = secret
        self._webhook_max_connections = max_connections
        self._webhook_last_error = None
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhook())
        log.debug("webhook set")
        return _WithDescription(True, "Webhook is already set" if already else "Webhook was set")

    async def _m_delete_webhook(self, p: dict[str, Any]) -> _WithDescription:
        if p.get("drop_pending_updates"):
            self._confirm(list(self._pending))
        had = bool(self._webhook_url)
        self._webhook_url = ""
        self._webhook_secret = None
        self._webhook_last_error = None
        await self._stop_webhook_task()
        text = "Webhook was deleted" if had else "Webhook is already deleted"
        return _WithDescription(True, text)

    async def _m_get_webhook_info(self, p: dict[str, Any]) -> JSON:
        info: JSON = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook_url:
            info["ip_address"] = "127.0.0.1"
            info["max_connections"] = self._webhook_max_connections
            if self._webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        if self._allowed is not None:
            info["allowed_updates"] = list(self._allowed)
        return info

    async def _m_send_message(self, p: dict[str, Any]) -> JSON:
        chat = self._chat_for_sending(p)
        chat_id = chat["id"]
        text, entities = self._bot_text(p)
        markup = self._inline_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat_id, p)
        msg: JSON = {
            "message_id": self._take_message_id(chat_id),
            "from": self._bot_user(),
            "chat": dict(chat),
            "date": self._now(),
        }
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        if p.get("protect_content"):
            msg["has_protected_content"] = True
        msg["text"] = text
        if entities:
            msg["entities"] = entities
        lpo = p.get("link_preview_options")
        if isinstance(lpo, dict) and lpo:
            msg["link_preview_options"] = lpo
        elif p.get("disable_web_page_preview"):
            msg["link_preview_options"] = {"is_disabled": True}
        if markup is not None:
            msg["reply_markup"] = markup
        self._messages.setdefault(chat_id, {})[msg["message_id"]] = msg
        sent = SentMessage(
            chat_id=chat_id,
            message_id=msg["message_id"],
            text=text,
            date=msg["date"],
            protect_content=bool(p.get("protect_content")),
            reply_markup=copy.deepcopy(markup),
            entities=copy.deepcopy(entities),
            parse_mode=p.get("parse_mode"),
            disable_notification=bool(p.get("disable_notification")),
            reply_to_message_id=reply_to["message_id"] if reply_to else None,
            message=copy.deepcopy(msg),
        )
        self.sent.append(sent)
        self._sent_index[(chat_id, sent.message_id)] = sent
        return copy.deepcopy(msg)

    async def _m_send_photo(self, p: dict[str, Any]) -> JSON:
        chat = self._chat_for_sending(p)
        chat_id = chat["id"]
        data = self._photo_data(p.get("photo"))
        caption = p.get("caption")
        entities: list[JSON] = []
        if caption:
            caption, entities = self._bot_text({"text": caption, "parse_mode": p.get("parse_mode")})
        markup = self._inline_markup(p.get("reply_markup"))
        width, height = _image_size(data)
        stored = self._store_file("photo", data, "jpg", None)
        msg: JSON = {
            "message_id": self._take_message_id(chat_id),
            "from": self._bot_user(),
            "chat": dict(chat),
            "date": self._now(),
            "photo": [dict(self._file_fields(stored), width=width, height=height)],
        }
        if p.get("protect_content"):
            msg["has_protected_content"] = True
        if caption:
            msg["caption"] = caption
            if entities:
                msg["caption_entities"] = entities
        if markup is not None:
            msg["reply_markup"] = markup
        self._messages.setdefault(chat_id, {})[msg["message_id"]] = msg
        sent = SentMessage(
            chat_id=chat_id,
            message_id=msg["message_id"],
            text=None,
            date=msg["date"],
            protect_content=bool(p.get("protect_content")),
            reply_markup=copy.deepcopy(markup),
            entities=[],
            parse_mode=p.get("parse_mode"),
            disable_notification=bool(p.get("disable_notification")),
            message=copy.deepcopy(msg),
            photo=data,
        )
        self.sent.append(sent)
        self._sent_index[(chat_id, sent.message_id)] = sent
        return copy.deepcopy(msg)

    def _photo_data(self, photo: Any) -> bytes:
        """An upload's bytes, or those of a file the bot names by its file_id."""
        if isinstance(photo, bytes) and photo:
            return photo
        if isinstance(photo, str) and photo in self._files:
            return self._files[photo].data
        raise bad_request("wrong file identifier/HTTP URL specified")

    async def _m_edit_message_text(self, p: dict[str, Any]) -> JSON:
        msg = self._editable(p)
        if "text" not in msg:
            raise bad_request("there is no text in the message to edit")
        text, entities = self._bot_text(p)
        markup = self._inline_markup(p.get("reply_markup"))
        if (
            text == msg["text"]
            and entities == msg.get("entities", [])
            and markup == msg.get("reply_markup")
        ):
            raise bad_request(_NOT_MODIFIED)
        msg["text"] = text
        msg.pop("entities", None)
        if entities:
            msg["entities"] = entities
        self._set_markup(msg, markup)
        return self._after_edit(msg)

    async def _m_edit_message_reply_markup(self, p: dict[str, Any]) -> JSON:
        msg = self._editable(p)
        markup = self._inline_markup(p.get("reply_markup"))
        if markup == msg.get("reply_markup"):
            raise bad_request(_NOT_MODIFIED)
        self._set_markup(msg, markup)
        return self._after_edit(msg)

    async def _m_answer_callback_query(self, p: dict[str, Any]) -> bool:
        query_id = p.get("callback_query_id")
        if not query_id:
            raise bad_request("query_id is empty")
        if query_id not in self._open_callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = p.get("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        self.answered_callbacks.append(query_id)
        answer: JSON = {"show_alert": bool(p.get("show_alert"))}
        if text is not None:
            answer["text"] = text
        self.callback_answers[query_id] = answer
        return True

    async def _m_delete_message(self, p: dict[str, Any]) -> bool:
        chat = self._require_chat(p)
        message_id = self._require(p, "message_id")
        self._delete(chat, _message_id(message_id), strict=True)
        return True

    async def _m_delete_messages(self, p: dict[str, Any]) -> bool:
        chat = self._require_chat(p)
        ids = p.get("message_ids")
        if not isinstance(ids, list) or not ids:
            raise bad_request("message identifiers are not specified")
        if len(ids) > 100:
            raise bad_request("too many message identifiers specified")
        for message_id in ids:
            self._delete(chat, _message_id(message_id), strict=False)
        return True

    async def _m_get_file(self, p: dict[str, Any]) -> JSON:
        file_id = p.get("file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        stored = self._files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    async def _m_set_my_commands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise bad_request("commands is empty")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        clean: list[JSON] = []
        for item in commands:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand")
            command = str(item.get("command", ""))
            description = str(item.get("description", ""))
            if not COMMAND_RE.fullmatch(command):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": command, "description": description})
        key = self._scope_key(p)
        if clean:
            self.commands[key] = clean
        else:
            self.commands.pop(key, None)
        return True

    async def _m_delete_my_commands(self, p: dict[str, Any]) -> bool:
        self.commands.pop(self._scope_key(p), None)
        return True

    async def _m_get_my_commands(self, p: dict[str, Any]) -> list[JSON]:
        return copy.deepcopy(self.commands.get(self._scope_key(p), []))

    async def _m_leave_chat(self, p: dict[str, Any]) -> bool:
        chat = self._require_chat(p)
        if chat["type"] == "private":
            raise bad_request("chat member status can't be changed in private chats")
        if chat["id"] in self.left_chats:
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat['type']} chat")
        self.left_chats.add(chat["id"])
        bot = self._bot_user()
        self._queue(
            {
                "my_chat_member": {
                    "chat": dict(chat),
                    "from": bot,
                    "date": self._now(),
                    "old_chat_member": member(
                        "administrator" if chat["type"] == "channel" else "member", bot
                    ),
                    "new_chat_member": member("left", bot),
                }
            }
        )
        return True

    async def _m_send_chat_action(self, p: dict[str, Any]) -> bool:
        chat = self._chat_for_sending(p)
        action = p.get("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append((chat["id"], str(action)))
        return True

    # --------------------------------------------------------------------- method helpers

    def _require(self, p: dict[str, Any], name: str) -> Any:
        if name not in p or p[name] == "":
            raise bad_request(f"{name} is empty")
        return p[name]

    def _resolve_chat(self, chat_ref: Any) -> JSON:
        if isinstance(chat_ref, str):
            name = chat_ref.removeprefix("@").lower()
            for chat in self._chats.values():
                if chat["type"] != "private" and str(chat.get("username", "")).lower() == name:
                    return chat
            raise bad_request("chat not found")
        try:
            found = self._chats.get(int(chat_ref))
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        if found is None:
            raise bad_request("chat not found")
        return found

    def _require_chat(self, p: dict[str, Any]) -> JSON:
        return self._resolve_chat(self._require(p, "chat_id"))

    def _chat_for_sending(self, p: dict[str, Any]) -> JSON:
        chat = self._require_chat(p)
        self._check_can_write(chat)
        return chat

    def _check_can_write(self, chat: JSON) -> None:
        if chat["type"] == "private" and chat["id"] in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat["id"] in self.left_chats:
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat['type']} chat")

    def _bot_text(self, p: dict[str, Any]) -> tuple[str, list[JSON]]:
        raw = p.get("text")
        if not raw:
            raise bad_request("message text is empty")
        explicit = p.get("entities")
        if isinstance(explicit, list):
            text, entities = finish_text(raw, entities_from_json(raw, explicit))
        else:
            try:
                parsed, found = parse_text(raw, p.get("parse_mode"))
            except EntityParseError as exc:
                if str(exc) == "unsupported parse_mode":
                    raise bad_request("unsupported parse_mode") from exc
                raise bad_request(f"can't parse entities: {exc}") from exc
            text, entities = finish_text(parsed, found)
        if not text:
            raise bad_request("message text is empty")
        if utf16_len(text) > 4096:
            raise bad_request("message is too long")
        return text, entities

    def _inline_markup(self, markup: Any) -> JSON | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None  # reply keyboards are shown by the client, not kept on the message
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request(
                'can\'t parse inline keyboard button: field "inline_keyboard" '
                "must be an Array of Arrays"
            )
        clean_rows: list[list[JSON]] = []
        for row in rows:
            clean: list[JSON] = []
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad_request("can't parse inline keyboard button: Text is empty")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
                if len(button) < 2:
                    raise bad_request(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
                clean.append(dict(button))
            if clean:
                clean_rows.append(clean)
        if not clean_rows:
            return None
        return {"inline_keyboard": clean_rows}

    def _reply_target(self, chat_id: int, p: dict[str, Any]) -> JSON | None:
        params = p.get("reply_parameters")
        if isinstance(params, dict):
            message_id = params.get("message_id")
            allow = bool(params.get("allow_sending_without_reply"))
            if params.get("chat_id") is not None:
                chat_id = self._resolve_chat(params["chat_id"])["id"]
        else:
            message_id = p.get("reply_to_message_id")
            allow = bool(p.get("allow_sending_without_reply"))
        if message_id is None:
            return None
        message_id = _message_id(message_id)
        target = self._messages.get(chat_id, {}).get(message_id)
        if target is None or (chat_id, message_id) in self.deleted:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        reply = copy.deepcopy(target)
        reply.pop("reply_to_message", None)
        return reply

    def _editable(self, p: dict[str, Any]) -> JSON:
        if p.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._require_chat(p)
        message_id = _message_id(self._require(p, "message_id"))
        msg = self._messages.get(chat["id"], {}).get(message_id)
        if msg is None or (chat["id"], message_id) in self.deleted:
            raise bad_request("message to edit not found")
        if msg.get("from", {}).get("id") != self.bot_id:
            raise bad_request("message can't be edited")
        self._check_can_write(chat)
        return msg

    def _set_markup(self, msg: JSON, markup: JSON | None) -> None:
        if markup is None:
            msg.pop("reply_markup", None)
        else:
            msg["reply_markup"] = markup

    def _after_edit(self, msg: JSON) -> JSON:
        msg["edit_date"] = max(self._now(), msg["date"])
        sent = self._sent_index.get((msg["chat"]["id"], msg["message_id"]))
        if sent is not None:
            sent.text = msg.get("text")
            sent.entities = copy.deepcopy(msg.get("entities", []))
            sent.reply_markup = copy.deepcopy(msg.get("reply_markup"))
            sent.edit_date = msg["edit_date"]
            sent.edit_count += 1
            sent.message = copy.deepcopy(msg)
        return copy.deepcopy(msg)

    def _delete(self, chat: JSON, message_id: int, *, strict: bool) -> None:
        chat_id = chat["id"]
        msg = self._messages.get(chat_id, {}).get(message_id)
        if msg is None or (chat_id, message_id) in self.deleted:
            if strict:
                raise bad_request("message to delete not found")
            return
        if self._now() - msg["date"] > DELETE_WINDOW_SECONDS:
            if strict:
                raise bad_request("message can't be deleted for everyone")
            return
        own = msg.get("from", {}).get("id") == self.bot_id
        if chat["type"] != "private" and not own:
            if strict:
                raise bad_request("message can't be deleted")
            return
        self.deleted.add((chat_id, message_id))
        sent = self._sent_index.get((chat_id, message_id))
        if sent is not None:
            sent.deleted = True

    def _scope_key(self, p: dict[str, Any]) -> str:
        scope = p.get("scope")
        key = "default"
        if scope is not None:
            if not isinstance(scope, dict):
                raise bad_request("can't parse BotCommandScope JSON object")
            kind = scope.get("type")
            if kind in _GLOBAL_SCOPES:
                key = str(kind)
            elif kind in ("chat", "chat_administrators", "chat_member"):
                chat = self._resolve_chat(scope.get("chat_id"))
                key = f"{kind}:{chat['id']}"
                if kind == "chat_member":
                    key += f":{int(scope.get('user_id', 0))}"
            else:
                raise bad_request("wrong bot command scope type specified")
        language = p.get("language_code")
        if language:
            key += f"|{language}"
        return key

    # --------------------------------------------------------------------------- updates

    def _set_allowed(self, value: Any) -> None:
        if not isinstance(value, list):
            raise bad_request("can't parse allowed_updates JSON object")
        self._allowed = [str(v) for v in value if str(v) in UPDATE_KINDS]

    def _is_allowed(self, kind: str | None) -> bool:
        if kind is None:
            return True
        if not self._allowed:
            return kind not in DEFAULT_EXCLUDED
        return kind in self._allowed

    def _queue(self, update: JSON) -> JSON:
        """Assign an update_id (kept if present), queue a copy; returns ``update``."""
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        update_id = int(update["update_id"])
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._save_state()
        if self._is_allowed(update_kind(update)):
            self._pending.append(copy.deepcopy(update))
            self._pending.sort(key=lambda u: int(u["update_id"]))
        else:
            log.debug("update of a kind the bot did not ask for: not queued")
        self._notify()
        return update

    def _confirm(self, updates: Iterable[JSON]) -> None:
        ids = {int(u["update_id"]) for u in updates}
        if not ids:
            return
        self._confirmed |= ids
        self._pending = [u for u in self._pending if int(u["update_id"]) not in ids]

    async def _deliver_webhook(self) -> None:
        backoff = WEBHOOK_BACKOFF_START
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while self._webhook_url:
                if self._down or not self._pending:
                    await self._wait_change(1.0)
                    continue
                update = self._pending[0]
                url = self._webhook_url
                headers = {"Content-Type": "application/json"}
                if self._webhook_secret is not None:
                    headers["X-Telegram-Bot-Api-Secret-Token"] = self._webhook_secret
                error: str | None = None
                try:
                    self.webhook_deliveries += 1
                    async with session.post(
                        url, data=json.dumps(update, ensure_ascii=False).encode(), headers=headers
                    ) as resp:
                        await resp.read()
                        if not 200 <= resp.status <= 299:
                            error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
                except TimeoutError:
                    error = "Read timeout expired"
                except (aiohttp.ClientError, OSError):
                    error = "Connection refused"
                if error is None:
                    if self._pending and self._pending[0] is update:
                        self._confirm([update])
                    backoff = WEBHOOK_BACKOFF_START
                    self._notify()
                    continue
                log.debug("webhook delivery failed, retrying")
                self._webhook_last_error = (self._now(), error)
                self._notify()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, WEBHOOK_BACKOFF_MAX)

    async def _stop_webhook_task(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # ------------------------------------------------------------------ building messages

    def _now(self) -> int:
        return int(self._clock())

    def _bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    def _take_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        self._save_state()
        return message_id

    # ------------------------------------------------------------------------ kept state

    @property
    def state_file(self) -> Path | None:
        return self._state_file

    def _save_state(self) -> None:
        """Write the numbers a restart must continue from (at once: a stand-in killed
        between two updates must not reuse the second's id)."""
        if self._state_file is None:
            return
        _write_state(
            self._state_file,
            _SavedState(
                token=self.token,
                next_update_id=self._next_update_id,
                next_message_id=dict(self._next_message_id),
                next_callback=self._next_callback,
                file_counter=self._file_counter,
            ),
        )

    def _ensure_private_chat(self, user: SimUser) -> JSON:
        if user.id not in self._users:
            self._users[user.id] = user
        chat = self._chats.get(user.id)
        if chat is None:
            chat = self._chats[user.id] = user.private_chat()
        return chat

    def _member_change(self, user: SimUser, chat: JSON, old: str, new: str) -> None:
        bot = self._bot_user()
        self._queue(
            {
                "my_chat_member": {
                    "chat": dict(chat),
                    "from": user.to_dict(),
                    "date": self._now(),
                    "old_chat_member": member(old, bot),
                    "new_chat_member": member(new, bot),
                }
            }
        )

    def _user_text(self, text: str, entities: list[JSON] | None, *, limit: int, what: str) -> JSON:
        parsed = entities_from_json(text, entities) if entities else []
        final, found = finish_text(text, parsed)
        if not final:
            raise ValueError(f"Telegram does not send an empty {what}")
        if utf16_len(final) > limit:
            raise ValueError(f"a {what} longer than {limit} characters is split by the client")
        body: JSON = {"text" if what == "text" else "caption": final}
        if found:
            body["entities" if what == "text" else "caption_entities"] = found
        return body

    def _caption(self, caption: str | None) -> JSON:
        if caption is None or not caption.strip():
            return {}
        return self._user_text(caption, None, limit=1024, what="caption")

    def _location(self, latitude: float, longitude: float) -> JSON:
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError("latitude/longitude out of range")
        return {"latitude": float(latitude), "longitude": float(longitude)}

    def _user_message(
        self,
        user: SimUser,
        body: JSON,
        *,
        date: datetime | None = None,
        forward_origin: JSON | None = None,
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> JSON:
        if chat_id is None or chat_id == user.id:
            chat = self._ensure_private_chat(user)
            if user.id in self._blocked:
                self.unblock(user)  # writing to a blocked bot means pressing "Restart"
        else:
            found = self._chats.get(chat_id)
            if found is None:
                raise ValueError("unknown chat: add the bot to the group first")
            chat = found
        msg: JSON = {
            "message_id": self._take_message_id(chat["id"]),
            "from": user.to_dict(),
            "chat": dict(chat),
            "date": unix_time(date) if date is not None else self._now(),
        }
        if forward_origin is not None:
            msg["forward_origin"] = copy.deepcopy(forward_origin)
        if reply_to is not None:
            target = self._messages.get(chat["id"], {}).get(reply_to)
            if target is None or (chat["id"], reply_to) in self.deleted:
                raise ValueError("no such message to reply to")
            reply = copy.deepcopy(target)
            reply.pop("reply_to_message", None)
            msg["reply_to_message"] = reply
        msg.update(body)
        self._messages.setdefault(chat["id"], {})[msg["message_id"]] = msg
        key = "channel_post" if chat["type"] == "channel" else "message"
        return self._queue({key: copy.deepcopy(msg)})

    def _store_file(
        self, kind: str, data: bytes, ext: str, declared_size: int | None
    ) -> _StoredFile:
        self._file_counter += 1
        self._save_state()
        size = len(data) if declared_size is None else max(declared_size, len(data))
        stored = _StoredFile(
            file_id=_FILE_ID_PREFIX[kind] + secrets.token_urlsafe(48),
            file_unique_id="AQAD" + secrets.token_urlsafe(9),
            data=bytes(data),
            size=size,
            path=f"{_FILE_FOLDER[kind]}/file_{self._file_counter}.{ext.lower()}",
        )
        self._files[stored.file_id] = stored
        self._file_paths[stored.path] = stored.file_id
        return stored

    @staticmethod
    def _file_fields(stored: _StoredFile) -> JSON:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }


_STATE_FORMAT = "checkin-intake-standin-state"


@dataclass(frozen=True, slots=True)
class _SavedState:
    token: str
    next_update_id: int
    next_message_id: dict[int, int]
    next_callback: int
    file_counter: int


def _read_state(path: Path) -> _SavedState | None:
    """The state a previous run left, None if there is none yet; ValueError (one line)
    for a file that is not one (it is never overwritten then)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a stand-in state file ({exc})") from None
    try:
        if doc["format"] != _STATE_FORMAT:
            raise ValueError("another format")
        state = _SavedState(
            token=str(doc["token"]),
            next_update_id=int(doc["next_update_id"]),
            next_message_id={int(k): int(v) for k, v in doc["next_message_id"].items()},
            next_callback=int(doc["next_callback"]),
            file_counter=int(doc["file_counter"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a stand-in state file ({exc})") from None
    if not TOKEN_RE.fullmatch(state.token):
        raise ValueError(f"{path}: not a stand-in state file (the token)")
    return state


def _write_state(path: Path, state: _SavedState) -> None:
    # A new file renamed over the old: a stand-in killed while writing leaves the old one.
    # Mode 0600: it holds the (stand-in's) bot token.
    doc = {
        "format": _STATE_FORMAT,
        "token": state.token,
        "next_update_id": state.next_update_id,
        "next_message_id": {str(k): v for k, v in sorted(state.next_message_id.items())},
        "next_callback": state.next_callback,
        "file_counter": state.file_counter,
    }
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    os.replace(temporary, path)


def _image_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height from its header; Telegram would decode any image, but the
    bot only sends PNGs, and another upload gets a nominal size."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return 800, 600


@dataclass(frozen=True, slots=True)
class _WithDescription:
    """A successful result that Telegram answers with a description ("Webhook was set")."""

    result: Any
    text: str


def _message_id(value: Any) -> int:
    """A message id as Telegram reads one: an integer (or its digits), else 400."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request("message identifier is invalid") from None
