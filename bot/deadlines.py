"""A group's status as a pure function of its policy, its last check-in, and now.

No I/O, and ``now`` is passed in: the deadline engine (which stores the
result and the next transition time, and claims due groups) is a thin layer
over this. Every flip is dated at its deadline, not at the moment someone
looked, so a late look never shifts the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.schedules import next_due
from storage.models import Group, Status

# Set by people or by a report, not by the clock: only a check-in made after
# them (or a person) changes them.
_REPORTED = frozenset({Status.DETAINED})
_MANUAL = frozenset({Status.SAFE, Status.PAUSED})
_REPORT_BASES = frozenset({"reported", "duress", "marked"})


@dataclass(frozen=True, slots=True)
class Evaluation:
    status: Status
    since: datetime
    basis: str
    # The next moment the status can change by itself, or None when only a
    # person or a message can change it.
    next_transition: datetime | None


def evaluate(group: Group, *, now: datetime) -> Evaluation:
    if now.utcoffset() is None:
        raise ValueError("evaluate needs a timezone-aware now")
    if group.status in _MANUAL:
        if group.status is Status.PAUSED and group.paused_until is not None:
            if now < group.paused_until:
                return Evaluation(Status.PAUSED, group.status_since, "paused", group.paused_until)
            return _by_schedule(group, now, resumed=group.paused_until)
        return Evaluation(group.status, group.status_since, group.status_basis or "marked", None)
    last = group.last_checkin_at
    # A report stands until the group itself checks in after it.
    standing_report = group.status in _REPORTED and group.status_basis in _REPORT_BASES
    if standing_report and (last is None or last <= group.status_since):
        return Evaluation(group.status, group.status_since, group.status_basis or "reported", None)
    return _by_schedule(group, now, resumed=None)


def _by_schedule(group: Group, now: datetime, *, resumed: datetime | None) -> Evaluation:
    last = group.last_checkin_at
    if last is None and resumed is None:
        return Evaluation(Status.PENDING, group.status_since, "no check-in yet", None)
    # After a pause, the schedule starts again from its end: the dead zone was agreed.
    start = max(t for t in (last, resumed) if t is not None)
    due = next_due(group, after=start)
    grace = timedelta(seconds=group.grace_s)
    detained_after = timedelta(seconds=group.detained_after_s)
    silent_at = due + grace
    detained_at = silent_at + detained_after
    if now < due:
        return Evaluation(Status.OK, start, "checked in", due)
    if now < silent_at:
        return Evaluation(Status.LATE, due, "check-in due", silent_at)
    if now < detained_at:
        return Evaluation(Status.SILENT, silent_at, "grace ran out", detained_at)
    return Evaluation(Status.DETAINED, detained_at, "silence", None)
