"""The stand-in as an admin trying the bot runs it (``python -m bot.standin``): several people
to play, the bot's photos and buttons shown, and ids that go on after the stand-in restarts,
each against python-telegram-bot's real Application over HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.standin import TelegramStandIn
from bot.standin.runner import People, Terminal, default_state_file, parse_user

from .apispec import ApiSpec

REPO = Path(__file__).parents[3]
Start = Callable[[Any], Awaitable[None]]  # starts an Application polling
BUTTONS = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("Acknowledge", callback_data="ack:7")],
        [
            InlineKeyboardButton("Clear", callback_data="clear:7"),
            InlineKeyboardButton("Help", url="https://example.org/help"),
        ],
    ]
)


def png(width: int, height: int) -> bytes:
    """A real (grey) PNG of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PICTURE = png(31, 17)


@dataclass
class Seen:
    """What the Application's handlers received."""

    texts: list[tuple[int, str, str | None]] = field(default_factory=list)  # user, text, lang
    photos: list[tuple[int, str | None]] = field(default_factory=list)  # user, caption
    presses: list[tuple[int, str]] = field(default_factory=list)  # user, data


def application(token: str, base_url: str, file_base_url: str, seen: Seen) -> Any:
    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None
        assert user is not None
        assert message.text is not None
        seen.texts.append((user.id, message.text, user.language_code))
        if message.text == "photo please":
            await message.reply_photo(PICTURE, caption="Your timeline", reply_markup=BUTTONS)
        else:
            await message.reply_text(f"Received from {user.id}", reply_markup=BUTTONS)

    async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None
        assert user is not None
        seen.photos.append((user.id, message.caption))

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        assert query.data is not None
        seen.presses.append((query.from_user.id, query.data))
        await query.answer()

    app = Application.builder().token(token).base_url(base_url).base_file_url(file_base_url).build()
    app.add_handler(MessageHandler(filters.TEXT, on_text))
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    app.add_handler(CallbackQueryHandler(on_press))
    return app


@pytest.fixture
async def running() -> AsyncIterator[Start]:
    """Start an Application polling (and stop it at the end)."""
    started: list[Any] = []

    async def start(app: Any) -> None:
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        started.append(app)

    yield start
    for app in started:
        assert app.updater is not None
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- restarts


async def test_a_restarted_stand_in_goes_on_with_its_ids(tmp_path: Path, running: Start) -> None:
    state = tmp_path / "standin.json"
    first = TelegramStandIn(state_file=state)
    await first.start()
    port = first.port
    seen = Seen()
    app = application(first.token, first.base_url, first.file_base_url, seen)
    await running(app)
    before = first.send_text(first.user(1001), "before")["update_id"]
    await first.wait_confirmed([before], within=15)
    assert [t for _, t, _ in seen.texts] == ["before"]
    replied = first.sent[-1].message_id
    await first.stop()
    assert state.stat().st_mode & 0o777 == 0o600  # it holds the token

    # The same bot, still polling, sees a stand-in that went on where it stopped.
    second = TelegramStandIn(state_file=state)
    assert second.token == first.token
    await second.start(port=port)
    try:
        after = second.send_text(second.user(1001), "after")
        assert after["update_id"] > before
        assert after["message"]["message_id"] > replied
        await until(lambda: len(seen.texts) == 2)
        assert [t for _, t, _ in seen.texts] == ["before", "after"]
        await second.wait_for(lambda: len(second.sent) == 1, within=15)
        assert second.sent[0].message_id > after["message"]["message_id"]
    finally:
        await second.stop()
    saved = json.loads(state.read_text())
    assert saved["next_update_id"] == after["update_id"] + 1


async def test_without_its_state_a_restarted_stand_in_reuses_ids_the_bot_confirmed(
    running: Start,
) -> None:
    # What the state file prevents: the update is confirmed by the bot's offset unseen.
    first = TelegramStandIn()
    await first.start()
    port, token = first.port, first.token
    seen = Seen()
    await running(application(token, first.base_url, first.file_base_url, seen))
    before = first.send_text(first.user(1001), "before")["update_id"]
    await first.wait_confirmed([before], within=15)
    await first.stop()
    second = TelegramStandIn(token=token)
    await second.start(port=port)
    try:
        lost = second.send_text(second.user(1001), "after")["update_id"]
        assert lost == before
        await second.wait_confirmed([lost], within=15)
        assert [t for _, t, _ in seen.texts] == ["before"]
    finally:
        await second.stop()


def test_a_state_file_that_is_not_one_is_refused_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "standin.json"
    state.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a stand-in state file"):
        TelegramStandIn(state_file=state)
    assert state.read_text() == '{"format": "something else"}'


def test_the_state_is_kept_per_port_in_the_users_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_file(8081) == tmp_path / "checkin-intake" / "standin-8081.json"
    assert default_state_file(0) is None  # a free port: no same stand-in to start again


# --------------------------------------------------------------------------- the terminal


async def test_typed_lines_make_updates_of_telegrams_shapes(
    tmp_path: Path, api_spec: ApiSpec
) -> None:
    async with TelegramStandIn() as standin:
        people = People([parse_user("1001:Min-ji", "ko"), parse_user("1002:Jae-ho:en", "ko")])
        for user in people.users:
            standin.user(user.id, user.first_name, language_code=user.language_code)
        shown: list[str] = []
        terminal = Terminal(standin, people, tmp_path, say=shown.append)
        picture = tmp_path / "check-in.png"
        picture.write_bytes(PICTURE)
        terminal.act("!as 2")
        terminal.act(f"!photo {picture} at the river")
        assert shown == ["writing as Jae-ho (1002)"]
        with pytest.raises(ValueError, match="no such person"):
            terminal.act("!as Nobody")
        with pytest.raises(ValueError, match="cannot read"):
            terminal.act(f"!photo {tmp_path / 'missing.png'}")
        for update in standin.pending_updates:
            assert api_spec.errors(update, "Update") == [], update
        (photo,) = standin.pending_updates
        assert photo["message"]["from"]["id"] == 1002
        assert photo["message"]["caption"] == "at the river"


# --------------------------------------------------------------------------- the runner


@dataclass
class Runner:
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    async def line_with(self, text: str, within: float = 15.0) -> str:
        """The next printed line holding ``text`` (lines before it are kept in output)."""
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), within)
            assert raw, f"the stand-in ended; it printed {self.output}"
            line = raw.decode().rstrip("\n")
            self.output.append(line)
            if text in line:
                return line

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError("the stand-in did not stop at Ctrl-C") from None


async def start_runner(*args: str) -> tuple[Runner, dict[str, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.standin",
        "--port",
        "0",
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    runner = Runner(process)
    await runner.line_with("Ctrl-C stops.")
    settings = dict(line.split(":", 1) for line in runner.output[:3])
    return runner, {k: v.strip() for k, v in settings.items()}


async def test_several_people_photos_and_buttons_at_the_terminal(
    running: Start,
) -> None:
    runner, settings = await start_runner("--user", "1001:Min-ji", "--user", "1002:Jae-ho:en")
    try:
        assert "1) Min-ji (1001, ko) <- writing   2) Jae-ho (1002, en)" in runner.output[3]
        photos = Path(runner.output[4].split("saved in ", 1)[1].split(";", 1)[0])
        seen = Seen()
        app = application(settings["token"], settings["base_url"], settings["file_base_url"], seen)
        await running(app)

        await runner.type("hello")
        reply = await runner.line_with("Received from 1001")
        assert reply == "bot #2 -> Min-ji (1001): Received from 1001"
        buttons = await runner.line_with("Acknowledge")
        assert buttons.split() == [
            *["[1]", "Acknowledge", "[2]", "Clear"],
            *["[3]", "Help", "->", "https://example.org/help"],
        ]

        await runner.type("!as Jae-ho photo please")
        await runner.line_with("writing as Jae-ho (1002)")
        shown = await runner.line_with("photo")
        assert shown.startswith("bot #2 -> Jae-ho (1002): [PNG photo 31x17, 1 KB, saved as ")
        saved = Path(shown.split("saved as ", 1)[1].rstrip("]"))
        assert saved.parent == photos
        assert await asyncio.to_thread(saved.read_bytes) == PICTURE
        assert await runner.line_with("Your timeline") == "    Your timeline"
        assert seen.texts == [(1001, "hello", "ko"), (1002, "photo please", "en")]

        await runner.type("!press 2 Clear")  # by label, as Jae-ho, under his photo
        await runner.type("!as 1")
        await runner.type("!press 2 1")  # by number, as Min-ji, under her reply
        await runner.type("!press 2 3")  # a link: nothing to press
        await runner.line_with("not sent: button 3 is not one the bot answers")
        await until(lambda: len(seen.presses) == 2)
        assert seen.presses == [(1002, "clear:7"), (1001, "ack:7")]
    finally:
        await runner.stop()
    assert not await asyncio.to_thread(photos.exists)  # the bot's pictures are not left behind


async def test_the_runner_keeps_its_token_and_ids_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    confirmed: list[int] = []
    for text in ("one", "two"):
        runner, settings = await start_runner("--state", str(state))
        try:
            assert runner.output[3].startswith(f"kept in {state}")
            bot = Bot(settings["token"], base_url=settings["base_url"])
            async with bot:
                await runner.type(text)
                updates: tuple[Update, ...] = ()
                while not updates:
                    updates = await bot.get_updates(timeout=2)
                assert updates[0].message is not None
                assert updates[0].message.text == text
                await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
                confirmed.append(updates[0].update_id)
            if text == "one":
                first_token = settings["token"]
            else:
                assert settings["token"] == first_token  # the bot's config still holds
        finally:
            await runner.stop()
    assert confirmed[1] == confirmed[0] + 1


async def test_a_broken_state_file_stops_the_runner_with_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("not json")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.standin",
        "--port",
        "0",
        "--state",
        str(state),
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("python -m bot.standin: error: ")
    assert "not a stand-in state file" in lines[0]
    assert state.read_text() == "not json"
