"""The bot's integrity duties: telling admins about rows that fail their operator
signature, and checkpointing the audit chain's head off the server."""
