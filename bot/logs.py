"""Logging that cannot leak: promise 5 (no message text, no identifier, no token).

Our own log lines are written to carry none of them. Libraries' lines are not
ours to trust (python-telegram-bot logs whole updates when something goes
wrong, and httpx logs request URLs, which carry the bot token), so a record
from any other logger is reduced to its logger name and level.
"""

from __future__ import annotations

import logging
import sys

OWN = ("bot", "storage", "__main__")
QUIET = (
    "telegram",
    "httpx",
    "httpcore",
    "apscheduler",
    "aiohttp",
    "aiosqlite",
    "asyncpg",
    "asyncio",
    "alembic",
)


# python-telegram-bot logs CRITICAL (with the whole batch) when one update of a
# getUpdates batch does not parse; bot.app then reads that batch one update at a
# time and confirms the bad one with its own line, so it is no longer critical.
_HANDLED_BY_THE_BOT = ("telegram.ext.ExtBot", "Error while parsing updates")


class WithholdLibraryDetails(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if (record.name, str(record.msg)[: len(_HANDLED_BY_THE_BOT[1])]) == _HANDLED_BY_THE_BOT:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        if not record.name.startswith(OWN):
            record.msg = "%s: a %s from a library (details withheld)"
            record.args = (record.name, record.levelname.lower())
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WithholdLibraryDetails())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    # The engine's and the sender's jobs are set to skip a run while the last
    # one is still busy (a slow send); APScheduler warns at each skip.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
