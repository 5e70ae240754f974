"""Running the console: the database opened once, the key checked against it, the
server on 127.0.0.1 until the idle clock, a signal or a logout stops it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.console.app import Console, serve
from storage.crypto import PrivateKey
from storage.db import open_database, session_factory
from storage.sealing import Keyring
from storage.trust import bind_installation


async def run_console(
    url: str,
    private_key: PrivateKey,
    *,
    secret: bytes | None,
    config_dir: Path | None,
    local_audit: Path,
    tz: ZoneInfo,
    port: int,
    idle_seconds: float,
    on_ready: Callable[[str], None],
    signals: Sequence[signal.Signals] = (),
) -> None:
    async with open_database(url, must_exist=True) as engine:
        if secret is not None and config_dir is not None:
            # The installation's own secret: reads and acts go into its keyed audit chain
            # (and into the local file beside the key, as always).
            bind_installation(engine, secret=secret, config_dir=config_dir)
        async with session_factory(engine)() as session:
            await Keyring.for_key(session, private_key)  # a key of this database, or one line
        console = Console(
            engine=engine,
            private_key=private_key,
            tz=tz,
            idle_seconds=idle_seconds,
            port=port,
            local_audit=local_audit,
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
