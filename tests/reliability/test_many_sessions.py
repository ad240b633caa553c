"""Many sessions on one store, interleaved as a server would: prompts stay per session."""

from __future__ import annotations

from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory, Prompt

SESSIONS = 24
ROUNDS = 30


def test_interleaved_sessions_keep_their_own_prompts_and_cache_prefixes(tmp_path: Path) -> None:
    path = str(tmp_path / "server.db")
    embedder = DeterministicFakeEmbedding(size=16)
    memories = [
        ConversationMemory.open(path, session=f"user-{n}", budget=1200, embedder=embedder)
        for n in range(SESSIONS)
    ]
    previous: dict[int, Prompt] = {}
    extended = folds = 0
    try:
        for round_ in range(ROUNDS):
            for n, mem in enumerate(memories):  # one request per user, in turn
                mem.add({"role": "user", "content": f"user-{n} asks question {round_} " * 6})
                prompt = mem.assemble(system="You are a support agent.")
                text = str([m.content for m in prompt.messages])
                assert prompt.tokens <= 1200
                assert f"user-{n} " in text
                assert all(f"user-{k} " not in text for k in range(SESSIONS) if k != n)
                before = previous.get(n)
                if before is not None:
                    stable = before.messages[: before.stable_count]
                    if prompt.messages[: len(stable)] == stable:
                        extended += 1
                    else:
                        folds += 1
                previous[n] = prompt
                mem.add({"role": "assistant", "content": f"answer {round_} for user-{n} " * 6})
    finally:
        for mem in memories:
            mem.close()
    # Each session folds a few times; every other prompt extends the one before it.
    assert folds > 0 and extended > 4 * folds
    with ConversationMemory.open(path, session="user-3", embedder=embedder) as again:
        assert len(again.history()) == 2 * ROUNDS  # a new handle sees everything
