"""How long does an `intake` command take before it does anything?

    .venv/bin/python bench/cli_startup.py [--runs N] [--before TREE]

Makes a demo installation (``intake demo`` in a temporary folder, once), then times, in
one run and interleaved round by round so that machine load hits all alike: the
interpreter alone (``python -c pass``, the baseline), ``intake --help``, ``intake
status`` and ``intake group list --format json`` on the demo installation (each a fresh
process of ``.venv/bin/intake`` as installed). Prints the median and the fastest of N
runs of each, and the CPU time of the fastest run (less moved by other processes than the
wall time), one JSON line and one line each for people. The aims (issue #16): help
within 0.3 s, status within 0.5 s. Nothing is asserted.

``--before TREE``: also time the same commands of another version's source tree, in the
same rounds (``git archive COMMIT | tar -x -C TREE``), run by this interpreter with TREE
first on its path; the demo installation is this version's, so the two must share the
database's migrations.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INTAKE = Path(sys.executable).with_name("intake")


# The console script's own lines, for a tree that is not installed.
AS_INSTALLED = "import sys; sys.argv[0] = 'intake'; from bot.cli import main; sys.exit(main())"


def timed(command: list[str], cwd: Path, env: dict[str, str] | None) -> tuple[float, float]:
    """Wall time and CPU time (user and system) of one run of ``command``."""
    began = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command)
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before", type=Path, default=None, help="another version's tree")
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
        words = {
            "intake --help": ["--help"],
            "intake status": ["status", "--config", config],
            "intake group list --format json": [
                "group",
                "list",
                "--format",
                "json",
                "--config",
                config,
            ],
        }
        commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
        }
        for name, rest in words.items():
            commands[name] = ([str(INTAKE), *rest], None)
        if args.before is not None:
            before_env = dict(os.environ, PYTHONPATH=str(args.before.resolve()))
            for name, rest in words.items():
                commands[f"{name} (before)"] = (
                    [sys.executable, "-c", AS_INSTALLED, *rest],
                    before_env,
                )
        for command, env in commands.values():  # warm the file cache once
            timed(command, folder, env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (command, env) in commands.items():
                times[name].append(timed(command, folder, env))
    figures = {
        name: {
            "median_s": round(statistics.median(wall for wall, _ in ts), 3),
            "min_s": round(min(ts)[0], 3),
            "cpu_of_min_s": round(min(ts)[1], 3),
        }
        for name, ts in times.items()
    }
    print(json.dumps({"runs": args.runs, "figures": figures}))
    for name, figure in figures.items():
        print(
            f"{name:<43} median {figure['median_s']:.3f} s   fastest {figure['min_s']:.3f} s"
            f"   (CPU {figure['cpu_of_min_s']:.3f} s)"
        )


if __name__ == "__main__":
    main()
