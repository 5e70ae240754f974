"""`intake status`: every group's status, as a table or JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import (
    ConfigOption,
    Format,
    FormatOption,
    app,
    iso,
    out,
    print_json,
    run,
    when,
    workspace,
)
from bot.schedules import next_due
from storage.groups import list_groups
from storage.models import Group, Status
from storage.timeutil import utc_now

# --------------------------------------------------------------------------- status


def _due(g: Group) -> datetime | None:
    """The next check-in due, counted from the last check-in or the end of the last pause;
    none while the group is paused, safe or shredded (nothing is due from it then)."""
    if g.shredded_at is not None or g.status in (Status.PAUSED, Status.SAFE):
        return None
    anchors = [t for t in (g.last_checkin_at, g.schedule_from) if t is not None]
    return next_due(g, after=max(anchors)) if anchors else None


def _status_rows(groups: list[Group], now: datetime) -> list[dict[str, Any]]:
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

    async def go() -> list[Group]:
        async with workspace(config) as ws:
            return list(await list_groups(ws.session))

    groups = run(go())
    rows = _status_rows(groups, utc_now())
    if as_json or output is Format.JSON:
        print_json(
            [{k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]
        )
        return
    if not rows:
        out.print("No groups yet. Add one with `intake group add CODENAME`.")
        return
    table = Table("codename", "status", "since", "last check-in", "next due")
    for row, g in zip(rows, groups, strict=True):
        due = "—" if row["next_due"] is None else when(row["next_due"])
        table.add_row(
            g.codename, g.status.value, when(g.status_since), when(g.last_checkin_at), due
        )
    out.print(table)
