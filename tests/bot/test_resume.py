"""/resume starts the schedule from now, recorded as a resume; a paused group has no
deadline in `intake status`. Fixed clocks throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.cli.status import _status_rows
from bot.deadlines import evaluate, transitions
from storage.checkins import new_flip
from storage.models import Status
from tests.bot.test_deadlines import CHECKIN, H, group

RESUMED = CHECKIN + 40 * H  # long after the old check-in's deadline and grace


def test_a_resume_starts_the_schedule_from_now_and_is_recorded_as_a_resume() -> None:
    paused = group(status=Status.PAUSED, status_basis="paused", paused_until=None)
    paused.paused_until = RESUMED  # what /resume does: the pause ends now
    after = evaluate(paused, now=RESUMED)
    assert (after.status, after.basis, after.since) == (Status.OK, "resumed", RESUMED)
    assert after.next_transition == RESUMED + 12 * H
    record = new_flip(paused, to=after.status, at=RESUMED, basis=after.basis, now=RESUMED)
    assert (record.from_status, record.to_status, record.basis) == (
        Status.PAUSED,
        Status.OK,
        "resumed",
    )
    # Once OK again, the schedule still counts from the resume, not from the old check-in.
    assert paused.schedule_from == RESUMED
    later = evaluate(paused, now=RESUMED + 11 * H)
    assert (later.status, later.next_transition) == (Status.OK, RESUMED + 12 * H)
    assert evaluate(paused, now=RESUMED + 13 * H).status is Status.LATE


def test_a_check_in_after_the_resume_counts_as_a_check_in_again() -> None:
    resumed = group(status=Status.OK, status_basis="resumed", schedule_from=RESUMED)
    resumed.last_checkin_at = RESUMED + 2 * H
    after = evaluate(resumed, now=RESUMED + 3 * H)
    assert (after.basis, after.next_transition) == ("checked in", RESUMED + 14 * H)


def test_a_resumed_group_does_not_replay_the_old_deadlines() -> None:
    resumed = group(
        status=Status.OK, status_basis="resumed", status_since=RESUMED, schedule_from=RESUMED
    )
    resumed.next_transition_at = RESUMED + 12 * H
    assert transitions(resumed, now=RESUMED + H) == []


def test_a_paused_group_shows_no_past_deadline_in_status() -> None:
    now = datetime(2026, 8, 12, 9, 0, tzinfo=UTC)
    paused = group(status=Status.PAUSED, status_basis="paused", paused_until=now + 6 * H)
    safe = group(codename="OAK-2", status=Status.SAFE, status_basis="marked")
    late = group(codename="ASH-1", status=Status.LATE)
    rows = {row["codename"]: row for row in _status_rows([paused, safe, late], now)}
    assert (rows["PINE-7"]["next_due"], rows["PINE-7"]["overdue"]) == (None, False)
    assert (rows["OAK-2"]["next_due"], rows["OAK-2"]["overdue"]) == (None, False)
    assert rows["ASH-1"]["next_due"] == CHECKIN + 12 * H
    assert rows["ASH-1"]["overdue"] is True


def test_status_counts_the_next_due_from_the_resume() -> None:
    now = RESUMED + H
    resumed = group(status=Status.OK, status_basis="resumed", schedule_from=RESUMED)
    [row] = _status_rows([resumed], now)
    assert row["next_due"] == RESUMED + 12 * H
    assert row["overdue"] is False
    assert timedelta(0) < row["next_due"] - now
