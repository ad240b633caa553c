"""Where the memory is kept: one ``Store`` per SQLite file or PostgreSQL database.

``open_store`` is the one place a path or URL becomes a store; everything else takes the
``stores.base.Store`` protocol. ``stores`` never imports ``memory``.
"""

from __future__ import annotations

from pathlib import Path

from stores.base import Store
from stores.errors import StoreError

__all__ = ["POSTGRES_SCHEMES", "is_postgres_url", "open_store"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_store(location: str | Path) -> Store:
    """Open (or create) the store at a path or URL, migrating its schema forward.

    Args:
        location: A SQLite file path, ``":memory:"``, or a ``postgresql://`` URL
            (needs the ``postgres`` extra: ``pip install 'context-attic[postgres]'``).

    Returns:
        The store; close it when done.

    Raises:
        StoreError: the store cannot be opened, its schema is newer than this release's,
            or the PostgreSQL driver is not installed.
    """
    if isinstance(location, str) and is_postgres_url(location):
        try:
            from stores.postgres_store import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"opening {location.split('@')[-1]!r} needs the PostgreSQL driver: "
                "pip install 'context-attic[postgres]'"
            ) from exc
        return PostgresStore(str(location))
    from stores.sqlite_store import SQLiteStore

    return SQLiteStore(location)
