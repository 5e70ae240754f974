"""The ``intake`` command-line tool.

Each command is thin: read the settings once, open the database in one place,
call a data function from ``storage``, print. Every mistake a user can make
ends in one line on stderr and exit status 1 (2 for wrong usage), never a
traceback. ``common`` holds what the commands share; each other module here
adds its own commands to ``common.app``.

Loading is lazy, by hand (typer has no lazy groups): ``COMMANDS`` names, for each
top-level command, the modules that define it and the line ``intake --help`` shows.
``main`` imports only the modules of the command on its command line, so `intake
status` never loads matplotlib, python-telegram-bot or the inbox's crypto; `intake`
and `intake --help` load no command module at all and list ``COMMANDS``.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["COMMANDS", "load_all", "main"]

# name: (the modules defining it and its sub-commands, the start of its help), in the
# order `intake --help` lists them. tests/bot/test_cli_layout.py checks both against the
# loaded commands.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "init": (("setup",), "Set up a new installation"),
    "keygen": (("setup",), "Make an operator key pair"),
    "doctor": (("doctor",), "Check the installation"),
    "run": (("run",), "Run the bot"),
    "status": (("status",), "Every group's status"),
    "group": (("groups", "shred", "acts"), "Travel groups"),
    "operator": (("operators",), "Operators"),
    "member": (("members",), "Travellers in a group"),
    "codebook": (("codebook",), "Agreed phrases"),
    "invite": (("invites",), "Make a one-time invite code"),
    "people": (("people",), "People who hold a role"),
    "role": (("people",), "Roles: revoke one at once"),
    "inbox": (("inbox",), "The sealed inbox"),
    "console": (("console",), "Open the operator's console in a browser"),
    "timeline": (("timeline",), "Draw the group's check-ins"),
    "audit": (("audit",), "The audit trail"),
    "retention": (("shred",), "How long contents are kept"),
    "demo": (("demo",), "Play the seed article's story"),
}

# Typer's shell completion runs the program with this variable set.
_COMPLETION_ENV = "_INTAKE_COMPLETE"


def command_word(args: Sequence[str]) -> str | None:
    """The top-level command named on the command line (the first word that is not an
    option, nor the value of the root's --tz), or None (`intake`, `intake --help`)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--tz":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def load(word: str | None) -> None:
    """Import the modules that define ``word``; for no known word, every command's
    line for the help screen (and for completion, every module)."""
    if os.environ.get(_COMPLETION_ENV):
        load_all()
        return
    if word in COMMANDS:
        for module in COMMANDS[word][0]:
            importlib.import_module(f"bot.cli.{module}")
        return
    from bot.cli.common import app

    registered = {info.name for info in app.registered_groups}
    for name, (_, line) in COMMANDS.items():
        if name not in registered:
            app.command(name, help=f"{line}.")(_not_loaded)


def load_all() -> None:
    """Every command, as the documentation tests and completion see them."""
    for module in sorted({m for ms, _ in COMMANDS.values() for m in ms}):
        importlib.import_module(f"bot.cli.{module}")


def __getattr__(name: str) -> object:
    # `from bot.cli import app`: the whole command line, every module loaded.
    if name == "app":
        load_all()
        from bot.cli.common import app

        return app
    raise AttributeError(name)


def _not_loaded() -> None:  # pragma: no cover (only listed, never run)
    raise AssertionError("listed for --help only")


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


def main() -> None:
    # Typer (standalone) answers wrong usage itself, with exit status 2; the
    # mistakes found while running arrive here and become one line.
    os.umask(0o077)  # the database, key files and exports are for this user alone
    plain, config = _plain_run(sys.argv[1:])
    if plain:
        # The long-lived bot: no typer, rich or matplotlib in its memory. Its imports
        # (over 100,000 lasting objects, next to no garbage) run without the cyclic
        # collector, which would walk them again and again: about 8% of their time.
        # bot.startup.loaded enables it again once everything is imported.
        gc.disable()
        try:
            from bot.startup import run_from_command_line

            run_from_command_line(config)
        finally:
            gc.enable()  # a start-up that failed (or a caller in this process) gets it back
        return
    load(command_word(sys.argv[1:]))
    from bot.cli.common import UsageError, app, err, is_user_error

    try:
        app(prog_name="intake")  # also under `python -m bot.cli`: one completion variable
    except UsageError as exc:
        err.print(f"intake: error: {exc}")
        sys.exit(2)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        err.print(f"intake: error: {exc}")
        sys.exit(1)
