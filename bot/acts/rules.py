"""The decisions about people's acts on a group, as pure functions of the group,
the act waiting for a second person (if any), who is acting, and now."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta

from storage.models import ActKind, GroupAct, Status

# A warning: undoing it takes two people.
NEEDS_TWO = frozenset({Status.SILENT, Status.DETAINED})
# The bases a flip made by people carries.
CLEARED = "cleared"  # two people cleared a warning
CONFIRMED = "confirmed"  # two people agreed (SAFE or a pause of a warning)
COMMAND_LINE = "operator"  # an operator's command on the server
# Only CONFIRMED and COMMAND_LINE SAFE start retention's shredding clock
# (storage.retention.SHREDDABLE_SAFE); one person's "marked" SAFE never does.


class Outcome(enum.StrEnum):
    APPLY = "applied"  # done at once: the group is not SILENT or DETAINED
    ASK = "asked"  # a warning: waits for a second person
    CONFIRM = "confirmed"  # the second person's word: done now
    WAITING = "waiting"  # the same person asked again: still waits
    NOTHING = "nothing"  # nothing to clear
    ARRIVED = "arrived"  # a SAFE group has arrived: no schedule is left to pause


def is_live(pending: GroupAct | None, *, status: Status, now: datetime) -> bool:
    """Whether a waiting act can still be confirmed: not done, not lapsed, and the
    group still in the status it was asked about."""
    return (
        pending is not None
        and pending.done_at is None
        and now < pending.expires_at
        and pending.from_status is status
    )


def decide(
    act: ActKind,
    *,
    status: Status,
    pending: GroupAct | None,
    actor: uuid.UUID | None,
    now: datetime,
) -> Outcome:
    """What ``actor`` (a person, or None for the command line) asking for ``act``
    does now. The command line counts as one person: it can confirm a request
    made in Telegram, never its own (it cannot tell two admins apart)."""
    if act is ActKind.CLEAR and status not in NEEDS_TWO:
        return Outcome.NOTHING
    if act is ActKind.PAUSE and status is Status.SAFE:
        return Outcome.ARRIVED
    if status not in NEEDS_TWO:
        return Outcome.APPLY
    if pending is not None and is_live(pending, status=status, now=now):
        return Outcome.WAITING if pending.requested_by == actor else Outcome.CONFIRM
    return Outcome.ASK


def pause_end(length: timedelta, *, now: datetime, max_pause: timedelta) -> datetime:
    """A pause ends by itself: at most ``max_pause`` from now."""
    return now + min(length, max_pause)


def safe_basis(outcome: Outcome, *, command_line: bool) -> str:
    """The basis a SAFE flip records; retention shreds only after the agreed ones."""
    if outcome is Outcome.CONFIRM:
        return CONFIRMED
    return COMMAND_LINE if command_line else "marked"
