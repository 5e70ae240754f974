"""A glance at every group's status, read from a SQLite file with the standard library alone.

`intake status` is what an admin types most, and SQLAlchemy and the table
models take most of a second to import (issue #16 asks for status within 0.5 s). The
statuses are clear columns of one table (docs/security.md), so this reads them with
``sqlite3``, read-only, without a write lock. Whenever the glance cannot answer
exactly as the full path would, it answers None and the caller takes the full path
(``storage.db.open_database``), which migrates an old database or reports the error in
its own words: a PostgreSQL database, a URL with options, a database not at the newest
revision (or whose newest revision the migration files do not say clearly), a file
that is missing or is not a database.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from storage.vocabulary import ScheduleKind, Status

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision(?:: [^=]+)? = "([^"]+)"', re.MULTILINE)
_SQLITE_PREFIX = "sqlite+aiosqlite:///"  # as bot.config normalises every SQLite URL


def head_from_files() -> str | None:
    """The newest revision, read from the migration files without alembic: the one
    revision no other revises. None if that is not one clear answer (alembic decides)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        if revision is None:
            return None
        revisions.add(revision[1])
        revised.update(m[1] for m in _DOWN_REVISION.finditer(text))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


@dataclass(frozen=True, slots=True)
class GroupGlance:
    """What status shows of a group, and what its next deadline is computed from
    (``bot.schedules.next_due`` takes this as it takes a ``storage.models.Group``)."""

    codename: str
    schedule_kind: ScheduleKind
    interval_s: int | None
    cron: str | None
    tz: str | None
    status: Status
    status_since: datetime
    status_basis: str | None
    last_checkin_at: datetime | None
    schedule_from: datetime | None
    shredded_at: datetime | None


_COLUMNS = (
    "codename, schedule_kind, interval_s, cron, tz, status, status_since, status_basis, "
    "last_checkin_at, schedule_from, shredded_at"
)


def sqlite_path(url: str) -> Path | None:
    """The file of a plain SQLite URL (as bot.config normalises them); None for
    anything else: PostgreSQL, memory, query options, or characters a URL escapes."""
    if not url.startswith(_SQLITE_PREFIX):
        return None
    location = url.removeprefix(_SQLITE_PREFIX)
    if not location.startswith("/") or any(c in location for c in "?#%"):
        return None
    return Path(location)


def _moment(value: object) -> datetime | None:
    # Stored by SQLAlchemy's SQLite DATETIME as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC;
    # read back as storage.sqltypes.UTCDateTime does: aware, in UTC.
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not a stored time")
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _required(value: object) -> datetime:
    moment = _moment(value)
    if moment is None:
        raise ValueError("a required time is missing")
    return moment


def glance_groups(url: str) -> list[GroupGlance] | None:
    """Every group, by codename, as ``storage.groups.list_groups`` gives them; None
    when only the full path can answer (see the module's docstring)."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    head = head_from_files()
    if head is None:
        return None
    try:
        # mode=ro: never creates the file nor takes a write lock; the timeout is the
        # busy wait the full path's engine has while the bot commits.
        with contextlib.closing(
            sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
        ) as db:
            stored = db.execute("SELECT version_num FROM alembic_version").fetchall()
            if stored != [(head,)]:
                return None
            rows = db.execute(f"SELECT {_COLUMNS} FROM groups ORDER BY codename").fetchall()  # noqa: S608 (constant columns)
        return [
            GroupGlance(
                codename=str(row[0]),
                schedule_kind=ScheduleKind(row[1]),
                interval_s=row[2],
                cron=row[3],
                tz=row[4],
                status=Status(row[5]),
                status_since=_required(row[6]),
                status_basis=row[7],
                last_checkin_at=_moment(row[8]),
                schedule_from=_moment(row[9]),
                shredded_at=_moment(row[10]),
            )
            for row in rows
        ]
    except (sqlite3.Error, ValueError):
        return None
