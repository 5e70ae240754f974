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
WHICH_GROUP = _("Which group is this about?")
FROM_GROUP = _("Is this a message from the group?")
ANSWER_YES = _("Yes")
ANSWER_NOTE = _("No, just a note")
ANSWER_DANGER = _("They are in danger")
THANKS = _("Thank you.")

COMMAND_HELP = _("How to use this chat")
COMMAND_LANGUAGE = _("Change the language")
COMMAND_WIPE = _("Remove this conversation from your phone")
UNLINKED_WAITING = _("{count} message(s) wait in the unlinked queue.")

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
BASIS_CHECKED_IN = _("checked in")
BASIS_DUE = _("check-in due")
BASIS_GRACE = _("grace ran out")
BASIS_SILENCE = _("silent too long")
BASIS_REPORTED = _("reported by a relative")
BASIS_DURESS = _("duress phrase")
BASIS_MARKED = _("marked by an activist")
BASIS_DEAD_ZONE = _("planned dead zone")
BASIS_PAUSED = _("paused")

# --- activists' commands

NO_GROUPS = _("No groups.")
STATUS_LINE = _("{codename}: {status} since {since}; last check-in {ago} ago.")
GROUP_HEAD = _("{codename}: {status} ({basis}) since {since}.")
NEXT_CHANGE = _("Next deadline: {local}.")
ALERT_ACKNOWLEDGED = _("The alert was acknowledged at {local}.")
ALERT_OPEN = _("The alert is not acknowledged yet.")
USAGE = _("Use: {usage}")
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
)
TIMELINE_CAPTION = _(
    "{codename}: check-ins (dots), due windows and grace (bands), legs reached and the "
    "status over time (colours), up to {local}."
)
NOT_PAUSED = _("{codename} is not paused: it is {status}.")
