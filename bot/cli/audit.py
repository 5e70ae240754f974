"""``intake audit``: check the hash chain of the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from bot.cli.common import ConfigOption, app, err, fail, out, run, workspace
from storage import audit
from storage.audit import AuditChainBroken, ChainHead

audit_app = typer.Typer(help="The audit trail: a hash chain the database keeps append-only.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify(
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="SEQ:HASH from `intake audit checkpoint`, kept off the server: also detects a "
            "truncated tail.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check every entry's hash and its link to the one before; print the head."""
    kept = _parse(checkpoint) if checkpoint else None
    try:
        head = run(_verify(config, kept))
    except AuditChainBroken as exc:
        out.print(f"BROKEN: {exc}")
        raise typer.Exit(1) from None
    out.print(f"OK: {head.seq} entries, head {head.text()}")


@audit_app.command("checkpoint")
def checkpoint(config: ConfigOption = None) -> None:
    """Print SEQ:HASH of the verified head, to keep off the server."""
    try:
        head = run(_verify(config, None))
    except AuditChainBroken as exc:
        out.print(f"BROKEN: {exc}")
        raise typer.Exit(1) from None
    out.print(head.text())


async def _verify(config: Path | None, checkpoint: ChainHead | None) -> ChainHead:
    async with workspace(config) as ws:
        total = await audit.length(ws.session)
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("verifying the audit chain", total=total)
            return await audit.verify(
                ws.session,
                checkpoint=checkpoint,
                on_entry=lambda seq: progress.update(task, completed=seq),
            )


def _parse(text: str) -> ChainHead:
    seq, _, digest = text.partition(":")
    try:
        return ChainHead(seq=int(seq), hash=bytes.fromhex(digest))
    except ValueError:
        fail("--checkpoint: give SEQ:HASH as `intake audit checkpoint` prints it")
