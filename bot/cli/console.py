"""``intake console``: the sealed inbox, the groups and the audit trail in a browser,
served from the operator's own machine on 127.0.0.1 with the key unlocked in memory.

Thin on purpose: the web application lives in ``bot.console``, imported only when
this command runs, so that every other command starts without a web framework."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import (
    ConfigOption,
    KeyOption,
    app,
    err,
    fail,
    local_audit_path,
    out,
    unlock_operator_key,
)
from bot.config import ConfigError, database_url, load_settings, resolve_config_path
from storage.timeutil import zone_named


def _where(database: str | None, config: Path | None) -> tuple[str, bytes | None, Path | None]:
    """The database URL and, with an installation's config, its server secret and folder:
    they key the audit chain (without them, on a copy, acts go to the local audit file
    alone until `intake audit merge`)."""
    if database is not None:
        try:
            return database_url(database, Path.cwd()), None, None
        except ValueError as exc:
            fail(f"--database: {exc}")
    settings = load_settings(resolve_config_path(config), read_token=False)
    try:
        secret: bytes | None = settings.server_secret_bytes()
    except (ConfigError, OSError):
        secret = None
    return settings.database.url, secret, settings.config_dir


def _can_open_browser() -> bool:
    # Never a text browser in this very terminal: only where there is a screen.
    graphical = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return graphical or sys.platform in ("darwin", "win32")


@app.command()
def console(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="A database URL (sqlite:///COPY.db, or postgresql://… over an SSH tunnel); "
            "else the config file's.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="The port (0: any free one).")
    ] = 0,
    idle: Annotated[
        float, typer.Option("--idle", min=0.01, help="Minutes without a request before it stops.")
    ] = 30,
    tz: Annotated[str, typer.Option("--tz", help="The time zone every page shows.")] = "UTC",
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the browser when there is one.")
    ] = True,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Open the operator's console in a browser (on this machine only; needs neither the
    bot token nor the server secret). Prints a login URL that works once."""
    zone = zone_named(tz)
    if zone is None:
        fail(f"--tz: unknown time zone {tz!r} (use names like UTC or Asia/Seoul)")
    url, secret, config_dir = _where(database, config)
    private_key = unlock_operator_key(key)  # asked once, before anything is served

    from bot.console.serve import run_console

    def ready(login: str) -> None:
        out.print(f"The console is open on this machine: {login}")
        out.print(
            "The link works once, in one browser. The console stops, forgetting the key, "
            f"after {idle:g} minutes without a request, when this terminal closes, or on Ctrl-C."
        )
        if browser and _can_open_browser():
            try:
                webbrowser.open(login)
            except webbrowser.Error:
                err.print("could not open a browser: open the link yourself")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_console(
                url,
                private_key,
                secret=secret,
                config_dir=config_dir,
                local_audit=local_audit_path(key),
                tz=zone,
                port=port,
                idle_seconds=idle * 60,
                on_ready=ready,
                signals=(signal.SIGHUP, signal.SIGTERM, signal.SIGINT),
            )
        )
    out.print("The console has stopped; the key is forgotten.")
