"""What a notice about a group says (``AlertPurpose.NOTICE``): a person's act,
told to everyone else alerted about the group, or a check-in after a report.
Pure; the alert sender calls it with the recipient's language and zone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from bot import texts
from bot.i18n import Words
from storage.models import Status

ACT_WORDS = {
    "pause": texts.ACT_PAUSE,
    "safe": texts.ACT_SAFE,
    "clear": texts.ACT_CLEAR,
    "resume": texts.ACT_RESUME,
}
REPORT_WORDS = {
    "duress": texts.REPORT_DURESS,
    "reported": texts.REPORT_REPORTED,
    "marked": texts.REPORT_MARKED,
}


def notice_text(
    *,
    codename: str,
    status: Status,
    basis: str,
    since: datetime,
    about: str | None,
    words: Words,
) -> str:
    """``about`` is the sealed notice (JSON); None means a check-in came after
    the report recorded by the flip the notice hangs on (``basis`` at ``since``).
    Said in the recipient's language and zone (``words``), status names included."""
    _ = words._
    local = words.local
    if about is None:
        report = _(REPORT_WORDS.get(basis, texts.REPORT_REPORTED))
        return _(texts.NOTICE_AFTER_REPORT).format(
            codename=codename, report=report, since=local(since), status=_status(words, status)
        )
    try:
        parsed = json.loads(about)
    except ValueError:
        parsed = None
    # A notice is always written as a JSON object (bot.acts.service); anything
    # else is said as a bare "who did something", never shown raw.
    notice: dict[str, object] = parsed if isinstance(parsed, dict) else {"who": about}
    act = str(notice.get("act", ""))
    if act == "pause" and notice.get("until"):
        doing = _(texts.ACT_PAUSE_UNTIL).format(
            until=local(datetime.fromisoformat(str(notice["until"])))
        )
    else:
        doing = _(ACT_WORDS.get(act, act))
    fields = {
        "codename": codename,
        "who": str(notice.get("who", "?")),
        "act": doing,
        "status": _status(words, notice.get("status", status)),
        "command": act,
    }
    if notice.get("kind") == "asked":
        within = words.duration(timedelta(seconds=int(str(notice.get("within_s", 60)))))
        return _(texts.NOTICE_ASKED).format(**fields, within=within)
    if notice.get("kind") == "confirmed":
        return _(texts.NOTICE_CONFIRMED).format(**fields, first=str(notice.get("first", "?")))
    return _(texts.NOTICE_DONE).format(**fields)


def _status(words: Words, status: object) -> str:
    """A status (a ``Status``, or its value as a notice stores it) by its name in
    the recipient's language; anything unknown is said as it is."""
    try:
        return texts.status_in(words, Status(str(status)))
    except ValueError:
        return str(status)
