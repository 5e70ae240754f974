"""A local Telegram Bot API stand-in: tests, the demo, and trying the bot without Telegram.

Example::

    standin = TelegramStandIn()
    await standin.start()                      # 127.0.0.1, a free port
    bot = telegram.Bot(standin.token, base_url=standin.base_url,
                       base_file_url=standin.file_base_url)
    alice = standin.user(1001, "Alice")
    update = standin.send_text(alice, "/start CODE")   # queued, as Telegram builds it
    ...
    assert standin.sent[-1].protect_content
    await standin.stop()

Run by hand with ``python -m bot.standin --port 8081``.
"""

from .server import ChatCall, SentMessage, TelegramStandIn
from .shapes import (
    SimUser,
    channel_chat,
    group_chat,
    origin_channel,
    origin_chat,
    origin_hidden_user,
    origin_user,
)

__all__ = [
    "ChatCall",
    "SentMessage",
    "SimUser",
    "TelegramStandIn",
    "channel_chat",
    "group_chat",
    "origin_channel",
    "origin_chat",
    "origin_hidden_user",
    "origin_user",
]
