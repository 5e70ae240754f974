"""Every sentence the bot says, in English; bot/locale holds the translations.

Replies to relatives are neutral on purpose (promise 4): the same words for a
check-in, a duress phrase, an unknown sender and an unreadable message, so that
whoever holds the phone learns nothing from them.
"""

from bot.i18n import _

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
UNLINKED_WAITING = _("{count} message(s) wait in the unlinked queue.")
# To a group's activists: that a relative's message with no signal came about a group in
# trouble, and nothing of what it says (operators read it: inbox list --unconfirmed).
UNCONFIRMED_NEWS = _("Unconfirmed news about {codename} arrived; operators can read it.")

# --- alerts to activists and admins: codename, status and times, never message contents

ALERT = _("⚠ {codename} is {status} ({basis}) since {since}.")
REMINDER = _("Reminder, not yet acknowledged: {codename} is {status} ({basis}) since {since}.")
LAST_CHECKIN = _("Last check-in {ago} ago, at {local}.")
NO_CHECKIN = _("No check-in received yet.")
LEG = _("Leg: {leg}.")
ALL_CLEAR = _("✓ {codename} is {status} again ({basis}), since {since}.")
CLAIMED = _("{who} is handling {codename}.")
UNREACHABLE = _(
    "An alert about {codename} could not reach {who}: they blocked the bot or their chat is gone."
)
DIGEST = _("{count} alerts:")
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
BACK_ONLINE = _(
    "The bot is back after {away} away; it took in {count} update(s) that queued meanwhile."
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
BASIS_DUE = _("check-in due")
BASIS_GRACE = _("grace ran out")
BASIS_SILENCE = _("silent too long")
BASIS_REPORTED = _("reported by a relative")
BASIS_DURESS = _("duress phrase")
BASIS_MARKED = _("marked by an activist")
BASIS_DEAD_ZONE = _("planned dead zone")
BASIS_PAUSED = _("paused")
BASIS_CLEARED = _("cleared by two people")
BASIS_CONFIRMED = _("agreed by two people")
BASIS_OPERATOR = _("set on the server by an admin")

# --- activists' commands

NO_GROUPS = _("No groups.")
STATUS_LINE = _("{codename}: {status} since {since}; last check-in {ago} ago.")
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
RESUMED = _("{codename} follows its schedule again.")
MARKED = _("{codename} is marked {status}.")
ON_LEG = _("{codename} is on the leg {leg}.")
TIME_ZONE_SET = _("Times are now shown in {zone}.")
WATCHER_COMMANDS = (
    ("status", _("Every group you watch")),
    ("group", _("One group in detail: /group CODENAME")),
    ("pause", _("Pause a group: /pause CODENAME 12h")),
    ("resume", _("Resume a paused group")),
    ("safe", _("Mark a group safe")),
    ("detained", _("Mark a group detained")),
    ("stage", _("Move a group to a leg: /stage CODENAME LEG")),
    ("timezone", _("The time zone of your alerts: /timezone Asia/Seoul")),
    ("timeline", _("A picture of a group's journey: /timeline CODENAME")),
    ("clear", _("Clear a warning (a second person confirms): /clear CODENAME")),
)
TIMELINE_CAPTION = _(
    "{codename}: check-ins (dots), due windows and grace (bands), legs reached and the "
    "status over time (colours), up to {local}."
)
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
