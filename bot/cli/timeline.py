"""``intake timeline``: a picture of one group's journey (no contents, no key needed):
the same picture an activist gets with /timeline, in ``[display] timezone`` (or the
zone ``intake --tz`` names)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import ConfigOption, app, display_zone, fail, out, run, workspace
from bot.i18n import LANGUAGES, Words
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
    leg_names: Annotated[
        bool,
        typer.Option(
            "--leg-names",
            help="Name the legs, as /timeline does for activists (a file kept anywhere "
            "then holds them); by default they are numbered.",
        ),
    ] = False,
    language: Annotated[
        str | None,
        typer.Option("--language", help="en or ko (default [display] language)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Draw the group's check-ins, due windows, legs, alerts and statuses over time."""
    from bot.timeline import Format, gather, render

    formats: dict[str, Format] = {".png": "png", ".svg": "svg"}
    fmt = formats.get(output.suffix.lower())
    if fmt is None:
        fail("--out: name a .png or .svg file")

    if language is not None and language not in LANGUAGES:
        fail("--language: en or ko")

    async def go() -> bytes:
        async with workspace(config) as ws:
            group = await get_group(ws.session, codename=normalise_codename(codename))
            server = ws.server if leg_names else None
            journey = await gather(ws.session, group=group, now=utc_now(), server=server)
            words = Words(language or ws.settings.display.language, display_zone())
            return render(journey, fmt, words=words)

    output.write_bytes(run(go()))
    out.print(f"Wrote {output}.")
