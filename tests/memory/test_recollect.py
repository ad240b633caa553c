"""Recall of evicted turns: the ranking (memory._recall.rank) and packing (memory._recall.pack)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from memory import ConversationMemory, TiktokenCounter
from memory._recall.chitchat import informative
from memory._recall.fuse import interleave, segment_strength
from memory._recall.pack import SEPARATOR, recollect
from memory._recall.rank import (
    NEXT_POOL,
    POOL,
    Layout,
    RankedTurn,
    TurnRanker,
)
from stores.turn_index import PassageHit, TurnIndex

FILLER = [
    "The weather was fine and we walked to the market for bread.",
    "Work has been busy with the quarterly report due soon.",
    "I watched a documentary about whales last night.",
    "My neighbour is repainting the fence a pale green.",
    "We cooked pasta with tomatoes from the garden.",
]


def _rank(
    mem: ConversationMemory, query: str, before_seq: int, layout: Layout | None = None
) -> list[tuple[int, float]]:
    """``(seq, score)`` of the ranked turns, best first (the view's layout by default)."""
    state = mem._state
    ranked = state.recall.ranker.rank(
        query, before_seq=before_seq, layout=layout or state.view.layout()
    )
    return [(r.seq, r.score) for r in ranked]


def _open(budget: int = 600) -> ConversationMemory:
    return ConversationMemory.open(
        ":memory:", session="r", budget=budget, embedder=DeterministicFakeEmbedding(size=64)
    )


def _exchanges(mem: ConversationMemory, pairs: Iterable[tuple[str, str]]) -> None:
    """Add each ``(user text, assistant reply)``, then wait for embedding and folding."""
    for said, replied in pairs:
        mem.add(HumanMessage(said))
        mem.add(AIMessage(replied))
    mem.wait_until_indexed(timeout=30)
    mem.wait_for_summary(timeout=30)


def _chat(mem: ConversationMemory, sessions: list[list[tuple[str, str]]]) -> list[int]:
    """Add sessions of ``(speaker, text)`` turns, each under a dated system message."""
    seqs = []
    for number, turns in enumerate(sessions, start=1):
        mem.add(SystemMessage(f"Session {number} · {number} May 2023"))
        for position, (speaker, text) in enumerate(turns):
            kind = HumanMessage if position % 2 == 0 else AIMessage
            seqs.append(mem.add(kind(text, name=speaker))[-1])
    mem.wait_until_indexed(timeout=30)
    return seqs


def test_a_turn_by_the_speaker_the_query_names_ranks_first() -> None:
    # Words and priors alone: random fake vectors would rank by chance.
    with ConversationMemory.open(":memory:", session="r", budget=600, embedder=Flat()) as mem:
        seqs = _chat(
            mem,
            [
                [
                    ("Alice", "I adopted a grey kitten called Miso from the shelter today."),
                    ("Bob", FILLER[0]),
                ],
                [
                    ("Alice", FILLER[1]),
                    ("Bob", "I adopted a black kitten called Pepper from the shelter today."),
                ],
                [("Alice", FILLER[2]), ("Bob", FILLER[3])] * 4,
            ],
        )
        view = mem._state.view
        ranked = _rank(mem, "What kitten did Bob adopt?", view.last_seq + 1)
        assert ranked[0][0] == seqs[3]  # Bob's kitten, not Alice's
        alices = [seq for seq, _ in ranked if seq in seqs[0::2]]
        assert alices[0] == seqs[0]  # of Alice's turns, her kitten first
        named_alice = _rank(mem, "What kitten did Alice adopt?", view.last_seq + 1)
        assert named_alice[0][0] == seqs[0]


def test_a_segment_is_lifted_for_its_match_not_for_who_speaks_in_it() -> None:
    # The later session holds more of Bob's turns, none about the question: its turns
    # must not climb over Bob's one matching turn for carrying his name.
    with ConversationMemory.open(":memory:", session="r", budget=600, embedder=Flat()) as mem:
        seqs = _chat(
            mem,
            [
                [("Alice", FILLER[1]), ("Bob", "Maybe the violin.")],
                [("Alice", FILLER[2]), ("Bob", f"{FILLER[3]} {FILLER[4]}")] * 6,
            ],
        )
        ranked = _rank(mem, "What violin does Bob have in mind?", mem._state.view.last_seq + 1)
        assert ranked[0][0] == seqs[1]


def test_ranking_covers_only_older_turns_and_follows_new_ones() -> None:
    with _open() as mem:
        seqs = _chat(mem, [[("Ann", FILLER[i % 5]) for i in range(6)]])
        ranked = _rank(mem, "market bread", seqs[3])
        assert {seq for seq, _ in ranked} == set(seqs[:3])
        assert ranked[0][0] == seqs[0]
        later = _chat(mem, [[("Ann", "The bakery at the market sold out of bread.")]])
        ranked = _rank(mem, "market bread", later[0] + 1)
        assert {seq for seq, _ in ranked} == set(seqs + later)
        assert _rank(mem, "   ", later[0] + 1) == []
        assert _rank(mem, "bread", 0) == []


def test_segment_strength_is_the_mean_of_each_segments_best_turns() -> None:
    seqs = np.array([2, 3, 4, 6, 7], dtype=np.int64)
    scores = np.array([1.0, 3.0, 2.0, -1.0, 5.0])
    strength = segment_strength(seqs, scores, np.array([1, 5], dtype=np.int64))
    assert strength.tolist() == [2.5, 2.5, 2.5, 2.0, 2.0]
    assert segment_strength(seqs[:0], scores[:0], np.zeros(0, dtype=np.int64)).size == 0


def test_one_segment_lifts_no_turn() -> None:
    # An agent run or a chat without dates is one segment: a lift for all alike would
    # only push weak turns over the relevance floor (2.8 on every turn of an agent run
    # whose best match scored 7, so a shell prompt was recalled for a file view).
    seqs = np.array([2, 3, 4], dtype=np.int64)
    scores = np.array([7.0, 0.5, -1.0])
    for starts in ([], [1]):
        strength = segment_strength(seqs, scores, np.array(starts, dtype=np.int64))
        assert strength.tolist() == [0.0, 0.0, 0.0]


def test_evidence_in_the_latest_sessions_is_not_dropped_for_lack_of_room() -> None:
    # Many short sessions: headers and separators used to be estimated, so the last
    # segments' snippets were cut from the prompt although the report listed them.
    sessions = [
        [("Ann", f"{FILLER[n % 5]} Note {n}."), ("Ben", FILLER[(n + 1) % 5])] for n in range(30)
    ]
    sessions.append([("Ann", "The spare key is under the blue flowerpot."), ("Ben", "Noted.")])
    sessions += [[("Ann", FILLER[n % 5]), ("Ben", FILLER[(n + 2) % 5])] for n in range(10)]
    with _open(budget=2000) as mem:
        _chat(mem, sessions)
        prompt = mem.assemble(query="Where is the spare key?", budget=700)
        sent = "\n".join(str(m.content) for m in prompt.messages)
        assert "under the blue flowerpot" in sent
        assert prompt.tokens <= 700


@given(
    turns=st.lists(
        st.tuples(st.sampled_from(["Ann", "Ben", "Cy"]), st.sampled_from(FILLER), st.booleans()),
        min_size=4,
        max_size=40,
    ),
    budget=st.integers(min_value=200, max_value=1500),
    query=st.sampled_from(["market bread", "What did Ben watch?", "fence colour", "report"]),
)
def test_recalled_turns_are_all_in_the_prompt_and_within_budget(
    turns: list[tuple[str, str, bool]], budget: int, query: str
) -> None:
    with _open(budget=400) as mem:
        for number, (speaker, text, new_session) in enumerate(turns):
            if new_session:
                mem.add(SystemMessage(f"Session {number}"))
            kind = HumanMessage if number % 2 == 0 else AIMessage
            mem.add(kind(f"{text} ({number})", name=speaker))
        mem.wait_until_indexed(timeout=30)
        prompt = mem.assemble(query=query, budget=budget)
        assert prompt.tokens <= budget
        sent = "\n".join(str(m.content) for m in prompt.messages)
        for seq in prompt.report.recalled_turns:
            turn = mem._state.view.turn_at(seq)
            assert turn is not None and str(turn.message.content) in sent
        view = mem._state.view
        for room in (0, 40, 300):
            got = recollect(
                mem._state.recall.ranker,
                mem.archive,
                view,
                query=query,
                before_seq=view.last_seq,
                max_tokens=room,
                counter=mem.counter,
            )
            assert mem.counter.count(SEPARATOR.join(got.snippets)) <= room or not got.snippets
            assert all(seq < view.last_seq for seq in got.turn_seqs)


def test_a_quoted_phrase_finds_its_turn_and_search_mixes_turns_with_outputs() -> None:
    with _open() as mem:
        seqs = _chat(
            mem, [[("Ann", f"On day {n} we moved box number {n * 7} to Paris.") for n in range(40)]]
        )
        recall = mem._state.recall
        hits = recall.search("box number 77 to Paris", k=3, turns=True)
        assert hits[0].ref == "" and hits[0].idx == seqs[11]
        assert "box number 77 to Paris" in hits[0].text
        # the speaker and segment layout come from the memory when not given
        assert _rank(mem, "Ann", seqs[-1] + 1)[0][1] > 0
        assert recall.turns("box number 77 to Paris", k=3, before_seq=seqs[5]) != []
        assert all(h.idx < seqs[5] for h in recall.turns("box", k=9, before_seq=seqs[5]))


def test_interleave_alternates_best_first() -> None:
    assert interleave([1, 2, 3], ["a"]) == [1, "a", 2, 3]
    assert interleave([], ["a", "b"]) == ["a", "b"]


def test_longer_turns_win_ties() -> None:
    with _open() as mem:
        seqs = _chat(
            mem,
            [
                [
                    ("Ann", "Kayaking."),
                    (
                        "Ben",
                        "Kayaking on the lake with my sister every Sunday since we moved in 2019.",
                    ),
                ]
            ],
        )
        ranked = _rank(mem, "kayaking", seqs[-1] + 1)
        assert [seq for seq, _ in ranked] == [seqs[1], seqs[0]]


class Flat(Embeddings):
    """Every text the same vector: rankings rest on words and priors alone."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0, 0.0, 0.0] for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return [1.0, 0.0, 0.0, 0.0]


def test_speakers_added_after_the_view_is_rebuilt_still_count() -> None:
    with ConversationMemory.open(":memory:", session="r", budget=600, embedder=Flat()) as mem:
        _chat(mem, [[("Ann", FILLER[0]), ("Ben", FILLER[1])]])
        mem._state.reload()  # what a failed add does: the view is rebuilt from the store
        seqs = _chat(mem, [[("Cy", "I sold the old bicycle."), ("Dee", "I sold the old bicycle.")]])
        ranked = _rank(mem, "What did Dee sell?", seqs[-1] + 1)
        assert ranked[0][0] == seqs[1]
        assert _rank(mem, "What did Cy sell?", seqs[-1] + 1)[0][0] == seqs[0]


class CountingIndex:
    """A turn index that records the ids each ``locate`` asks for."""

    def __init__(self, inner: TurnIndex) -> None:
        self.inner = inner
        self.located: list[list[int]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def locate(self, session: str, ids: Sequence[int]) -> list[PassageHit]:
        self.located.append(list(ids))
        return self.inner.locate(session, ids)


def test_the_ranker_locates_each_passage_once() -> None:
    with _open() as mem:
        seqs = _chat(mem, [[("Ann", f"{FILLER[i % 5]} ({i})") for i in range(30)]])
        state = mem._state
        counting = CountingIndex(state.store.passages)
        ranker = TurnRanker(cast(TurnIndex, counting), "r", state.passage_indexer)
        layout = state.view.layout()
        first = ranker.rank("market bread", before_seq=seqs[-1] + 1, layout=layout)
        asked = sum(len(ids) for ids in counting.located)
        assert asked > 0  # vector hits and the similarity sample, looked up once
        again = ranker.rank("market bread", before_seq=seqs[-1] + 1, layout=layout)
        other = ranker.rank("whales documentary", before_seq=seqs[-1] + 1, layout=layout)
        assert again == first and other
        assert sum(len(ids) for ids in counting.located) == asked  # nothing asked twice
        fresh = TurnRanker(state.store.passages, "r", state.passage_indexer)
        assert fresh.rank("market bread", before_seq=seqs[-1] + 1, layout=layout) == first


def test_packing_estimates_a_header_of_message_numbers_closely() -> None:
    with _open(budget=4000) as mem:
        for number in range(120):  # one day, no session headers: "[messages 3-5, 9, ...]"
            kind = HumanMessage if number % 2 == 0 else AIMessage
            mem.add(kind(f"{FILLER[number % 5]} Item {number} went to the market."))
        mem.wait_until_indexed(timeout=30)
        view = mem._state.view
        got = recollect(
            mem._state.recall.ranker,
            mem.archive,
            view,
            query="market",
            before_seq=view.last_seq,
            max_tokens=900,
            counter=mem.counter,
        )
        exact = mem.counter.count(SEPARATOR.join(got.snippets))
        assert got.snippets[0].startswith("[messages ")
        assert exact <= got.estimated_tokens <= 900  # never short: nothing had to be dropped
        assert got.estimated_tokens - exact < 40  # and close: the room is used


class _Logged(TiktokenCounter):
    """Counts like o200k_base and keeps every text it was asked to count."""

    def __init__(self) -> None:
        super().__init__("o200k_base")
        self.texts: list[str] = []

    def _raw(self, text: str) -> int:
        self.texts.append(text)
        return super()._raw(text)


def test_assemble_counts_its_recall_block_once() -> None:
    counter = _Logged()
    with ConversationMemory.open(
        ":memory:", session="r", budget=2000, token_counter=counter,
        embedder=DeterministicFakeEmbedding(size=64),
    ) as mem:  # fmt: skip
        _exchanges(  # (a fold counts its own texts: waited for, not watched)
            mem,
            (
                (
                    f"{FILLER[n % 5]} The kiln fired at {n}00 degrees.",
                    f"Noted the kiln firing number {n}.",
                )
                for n in range(60)
            ),
        )
        counter.texts.clear()
        prompt = mem.assemble(query="At what temperature did the kiln fire?")
    recalled = [m for m in prompt.messages if str(m.content).startswith('<memory source="recall')]
    assert recalled and str(recalled[0].content).count("kiln") > 3
    # The block's text, or its snippets joined, is a long text: counted once, not again
    # to check the packing (each line was counted on its own when it was packed).
    long_texts = [t for t in counter.texts if t.count("kiln") > 3 and "summary" not in t]
    assert len(long_texts) == 1, [len(t) for t in long_texts]


def test_a_lookup_gives_the_room_its_recall_leaves_back_to_the_summary_and_turns() -> None:
    from memory import AssemblyPolicy

    with ConversationMemory.open(
        ":memory:", session="r", budget=2_000, embedder=Flat(),
        policy=AssemblyPolicy(lookup_relevance_floor=2.0),
    ) as mem:  # fmt: skip
        _exchanges(
            mem,
            (
                (f"{FILLER[n % 5]} Note {n}: the locker is {n}.", f"Noted, note {n}.")
                for n in range(150)
            ),
        )
        plain = mem.assemble(system="s")
        lookup = mem.assemble(system="s", query="xyzzy plugh")  # matches nothing
    assert plain.report.summary_included and plain.report.parts.summary > 0
    assert lookup.report.recalled_turns == ()
    # Not a prompt of the 10% the lookup kept for itself: the summary and the turns stay.
    assert lookup.report.summary_included
    assert lookup.report.turns_kept >= plain.report.turns_kept
    assert lookup.tokens <= 2_000


def _wifi(mem: ConversationMemory, fillers: int) -> tuple[int, int]:
    """A question and its answer (no word in common), then ``fillers`` pairs of chat:
    the seqs of the question and the answer."""
    asked, answered = mem.add(
        [HumanMessage("What is the wifi password at the cabin?"), AIMessage("It is hunter2-blue.")]
    )
    _exchanges(mem, ((f"{FILLER[n % 5]} ({n})", "Noted.") for n in range(fillers)))
    return asked, answered


def test_a_turn_found_by_its_context_copy_is_quoted_by_its_own_text() -> None:
    with ConversationMemory.open(":memory:", session="r", budget=600, embedder=Flat()) as mem:
        asked, answered = _wifi(mem, 12)
        recall = mem._state.recall
        found = recall._passages.search("r", "wifi password cabin")
        copy = next(h for h in found if h.seq == answered and h.context)
        # As when a real embedder's pool holds the answer's context copy, not its text:
        recall.ranker.rank = lambda *a, **k: [  # type: ignore[method-assign]
            RankedTurn(answered, 5.0, 0, copy.id),
            RankedTurn(asked, 4.0, 0, None),
        ]
        hits = recall.turns("wifi password cabin", k=5)
    # Each quoted by its own text, apart: the question too (ranked by a prior alone).
    assert [h.text for h in hits] == [
        "assistant: It is hunter2-blue.",
        "user: What is the wifi password at the cabin?",
    ]


def test_the_recall_tool_brings_the_answer_with_the_question_it_finds() -> None:
    with ConversationMemory.open(":memory:", session="r", budget=600, embedder=Flat()) as mem:
        _wifi(mem, 60)
        found = mem.recall(query="What is the wifi password at the cabin?")
    # The question matches best; its answer shares none of its words, yet comes with it.
    assert "wifi password" in found and "hunter2-blue" in found
    assert found.count("wifi password") == 1


def test_a_further_query_takes_fewer_neighbours_by_embedding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A query naming a speaker is also searched without the name: its neighbours are
    # mostly the first query's again, so it brings NEXT_POOL of them, not POOL.
    with _open() as mem:
        seqs = _chat(mem, [[("Ann", f"{FILLER[i % 5]} ({i})") for i in range(400)]])
        state = mem._state
        indexer = state.passage_indexer
        assert indexer is not None
        everything = indexer.nearest_many(["whales"], 10_000)[0].tolist()
        slack = 2 * 32  # _WINDOW_SLACK, twice
        first, second = sorted(everything)[:500], sorted(everything)[-500:]
        lists = [np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)]
        monkeypatch.setattr(indexer, "nearest_many", lambda queries, k: lists)
        ranker = TurnRanker(state.store.passages, "r", indexer)
        found, _, _ = ranker._candidates("b", ("a", "b"), before_seq=seqs[-1] + 1)
        assert set(found.ids.tolist()) == set(first[: POOL + slack]) | set(
            second[: NEXT_POOL + slack]
        )


class Words(Embeddings):
    """A bag of words, hashed into 64 dimensions: texts sharing words are close."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        vector = np.zeros(64)
        for word in text.lower().replace(",", " ").replace(":", " ").split():
            vector[sum(map(ord, word)) % 64] += 1.0
        return (vector / max(float(np.linalg.norm(vector)), 1e-9)).tolist()


def test_chit_chat_written_after_a_speaker_label_recalls_nothing() -> None:
    # A chat app with no name field writes who speaks before the text: "Caroline: lol
    # ok" is chit-chat all the same (an old "lol ok" turn is close to it by embedding),
    # and so is greeting the other speaker by name.
    topics = ["pottery class", "charity race", "adoption agencies", "camping trip"]
    pairs = [
        (f"Caroline: I told you about the {topics[i % 4]} on day {i}, Mel.",
         f"Mel: Caroline, the {topics[i % 4]} on day {i} sounds lovely!")
        for i in range(40)
    ]  # fmt: skip
    pairs[3] = ("Caroline: lol ok, thanks Mel", "Mel: haha ok cool")
    with ConversationMemory.open(":memory:", session="r", budget=1500, embedder=Words()) as mem:
        _exchanges(mem, pairs)
        for said in ("Caroline: lol ok", "Caroline: Thanks, Mel!", "Caroline: haha ok cool"):
            mem.add(HumanMessage(said))
            assert mem.assemble(system="sys").report.recalled_turns == (), said
            mem.add(AIMessage("Mel: :)"))
    assert informative("Caroline: what was my passport number, Mel?", {"mel"})
    assert not informative("Caroline: Thanks, Mel!", {"melanie"})  # a name's start too
    assert not informative("Caroline: Good morning Mel! Bye, talk soon", {"melanie"})
    assert informative("Python: sorting a dict?") and not informative("Ann Lee: ok!")
    assert not informative("Caroline (10:31): lol ok") and not informative("Bo [9 May]: hi")


def test_a_statement_is_ranked_by_the_reply_it_got() -> None:
    # Only the reply holds the query's word; the fact is in the statement it answers. The
    # reply's context copy reads both, and counts for the statement too: the statement
    # is ranked with the reply and the turn after it (whose copy reads the reply), above
    # every turn the query does not match; it was no candidate before.
    with ConversationMemory.open(":memory:", session="r", budget=600, embedder=Flat()) as mem:
        _exchanges(mem, [(FILLER[i % 5], "Nice.") for i in range(20)])
        _exchanges(mem, [("I always order a café crème before work.", "A lovely morning ritual.")])
        _exchanges(mem, [(FILLER[i % 5], "Nice.") for i in range(20)])
        statement = mem._state.view.last_seq - 2 * 20 - 1
        assert "café crème" in str(mem._state.view.turn_at(statement).text_parts()[0])
        ranked = _rank(mem, "What is my morning ritual?", before_seq=mem._state.view.last_seq)
        seqs = [seq for seq, _ in ranked]
        assert set(seqs[:3]) == {statement, statement + 1, statement + 2}
