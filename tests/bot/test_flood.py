"""bot.flood: which receipts of a chat held back by Telegram's flood control still go."""

from __future__ import annotations

from bot.flood import Floods

CHAT, OTHER = 1001, 1002


def test_a_chat_not_held_back_sends_every_receipt() -> None:
    floods = Floods()
    floods.begin(CHAT, [1, 2, 3])
    assert floods.wait(CHAT, now=0.0) == 0.0
    assert not any(floods.gives_way(CHAT, u) for u in (1, 2, 3))


def test_after_a_wait_only_the_newest_update_of_the_chat_is_receipted() -> None:
    floods = Floods()
    floods.begin(CHAT, [1])
    floods.held(CHAT, until=60.0)
    floods.begin(CHAT, [2])  # a later batch, taken in while the chat waits
    floods.begin(OTHER, [3])
    assert floods.wait(CHAT, now=10.0) == 50.0
    assert floods.wait(OTHER, now=10.0) == 0.0  # other chats do not wait
    floods.waited(CHAT)
    assert floods.gives_way(CHAT, 1)
    assert not floods.gives_way(CHAT, 2)
    assert not floods.gives_way(OTHER, 3)
    # A later hold extends the wait, never shortens it.
    floods.held(CHAT, until=30.0)
    assert floods.wait(CHAT, now=40.0) == 20.0


def test_a_chat_is_forgotten_when_its_last_replies_end() -> None:
    floods = Floods()
    floods.begin(CHAT, [1])
    floods.begin(CHAT, [2])
    floods.held(CHAT, until=5.0)
    floods.waited(CHAT)
    floods.end(CHAT, now=1.0)
    assert floods.gives_way(CHAT, 1)  # the second run still waits
    floods.end(CHAT, now=6.0)
    assert floods == Floods()
    # A new message after all that is receipted as usual.
    floods.begin(CHAT, [3])
    assert not floods.gives_way(CHAT, 3)
