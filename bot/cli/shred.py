"""``intake group shred`` and ``intake retention run``: contents go, the timeline stays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    app,
    err,
    fail,
    group_app,
    out,
    run,
    workspace,
)
from bot.config import load_settings, resolve_config_path
from bot.schedules import normalise_codename
from storage import audit
from storage.db import open_database, reclaim_deleted
from storage.groups import SHREDDED_TABLES, get_group, shred_group
from storage.retention import apply_retention
from storage.timeutil import utc_now

retention_app = typer.Typer(help="How long contents are kept.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@group_app.command("shred")
def group_shred(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    confirm: Annotated[
        str | None,
        typer.Option("--yes-i-mean", help="The codename again, for scripts (else it is asked)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Destroy a group's key and every sealed row of it; its status timeline stays."""
    name = normalise_codename(codename)
    again = confirm if confirm is not None else typer.prompt(f"Type {name} again to shred it")
    if normalise_codename(again) != name:
        fail("the codenames differ: nothing was shredded")

    async def go() -> None:
        with Progress(console=err.rich, transient=True) as progress:
            task = progress.add_task(f"shredding {name}", total=1 + len(SHREDDED_TABLES))
            async with workspace(config) as ws:
                now = utc_now()
                group = await get_group(ws.session, codename=name)
                await shred_group(ws.session, group=group, now=now)
                await audit.append(
                    ws.session, actor=ADMIN_ACTOR, action="group.shred", subject=name, at=now
                )
            progress.advance(task)  # committed: the key and the sealed rows are gone
            await _reclaim(config, progress, task)

    run(go())
    out.print(f"{name} is shredded: its contents are gone; its status timeline remains.")


@retention_app.command("run")
def retention_run(config: ConfigOption = None) -> None:
    """Shred the contents of groups SAFE for longer than [retention] after_safe."""

    async def go() -> list[str]:
        with Progress(console=err.rich, transient=True) as progress:
            task = progress.add_task("shredding what is due", total=1 + len(SHREDDED_TABLES))
            async with workspace(config) as ws:
                done = await apply_retention(
                    ws.session,
                    now=utc_now(),
                    after_safe=ws.settings.retention.after_safe,
                    actor=ADMIN_ACTOR,
                )
            progress.advance(task)
            if done:
                await _reclaim(config, progress, task)
        return done

    done = run(go())
    out.print(f"Shredded {', '.join(done)}." if done else "Nothing is due for shredding.")


async def _reclaim(config: Path | None, progress: Progress, task: TaskID) -> None:
    """After the commit: PostgreSQL keeps deleted rows in its files until rewritten
    (a table at a time, which is what takes long on a big database)."""
    settings = load_settings(resolve_config_path(config), read_token=False)
    async with open_database(
        settings.database.url, migrate_to_head=False, must_exist=True
    ) as engine:
        await reclaim_deleted(
            engine, tables=SHREDDED_TABLES, on_table=lambda _: progress.advance(task)
        )
