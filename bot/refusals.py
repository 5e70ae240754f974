"""Refused strangers, audited once per sender, kind and hour with a count: a stranger
who sends /status, a wrong ``/start CODE`` or a forged button press a hundred times
makes one audit entry, not a hundred rows (#15)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from storage import audit
from storage.session import AsyncSession

REFUSALS_EVERY = timedelta(hours=1)
_REFUSALS_KEPT = 10_000


@dataclass
class RefusalTally:
    """How many times each sender was refused each thing (a command's name, "invite",
    "alert", "answer"). Pure: ``now`` is passed in. In memory only (a restart starts
    counting again)."""

    _open: dict[tuple[int, str], tuple[datetime, int]] = field(default_factory=dict)

    def refused(self, sender: int, kind: str, now: datetime) -> int | None:
        """The count to audit now (refusals since the last entry, this one included),
        or None while the sender's window for that kind is open."""
        key = (sender, kind)
        opened = self._open.get(key)
        if opened is None or now - opened[0] >= REFUSALS_EVERY:
            count = 1 if opened is None else opened[1] + 1
            self._open.pop(key, None)
            self._open[key] = (now, 0)
            if len(self._open) > _REFUSALS_KEPT:  # the oldest window goes, uncounted
                self._open.pop(next(iter(self._open)))
            return count
        self._open[key] = (opened[0], opened[1] + 1)
        return None


def refused_details(count: int) -> dict[str, object]:
    """An audit entry's details for ``count`` refusals of one sender."""
    details: dict[str, object] = {"allowed": False}
    if count > 1:
        details["refused"] = count
    return details


async def audit_refusal(
    session: AsyncSession,
    tally: RefusalTally,
    *,
    sender: int,
    kind: str,
    actor: str,
    action: str,
    now: datetime,
) -> None:
    """Record one refusal of ``sender``: an audit entry when its window opens, with the
    count of the refusals since the last one; nothing while the window is open."""
    count = tally.refused(sender, kind, now)
    if count is not None:
        await audit.append(
            session, actor=actor, action=action, at=now, details=refused_details(count)
        )
