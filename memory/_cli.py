"""The ``attic`` command line: a thin layer over the library.

Exit codes: 0 on success, 1 on a library error (``ContextAtticError``, one line on stderr,
no traceback), 2 on a usage error (argparse). Data (tables, JSONL, recalled text) goes to
stdout; progress bars and errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.messages import convert_to_openai_messages, message_to_dict
from rich.console import Console
from rich.markup import escape

from memory import _plot as plot
from memory._cli_replay import calls_table, cost_lines, replay_rows
from memory._cli_replay import styled_table as _table
from memory._core import ConversationMemory
from memory._errors import ContextAtticError, InputError, StoreError
from memory._replay import (
    DEFAULT_PRICE_PER_MTOK,
    load_transcript,
    totals,
)
from memory.forget import add_forget_command
from memory.pricing import DEFAULT_PRICES, price_of, unpriced_warning
from stores import is_postgres_url, open_store
from stores.base import SessionInfo

__all__ = ["main"]

DEMO_TRANSCRIPT = Path(__file__).resolve().parents[1] / "examples/transcripts/marshmallow_1867.json"
SQLITE_MAGIC = b"SQLite format 3\x00"
PIPED_WIDTH = 200
"""Columns of tables written to a pipe or file, where no terminal says how wide."""
_ROLES = {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}


def _database(path: str) -> str:
    """Check that ``path`` is an existing context-attic database, without touching it."""
    if is_postgres_url(path):
        return path
    file = Path(path)
    if not file.exists():
        raise InputError(f"no database at {path!r}: give the path of an existing attic file")
    if not file.is_file():
        raise InputError(f"{path!r} is not a file")
    with file.open("rb") as handle:
        if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise StoreError(f"{path!r} is not a SQLite database (corrupted?); left untouched")
    try:  # read-only probe, so a foreign database never gets our tables
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'turns'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path!r} as a SQLite database: {exc}") from exc
    if found is None:
        raise StoreError(f"{path!r} is a SQLite database but not a context-attic one")
    return path


def _sessions(path: str) -> list[SessionInfo]:
    store = open_store(path)
    try:
        return store.turns.sessions()
    finally:
        store.close()


def _session_info(path: str, session: str) -> SessionInfo:
    sessions = _sessions(_database(path))
    for info in sessions:
        if info.session == session:
            return info
    known = ", ".join(repr(s.session) for s in sessions[:20]) or "none"
    raise InputError(f"no session {session!r} in {path!r}; its sessions: {known}")


def _open(args: argparse.Namespace, embedder: Embeddings | None) -> ConversationMemory:
    _session_info(args.db, args.session)
    return ConversationMemory.open(args.db, session=args.session, embedder=embedder)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _summary(mem: ConversationMemory) -> str | None:
    """The session's latest running summary, or None before the first fold."""
    record = mem.summary
    return record.text if record is not None and record.text else None


def _run_replay(args: argparse.Namespace, console: Console, embedder: Embeddings | None) -> int:
    if args.plot:
        plot.check_available(args.plot)
    messages = load_transcript(args.file, record_id=args.id)
    file = Path(args.db)
    existing = args.db != ":memory:" and file.is_file() and file.stat().st_size > 0
    if existing and any(s.session == args.session for s in _sessions(_database(args.db))):
        raise InputError(f"session {args.session!r} is in {args.db!r}; pick a new --session")
    try:
        rows = replay_rows(args, messages, embedder)
    except InputError as exc:  # a message of the transcript: say which file holds it
        record = f" (record {args.id!r})" if args.id else ""
        raise InputError(f"{args.file}{record}: {exc}") from exc
    name = Path(args.file).name + (f" ({args.id})" if args.id else "")
    price = price_of(args.model, DEFAULT_PRICES)
    if price is None and args.price_per_mtok is None:
        warning = unpriced_warning(args.model, DEFAULT_PRICES)
        Console(stderr=True).print(
            escape(
                f"{warning} (or --price-per-mtok); priced at "
                f"${DEFAULT_PRICE_PER_MTOK:g}/Mtok, no caching"
            )
        )
    summed = totals(
        rows,
        price_per_mtok=args.price_per_mtok
        if args.price_per_mtok is not None
        else (price.input_per_mtok if price else DEFAULT_PRICE_PER_MTOK),
        cached_discount=price.cached_discount if price else 0.0,
        billed=price is not None and args.price_per_mtok is None,
    )
    if args.json:
        for row in rows:
            sys.stdout.write(json.dumps(row.to_dict(), sort_keys=True, default=str) + "\n")
    else:
        title = f"Replay of {escape(name)} · {args.model} · budget {args.budget:,} tokens"
        console.print(calls_table(title, rows))
        lines = cost_lines(summed, args.model, args.budget, known=price is not None)
        if summed.archived_refs:
            lines.insert(1, f"{summed.archived_refs} tool outputs archived as digests.")
        console.print("\n".join(lines), soft_wrap=True)
    if args.plot:
        title = f"Replay of {name}"
        plot.plot_replay(rows, args.plot, summed=summed, title=title, budget=args.budget)
        Console(stderr=True).print(f"plot written to {escape(str(args.plot))}")
    return 0


def _run_inspect(args: argparse.Namespace, console: Console, embedder: Embeddings | None) -> int:
    if args.session is None:
        sessions = _sessions(_database(args.db))
        table = _table(
            f"Sessions in {escape(args.db)}",
            "session",
            "messages",
            "tokens",
            "first",
            "last",
            text_columns=1,
        )
        for info in sessions:
            table.add_row(
                escape(info.session),
                f"{info.turns:,}",
                f"{info.tokens:,}",
                _when(info.first_at),
                _when(info.last_at),
            )
        console.print(table if sessions else f"no sessions in {escape(args.db)}")
        return 0
    with _open(args, embedder) as mem:
        with mem._state.lock:  # every figure from one read, while a server writes on
            mem._current()
            view = mem._state.view
            count = view.turn_count
            roles = Counter(_ROLES.get(kind, kind) for kind in map(view.log.kind_at, range(count)))
            raw, sent = view.raw_history_tokens, view.history_tokens
            span = (view.log.time_at(0), view.log.time_at(count - 1)) if count else None
        refs = mem.archive.refs()
        summary = _summary(mem)
    by_role = ", ".join(f"{n:,} {role}" for role, n in sorted(roles.items()))
    when = f"; {_when(span[0])} to {_when(span[1])}" if span else ""
    console.print(
        f"[bold]session {escape(args.session)}[/]: {count:,} messages ({by_role}); "
        f"{raw:,} tokens raw, {sent:,} with digests{when}",
        soft_wrap=True,
    )
    if refs:
        columns = ("ref", "kind", "bytes", "tokens", "digest tokens")
        table = _table(f"{len(refs)} archived tool outputs", *columns, text_columns=2)
        for record in refs:
            table.add_row(
                record.ref,
                escape(record.note or record.kind),
                f"{record.size:,}",
                f"{record.tokens:,}",
                f"{record.digest_tokens:,}",
            )
        console.print(table)
    else:
        console.print("no archived tool outputs")
    if summary:
        console.print("[bold]running summary[/]")
        console.print(summary, markup=False, highlight=False)
    return 0


def _run_recall(args: argparse.Namespace, console: Console, embedder: Embeddings | None) -> int:
    with _open(args, embedder) as mem:
        refs = [record.ref for record in mem.archive.refs()]
        if args.ref is not None and args.ref not in refs:  # the tool would answer with advice
            known = ", ".join(refs[-20:]) or "none"
            raise InputError(f"no archived output with ref {args.ref!r}; the session's: {known}")
        if args.query is not None:  # a fresh process: let the index load and catch up first
            mem.wait_until_indexed()
        text = mem.recall(
            ref=args.ref, query=args.query, max_tokens=args.max_tokens, page=args.page
        )
    sys.stdout.write(text + "\n")
    return 0


def _run_export(args: argparse.Namespace, console: Console, embedder: Embeddings | None) -> int:
    with _open(args, embedder) as mem:
        history = mem.history()
    if args.format == "openai":
        lines: list[Any] = convert_to_openai_messages(history)
        for line, message in zip(lines, history, strict=True):
            if (at := message.additional_kwargs.get("timestamp")) is not None:
                line["timestamp"] = at  # as mem.add reads it back
    else:
        lines = [message_to_dict(message) for message in history]
    text = "".join(json.dumps(line, default=str) + "\n" for line in lines)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {args.out!r}: {exc.strerror}") from exc
    console.print(f"exported {len(lines):,} messages to {escape(args.out)}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _replay_options(command: argparse.ArgumentParser, *, budget: int | None) -> None:
    command.add_argument(
        "--budget",
        type=_positive_int,
        metavar="N",
        required=budget is None,
        default=budget,
        help="prompt tokens per model call" + (f" (default {budget})" if budget else ""),
    )
    command.add_argument("--model", default="gpt-4o-mini", help="picks the tokenizer (gpt-4o-mini)")
    command.add_argument("--db", metavar="PATH", default=":memory:", help="SQLite file to keep")
    command.add_argument(
        "--price-per-mtok",
        type=float,
        metavar="USD",
        default=None,
        help="dollars per million uncached input tokens (default: the model's list price, "
        f"else {DEFAULT_PRICE_PER_MTOK})",
    )
    command.add_argument("--json", action="store_true", help="print per-call reports as JSONL")
    command.add_argument("--plot", metavar="OUT.png", help="save a PNG of tokens per call")


def _store_options(command: argparse.ArgumentParser, *, session_required: bool) -> None:
    command.add_argument("db", metavar="PATH", help="an attic SQLite file or postgresql:// URL")
    command.add_argument("--session", metavar="S", required=session_required, help="session name")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attic", description="Keep long LLM conversations cheap without forgetting."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="replay a real agent transcript and show savings")
    demo.add_argument(
        "--transcript", dest="file", default=str(DEMO_TRANSCRIPT), help="JSON/JSONL transcript"
    )
    demo.add_argument("--reserve", metavar="N", type=int, default=1000, help="for the reply (1000)")
    _replay_options(demo, budget=4000)
    demo.set_defaults(run=_run_replay, id=None, session="demo")
    rep = commands.add_parser("replay", help="replay a transcript through a memory, per call")
    rep.add_argument("file", metavar="FILE", help="OpenAI-format JSON/JSONL or LoCoMo JSON")
    rep.add_argument("--id", help="which record of a multi-record file (e.g. conv-26)")
    rep.add_argument("--session", metavar="S", default="replay", help="session name (replay)")
    _replay_options(rep, budget=None)
    rep.set_defaults(run=_run_replay, reserve=0)
    inspect = commands.add_parser("inspect", help="list sessions, or show one session")
    _store_options(inspect, session_required=False)
    inspect.set_defaults(run=_run_inspect)
    rec = commands.add_parser("recall", help="print what the recall tool returns")
    _store_options(rec, session_required=True)
    rec.add_argument("--ref", metavar="R", help="an archived output's ref (alone: page through it)")
    rec.add_argument("--query", metavar="Q", help="what to look for (in --ref, or everywhere)")
    rec.add_argument("--max-tokens", metavar="N", type=_positive_int, default=800, help="(800)")
    rec.add_argument("--page", metavar="P", type=_positive_int, default=1, help="page of --ref (1)")
    rec.set_defaults(run=_run_recall)
    export = commands.add_parser("export", help="write a session's full history as JSONL")
    _store_options(export, session_required=True)
    export.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    export.add_argument(
        "--format",
        choices=("openai", "langchain"),
        default="openai",
        help="openai chat dicts (default) or LangChain's lossless message dicts",
    )
    export.set_defaults(run=_run_export)
    add_forget_command(commands, check=_database)
    return parser


def main(argv: Sequence[str] | None = None, *, embedder: Embeddings | None = None) -> int:
    """Run the command line; return the exit code.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        embedder: Embeddings for archive search (default: the bundled all-MiniLM-L6-v2);
            for tests and for programs that embed the command line.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "recall" and args.ref is None and args.query is None:
        parser.error("recall needs --ref, --query or both")
    if (getattr(args, "price_per_mtok", None) or 0) < 0:
        parser.error("--price-per-mtok must be >= 0")
    try:
        # Piped to a file, tables keep their numbers whole (rich would wrap at 80).
        console = Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)
        return int(args.run(args, console, embedder))
    except ContextAtticError as exc:
        sys.stderr.write(f"attic: error: {exc}\n")
        return 1
    except BrokenPipeError:  # e.g. `attic export ... | head`: the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("attic: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
