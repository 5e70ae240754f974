"""Plaintext hygiene, after the whole run (issue 8): no canary in any database file,
journal, WAL or log the tests made.

Tests write canaries into everything a person could type: ``CNRY`` and six digits in the
fuzz (tests/bot/fuzz_updates.py), and words with ``canary`` in the others (texts, notes,
file names and contents, sender and origin names). All of it must reach the database
sealed, and no log line may carry it. When the session ends, ``scan`` reads, byte by
byte:

- every SQLite database, rollback journal, WAL and shared-memory file, and every log
  file, under pytest's temporary folder (the demo's among them: tests/bot/test_demo.py
  runs it there);
- when the PostgreSQL server the tests used is on this machine and readable: every file
  of its data directory written during the run (the tests' databases are dropped, but
  their pages and the WAL segments that carried them stay), and its server log.

What the tests write in clear on purpose (``inbox export --plaintext``, attachments an
operator saves with ``inbox read --out``, configuration files) is not a database, a
journal or a log, and is not read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# A canary word runs straight on ("canary-note", "canary_user", "CanaryName", "CANARYzq9"):
# PostgreSQL's own catalogue names a collation "Spanish (Canary Islands)".
CANARY = re.compile(rb"(?i)cnry\d{6}|canary[-_.:a-z0-9]")
_DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3", "-wal", "-shm", "-journal", ".log")
_PG_LOGS = Path("/var/log/postgresql")


@dataclass(frozen=True)
class Found:
    path: Path
    offset: int
    excerpt: bytes


@dataclass
class Scan:
    files: int = 0
    size: int = 0
    skipped: str = ""


def _ours(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(_DATABASE_SUFFIXES) or "log" in name


def _files_since(root: Path, since: float) -> Iterator[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            try:
                if path.is_file() and path.stat().st_mtime >= since:
                    yield path
            except OSError:
                continue  # a file PostgreSQL removed while we walked


def _search(path: Path, scan: Scan, found: list[Found]) -> None:
    try:
        data = path.read_bytes()
    except OSError:
        return
    scan.files += 1
    scan.size += len(data)
    match = CANARY.search(data)
    if match is not None:
        start = max(0, match.start() - 20)
        found.append(Found(path, match.start(), data[start : match.end() + 20]))


def scan(*, temporary: Path, postgres_data: Path | None, since: float) -> tuple[Scan, list[Found]]:
    scan, found = Scan(), list[Found]()
    for path in _files_since(temporary, 0):
        if _ours(path):
            _search(path, scan, found)
    if postgres_data is None:
        scan.skipped = "PostgreSQL not used, or not on this machine"
    elif not os.access(postgres_data, os.R_OK | os.X_OK):
        scan.skipped = f"PostgreSQL's data directory {postgres_data} is not readable"
    else:
        for path in _files_since(postgres_data, since):
            _search(path, scan, found)
        if _PG_LOGS.is_dir():
            for path in _files_since(_PG_LOGS, since):
                _search(path, scan, found)
    return scan, found
