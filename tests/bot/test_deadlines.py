"""A group's status as a pure function of policy, last check-in and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.deadlines import evaluate, transitions
from storage.models import Group, Leg, ScheduleKind, Status

CHECKIN = datetime(2026, 8, 10, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


def group(**fields: Any) -> Group:
    base: dict[str, Any] = {
        "codename": "PINE-7",
        "schedule_kind": ScheduleKind.INTERVAL,
        "interval_s": 12 * 3600,
        "grace_s": 2 * 3600,
        "detained_after_s": 24 * 3600,
        "kem": "X25519",
        "public_key": b"",
        "status": Status.OK,
        "status_since": CHECKIN,
        "last_checkin_at": CHECKIN,
    }
    return Group(**(base | fields))


@pytest.mark.parametrize(
    ("offset", "status", "since", "next_transition"),
    [
        (timedelta(0), Status.OK, CHECKIN, CHECKIN + 12 * H),
        (12 * H - timedelta(seconds=1), Status.OK, CHECKIN, CHECKIN + 12 * H),
        (12 * H, Status.LATE, CHECKIN + 12 * H, CHECKIN + 14 * H),
        (14 * H - timedelta(seconds=1), Status.LATE, CHECKIN + 12 * H, CHECKIN + 14 * H),
        (14 * H, Status.SILENT, CHECKIN + 14 * H, CHECKIN + 38 * H),
        (38 * H, Status.DETAINED, CHECKIN + 38 * H, None),
        (300 * H, Status.DETAINED, CHECKIN + 38 * H, None),
    ],
    ids=[
        "just checked in",
        "a second before due",
        "due",
        "end of grace",
        "silent",
        "detained",
        "long after",
    ],
)
def test_status_follows_the_schedule_and_is_dated_at_its_deadline(
    offset: timedelta, status: Status, since: datetime, next_transition: datetime | None
) -> None:
    result = evaluate(group(), now=CHECKIN + offset)
    assert (result.status, result.since, result.next_transition) == (status, since, next_transition)


def test_a_group_without_a_check_in_is_pending_and_never_due() -> None:
    result = evaluate(group(status=Status.PENDING, last_checkin_at=None), now=CHECKIN + 100 * H)
    assert (result.status, result.next_transition) == (Status.PENDING, None)


def test_a_check_in_after_silence_clears_it() -> None:
    later = CHECKIN + 20 * H
    result = evaluate(group(status=Status.SILENT, last_checkin_at=later), now=later + H)
    assert (result.status, result.next_transition) == (Status.OK, later + 12 * H)


@pytest.mark.parametrize("basis", ["reported", "duress", "marked"])
def test_a_report_stands_whatever_check_in_follows_it(basis: str) -> None:
    reported = group(status=Status.DETAINED, status_basis=basis, status_since=CHECKIN + H)
    assert evaluate(reported, now=CHECKIN + 2 * H).status is Status.DETAINED
    assert evaluate(reported, now=CHECKIN + 2 * H).next_transition is None
    # Captors can force an "all is well": only a person clears a report (bot.acts).
    checked_in = group(
        status=Status.DETAINED,
        status_basis=basis,
        status_since=CHECKIN + H,
        last_checkin_at=CHECKIN + 3 * H,
    )
    result = evaluate(checked_in, now=CHECKIN + 400 * H)
    assert (result.status, result.basis, result.next_transition) == (Status.DETAINED, basis, None)


def test_detained_by_silence_alone_is_left_by_a_check_in() -> None:
    silent = group(
        status=Status.DETAINED,
        status_basis="silence",
        status_since=CHECKIN + 38 * H,
        last_checkin_at=CHECKIN + 40 * H,
    )
    assert evaluate(silent, now=CHECKIN + 41 * H).status is Status.OK


def test_a_cleared_group_counts_its_schedule_from_the_clearing() -> None:
    cleared_at = CHECKIN + 100 * H
    cleared = group(
        status=Status.OK, status_basis="cleared", status_since=cleared_at, schedule_from=cleared_at
    )
    result = evaluate(cleared, now=cleared_at + H)
    assert (result.status, result.next_transition) == (Status.OK, cleared_at + 12 * H)
    # Once LATE, it still counts from the clearing, not from the old check-in.
    late = group(status=Status.LATE, status_since=cleared_at + 12 * H, schedule_from=cleared_at)
    assert evaluate(late, now=cleared_at + 13 * H).status is Status.LATE


def test_a_duress_phrase_is_never_cleared_by_the_check_in_before_it() -> None:
    duress = group(status=Status.DETAINED, status_basis="duress", status_since=CHECKIN + H)
    assert evaluate(duress, now=CHECKIN + 2 * H).status is Status.DETAINED


def test_safe_is_final_and_paused_resumes_at_its_end() -> None:
    safe = group(status=Status.SAFE, status_basis="marked")
    assert evaluate(safe, now=CHECKIN + 500 * H).status is Status.SAFE
    until = CHECKIN + 30 * H
    paused = group(status=Status.PAUSED, paused_until=until)
    during = evaluate(paused, now=CHECKIN + 20 * H)
    assert (during.status, during.next_transition) == (Status.PAUSED, until)
    # The schedule starts again from the end of the dead zone, not from the old check-in.
    after = evaluate(paused, now=until + H)
    assert (after.status, after.next_transition) == (Status.OK, until + 12 * H)


def test_cron_groups_are_due_at_their_local_times() -> None:
    cron = group(
        schedule_kind=ScheduleKind.CRON, interval_s=None, cron="0 8,20 * * *", tz="Asia/Shanghai"
    )
    result = evaluate(cron, now=CHECKIN)  # 08:00 UTC is 16:00 in Shanghai
    assert result.next_transition == datetime(2026, 8, 10, 12, 0, tzinfo=UTC)  # 20:00 there


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        evaluate(group(), now=datetime(2026, 8, 10))  # noqa: DTZ001


@given(st.integers(min_value=0, max_value=100 * 3600))
def test_the_next_transition_is_in_the_future_and_changes_the_status(seconds: int) -> None:
    g = group()
    now = CHECKIN + timedelta(seconds=seconds)
    result = evaluate(g, now=now)
    if result.next_transition is not None:
        assert result.next_transition > now
        assert evaluate(g, now=result.next_transition).status is not result.status
        assert (
            evaluate(g, now=result.next_transition - timedelta(microseconds=1)).status
            is result.status
        )


def test_a_leg_with_its_own_interval_and_grace_is_checked_more_tightly() -> None:
    border = Leg(
        group_id=group().id, position=4, name_sealed=b"", interval_s=2 * 3600, grace_s=1800
    )
    tight = evaluate(group(current_leg=4), now=CHECKIN + 2 * H + timedelta(minutes=31), leg=border)
    assert (tight.status, tight.since) == (Status.SILENT, CHECKIN + 2 * H + timedelta(minutes=30))
    loose = evaluate(group(), now=CHECKIN + 2 * H + timedelta(minutes=31))
    assert loose.status is Status.OK


def test_a_dead_zone_pauses_until_its_end_and_a_manual_pause_until_resumed() -> None:
    until = CHECKIN + 40 * H
    zone = group(status=Status.PAUSED, status_basis="dead zone", paused_until=until)
    during = evaluate(zone, now=CHECKIN + 39 * H)
    assert (during.status, during.basis, during.next_transition) == (
        Status.PAUSED,
        "dead zone",
        until,
    )
    held = group(status=Status.PAUSED, status_basis="paused", paused_until=None)
    assert evaluate(held, now=CHECKIN + 900 * H).status is Status.PAUSED
    assert evaluate(held, now=CHECKIN + 900 * H).next_transition is None


def test_catching_up_records_each_step_at_its_own_deadline() -> None:
    g = group(status=Status.OK, next_transition_at=CHECKIN + 12 * H)
    steps = transitions(g, now=CHECKIN + 100 * H)
    assert [(s.status, s.since) for s in steps] == [
        (Status.LATE, CHECKIN + 12 * H),
        (Status.SILENT, CHECKIN + 14 * H),
        (Status.DETAINED, CHECKIN + 38 * H),
    ]
    assert transitions(g, now=CHECKIN + H) == []


@pytest.mark.parametrize(
    ("tz", "cron", "checkin", "due"),
    [
        # New York springs forward on 8 March 2026: 08:00 local is 12:00 UTC after, 13:00 before.
        (
            "America/New_York",
            "0 8 * * *",
            datetime(2026, 3, 7, 14, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
        ),
        # Riga falls back on 25 October 2026: 08:00 local is 06:00 UTC after, 05:00 before.
        (
            "Europe/Riga",
            "0 8 * * *",
            datetime(2026, 10, 24, 6, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 6, 0, tzinfo=UTC),
        ),
    ],
    ids=["spring, New York", "autumn, Riga"],
)
def test_cron_deadlines_follow_local_time_across_daylight_saving(
    tz: str, cron: str, checkin: datetime, due: datetime
) -> None:
    g = group(
        schedule_kind=ScheduleKind.CRON,
        interval_s=None,
        cron=cron,
        tz=tz,
        last_checkin_at=checkin,
        status_since=checkin,
    )
    late = evaluate(g, now=due)
    assert (late.status, late.since, late.next_transition) == (
        Status.LATE,
        due,
        due + 2 * H,
    )
    assert evaluate(g, now=due - timedelta(seconds=1)).status is Status.OK
