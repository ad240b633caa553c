"""Anthropic's cache reads only what an earlier breakpoint wrote: the ledger bills it so,
and the prompt carries a second breakpoint where folds keep the prefix."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from memory import ConversationMemory
from memory._anthropic import marks_in, to_anthropic, with_breakpoint
from memory._breakpoints import LOOKBACK_BLOCKS, WrittenPrefixes
from memory.pricing import DEFAULT_PRICES

SONNET = DEFAULT_PRICES["claude-sonnet-4"]
SYSTEM = "You review supply contracts for a furniture maker. " * 110  # ~1,200 tokens


def test_a_shared_prefix_that_no_breakpoint_ended_is_not_read() -> None:
    cache = WrittenPrefixes(min_tokens=1000)
    fingerprints, blocks, tokens = ["sys", "a", "b", "c"], [1, 1, 1, 1], [1200, 300, 300, 300]
    # The first request writes its whole stable part (2,100 tokens), reads nothing.
    assert cache.request(fingerprints, blocks, tokens, breakpoints=[4]) == (0, 2100)
    # Same prefix, one message more: the earlier breakpoint's prefix is read.
    more = [*fingerprints, "d"]
    assert cache.request(more, [*blocks, 1], [*tokens, 300], breakpoints=[5]) == (2100, 300)
    # After a fold ("a" replaced by a summary): "sys" is shared but no breakpoint ended it.
    folded = ["sys", "summary", "d", "e"]
    assert cache.request(folded, blocks, tokens, breakpoints=[4]) == (0, 2100)
    # With a second breakpoint after "sys", the next fold reads it.
    assert cache.request(folded, blocks, tokens, breakpoints=[1, 4]) == (2100, 0)
    refolded = ["sys", "summary 2", "e", "f"]
    assert cache.request(refolded, blocks, tokens, breakpoints=[1, 4]) == (1200, 900)


def test_a_prefix_too_short_or_too_far_back_is_not_read() -> None:
    cache = WrittenPrefixes(min_tokens=1000)
    assert cache.request(["s", "a"], [1, 1], [500, 400], breakpoints=[2]) == (0, 0)  # < 1,000
    assert cache.request(["s", "a"], [1, 1], [500, 400], breakpoints=[2]) == (0, 0)
    cache.request(["s", "a"], [1, 1], [900, 400], breakpoints=[2])  # written: 1,300
    far = ["s", "a", "b"]
    assert cache.request(far, [1, 1, LOOKBACK_BLOCKS + 1], [900, 400, 10], breakpoints=[3]) == (
        0,
        1310,
    )
    near = ["s", "a", "c"]
    assert cache.request(near, [1, 1, LOOKBACK_BLOCKS], [900, 400, 10], breakpoints=[3]) == (
        1300,
        10,
    )


def _blocks_and_marks(request: dict[str, Any]) -> tuple[list[str], list[int]]:
    """An Anthropic request as a list of blocks (each as JSON, its mark left out), and
    how many blocks each ``cache_control`` mark ends."""
    blocks: list[Any] = []
    marks: list[int] = []
    system = request.get("system")
    for block in system if isinstance(system, list) else [system] if system else []:
        blocks.append(block)
    for turn in request["messages"]:
        blocks += [{**b, "role": turn["role"]} for b in turn["content"]]
    as_json = []
    for position, block in enumerate(blocks):
        if isinstance(block, dict) and "cache_control" in block:
            marks.append(position + 1)
            block = {k: v for k, v in block.items() if k != "cache_control"}
        as_json.append(json.dumps(block, sort_keys=True))
    return as_json, marks


def test_the_report_reads_what_earlier_requests_marked_and_folds_keep_the_system() -> None:
    """Replayed through ``ConversationMemory`` with a Claude model that folds often: the
    report's cached tokens are those of the longest prefix an earlier request marked, as
    sent (``to_anthropic``); after a fold, that is the system prompt."""
    with ConversationMemory.open(
        ":memory:", session="s", budget=2500, model="claude-sonnet-4",
        embedder=DeterministicFakeEmbedding(size=16),
    ) as mem:  # fmt: skip
        written: dict[tuple[str, ...], int] = {}  # marked prefix -> its tokens
        anchor_reads = 0
        for i in range(30):
            mem.add({"role": "user", "content": f"Clause {i}: deliver {i * 7} oak chairs. " * 6})
            prompt = mem.assemble(system=SYSTEM)
            request = prompt.to_anthropic()
            blocks, marks = _blocks_and_marks(request)
            ends = sorted({n for n in (prompt.anchor_count, prompt.stable_count) if n})
            assert len(marks) == len(ends), i  # one mark per breakpoint, each placed
            read = max(
                (n for prefix, n in written.items() if tuple(blocks[: len(prefix)]) == prefix),
                default=0,
            )
            assert prompt.report.cached_tokens == read, i
            anchor = sum(prompt.message_tokens[: prompt.anchor_count])
            anchor_reads += prompt.anchor_count > 0 and read == anchor
            for end, count in zip(marks, ends, strict=True):
                tokens = sum(prompt.message_tokens[:count])
                if tokens >= SONNET.min_cached_tokens:
                    written[tuple(blocks[:end])] = tokens
            mem.add({"role": "assistant", "content": f"Chairs for clause {i} noted. " * 6})
        # After each fold the system prompt and the opening turn were read, not written.
        assert anchor_reads >= 3
    system_only = with_breakpoint([SystemMessage(SYSTEM), HumanMessage("hi")], 2, 1)
    assert system_only[0].content[-1]["cache_control"] == {"type": "ephemeral"}  # type: ignore[index]
    body = to_anthropic([SystemMessage(SYSTEM), HumanMessage("hi")], cache_after=2, anchor_after=1)
    assert body[0] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]


def test_breakpoints_are_added_only_while_a_request_holds_at_most_four() -> None:
    """The caller's own ``cache_control`` marks count: the stable part's is added first,
    then the anchor's, while there is room (a new-user trial sent five once a fold came)."""
    mark = {"type": "ephemeral"}
    own: list[str | dict[Any, Any]] = [
        {"type": "text", "text": f"rule {i}", "cache_control": mark} for i in range(3)
    ]
    messages = [
        SystemMessage(SYSTEM),
        HumanMessage(own),  # the caller's three marks
        AIMessage("noted"),
        HumanMessage("and now?"),
    ]
    body = to_anthropic(messages, cache_after=4, anchor_after=2)
    marked = [b for t in body[1] for b in t["content"] if "cache_control" in b]
    assert len(marked) == 4 and marked[-1]["text"] == "and now?"  # the stable part's
    assert isinstance(body[0], str)  # no room left for the system prompt's
    sent = with_breakpoint(messages, 4, 2)
    assert sum(marks_in(m) for m in sent) == 4 and marks_in(sent[3]) == 1
    assert sum(marks_in(m) for m in with_breakpoint(messages, 4, 2, taken=1)) == 3  # none added
    roomy = [SystemMessage(SYSTEM), HumanMessage("a"), AIMessage("b"), HumanMessage("c")]
    body = to_anthropic(roomy, cache_after=4, anchor_after=1)
    assert isinstance(body[0], list) and body[0][0]["cache_control"] == mark


def test_marks_stored_with_the_messages_are_not_sent_again() -> None:
    """An app that marks each user turn it sends (Anthropic's own pattern) stores those
    marks: sent again, 8 turns made 8 marks, twice Anthropic's limit."""
    mark = {"type": "ephemeral"}
    with ConversationMemory.open(
        ":memory:", session="s", budget=6000, model="claude-sonnet-4",
        embedder=DeterministicFakeEmbedding(size=16),
    ) as mem:  # fmt: skip
        for i in range(8):
            text = f"Clause {i}: deliver {i * 7} oak chairs."
            mem.add({"role": "user", "content": [{"type": "text", "text": text,
                                                  "cache_control": mark}]})  # fmt: skip
            mem.add({"role": "assistant", "content": f"Noted clause {i}."})
        prompt = mem.assemble(system=SYSTEM)
        blocks, marks = _blocks_and_marks(prompt.to_anthropic())
        assert 1 <= len(marks) <= 2 and len(blocks) >= 16
        assert sum(marks_in(m) for m in prompt.with_cache_breakpoint()) <= 2
        assert all(marks_in(m) == 1 for m in mem.history() if isinstance(m, HumanMessage))
