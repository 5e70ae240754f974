"""The end-of-run plaintext scan (tests/hygiene.py) finds what it looks for."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hygiene import scan


@pytest.fixture
def folder() -> Iterator[Path]:
    """Outside pytest's temporary folder, which the end-of-run scan reads: the canaries
    planted here are meant to be found by this test alone."""
    with tempfile.TemporaryDirectory(prefix="hygiene-") as name:
        yield Path(name)


def test_a_canary_in_a_database_or_a_log_is_found_and_plain_exports_are_not_read(
    folder: Path,
) -> None:
    with sqlite3.connect(folder / "intake.db") as db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES ('clear canary-text-Zq1')")
    (folder / "bot-output.log").write_text("update 5: CNRY123456\n")
    (folder / "export.jsonl").write_text("canary-export-on-purpose\n")  # --plaintext
    done, found = scan(temporary=folder, postgres_data=None, since=time.time())
    assert {f.path.name for f in found} == {"intake.db", "bot-output.log"}
    assert done.files == 2
    assert "PostgreSQL" in done.skipped


def test_collation_names_are_not_canaries(folder: Path) -> None:
    (folder / "catalogue.db").write_bytes(b"\x00Spanish (Canary Islands)\x00")
    assert scan(temporary=folder, postgres_data=None, since=time.time())[1] == []
