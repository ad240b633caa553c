"""Tables, targets and the plot of ``cost.py``: what each strategy's prompts cost vs raw."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cache_cost import CallCost

DISCOUNTS = (0.0, 0.5, 0.9)
MAIN_INPUT_PER_MTOK = 2.50
"""The main model's input price, gpt-4o ($ per million tokens; memory/ledger.py, OpenAI)."""
SUMMARIZER_IN_PER_MTOK = 0.15
SUMMARIZER_OUT_PER_MTOK = 0.60
"""The summarizer's prices, gpt-4o-mini (memory/ledger.py; https://openai.com/api/pricing)."""
SUMMARIZER_IN_RATIO = SUMMARIZER_IN_PER_MTOK / MAIN_INPUT_PER_MTOK
SUMMARIZER_OUT_RATIO = SUMMARIZER_OUT_PER_MTOK / MAIN_INPUT_PER_MTOK
RAW = "raw history"
PEERS = ("context-attic", "trim_messages", "SummarizationMiddleware")
OURS = PEERS[0]


@dataclass
class Run:
    """One strategy's calls over one conversation or transcript at one budget."""

    dataset: str
    conversation: str
    strategy: str
    budget: int | None
    calls: list[CallCost] = field(default_factory=list)
    refused: int = 0
    recall: float | None = None

    @property
    def tokens(self) -> int:
        """Tokens sent over all calls."""
        return sum(c.tokens for c in self.calls)

    def openai(self, discount: float, *, summarizer: bool = True) -> float:
        """Effective input cost (uncached-token units), the summarizer's spend optional."""
        cost = sum(c.openai(discount) for c in self.calls)
        return cost + (self.summarizer() if summarizer else 0.0)

    def anthropic(self, *, summarizer: bool = True) -> float:
        """Cost under Anthropic's read/write rule, the summarizer's spend optional."""
        cost = sum(c.anthropic.cost for c in self.calls)
        return cost + (self.summarizer() if summarizer else 0.0)

    def summarizer(self) -> float:
        """The summarizer's spend in main-model uncached input units."""
        spent_in = sum(c.summarizer_in for c in self.calls)
        spent_out = sum(c.summarizer_out for c in self.calls)
        return SUMMARIZER_IN_RATIO * spent_in + SUMMARIZER_OUT_RATIO * spent_out

    def repeat_share(self) -> float:
        """Mean share of each prompt (after the first) that repeats the previous one."""
        shares = [c.common / c.tokens for c in self.calls[1:] if c.tokens]
        return statistics.fmean(shares) if shares else 0.0

    def cached_share(self) -> float:
        """Share of all tokens sent that OpenAI bills as cached."""
        return sum(c.openai_cached for c in self.calls) / max(1, self.tokens)


def ratio(runs: Sequence[Run], raws: Sequence[Run], discount: float | None, *, summ: bool) -> float:
    """Total cost of ``runs`` over that of ``raws`` (``discount`` None: Anthropic's rule)."""
    if discount is None:
        mine = sum(r.anthropic(summarizer=summ) for r in runs)
        return mine / max(1e-9, sum(r.anthropic() for r in raws))
    mine = sum(r.openai(discount, summarizer=summ) for r in runs)
    return mine / max(1e-9, sum(r.openai(discount) for r in raws))


def max_ratio(runs: Sequence[Run], raw_by_conv: dict[str, Run], discount: float) -> float:
    """The largest per-conversation ratio at a discount (summarizer included)."""
    return max((ratio([r], [raw_by_conv[r.conversation]], discount, summ=True) for r in runs),
               default=0.0)  # fmt: skip


def pick(runs: Sequence[Run], dataset: str, strategy: str, budget: int | None) -> list[Run]:
    """The runs of one data set, strategy and budget."""
    return [r for r in runs if (r.dataset, r.strategy, r.budget) == (dataset, strategy, budget)]


def dataset_table(runs: Sequence[Run], dataset: str, budget: int) -> list[str]:
    """One Markdown table: each strategy against raw history at one budget."""
    raws = pick(runs, dataset, RAW, None)
    raw_by = {r.conversation: r for r in raws}
    calls = sum(len(r.calls) for r in raws)
    lines = [
        f"#### {dataset} at {budget:,} tokens ({len(raws)} runs, {calls:,} calls)",
        "",
        "| strategy | tokens/call | repeats prev. | cached (OpenAI) | @0% | @50% | @90% "
        "| @90% +summ. | Anthropic | Anthr. +summ. | max/conv @0 | @50 | @90 | summ. units "
        "| refused | evidence recall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy in (RAW, *PEERS):
        mine = pick(runs, dataset, strategy, None if strategy == RAW else budget)
        if not mine:
            continue
        sent = sum(r.tokens for r in mine) / max(1, sum(len(r.calls) for r in mine))
        recalls = [r.recall for r in mine if r.recall is not None]
        cells = [
            f"{sent:,.0f}",
            f"{statistics.fmean(r.repeat_share() for r in mine):.0%}",
            f"{sum(r.cached_share() * r.tokens for r in mine) / max(1, sum(r.tokens for r in mine)):.0%}",  # noqa: E501
            *(f"{ratio(mine, raws, d, summ=False):.2f}" for d in DISCOUNTS),
            f"{ratio(mine, raws, 0.9, summ=True):.2f}",
            f"{ratio(mine, raws, None, summ=False):.2f}",
            f"{ratio(mine, raws, None, summ=True):.2f}",
            *(f"{max_ratio(mine, raw_by, d):.2f}" for d in DISCOUNTS),
            f"{sum(r.summarizer() for r in mine):,.0f}",
            f"{sum(r.refused for r in mine)}",
            f"{statistics.fmean(recalls):.3f}" if recalls else "-",
        ]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    absolute = ", ".join(
        f"{sum(r.openai(d) for r in raws) / 1000:,.0f}k @{d:.0%}" for d in DISCOUNTS
    )
    lines += ["", f"Raw history, effective input tokens: {absolute}; "
              f"Anthropic rule {sum(r.anthropic() for r in raws) / 1000:,.0f}k.", ""]  # fmt: skip
    return lines


def conversation_table(runs: Sequence[Run], dataset: str, budgets: Sequence[int]) -> list[str]:
    """Per conversation and budget: each strategy's cost ratio to raw at 0/50/90% off."""
    head = " | ".join(f"{s} @{d:.0%}" for s in PEERS for d in DISCOUNTS)
    lines = [
        f"#### {dataset}, per conversation (summarizer spend included)",
        "",
        f"| run | budget | calls | raw @90% (k) | {head} |",
        "|---|---:|---:|---:|" + "---:|" * (len(PEERS) * len(DISCOUNTS)),
    ]
    for raw in pick(runs, dataset, RAW, None):
        for budget in budgets:
            cells = []
            for strategy in PEERS:
                mine = [r for r in pick(runs, dataset, strategy, budget)
                        if r.conversation == raw.conversation]  # fmt: skip
                cells += [f"{ratio(mine, [raw], d, summ=True):.2f}" if mine else "-"
                          for d in DISCOUNTS]  # fmt: skip
            lines.append(
                f"| {raw.conversation} | {budget:,} | {len(raw.calls)} "
                f"| {raw.openai(0.9) / 1000:,.1f} | " + " | ".join(cells) + " |"
            )
    return [*lines, ""]


def targets(runs: Sequence[Run], datasets: Sequence[str], budgets: Sequence[int]) -> list[str]:
    """The issue's targets for context-attic, one PASS/FAIL line each."""
    lines = []

    def check(name: str, value: float, limit: float) -> None:
        verdict = "PASS" if value <= limit + 1e-12 else "FAIL"
        lines.append(f"{verdict}  {name}: {value:.3f} (target <= {limit:g})")

    for dataset in datasets:
        raws = pick(runs, dataset, RAW, None)
        raw_by = {r.conversation: r for r in raws}
        for budget in budgets:
            ours = pick(runs, dataset, OURS, budget)
            if not ours:
                continue
            where = f"{dataset} @{budget:,}"
            check(f"{where}, max ratio per run at 0% off", max_ratio(ours, raw_by, 0.0), 1.0)
            check(f"{where}, max ratio per run at 50% off", max_ratio(ours, raw_by, 0.5), 1.0)
            check(f"{where}, data-set ratio at 90% off", ratio(ours, raws, 0.9, summ=True), 1.0)
            check(f"{where}, max ratio per run at 90% off", max_ratio(ours, raw_by, 0.9), 1.15)
            if dataset == "LoCoMo" and budget == 4000:
                check(f"{where}, data-set ratio at 50% off", ratio(ours, raws, 0.5, summ=True), 0.5)
                check(f"{where}, data-set ratio at 90% off", ratio(ours, raws, 0.9, summ=True), 0.7)
    return lines


def plot(runs: Sequence[Run], picks: Sequence[tuple[str, str]], budget: int, out: Path) -> str:
    """Plot effective cost per call (top) and its running total (bottom) at 90% off."""
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(picks), figsize=(6 * len(picks), 7), squeeze=False)
    for column, (dataset, conversation) in enumerate(picks):
        for strategy in (RAW, *PEERS):
            found = [r for r in pick(runs, dataset, strategy, None if strategy == RAW else budget)
                     if r.conversation == conversation]  # fmt: skip
            if found:
                values = [c.openai(0.9) for c in found[0].calls]
                calls = range(1, len(values) + 1)
                axes[0][column].plot(calls, values, label=strategy, linewidth=0.8)
                total = [v / 1000 for v in itertools.accumulate(values)]
                axes[1][column].plot(calls, total, label=strategy, linewidth=1.2)
        axes[0][column].set_title(
            f"{dataset} {conversation}, budget {budget:,}, 90% off cached", fontsize=9
        )
        axes[0][column].set_ylabel("effective input tokens per call")
        axes[1][column].set_ylabel("running total (k tokens)")
        for axis in axes[:, column]:
            axis.set_xlabel("model call")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return f"![effective cost per call at 90% off]({out.name})"
