"""What people do to a group's status, and the rule that one phone cannot undo a
warning (PRODUCT promise 7): a report stands until a person clears it, and
pausing, marking SAFE or clearing a group that is SILENT or DETAINED takes a
second person's word. ``rules`` decides (pure, ``now`` passed in); ``service``
reads and writes; Telegram commands, alert buttons and the ``intake group``
commands all go through ``service``.
"""
