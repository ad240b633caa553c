"""The cache-cost arithmetic of ``benchmarks/cost.py``, on hand-made token sequences."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from cache_cost import (
    END,
    SEP,
    START,
    AnthropicBill,
    Segment,
    Tokenizer,
    anthropic_bill,
    common_prefix,
    common_prefix_segments,
    common_whole_segments,
    openai_cached,
    openai_cost,
    price_call,
)

PRIMING: Segment = (START, 9, SEP)


def test_common_prefix_stops_at_first_difference() -> None:
    assert common_prefix([1, 2, 3, 4], [1, 2, 5, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([7], [8]) == 0


def test_segment_prefix_continues_across_a_segment_that_is_a_prefix() -> None:
    previous = [(1, 2), (3, 4, 5)]
    current = [(1, 2, 3), (4, 9)]
    assert common_prefix_segments(previous, current) == 4
    assert common_whole_segments(previous, current) == 0
    assert common_whole_segments([(1, 2), (3,)], [(1, 2), (3, 4)]) == 2


def test_segment_prefix_equals_the_flat_prefix_on_random_prompts() -> None:
    chooser = random.Random(12)
    for _ in range(300):
        previous = [
            tuple(chooser.choice((1, 2)) for _ in range(chooser.randint(0, 4)))
            for _ in range(chooser.randint(0, 5))
        ]
        current = [
            tuple(chooser.choice((1, 2)) for _ in range(chooser.randint(0, 4)))
            for _ in range(chooser.randint(0, 5))
        ]
        flat = common_prefix(
            list(itertools.chain.from_iterable(previous)),
            list(itertools.chain.from_iterable(current)),
        )
        assert common_prefix_segments(previous, current) == flat


@pytest.mark.parametrize(
    ("common", "prompt", "cached"),
    [
        (1023, 5000, 0),  # under the 1,024-token minimum
        (1024, 5000, 1024),
        (1151, 5000, 1024),  # 128-token steps, rounded down
        (1152, 5000, 1152),
        (2000, 5000, 1920),
        (900, 900, 0),  # a prompt under 1,024 tokens is never cached
        (3000, 2000, 1920),  # never more than the prompt
    ],
)
def test_openai_cached_tokens(common: int, prompt: int, cached: int) -> None:
    assert openai_cached(common, prompt) == cached


def test_openai_cost_discounts_only_cached_tokens() -> None:
    assert openai_cost(2000, 1536, 0.0) == 2000
    assert openai_cost(2000, 1536, 0.5) == pytest.approx(464 + 768)
    assert openai_cost(2000, 1536, 0.9) == pytest.approx(464 + 153.6)


def test_anthropic_reads_at_a_tenth_and_writes_the_rest_at_125_percent() -> None:
    bill = anthropic_bill(3000, 2000, 3)
    assert bill == AnthropicBill(read=2000, written=1000, plain=3)
    assert bill.cost == pytest.approx(200 + 1250 + 3)
    # A shared run under the minimum is not a cache entry: the whole body is written.
    assert anthropic_bill(3000, 1000, 3) == AnthropicBill(read=0, written=3000, plain=3)
    # A body under the minimum is not cached at all: no write premium.
    assert anthropic_bill(900, 0, 3).cost == 903


def test_price_call_on_an_appended_prompt() -> None:
    head = tuple(range(1100))
    turn = (START, 5, 6, 7, END)
    new = (START, 7, *range(297), END)
    previous = [head, turn, PRIMING]
    current = [head, turn, new, PRIMING]
    call = price_call(previous, current)
    assert call.tokens == 1100 + 5 + 300 + 3
    # head + turn, then the priming's <start> matches the new message's <start>.
    assert call.common == 1106
    assert call.openai_cached == 1024
    assert call.openai(0.9) == pytest.approx((1408 - 1024) + 0.1 * 1024)
    assert call.anthropic == AnthropicBill(read=1105, written=300, plain=3)


def test_price_call_first_and_diverging_prompts() -> None:
    first = price_call(None, [tuple(range(2000)), PRIMING])
    assert (first.common, first.openai_cached) == (0, 0)
    assert first.anthropic == AnthropicBill(read=0, written=2000, plain=3)
    changed = price_call([tuple(range(2000)), PRIMING], [(0, *range(2, 2000)), PRIMING])
    assert (changed.common, changed.openai_cached) == (1, 0)
    assert changed.anthropic.read == 0


def test_tokenizer_lays_out_a_message_like_the_chat_format() -> None:
    tokenizer = Tokenizer()
    segment = tokenizer.segment({"role": "user", "content": "hello"})
    assert segment[0] == START and segment[-1] == END and SEP in segment
    assert len(segment) == 3 + len(tokenizer.encode("user")) + len(tokenizer.encode("hello"))
    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]}
    assert len(tokenizer.segment(call)) > len(tokenizer.segment({**call, "tool_calls": []}))
    assert tokenizer.count([{"role": "user", "content": "hello"}]) == len(segment) + 3
