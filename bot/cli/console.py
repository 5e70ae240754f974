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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from bot.cli.common import (
    ConfigOption,
    KeyOption,
    app,
    chosen_zone,
    err,
    fail,
    local_audit_path,
    out,
    unlock_operator_key,
)
from bot.config import ConfigError, database_url, load_settings, resolve_config_path
from storage.timeutil import zone_named


@dataclass(frozen=True, slots=True)
class _Where:
    url: str
    secret: bytes | None
    config_dir: Path | None
    display_timezone: str | None  # the installation's [display] timezone, where read


def _where(database: str | None, config: Path | None) -> _Where:
    """The database URL and, with an installation's config, its server secret and folder:
    they key the audit chain (without them, on a copy, acts go to the local audit file
    alone until `intake audit merge`)."""
    if database is not None:
        try:
            return _Where(database_url(database, Path.cwd()), None, None, None)
        except ValueError as exc:
            fail(f"--database: {exc}")
    settings = load_settings(resolve_config_path(config), read_token=False)
    try:
        secret: bytes | None = settings.server_secret_bytes()
    except (ConfigError, OSError):
        secret = None
    return _Where(settings.database.url, secret, settings.config_dir, settings.display.timezone)


def console_zone(tz: str | None, display_timezone: str | None) -> ZoneInfo:
    """The zone every page shows, as every command chooses it: the console's own --tz,
    else ``intake --tz``, else the installation's [display] timezone, else UTC."""
    chosen = chosen_zone()
    if tz is not None:
        name, where = tz, "--tz"
    elif chosen is not None:
        return ZoneInfo(str(chosen))
    elif display_timezone is not None:
        name, where = display_timezone, "[display] timezone"
    else:
        return ZoneInfo("UTC")
    zone = zone_named(name)
    if zone is None:
        fail(f"{where}: unknown time zone {name!r} (use names like UTC or Asia/Seoul)")
    return zone


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
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="The time zone every page shows (else intake --tz, else [display] timezone).",
            show_default=False,
        ),
    ] = None,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the browser when there is one.")
    ] = True,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Open the operator's console in a browser (on this machine only; needs neither the
    bot token nor the server secret). Prints a login URL that works once."""
    where = _where(database, config)
    zone = console_zone(tz, where.display_timezone)
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
                where.url,
                private_key,
                secret=where.secret,
                config_dir=where.config_dir,
                local_audit=local_audit_path(key),
                tz=zone,
                port=port,
                idle_seconds=idle * 60,
                on_ready=ready,
                signals=(signal.SIGHUP, signal.SIGTERM, signal.SIGINT),
            )
        )
    out.print("The console has stopped; the key is forgotten.")
