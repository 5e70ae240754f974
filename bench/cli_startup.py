"""How long does an `intake` command take before it does anything?

    .venv/bin/python bench/cli_startup.py [--runs N]

Makes a demo installation (``intake demo`` in a temporary folder, once), then times, in
one run and interleaved round by round so that machine load hits all alike: the
interpreter alone (``python -c pass``, the baseline), ``intake --help``, ``intake
status`` and ``intake group list --format json`` on the demo installation (each a fresh
process of ``.venv/bin/intake`` as installed). Prints the median and the fastest of N
runs of each, one JSON line and one line each for people. The aims (issue #16): help
within 0.3 s, status within 0.5 s. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INTAKE = Path(sys.executable).with_name("intake")


def timed(command: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run(  # noqa: S603
            [str(INTAKE), "demo", "--dir", "try"],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        config = str(folder / "try" / "config.toml")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "intake --help": [str(INTAKE), "--help"],
            "intake status": [str(INTAKE), "status", "--config", config],
            "intake group list --format json": [
                str(INTAKE),
                "group",
                "list",
                "--format",
                "json",
                "--config",
                config,
            ],
        }
        for command in commands.values():  # warm the file cache once
            timed(command, folder)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(timed(command, folder))
    figures = {
        name: {"median_s": round(statistics.median(ts), 3), "min_s": round(min(ts), 3)}
        for name, ts in times.items()
    }
    print(json.dumps({"runs": args.runs, "figures": figures}))
    for name, figure in figures.items():
        print(f"{name:<34} median {figure['median_s']:.3f} s   fastest {figure['min_s']:.3f} s")


if __name__ == "__main__":
    main()
