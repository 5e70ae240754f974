"""`intake run`: the bot itself."""

from __future__ import annotations

from bot.cli.common import (
    ConfigOption,
    app,
)
from bot.config import (
    load_settings,
    resolve_config_path,
)

# --------------------------------------------------------------------------- run


@app.command("run")
def run_bot(config: ConfigOption = None) -> None:
    """Run the bot (polling or webhook, as configured) until SIGINT or SIGTERM."""
    from bot import app as bot_app
    from bot import logs

    settings = load_settings(resolve_config_path(config))
    settings.require_token()
    logs.configure(settings.logging.level)
    bot_app.run_forever(settings)
