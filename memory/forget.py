"""Forgetting: delete every trace of a session, or of every session idle for too long.

A user closes an account, a regulator asks: ``ConversationMemory.forget()`` (or
``Engine.forget``) removes the session's turns, archived originals, chunks, vectors,
summaries and FAISS index files, so its text is no longer in the database file or its
index folder (see ``stores.base.Store.forget``). ``forget_stored`` does the same for a
store by path or URL (``attic forget``), by session or by age. Other sessions are untouched.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import timedelta

from rich.console import Console

from memory._errors import ConfigError, InputError
from stores import is_postgres_url, open_store
from stores.base import ForgetReport

__all__ = ["add_forget_command", "forget_stored", "parse_age"]


def forget_stored(
    location: str,
    *,
    session: str | None = None,
    older_than: timedelta | None = None,
) -> ForgetReport:
    """Forget one session, or every session whose newest turn is older than ``older_than``.

    Args:
        location: A SQLite file or a ``postgresql://`` URL.
        session: The session to delete.
        older_than: Retention: delete the sessions idle for longer than this.

    Returns:
        What was deleted.

    Raises:
        ConfigError: neither or both of ``session`` and ``older_than`` given, or a
            negative age.
        StoreError: the store cannot be opened or failed; nothing was deleted.
    """
    if (session is None) == (older_than is None):
        raise ConfigError("give exactly one of session and older_than")
    if older_than is not None and older_than < timedelta(0):
        raise ConfigError(f"older_than must not be negative, not {older_than}")
    store = open_store(location)
    try:
        if session is not None:
            return store.forget(session)
        assert older_than is not None
        return store.forget_older_than(time.time() - older_than.total_seconds())
    finally:
        store.close()


def parse_age(text: str) -> timedelta:
    """Parse an age such as ``30d``, ``12h``, ``90m`` or ``45s`` (for ``--older-than``).

    Raises:
        argparse.ArgumentTypeError: not a number followed by d, h, m or s.
    """
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    number, unit = text[:-1], text[-1:].lower()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value < 0:
        raise argparse.ArgumentTypeError(f"an age like 30d, 12h, 90m or 45s, not {text!r}")
    return timedelta(**{units[unit]: value})


def add_forget_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    check: Callable[[str], str],
) -> None:
    """Add ``attic forget DB (--session S | --older-than AGE)`` to the command line.

    Args:
        commands: The command line's subcommands.
        check: Refuses a path that is not an existing attic file (returns it otherwise).
    """
    command = commands.add_parser("forget", help="delete a session, or sessions idle too long")
    command.add_argument("db", metavar="PATH", help="an attic SQLite file or a postgresql:// URL")
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", metavar="S", help="delete every trace of this session")
    which.add_argument(
        "--older-than", metavar="AGE", type=parse_age, help="sessions idle longer (30d, 12h...)"
    )

    def run(args: argparse.Namespace, console: Console, embedder: object) -> int:
        location = args.db if is_postgres_url(args.db) else check(args.db)
        report = forget_stored(location, session=args.session, older_than=args.older_than)
        if args.session is not None and not report.turns:
            raise InputError(f"no session {args.session!r} in {args.db!r}; nothing deleted")
        console.print(
            f"forgot {len(report.sessions)} session(s): {report.turns} messages, "
            f"{report.blobs} archived outputs, {report.chunks} chunks, "
            f"{report.summaries} summaries, {report.index_files} index files",
            markup=False,
        )
        return 0

    command.set_defaults(run=run)
