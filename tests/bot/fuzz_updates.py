"""Telegram Bot API updates for fuzzing the intake (hypothesis strategies).

Valid updates are shaped by Bot API 10.0 as data (``../shared/telegram-bot-api/api.json``):
every object's required fields are drawn from their documented types, its optional simple
fields now and then, and union members carry their documented ``type`` constant. On top of
that shape the strategies fill in what Telegram itself guarantees and the bot relies on: a
relative's private chat has the relative's id, files are ones the stand-in holds, a command
carries its ``bot_command`` entity, entity offsets lie inside the text.

Hostile updates break those guarantees: lone UTF-16 surrogates, huge texts, right-to-left and
zero-width characters, tens of thousands of entities, fields removed, values of the wrong type.

Every string a person typed carries a canary (``CNRY`` and six digits, see ``CANARY``), so a
test can search the logs for any of them at once. ``update_id`` and ``message_id`` are left
for the test to number (0 here), so that no two generated updates collide.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

JSON = dict[str, Any]
API_JSON = Path(__file__).resolve().parents[3] / "shared" / "telegram-bot-api" / "api.json"

# A canary marks every string a person typed; the logs must never show one.
CANARY = re.compile(r"cnry\d{6}", re.IGNORECASE)
BOT_COMMANDS = ("start", "help", "language", "wipe")  # the bot's own: not content
MIN_DATE = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
MAX_DATE = int(datetime(2031, 1, 1, tzinfo=UTC).timestamp())
TEXT_LIMIT, CAPTION_LIMIT = 4096, 1024  # UTF-16 code units, as Telegram counts them

RTL_AND_INVISIBLE = (
    "\u200b\u200c\u200d\u200e\u200f"  # zero-width space/non-joiner/joiner, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # isolates
    "\u2060\ufeff\u061c\u180e"  # word joiner, BOM, Arabic letter mark, Mongolian separator
)
RTL_SCRIPT = "שלום مرحبا ܫܠܡܐ ދިވެހި"
PEOPLE_TEXT = "잘 도착했어요 버스 昆明 到了 Kunming ок 🙏🏽 👨‍👩‍👧 e\u0301"

# Fields of Message a relative's private message may carry beside its content.
MESSAGE_EXTRAS = (
    "message_thread_id",
    "is_from_offline",
    "has_protected_content",
    "media_group_id",
    "author_signature",
    "effect_id",
    "has_media_spoiler",
    "show_caption_above_media",
)
ENTITY_KINDS = (
    *("bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre"),
    *("url", "hashtag", "mention", "phone_number", "text_link", "text_mention"),
)
ATTACHMENTS = ("photo", "document", "voice", "audio", "video", "video_note", "sticker")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# ------------------------------------------------------------------------------ Bot API


@dataclass(frozen=True)
class BotApi:
    """Bot API types as data: fields with their type strings and whether they are required."""

    version: str
    types: Mapping[str, JSON]

    @classmethod
    def load(cls, path: Path = API_JSON) -> BotApi | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(version=data["version"], types=data["types"])

    def fields(self, name: str) -> dict[str, JSON]:
        return {f["name"]: f for f in self.types[name].get("fields", [])}

    def subtypes(self, name: str) -> list[str]:
        return list(self.types[name].get("subtypes") or [])

    def constant(self, name: str) -> tuple[str, str] | None:
        """A union member's tag and its value, as documented (``always "hidden_user"``)."""
        for spec in self.fields(name).values():
            found = re.search(r'always "([a-z_]+)"', spec["description"])
            if found:
                return spec["name"], found.group(1)
        return None

    def problems(self, value: Any, type_name: str, where: str = "") -> list[str]:
        """How ``value`` departs from the documented shape of ``type_name`` (empty: none)."""
        where = where or type_name
        if type_name.startswith("Array of "):
            if not isinstance(value, list):
                return [f"{where}: not an array"]
            inner = type_name.removeprefix("Array of ")
            return [
                p for i, v in enumerate(value) for p in self.problems(v, inner, f"{where}[{i}]")
            ]
        simple: dict[str, Callable[[Any], bool]] = {
            "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "String": lambda v: isinstance(v, str),
            "Boolean": lambda v: isinstance(v, bool),
            "True": lambda v: v is True,
        }
        if type_name in simple:
            return [] if simple[type_name](value) else [f"{where}: not {type_name}"]
        if not isinstance(value, dict):
            return [f"{where}: not an object ({type_name})"]
        members = self.subtypes(type_name)
        if members:
            for member in members:
                tag = self.constant(member)
                if (tag is not None and value.get(tag[0]) == tag[1]) or (
                    # Message and InaccessibleMessage have no "type": told apart by date 0.
                    member == "Message" and value.get("date") != 0
                ):
                    return self.problems(value, member, where)
            return [f"{where}: none of {members}"]
        fields = self.fields(type_name)
        found = [f"{where}.{k}: not a field of {type_name}" for k in value if k not in fields]
        for name, spec in fields.items():
            if name not in value:
                if spec["required"]:
                    found.append(f"{where}.{name}: required, missing")
                continue
            options = [self.problems(value[name], t, f"{where}.{name}") for t in spec["types"]]
            if all(options):
                found.extend(options[0])
        return found


# ---------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    """What exists at the stand-in before the fuzzing starts."""

    relatives: tuple[JSON, ...]  # User objects, each with a private chat with the bot
    files: Mapping[str, tuple[JSON, ...]]  # kind -> file_id, file_unique_id, file_size
    groups: tuple[JSON, ...]  # Chat objects of groups the relatives share with the bot
    channels: tuple[JSON, ...]
    bot_username: str
    phones: tuple[str, ...] = ("+8613800138000", "+821012345678", "+85620555123")


@dataclass(frozen=True)
class Generated:
    """One update and what the bot owes it."""

    raw: JSON
    label: str  # which kind, for the statistics and for failure messages
    stored: bool  # a valid private message or edit: stored exactly once
    chat_id: int | None = None  # where the bot's answer goes
    edit_of_earlier: bool = False  # an edit: of an earlier message of the chat (else unseen)


# ------------------------------------------------------------------------------- texts


def canaries() -> st.SearchStrategy[str]:
    return st.integers(0, 999_999).map(lambda n: f"CNRY{n:06d}")


@functools.cache
def _alphabet() -> st.SearchStrategy[str]:
    # Every code point but surrogates and controls (what Telegram passes on), weighted
    # towards the scripts and the invisible characters this bot meets.
    return st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
        st.sampled_from(PEOPLE_TEXT + RTL_SCRIPT),
        st.sampled_from(RTL_AND_INVISIBLE),
    )


@functools.cache
def _texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_alphabet(), max_size=max_size)


@st.composite
def typed_text(draw: st.DrawFn, *, limit: int = TEXT_LIMIT, max_size: int = 120) -> str:
    """What a person could send: a canary somewhere, trimmed, within Telegram's limit."""
    canary = draw(canaries())
    before = draw(_texts(max_size))
    after = draw(_texts(max_size))
    if draw(st.integers(0, 9)) == 0:  # now and then, up to the limit
        after += draw(st.sampled_from(PEOPLE_TEXT + RTL_AND_INVISIBLE)) * draw(
            st.integers(0, limit)
        )
    text = f"{before} {canary} {after}".strip()
    while utf16_len(text) > limit:
        text = text[: len(text) - (utf16_len(text) - limit)].strip()
    return text if CANARY.search(text) else canary


def names() -> st.SearchStrategy[str]:
    return typed_text(limit=64, max_size=20)


# ------------------------------------------------------------------------- the builder


_ABSENT = object()


class Shapes:
    """Strategies for Bot API objects, by their documented fields."""

    def __init__(self, api: BotApi, world: World) -> None:
        self.api = api
        self.world = world

    def value(self, type_name: str, depth: int = 0) -> st.SearchStrategy[Any]:
        simple: dict[str, st.SearchStrategy[Any]] = {
            "Integer": st.integers(0, 2**31 - 1),
            "Float": st.floats(-1e6, 1e6, allow_nan=False),
            "String": names(),
            "Boolean": st.booleans(),
            "True": st.just(True),
        }
        if type_name in simple:
            return simple[type_name]
        if type_name.startswith("Array of "):
            inner = self.value(type_name.removeprefix("Array of "), depth + 1)
            return st.lists(inner, max_size=3)
        return self.obj(type_name, depth=depth + 1)

    def obj(
        self,
        type_name: str,
        fixed: Mapping[str, st.SearchStrategy[Any]] | None = None,
        *,
        optional: Iterable[str] | None = None,
        depth: int = 0,
    ) -> st.SearchStrategy[JSON]:
        """An object of ``type_name``: ``fixed`` fields as given (a strategy may draw
        ``absent()``), the other required ones by their type, and some of ``optional``
        (by default: every optional field of a simple type)."""
        fixed = dict(fixed or {})
        members = self.api.subtypes(type_name)
        if members:
            return st.one_of([self.obj(m, fixed, depth=depth) for m in members])
        tag = self.api.constant(type_name)
        if tag is not None:
            fixed.setdefault(tag[0], st.just(tag[1]))
        fields = self.api.fields(type_name)
        simple = {"Integer", "Float", "String", "Boolean", "True"}
        if optional is None:
            optional = [
                n for n, f in fields.items() if not f["required"] and set(f["types"]) <= simple
            ]
        required: dict[str, st.SearchStrategy[Any]] = {}
        maybe: dict[str, st.SearchStrategy[Any]] = {}
        for name, spec in fields.items():
            if name in fixed:
                required[name] = fixed[name]
            elif spec["required"]:
                if depth > 4:
                    raise ValueError(f"{type_name}.{name}: nested too deep to generate")
                required[name] = self.value(spec["types"][0], depth)
            elif name in optional:
                maybe[name] = self.value(spec["types"][0], depth)
        unknown = set(fixed) - set(fields)
        if unknown:
            raise ValueError(f"not fields of {type_name} in Bot API {self.api.version}: {unknown}")
        return st.fixed_dictionaries(required, optional=maybe).map(_drop_absent)

    # ------------------------------------------------------------------ the pieces

    def dates(self) -> st.SearchStrategy[int]:
        return st.integers(MIN_DATE, MAX_DATE)

    def user(self) -> st.SearchStrategy[JSON]:
        """Someone a message was first sent by: not necessarily known to the bot."""
        return self.obj(
            "User",
            {
                "id": st.integers(1_000_000_000, 8_999_999_999),
                "is_bot": st.just(False),
                "first_name": names(),
                "last_name": absent_or(names()),
                "username": absent_or(canaries().map(str.lower)),
                "language_code": absent_or(st.sampled_from(["ko", "en", "zh-hans", "ru"])),
            },
            optional=(),
        )

    def chat(self, kind: str) -> st.SearchStrategy[JSON]:
        return self.obj(
            "Chat",
            {
                "id": st.integers(-1_009_999_999_999, -1),
                "type": st.just(kind),
                "title": names(),
                "username": absent_or(canaries().map(str.lower)),
            },
            optional=(),
        )

    def origin(self) -> st.SearchStrategy[JSON]:
        """A forward origin of each of the four kinds."""
        return st.one_of(
            self.obj("MessageOriginUser", {"date": self.dates(), "sender_user": self.user()}),
            self.obj(
                "MessageOriginHiddenUser", {"date": self.dates(), "sender_user_name": names()}
            ),
            self.obj(
                "MessageOriginChat",
                {
                    "date": self.dates(),
                    "sender_chat": self.chat("group") | self.chat("supergroup"),
                    "author_signature": absent_or(names()),
                },
            ),
            self.obj(
                "MessageOriginChannel",
                {
                    "date": self.dates(),
                    "chat": self.chat("channel"),
                    "message_id": st.integers(1, 2**31 - 1),
                    "author_signature": absent_or(names()),
                },
            ),
        )

    def entities(self, text: str, *, most: int = 20) -> st.SearchStrategy[list[JSON]]:
        """Entities inside ``text`` (offsets in UTF-16 code units), as Telegram gives them."""
        size = utf16_len(text)
        if size == 0:
            return st.just([])

        @st.composite
        def one(draw: st.DrawFn) -> JSON:
            offset = draw(st.integers(0, size - 1))
            length = draw(st.integers(1, size - offset))
            kind = draw(st.sampled_from(ENTITY_KINDS))
            entity: JSON = {"type": kind, "offset": offset, "length": length}
            if kind == "text_link":
                entity["url"] = "https://example.org/" + draw(canaries())
            if kind == "text_mention":
                entity["user"] = draw(self.user())
            if kind == "pre" and draw(st.booleans()):
                entity["language"] = "python"
            return entity

        return st.lists(one(), max_size=most)

    def file(
        self, kind: str, fixed: Mapping[str, st.SearchStrategy[Any]]
    ) -> st.SearchStrategy[JSON]:
        pool = self.world.files["video" if kind == "video_note" else kind]
        known = st.sampled_from(pool)
        type_name = "PhotoSize" if kind == "photo" else kind.title().replace("_", "")

        # The held files' fields are laid over a shape built once (not in every draw).
        placeholders = {k: st.just(None) for held in pool for k in held if k not in fixed}
        shape = self.obj(type_name, {**placeholders, **fixed})

        @st.composite
        def build(draw: st.DrawFn) -> JSON:
            held = draw(known)
            drawn = draw(shape)
            drawn.update((k, v) for k, v in held.items() if k not in fixed)
            return {k: v for k, v in drawn.items() if v is not None or k in held}

        return build()

    def content(self, kind: str) -> st.SearchStrategy[JSON]:
        """The fields that make a message of ``kind`` (text, photo, venue...)."""
        small = st.integers(1, 4096)
        seconds = st.integers(0, 3 * 3600)
        text_fields: dict[str, Callable[[], st.SearchStrategy[JSON]]] = {
            "text": lambda: self.with_entities("text", TEXT_LIMIT),
            "photo": lambda: st.lists(
                self.file("photo", {"width": small, "height": small}), min_size=1, max_size=4
            ).map(lambda sizes: {"photo": sizes}),
            "document": lambda: self.file(
                "document",
                {"file_name": absent_or(names()), "mime_type": absent_or(mime_types())},
            ).map(lambda d: {"document": d}),
            "voice": lambda: self.file(
                "voice", {"duration": seconds, "mime_type": absent_or(mime_types())}
            ).map(lambda v: {"voice": v}),
            "audio": lambda: self.file(
                "audio",
                {
                    "duration": seconds,
                    "title": absent_or(names()),
                    "performer": absent_or(names()),
                    "file_name": absent_or(names()),
                    "mime_type": absent_or(mime_types()),
                },
            ).map(lambda a: {"audio": a}),
            "video": lambda: self.file(
                "video",
                {
                    "duration": seconds,
                    "width": small,
                    "height": small,
                    "file_name": absent_or(names()),
                    "mime_type": absent_or(mime_types()),
                },
            ).map(lambda v: {"video": v}),
            "video_note": lambda: self.file(
                "video_note", {"duration": st.integers(0, 60), "length": st.integers(1, 640)}
            ).map(lambda v: {"video_note": v}),
            "sticker": lambda: self.file(
                "sticker",
                {
                    "type": st.sampled_from(["regular", "mask", "custom_emoji"]),
                    "width": small,
                    "height": small,
                    "emoji": absent_or(st.sampled_from(["👍", "🙏", "❤️", "😢"])),
                    "set_name": absent_or(canaries().map(str.lower)),
                },
            ).map(lambda s: {"sticker": s}),
            "location": lambda: self.location().map(lambda loc: {"location": loc}),
            "venue": lambda: self.venue(),
            "contact": lambda: self.obj(
                "Contact",
                {
                    "phone_number": st.sampled_from(self.world.phones),
                    "first_name": names(),
                    "last_name": absent_or(names()),
                    "user_id": absent_or(st.integers(1_000_000_000, 8_999_999_999)),
                    "vcard": absent_or(names()),
                },
            ).map(lambda c: {"contact": c}),
        }
        base = text_fields[kind]()
        if kind in ("photo", "document", "voice", "audio", "video"):
            return st.tuples(base, absent_or(self.with_entities("caption", CAPTION_LIMIT))).map(
                lambda pair: {**pair[0], **(pair[1] if isinstance(pair[1], dict) else {})}
            )
        return base

    def with_entities(self, key: str, limit: int) -> st.SearchStrategy[JSON]:
        entities_key = "entities" if key == "text" else "caption_entities"

        @st.composite
        def build(draw: st.DrawFn) -> JSON:
            text = draw(typed_text(limit=limit))
            found = draw(self.entities(text))
            return {key: text, entities_key: found} if found else {key: text}

        return build()

    def location(self) -> st.SearchStrategy[JSON]:
        return self.obj(
            "Location",
            {
                "latitude": st.floats(-90, 90, allow_nan=False),
                "longitude": st.floats(-180, 180, allow_nan=False),
                "horizontal_accuracy": absent_or(st.floats(0, 1500, allow_nan=False)),
                "live_period": absent_or(st.integers(60, 86400)),
                "heading": absent_or(st.integers(1, 360)),
                "proximity_alert_radius": absent_or(st.integers(1, 100_000)),
            },
        )

    def venue(self) -> st.SearchStrategy[JSON]:
        locations = self.location()
        shape = self.obj(
            "Venue", {"location": st.just(None), "title": names(), "address": names()}, optional=()
        )

        @st.composite
        def build(draw: st.DrawFn) -> JSON:
            where = draw(locations)
            venue = draw(shape)
            venue["location"] = where
            return {"venue": venue, "location": dict(where)}  # as Telegram sends both

        return build()

    # ------------------------------------------------------------------ messages

    def private_message(
        self,
        content: st.SearchStrategy[JSON],
        *,
        forwarded: bool = True,
        relative: st.SearchStrategy[JSON] | None = None,
    ) -> st.SearchStrategy[JSON]:
        # Built once, not in every draw (building and validating strategies per draw
        # was most of the long run's time); the sender is filled in after the draw.
        senders = relative or st.sampled_from(self.world.relatives)
        extras = st.fixed_dictionaries(
            {},
            optional={
                name: self.value(self.api.fields("Message")[name]["types"][0])
                for name in MESSAGE_EXTRAS
            },
        )
        fixed: dict[str, st.SearchStrategy[Any]] = {
            "message_id": st.just(0),
            "from": st.just(None),
            "chat": st.just(None),
            "date": self.dates(),
        }
        if forwarded:
            fixed["forward_origin"] = absent_or(self.origin())
        shape = self.obj("Message", fixed, optional=())

        @st.composite
        def build(draw: st.DrawFn) -> JSON:
            who = draw(senders)
            message = draw(shape)
            message["from"] = who
            message["chat"] = {"id": who["id"], "type": "private", "first_name": who["first_name"]}
            message.update(draw(extras))
            message.update(draw(content))
            return message

        return build()

    def command(self) -> st.SearchStrategy[JSON]:
        @st.composite
        def build(draw: st.DrawFn) -> JSON:
            name = draw(st.sampled_from(BOT_COMMANDS))
            word = "/" + name + draw(st.sampled_from(["", "@" + self.world.bot_username]))
            args = draw(st.sampled_from(["", " ", " "]))
            if args:
                args += draw(names())
            return {
                "text": word + args,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(word)}],
            }

        return build()

    def valid_kinds(self) -> dict[str, st.SearchStrategy[Generated]]:
        """A strategy for each kind of update the bot takes, by its label."""
        kinds: dict[str, st.SearchStrategy[Generated]] = {}
        for kind in ("text", *ATTACHMENTS, "location", "venue", "contact"):
            labelled = functools.partial(_message_update, label=kind)
            kinds[kind] = self.private_message(self.content(kind)).map(labelled)
        for what in ("text", "caption", "location"):
            kinds[f"edited {what}"] = st.one_of(self.edited(what, True), self.edited(what, False))
        kinds["other command"] = self.private_message(
            st.tuples(st.sampled_from(["status", "timezone", "unknown"]), typed_text()).map(
                lambda p: {
                    "text": f"/{p[0]} {p[1]}",
                    "entities": [{"type": "bot_command", "offset": 0, "length": len(p[0]) + 1}],
                }
            ),
            forwarded=False,
        ).map(lambda m: _message_update(m, "other command"))
        kinds["command"] = self.private_message(self.command(), forwarded=False).map(
            lambda m: Generated({"message": m}, "command", stored=False, chat_id=m["chat"]["id"])
        )
        kinds["group chat"] = self.group_message()
        kinds["channel post"] = self.channel_post()
        kinds["bot added to or removed from a group"] = self.bot_added_to_group()
        return kinds

    def valid(self) -> st.SearchStrategy[Generated]:
        """An update of any kind the bot takes, as Telegram would send it."""
        return st.one_of(list(self.valid_kinds().values()))

    def edited(self, what: str, earlier: bool) -> st.SearchStrategy[Generated]:
        content: st.SearchStrategy[JSON]
        if what == "location":  # a live location moving on
            content = self.location().map(lambda loc: {"location": {**loc, "live_period": 900}})
        else:
            content = self.content("text" if what == "text" else "photo")

        messages = self.private_message(content, forwarded=False)

        @st.composite
        def build(draw: st.DrawFn) -> Generated:
            message = draw(messages)
            message["edit_date"] = draw(st.integers(message["date"], MAX_DATE + 1))
            return Generated(
                {"edited_message": message},
                f"edited {what}",
                stored=True,
                chat_id=message["chat"]["id"],
                edit_of_earlier=earlier,
            )

        return build()

    def group_message(self) -> st.SearchStrategy[Generated]:
        shape = self.obj(
            "Message",
            {
                "message_id": st.just(0),
                "from": st.just(None),
                "chat": st.just(None),
                "date": self.dates(),
                "forward_origin": absent_or(self.origin()),
            },
            optional=(),
        )
        contents = {kind: self.content(kind) for kind in ("text", "photo", "location")}

        @st.composite
        def build(draw: st.DrawFn) -> Generated:
            who = draw(st.sampled_from(self.world.relatives))
            chat = draw(st.sampled_from(self.world.groups))
            kind = draw(st.sampled_from(["text", "photo", "location"]))
            message = draw(shape)
            message["from"], message["chat"] = who, chat
            message.update(draw(contents[kind]))
            return Generated({"message": message}, "group chat", stored=False)

        return build()

    def channel_post(self) -> st.SearchStrategy[Generated]:
        @st.composite
        def build(draw: st.DrawFn) -> Generated:
            chat = draw(st.sampled_from(self.world.channels))
            post = draw(
                self.obj(
                    "Message",
                    {
                        "message_id": st.just(0),
                        "sender_chat": st.just(chat),
                        "chat": st.just(chat),
                        "date": self.dates(),
                    },
                    optional=(),
                )
            )
            post.update(draw(self.content("text")))
            key = draw(st.sampled_from(["channel_post", "edited_channel_post"]))
            if key == "edited_channel_post":
                post["edit_date"] = post["date"] + 1
            return Generated({key: post}, "channel post", stored=False)

        return build()

    def bot_added_to_group(self) -> st.SearchStrategy[Generated]:
        @st.composite
        def build(draw: st.DrawFn) -> Generated:
            who = draw(st.sampled_from(self.world.relatives))
            chat = draw(st.sampled_from(self.world.groups))
            bot = {"id": 7_000_000_001, "is_bot": True, "first_name": "Check-in intake"}
            change = draw(st.sampled_from([("Left", "Member"), ("Member", "Left")]))
            old, new = (
                draw(self.obj(f"ChatMember{status}", {"user": st.just(bot)}, optional=()))
                for status in change
            )
            update = {
                "my_chat_member": {
                    "chat": chat,
                    "from": who,
                    "date": draw(self.dates()),
                    "old_chat_member": old,
                    "new_chat_member": new,
                }
            }
            return Generated(update, "bot added to or removed from a group", stored=False)

        return build()

    # ------------------------------------------------------------------ hostile

    def hostile_content(self) -> st.SearchStrategy[Generated]:
        """Well-formed JSON, valid Unicode, but beyond what Telegram sends: huge texts,
        invisible and right-to-left runs, tens of thousands of entities, odd optional fields."""

        messages = self.private_message(st.just({}), forwarded=True)

        @st.composite
        def build(draw: st.DrawFn) -> Generated:
            canary = draw(canaries())
            how = draw(st.sampled_from(["huge", "invisible", "entities", "empty", "oddities"]))
            if how == "huge":
                unit = draw(st.sampled_from(["a", "잘", "🙏", "\u202e", "e\u0301"]))
                text = canary + unit * draw(st.integers(TEXT_LIMIT, 300_000))
                content: JSON = {draw(st.sampled_from(["text", "caption"])): text}
            elif how == "invisible":
                text = draw(st.text(st.sampled_from(RTL_AND_INVISIBLE + RTL_SCRIPT), max_size=200))
                content = {"text": "\u202e" + canary + text}
            elif how == "entities":
                text = canary + draw(_texts(40))
                count = draw(st.integers(1_000, 30_000))
                offset = draw(st.integers(-(2**40), 2**40))
                length = draw(st.integers(-(2**40), 2**40))
                kind = draw(st.sampled_from(["bold", "text_mention", "custom_emoji", "nonsense"]))
                entity: JSON = {"type": kind, "offset": offset, "length": length}
                if kind == "text_mention":
                    entity["user"] = draw(self.user())
                content = {"text": text, "entities": [dict(entity) for _ in range(count)]}
            elif how == "empty":
                content = draw(st.sampled_from([{}, {"text": ""}, {"caption": canary}]))
            else:
                content = {
                    "text": canary,
                    "media_group_id": canary,
                    "dice": {"emoji": "🎲", "value": 7},
                    "guest_query_id": canary,
                    "unknown_future_field": {"nested": [canary] * 3},
                }
            message = draw(messages)
            message.update(content)
            return Generated(_message_update(message, f"hostile {how}").raw, how, stored=False)

        return build()

    def hostile_surrogates(self) -> st.SearchStrategy[Generated]:
        """Lone UTF-16 surrogates (JSON's ``\\ud83d`` with no partner) in what people type."""

        @st.composite
        def build(draw: st.DrawFn) -> Generated:
            canary = draw(canaries())
            lone = draw(st.text(st.characters(categories=["Cs"]), min_size=1, max_size=4))
            spot = draw(st.sampled_from(["text", "caption", "first_name", "origin", "file_name"]))
            poisoned = f"{canary}{lone}"
            content: JSON = {"text": canary}
            if spot == "text":
                content = {"text": poisoned}
            elif spot == "caption":
                content = {**draw(self.content("photo")), "caption": poisoned}
            elif spot == "file_name":
                content = draw(self.content("document"))
                content["document"]["file_name"] = poisoned
            message = draw(self.private_message(st.just(content), forwarded=False))
            if spot == "first_name":
                message["from"] = {**message["from"], "first_name": poisoned}
            if spot == "origin":
                message["forward_origin"] = {
                    "type": "hidden_user",
                    "date": message["date"],
                    "sender_user_name": poisoned,
                }
            return Generated({"message": message}, f"lone surrogate in {spot}", stored=False)

        return build()

    def hostile_structure(self) -> st.SearchStrategy[Generated]:
        """A valid update with one field removed, or one value of the wrong type."""

        @st.composite
        def build(draw: st.DrawFn) -> Generated:
            base = draw(
                self.valid().filter(lambda g: "message" in g.raw or "edited_message" in g.raw)
            )
            raw = json.loads(json.dumps(base.raw))
            paths = list(_paths(raw))
            # Inside the update: an update left with no kind at all is no_kind()'s.
            path = draw(st.sampled_from(paths).filter(lambda p: len(p) > 1))
            parent, key = _locate(raw, path)
            how = draw(st.sampled_from(["remove", "retype"]))
            if how == "remove":
                del parent[key]
            else:
                parent[key] = draw(wrong_values(parent[key]))
            label = f"{how} {'.'.join(map(str, path))}"
            return Generated(raw, label, stored=False)

        return build()


def no_kind() -> st.SearchStrategy[Generated]:
    """An update that carries nothing the bot knows: no field at all beside update_id, or
    only a kind newer than python-telegram-bot 22.8 (whatever a later Bot API adds)."""
    future = st.tuples(st.from_regex(r"[a-z]{3,12}(_[a-z]{3,12})?", fullmatch=True), canaries())
    return st.one_of(
        st.just(Generated({}, "no kind", stored=False)),
        future.map(
            lambda p: Generated(
                {f"future_{p[0]}": {"text": p[1], "from": {"id": 5_123_456_789}}},
                "future kind",
                stored=False,
            )
        ),
    )


def wrong_values(old: Any) -> st.SearchStrategy[Any]:
    canary = canaries()
    candidates = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        canary,
        st.lists(canary, max_size=2),
        st.dictionaries(canary, canary, max_size=2),
    )
    return candidates.filter(lambda v: type(v) is not type(old))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in items:
        path = (*prefix, key)
        if path == ("update_id",):
            continue  # getUpdates and the webhook take update_id for granted
        yield path
        if isinstance(inner, dict | list) and len(path) < 5:
            yield from _paths(inner, path)


def _locate(value: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    for key in path[:-1]:
        value = value[key]
    return value, path[-1]


def _message_update(message: JSON, label: str) -> Generated:
    return Generated({"message": message}, label, stored=True, chat_id=message["chat"]["id"])


def mime_types() -> st.SearchStrategy[str]:
    return st.sampled_from(
        ["image/jpeg", "application/pdf", "audio/ogg", "video/mp4", "text/plain"]
    )


def absent_or(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(_ABSENT), strategy)


def _drop_absent(value: JSON) -> JSON:
    return {k: v for k, v in value.items() if v is not _ABSENT}
