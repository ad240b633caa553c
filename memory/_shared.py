"""The engines a process shares: one per SQLite file or PostgreSQL URL, owned by the
handles ``ConversationMemory.open(path, ...)`` gives."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory._engine import Engine
from stores import is_postgres_url

if TYPE_CHECKING:
    from memory._core import ConversationMemory

__all__ = ["forget_shared", "open_shared"]

_shared: dict[str, Engine] = {}
_shared_lock = threading.RLock()


def _shared_key(location: str) -> str | None:
    """The key of a location's shared engine (None: ``":memory:"``, never shared)."""
    if location == ":memory:":
        return None
    return location if is_postgres_url(location) else os.path.realpath(Path(location))


def open_shared(location: str | os.PathLike[str], **options: Any) -> ConversationMemory:
    """Open a handle on the process's shared engine for ``location``.

    The engine is created on first use (``":memory:"``: always a new private one) and is
    owned by its handles: it closes when the last of them is closed (a private one also
    when its handle is collected). ``options`` are ``Engine.open``'s.

    Raises:
        StoreError: the store cannot be opened; and what ``Engine.open`` raises.
    """
    text = location if isinstance(location, str) else os.fspath(location)
    key = _shared_key(text)
    with _shared_lock:
        engine = _shared.get(key) if key is not None else None
        if engine is None or engine.closed:
            engine = Engine(text)
            engine._owned_by_handles = True
            if key is not None:
                _shared[key] = engine
        try:
            return engine.open(**options)
        except BaseException:
            if engine.handles == 0:
                engine.close()
            raise


def forget_shared(engine: Engine) -> None:
    """Drop ``engine`` from the shared ones (it closed)."""
    with _shared_lock:
        for key, value in list(_shared.items()):
            if value is engine:
                del _shared[key]
