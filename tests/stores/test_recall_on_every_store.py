# ruff: noqa: RUF001, E501  (Japanese text and its punctuation are the point)
"""Recall through a memory on every store: what the ranking reads from the store's turn
search must rank alike on SQLite and PostgreSQL."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from memory import Engine
from stores.base import Store


class Down(Embeddings):
    """An embedding service that is down: search runs on words alone."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding server down")

    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding server down")


def test_words_every_turn_holds_lift_no_turn_over_the_one_that_matches(store: Store) -> None:
    """ "パスポートはどこ" shares only the pairs "トは" and "はど" with long filler turns:
    matches that weigh nothing must not make them candidates the length prior lifts over
    the passport turn (the recall tool found nothing for the question)."""
    with Engine(store, embedder=Down()) as engine:
        mem = engine.open(session="ja", budget=400)
        mem.add([{"role": "user", "content": "パスポートは書斎の青いフォルダーに入れてあります。"},
                 {"role": "assistant", "content": "わかりました、書斎の青いフォルダーですね。"}])  # fmt: skip
        for _ in range(6):
            mem.add([{"role": "user", "content": "夕食のアイデアについて話しましょう。"},
                     {"role": "assistant", "content": "リゾットはどうですか？" * 10}])  # fmt: skip
        for question in ("パスポートはどこ", "パスポートはどこにありますか"):
            assert "青いフォルダー" in mem.recall(query=question)


def test_a_word_finds_the_turns_holding_another_form_of_it(store: Store) -> None:
    """Turns are searched by their words' stems: "paint" finds "painting" with the
    embedder down, and the recall tool does not call the match one by meaning only."""
    with Engine(store, embedder=Down()) as engine:
        mem = engine.open(session="stems", budget=400)
        mem.add([{"role": "user", "content": "I spent the weekend painting landscapes."},
                 {"role": "assistant", "content": "Lovely, which places?"}])  # fmt: skip
        for i in range(8):
            mem.add([{"role": "user", "content": f"Dinner idea number {i}: a risotto."},
                     {"role": "assistant", "content": "Sounds good. " * 20}])  # fmt: skip
        for question in ("What does she paint?", "Who paints?", "painted"):
            found = mem.recall(query=question).split("<archived ")[1:]
            fact = next(b for b in found if "painting landscapes" in b)
            assert "by meaning only" not in fact, question


def test_a_small_tool_result_is_found_once_it_left_the_window(store: Store) -> None:
    """A tool result kept as it is (under ``compress_threshold``) is searched as a turn: an
    agent gets it back by ``recall``, the recall tool and ``assemble(query=...)`` after it
    left the window (a new-user trial: it was in the summary only). An archived output is
    searched in the archive only: its digest is not a turn of its own."""
    call = {"id": "c1", "type": "function", "function": {"name": "track", "arguments": "{}"}}
    big = "\n".join(f"2024-05-{d % 28 + 1:02d} INFO shipment batch {d} sorted" for d in range(400))
    with Engine(store, embedder=Down()) as engine:
        mem = engine.open(session="agent", budget=500)
        mem.add({"role": "user", "content": "Where is order 4471?"})
        mem.add([{"role": "assistant", "content": "", "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "c1", "name": "track",
                  "content": "Order 4471: shipped by DHL, tracking JD014600003828."}])  # fmt: skip
        mem.add({"role": "assistant", "content": "It has shipped."})
        logs = {**call, "id": "c2", "function": {"name": "logs", "arguments": "{}"}}
        mem.add([{"role": "assistant", "content": "", "tool_calls": [logs]},
                 {"role": "tool", "tool_call_id": "c2", "content": big}])  # fmt: skip
        for i in range(10):
            mem.add([{"role": "user", "content": f"Step {i}: tidy the backlog."},
                     {"role": "assistant", "content": "Done. " * 30}])  # fmt: skip
        mem.wait_until_indexed()
        assert "JD014600003828" not in str(mem.assemble().messages[-1].content)
        question = "What is the tracking number of order 4471?"
        assert "tool track: Order 4471: shipped by DHL, tracking JD014600003828." in mem.recall(
            query=question
        )
        assert "JD014600003828" in str(mem.recall_tool().invoke({"query": question}))
        prompt = mem.assemble(query=question)
        assert "JD014600003828" in "\n".join(str(m.content) for m in prompt.messages)
        found = mem.recall(query="shipment batch 17 sorted")
        assert "shipment batch 17 sorted" in found
        assert "tool: [ref " not in found
