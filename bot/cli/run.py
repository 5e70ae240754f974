"""`intake run`: the bot itself.

Whatever keeps it from starting ends in one line on stderr and an exit status in
systemd's terms: 78 when the configuration must change, 69 when something it needs
is unavailable now (see ``bot.startup``). The token never appears in either.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from bot.cli.common import ConfigOption, app, err


@app.command("run")
def run_bot(config: ConfigOption = None) -> None:
    """Run the bot (polling or webhook, as configured) until SIGINT or SIGTERM."""
    from bot import logs, startup
    from bot.config import ConfigError, load_settings, resolve_config_path

    try:
        settings = load_settings(resolve_config_path(config))
        settings.require_token()
        startup.check_secret_modes(settings)
    except ConfigError as exc:
        _exit(str(exc), startup.EX_CONFIG)
    except startup.StartupFailure as exc:
        _exit(str(exc), exc.status)
    logs.configure(settings.logging.level)
    from bot import app as bot_app

    try:
        bot_app.run_forever(settings)
    except startup.StartupFailure as exc:
        _exit(str(exc), exc.status)


def _exit(message: str, status: int) -> NoReturn:
    err.print(f"intake: error: {message}")
    sys.exit(status)
