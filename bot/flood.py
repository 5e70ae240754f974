"""Which of a chat's receipts still go while Telegram's flood control holds that chat back
(issue #14: a chat under flood control waits alone, its receipts coalesced).

Telegram answers 429 "retry after N" for a chat that was sent too much. Sending each
waiting receipt once the wait is over would make the next 429 (and, on a relative's phone,
a row of receipts); instead, when a chat's wait ends, the replies of every update older
than the newest one taken in for that chat give way: the chat gets the newest receipt and
its follow-up only. What each message meant never decides it (promise 4): only the timing.
The relative's messages are still stored and deleted from the chat as always.

Pure bookkeeping; the caller passes the event loop's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Floods:
    # Until when (loop time) Telegram holds each chat back.
    until: dict[int, float] = field(default_factory=dict)
    # The newest update taken in for each chat whose replies wait or run.
    newest: dict[int, int] = field(default_factory=dict)
    # After a wait, the updates older than this give way.
    gives_way_below: dict[int, int] = field(default_factory=dict)
    # How many runs of replies each chat has waiting or running (forgotten at none).
    busy: dict[int, int] = field(default_factory=dict)

    def begin(self, chat_id: int, update_ids: Iterable[int]) -> None:
        """Replies for these updates of the chat are about to wait or run."""
        self.busy[chat_id] = self.busy.get(chat_id, 0) + 1
        for update_id in update_ids:
            self.newest[chat_id] = max(self.newest.get(chat_id, update_id), update_id)

    def end(self, chat_id: int, now: float) -> None:
        """One run of replies for the chat ended; with none left, the chat is forgotten."""
        left = self.busy.get(chat_id, 1) - 1
        if left > 0:
            self.busy[chat_id] = left
            return
        self.busy.pop(chat_id, None)
        self.newest.pop(chat_id, None)
        self.gives_way_below.pop(chat_id, None)
        if self.until.get(chat_id, now) <= now:
            self.until.pop(chat_id, None)

    def held(self, chat_id: int, until: float) -> None:
        """Telegram said to retry the chat at ``until``."""
        self.until[chat_id] = max(self.until.get(chat_id, until), until)

    def wait(self, chat_id: int, now: float) -> float:
        """Seconds the chat is still held back (0: send now)."""
        left = self.until.get(chat_id, now) - now
        if left <= 0:
            self.until.pop(chat_id, None)
            return 0.0
        return left

    def waited(self, chat_id: int) -> None:
        """A wait for the chat ended: what came before its newest update gives way."""
        newest = self.newest.get(chat_id)
        if newest is not None:
            self.gives_way_below[chat_id] = max(self.gives_way_below.get(chat_id, newest), newest)

    def gives_way(self, chat_id: int, update_id: int) -> bool:
        """Whether the update's receipt and follow-up are superseded by a newer one's."""
        below = self.gives_way_below.get(chat_id)
        return below is not None and update_id < below
