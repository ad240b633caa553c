"""The assembly policy: one frozen value that holds every share and threshold of a prompt.

``ConversationMemory.open``, ``assemble``, ``summarize_messages`` and the adapters take
this one value; nothing else decides a share.

Why these defaults (the reasoning, with the numbers behind it, is in
docs/assembly.md): a prompt is billed as cached up to the first token that differs from
the previous prompt. The verbatim turns therefore grow in place between *folds* and are
cut back to ``low_water`` only when the next prompt would not fit; a recalled token,
which changes with every query, costs the full input price on every call while a
verbatim token repeated from the previous call costs 10-50% of it. Per call, with input
price 1, cached discount ``d``, fixed parts ``F`` (system + summary), window growing from
``L`` to ``H`` by ``g`` tokens a call:

    cost(L) = (1 - d) * (F + (L + H) / 2) + d * (g + r + (F + L) * g / (H - L))

where ``r`` is the recalled tokens per call and the last term spreads the uncached
prompt after each fold over the calls between folds. ``cost`` rises with ``L`` and with
``r`` at every discount, so the cheapest policy folds deep and recalls little; what
stops it from folding to nothing is forgetting, not price. The defaults keep 15% of the
prompt verbatim after a fold and give implicit recall 4% of the budget, only when it
clears ``relevance_floor``: measured side by side on the dev data (benchmarks/cost.py),
30% / 8% cost 1.07x the raw history at 90% off on LoCoMo at 8,000 tokens, 15% / 4%
0.84x, with the same evidence recall for explicit lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from memory._errors import ConfigError, did_you_mean

__all__ = ["DEFAULT_POLICY", "AssemblyPolicy"]


@dataclass(frozen=True, slots=True)
class AssemblyPolicy:
    """Shares of the prompt budget and thresholds that decide what a prompt holds.

    Attributes:
        summary_share: Most of the budget the running summary may take.
        recall_share: Room kept for recalled snippets on an ordinary call (the query is
            the user's latest turn); 0 turns implicit recall off.
        recall_min_tokens: That room is at least this many tokens while they stay under
            a tenth of the budget: a recall block's wrapper (about 40 tokens, with the
            quoted query) and one turn take 100-150, which 4% of a budget under 3,750
            tokens cannot hold (at 2,000 tokens a 26-token turn that answered the
            question did not fit).
        lookup_recall_share: Room for recall when ``assemble(query=...)`` asks about the
            past explicitly (verbatim turns give way).
        low_water: Share of the budget the verbatim turns keep after a fold.
        relevance_floor: Ranking score (in z-score units, see ``memory._recall.rank``) a
            turn must reach to be recalled on an ordinary call.
        lookup_relevance_floor: The same for explicit lookups (None: no floor; a
            question about the past fills its room with the best matches).
        summary_slack: A model may overshoot the summary cap by this factor.
        recall_tool: The model is offered the ``recall`` tool, so a note about messages
            left out of the prompt tells it that the tool reads them (the agent
            middleware and ``AgentLoop`` set it; a chat app without the tool does not).

        dates: Once turns are left out, a user turn that starts a new day is sent with
            its date first (see ``memory._dates``); False sends every message exactly
            as stored.
        opening_share: The conversation's first user turn (an agent's task, a chat's
            opening) stays verbatim at the front, before the summary, while it takes at
            most this share of what the system prompt leaves of the budget; 0 folds it
            like any other turn. Folds then change the prompt only after it; it costs its
            tokens, billed as cached, on each call after a fold. Measured on the 17
            SWE-agent dev transcripts (benchmarks/cost.py, OpenAI's rule): at 8,000
            tokens marshmallow-1867-14 went from 1.17x to 1.14x the raw history at 90%
            off, BabyTimeCapsule-10 (one fold, on its last call) from 0.999x to 1.013x
            at 50% off (0.994x once the offline summary kept at most a quarter of
            what it reads). 0.25 pinned ~800-token tasks at 4,000 tokens too, where the pin
            came and went from call to call (1.32x at 90% off); 0.15 keeps them out.

    Raises:
        ConfigError: a share outside ``[0, 1]``, or shares that leave no room for the
            verbatim turns.
    """

    summary_share: float = 0.15
    recall_share: float = 0.04
    recall_min_tokens: int = 150
    lookup_recall_share: float = 0.9
    low_water: float = 0.15
    relevance_floor: float = 3.0
    lookup_relevance_floor: float | None = None
    summary_slack: float = 1.3
    recall_tool: bool = False
    dates: bool = True
    opening_share: float = 0.15

    def __new__(cls, *args: object, **options: object) -> AssemblyPolicy:
        # A misspelled option is a ConfigError naming the closest one, as ``open()``'s
        # options are; the generated ``__init__`` would raise Python's TypeError.
        known = {f.name for f in fields(cls)}
        for name in options:
            if name not in known:
                hint = did_you_mean(name, known) or f"the options are {', '.join(sorted(known))}"
                raise ConfigError(f"AssemblyPolicy has no option {name!r}: {hint}")
        if len(args) > len(known):
            raise ConfigError(f"AssemblyPolicy takes at most {len(known)} options")
        return object.__new__(cls)  # (slots=True makes a new class: no bare super())

    def __post_init__(self) -> None:
        shares = ("summary_share", "recall_share", "lookup_recall_share", "low_water")
        for name in (*shares, "opening_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, not {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], not {value!r}")
        if (
            isinstance(self.recall_min_tokens, bool)
            or not isinstance(self.recall_min_tokens, int)
            or self.recall_min_tokens < 0
        ):
            raise ConfigError(
                f"recall_min_tokens must be an integer >= 0, not {self.recall_min_tokens!r}"
            )
        for flag in ("recall_tool", "dates"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, not {getattr(self, flag)!r}")
        if self.summary_slack < 1.0:
            raise ConfigError(f"summary_slack must be >= 1, not {self.summary_slack!r}")
        if self.low_water + 0.05 > self.high_water_share:
            raise ConfigError(
                f"low_water ({self.low_water}) must stay at least 0.05 below what summary "
                f"and recall leave ({self.high_water_share:.2f}); lower one of them"
            )

    @property
    def high_water_share(self) -> float:
        """Share of the budget the verbatim turns may reach before a fold."""
        return 1.0 - self.summary_share * self.summary_slack - self.recall_share

    def recall_room(self, prompt_tokens: int, *, lookup: bool) -> int:
        """Tokens kept for recall in a prompt of ``prompt_tokens`` (an explicit lookup:
        ``lookup_recall_share``; an ordinary call: ``recall_share``, at least
        ``recall_min_tokens`` while they stay under a tenth of the budget)."""
        if lookup:
            return int(prompt_tokens * self.lookup_recall_share)
        if self.recall_share <= 0:
            return 0
        least = min(self.recall_min_tokens, prompt_tokens // 10)
        return max(int(prompt_tokens * self.recall_share), least)

    def summary_cap(self, prompt_tokens: int) -> int:
        """Tokens a summarizer is asked to stay under."""
        return int(prompt_tokens * self.summary_share)

    def block_tokens(self, prompt_tokens: int) -> int:
        """Tokens folded at once: from the high-water mark down to the low-water mark."""
        return max(1, int(prompt_tokens * (self.high_water_share - self.low_water)))

    def fold_sizes(self, prompt_tokens: int, system_tokens: int = 0) -> tuple[int, int]:
        """Return ``(block_tokens, due_tokens)`` of the fold schedule for one budget.

        Blocks are sized from what the system prompt leaves, so the turns kept after a
        fold fit beside it; a block is summarized once the turns since its start reach
        ``due_tokens`` (half a low-water mark before the fold that evicts it).
        """
        room = max(1, prompt_tokens - system_tokens)
        block = self.block_tokens(room)
        return block, block + self.low_water_tokens(room) // 2

    def low_water_tokens(self, prompt_tokens: int) -> int:
        """Tokens of verbatim turns kept after a fold."""
        return int(prompt_tokens * self.low_water)


DEFAULT_POLICY = AssemblyPolicy()
