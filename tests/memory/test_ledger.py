"""The cost ledger and the providers' caching rules (memory.ledger, memory.pricing)."""

from __future__ import annotations

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConfigError, ConversationMemory, Price
from memory._tokens import counter_for_model
from memory.pricing import DEFAULT_PRICES, bare_model, cached_tokens, input_cost, price_of


def test_openai_caches_from_1024_tokens_in_steps_of_128() -> None:
    mini = DEFAULT_PRICES["gpt-4o-mini"]
    assert cached_tokens(1023, 5000, mini) == 0  # under the minimum
    assert cached_tokens(1024, 5000, mini) == 1024
    assert cached_tokens(1300, 5000, mini) == 1280  # counted down to a 128 step
    assert cached_tokens(4000, 900, mini) == 0  # a short prompt is never cached
    assert cached_tokens(5000, 5000, Price(1.0, 1.0)) == 0  # no caching rule


def test_anthropic_reads_at_10_percent_and_writes_at_125() -> None:
    sonnet = DEFAULT_PRICES["claude-sonnet-4"]
    assert cached_tokens(1500, 3000, sonnet) == 1500  # no steps, 1,024 minimum
    # 1,500 read, 1,000 written (the rest of the stable part), 500 fresh.
    dollars = input_cost(3000, 1500, 1000, sonnet)
    assert dollars == pytest.approx((1500 * 0.30 + 1000 * 3.75 + 500 * 3.00) / 1e6)
    with pytest.raises(ConfigError):
        Price(1.0, 1.0, cached_input_per_mtok=2.0)


def test_langchain_provider_prefixes_are_priced_and_counted_as_the_model() -> None:
    assert price_of("openai:gpt-4o", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o"]
    assert (
        price_of("anthropic:claude-haiku-4-5", DEFAULT_PRICES)
        == (DEFAULT_PRICES["claude-haiku-4-5"])
    )
    assert (
        price_of("claude-3-5-sonnet-latest", DEFAULT_PRICES)
        == (DEFAULT_PRICES["claude-3-5-sonnet"])
    )
    text = "Lyon, 12 May: 40 crates."
    assert counter_for_model("openai:gpt-4o").count(text) == counter_for_model("gpt-4o").count(text)
    # A Bedrock id's colon is part of the name; an unknown model has no price.
    assert bare_model("anthropic.claude-3-5-sonnet-20241022-v2:0").endswith("-v2:0")
    assert price_of("openai:nosuchmodel", DEFAULT_PRICES) is None
    with ConversationMemory.open(":memory:", session="s", model="openai:gpt-4o-mini") as mem:
        mem.add({"role": "user", "content": text})
        assert mem.assemble().report.session_cost_usd is not None


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4", "claude-3-5-haiku"])
def test_the_raw_history_and_an_identical_prompt_cost_the_same(model: str) -> None:
    """Also under the cache minimum, where Anthropic writes nothing (the raw history was
    billed a write there, which reported savings on every short Claude chat)."""
    embedder = DeterministicFakeEmbedding(size=16)
    with ConversationMemory.open(
        ":memory:", session="s", budget=100_000, model=model, embedder=embedder
    ) as mem:
        for i in range(40):
            mem.add({"role": "user", "content": f"Question {i} about the Lyon order. " * 4})
            report = mem.assemble(system="Be brief.").report
            assert report.tokens_saved == 0  # the whole history is sent as it is
            assert report.session_cost_usd == pytest.approx(report.session_raw_cost_usd)
            assert report.money_saved_usd == pytest.approx(0.0, abs=1e-12)
            mem.add({"role": "assistant", "content": f"Answer {i}: shipped. " * 4})
        assert report.session_cached_tokens > 0  # the append-only prompt was cached


def test_a_misspelled_model_is_not_priced_as_another_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Versions of a known model are priced as it; names that only start like one are not.
    for version in ("gpt-4o-mini-2024-07-18", "claude-3-5-sonnet@20240620", "gpt-5-mini-latest"):
        assert price_of(version, DEFAULT_PRICES) is not None, version
    assert price_of("gpt-4o-mini-2024-07-18", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o-mini"]
    for wrong in ("gpt-4o-mni", "gpt-5-turbo", "gpt-4o-audio-preview"):
        assert price_of(wrong, DEFAULT_PRICES) is None, wrong  # was gpt-4o's or gpt-5's price
    assert price_of("GPT-4o-Mini", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o-mini"]
    with caplog.at_level("WARNING", logger="memory"):
        for session in ("a", "b"):
            with ConversationMemory.open(":memory:", session=session, model="gpt-4o-mni") as mem:
                mem.add({"role": "user", "content": "hi"})
                assert mem.assemble().report.session_cost_usd is None
    (record,) = [r for r in caplog.records if "gpt-4o-mni" in r.getMessage()]
    assert "did you mean 'gpt-4o-mini'" in record.getMessage()
