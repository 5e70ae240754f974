"""A group's status as a pure function of its policy, its check-ins, and now.

No I/O, and ``now`` is passed in: the deadline engine (``bot.engine``, which
stores the result and the next transition time, and claims due groups) is a
thin layer over this. Every flip is dated at its deadline, not at the moment
someone looked, so a late look never shifts the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.schedules import next_due
from storage.checkins import standing_report
from storage.models import Group, Leg, Status

# Enough steps for any ladder (PAUSED, OK, LATE, SILENT, DETAINED) with room to spare.
_MAX_STEPS = 8


@dataclass(frozen=True, slots=True)
class Evaluation:
    status: Status
    since: datetime
    basis: str
    # The next moment the status can change by itself, or None when only a
    # person or a message can change it.
    next_transition: datetime | None


def evaluate(group: Group, *, now: datetime, leg: Leg | None = None) -> Evaluation:
    """The status at ``now``. ``leg`` is the group's current leg, whose own
    interval and grace (a border crossing is checked more tightly) win over the group's."""
    if now.utcoffset() is None:
        raise ValueError("evaluate needs a timezone-aware now")
    if group.status is Status.SAFE:
        return Evaluation(Status.SAFE, group.status_since, group.status_basis or "marked", None)
    if group.status is Status.PAUSED:
        basis = group.status_basis or "paused"
        if group.paused_until is None:  # paused until someone resumes it
            return Evaluation(Status.PAUSED, group.status_since, basis, None)
        if now < group.paused_until:
            return Evaluation(Status.PAUSED, group.status_since, basis, group.paused_until)
        return _by_schedule(group, now, leg, resumed=group.paused_until)
    # A report stands until a person clears it (bot.acts): captors can force an
    # "all is well", so no check-in, however late, ends it.
    if standing_report(group):
        return Evaluation(group.status, group.status_since, group.status_basis or "reported", None)
    return _by_schedule(group, now, leg, resumed=None)


def transitions(group: Group, *, now: datetime, leg: Leg | None = None) -> list[Evaluation]:
    """Every status the group passed through since its stored one, up to ``now``,
    each dated at its own deadline: after the bot was away for a day, a group
    goes OK → LATE → SILENT → DETAINED in the record, not straight to DETAINED
    at the moment the bot came back."""
    steps: list[Evaluation] = []
    current = group.status
    moment = group.next_transition_at
    if moment is None or moment > now:
        moment = now
    for _ in range(_MAX_STEPS):
        result = evaluate(group, now=moment, leg=leg)
        if result.status is not current:
            steps.append(result)
            current = result.status
        if result.next_transition is None or result.next_transition > now:
            break
        moment = result.next_transition
    final = evaluate(group, now=now, leg=leg)
    if final.status is not current:
        steps.append(final)
    return steps


def due_window(group: Group, start: datetime, leg: Leg | None) -> tuple[datetime, datetime]:
    """When a check-in is due after ``start`` (a check-in, or a schedule's restart), and
    when its grace ends, on ``leg`` (the leg in force then, whose own interval and grace
    win over the group's)."""
    if leg is not None and leg.interval_s is not None:
        due = start + timedelta(seconds=leg.interval_s)
    else:
        due = next_due(group, after=start)
    grace_s = leg.grace_s if leg is not None and leg.grace_s is not None else group.grace_s
    return due, due + timedelta(seconds=grace_s)


def _by_schedule(
    group: Group, now: datetime, leg: Leg | None, *, resumed: datetime | None
) -> Evaluation:
    last = group.last_checkin_at
    # After a pause, the schedule starts again from its end: the dead zone was
    # agreed. ``schedule_from`` keeps that moment (a /resume, a pause's end, or
    # the moment two people cleared a warning): no check-in is invented.
    anchors = [t for t in (last, resumed, group.schedule_from) if t is not None]
    if not anchors:
        return Evaluation(Status.PENDING, group.status_since, "no check-in yet", None)
    start = max(anchors)
    # Said as what it was: a restarted schedule is no news from the group.
    started = "checked in" if start == last else "resumed"
    due, silent_at = due_window(group, start, leg)
    detained_at = silent_at + timedelta(seconds=group.detained_after_s)
    if now < due:
        return Evaluation(Status.OK, start, started, due)
    if now < silent_at:
        return Evaluation(Status.LATE, due, "check-in due", silent_at)
    if now < detained_at:
        return Evaluation(Status.SILENT, silent_at, "grace ran out", detained_at)
    return Evaluation(Status.DETAINED, detained_at, "silence", None)
