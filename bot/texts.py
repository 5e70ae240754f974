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
