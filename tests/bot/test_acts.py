"""The two-person rule, as pure functions of the status, the waiting request,
who acts, and now (bot.acts.rules); and what a notice says (bot.acts.words)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.acts.rules import Outcome, decide, is_live, pause_end, safe_basis
from bot.acts.words import notice_text
from bot.i18n import Words
from storage.checkins import after_report, standing_report
from storage.models import ActKind, Group, GroupAct, ScheduleKind, Status

NOW = datetime(2026, 8, 12, 5, 0, tzinfo=UTC)
FIRST, SECOND = uuid.uuid4(), uuid.uuid4()


def request(by: uuid.UUID | None, status: Status = Status.DETAINED, **fields: Any) -> GroupAct:
    base: dict[str, Any] = {
        "group_id": uuid.uuid4(),
        "act": ActKind.CLEAR,
        "from_status": status,
        "requested_by": by,
        "requested_at": NOW - timedelta(minutes=5),
        "expires_at": NOW + timedelta(minutes=25),
    }
    return GroupAct(**(base | fields))


@pytest.mark.parametrize("status", [Status.SILENT, Status.DETAINED])
@pytest.mark.parametrize("act", list(ActKind))
def test_undoing_a_warning_is_a_request_until_a_second_person_confirms(
    act: ActKind, status: Status
) -> None:
    assert decide(act, status=status, pending=None, actor=FIRST, now=NOW) is Outcome.ASK
    waiting = request(FIRST, status, act=act)
    assert decide(act, status=status, pending=waiting, actor=FIRST, now=NOW) is Outcome.WAITING
    assert decide(act, status=status, pending=waiting, actor=SECOND, now=NOW) is Outcome.CONFIRM


def test_the_command_line_is_one_person_that_can_confirm_a_telegram_request() -> None:
    from_telegram = request(FIRST)
    from_cli = request(None)
    detained = Status.DETAINED
    assert decide(ActKind.CLEAR, status=detained, pending=from_telegram, actor=None, now=NOW) is (
        Outcome.CONFIRM
    )
    assert decide(ActKind.CLEAR, status=detained, pending=from_cli, actor=None, now=NOW) is (
        Outcome.WAITING
    )
    assert decide(ActKind.CLEAR, status=detained, pending=from_cli, actor=FIRST, now=NOW) is (
        Outcome.CONFIRM
    )


def test_a_request_lapses_with_time_and_when_the_status_moves() -> None:
    waiting = request(FIRST)
    assert is_live(waiting, status=Status.DETAINED, now=NOW)
    assert not is_live(waiting, status=Status.DETAINED, now=waiting.expires_at)
    assert not is_live(waiting, status=Status.SILENT, now=NOW)  # asked about another state
    lapsed = decide(
        ActKind.CLEAR, status=Status.DETAINED, pending=waiting, actor=SECOND, now=waiting.expires_at
    )
    assert lapsed is Outcome.ASK  # a new request, not a late confirmation


@pytest.mark.parametrize("status", [Status.PENDING, Status.OK, Status.LATE, Status.PAUSED])
def test_on_a_quiet_group_pause_and_safe_act_at_once_and_there_is_nothing_to_clear(
    status: Status,
) -> None:
    for act in (ActKind.PAUSE, ActKind.SAFE):
        assert decide(act, status=status, pending=None, actor=FIRST, now=NOW) is Outcome.APPLY
    assert decide(ActKind.CLEAR, status=status, pending=None, actor=FIRST, now=NOW) is (
        Outcome.NOTHING
    )


def test_a_safe_group_has_arrived_and_has_no_schedule_to_pause() -> None:
    """Whoever asks, and with a pause waiting or not: SAFE is not left by a pause."""
    for actor in (FIRST, None):
        assert decide(ActKind.PAUSE, status=Status.SAFE, pending=None, actor=actor, now=NOW) is (
            Outcome.ARRIVED
        )


def test_a_pause_ends_by_itself_after_max_pause() -> None:
    week = timedelta(days=7)
    assert pause_end(timedelta(days=3650), now=NOW, max_pause=week) == NOW + week
    assert pause_end(timedelta(hours=12), now=NOW, max_pause=week) == NOW + timedelta(hours=12)


def test_only_an_agreed_or_an_operators_safe_is_marked_for_retention() -> None:
    assert safe_basis(Outcome.CONFIRM, command_line=False) == "confirmed"
    assert safe_basis(Outcome.APPLY, command_line=True) == "operator"
    assert safe_basis(Outcome.APPLY, command_line=False) == "marked"


def _group(status: Status, basis: str, since: datetime) -> Group:
    return Group(
        codename="PINE-7",
        schedule_kind=ScheduleKind.INTERVAL,
        interval_s=3600,
        grace_s=60,
        detained_after_s=7200,
        kem="X25519",
        public_key=b"",
        status=status,
        status_basis=basis,
        status_since=since,
    )


@pytest.mark.parametrize("basis", ["duress", "reported", "marked"])
def test_a_check_in_after_a_report_is_after_a_report(basis: str) -> None:
    group = _group(Status.DETAINED, basis, NOW)
    assert standing_report(group)
    assert after_report(group, at=NOW + timedelta(minutes=1))
    assert not after_report(group, at=NOW - timedelta(minutes=1))  # older news


def test_detention_by_silence_is_no_report() -> None:
    group = _group(Status.DETAINED, "silence", NOW)
    assert not standing_report(group)
    assert not after_report(group, at=NOW + timedelta(minutes=1))


@pytest.mark.parametrize(("language", "words"), [("en", "duress signal"), ("ko", "협박 신호")])
def test_the_after_report_notice_names_the_report_and_its_time(language: str, words: str) -> None:
    text = notice_text(
        codename="PINE-7",
        status=Status.DETAINED,
        basis="duress",
        since=NOW.replace(hour=14, minute=2),
        about=None,
        words=Words(language, UTC),
    )
    assert words in text
    assert "14:02" in text
    assert text.startswith("PINE-7: ")
    if language == "en":
        assert text == (
            "PINE-7: a check-in arrived after the duress signal at 2026-08-12 14:02 UTC; the "
            "status stays DETAINED until one of you clears it (/clear PINE-7)."
        )


def test_a_request_notice_names_who_asked_and_how_to_confirm() -> None:
    about = json.dumps(
        {"kind": "asked", "act": "safe", "who": "Ji-woo (P-4310A9)", "within_s": 1800}
    )
    text = notice_text(
        codename="PINE-7",
        status=Status.DETAINED,
        basis="duress",
        since=NOW,
        about=about,
        words=Words("en", UTC),
    )
    assert text == (
        "PINE-7: Ji-woo (P-4310A9) asked to mark it SAFE. Nothing changes until a second person "
        "confirms with /safe PINE-7 within 30 minutes; the alerts go on."
    )
