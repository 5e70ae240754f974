"""``intake demo``: the whole product in under a minute, with no Telegram account."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import app, err, out, run


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="An empty folder to set the demo up in (default: a new temporary folder).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Play the seed article's story against a local Telegram, and leave the installation."""
    from bot import logs
    from bot.demo import DEMO_PASSPHRASE, DemoFailed, play

    logs.configure("ERROR")  # the narration is the output; the bot's own log would drown it
    folder = directory or Path(tempfile.mkdtemp(prefix="intake-demo-"))
    try:
        run(play(folder, out.print))
    except DemoFailed as exc:
        err.print(f"intake: error: {exc}")
        raise typer.Exit(1) from None
    config = folder / "config.toml"
    intake = _how_to_call_intake()
    out.print("")
    out.print("The installation is left in place. Look around:")
    out.print(f"  {intake} status --config {config}")
    out.print(
        f"  INTAKE_PASSPHRASE='{DEMO_PASSPHRASE}' {intake} inbox list --config {config} "
        f"--key {folder / 'operator.key'}"
    )
    out.print(f"  {intake} audit verify --config {config}")
    out.print(f"  {intake} timeline PINE-7 --config {config} --out pine-7.png")
    out.print("Or open the operator's console in your browser (the passphrase is the one above):")
    out.print(f"  {intake} console --config {config} --key {folder / 'operator.key'}")


def _how_to_call_intake() -> str:
    """``intake`` if the shell finds this one by that name (an activated virtualenv),
    else the path of the one beside this Python (``.venv/bin/intake``)."""
    import shutil
    import sys

    beside = Path(sys.executable).with_name("intake")
    found = shutil.which("intake")
    if found is not None and Path(found).resolve() == beside.resolve():
        return "intake"
    if beside.exists():
        try:
            return str(beside.relative_to(Path.cwd()))
        except ValueError:
            return str(beside)
    return "intake"
