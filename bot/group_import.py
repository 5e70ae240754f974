"""Reading many groups at once from a CSV or TOML file (``intake group import``).

CSV: a header row naming columns among ``codename, interval, cron, tz, grace,
detained_after``; empty cells take the configured defaults. TOML: one
``[[group]]`` table per group with the same keys.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bot.durations import parse_duration
from bot.schedules import BadSchedule, make_schedule, normalise_codename
from storage.groups import Schedule

COLUMNS = ("codename", "interval", "cron", "tz", "grace", "detained_after")


class ImportFileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GroupSpec:
    codename: str
    schedule: Schedule


@dataclass(frozen=True, slots=True)
class Defaults:
    interval: timedelta
    grace: timedelta
    detained_after: timedelta


def _rows(path: Path) -> Iterator[tuple[str, Mapping[str, object]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a byte-order mark
    except OSError as exc:
        raise ImportFileError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() == ".toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ImportFileError(f"{path}: not valid TOML: {exc}") from None
        unknown = set(doc) - {"group"}
        if unknown or not isinstance(doc.get("group"), list):
            raise ImportFileError(f"{path}: expected [[group]] tables and nothing else")
        for number, table in enumerate(doc["group"], start=1):
            if not isinstance(table, dict):
                raise ImportFileError(f"{path}: group {number} is not a [[group]] table")
            yield f"{path}: group {number}", table
        return
    if path.suffix.lower() != ".csv":
        raise ImportFileError(f"{path}: name a .csv or .toml file")
    reader = csv.DictReader(io.StringIO(text), restkey="(cells beyond the header)")
    unknown = set(reader.fieldnames or ()) - set(COLUMNS)
    if unknown:
        raise ImportFileError(
            f"{path}: unknown column {sorted(unknown)[0]!r}; the columns are {', '.join(COLUMNS)}"
        )
    for row in reader:
        yield f"{path}: line {reader.line_num}", {k: v for k, v in row.items() if v}


def _duration(where: str, key: str, value: object, default: timedelta | None) -> timedelta | None:
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ImportFileError(f"{where}: {key} must be a duration like 24h")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ImportFileError(f"{where}: {key}: {exc}") from None


def read_groups(path: Path, *, defaults: Defaults) -> list[GroupSpec]:
    """Every group in the file, checked; the first mistake stops the import."""
    specs: list[GroupSpec] = []
    seen: set[str] = set()
    for where, row in _rows(path):
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ImportFileError(
                f"{where}: unknown key {sorted(unknown)[0]!r}; the keys are {', '.join(COLUMNS)}"
            )
        raw_codename = row.get("codename")
        if not isinstance(raw_codename, str):
            raise ImportFileError(f"{where}: codename is missing")
        cron, tz = row.get("cron"), row.get("tz")
        if (cron is not None and not isinstance(cron, str)) or (
            tz is not None and not isinstance(tz, str)
        ):
            raise ImportFileError(f"{where}: cron and tz must be text")
        try:
            codename = normalise_codename(raw_codename)
            interval = _duration(where, "interval", row.get("interval"), None)
            schedule = make_schedule(
                interval=interval if interval or cron else defaults.interval,
                cron=cron,
                tz=tz,
                grace=_duration(where, "grace", row.get("grace"), defaults.grace) or defaults.grace,
                detained_after=_duration(
                    where, "detained_after", row.get("detained_after"), defaults.detained_after
                )
                or defaults.detained_after,
            )
        except BadSchedule as exc:
            raise ImportFileError(f"{where}: {exc}") from None
        if codename in seen:
            raise ImportFileError(f"{where}: {codename} appears twice in the file")
        seen.add(codename)
        specs.append(GroupSpec(codename=codename, schedule=schedule))
    if not specs:
        raise ImportFileError(f"{path}: no groups in the file")
    return specs
