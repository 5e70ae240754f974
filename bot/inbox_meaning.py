"""What a message an operator links by hand means for its group.

The bot seals a message it cannot place before anyone knows its group, so it could not
match the group's codebook against the text. When an operator links it (``intake inbox
link``, or the console), the text is opened with the operator's key and matched here;
the codebook itself is sealed with the server secret, so this needs the installation's
``ServerKeys``. Kept apart from ``bot.meaning`` (which needs python-telegram-bot) so that
the command line loads no more than it uses."""

from __future__ import annotations

import uuid

from bot.phrases import match_phrases, strongest_phrase
from storage.codebook import all_phrases
from storage.crypto import ServerKeys
from storage.inbox import open_versions, text_of
from storage.models import Group, Message, Signal
from storage.sealing import Keyring
from storage.session import AsyncSession


async def codebook_meaning(
    session: AsyncSession,
    keyring: Keyring,
    *,
    server: ServerKeys,
    message: Message,
    group: Group,
) -> tuple[Signal | None, uuid.UUID | None]:
    """The signal of the strongest phrase of ``group``'s codebook (or the organisation's)
    in the message's latest text, with the leg of a ``stage`` phrase; (None, None) when
    none matches."""
    versions = await open_versions(session, keyring, message=message)
    text = text_of(versions[-1].body) if versions else ""
    phrases = await all_phrases(session, server=server)
    mine = [p for p in phrases if p.group_id in (None, group.id)]
    strongest = strongest_phrase(match_phrases(text, mine))
    if strongest is None:
        return None, None
    return strongest.means, strongest.leg_id
