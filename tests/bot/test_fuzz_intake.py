"""Fuzzing the intake: generated Bot API updates through the real bot (issue 8).

The bot is the real python-telegram-bot Application of ``bot.app.running``, connected over HTTP
to the local stand-in, with its database on SQLite and on PostgreSQL. Three ways in, as in
production:

- valid updates of every kind go to ``Intake.handle(Update.de_json(...))`` one at a time (the
  quick run), or 25 at a time to ``Intake.take_in_batch`` and then ``handlers.Replies``, as
  ``drain`` and ``poll`` take a getUpdates batch (the long run); no getUpdates round trip;
- hostile updates that are still JSON go through ``bot.app.drain``: queued at the stand-in,
  fetched with getUpdates and parsed by python-telegram-bot, exactly as after a restart;
- lone surrogates and bytes that are not UTF-8 cannot travel through getUpdates's JSON, so they
  are POSTed to the webhook (``bot.webhook.make_webhook_app``).

What is required: no handler fails (no ERROR record), a valid message is stored exactly once
(``Message`` rows counted by ``update_id``, even when Telegram delivers it twice), anything else
is answered or dropped with a log line naming only its update, and no log line carries a canary
(``CNRY`` + six digits in every typed string) or an identifier of the update.

The default run generates a few hundred updates; ``pytest -m fuzz`` runs the long version
(over 10,000). See docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from telegram import Update

from bot.app import drain, running
from bot.handlers import Replies
from bot.intake import BotApplication, Intake
from bot.logs import QUIET, WithholdLibraryDetails
from bot.standin import TelegramStandIn
from bot.webhook import SECRET_HEADER, make_webhook_app
from storage.models import Message
from storage.timeutil import utc_now
from tests.bot.fuzz_updates import (
    CANARY,
    BotApi,
    Generated,
    Shapes,
    World,
    no_kind,
)
from tests.bot.intake_harness import install
from tests.conftest import Database

T = TypeVar("T")
API = BotApi.load()
pytestmark = pytest.mark.skipif(
    API is None, reason="../shared/telegram-bot-api/api.json (Bot API 10.0 as data) is missing"
)

# How many updates each test generates, per database: the quick run, and `pytest -m fuzz`.
QUICK = {"valid": 4, "hostile": 20, "webhook": 15}  # valid: per kind (20 kinds)
LONG = {"valid": 10_000, "hostile": 1_500, "webhook": 500}
FIRST_UPDATE_ID = 800_000_001  # apart from the stand-in's own numbering (700,000,001...)
RELATIVES = (6_100_200_301, 6_100_200_302, 6_100_200_303, 6_100_200_304, 6_100_200_305)


def long_run_selected(config: pytest.Config) -> bool:
    expression = str(config.getoption("markexpr") or "")
    return "fuzz" in expression and "not fuzz" not in expression


# ----------------------------------------------------------------------------- logs


class Captured(logging.Handler):
    """Every log record of the run, as production writes it (bot.logs's filter applied)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []
        self.guard = threading.Lock()
        self.addFilter(WithholdLibraryDetails())
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self.guard:
            self.lines.append((record.levelno, line))

    def since(self, mark: int) -> list[tuple[int, str]]:
        with self.guard:
            return self.lines[mark:]

    def mark(self) -> int:
        with self.guard:
            return len(self.lines)


@contextlib.contextmanager
def captured_logs() -> Iterator[Captured]:
    """Production's logging (bot.logs.configure at DEBUG) into a list, then put back."""
    handler = Captured()
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in QUIET}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def identifiers(raw: Any) -> set[str]:
    """Telegram ids and phone numbers in an update, as they would be written."""
    found: set[str] = set()
    if isinstance(raw, dict):
        for key, value in raw.items():
            if key in ("id", "user_id") and isinstance(value, int) and abs(value) >= 10**6:
                found.add(str(value))
            elif key == "phone_number" and isinstance(value, str):
                found.add(value)
            else:
                found |= identifiers(value)
    elif isinstance(raw, list):
        for value in raw:
            found |= identifiers(value)
    return found


def leaks(lines: list[tuple[int, str]], raw: Any) -> list[str]:
    secret = identifiers(raw)
    return [line for _, line in lines if CANARY.search(line) or any(s in line for s in secret)]


def failures(lines: list[tuple[int, str]]) -> list[str]:
    """Handler failures and other internal errors (every ERROR record is one)."""
    return [line for level, line in lines if level >= logging.ERROR]


# ----------------------------------------------------------------------------- the bot


LONGEST_REPLIES = 120.0  # seconds one batch's replies may take on a loaded machine


@dataclass
class Fuzz:
    """A running bot and its stand-in, driven from hypothesis's thread."""

    loop: asyncio.AbstractEventLoop
    standin: TelegramStandIn
    application: BotApplication
    intake: Intake
    shapes: Shapes
    logs: Captured
    backend: str
    next_id: int = FIRST_UPDATE_ID
    last_in_chat: dict[int, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=300)

    def number(self, generated: Generated) -> tuple[int, dict[str, Any]]:
        """Give the update the next update_id and its message the next message_id (an edit:
        of the chat's last stored message, or of one the bot never saw)."""
        raw = json.loads(json.dumps(generated.raw))
        update_id = self.next_id
        self.next_id += 1
        raw["update_id"] = update_id
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            message = raw.get(key)
            if not isinstance(message, dict) or message.get("message_id") != 0:
                continue
            chat = (
                message.get("chat", {}).get("id") if isinstance(message.get("chat"), dict) else None
            )
            if generated.edit_of_earlier and chat in self.last_in_chat:
                message["message_id"] = self.last_in_chat[chat]
            else:
                message["message_id"] = update_id - FIRST_UPDATE_ID + 1
            if generated.stored and key == "message" and isinstance(chat, int):
                self.last_in_chat[chat] = message["message_id"]
        return update_id, raw

    async def rows(self, update_id: int) -> int:
        async with self.intake.runtime.sessions() as session:
            query = select(sa.func.count()).select_from(Message)
            query = query.where(Message.update_id == update_id)
            return int((await session.exec(query)).one())

    def answers(self, chat_id: int | None) -> int:
        return sum(1 for m in self.standin.sent if m.chat_id == chat_id)

    async def stored(self, update_ids: list[int]) -> Counter[int]:
        """How many ``Message`` rows each of ``update_ids`` has."""
        async with self.intake.runtime.sessions() as session:
            query = select(Message.update_id).where(Message.update_id.in_(update_ids))
            return Counter(int(u) for u in (await session.exec(query)).all() if u is not None)

    async def handle(self, raw: dict[str, Any]) -> None:
        await self.intake.handle(Update.de_json(raw, self.application.bot))

    async def take_in_batch(self, raws: list[dict[str, Any]]) -> None:
        """One getUpdates batch as ``bot.app`` takes it: one transaction, then the replies."""
        updates = [Update.de_json(raw, self.application.bot) for raw in raws]
        taken = await self.intake.take_in_batch(updates, now=utc_now())
        assert len(taken) == len(updates)  # the whole batch committed
        replies = Replies(self.application)
        await replies.start(updates, taken)
        # Every reply, however slow the machine: a running bot never cancels a chat's
        # replies between batches (only at stop, after DETACHED_AT_STOP).
        await replies.finish(alone_for=LONGEST_REPLIES)

    async def drain(self, update_id: int, raw: dict[str, Any]) -> int | None:
        """Queue ``raw`` at the stand-in and take it in as ``bot.app.drain`` does."""
        self.standin.inject(raw)
        try:
            return await drain(self.application, self.intake)
        finally:
            # Whatever happened, Telegram must not offer it again to the next example.
            await self.application.bot.get_updates(offset=update_id + 1, timeout=0)


async def build_world(standin: TelegramStandIn, application: BotApplication) -> World:
    relatives = []
    for n, user_id in enumerate(RELATIVES):
        user = standin.user(
            user_id,
            f"CNRY10000{n}",
            language_code=(None, "ko", "en", "zh-hans", "ko")[n],
            username=f"cnry20000{n}" if n % 2 else None,
        )
        relatives.append(user)
    someone = relatives[0]
    files: dict[str, list[dict[str, Any]]] = {}

    def keep(kind: str, update: dict[str, Any]) -> None:
        item = update["message"][kind]
        item = item[-1] if isinstance(item, list) else item
        files.setdefault(kind, []).append(
            {k: item[k] for k in ("file_id", "file_unique_id", "file_size") if k in item}
        )

    for i in range(2):
        data = f"CNRY30000{i} file".encode() * 20
        keep("photo", standin.send_photo(someone, data))
        keep(
            "document",
            standin.send_document(someone, data, file_name="a.txt", mime_type="text/plain"),
        )
        keep("voice", standin.send_voice(someone, data))
        keep("audio", standin.send_audio(someone, data))
        keep("video", standin.send_video(someone, data))
        keep("sticker", standin.send_sticker(someone, data))
    # One claims more than the installation's 1 MB: kept as metadata, with a "too large" reply.
    keep(
        "document",
        standin.send_document(
            someone, b"x", file_name="big.pdf", mime_type="application/pdf", file_size=5 << 20
        ),
    )
    standin.add_bot_to_group(someone, group_id=-4_001_002, title="CNRY400001")
    standin.add_bot_to_group(someone, group_id=-1_001_234_567_890, title="CNRY400002")
    standin.channel_post(channel_id=-1_009_990_001, title="CNRY400003", text="CNRY400004")
    groups = (
        {"id": -4_001_002, "type": "group", "title": "CNRY400001"},
        {"id": -1_001_234_567_890, "type": "supergroup", "title": "CNRY400002"},
    )
    channels = ({"id": -1_009_990_001, "type": "channel", "title": "CNRY400003"},)
    # Telegram forgets what building the world queued: the fuzz starts from an empty queue.
    last = max(u["update_id"] for u in standin.pending_updates)
    await application.bot.get_updates(offset=last + 1, timeout=0)
    bot = await application.bot.get_me()
    return World(
        relatives=tuple(u.to_dict() for u in relatives),
        files={k: tuple(v) for k, v in files.items()},
        groups=groups,
        channels=channels,
        bot_username=bot.username,
    )


@pytest.fixture
async def fuzz(tmp_path: Path, database: Database, standin: TelegramStandIn) -> AsyncIterator[Fuzz]:
    assert API is not None
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        # The per-person cap would turn most of a long run into "not stored" by design.
        extra="rate_limit_per_hour = 1000000",
    )
    with captured_logs() as logs:
        async with running(installation.settings) as (application, intake):
            world = await build_world(standin, application)
            yield Fuzz(
                loop=asyncio.get_running_loop(),
                standin=standin,
                application=application,
                intake=intake,
                shapes=Shapes(API, world),
                logs=logs,
                backend=database.backend,
            )


def fuzz_settings(count: int, *, shrink: bool = True) -> settings:
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[*phases, Phase.shrink] if shrink else phases,
        suppress_health_check=list(HealthCheck),
        # The quick run (a few dozen examples, in every CI run) draws the same examples
        # each time, so that a red run names a case anyone can run again; the long run
        # (`-m fuzz`, hundreds or thousands) draws new ones every time.
        derandomize=count < 100,
    )


def report(fuzz: Fuzz, name: str, started: float) -> None:
    total = sum(fuzz.counts.values())
    took = time.monotonic() - started
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(fuzz.counts.items()))
    print(f"\n{name} [{fuzz.backend}]: {total} updates in {took:.1f} s ({kinds})")


# ----------------------------------------------------------------------------- tests


def test_generated_updates_have_the_documented_shapes() -> None:
    """The generator's valid updates use Bot API 10.0's field names and types, so the
    fuzz tests below feed the bot what Telegram can send."""
    assert API is not None
    files = {
        k: ({"file_id": f"id-{k}", "file_unique_id": "u", "file_size": 10},)
        for k in ("photo", "document", "voice", "audio", "video", "sticker")
    }
    world = World(
        relatives=({"id": RELATIVES[0], "is_bot": False, "first_name": "CNRY000001"},),
        files=files,
        groups=({"id": -4001, "type": "group", "title": "CNRY000002"},),
        channels=({"id": -1009, "type": "channel", "title": "CNRY000003"},),
        bot_username="intake_test_bot",
    )
    shapes = Shapes(API, world)
    for strategy in shapes.valid_kinds().values():

        @fuzz_settings(5)
        @given(strategy)
        def check(generated: Generated) -> None:
            raw = {"update_id": FIRST_UPDATE_ID, **generated.raw}
            assert API.problems(raw, "Update") == [], generated.label

        check()


async def test_valid_updates_are_each_stored_exactly_once(fuzz: Fuzz) -> None:
    """Every valid private message and edit is stored once (and once again when Telegram
    delivers it twice) and answered; commands, buttons, group chats and channel posts store
    nothing; no handler fails and no log line carries content or an identifier."""
    started = time.monotonic()
    for strategy in fuzz.shapes.valid_kinds().values():
        await valid_updates(fuzz, QUICK["valid"], strategy)
    report(fuzz, "valid updates", started)
    assert set(fuzz.shapes.valid_kinds()) <= set(fuzz.counts)


async def valid_updates(fuzz: Fuzz, count: int, strategy: st.SearchStrategy[Generated]) -> None:
    @fuzz_settings(count)
    @given(generated=strategy, twice=st.booleans(), press=st.sampled_from(["", "en", "ko"]))
    def check(generated: Generated, twice: bool, press: str) -> None:
        update_id, raw = fuzz.number(generated)
        mark, answered = fuzz.logs.mark(), fuzz.answers(generated.chat_id)
        fuzz.run(fuzz.handle(raw))
        if twice:  # a redelivery after a crash before the confirmation
            fuzz.run(fuzz.handle(raw))
        stored = fuzz.run(fuzz.rows(update_id))
        assert stored == (1 if generated.stored else 0), (generated.label, stored)
        # A part of an album is answered once for the album (issue #14): the same media
        # group may come back in a later example, already answered.
        message = raw.get("message") or raw.get("edited_message") or {}
        in_album = bool(message.get("media_group_id"))
        if generated.stored and not in_album:
            assert fuzz.answers(generated.chat_id) > answered, generated.label
        text = raw.get("message", {}).get("text", "")
        if press and generated.label == "command" and text.startswith("/language"):
            press_language_button(fuzz, raw, press)
        lines = fuzz.logs.since(mark)
        assert failures(lines) == [], generated.label
        assert leaks(lines, raw) == [], generated.label
        fuzz.counts[generated.label] += 1
        event(generated.label)

    await asyncio.to_thread(check)


BATCH = 25  # updates per batch in the long run: one transaction each, as getUpdates gives


async def valid_batches(fuzz: Fuzz, count: int, strategy: st.SearchStrategy[Generated]) -> None:
    """``count`` valid updates, ``BATCH`` at a time, each batch delivered twice now and then;
    every update checked as ``valid_updates`` checks one."""

    @fuzz_settings(count // BATCH)
    @given(batch=st.lists(strategy, min_size=BATCH, max_size=BATCH), twice=st.booleans())
    def check(batch: list[Generated], twice: bool) -> None:
        numbered = [fuzz.number(generated) for generated in batch]
        raws = [raw for _, raw in numbered]
        mark = fuzz.logs.mark()
        answered = Counter(m.chat_id for m in fuzz.standin.sent)
        fuzz.run(fuzz.take_in_batch(raws))
        if twice:  # a redelivery after a crash before the confirmation
            fuzz.run(fuzz.take_in_batch(raws))
        rows = fuzz.run(fuzz.stored([update_id for update_id, _ in numbered]))
        now_answered = Counter(m.chat_id for m in fuzz.standin.sent)
        lines = fuzz.logs.since(mark)
        for (update_id, raw), generated in zip(numbered, batch, strict=True):
            expected = 1 if generated.stored else 0
            assert rows[update_id] == expected, (generated.label, rows[update_id])
            message = raw.get("message") or raw.get("edited_message") or {}
            # A later part of an album is answered by its first part's receipt (#14).
            if generated.stored and not message.get("media_group_id"):
                chat_id = generated.chat_id
                assert chat_id is not None, generated.label
                assert now_answered[chat_id] > answered[chat_id], generated.label
            assert leaks(lines, raw) == [], generated.label
            fuzz.counts[generated.label] += 1
            event(generated.label)
        assert failures(lines) == [], [g.label for g in batch]

    await asyncio.to_thread(check)


def press_language_button(fuzz: Fuzz, raw: dict[str, Any], language: str) -> None:
    """A relative answers the bot's /language question: a callback query, stored as nothing."""
    chat_id = raw["message"]["chat"]["id"]
    question = next(m for m in reversed(fuzz.standin.sent) if m.chat_id == chat_id)
    user = next(u for u in fuzz.shapes.world.relatives if u["id"] == chat_id)
    sim = fuzz.standin.user(
        chat_id,
        user["first_name"],
        language_code=user.get("language_code"),
        username=user.get("username"),
    )

    async def press() -> None:
        queued = fuzz.standin.press_button(sim, question.message, f"lang:{language}")
        update_id, pressed = fuzz.number(Generated(queued, "language button", stored=False))
        await fuzz.handle(pressed)
        assert await fuzz.rows(update_id) == 0
        assert queued["callback_query"]["id"] in fuzz.standin.answered_callbacks

    fuzz.run(press())
    fuzz.counts["language button"] += 1


def hostile_check(fuzz: Fuzz, generated: Generated) -> None:
    """Through ``drain``: taken in without failing, then stored once and answered, or
    dropped with a line that names the update and nothing in it."""
    update_id, raw = fuzz.number(generated)
    mark = fuzz.logs.mark()
    chat_id = chat_of(raw)
    answered = fuzz.answers(chat_id)
    try:
        offset = fuzz.run(fuzz.drain(update_id, raw))
    except Exception as exc:
        raise AssertionError(f"{generated.label}: drain() raised {type(exc).__name__}") from exc
    assert offset == update_id + 1, generated.label  # taken in: the bot may confirm it
    stored = fuzz.run(fuzz.rows(update_id))
    lines = fuzz.logs.since(mark)
    assert stored <= 1, generated.label
    if stored == 0 and fuzz.answers(chat_id) == answered:
        assert any(str(update_id) in line for _, line in lines), (
            f"{generated.label}: dropped without a word; the log: {lines}"
        )
    assert [line for line in failures(lines) if "bot." in line] == [], generated.label
    assert leaks(lines, raw) == [], generated.label
    fuzz.counts[generated.label] += 1
    event(generated.label)


def chat_of(raw: dict[str, Any]) -> int | None:
    """The chat a (maybe malformed) update's message or edit is in, if it says."""
    for kind in ("message", "edited_message"):
        message = raw.get(kind)
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
    return None


async def test_hostile_content_is_answered_or_dropped_without_leaking(fuzz: Fuzz) -> None:
    """Huge texts, right-to-left and zero-width runs, tens of thousands of entities with
    offsets out of range, empty messages, unknown fields: through getUpdates and ``drain``."""
    await hostile_content(fuzz, QUICK["hostile"])


async def hostile_content(fuzz: Fuzz, count: int) -> None:
    @fuzz_settings(count)
    @given(fuzz.shapes.hostile_content())
    def check(generated: Generated) -> None:
        hostile_check(fuzz, generated)

    started = time.monotonic()
    await asyncio.to_thread(check)
    report(fuzz, "hostile content", started)


async def test_malformed_updates_are_dropped_with_a_log_line(fuzz: Fuzz) -> None:
    """A field removed or given a value of the wrong type, anywhere in a valid update."""

    @fuzz_settings(QUICK["hostile"], shrink=False)
    @given(fuzz.shapes.hostile_structure())
    def check(generated: Generated) -> None:
        hostile_check(fuzz, generated)

    await asyncio.to_thread(check)


async def test_updates_of_no_known_kind_are_kept_sealed_or_dropped_with_a_log_line(
    fuzz: Fuzz,
) -> None:
    @fuzz_settings(10, shrink=False)
    @given(no_kind())
    def check(generated: Generated) -> None:
        hostile_check(fuzz, generated)

    await asyncio.to_thread(check)


# ----------------------------------------------------------------------------- the webhook


@contextlib.asynccontextmanager
async def webhook(fuzz: Fuzz) -> AsyncIterator[TestClient[Any, Any]]:
    app = make_webhook_app(
        path="/hook", secret_token="fuzz-secret", application=fuzz.application, intake=fuzz.intake
    )
    async with TestClient(TestServer(app)) as client:
        yield client


def webhook_check(
    fuzz: Fuzz,
    client: TestClient[Any, Any],
    generated: Generated,
    body: Callable[[dict[str, Any]], bytes],
) -> None:
    update_id, raw = fuzz.number(generated)
    mark = fuzz.logs.mark()

    async def post() -> int:
        answer = await client.post("/hook", data=body(raw), headers={SECRET_HEADER: "fuzz-secret"})
        return answer.status

    status = fuzz.run(post())
    lines = fuzz.logs.since(mark)
    # 200: taken in; 400: refused as not an update. A 5xx makes Telegram send it again, forever.
    assert status in (200, 400), (generated.label, status)
    assert fuzz.run(fuzz.rows(update_id)) <= 1
    assert failures(lines) == [], generated.label
    assert leaks(lines, raw) == [], generated.label
    fuzz.counts[generated.label] += 1
    event(generated.label)


def invalid_utf8(raw: dict[str, Any]) -> bytes:
    """The update's JSON with its canary's bytes broken (a stray continuation byte, a
    truncated sequence, an overlong form)."""
    data = json.dumps(raw, ensure_ascii=False).encode()
    found = CANARY.search(data.decode())
    at = data.find(found.group().encode()) if found else len(data) // 2
    return data[:at] + b"\x80\xe2\x82\xc0\xaf" + data[at:]


async def test_bytes_that_are_not_utf8_are_refused_by_the_webhook(fuzz: Fuzz) -> None:
    async with webhook(fuzz) as client:

        @fuzz_settings(QUICK["webhook"])
        @given(fuzz.shapes.valid())
        def check(generated: Generated) -> None:
            webhook_check(fuzz, client, generated, invalid_utf8)

        await asyncio.to_thread(check)


async def test_lone_surrogates_are_taken_in_or_refused(fuzz: Fuzz) -> None:
    async with webhook(fuzz) as client:

        @fuzz_settings(QUICK["webhook"], shrink=False)
        @given(fuzz.shapes.hostile_surrogates())
        def check(generated: Generated) -> None:
            # ensure_ascii: the surrogate travels as JSON's \udXXX escape, as it would.
            webhook_check(fuzz, client, generated, lambda raw: json.dumps(raw).encode())

        await asyncio.to_thread(check)


# ----------------------------------------------------------------------------- the long run


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> None:
    if not long_run_selected(request.config):
        pytest.skip("the 10,000-update run: pytest -m fuzz tests/bot/test_fuzz_intake.py")


@pytest.mark.fuzz
@pytest.mark.usefixtures("long_run")
async def test_ten_thousand_valid_updates_are_each_stored_exactly_once(fuzz: Fuzz) -> None:
    started = time.monotonic()
    await valid_batches(fuzz, LONG["valid"], fuzz.shapes.valid())
    report(fuzz, "valid updates", started)
    assert sum(fuzz.counts.values()) >= LONG["valid"]
    assert set(fuzz.shapes.valid_kinds()) <= set(fuzz.counts)  # every kind met


@pytest.mark.fuzz
@pytest.mark.usefixtures("long_run")
async def test_long_run_of_hostile_content_is_answered_or_dropped(fuzz: Fuzz) -> None:
    await hostile_content(fuzz, LONG["hostile"])
