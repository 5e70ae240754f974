"""Run the Telegram stand-in by hand: ``python -m bot.standin --port 8081``.

It prints the settings to give the bot by their names in the config (``base_url``,
``file_base_url``) and the token. Lines typed are sent to the bot by the person writing now
(``--user ID:NAME``, repeated, for several; ``!as`` switches); the bot's messages are printed
with their photos and buttons; ``!help`` lists the rest (bot/standin/runner.py). Ctrl-C stops.
"""

from .runner import main

main()
