"""`intake status`: every group's status, as a table or JSON.

The command an admin types most, so it starts quickly (issue #16): on a SQLite
installation at the newest revision it reads the statuses with ``sqlite3``
(``storage.glance``) and loads no SQLAlchemy; anything else
(PostgreSQL, a database to migrate, an error to report) takes the full path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import (
    ConfigOption,
    Format,
    FormatOption,
    app,
    iso,
    out,
    prepare,
    print_json,
    run,
    when,
    workspace,
)
from bot.schedules import next_due
from storage.glance import GroupGlance, glance_groups
from storage.timeutil import utc_now
from storage.vocabulary import Status

if TYPE_CHECKING:
    from storage.models import Group

    Shown = Group | GroupGlance

# --------------------------------------------------------------------------- status


def _due(g: Shown) -> datetime | None:
    """The next check-in due, counted from the last check-in or the end of the last pause;
    none while the group is paused, safe or shredded (nothing is due from it then)."""
    if g.shredded_at is not None or g.status in (Status.PAUSED, Status.SAFE):
        return None
    anchors = [t for t in (g.last_checkin_at, g.schedule_from) if t is not None]
    return next_due(g, after=max(anchors)) if anchors else None


def _status_rows(groups: Sequence[Shown], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for g in groups:
        due = _due(g)
        rows.append(
            {
                "codename": g.codename,
                "status": g.status.value,
                "status_since": g.status_since,
                "basis": g.status_basis,
                "last_checkin": g.last_checkin_at,
                "next_due": due,
                "overdue": due is not None and due < now,
            }
        )
    return rows


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    output: FormatOption = Format.TABLE,
    config: ConfigOption = None,
) -> None:
    """Every group's status, last check-in and next due time."""

    groups = _groups(config)
    rows = _status_rows(groups, utc_now())
    if as_json or output is Format.JSON:
        print_json(
            [{k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]
        )
        return
    if not rows:
        out.print("No groups yet. Add one with `intake group add CODENAME`.")
        return
    from rich.table import Table

    table = Table("codename", "status", "since", "last check-in", "next due")
    for row, g in zip(rows, groups, strict=True):
        due = "—" if row["next_due"] is None else when(row["next_due"])
        table.add_row(
            g.codename, g.status.value, when(g.status_since), when(g.last_checkin_at), due
        )
    out.print(table)


def _groups(config: Path | None) -> Sequence[Shown]:
    """Every group by codename: glanced at when it can be, else through ``workspace``
    (after the same settings, secret and signers checks either way)."""
    prepared = prepare(config)
    glanced = glance_groups(prepared.settings.database.url)
    if glanced is not None:
        return glanced

    async def go() -> list[Group]:
        from storage.groups import list_groups

        async with workspace(config, prepared) as ws:
            return list(await list_groups(ws.session))

    return run(go())
