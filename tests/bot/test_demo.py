"""`intake demo` plays the seed article's story end to end, as a new user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO_PASSPHRASE = "pine seven crosses the river"


def intake(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_demo_tells_the_whole_story_and_leaves_a_working_installation(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    story = intake("demo", "--dir", str(folder), cwd=tmp_path)
    steps = [
        "Group PINE-7: ten adults and a child, route Ryanggang → Qingdao → Kunming → Laos border",
        "The sister in Seoul (relative of PINE-7) redeems an invite",
        "Ji-woo (activist for PINE-7) redeems an invite",
        "Tae-min (activist for another group, OAK-2) redeems an invite",
        "The sister forwards Mi-rae's check-in from Qingdao",
        "PINE-7 is OK.",
        "The sister forwards a stage phrase from Kunming",
        "The sister forwards a pasted SMS from the minibus",
        "PINE-7 is LATE",
        "SILENT: Ji-woo is alerted",
        "⚠ PINE-7 is SILENT (grace ran out)",
        "Leg: Kunming.",
        "Tae-min gets it",
        "Ji-woo presses Acknowledge",
        'The sister forwards a message in Korean: "we were caught"',
        "⚠ PINE-7 is DETAINED (reported by a relative)",
        "The operator opens the sealed inbox",
        "The audit chain verifies",
        "PINE-7 is DETAINED (reported).",
    ]
    positions = [story.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p == -1]
    assert positions == sorted(positions), "the steps were told out of order"
    # Every reply to the relative was the same neutral receipt, in her language.
    receipts = [line for line in story.splitlines() if "the bot replies" in line]
    assert len(receipts) == 4
    assert all("잘 받았습니다" in line for line in receipts)
    # The four messages the operator opened, with what they signalled.
    assert story.count(" checkin ") == 2
    assert " stage " in story
    assert " detained " in story
    assert "Traceback" not in story

    status = intake("status", "--json", "--config", str(folder / "config.toml"), cwd=tmp_path)
    assert '"codename": "PINE-7"' in status
    assert '"status": "DETAINED"' in status
