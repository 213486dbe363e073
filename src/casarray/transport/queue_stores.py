"""Which queue store a `--queue` URL names: a SQLite file (the default, under the
server's folder) or a schema in a PostgreSQL database (`queue_postgres`)."""

from __future__ import annotations

from casarray.transport.queue import QueueError, SqliteQueue, default_path


def open_queue(server: str, url: str | None = None) -> SqliteQueue:
    """The queue of `server`: the SQLite file `url` names (`sqlite:///path`), a schema of
    its own in the PostgreSQL database `url` names (`postgresql://...`,
    `queue_postgres`), else the default file under the server's folder."""
    if url is None:
        return SqliteQueue(default_path(server))
    if url.startswith("sqlite:///"):
        return SqliteQueue(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        from casarray.transport.queue_postgres import PostgresQueue

        return PostgresQueue(url, server)
    raise QueueError(
        f"The queue store {url!r} is not one casarray knows: use sqlite:///PATH or "
        "postgresql://USER@HOST/DATABASE."
    )
