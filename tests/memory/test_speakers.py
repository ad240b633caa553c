"""Names no message carries (memory._recall.speakers), and how ranking uses them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from memory import ConversationMemory
from memory._recall.speakers import (
    SpokenTurns,
    addressed,
    named_roles,
    query_names,
    role_named,
    speaking_roles,
    without_names,
)

from .test_recollect import FILLER, Flat


def test_query_names_are_capitalized_words_that_are_not_common_ones() -> None:
    assert query_names("What did Caroline's sister and Mel do in May?") == ["Caroline", "Mel"]
    assert query_names("When did Jon go to Paris, and did Jon like it?") == ["Jon", "Paris"]
    assert query_names("what did she say about the garden?") == []


def test_a_name_is_addressed_when_greeted_thanked_or_set_off_by_a_comma() -> None:
    spoken_to = [
        ("Caroline", "Hey Caroline! How are you?"),
        ("Mel", "Thanks, Mel."),
        ("Sam", "Sam, did you see it?"),
        ("Ava", "That sounds lovely, Ava!"),
        ("Jon", "Congrats Jon, well deserved."),
        ("Sam", "Sure, Sam."),
        ("Sam", "See you at 5, Sam!"),
        ("Sam", "Sam, I think so."),
        ("Sam", "Hi Sam, Ava!"),
        ("Sam", "Yes, Sam, I will."),
        ("José", "Gracias, José!"),
    ]
    for name, text in spoken_to:
        assert addressed(name, text), text
    spoken_of = [
        ("Caroline", "My sister Caroline came over."),
        ("Sam", "I told Sam about it"),
        ("Ava", "Ava's dog barked."),
        ("Toby", "We took Scout, Toby, and Buddy to the park."),
        ("Toby", "My gf, Toby, and I played board games."),
        # Lists of names: a list of cities made "Paris" the assistant's name.
        ("Paris", "Rome, Paris."),
        ("Rome", "Rome, Paris."),
        ("Paris", "I visited Rome, Paris."),
        ("Ava", "Hi Sam, Ava!"),  # two greeted: unsure which is spoken to
        ("Paris", "We had a great Paris trip."),
        ("Paris", "Yes, Paris is pricey in summer."),  # about Paris, not to it
        ("Paris", "Sure, Paris has the Louvre."),
        ("Will", "Sure, will do."),
        ("Paris", "Sorry, Paris is sold out."),
        ("Rose", "Wow, rose gardens are great."),
    ]
    for name, text in spoken_of:
        assert not addressed(name, text), text


def test_a_name_one_role_addresses_is_the_other_role() -> None:
    greeted = [("ai", "Hi Sam, good to hear from you."), ("ai", "Thanks, Sam!")]
    assert role_named("Sam", greeted) == "human"
    assert role_named("Ava", [("human", "Thanks Ava!"), ("human", "Ava, one more thing.")]) == "ai"
    assert role_named("Sam", greeted[:1]) is None  # once is not enough
    mixed = [*greeted, ("human", "Hey Sam, it's me."), ("human", "Bye Sam!")]
    assert role_named("Sam", mixed) is None  # both sides use it: a third person
    told = [("human", "My friend Sam moved to Oslo."), ("human", "Sam likes jazz.")]
    assert role_named("Sam", told) is None  # mentioned, never addressed
    cities = [("human", "Rome, Paris."), ("human", "Rome, Berlin, Paris.")]
    assert role_named("Paris", cities) is None and role_named("Rome", cities) is None


def test_a_name_a_role_signs_its_messages_with_is_that_role() -> None:
    # Transcript lines sent as plain text: "Caroline: ..." is Caroline speaking, not
    # someone speaking to her (benchmarks/cost.py's LoCoMo feeding).
    signed = [
        ("human", "[1:56 pm on 8 May, 2023] Caroline: Hey Mel! Good to see you!"),
        ("human", "Caroline: I went to a support group yesterday."),
        ("human", "Caroline: Thanks, Mel!"),
        ("ai", "Melanie: Hey Caroline! Good to see you!"),
    ]
    assert role_named("Caroline", signed) == "human"
    assert role_named("Mel", signed) == "ai"
    assert not addressed("Caroline", "Caroline: I went to a support group yesterday.")
    # A bracketed label is no signature: an agent's tool output "[File: /x.py (9 lines)]"
    # does not make "File" the user's name (benchmarks/cost.py's SWE-agent runs).
    listing = [("human", f"[File: /src/fields.py (1997 lines total)]\n{n}: pass") for n in range(5)]
    assert role_named("File", listing) is None


def test_a_name_becomes_the_speaker_its_role_is_indexed_under() -> None:
    roles = {"human": [1, 3], "ai": [2, 4]}
    query = "What did Sam's brother give Ava?"
    named = {"Sam": "human", "Ava": "ai"}
    assert speaking_roles(query, named, roles=roles, speakers={}) == (
        "What did user brother give assistant?"
    )
    known = {"Melanie": [2, 4]}
    assert speaking_roles("Where did Mel go?", {"Mel": "ai"}, roles=roles, speakers=known) == (
        "Where did Melanie go?"
    )


def test_a_query_is_searched_without_the_names_of_its_speakers() -> None:
    assert without_names("What does Melanie's family like?", ["Melanie"]) == (
        "What does family like?"
    )
    assert without_names("Did Jon and Gina both dance?", ["jon", "Gina"]) == "Did and both dance?"
    assert without_names("Melanie?", ["Melanie"]) == "Melanie?"  # nothing else to search
    assert without_names("What did Melanie paint?", []) == "What did Melanie paint?"


class _Recording(DeterministicFakeEmbedding):
    """Fake embeddings that remember the queries they embedded."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        _EMBEDDED.extend(texts)
        return super().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:  # how queries are embedded
        _EMBEDDED.append(text)
        return super().embed_query(text)


_EMBEDDED: list[str] = []


def test_a_query_naming_a_speaker_is_also_embedded_without_the_name() -> None:
    embedder = _Recording(size=16)
    with ConversationMemory.open(":memory:", session="n", budget=600, embedder=embedder) as mem:
        mem.add(HumanMessage("I paint sunsets on weekends.", name="Melanie"))
        mem.add(AIMessage("Thanks, Melanie! Lovely.", name="Caroline"))
        mem.wait_until_indexed(timeout=30)
        ranker, layout = mem._state.recall.ranker, mem._state.view.layout()
        asked = []
        queries = (
            "What does Melanie paint?",
            "What does Anna paint?",
            "Did Melanie and Caroline paint?",
        )
        for query in queries:
            _EMBEDDED.clear()
            ranker.rank(query, before_seq=9, layout=layout)
            asked.append(set(_EMBEDDED))
    assert asked[0] == {"What does Melanie paint?", "What does paint?"}
    assert asked[1] == {"What does Anna paint?"}  # no speaker's name: searched as asked
    # Both speakers, named by their messages: their names label all their turns alike.
    assert asked[2] == {queries[2], "Did and paint?"}


def test_a_speaker_only_inferred_is_embedded_without_the_name_alone() -> None:
    # A plain chat: no message carries a name; the user calls the assistant Ava. "Ava"
    # stands for the assistant's turns, indexed as "assistant: ...": the query as asked
    # ("What does assistant paint?") is as close to every assistant turn, and is not
    # embedded; the query without the name is.
    embedder = _Recording(size=16)
    with ConversationMemory.open(":memory:", session="q", budget=600, embedder=embedder) as mem:
        for _ in range(3):
            mem.add(HumanMessage("Thanks, Ava!"))
            mem.add(AIMessage("I paint sunsets on weekends."))
        mem.wait_until_indexed(timeout=30)
        ranker, layout = mem._state.recall.ranker, mem._state.view.layout()
        _EMBEDDED.clear()
        ranked = ranker.rank("What does Ava paint?", before_seq=6, layout=layout)
        assert set(_EMBEDDED) == {"What does paint?"}
        assert ranked and all(r.seq % 2 == 0 for r in ranked[:2])  # the assistant's turns


def _plain(mem: ConversationMemory, messages: list[BaseMessage]) -> list[int]:
    seqs = [mem.add(m)[-1] for m in messages]
    mem.wait_until_indexed(timeout=30)
    return seqs


def test_a_plain_chat_ranks_the_turns_of_the_role_a_query_names() -> None:
    with ConversationMemory.open(":memory:", session="p", budget=600, embedder=Flat()) as mem:
        seqs = _plain(
            mem,
            [
                *[kind(text) for text in FILLER * 3 for kind in (HumanMessage, AIMessage)],
                HumanMessage("Thanks, Ava!"),
                AIMessage("Hi Sam, you are welcome."),
                HumanMessage("Ava, I sold the old bicycle today."),
                AIMessage("Good news, Sam! I sold the old bicycle too."),
                *[kind(text) for text in FILLER for kind in (HumanMessage, AIMessage)],
            ],
        )
        ranker, view = mem._state.recall.ranker, mem._state.view
        for query, seller in (
            ("Sam and the old bicycle?", seqs[32]),
            ("Ava and the old bicycle?", seqs[33]),
        ):
            ranked = ranker.rank(query, before_seq=seqs[-1], layout=view.layout())
            assert ranked[0].seq == seller, query


class _CountingIndex:
    """A turn index stand-in that answers name lookups from a fixed chat and counts them."""

    def __init__(self, turns: list[tuple[str, str]]) -> None:
        self.turns = turns  # (role, text), seq = position + 1
        self.lookups = 0

    def phrase(self, session: str, query: str, *, before_seq: int, limit: int) -> list[Any]:
        self.lookups += 1
        return [
            SimpleNamespace(id=i + 1, seq=i + 1, context=False)
            for i, (_, text) in enumerate(self.turns)
            if query in text and i + 1 < before_seq
        ][:limit]

    def passages(self, session: str, ids: list[int]) -> list[Any]:
        return [SimpleNamespace(seq=i, text=f"x: {self.turns[i - 1][1]}") for i in ids]


def test_a_names_role_is_worked_out_again_only_when_the_session_has_doubled() -> None:
    chat = [("human", "Thanks, Ava!"), ("ai", "Hi Sam!"), ("human", "Ava, hello.")]
    chat += [("ai", "Sam, sure.")] + [("human", "filler")] * 20
    index = _CountingIndex(chat)
    roles = {
        kind: [i + 1 for i, (r, _) in enumerate(chat) if r == kind] for kind in ("human", "ai")
    }
    cache: dict[str, tuple[str | None, int]] = {}

    def ask(before: int) -> dict[str, str]:
        return named_roles(
            cast(Any, index), "s", "Did Sam call?", before_seq=before, roles=roles, cache=cache
        )

    assert ask(10) == {"Sam": "human"} and index.lookups == 1
    assert ask(20) == {"Sam": "human"} and index.lookups == 1  # reused: under twice 10
    assert ask(21) == {"Sam": "human"} and index.lookups == 2  # doubled: worked out again
    assert named_roles(cast(Any, index), "s", "Did Sam call?", before_seq=21, roles=roles) == {
        "Sam": "human"
    }
    assert index.lookups == 3  # no cache: every call looks it up


def test_spoken_turns_follow_a_growing_list_and_a_rebuilt_one() -> None:
    spoken = [2, 5, 9]
    turns = SpokenTurns()
    seqs = np.array([1, 2, 5, 9, 12, 40], dtype=np.int64)
    assert turns.among(spoken, seqs).tolist() == [False, True, True, True, False, False]
    spoken += [12, 40]  # the view appends a speaker's new turns to the same list
    assert turns.among(spoken, seqs).tolist() == [False, True, True, True, True, True]
    rebuilt = [1, 40]  # a retraction rebuilds the view: a new list
    assert turns.among(rebuilt, seqs).tolist() == [True, False, False, False, False, True]
    assert turns.among([], seqs).tolist() == [False] * 6
