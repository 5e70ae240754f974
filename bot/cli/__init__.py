"""The ``intake`` command-line tool.

Each command is thin: read the settings once, open the database in one place,
call a data function from ``storage``, print. Every mistake a user can make
ends in one line on stderr and exit status 1 (2 for wrong usage), never a
traceback. ``common`` holds what the commands share; each other module here
adds its own commands to ``common.app``.
"""

from __future__ import annotations

import os
import sys

from bot.cli import (  # noqa: F401 (register their commands)
    audit,
    codebook,
    console,
    demo,
    groups,
    inbox,
    invites,
    members,
    operators,
    run,
    setup,
    shred,
    status,
    timeline,
)
from bot.cli.common import USER_ERRORS, UsageError, app, err

__all__ = ["app", "main"]


# --------------------------------------------------------------------------- entry point


def main() -> None:
    # Typer (standalone) answers wrong usage itself, with exit status 2; the
    # mistakes found while running arrive here and become one line.
    os.umask(0o077)  # the database, key files and exports are for this user alone
    try:
        app()
    except UsageError as exc:
        err.print(f"intake: error: {exc}")
        sys.exit(2)
    except USER_ERRORS as exc:
        err.print(f"intake: error: {exc}")
        sys.exit(1)
