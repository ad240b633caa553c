"""Draw a replay as a PNG: tokens per model call, raw history against what was sent.

matplotlib is an optional extra (``pip install 'context-attic[plot]'``), imported only
when a plot is drawn. No pyplot: the figure is drawn on its own Agg canvas, so the
process's matplotlib backend and global state are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from memory._errors import InputError, MissingDependencyError
from memory._replay import CallStats, ReplayTotals

__all__ = ["check_available", "plot_replay", "subtitle"]

_RAW_COLOR = "#9aa5b1"
_SENT_COLOR = "#1f6feb"
_BUDGET_COLOR = "#d1242f"
_MISSING = "plots need matplotlib, an optional extra: pip install 'context-attic[plot]'"


def check_available(path: str | Path | None = None) -> None:
    """Fail early, before a long replay, when a plot was asked for but cannot be drawn
    or saved.

    Raises:
        MissingDependencyError: matplotlib is not installed.
        InputError: ``path``'s folder does not exist, or is not a folder.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(_MISSING) from exc
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise InputError(
            f"cannot save the plot to {str(path)!r}: its folder does not exist; "
            "create it or pick another --plot path"
        )


def subtitle(summed: ReplayTotals) -> str:
    """The figure's second line: the tokens, then what they cost as the provider bills
    them (prompt caching included) against the raw history, so fewer tokens that cost
    more are not shown as a saving."""
    ratio = summed.cost_ratio
    verdict = "cheaper" if ratio < 1 else "dearer" if ratio > 1 else "the same"
    return (
        f"{summed.calls:,} calls · raw {summed.raw_tokens:,} tokens, sent "
        f"{summed.sent_tokens:,} · cost with caching {ratio:.2f}x the raw history's "
        f"({verdict})"
    )


def plot_replay(
    rows: Sequence[CallStats],
    path: str | Path,
    *,
    summed: ReplayTotals,
    title: str = "Tokens per model call",
    budget: int | None = None,
) -> Path:
    """Save a PNG of the tokens each model call would send, raw against assembled.

    Args:
        rows: The stats of a replay, one per model call.
        path: Where to write the PNG (its folder must exist).
        summed: The replay's totals as priced for the CLI's cost line
            (``memory._replay.totals``), for the subtitle's cost.
        title: The figure's title.
        budget: Draws the prompt budget as a line when given.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: matplotlib is not installed.
        InputError: the file cannot be written.
    """
    check_available()
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, MaxNLocator
    except ImportError as exc:
        raise MissingDependencyError(_MISSING) from exc
    calls = [row.call for row in rows]
    figure = Figure(figsize=(9, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 if len(calls) <= 60 else 1.0  # many calls: bars touch, an area chart
    raw = [row.raw_tokens for row in rows]
    sent = [row.sent_tokens for row in rows]
    axes.bar(calls, raw, width=width, color=_RAW_COLOR, label="raw history not sent")
    axes.bar(calls, sent, width=width, color=_SENT_COLOR, label="sent (assembled prompt)")
    if budget is not None:
        axes.axhline(budget, color=_BUDGET_COLOR, linestyle="--", linewidth=1.2)
        axes.annotate(
            f"budget {budget:,}",
            xy=(0.0, budget),
            xycoords=("axes fraction", "data"),
            xytext=(4, 4),
            textcoords="offset points",
            color=_BUDGET_COLOR,
            fontsize=9,
        )
    figure.suptitle(title, x=0.01, ha="left", fontsize=13, fontweight="bold")
    axes.set_title(
        subtitle(summed),
        loc="left",
        fontsize=10,
        color="#57606a",
    )
    axes.set_xlabel("model call")
    axes.set_ylabel("input tokens per call")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set_ylim(bottom=0)
    if calls:
        axes.set_xlim(min(calls) - 0.5, max(calls) + 0.5)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    handles, labels = axes.get_legend_handles_labels()
    axes.legend(handles[::-1], labels[::-1], loc="upper left", frameon=False)
    target = Path(path)
    try:
        figure.savefig(target, format="png")
    except OSError as exc:
        raise InputError(f"cannot write the plot to {str(target)!r}: {exc.strerror}") from exc
    return target
