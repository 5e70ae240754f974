"""``intake timeline``: a picture of one group's journey (no contents, no key needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import ConfigOption, app, fail, out, run, workspace
from bot.schedules import normalise_codename
from storage.groups import get_group
from storage.timeutil import utc_now


@app.command()
def timeline(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    output: Annotated[
        Path,
        typer.Option("--out", help="The picture to write: FILE.png or FILE.svg.", dir_okay=False),
    ],
    config: ConfigOption = None,
) -> None:
    """Draw the group's check-ins, due windows, legs and statuses over time."""
    from bot.timeline import Format, gather, render

    formats: dict[str, Format] = {".png": "png", ".svg": "svg"}
    fmt = formats.get(output.suffix.lower())
    if fmt is None:
        fail("--out: name a .png or .svg file")

    async def go() -> bytes:
        async with workspace(config) as ws:
            group = await get_group(ws.session, codename=normalise_codename(codename))
            return render(await gather(ws.session, group=group, now=utc_now()), fmt)

    output.write_bytes(run(go()))
    out.print(f"Wrote {output}.")
