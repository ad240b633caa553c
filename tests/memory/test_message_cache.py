"""MessageCache: messages read when used, in the prompt's form, a bounded few kept."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, ToolMessage, message_to_dict

from memory._message_cache import MessageCache
from stores import open_store
from stores.base import NewTurn, Store


def payload(text: str) -> str:
    return json.dumps(message_to_dict(HumanMessage(text)))


@pytest.fixture
def store() -> Store:
    store = open_store(":memory:")
    turns = [NewTurn("human", payload(f"turn {i}"), 3, "c") for i in range(1, 9)]
    digest = json.dumps(message_to_dict(ToolMessage("[digest]", tool_call_id="x")))
    turns.append(NewTurn("tool", payload("the whole output"), 3, "c", compact=digest))
    store.turns.append("s", turns, after_seq=0)
    return store


def test_messages_are_read_when_used_and_the_oldest_dropped(store: Store) -> None:
    cache = MessageCache(store.turns, "s", capacity=3)
    assert cache.get(2).content == "turn 2" and cache.reads == 1
    assert cache.get(2) is cache.get(2) and cache.reads == 1  # kept, built once
    for seq in (3, 4, 5):
        cache.get(seq)
    assert len(cache) == 3 and cache.reads == 4
    cache.get(2)  # dropped as the least recently used: read again
    assert cache.reads == 5
    assert cache.get(9).content == "[digest]"  # the form prompts send
    with pytest.raises(KeyError):
        cache.get(99)


def test_prefetch_reads_a_window_at_once_and_keeps_it_whole(store: Store) -> None:
    cache = MessageCache(store.turns, "s", capacity=2)
    cache.put(1, payload("just added"))
    cache.prefetch([1, 2, 3, 4, 5])
    assert cache.reads == 4 and cache.capacity == 10 and len(cache) == 5
    assert [cache.get(s).content for s in (1, 5)] == ["just added", "turn 5"]
    assert cache.reads == 4
