"""The price model behind ``AssemblyPolicy``'s defaults: cost per call against the fold depth.

Per call, with the input price 1, cached discount ``d``, fixed parts ``F`` (system prompt +
summary), verbatim turns growing from the low-water mark ``L`` to the high-water mark
``H`` by ``g`` tokens a call, and ``r`` recalled tokens a call (sent uncached):

    cost(L) = (1 - d) * (F + (L + H) / 2) + d * (g + r + (F + L) * g / (H - L))

(the last term spreads the uncached prompt after each fold over the calls between folds).
Raw history at length ``N`` costs ``(1 - d) * N + d * g``. Prints a markdown table; the
numbers are quoted in docs/assembly.md. Run: ``python benchmarks/policy_costs.py``.
"""

from __future__ import annotations

from memory._policy import DEFAULT_POLICY

BUDGET = 8000
FIXED = 300 + int(BUDGET * DEFAULT_POLICY.summary_share)  # a 300-token system prompt
GROWTH = 120  # tokens a chat call adds (a user turn and a reply; LoCoMo: ~60-150)


def cost_per_call(low: float, high: float, discount: float, recalled: float) -> float:
    """Effective input tokens per call (uncached-token units) for a fold policy."""
    calls_between_folds = (high - low) / GROWTH
    fold = (FIXED + low) / calls_between_folds
    return (1 - discount) * (FIXED + (low + high) / 2) + discount * (GROWTH + recalled + fold)


def main() -> None:
    high = BUDGET * DEFAULT_POLICY.high_water_share
    print(f"budget {BUDGET:,}, fixed {FIXED}, growth {GROWTH}/call, high-water {high:,.0f}\n")
    print("| low-water share | recalled/call | 0% off | 50% off | 90% off |")
    print("|---:|---:|---:|---:|---:|")
    for share in (0.1, 0.3, 0.5, 0.6):
        for recalled in (0, int(BUDGET * DEFAULT_POLICY.recall_share)):
            costs = [cost_per_call(BUDGET * share, high, d, recalled) for d in (0, 0.5, 0.9)]
            cells = " | ".join(f"{c:,.0f}" for c in costs)
            print(f"| {share:.1f} | {recalled} | {cells} |")
    print("\nRaw history per call at 0% / 50% / 90% off:")
    for length in (8_000, 20_000, 50_000):
        raw = [(1 - d) * length + d * GROWTH for d in (0, 0.5, 0.9)]
        print(f"- {length:,} tokens: " + " / ".join(f"{c:,.0f}" for c in raw))


if __name__ == "__main__":
    main()
