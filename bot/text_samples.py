"""Every text an activist or an admin can be sent, in English and Korean, side by side.

One sample of each alert (for each status and basis it can carry), each reminder
number, an escalation, the all-clears, the answered alert's line, the buttons, each
notice of a person's act, the admins' notes, and each command's answer, made with the
same functions the bot uses, on fixed facts and a fixed clock.
``tests/bot/test_text_samples.py`` holds them as snapshots and checks the Korean;
``python -m bot.text_samples > docs/texts.md`` writes the page to read them side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from bot import texts
from bot.activists import answered_line
from bot.acts.words import notice_text
from bot.alerts import Facts, digest, render
from bot.i18n import Words, zone_abbreviation
from bot.timeline import FOOTER, FOOTER_NONE, FOOTER_NOT_STARTED, FOOTER_OVERDUE
from storage.models import AckKind, AlertPurpose, Status

NOW = datetime(2026, 8, 11, 18, 12, tzinfo=UTC)  # 03:12 in Seoul
SEOUL = ZoneInfo("Asia/Seoul")
LANGUAGES = ("en", "ko")
# The statuses an alert is about, with each basis it can be recorded with.
ALERTED = (
    (Status.SILENT, "grace ran out"),
    (Status.DETAINED, "silence"),
    (Status.DETAINED, "reported"),
    (Status.DETAINED, "duress"),
    (Status.DETAINED, "marked"),
)
CLEARED = (
    (Status.OK, "checked in"),
    (Status.OK, "cleared"),
    (Status.OK, "resumed"),
    (Status.SAFE, "marked"),
    (Status.SAFE, "confirmed"),
    (Status.SAFE, "operator"),
)
# Every status as /group shows it, with the bases it can have.
SHOWN = (
    (Status.PENDING, "no check-in yet"),
    (Status.OK, "checked in"),
    (Status.OK, "resumed"),
    (Status.LATE, "check-in due"),
    *ALERTED,
    (Status.SAFE, "marked"),
    (Status.PAUSED, "paused"),
    (Status.PAUSED, "dead zone"),
)


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    say: Callable[[Words], str]

    def __call__(self, language: str) -> str:
        return self.say(Words(language, SEOUL))


def _facts(status: Status, basis: str, *, checked_in: bool = True) -> Facts:
    return Facts(
        codename="PINE-7",
        status=status,
        basis=basis,
        since=NOW - timedelta(minutes=12),
        last_checkin_at=NOW - timedelta(hours=14, minutes=5) if checked_in else None,
        leg="Kunming",
    )


def _alert(purpose: AlertPurpose, facts: Facts, **extra: object) -> Callable[[Words], str]:
    def say(words: Words) -> str:
        return render(
            purpose,
            facts,
            language=words.language,
            tz=words.tz,
            now=NOW,
            **extra,  # type: ignore[arg-type]
        )

    return say


def _alerts() -> Iterator[Sample]:
    for status, basis in ALERTED:
        facts = _facts(status, basis)
        yield Sample(f"alert: {status.value} ({basis})", _alert(AlertPurpose.ALERT, facts))
    silent = _facts(Status.SILENT, "grace ran out")
    yield Sample(
        "alert: no check-in yet",
        _alert(AlertPurpose.ALERT, replace(silent, last_checkin_at=None, leg=None)),
    )
    for round_ in (1, 2, 3, 4, 11, 21):
        yield Sample(f"reminder {round_}", _alert(AlertPurpose.REMINDER, silent, round_=round_))
    for minutes in (20, 60, 150):
        waited = timedelta(minutes=minutes)
        yield Sample(
            f"escalated after {minutes} minutes",
            _alert(AlertPurpose.ALERT, silent, escalated_after=waited),
        )
    for status, basis in CLEARED:
        facts = _facts(status, basis)
        yield Sample(f"all-clear: {status.value} ({basis})", _alert(AlertPurpose.ALL_CLEAR, facts))
        yield Sample(
            f"all-clear: {status.value} ({basis}) again",
            _alert(AlertPurpose.ALL_CLEAR, replace(facts, again=True)),
        )
    yield Sample("claimed", _alert(AlertPurpose.CLAIMED, silent, about="p-3f2a"))
    yield Sample("unreachable", _alert(AlertPurpose.UNREACHABLE, silent, about="p-3f2a"))
    for count in (1, 4):
        yield Sample(
            f"digest of {count}",
            partial(_digest, count),
        )
    for kind in AckKind:
        yield Sample(
            f"answered: {kind.value}",
            partial(_answered, kind),
        )
    for message in (
        texts.ACKNOWLEDGED,
        texts.CLAIMED_BY_YOU,
        texts.ALREADY_ACKNOWLEDGED,
        texts.NOT_YOURS,
    ):
        yield Sample(f"button answer: {message}", partial(_plain, message, {}))
    for button in (texts.BUTTON_ACK, texts.BUTTON_CLAIM, texts.BUTTON_CLEAR, texts.BUTTON_ACK_ALL):
        yield Sample(f"button: {button}", partial(_plain, button, {}))


def _notices() -> Iterator[Sample]:
    """What everyone else alerted about a group is told of a person's act, and of a
    check-in that came after a report (bot.acts.words)."""
    for basis in ("duress", "reported", "marked"):
        yield Sample(
            f"notice: a check-in after a report ({basis})",
            partial(_notice, Status.DETAINED, basis, None),
        )
    until = (NOW + timedelta(days=2)).isoformat()
    for act, status in (
        ("pause", Status.PAUSED),
        ("safe", Status.SAFE),
        ("clear", Status.OK),
        ("resume", Status.OK),
    ):
        acted: dict[str, object] = {"act": act, "who": "Ji-woo (p-3f2a)", "status": status.value}
        if act == "pause":
            acted["until"] = until
        yield Sample(
            f"notice: {act} done", partial(_notice, status, "marked", {**acted, "kind": "done"})
        )
        if act == "resume":
            continue  # only a PAUSED group is resumed, and one person does it
        # A request says no end: a pause is measured from its confirmation.
        asked = {**acted, "kind": "asked", "within_s": 1800, "until": None}
        yield Sample(f"notice: asked to {act}", partial(_notice, Status.DETAINED, "duress", asked))
        confirmed: dict[str, object] = {**acted, "kind": "confirmed", "first": "Min-jun (p-91c0)"}
        yield Sample(f"notice: {act} confirmed", partial(_notice, status, "confirmed", confirmed))


def _commands() -> Iterator[Sample]:
    for status in Status:
        # Only a status the clock can end has a next deadline.
        ends = status in (Status.OK, Status.LATE, Status.SILENT, Status.PAUSED)
        yield Sample(
            f"/status: {status.value}",
            partial(_status_line, "PINE-7", status, NOW - timedelta(hours=3), ends),
        )
    for status, basis in SHOWN:
        yield Sample(
            f"/group: {status.value} ({basis})",
            partial(_group_head, status, basis),
        )
    yield Sample(
        "/status: no check-in yet",
        partial(_status_line, "OAK-2", Status.PENDING, None, False),
    )
    local = NOW + timedelta(hours=12)
    simple: list[tuple[str, str, dict[str, object]]] = [
        ("/status: none", texts.NO_GROUPS, {}),
        ("/group: leg", texts.LEG, {"leg": "Kunming"}),
        ("/group: next deadline", texts.NEXT_CHANGE, {"local": local}),
        ("/group: acknowledged", texts.ALERT_ACKNOWLEDGED, {"local": NOW}),
        ("/group: open", texts.ALERT_OPEN, {}),
        ("/pause", texts.PAUSED_UNTIL, {"codename": "PINE-7", "local": local}),
        ("/pause: safe", texts.PAUSE_REFUSED_SAFE, {"codename": "PINE-7", "status": Status.SAFE}),
        ("/resume", texts.RESUMED, {"codename": "PINE-7"}),
        ("/resume: not paused", texts.NOT_PAUSED, {"codename": "PINE-7", "status": Status.OK}),
        ("/safe", texts.MARKED, {"codename": "PINE-7", "status": Status.SAFE}),
        ("/detained", texts.MARKED, {"codename": "PINE-7", "status": Status.DETAINED}),
        ("/stage", texts.ON_LEG, {"codename": "PINE-7", "leg": "Kunming"}),
        ("usage", texts.USAGE, {"usage": "/pause CODENAME 12h"}),
        ("not among yours", texts.NOT_AMONG_YOURS, {"codename": "PINE7"}),
        ("/stage: known legs", texts.KNOWN_LEGS, {"legs": "Shenyang, Kunming, Laos"}),
        (
            "/clear: nothing to clear",
            texts.NOTHING_TO_CLEAR,
            {"codename": "PINE-7", "status": Status.OK},
        ),
        (
            "/safe: asked a second person",
            texts.ASKED_SECOND,
            {"codename": "PINE-7", "status": Status.DETAINED, "command": "safe", "local": local},
        ),
        ("/safe: still waiting", texts.STILL_WAITING, {"codename": "PINE-7", "local": local}),
        ("/clear: cleared", texts.CLEARED, {"codename": "PINE-7"}),
        ("/pause: capped", texts.PAUSE_CAPPED, {"longest": timedelta(days=7)}),
        ("unconfirmed news", texts.UNCONFIRMED_NEWS, {"codename": "PINE-7"}),
        (
            "integrity warning",
            texts.INTEGRITY_REJECTED,
            {"table": "codebook_entries", "row": "3f2a91c0b7de", "reason": "bad signature"},
        ),
        ("audit checkpoint", texts.AUDIT_CHECKPOINT, {"count": 1204, "head": "1204:9b1f…"}),
        ("attachments budget reached", texts.BUDGET_REACHED, {"mb": 2048}),
        ("unreadable updates kept", texts.UNREADABLE_KEPT, {"count": 3}),
        ("/timeline caption", FOOTER, {"now": NOW, "due": local}),
        ("/timeline caption: none due", FOOTER_NONE, {"now": NOW}),
        ("/timeline caption: no check-in yet", FOOTER_NOT_STARTED, {"now": NOW}),
        (
            "/timeline caption: overdue",
            FOOTER_OVERDUE,
            {"now": NOW, "due": NOW - timedelta(hours=1)},
        ),
    ]
    for name, message, fields in simple:
        yield Sample(name, partial(_plain, message, fields))
    yield Sample(
        "/timezone",
        partial(
            _plain,
            texts.TIME_ZONE_SET,
            {"zone": "Asia/Seoul", "abbreviation": zone_abbreviation(NOW, SEOUL)},
        ),
    )
    for role in ("activist", "admin"):
        yield Sample(f"welcome: {role}", partial(_by_role, texts.welcome, role))
        yield Sample(f"/help: {role}", partial(_by_role, texts.help_for, role))
    for count in (1, 3):
        yield Sample(
            f"back online: {count}",
            partial(_counted, texts.BACK_ONLINE, count),
        )
        yield Sample(
            f"unlinked: {count}",
            partial(_counted, texts.UNLINKED_WAITING, count),
        )


def _notice(status: Status, basis: str, about: dict[str, object] | None, words: Words) -> str:
    return notice_text(
        codename="PINE-7",
        status=status,
        basis=basis,
        since=NOW - timedelta(minutes=12),
        about=None if about is None else json.dumps(about),
        words=words,
    )


def _digest(count: int, words: Words) -> str:
    return digest(["…"] * count, language=words.language)


def _answered(kind: AckKind, words: Words) -> str:
    return answered_line(kind, who="p-3f2a", at=NOW, words=words)


def _plain(message: str, fields: dict[str, object], words: Words) -> str:
    return words._(message).format(**_said(words, fields))


def _counted(pair: tuple[str, str], count: int, words: Words) -> str:
    away = words.duration(timedelta(hours=2, minutes=5))
    return words.n_(pair, count).format(count=count, away=away)


def _by_role(say: Callable[[str | None, Callable[[str], str]], str], role: str, w: Words) -> str:
    return say(role, w._)


def _status_line(
    codename: str, status: Status, last: datetime | None, ends: bool, words: Words
) -> str:
    return texts.status_line(
        words,
        codename=codename,
        status=status,
        since=NOW - timedelta(minutes=12) if last else NOW - timedelta(days=2),
        last_checkin=last,
        next_deadline=NOW + timedelta(hours=9) if ends else None,
        now=NOW,
    )


def _group_head(status: Status, basis: str, words: Words) -> str:
    lines = texts.group_head(
        words,
        codename="PINE-7",
        status=status,
        basis=basis,
        since=NOW - timedelta(minutes=12),
        last_checkin=NOW - timedelta(minutes=40),
        now=NOW,
    )
    return "\n".join(lines)


def _said(words: Words, fields: dict[str, object]) -> dict[str, object]:
    """Fields as the bot says them: times in the zone, statuses by name."""
    said: dict[str, object] = {}
    for key, value in fields.items():
        if isinstance(value, Status):
            said[key] = texts.status_in(words, value)
        elif isinstance(value, datetime):
            said[key] = words.local(value)
        elif isinstance(value, timedelta):
            said[key] = words.duration(value)
        else:
            said[key] = value
    return said


def samples() -> list[Sample]:
    return [*_alerts(), *_notices(), *_commands()]


def page() -> str:
    """docs/texts.md: every sample in English and Korean, one after the other."""
    lines = [
        "# What activists and admins read, in English and Korean",
        "",
        "Generated by `python -m bot.text_samples > docs/texts.md` from the bot's own",
        "functions, on fixed facts: the time is 03:12 in Seoul (KST), the group PINE-7 is on",
        "the Kunming leg, its last check-in was 14 hours before. `tests/bot/test_text_samples.py`",
        "fails when a text changes and this page is not made again.",
        "",
    ]
    for sample in samples():
        lines += [f"## {sample.name}", ""]
        for language in LANGUAGES:
            lines += [f"{language}:", "", "```text", sample(language), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(page(), end="")
