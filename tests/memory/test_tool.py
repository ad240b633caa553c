"""The recall tool as a LangChain tool, as provider schemas, and its raw-call handler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from memory import ConfigError, ConversationMemory
from memory.tool import RECALL_DESCRIPTION, anthropic_schema, handle_tool_call, openai_schema


@pytest.fixture
def tool_mem(archive_mem: ConversationMemory) -> Iterator[ConversationMemory]:
    log = "\n".join(f"line {i}: status ok" for i in range(300)) + "\nline 300: FATAL boom"
    archive_mem.add(
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "cat", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": log},
        ]
    )
    yield archive_mem


def test_langchain_tool_invokes_recall(tool_mem: ConversationMemory) -> None:
    tool = tool_mem.recall_tool()
    assert isinstance(tool, BaseTool)
    assert tool.name == "recall"
    (record,) = tool_mem.archive.refs()
    out = tool.invoke({"ref": record.ref, "query": "FATAL boom"})
    assert out == tool_mem.recall(ref=record.ref, query="FATAL boom")
    assert "line 300: FATAL boom" in out


def test_provider_schemas_describe_the_same_arguments() -> None:
    openai = openai_schema()
    assert openai["type"] == "function"
    assert openai["function"]["name"] == "recall"
    assert openai["function"]["description"] == RECALL_DESCRIPTION
    properties = openai["function"]["parameters"]["properties"]
    assert set(properties) == {"ref", "query", "max_tokens", "page"}
    anthropic = anthropic_schema()
    assert anthropic["name"] == "recall"
    assert set(anthropic["input_schema"]["properties"]) == set(properties)


def test_raw_handler_accepts_json_and_reports_bad_arguments(tool_mem: ConversationMemory) -> None:
    (record,) = tool_mem.archive.refs()
    by_json = handle_tool_call(tool_mem.archive, f'{{"ref": "{record.ref}", "query": "FATAL"}}')
    assert "FATAL boom" in by_json
    assert handle_tool_call(tool_mem.archive, "{not json").startswith("recall: bad arguments")
    assert handle_tool_call(tool_mem.archive, {"max_tokens": "lots"}).startswith("recall: bad")


class TestRecallToolStandard(ToolsUnitTests):
    """langchain-tests' standard checks for tools."""

    @pytest.fixture(autouse=True)
    def _memory(self) -> Iterator[None]:
        self._mem = ConversationMemory.open(":memory:", session="std")
        yield
        self._mem.close()

    @property
    def tool_constructor(self) -> BaseTool:
        return self._mem.recall_tool()

    @property
    def tool_invoke_params_example(self) -> dict[str, object]:
        return {"ref": "a1b2c3d4", "query": "error lines", "max_tokens": 200, "page": 1}


def test_a_hit_found_by_meaning_alone_says_so(tool_mem: ConversationMemory) -> None:
    """No line holds "zzqxj flurbo": what search by meaning brings is labelled, so the
    model does not read it as a match; a hit holding the words is not."""
    tool_mem.wait_until_indexed(timeout=30)
    out = tool_mem.recall(query="zzqxj flurbo wibble")
    assert 'found="by meaning only' in out or out.startswith("Nothing")
    assert "<archived ref=" in out  # the fake embedder always has a nearest chunk
    assert "by meaning only" not in tool_mem.recall(query="FATAL boom")


def test_an_identifier_query_finds_its_line_not_a_longer_name(
    archive_mem: ConversationMemory,
) -> None:
    """ "file_17" is the words "file" and "17" (an underscore separates words, as in the
    index): its line comes back, narrowed, not labelled as found by meaning, and not the
    chunk of file_170 ... file_179."""
    listing = "\n".join(f"-rw-r--r-- 1 u u {i * 37} file_{i}.py" for i in range(300))
    call = {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
    archive_mem.add([{"role": "assistant", "content": "", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "c1", "content": listing}])  # fmt: skip
    archive_mem.wait_until_indexed(timeout=30)
    for query in ("file_17", "file_17.py"):
        out = archive_mem.recall(query=query)
        first = out.split("</archived>")[0]
        assert "629 file_17.py" in first and "file_170" not in first, out
        assert "by meaning only" not in first and 'lines="18-19"' in first, out


def test_turns_holding_none_of_the_query_words_are_labelled_by_meaning() -> None:
    # A new-user trial: a fact never stated ("dentist appointment") brought back podcast
    # chatter above the floor, shown as if it matched.
    with ConversationMemory.open(
        ":memory:", session="m", budget=1000, embedder=DeterministicFakeEmbedding(size=32)
    ) as mem:
        mem.add({"role": "user", "content": "My passport number is X4471920."})
        mem.add({"role": "assistant", "content": "Got it."})
        for i in range(60):
            mem.add({"role": "user", "content": f"Let's talk about a history podcast, part {i}."})
            mem.add({"role": "assistant", "content": f"Sure! History podcast point {i}."})
        mem.wait_until_indexed(timeout=30)
        blocks = mem.recall(query="dentist appointment").split("<archived ")[1:]
        assert blocks and all('found="by meaning only' in b for b in blocks)
        asked = mem.recall(query="what is my passport number?").split("<archived ")[1:]
        fact = next(b for b in asked if "X4471920" in b)
        assert "by meaning only" not in fact
        reply = [b for b in asked if b.startswith('turn="2"')]  # the answer after the fact
        assert all("by meaning only" not in b for b in reply)


def test_a_turn_matched_with_its_diacritics_folded_is_not_labelled_by_meaning() -> None:
    # The third new-user trial: "zurich" finds "Zürich" by words (the index folds
    # diacritics), but the label told the model none of its words was there.
    with ConversationMemory.open(
        ":memory:", session="z", budget=1000, embedder=DeterministicFakeEmbedding(size=32)
    ) as mem:
        mem.add({"role": "user", "content": "Remember the word Zürich for the quiz."})
        mem.add({"role": "assistant", "content": "Sure."})
        _planets(mem, 30)
        for query in ("zurich", "Zürich"):
            found = mem.recall(query=query).split("<archived ")[1:]
            fact = next(b for b in found if "Zürich" in b)
            assert "by meaning only" not in fact, query


def test_a_query_of_words_said_everywhere_is_told_to_ask_with_rarer_ones(
    switchable_embedder: Any,
) -> None:
    # The second new-user trial: with the embedder down, "car parking" among turns that
    # all say "car" or "parking" got "Nothing matches", which told the model it was never
    # said. Such words weigh nothing in BM25; the answer now says so.
    switchable_embedder.failing = True
    with ConversationMemory.open(
        ":memory:", session="c", budget=1000, embedder=switchable_embedder
    ) as mem:
        for n in range(40):
            mem.add([{"role": "user", "content": f"The car is outside ({n})."},
                     {"role": "assistant", "content": f"The parking is full ({n})."}])  # fmt: skip
        common = mem.recall(query="car parking")
        assert "stands out" in common and "rarer words" in common, common
        assert mem.recall(query="zeppelin").startswith("Nothing in the archive matches")


def _planets(mem: ConversationMemory, count: int) -> None:
    """Bury what came before under ``count`` unrelated exchanges, indexed."""
    for i in range(count):
        mem.add([{"role": "user", "content": f"Tell me about planet number {i}."},
                 {"role": "assistant", "content": f"Planet {i} is a gas giant."}])  # fmt: skip
    mem.wait_until_indexed(timeout=30)


def test_memory_recall_refuses_arguments_of_the_wrong_type() -> None:
    # The tool answers a model's bad call with a message; a developer's call is refused.
    with ConversationMemory.open(":memory:", session="t") as mem:
        mem.add([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
        for bad in ({"query": 5}, {"ref": 7}, {"query": "hi", "max_tokens": "10"},
                    {"query": "hi", "page": 1.5}):  # fmt: skip
            with pytest.raises(ConfigError, match="must be"):
                mem.recall(**bad)  # type: ignore[arg-type]
        assert isinstance(mem.recall(query="hi"), str)


def test_a_question_found_comes_with_the_answer_after_the_agents_tool_round() -> None:
    # An agent's first reply only calls a tool ("Let me check."); the answer comes after
    # the result (fifth new-user trial: the preamble was shown as the answer).
    with ConversationMemory.open(":memory:", session="t", budget=300) as mem:
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"id": "5521"}'},
        }
        mem.add([
            {"role": "user", "content": "Where is my parcel from the bakery order?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "hub Leipzig, eta 03-05"},
            {"role": "assistant", "content": "It is at the Leipzig hub, arriving March 5."},
        ])  # fmt: skip
        _planets(mem, 40)
        found = mem.recall(query="Where is my parcel from the bakery order?")
    assert "Leipzig hub" in found
    assert found.index("bakery order?") < found.index("Leipzig hub")
    answer = found[found.rindex("<archived", 0, found.index("Leipzig hub")) :]
    assert "by meaning" not in answer.split("\n", 1)[0]  # the answer to a matching question


def _rounds(mem: ConversationMemory, question: str, answer: str, rounds: int) -> None:
    """A question, ``rounds`` tool rounds whose calls carry no text, and the answer."""
    mem.add({"role": "user", "content": question})
    for i in range(rounds):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        mem.add([{"role": "assistant", "content": "", "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": f"c{i}", "content": f"step {i}"}])  # fmt: skip
    mem.add({"role": "assistant", "content": answer})


def test_an_answer_after_many_tool_rounds_or_a_regeneration_is_paired() -> None:
    # Second trial of the fixes: 5 rounds put the answer past the 8 turns read; a
    # regenerated reply sat after a retracted one and its retraction's record.
    with ConversationMemory.open(":memory:", session="t", budget=300) as mem:
        _rounds(mem, "Where is my walrus parcel?", "It waits at the Leipzig hub.", 5)
        mem.add({"role": "user", "content": "Which gate do I use for the bakery?"})
        wrong = mem.add({"role": "assistant", "content": "Gate 1."})[-1]
        mem.retract(wrong)
        mem.add({"role": "assistant", "content": "The north gate, by the ovens."})
        _planets(mem, 40)
        parcel = mem.recall(query="Where is my walrus parcel?")
        gate = mem.recall(query="Which gate do I use for the bakery?")
        prompt = mem.assemble(query="Which gate do I use for the bakery?")
    assert parcel.index("walrus parcel?") < parcel.index("Leipzig hub")
    assert gate.index("bakery?") < gate.index("north gate") and "Gate 1." not in gate
    block = next(str(m.content) for m in prompt.messages if "recalled from" in str(m.content))
    asked = block.index("user: Which gate")  # the reply right after it, retraction or not
    assert block[asked : block.index("north gate")].count("\n") == 1


def test_a_reply_that_matches_comes_with_the_turn_it_answers_in_order() -> None:
    # The reply holds the query's word ("morning"); the fact is in what it replies to.
    with ConversationMemory.open(":memory:", session="t", budget=300) as mem:
        mem.add([
            {"role": "user", "content": "I always order a café crème and a croissant before work."},
            {"role": "assistant", "content": "Sounds like a lovely morning routine."},
        ])  # fmt: skip
        _planets(mem, 60)
        found = mem.recall(query="What do I usually drink in the morning?")
    assert "café crème" in found and "lovely morning routine" in found
    assert found.index("café crème") < found.index("lovely morning routine")
    fact = found[found.rindex("<archived", 0, found.index("café crème")) : found.index("café")]
    assert "by meaning" not in fact  # the turn a matching reply answers


def test_the_langchain_tool_answers_bad_arguments_with_text() -> None:
    with ConversationMemory.open(":memory:", session="t") as mem:
        mem.add([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
        tool = mem.recall_tool()
        for bad in ({"query": 5}, {"query": "x", "max_tokens": "lots"}, {"page": None}):
            assert str(tool.invoke(bad)).startswith("recall: bad arguments")
        call = {"type": "tool_call", "id": "c1", "name": "recall", "args": {"query": 5}}
        assert "bad arguments" in str(tool.invoke(call).content)


def test_recall_says_when_nothing_fits_and_echoes_a_ref_cut_short() -> None:
    with ConversationMemory.open(":memory:", session="t", budget=300) as mem:
        mem.add([{"role": "user", "content": "The red crate number 119 holds " + "rope " * 80},
                 {"role": "assistant", "content": "Noted."}])  # fmt: skip
        _planets(mem, 40)
        assert "red crate number 119" in mem.recall(query="red crate 119", max_tokens=800)
        tight = mem.recall(query="red crate 119", max_tokens=64)
        assert "does not fit in 64 tokens" in tight and "max_tokens" in tight
        unknown = mem.recall(ref="r" * 100_000)
        assert unknown.startswith("No archived output with ref 'rrr") and len(unknown) < 400


def test_a_reply_after_a_tool_round_comes_with_the_question_it_answers() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "fares", "arguments": "{}"}}
    with ConversationMemory.open(":memory:", session="t", budget=300) as mem:
        mem.add([
            {"role": "user", "content": "Which airport should I fly from?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "AMS 120, RTM 180, EIN 150"},
            {"role": "assistant", "content": "Fly from Schiphol, the cheapest fares depart there."},
        ])  # fmt: skip
        _planets(mem, 60)
        found = mem.recall(query="Schiphol cheapest fares")
    assert found.index("Which airport") < found.index("Fly from Schiphol")
    question = found[found.rindex("<archived", 0, found.index("Which airport")) :]
    assert "by meaning" not in question.split("\n", 1)[0]


def test_snippets_without_the_identifier_asked_for_say_so() -> None:
    """ "INC-9999", which no turn holds, brings back other tickets by their common words:
    each says what it lacks, so a model does not take INC-6007 for the answer."""
    import re

    with ConversationMemory.open(
        ":memory:", session="s", budget=300, embedder=DeterministicFakeEmbedding(size=32)
    ) as mem:
        for i in range(20):
            mem.add(
                {"role": "user", "content": f"Build failed on v2.{i}.1; ticket INC-{6000 + i}."}
            )
            mem.add({"role": "assistant", "content": f"Logged #{i}."})
        mem.add({"role": "user", "content": "We pinned the SDK to v2.14.1 for now."})
        mem.add({"role": "assistant", "content": "Got it."})
        for i in range(6):
            mem.add({"role": "user", "content": f"Small talk {i}."})
            mem.add({"role": "assistant", "content": "Sure."})
        assert mem.wait_until_indexed(30)
        absent = mem.recall(query="What was ticket INC-9999 about?")
        blocks = re.findall(r"<archived [^>]*>", absent)
        assert blocks and all('lacks="9999"' in b for b in blocks)
        found = mem.recall(query="INC-6007")
        assert "INC-6007" in found and 'lacks="6007"' not in found.split("</archived>")[0]


def test_a_date_the_query_names_is_no_identifier_for_the_lacks_label() -> None:
    with ConversationMemory.open(
        ":memory:", session="s", budget=300, embedder=DeterministicFakeEmbedding(size=32)
    ) as mem:
        mem.add({"role": "user", "content": "Booked the ferry.", "timestamp": "2023-06-03"})
        mem.add({"role": "assistant", "content": "Noted.", "timestamp": "2023-06-03"})
        for day in range(4, 12):
            at = f"2023-06-{day:02d}"
            mem.add({"role": "user", "content": f"Chat of day {day}.", "timestamp": at})
            mem.add({"role": "assistant", "content": "Sure.", "timestamp": at})
        assert mem.wait_until_indexed(30)
        for query in ("What did I book on 3 June 2023?", "What did I do on 2023-06-03?"):
            answer = mem.recall(query=query)
            assert "Booked the ferry." in answer and "lacks=" not in answer, query


@pytest.mark.parametrize(
    ("text", "query", "lacks"),
    [
        ("Invoice total 1,250 EUR.", "the 1250 invoice", ""),
        ("Ticket INC5521 closed.", "INC-5521", ""),
        ("Ticket INC-\uff15\uff15\uff12\uff11 closed.", "INC-5521", ""),  # fullwidth digits
        ("Pinned v2.14.1.", "V2.14.1", ""),
        ("Ticket INC-6007 closed.", "INC-9999", ' lacks="9999"'),
        ("Pinned v2.1.1.", "v2.14.1", ' lacks="14"'),
    ],
)
def test_the_lacks_label_never_says_a_snippet_lacks_what_it_holds(
    text: str, query: str, lacks: str
) -> None:
    from memory._quoted_hits import _lacking
    from memory._recall.exact import identifiers

    assert _lacking(text, identifiers(query)) == lacks


def test_a_long_passage_too_big_for_the_room_is_quoted_by_its_matching_sentences() -> None:
    # A new-user trial: at max_tokens=100 the passage was cut from its start, mid-word,
    # and the sentence that matched was lost.
    items = [f"Item {i} notes that the committee reviewed expense line {i}." for i in range(45)]
    items[23] = "The crews painted the atrium and the loading dock in 2019 for 4,200 dollars."
    with ConversationMemory.open(
        ":memory:", session="x", budget=1500, embedder=DeterministicFakeEmbedding(size=32)
    ) as mem:
        mem.add({"role": "user", "content": "Minutes of the meeting. " + " ".join(items)})
        mem.add({"role": "assistant", "content": "Thanks, I have read the minutes."})
        _planets(mem, 30)
        out = mem.recall(query="crews painted the atrium", max_tokens=100)
        assert "for 4,200 dollars." in out and "long message, excerpt): … " in out, out


class Flat(Embeddings):
    """Every text the same vector: ranking by words alone."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return [1.0, 0.0]


def test_a_long_listing_too_big_for_the_room_is_quoted_by_its_matching_lines() -> None:
    # A new-user trial: cut from its start, the matching line was lost.
    rows = [f"- 2023-06-{i % 28 + 1:02d} | #{i * 37:05d} | ok" for i in range(150)]
    rows[70] = "- 2023-06-15 | #04200 | atrium painted by the crews"
    with ConversationMemory.open(":memory:", session="l", budget=1500, embedder=Flat()) as mem:
        mem.add({"role": "user", "content": "The ledger:\n" + "\n".join(rows)})
        mem.add({"role": "assistant", "content": "Thanks, I have the ledger."})
        _planets(mem, 30)
        out = mem.recall(query="atrium crews", max_tokens=100)
        assert "#04200 | atrium painted by the crews" in out and "\n\u2026" in out, out


def test_a_larger_max_tokens_brings_back_more_of_the_turns_that_match() -> None:
    # A new-user trial: with 2,000 tokens, 3 of 8 turns holding "fence" came back (six
    # hits, each question with its reply), most of the room unused.
    facts = [f"Fence note {i}: the fence got {word}." for i, word in enumerate("abcdefgh")]
    with ConversationMemory.open(":memory:", session="f", budget=1500, embedder=Flat()) as mem:
        for fact in facts:
            mem.add([{"role": "user", "content": fact}, {"role": "assistant", "content": "Ok."}])
            for i in range(4):
                mem.add([{"role": "user", "content": f"Weather chat {i}."},
                          {"role": "assistant", "content": "Sure."}])  # fmt: skip
        mem.wait_until_indexed(timeout=30)  # every turn scored alike: by words and vector
        assert all(f in mem.recall(query="fence", max_tokens=2000) for f in facts)
        assert sum(f in mem.recall(query="fence") for f in facts) < len(facts)
