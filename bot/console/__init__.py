"""The operator's console: the sealed inbox, the groups and the audit trail in a
browser on the operator's own machine (``intake console``).

The key is unlocked once in the terminal that starts it and never leaves that
process; the web application listens on 127.0.0.1 only. Nothing here is imported
until ``intake console`` runs (the web framework and the templates load then).
"""
