"""Alembic environment: run against the connection ``storage.db`` hands in."""

from alembic import context

from storage.models import metadata  # every table, registered as storage.models loads

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through storage.db.migrate (intake init does)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
