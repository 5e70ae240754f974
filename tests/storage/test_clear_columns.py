"""Every column the database keeps in clear is named in docs/security.md: a new clear
column (a new fact a thief reads from a copy) fails here until the page says so."""

from __future__ import annotations

import re
from pathlib import Path

import storage.models  # noqa: F401 (registers every table)
from storage.models import metadata

PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
# Columns whose values are ciphertexts, keyed one-way values or wrapped keys.
PROTECTED = re.compile(r".*_sealed$|.*_index$|.*_digest$|^wrapped$")


def documented() -> dict[str, set[str]]:
    text = PAGE.read_text()
    section = text.split("## Every column kept in clear", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`\w+`", cells[0]):
            found[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[1]))
    return found


def clear_columns() -> dict[str, set[str]]:
    return {
        table.name: {c.name for c in table.columns if not PROTECTED.fullmatch(c.name)}
        for table in metadata.sorted_tables
    }


def test_every_clear_column_is_named_in_the_security_page() -> None:
    listed = documented()
    missing = {
        f"{table}.{column}"
        for table, columns in clear_columns().items()
        for column in columns - listed.get(table, set())
    }
    assert not missing, f"clear columns docs/security.md does not name: {sorted(missing)}"


def test_the_security_page_names_no_column_that_is_gone() -> None:
    actual = clear_columns()
    stale = {
        f"{table}.{column}"
        for table, columns in documented().items()
        for column in columns - actual.get(table, set())
    }
    assert not stale, f"docs/security.md names columns the schema no longer has: {sorted(stale)}"


def test_the_readable_facts_the_issue_found_are_listed() -> None:
    listed = documented()
    assert "possible_detention" in listed["messages"]
    assert "language" in listed["people"]
