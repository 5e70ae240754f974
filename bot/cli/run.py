"""`intake run`: the bot itself.

Whatever keeps it from starting ends in one line on stderr and an exit status in
systemd's terms: 78 when the configuration must change, 69 when something it needs
is unavailable now (see ``bot.startup``). The token never appears in either.
"""

from __future__ import annotations

from bot.cli.common import ConfigOption, app


@app.command("run")
def run_bot(config: ConfigOption = None) -> None:
    """Run the bot (polling or webhook, as configured) until SIGINT or SIGTERM."""
    from bot import startup

    startup.run_from_command_line(config)
