"""What an alert says, and how fast the sender may speak: pure pieces of bot.alerts."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.activists import answered_line
from bot.alerts import ANSWER_ROOM, Facts, Limiter, render
from bot.i18n import Words
from storage.models import AckKind, AlertPurpose, Status

SINCE = datetime(2026, 8, 11, 2, 0, tzinfo=UTC)
FACTS = Facts(
    codename="PINE-7",
    status=Status.SILENT,
    basis="grace ran out",
    since=SINCE,
    last_checkin_at=SINCE - timedelta(hours=14),
    leg="Kunming",
)
SEOUL = ZoneInfo("Asia/Seoul")


def test_an_alert_says_codename_status_basis_last_check_in_and_leg_in_local_time() -> None:
    text = render(
        AlertPurpose.ALERT, FACTS, language="en", tz=SEOUL, now=SINCE + timedelta(minutes=5)
    )
    assert text.splitlines() == [
        "⚠ Alert: PINE-7 is SILENT (no check-in by the end of the grace period) since "
        "2026-08-11 11:00 KST.",
        "Last check-in 14 hours 5 minutes ago, at 2026-08-10 21:00 KST.",
        "Leg: Kunming.",
    ]


def test_an_alert_in_korean_says_status_basis_and_ago_in_korean() -> None:
    text = render(
        AlertPurpose.ALERT, FACTS, language="ko", tz=SEOUL, now=SINCE + timedelta(minutes=12)
    )
    assert text.splitlines() == [
        "⚠ 알림: PINE-7 — 2026-08-11 11:00 KST부터 연락 두절 상태예요(유예 시간 안에 연락 없음).",
        "마지막 연락: 14시간 12분 전, 2026-08-10 21:00 KST.",
        "구간: Kunming.",
    ]


@pytest.mark.parametrize(
    ("language", "round_", "expected"),
    [
        ("en", 1, "⚠ 1st reminder, not acknowledged yet: PINE-7"),
        ("en", 2, "⚠ 2nd reminder, not acknowledged yet: PINE-7"),
        ("en", 3, "⚠ 3rd reminder, not acknowledged yet: PINE-7"),
        ("en", 11, "⚠ 11th reminder, not acknowledged yet: PINE-7"),
        ("ko", 3, "⚠ 3차 재알림, 아직 아무도 확인하지 않았어요: PINE-7"),
    ],
)
def test_a_reminder_says_which_reminder_it_is(language: str, round_: int, expected: str) -> None:
    text = render(
        AlertPurpose.REMINDER, FACTS, language=language, tz=SEOUL, now=SINCE, round_=round_
    )
    assert text.startswith(expected)


def test_an_escalated_alert_says_how_long_no_one_acknowledged() -> None:
    first = render(AlertPurpose.ALERT, FACTS, language="en", tz=SEOUL, now=SINCE)
    wider = render(
        AlertPurpose.ALERT,
        FACTS,
        language="en",
        tz=SEOUL,
        now=SINCE,
        escalated_after=timedelta(minutes=20),
    )
    assert first.startswith("⚠ Alert: PINE-7")
    assert wider.startswith("⚠ Escalated, no one acknowledged for 20 minutes: PINE-7")
    korean = render(
        AlertPurpose.ALERT,
        FACTS,
        language="ko",
        tz=SEOUL,
        now=SINCE,
        escalated_after=timedelta(minutes=20),
    )
    assert korean.startswith("⚠ 확대 알림, 20분 동안 아무도 확인하지 않았어요")


def test_an_all_clear_says_again_only_when_the_group_was_so_before() -> None:
    safe = replace(FACTS, status=Status.SAFE, basis="marked")
    first = render(AlertPurpose.ALL_CLEAR, safe, language="en", tz=SEOUL, now=SINCE)
    again = render(
        AlertPurpose.ALL_CLEAR, replace(safe, again=True), language="en", tz=SEOUL, now=SINCE
    )
    assert first.startswith("✓ PINE-7 is SAFE (marked by an activist) since")
    assert "again" not in first
    assert again.startswith("✓ PINE-7 is SAFE again (marked by an activist) since")


def test_a_group_with_no_check_in_says_so_rather_than_a_dash() -> None:
    never = replace(FACTS, last_checkin_at=None)
    for language, words in (("en", "No check-in yet."), ("ko", "아직 연락이 없어요.")):
        text = render(AlertPurpose.ALERT, never, language=language, tz=SEOUL, now=SINCE)
        assert words in text.splitlines()
        assert "—" not in text.splitlines()[1]


def test_every_time_carries_its_zone_abbreviation() -> None:
    for zone, abbreviation in (("UTC", "UTC"), ("Asia/Seoul", "KST"), ("Asia/Bangkok", "UTC+07")):
        text = render(AlertPurpose.ALERT, FACTS, language="en", tz=ZoneInfo(zone), now=SINCE)
        times = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d (\S+?)[.]", text)
        assert times == [abbreviation, abbreviation], text


@pytest.mark.parametrize("language", ["en", "ko"])
def test_every_alert_sentence_has_a_translation(language: str) -> None:
    notices = [
        json.dumps({"kind": kind, "act": act, "who": "Min", "first": "Ji", "within_s": 1800})
        for kind in ("asked", "done", "confirmed")
        for act in ("pause", "safe", "clear", "resume")
    ]
    for purpose in AlertPurpose:
        abouts = [*notices, None] if purpose is AlertPurpose.NOTICE else ["Min"]
        for about in abouts:
            text = render(purpose, FACTS, language=language, tz=SEOUL, now=SINCE, about=about)
            assert "{" not in text
            if language == "ko":
                assert not any(
                    word in text
                    for word in ("is SILENT", "Last check-in", "handling", "asked", "clear it")
                )


async def test_the_limiter_keeps_one_message_a_second_per_chat_and_thirty_overall() -> None:
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = Limiter(clock=lambda: clock[0], sleep=sleep)
    sent: list[tuple[float, int]] = []
    for chat in [1, 1, 1]:
        await limiter.wait(chat)
        sent.append((clock[0], chat))
    assert [t for t, _ in sent] == [0.0, 1.0, 2.0]
    start = clock[0]
    for chat in range(100, 160):
        await limiter.wait(chat)
        sent.append((clock[0], chat))
    times = [t for t, _ in sent[3:]]
    assert max(sum(1 for t in times if w <= t < w + 1.0) for w in times) <= 30
    assert times[-1] - start >= 1.0


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_line_an_answered_alert_keeps_fits_the_room_a_digest_leaves(language: str) -> None:
    # The longest zone abbreviations are spelled out ("+0545"); the pseudonym is P-XXXXXX.
    words = Words(language, ZoneInfo("Asia/Kathmandu"))
    for kind in AckKind:
        line = answered_line(
            kind, who="P-4310A9", at=datetime(2026, 8, 12, tzinfo=UTC), words=words
        )
        assert len(f"\n\n{line}".encode("utf-16-le")) // 2 <= ANSWER_ROOM, line
