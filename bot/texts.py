"""Every sentence the bot says, in English; bot/locale holds the translations.

Replies to relatives are neutral on purpose (promise 4): the same words for a
check-in, a duress phrase, an unknown sender and an unreadable message, so that
whoever holds the phone learns nothing from them.
"""

from collections.abc import Callable
from datetime import datetime

from bot.i18n import N_, Words, _, pgettext_
from storage.models import Status

RECEIPT = _("Received, thank you. Ref {ref}")
WELCOME = _("Welcome. You can send messages here at any time.")
TOO_LARGE = _(
    "This file is too large to keep ({size_mb} MB, at most {limit_mb} MB). Its details were "
    "kept; please send a smaller copy or a screenshot."
)
HELP = _(
    "Forward or paste the messages you receive here. Each one is kept safely and then removed "
    "from this chat.\n/language changes the language. /wipe removes this conversation from your "
    "phone."
)
LANGUAGE_QUESTION = _("Which language?")
LANGUAGE_SET = _("Language: English")
WIPED = _("Done.")
# The follow-up every stored message gets, from anyone, whatever it matched: its words
# name no group and no danger. The third button (a flag, explained at enrolment, not in
# the chat) reports trouble; it asks once more (SURE), so one stray tap raises nothing.
FOLLOW_UP = _("Did this come from them?")
ANSWER_YES = _("Yes")
ANSWER_NO = _("No")
ANSWER_FLAG = "⚑"
SURE = _("Are you sure?")
# A relative of several groups, after Yes or a confirmed flag: buttons with the labels
# fixed at invite time (intake invite --chat-label), never codenames.
WHICH_ONE = _("Which one?")
THANKS = _("Thank you.")

COMMAND_HELP = _("How to use this chat")
COMMAND_LANGUAGE = _("Change the language")
COMMAND_WIPE = _("Remove this conversation from your phone")
UNLINKED_WAITING = N_(
    "{count} message waits in the unlinked queue.", "{count} messages wait in the unlinked queue."
)
# To a group's activists: that a relative's message with no signal came about a group in
# trouble, and nothing of what it says (operators read it: inbox list --unconfirmed).
UNCONFIRMED_NEWS = _("Unconfirmed news about {codename} arrived; operators can read it.")

# --- alerts to activists and admins: codename, status and times, never message contents

# Status names as said to people (the stored values stay the English words).
STATUS_NAMES = {
    Status.PENDING: pgettext_("status", "PENDING"),
    Status.OK: pgettext_("status", "OK"),
    Status.LATE: pgettext_("status", "LATE"),
    Status.SILENT: pgettext_("status", "SILENT"),
    Status.DETAINED: pgettext_("status", "DETAINED"),
    Status.SAFE: pgettext_("status", "SAFE"),
    Status.PAUSED: pgettext_("status", "PAUSED"),
}
ALERT = _("⚠ Alert: {codename} is {status} ({basis}) since {since}.")
REMINDER = _(
    "⚠ {nth} reminder, not acknowledged yet: {codename} is {status} ({basis}) since {since}."
)
ESCALATED = _(
    "⚠ Escalated, no one acknowledged for {waited}: {codename} is {status} ({basis}) since {since}."
)
LAST_CHECKIN = _("Last check-in {ago}, at {local}.")
NO_CHECKIN = _("No check-in yet.")
LEG = _("Leg: {leg}.")
ALL_CLEAR = _("✓ {codename} is {status} ({basis}) since {since}.")
ALL_CLEAR_AGAIN = _("✓ {codename} is {status} again ({basis}) since {since}.")
CLAIMED = _("{who} is handling {codename}.")
UNREACHABLE = _(
    "An alert about {codename} could not reach {who}: they blocked the bot or their chat is gone."
)
DIGEST = N_("{count} alert:", "{count} alerts:")
BUTTON_ACK = _("Acknowledge")
BUTTON_CLAIM = _("I'm handling this")
BUTTON_ACK_ALL = _("Acknowledge all")
ACKNOWLEDGED = _("Acknowledged. Reminders stop.")
CLAIMED_BY_YOU = _("You are handling it; the others were told.")
ALREADY_ACKNOWLEDGED = _("Already acknowledged.")
NOT_YOURS = _("This alert was not sent to you.")
INTEGRITY_REJECTED = _(
    "Integrity warning: a row of {table} ({row}) fails its operator signature ({reason}) and "
    "is not used. Someone may have written to the database: run `intake audit verify`."
)
AUDIT_CHECKPOINT = _(
    "Audit checkpoint ({count} entries). Keep it; on the server, "
    "`intake audit verify --checkpoint {head}` shows whether the log was cut or rewritten."
)
# The line an answered alert keeps once its buttons go.
ACKNOWLEDGED_BY = _("✓ Acknowledged by {who} at {time}.")
HANDLED_BY = _("✓ {who} took it on at {time}.")
BACK_ONLINE = N_(
    "The bot is back after {away} away; it took in {count} update that queued meanwhile.",
    "The bot is back after {away} away; it took in {count} updates that queued meanwhile.",
)
BUDGET_REACHED = _(
    "The installation keeps {mb} MB of attachments at most, and that is reached: new files are "
    "kept as details only. Raise [intake] attachments_budget_mb or free space."
)
UNREADABLE_KEPT = _(
    "{count} of them this version of the bot could not read; each was kept sealed as raw "
    "data for operators."
)
BASIS_CHECKED_IN = _("checked in")
BASIS_RESUMED = _("schedule resumed")
BASIS_NOT_YET = _("no check-in yet")
BASIS_DUE = _("a check-in was due")
BASIS_GRACE = _("no check-in by the end of the grace period")
BASIS_SILENCE = _("silent too long")
BASIS_REPORTED = _("reported by a relative")
BASIS_DURESS = _("duress phrase")
BASIS_MARKED = _("marked by an activist")
BASIS_DEAD_ZONE = _("planned dead zone")
BASIS_PAUSED = _("paused by an activist")
BASIS_CLEARED = _("cleared by two people")
BASIS_CONFIRMED = _("agreed by two people")
BASIS_OPERATOR = _("set on the server by an admin")
# Each recorded basis (storage's words) and how it is said.
BASIS_TEXT = {
    "checked in": BASIS_CHECKED_IN,
    "resumed": BASIS_RESUMED,
    "no check-in yet": BASIS_NOT_YET,
    "check-in due": BASIS_DUE,
    "grace ran out": BASIS_GRACE,
    "silence": BASIS_SILENCE,
    "reported": BASIS_REPORTED,
    "duress": BASIS_DURESS,
    "marked": BASIS_MARKED,
    "dead zone": BASIS_DEAD_ZONE,
    "paused": BASIS_PAUSED,
    "cleared": BASIS_CLEARED,
    "confirmed": BASIS_CONFIRMED,
    "operator": BASIS_OPERATOR,
}

# --- activists' commands

NO_GROUPS = _("No groups.")
STATUS_LINE = _("{codename}: {status} since {since}; last check-in {ago}.")
STATUS_LINE_NO_CHECKIN = _("{codename}: {status} since {since}; no check-in yet.")
GROUP_HEAD = _("{codename}: {status} ({basis}) since {since}.")
NEXT_CHANGE = _("Next deadline: {local}.")
ALERT_ACKNOWLEDGED = _("The alert was acknowledged at {local}.")
ALERT_OPEN = _("The alert is not acknowledged yet.")
USAGE = _("Use: {usage}")
# An activist's or admin's command about a group that is not theirs (or not at all):
# answered as a command, never with a relative's receipt.
NOT_AMONG_YOURS = _("No group {codename} among yours.")
KNOWN_LEGS = _("Known legs: {legs}")
PAUSED_UNTIL = _("{codename} is paused until {local}.")
PAUSE_REFUSED_SAFE = _("{codename} is {status}: it has arrived, so there is no schedule to pause.")
RESUMED = _("{codename} follows its schedule again from now.")
MARKED = _("{codename} is marked {status}.")
ON_LEG = _("{codename} is on the leg {leg}.")
TIME_ZONE_SET = _("Times are now shown in {zone} ({abbreviation}).")
WATCHER_COMMANDS = (
    ("status", _("Every group you watch")),
    ("group", _("One group in detail")),
    ("pause", _("Pause a group's schedule for a while")),
    ("resume", _("Start a paused group's schedule again from now")),
    ("safe", _("Mark a group safe")),
    ("detained", _("Mark a group detained")),
    ("stage", _("Move a group to a leg")),
    ("timezone", _("The time zone of the times you are shown")),
    ("timeline", _("A picture of a group's journey")),
    ("clear", _("Clear a warning (a second person confirms)")),
)
# One example of each command for /help (a command without one is shown bare).
EXAMPLES = {
    "status": "/status",
    "group": "/group PINE-7",
    "pause": "/pause PINE-7 12h",
    "resume": "/resume PINE-7",
    "safe": "/safe PINE-7",
    "detained": "/detained PINE-7",
    "stage": "/stage PINE-7 Kunming",
    "timezone": "/timezone Asia/Seoul",
    "timeline": "/timeline PINE-7",
    "clear": "/clear PINE-7",
    "language": "/language",
}
WELCOME_ACTIVIST = _(
    "Welcome. You are an activist here: alerts about your groups come to this chat, with "
    "buttons to acknowledge them. /help lists your commands."
)
WELCOME_ADMIN = _(
    "Welcome. You are an admin here: alerts about every group come to this chat, and you may "
    "use every command on every group. /help lists your commands."
)
HELP_ACTIVIST = _("Your commands, each with an example:")
HELP_ADMIN = _(
    "Your commands, on every group, each with an example. Invites, revocations and keys are "
    "made on the server, for example: intake invite --role activist --group PINE-7"
)
HELP_EXAMPLE = _("for example: {example}")
NOT_PAUSED = _("{codename} is not paused: it is {status}.")

# --- two people for a warning, and check-ins after a report (bot.acts)

ACT_PAUSE = _("pause it")
ACT_PAUSE_UNTIL = _("pause it until {until}")
ACT_SAFE = _("mark it SAFE")
ACT_CLEAR = _("clear it")
ACT_RESUME = _("resume its schedule")
REPORT_DURESS = _("duress signal")
REPORT_REPORTED = _("detention report")
REPORT_MARKED = _("DETAINED mark")
NOTICE_AFTER_REPORT = _(
    "{codename}: a check-in arrived after the {report} at {since}; the status stays {status} "
    "until one of you clears it (/clear {codename})."
)
NOTICE_ASKED = _(
    "{codename}: {who} asked to {act}. Nothing changes until a second person confirms with "
    "/{command} {codename} within {within}; the alerts go on."
)
NOTICE_DONE = _("{codename}: {who} chose to {act}; it is now {status}.")
NOTICE_CONFIRMED = _(
    "{codename}: {who} confirmed the request of {first} to {act}; it is now {status}."
)
ASKED_SECOND = _(
    "{codename} stays {status} until a second person (another activist of the group or an "
    "admin) confirms with /{command} {codename} before {local}. The others were told."
)
STILL_WAITING = _("You asked already: {codename} waits for a second person until {local}.")
NOTHING_TO_CLEAR = _("{codename} is {status}: there is nothing to clear.")
CLEARED = _("{codename} is cleared: it follows its schedule again from now.")
PAUSE_CAPPED = _("A pause lasts at most {longest}.")
BUTTON_CLEAR = _("Clear (a second person confirms)")


def welcome(role: str | None, t: Callable[[str], str]) -> str:
    """The welcome for a role ("activist", "admin"); anyone else gets the neutral one."""
    return t({"activist": WELCOME_ACTIVIST, "admin": WELCOME_ADMIN}.get(role or "", WELCOME))


def help_for(role: str | None, t: Callable[[str], str]) -> str:
    """/help: an activist's and an admin's commands, each with one example; a relative's
    (and a stranger's) help stays the neutral one."""
    if role not in ("activist", "admin"):
        return t(HELP)
    lines = [t(HELP_ADMIN if role == "admin" else HELP_ACTIVIST), ""]
    for name, words in (*WATCHER_COMMANDS, ("language", COMMAND_LANGUAGE)):
        lines.append(f"/{name} — {t(words)}")
        lines.append("    " + t(HELP_EXAMPLE).format(example=EXAMPLES.get(name, f"/{name}")))
    return "\n".join(lines)


def status_in(words: Words, status: Status) -> str:
    """A status's name in the person's language (Korean: 정상, 지연, 연락 두절...)."""
    return words.p_(STATUS_NAMES[status])


def basis_in(words: Words, basis: str | None) -> str:
    """Why a status is what it is, in the person's language."""
    return words._(BASIS_TEXT.get(basis or "", basis or ""))


def status_line(
    words: Words,
    *,
    codename: str,
    status: Status,
    since: datetime,
    last_checkin: datetime | None,
    next_deadline: datetime | None,
    now: datetime,
) -> str:
    """One group's line in /status."""
    fields = {"codename": codename, "status": status_in(words, status), "since": words.local(since)}
    line = (
        words._(STATUS_LINE_NO_CHECKIN).format(**fields)
        if last_checkin is None
        else words._(STATUS_LINE).format(**fields, ago=words.ago(last_checkin, now))
    )
    if next_deadline is not None:
        line += " " + words._(NEXT_CHANGE).format(local=words.local(next_deadline))
    return line


def group_head(
    words: Words,
    *,
    codename: str,
    status: Status,
    basis: str | None,
    since: datetime,
    last_checkin: datetime | None,
    now: datetime,
) -> list[str]:
    """The first lines of /group: the status and why, and the last check-in."""
    return [
        words._(GROUP_HEAD).format(
            codename=codename,
            status=status_in(words, status),
            basis=basis_in(words, basis),
            since=words.local(since),
        ),
        words._(NO_CHECKIN)
        if last_checkin is None
        else words._(LAST_CHECKIN).format(
            ago=words.ago(last_checkin, now), local=words.local(last_checkin)
        ),
    ]
