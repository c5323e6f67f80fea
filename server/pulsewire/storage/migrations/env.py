"""Alembic environment: runs migrations on the connection handed in by pulsewire.storage.engine."""

from alembic import context

from pulsewire.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run through `pulsewire migrate` or at server start")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
