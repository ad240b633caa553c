"""The ``attic`` command line: a thin layer over the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from memory.budget import Budget
from memory.core import ConversationMemory
from memory.errors import ContextAtticError
from memory.replay import CallStats, load_transcript, replay

__all__ = ["main"]

DEMO_TRANSCRIPT = (
    Path(__file__).resolve().parent.parent / "examples/transcripts/marshmallow_1867.json"
)


def _stats_table(title: str, rows: Sequence[CallStats]) -> Table:
    table = Table(title=title)
    for column in ("call", "history msgs", "raw tokens", "sent tokens", "omitted msgs", "saved"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row.call),
            str(row.history_turns),
            f"{row.raw_tokens:,}",
            f"{row.sent_tokens:,}",
            str(row.turns_omitted),
            f"{row.tokens_saved:,}",
        )
    return table


def _run_demo(args: argparse.Namespace, console: Console) -> int:
    messages = load_transcript(args.transcript)
    budget = Budget(context_window=args.budget + args.reserve, reserve_output=args.reserve)
    with ConversationMemory.open(args.db, session="demo", budget=budget, model=args.model) as mem:
        rows = list(replay(mem, messages))
    console.print(_stats_table(f"Replay of {Path(args.transcript).name}", rows))
    raw = sum(r.raw_tokens for r in rows)
    sent = sum(r.sent_tokens for r in rows)
    share = (raw - sent) / raw if raw else 0.0
    console.print(
        f"[bold]{len(rows)} model calls[/]: raw history {raw:,} tokens, sent {sent:,} tokens, "
        f"saved {raw - sent:,} ({share:.0%}); every prompt <= {args.budget:,} tokens."
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attic", description="Keep long LLM conversations cheap without forgetting."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="replay a real agent transcript and show savings")
    demo.add_argument("--transcript", default=str(DEMO_TRANSCRIPT), help="OpenAI-format JSON/JSONL")
    demo.add_argument("--budget", type=int, default=4000, help="prompt tokens per call")
    demo.add_argument("--reserve", type=int, default=1000, help="tokens reserved for the reply")
    demo.add_argument("--model", default="gpt-4o-mini", help="model name (picks the tokenizer)")
    demo.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    demo.set_defaults(run=_run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    console = Console()
    try:
        return int(args.run(args, console))
    except ContextAtticError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
