"""The ``intake`` command-line tool.

Each command is thin: read the settings once, open the database in one place,
call a data function from ``storage``, print. Every mistake a user can make
ends in one line on stderr and exit status 1 (2 for wrong usage), never a
traceback. ``common`` holds what the commands share; each other module here
adds its own commands to ``common.app``.

``intake run`` (the long-lived bot) takes a path of its own that loads none of
the other commands: no typer, rich or matplotlib in the bot's memory.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["app", "main"]
_COMMANDS = (
    "audit",
    "codebook",
    "demo",
    "groups",
    "inbox",
    "invites",
    "members",
    "operators",
    "run",
    "setup",
    "shred",
    "status",
    "timeline",
)


def _commands() -> Any:
    """The typer app with every command registered (each module adds its own)."""
    for name in _COMMANDS:
        importlib.import_module(f"bot.cli.{name}")
    from bot.cli.common import app

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _commands()
    raise AttributeError(name)


# --------------------------------------------------------------------------- entry point


def _plain_run(argv: list[str]) -> tuple[bool, Path | None]:
    """Whether ``argv`` is a plain ``run [--config PATH]``, and the path. Anything
    else (help, a mistake) is typer's to answer."""
    if argv == ["run"]:
        return True, None
    if len(argv) == 3 and argv[:2] == ["run", "--config"] and argv[2]:
        return True, Path(argv[2])
    if len(argv) == 2 and argv[0] == "run" and argv[1].startswith("--config="):
        path = argv[1].removeprefix("--config=")
        return bool(path), Path(path) if path else None
    return False, None


def _run_light(config: Path | None) -> None:
    from bot import app as bot_app
    from bot import logs
    from bot.config import ConfigError, load_settings, resolve_config_path
    from storage.db import DatabaseError
    from storage.sealing import NoRecipients

    try:
        settings = load_settings(resolve_config_path(config))
        settings.require_token()
        logs.configure(settings.logging.level)
        bot_app.run_forever(settings)
    except (ConfigError, DatabaseError, NoRecipients) as exc:
        print(f"intake: error: {exc}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    # Typer (standalone) answers wrong usage itself, with exit status 2; the
    # mistakes found while running arrive here and become one line.
    os.umask(0o077)  # the database, key files and exports are for this user alone
    plain, config = _plain_run(sys.argv[1:])
    if plain:
        _run_light(config)
        return
    from bot.cli.common import USER_ERRORS, UsageError, err

    app = _commands()
    try:
        app()
    except UsageError as exc:
        err.print(f"intake: error: {exc}")
        sys.exit(2)
    except USER_ERRORS as exc:
        err.print(f"intake: error: {exc}")
        sys.exit(1)
