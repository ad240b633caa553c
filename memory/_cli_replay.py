"""The tables and cost lines of ``attic replay`` and ``attic demo``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from memory._budget import Budget
from memory._core import ConversationMemory
from memory._replay import CallStats, ReplayTotals, model_calls, replay, totals

__all__ = ["calls_table", "cost_lines", "replay_rows", "styled_table"]


def styled_table(title: str, *columns: str, text_columns: int = 0) -> Table:
    """A table whose first ``text_columns`` columns are text, the others numbers."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for position, column in enumerate(columns):
        numeric = position >= text_columns
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric)
    return table


def calls_table(title: str, rows: Sequence[CallStats]) -> Table:
    """One row per model call: raw history against the prompt, each with its cached part."""
    columns = ("call", "raw", "raw cached", "sent", "cached", "left out", "summary", "digests")
    table = styled_table(title, *columns, "recalled")
    for row in rows:
        report = row.report
        refs = len(report.compressed_refs)
        table.add_row(
            str(row.call),
            f"{row.raw_tokens:,}",
            f"{row.raw_cached_tokens:,}",
            f"{row.sent_tokens:,}",
            f"{row.cached_tokens:,}",
            str(row.turns_omitted) if row.turns_omitted else "-",
            "yes" if report.summary_included else "-",
            str(refs) if refs else "-",
            str(report.recalled_included) if report.recalled_included else "-",
        )
    summed = totals(rows)
    table.add_section()
    sums = (summed.raw_tokens, summed.raw_cached_tokens, summed.sent_tokens, summed.cached_tokens)
    table.add_row("total", *(f"{n:,}" for n in sums), "", "", "", "", style="bold")
    return table


def cost_lines(summed: ReplayTotals, model: str, budget: int, *, known: bool = True) -> list[str]:
    """What the replay costs as the provider bills it, against the raw history.

    ``known``: the model's price and caching rule are in ``memory.pricing`` (else the
    line says what it assumed).
    """
    ratio = round(summed.cost_ratio, 2)
    verdict = "cheaper" if ratio < 1 else "[red]more expensive[/]" if ratio > 1 else "the same"
    if summed.billed_usd is not None and summed.raw_billed_usd is not None:
        raw, ours = summed.raw_billed_usd, summed.billed_usd
        how = f"Billed as {model} bills it (its caching rule, cache writes included)"
    else:
        dollars = summed.price_per_mtok / 1_000_000
        raw, ours = summed.raw_effective_tokens * dollars, summed.effective_tokens * dollars
        how = (
            f"Billed as {model} bills it ({summed.cached_discount:.0%} off cached input, "
            f"${summed.price_per_mtok:g} per million)"
            if known
            else f"Priced at ${summed.price_per_mtok:g} per million with no cache discount "
            f"({model} has no known price: pass --price-per-mtok, see memory.pricing)"
        )
    return [
        f"[bold]{summed.calls} model calls[/]: raw history {summed.raw_tokens:,} tokens "
        f"({summed.raw_cached_tokens:,} cached), sent {summed.sent_tokens:,} tokens "
        f"({summed.cached_tokens:,} cached); every prompt <= {budget:,} tokens "
        f"(largest {summed.largest_prompt:,}).",
        f"{how}: raw history ${raw:.4f}, this memory [bold]${ours:.4f}[/] = "
        f"{summed.cost_ratio:.2f}x the raw history ({verdict}).",
    ]


def replay_rows(
    args: argparse.Namespace, messages: list[dict[str, Any]], embedder: Embeddings | None
) -> list[CallStats]:
    budget = Budget(context_window=args.budget + args.reserve, reserve_output=args.reserve)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    progress = Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    rows: list[CallStats] = []
    with (
        progress,
        ConversationMemory.open(
            args.db, session=args.session, budget=budget, model=args.model, embedder=embedder
        ) as mem,
    ):
        task = progress.add_task("model calls", total=model_calls(messages))
        for row in replay(mem, messages):
            rows.append(row)
            progress.advance(task)
        if args.db != ":memory:":  # so a later `attic recall --query` finds everything
            progress.update(task, description="indexing archived outputs")
            mem.wait_until_indexed()
    return rows
