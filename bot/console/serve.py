"""Running the console: the database opened once, the key checked against it, the
server on 127.0.0.1 until the idle clock, a signal or a logout stops it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from bot.console.app import Console, serve
from storage.crypto import PrivateKey
from storage.db import open_database, session_factory
from storage.sealing import Keyring


async def run_console(
    url: str,
    private_key: PrivateKey,
    *,
    tz: ZoneInfo,
    port: int,
    idle_seconds: float,
    on_ready: Callable[[str], None],
    signals: Sequence[signal.Signals] = (),
) -> None:
    async with open_database(url) as engine:
        async with session_factory(engine)() as session:
            await Keyring.for_key(session, private_key)  # a key of this database, or one line
        console = Console(
            engine=engine, private_key=private_key, tz=tz, idle_seconds=idle_seconds, port=port
        )
        loop = asyncio.get_running_loop()
        for number in signals:
            # SIGHUP: the terminal that started it closed; the key goes with it.
            loop.add_signal_handler(number, console.drop_key)
        try:
            await serve(console, on_ready=on_ready)
        finally:
            for number in signals:
                loop.remove_signal_handler(number)
