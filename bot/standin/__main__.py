"""Run the Telegram stand-in by hand: ``python -m bot.standin --port 8081``.

It prints the URLs and the token to give the bot (``telegram.base_url`` …). Each line typed on
standard input is sent to the bot as a text message from one demo user; the bot's messages
are printed. ``!press MESSAGE_ID DATA`` presses an inline button, ``!fwd TEXT`` forwards a
text from a hidden sender dated now, ``!loc LAT LON`` shares a location. Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from datetime import UTC, datetime

from .server import SentMessage, TelegramStandIn
from .shapes import SimUser, origin_hidden_user


def _show(sent: SentMessage) -> str:
    state = " (deleted)" if sent.deleted else (" (edited)" if sent.edit_count else "")
    buttons = "".join(f" [{data}]" for data in sent.callback_data)
    return f"bot #{sent.message_id}{state}: {sent.text}{buttons}"


async def _printer(standin: TelegramStandIn) -> None:
    seen: dict[tuple[int, int], tuple[int, bool]] = {}
    while True:
        for sent in standin.sent:
            state = (sent.edit_count, sent.deleted)
            if seen.get((sent.chat_id, sent.message_id)) != state:
                seen[(sent.chat_id, sent.message_id)] = state
                print(_show(sent), flush=True)
        await standin.changed(within=1.0)


def _act(standin: TelegramStandIn, person: SimUser, line: str) -> None:
    command, _, rest = line.partition(" ")
    if command == "!press":
        message_id, _, data = rest.partition(" ")
        match = [
            s for s in standin.sent if s.chat_id == person.id and str(s.message_id) == message_id
        ]
        if not match:
            print("no such bot message", flush=True)
            return
        standin.press_button(person, match[0].message, data)
    elif command == "!fwd":
        origin = origin_hidden_user("Traveller", datetime.now(UTC))
        standin.send_forward(person, rest, origin=origin)
    elif command == "!loc":
        lat, _, lon = rest.partition(" ")
        standin.send_location(person, float(lat), float(lon))
    else:
        standin.send_text(person, line)


async def _main(args: argparse.Namespace) -> None:
    standin = TelegramStandIn(token=args.token) if args.token else TelegramStandIn()
    await standin.start("127.0.0.1", args.port)
    person = standin.user(args.user_id, "Demo", language_code=args.language)
    print(f"base_url:      {standin.base_url}")
    print(f"file_base_url: {standin.file_base_url}")
    print(f"token:         {standin.token}")
    print(f"Lines you type are sent as user {person.id}; Ctrl-C stops.", flush=True)
    printer = asyncio.create_task(_printer(standin))
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
                    _act(standin, person, line)
                except ValueError as exc:
                    print(f"not sent: {exc}", flush=True)
    finally:
        printer.cancel()
        await standin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.standin", description=__doc__)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=None, help="default: a fresh random token")
    parser.add_argument("--user-id", type=int, default=1001)
    parser.add_argument("--language", default="ko")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
