"""The stand-in run by hand (``python -m bot.standin``): an admin trying the bot plays the
people at a terminal.

Several people can be started (``--user 1001:Min-ji --user 1002:Jae-ho``); each line typed is
sent by the one writing now, and ``!as`` switches who that is. What the bot sends is printed
with whom it went to, its photos saved to a folder (the path printed) and its inline buttons
listed by number and label, so that ``!press MESSAGE BUTTON`` can press one. With a fixed port
the stand-in keeps its token and its ids in a state file (``TelegramStandIn(state_file=…)``),
so that stopping and starting it again changes nothing the bot has been told.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .server import SentMessage, TelegramStandIn
from .shapes import JSON, SimUser, origin_hidden_user

HELP = """\
Type a line to send it as the person writing now. Also:
  !as WHO [TEXT]             write as another person (their number, id or name) from now on
  !users                     the people, and who is writing
  !press MESSAGE BUTTON      press a button under the bot's message #MESSAGE (its number,
                             label or callback data)
  !photo FILE [CAPTION]      send a picture from a file
  !fwd TEXT                  forward a text from a hidden sender, dated now
  !loc LAT LON               share a location
  !help                      this list
Ctrl-C stops."""


# --------------------------------------------------------------------------- the people


def parse_user(text: str, language: str) -> SimUser:
    """``ID``, ``ID:NAME`` or ``ID:NAME:LANGUAGE`` (``--user``)."""
    id_text, _, rest = text.partition(":")
    name, _, lang = rest.partition(":")
    try:
        user_id = int(id_text)
    except ValueError:
        raise ValueError(f"--user {text!r}: ID[:NAME[:LANGUAGE]], the ID a number") from None
    if user_id <= 0:
        raise ValueError(f"--user {text!r}: user ids are positive")
    return SimUser(user_id, name.strip() or f"User {user_id}", lang.strip() or language)


@dataclass
class People:
    """The people an admin plays, and which of them is writing now."""

    users: list[SimUser]
    writing: int = 0

    @property
    def current(self) -> SimUser:
        return self.users[self.writing]

    def name_of(self, chat_id: int) -> str:
        for user in self.users:
            if user.id == chat_id:
                return f"{user.first_name} ({user.id})"
        return str(chat_id)

    def find(self, who: str) -> int:
        """The index of the person named by their number in the list, id or name."""
        who = who.strip()
        if who.isdigit():
            number = int(who)
            if 1 <= number <= len(self.users):
                return number - 1
            for index, user in enumerate(self.users):
                if user.id == number:
                    return index
        for index, user in enumerate(self.users):
            if user.first_name.casefold() == who.casefold():
                return index
        raise ValueError(f"no such person {who!r}; !users lists them")

    def listing(self) -> str:
        return "   ".join(
            f"{n}) {u.first_name} ({u.id}, {u.language_code})"
            + (" <- writing" if n - 1 == self.writing else "")
            for n, u in enumerate(self.users, start=1)
        )


# --------------------------------------------------------------------------- what the bot sent


def buttons_of(markup: JSON | None) -> list[JSON]:
    """The inline buttons under a message, row by row."""
    return [b for row in (markup or {}).get("inline_keyboard", []) for b in row]


def _button_text(number: int, button: JSON) -> str:
    if "callback_data" in button:
        return f"[{number}] {button['text']}"
    if "url" in button:
        return f"[{number}] {button['text']} -> {button['url']}"
    return f"[{number}] {button['text']} (not pressable here)"


def _image_kind(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", "png"
    if data.startswith(b"\xff\xd8"):
        return "JPEG", "jpg"
    return "image", "bin"


def describe(sent: SentMessage, people: People, photo_file: Path | None) -> list[str]:
    """How a message of the bot is shown: who it went to, its text or its photo (size,
    caption and where it was saved), then its buttons by number and label."""
    state = " (deleted)" if sent.deleted else (" (edited)" if sent.edit_count else "")
    head = f"bot #{sent.message_id}{state} -> {people.name_of(sent.chat_id)}:"
    if sent.photo is not None:
        photo = sent.message.get("photo") or [{}]
        width, height = photo[-1].get("width", "?"), photo[-1].get("height", "?")
        kind, _ = _image_kind(sent.photo)
        size = max(1, round(len(sent.photo) / 1024))
        where = f", saved as {photo_file}" if photo_file is not None else ""
        caption = sent.message.get("caption")
        lines = [f"{head} [{kind} photo {width}x{height}, {size} KB{where}]"]
        if caption:
            lines.append(f"    {caption}")
    else:
        lines = [f"{head} {sent.text or ''}"]
    buttons = buttons_of(sent.reply_markup)
    if buttons and not sent.deleted:
        lines.append("    " + "   ".join(_button_text(n, b) for n, b in enumerate(buttons, 1)))
    return lines


def save_photo(sent: SentMessage, folder: Path) -> Path:
    """Write the photo of a bot's message into ``folder`` (mode 0600), named after its chat
    and message."""
    if sent.photo is None:
        raise ValueError("not a photo")
    _, ext = _image_kind(sent.photo)
    path = folder / f"{sent.chat_id}-{sent.message_id}.{ext}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(sent.photo)
    return path


def choose_button(sent: SentMessage, which: str) -> str:
    """The callback data of the button named by its number, its label or its data."""
    pressable = [b for b in buttons_of(sent.reply_markup) if "callback_data" in b]
    for button in pressable:
        if button["callback_data"] == which:
            return str(button["callback_data"])
    numbered = buttons_of(sent.reply_markup)
    if which.isdigit() and 1 <= int(which) <= len(numbered):
        button = numbered[int(which) - 1]
        if "callback_data" not in button:
            raise ValueError(f"button {which} is not one the bot answers")
        return str(button["callback_data"])
    for button in pressable:
        if str(button["text"]).casefold() == which.casefold():
            return str(button["callback_data"])
    raise ValueError(f"message #{sent.message_id} has no button {which!r}")


# --------------------------------------------------------------------------- the terminal


@dataclass
class Terminal:
    """What a line typed does, and how the bot's messages are printed."""

    standin: TelegramStandIn
    people: People
    photos: Path
    say: Callable[[str], None] = print
    _seen: dict[tuple[int, int], tuple[int, bool]] = field(default_factory=dict)
    _saved: dict[tuple[int, int], Path] = field(default_factory=dict)

    def show_new(self) -> None:
        """Print every message of the bot not printed yet, or changed since."""
        for sent in self.standin.sent:
            key = (sent.chat_id, sent.message_id)
            state = (sent.edit_count, sent.deleted)
            if self._seen.get(key) == state:
                continue
            self._seen[key] = state
            if sent.photo is not None and key not in self._saved:
                self._saved[key] = save_photo(sent, self.photos)
            for line in describe(sent, self.people, self._saved.get(key)):
                self.say(line)

    def act(self, line: str) -> None:
        """One typed line; ValueError for one that cannot be sent (nothing was)."""
        command, _, rest = line.partition(" ")
        person = self.people.current
        if command == "!as":
            who, _, text = rest.strip().partition(" ")
            self.people.writing = self.people.find(who)
            self.say(f"writing as {self.people.name_of(self.people.current.id)}")
            if text.strip():
                self.standin.send_text(self.people.current, text.strip())
        elif command == "!users":
            self.say(self.people.listing())
        elif command == "!help":
            self.say(HELP)
        elif command == "!press":
            message_id, _, which = rest.strip().partition(" ")
            match = [
                s
                for s in self.standin.sent
                if s.chat_id == person.id and str(s.message_id) == message_id
            ]
            if not match:
                raise ValueError(f"no message #{message_id} of the bot to {person.first_name}")
            data = choose_button(match[0], which.strip())
            self.standin.press_button(person, match[0].message, data)
        elif command == "!photo":
            name, _, caption = rest.strip().partition(" ")
            try:
                picture = Path(name).expanduser().read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read {name}: {exc.strerror}") from None
            self.standin.send_photo(person, picture, caption=caption.strip() or None)
        elif command == "!fwd":
            origin = origin_hidden_user("Traveller", datetime.now(UTC))
            self.standin.send_forward(person, rest, origin=origin)
        elif command == "!loc":
            lat, _, lon = rest.partition(" ")
            self.standin.send_location(person, float(lat), float(lon))
        elif command.startswith("!"):
            raise ValueError(f"unknown command {command}; !help lists them")
        else:
            self.standin.send_text(person, line)


def default_state_file(port: int) -> Path | None:
    """Where a stand-in on a fixed port keeps its state: the user's state folder
    ($XDG_STATE_HOME, else ~/.local/state), one file per port; none for a free port
    (port 0: there is no same stand-in to start again)."""
    if port == 0:
        return None
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "checkin-intake" / f"standin-{port}.json"


async def _printer(terminal: Terminal, stopping: asyncio.Event) -> None:
    # Stops at ``stopping`` too, not only when cancelled: a printer that went on would
    # keep asyncio.run from ending at Ctrl-C.
    while not stopping.is_set():
        terminal.show_new()
        sys.stdout.flush()
        await terminal.standin.changed(within=1.0)


async def run(args: argparse.Namespace, people: People, state: Path | None, photos: Path) -> None:
    standin = TelegramStandIn(token=args.token, state_file=state)
    for user in people.users:
        standin.user(user.id, user.first_name, language_code=user.language_code)
    await standin.start("127.0.0.1", args.port)
    print(f"base_url:      {standin.base_url}")
    print(f"file_base_url: {standin.file_base_url}")
    print(f"token:         {standin.token}")
    if state is not None:
        print(f"kept in {state}: the token and the ids go on from there after a restart")
    print(f"people: {people.listing()}")
    print(f"the bot's photos are saved in {photos}; !help lists the commands; Ctrl-C stops.")
    sys.stdout.flush()
    terminal = Terminal(standin, people, photos)
    stopping = asyncio.Event()
    printer = asyncio.create_task(_printer(terminal, stopping))
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:  # a daemon thread: a blocked read never delays the exit
        for line in sys.stdin:
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop has closed
                return

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        while True:
            line = (await lines.get()).strip()
            if line:
                try:
                    terminal.act(line)
                except ValueError as exc:
                    print(f"not sent: {exc}", flush=True)
    finally:
        stopping.set()
        printer.cancel()
        await standin.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.standin",
        description="A local Telegram Bot API stand-in to try the bot with.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8081, help="0: a free port (default 8081)")
    parser.add_argument("--token", default=None, help="default: the kept one, else a new one")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="ID[:NAME[:LANGUAGE]]",
        help="a person to play (repeat for several; the first writes first)",
    )
    parser.add_argument("--user-id", type=int, default=1001, help="the one person, without --user")
    parser.add_argument("--language", default="ko", help="the people's language (default ko)")
    parser.add_argument(
        "--state",
        default=None,
        help="the state file (default, for a fixed port: "
        "$XDG_STATE_HOME/checkin-intake/standin-PORT.json)",
    )
    parser.add_argument("--no-state", action="store_true", help="keep nothing across restarts")
    parser.add_argument(
        "--photos", default=None, help="save the bot's photos here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    # Ctrl-C stops it, as its banner says, however it was started: a shell script that
    # starts it in the background starts it with SIGINT ignored, and Python then leaves
    # it ignored (`intake run` handles its signals itself, for the same reason).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        users = [parse_user(u, args.language) for u in args.user] or [
            SimUser(args.user_id, "Demo", args.language)
        ]
        if len({u.id for u in users}) != len(users):
            raise ValueError("--user: each person needs their own id")
    except ValueError as exc:
        parser.error(str(exc))
    state = None if args.no_state else (Path(args.state) if args.state else None)
    if state is None and not args.no_state:
        state = default_state_file(args.port)
    try:
        with contextlib.ExitStack() as stack:
            if state is not None:
                state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if args.photos is not None:
                photos = Path(args.photos)
                photos.mkdir(parents=True, exist_ok=True, mode=0o700)
            else:  # removed at the end: the bot's pictures are not left behind
                photos = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="standin-")))
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(run(args, People(users), state, photos))
    except (ValueError, OSError) as exc:
        # A state file that is not one, a port in use: one line, as the bot's own start does.
        print(f"python -m bot.standin: error: {exc}", file=sys.stderr)
        sys.exit(1)
