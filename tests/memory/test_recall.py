"""Recall as a user meets it: a clause inside a long message, a one-line match, Chinese."""

# ruff: noqa: RUF001  (Chinese punctuation is the point of the last test)

from __future__ import annotations

import json

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from memory import ConversationMemory
from memory._recall.excerpt import excerpt
from memory._recall.fuse import asks_only, demote_questions
from memory._recall.passages import PASSAGE_TOKENS, passage_texts, passages_of
from memory._recall.rank import RankedTurn
from stores import search_terms
from stores.text_search import query_terms

TOPICS = [
    ("Definitions", "terms such as Goods, Order, Delivery Point and Business Day"),
    ("Orders", "purchase orders issued through the portal and confirmed within two days"),
    ("Prices", "unit prices fixed for the term and invoiced in euros"),
    ("Invoicing", "invoices sent monthly with the order number and the VAT number"),
    ("Packaging", "pallets wrapped in recyclable film and labelled with the batch"),
    ("Inspection", "incoming goods sampled by the Buyer's quality team at the dock"),
    ("Warranty", "defects notified within eighteen months of delivery are repaired"),
    ("Confidentiality", "technical drawings kept secret for five years after the term"),
    ("Insurance", "product liability cover of five million euros maintained"),
    ("Audit", "records opened to the Buyer's auditors on ten days' notice"),
]
CLAUSE = (
    "Late delivery: for each full week that a shipment arrives after the agreed date, the "
    "Supplier owes the Buyer a rebate of 4.5 percent of that shipment's invoiced value, up to "
    "a ceiling of 30 percent."
)


def contract() -> str:
    """A supply agreement of about 3,300 tokens; the late-delivery clause in its middle."""
    clauses = []
    for number in range(1, 63):
        title, body = TOPICS[number % len(TOPICS)]
        text = (
            f"{number}. {title} (part {number}). The parties agree on {body}. This applies to "
            f"every site listed in schedule {number} and survives any amendment agreed in "
            f"writing by both parties, unless a later schedule replaces it expressly."
        )
        clauses.append(CLAUSE if number == 30 else text)
    return "Supply agreement between Acme Parts and Nordwind Tools.\n\n" + "\n\n".join(clauses)


CHAT = [
    "Can you suggest a name for our team offsite?",
    "How about 'Northern Lights Summit'?",
    "Nice. What should we eat on the first evening?",
    "A barbecue by the lake would suit a summer evening.",
    "Do you know a good board game for eight people?",
    "Codenames works well for groups of eight.",
]


def _open(budget: int = 2000) -> ConversationMemory:
    return ConversationMemory.open(
        ":memory:", session="c", budget=budget, embedder=DeterministicFakeEmbedding(size=64)
    )


def test_a_long_message_is_indexed_as_passages_that_tile_it() -> None:
    text = "user: " + contract()
    pieces = passage_texts(text)
    assert len(pieces) > 10 and all(p.startswith("user: ") for p in pieces)
    assert sum(CLAUSE in p for p in pieces) == 1
    assert all(len(p) < 12 * PASSAGE_TOKENS for p in pieces)
    assert passage_texts("user: short note") == ["user: short note"]
    found = passages_of(7, text, created_at=5.0, previous="assistant: hello")
    assert [p.context for p in found].count(True) == 1
    assert {p.seq for p in found} == {7} and found[-1].text.startswith("assistant: hello\n")


def test_a_clause_in_the_middle_of_a_long_message_comes_back() -> None:
    with _open() as mem:
        mem.add({"role": "user", "content": contract()})
        mem.add({"role": "assistant", "content": "I have read the agreement."})
        for n in range(12):
            role = "user" if n % 2 == 0 else "assistant"
            mem.add({"role": role, "content": CHAT[n % len(CHAT)]})
        assert mem.wait_until_indexed(30)
        question = "What rebate does the Supplier owe for late delivery?"
        prompt = mem.assemble(query=question)
        assert prompt.tokens <= 2000
        (recalled,) = [m for m in prompt.messages if "recalled from earlier" in str(m.content)]
        assert CLAUSE in str(recalled.content)  # the clause's passage, marked as a part
        assert "of a long message): Late delivery" in str(recalled.content)
        assert "1. Orders (part 1)" not in str(recalled.content)  # not the message's head
        answer = mem.recall(query=question)
        assert "4.5 percent" in answer and 'turn="1"' in answer and "date=" in answer
        assert "of a long message): Late delivery" in answer  # labelled as in the prompt
        assert mem.counter.count(answer) < 600  # the passage, not the whole message
        assert "Codenames" not in answer  # what matches, not the best of the rest
        # Once the question is stored (as before a tool call), the tool finds the clause,
        # not the question itself.
        mem.add({"role": "user", "content": question})
        answer = mem.recall(query=question)
        assert "4.5 percent" in answer and "owe for late delivery?" not in answer


CALL = {"name": "logs", "arguments": "{}"}


def test_recall_of_a_one_line_match_is_short(archive_mem: ConversationMemory) -> None:
    lines = [f"2024-05-01T10:{i // 60:02d}:{i % 60:02d} INFO job {i} finished" for i in range(400)]
    lines[233] = "2024-05-01T10:03:53 ERROR job 233 failed: disk quota exceeded on /data"
    archive_mem.add(
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "logs", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "\n".join(lines)},
        ]
    )
    archive_mem.add({"role": "user", "content": "thanks, what next?"})
    assert archive_mem.wait_until_indexed(30)
    answer = archive_mem.recall(query="disk quota")
    assert "disk quota exceeded" in answer
    assert archive_mem.counter.count(answer) <= 150
    assert 'lines="233-235"' in answer  # the matching line (234) and one on each side


def _tool_output(mem: ConversationMemory, content: str) -> str:
    """Add a tool round with this output; return the output's ref."""
    before = {r.ref for r in mem.archive.refs()}
    call_id = f"c{len(before)}"
    call = {"id": call_id, "type": "function", "function": {"name": "get", "arguments": "{}"}}
    mem.add([{"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "tool_call_id": call_id, "content": content}])  # fmt: skip
    assert mem.wait_until_indexed(30)
    (ref,) = {r.ref for r in mem.archive.refs()} - before
    return ref


def test_a_match_in_a_json_record_or_a_traceback_comes_with_its_whole_block() -> None:
    orders = [
        {"id": i, "customer": f"cust-{i}", "sku": f"SKU-{i:04d}", "status": "shipped",
         "note": "zebra-7781" if i == 137 else ""}
        for i in range(300)
    ]  # fmt: skip
    log = [f"10:00:{i % 60:02d} INFO handled request {i}" for i in range(800)]
    log[500:500] = [
        "Traceback (most recent call last):",
        '  File "/app/server.py", line 88, in handle',
        "    result = compute(payload)",
        '  File "/app/calc.py", line 12, in ratio',
        "    return a / b",
        "ZeroDivisionError: division by zero",
    ]
    with ConversationMemory.open(
        ":memory:", session="t", budget=6000, compress_threshold=50,
        embedder=DeterministicFakeEmbedding(size=16),
    ) as mem:  # fmt: skip
        ref = _tool_output(mem, json.dumps(orders, indent=2))
        for query in ("zebra-7781", "note zebra"):
            answer = mem.recall(ref=ref, query=query)
            # The record the match is in, not the matching line and a line around it,
            # nor every record whose "note" matches the query's common word.
            record = answer[answer.index('"id": 137') - 10 : answer.index("zebra-7781") + 20]
            assert '"customer": "cust-137"' in record and '"id": 136' not in answer, answer
            # Only chunks holding a word few chunks hold: not every chunk with a "note".
            assert answer.count("<archived ") == 1, answer
        stack = mem.recall(ref=_tool_output(mem, "\n".join(log)), query="ZeroDivisionError")
    assert "\n".join(log[500:506]) in stack  # the whole stack with its error


def test_a_chinese_fact_is_found_by_a_chinese_question() -> None:
    with _open(budget=400) as mem:
        mem.add({"role": "user", "content": "我的护照号码是E12345678，放在书房的抽屉里。"})
        mem.add({"role": "assistant", "content": "好的，我记住了。"})
        for n in range(30):
            role = "user" if n % 2 == 0 else "assistant"
            mem.add({"role": role, "content": f"今天天气很好，我们去公园散步吧。第{n}次。"})
        assert mem.wait_until_indexed(30)
        assert "E12345678" in mem.recall(query="护照放在哪里？")
        prompt = mem.assemble(query="我的护照在哪里？")
        assert "E12345678" in "\n".join(str(m.content) for m in prompt.messages)


def _cat_chat(mem: ConversationMemory) -> None:
    mem.add({"role": "user", "content": "Hi! I just moved to Lyon with my cat Miso."})
    mem.add({"role": "assistant", "content": "Congratulations on the move!"})
    mem.add({"role": "user", "content": "Bad news: Miso is sick, the vet says kidney infection."})
    mem.add({"role": "assistant", "content": "I'm sorry to hear that. I hope Miso recovers."})
    for i in range(40):
        mem.add(
            {
                "role": "user",
                "content": f"What should I cook tonight? I have {i + 2} "
                f"tomatoes, some rice and an onion, and guests at {18 + i % 4}:00.",
            }
        )
        mem.add(
            {
                "role": "assistant",
                "content": "Try a tomato risotto: soften the onion, "
                f"toast the rice, add {i + 2} chopped tomatoes and stock for 20 minutes.",
            }
        )
    mem.wait_until_indexed()
    mem.add({"role": "user", "content": "By the way, what illness did the vet find in my cat?"})


def test_a_small_budget_recalls_the_turn_that_answers_not_its_neighbour() -> None:
    # 4% of 1,000-2,000 tokens cannot hold the recall block and one turn, and the
    # greeting before the answer used to take the room the answer did not fit in.
    for budget in (1_000, 2_000):
        # The bundled MiniLM, as a user gets it: relevance needs real embeddings.
        with ConversationMemory.open(":memory:", session="s", budget=budget) as mem:
            _cat_chat(mem)
            prompt = mem.assemble(system="You are a friendly assistant.")
            assert 3 in prompt.report.recalled_turns
            assert "kidney infection" in str(prompt.messages[-1].content)
            assert prompt.tokens <= budget


def test_a_small_budget_quotes_the_sentence_that_answers_from_a_long_message() -> None:
    lossy = FakeListChatModel(responses=["They chatted about everyday things."] * 500)
    sections = [
        f"Section {i}. Our quarterly review covered operations, staffing and logistics "
        f"across the regional offices, with no notable exceptions in area {i}."
        for i in range(60)
    ]
    sections[31] = "Section 31. The vault access code for the Geneva office is 5521-KESTREL."
    for budget in (1000, 2000):
        with ConversationMemory.open(
            ":memory:",
            session="s",
            budget=budget,
            summarizer=lossy,  # the bundled MiniLM
        ) as mem:
            mem.add({"role": "user", "content": "Here's the report:\n\n" + "\n\n".join(sections)})
            mem.add({"role": "assistant", "content": "Thanks, I've read the report."})
            for i in range(40):
                mem.add({"role": "user", "content": f"Small talk {i}, how is your day going?"})
                mem.add({"role": "assistant", "content": f"My day is fine, thanks ({i})."})
            mem.add({"role": "user", "content": "What was the vault access code for Geneva?"})
            assert mem.wait_for_summary(30) and mem.wait_until_indexed(30)
            prompt = mem.assemble()
            (recalled,) = [m for m in prompt.messages if "recalled from earlier" in str(m.content)]
            text = str(recalled.content)
            # The passage (~160 tokens) does not fit the 150-token room: its answering
            # sentence does, marked as an excerpt.
            assert "5521-KESTREL" in text and "of a long message, excerpt): " in text, text
            assert prompt.report.recalled_turns == (1,) and prompt.tokens <= budget


def test_an_excerpt_is_whole_sentences_around_the_best_one() -> None:
    line = "user (part 2 of 9 of a long message): Alpha one. The code is 42. Beta two. Gamma."
    room = {"size": 70}

    def fits(text: str) -> bool:
        return len(text) <= room["size"]

    assert excerpt(line, ["code"], fits) == (
        "user (part 2 of 9 of a long message, excerpt): \u2026 The code is 42. \u2026"
    )
    room["size"] = 200
    assert excerpt(line, ["code"], fits) == (
        "user (part 2 of 9 of a long message, excerpt): Alpha one. The code is 42. Beta two. Gamma."
    )
    assert excerpt("bob (part 1 of 3 of a long message): One. Two.", ["code"], fits) is None
    assert excerpt("bob: Alpha one. The code is 42. Beta.", ["code"], fits) is None  # a turn
    listing = "user (part 1 of 18 of a long message): 1374:    :param code: x; 1375: y = {}; z"
    assert excerpt(listing, ["code"], fits) is None  # code and listings are not cut
    assert excerpt("bob: The code is 42.", ["code"], fits) is None  # one sentence: no cut
    room["size"] = 10
    assert excerpt(line, ["code"], fits) is None  # the best sentence alone does not fit


def test_chinese_prose_is_cut_at_its_full_stops() -> None:
    # A new-user trial: sentences ending in "。" take no space after it, so the passage
    # was one sentence and was cut from its start.
    fact = "\u5de5\u4eba\u7c89\u5237\u4e86\u4e2d\u5ead\uff0c\u82b1\u8d39\u56db\u5343\u5143\u3002"
    filler = "\u7b2c\u4e00\u9879\u8d39\u7528\u5df2\u5ba1\u6838\u3002"
    line = f"user (part 2 of 9 of a long message): {filler * 6}{fact}{filler * 6}"
    words = query_terms("\u7c89\u5237\u4e2d\u5ead", stemmed=True)
    cut = excerpt(line, words, lambda text: len(text) <= 80)
    assert cut is not None and fact in cut and cut.count(filler) < 6


def test_an_excerpt_picks_the_sentence_holding_another_form_of_a_query_word() -> None:
    line = "user (part 2 of 9 of a long message): We met at noon. She painted the barn red. Rain."
    words = query_terms("Who paints?", stemmed=True)
    cut = excerpt(line, words, lambda text: len(text) <= 80)
    assert cut is not None and "She painted the barn red." in cut and "noon" not in cut


def test_a_long_plain_chat_samples_own_passages_and_context_copies_alike() -> None:
    # Similarities are z-scored against a sample of the index, own passages and context
    # copies apart. Their ids alternate; a sample of every 2nd id (past 2,048 vectors)
    # held context copies only, and every turn's own similarity then counted for nothing.
    with ConversationMemory.open(
        ":memory:", session="s", budget=1_000, embedder=DeterministicFakeEmbedding(size=16)
    ) as mem:
        for n in range(600):
            mem.add([
                {"role": "user", "content": f"question {n} about topic {n % 37}"},
                {"role": "assistant", "content": f"answer {n}"},
            ])  # fmt: skip
        assert mem.wait_until_indexed(timeout=120)
        ranker = mem._state.recall.ranker
        assert ranker.indexer is not None
        ids, _ = ranker.indexer.sample_scores("x", 2_048)
        context = ranker._is_context(ids)
    assert len(ids) > 1_000 and 0.4 < context.mean() < 0.6


class _Down(DeterministicFakeEmbedding):
    """An embedding service that is down: search falls back to words and phrases."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding service unreachable")

    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding service unreachable")


def test_the_recall_tool_quotes_a_turn_found_by_its_phrase_alone() -> None:
    # "anna" and "birthday" together match too many passages: the word search reads
    # "anna" alone and prefers the shorter "Anna called me" turns; the fact comes in by
    # the phrase "Anna's birthday" only, ranked first. The tool dropped such a turn, and
    # its score still set the relative floor: "Nothing matches".
    with ConversationMemory.open(
        ":memory:", session="s", budget=1_000, embedder=_Down(size=8)
    ) as mem:
        mem.add([{"role": "user", "content": "Anna's birthday is on the 12th of June."},
                 {"role": "assistant", "content": "Noted."}])  # fmt: skip
        for n in range(150):
            mem.add([{"role": "user", "content": f"Anna called me about topic {n}."},
                     {"role": "assistant", "content": "OK."},
                     {"role": "user", "content": f"It is Tom's birthday on day {n}."},
                     {"role": "assistant", "content": "OK."}])  # fmt: skip
        assert "12th of June" in mem.recall(query="Anna's birthday")


def test_an_old_fact_in_words_said_all_the_time_is_found_with_the_embedder_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The third new-user trial: "locker" and "code" each in more passages than a search
    # reads (the newest MAX_SCORED; 20 here, 2,000 in use), the fact holding both said
    # early. Neither words nor the phrase reached it: "Nothing matches"-like filler came.
    monkeypatch.setattr(search_terms, "MAX_SCORED", 20)
    with ConversationMemory.open(
        ":memory:", session="s", budget=1_000, embedder=_Down(size=8)
    ) as mem:
        mem.add([{"role": "user", "content": "My locker code is 4417."},
                 {"role": "assistant", "content": "Noted."}])  # fmt: skip
        for n in range(40):
            mem.add([{"role": "user", "content": f"I left my bag in the locker again ({n})."},
                     {"role": "assistant", "content": f"Check the room ({n})."},
                     {"role": "user", "content": f"Can you review this code for me? ({n})"},
                     {"role": "assistant", "content": f"Looks fine ({n})."}])  # fmt: skip
        assert "4417" in mem.recall(query="locker code")
        prompt = mem.assemble(query="What is my locker code?")
        assert "4417" in " ".join(str(m.content) for m in prompt.messages)


def test_a_question_asked_before_gives_way_to_the_turn_that_answers_it() -> None:
    """The README's first example run three times in one session: the question asked in
    the earlier runs matches the query better than the order does (shorter, every word),
    yet it holds no fact; the order is what comes back."""
    with ConversationMemory.open(":memory:", session="s", budget=250) as mem:  # MiniLM
        for _ in range(3):
            for n in range(1, 9):
                order = f"Order #{n}: ship {n * 10} boxes to Lyon by Friday."
                mem.add({"role": "user", "content": order})
                mem.add({"role": "assistant", "content": f"Noted: order #{n}, {n * 10} boxes."})
            mem.add({"role": "user", "content": "How many boxes was order #2?"})
        mem.wait_until_indexed(timeout=30)
        block = mem.assemble(query="order #2 boxes").messages[-1].text
        assert "Order #2: ship 20 boxes" in block.split("</memory>")[0]


def test_only_turns_that_only_ask_are_demoted() -> None:
    assert asks_only("How many boxes was order #2?")
    assert asks_only("Really? Which one?")
    assert not asks_only("I moved to Lyon. Have you been?")
    assert not asks_only("Order #2: ship 20 boxes.")
    assert not asks_only("")
    ranked = [RankedTurn(1, 3.0), RankedTurn(2, 2.5), RankedTurn(3, 1.0), RankedTurn(4, 0.5)]
    texts = {1: "Which order?", 2: "Order 2, twenty boxes.", 3: "Why?", 4: "Fine."}
    order = [r.seq for r in demote_questions(ranked, texts.get, top=2)]
    assert order == [2, 1, 3, 4]  # 1 asks: 3.0 - 1.0 falls behind 2.5; 3 is past top=2, unread


def test_a_clause_in_a_long_message_is_recalled_implicitly_by_its_words_alone() -> None:
    """The embedder down: the clause's rare words alone must clear the implicit floor.
    Its message was the one turn in scope, so word scores had no spread at all (they
    are measured over the passages in scope, not the turns), and they were on a scale
    the floor, set for words and meaning together, never saw."""
    with ConversationMemory.open(
        ":memory:", session="s", budget=2000, embedder=_Down(size=8)
    ) as mem:
        mem.add({"role": "user", "content": contract()})
        mem.add({"role": "assistant", "content": "I have read the agreement."})
        for n in range(24):
            role = "user" if n % 2 == 0 else "assistant"
            mem.add({"role": role, "content": CHAT[n % len(CHAT)]})
        mem.add({"role": "user", "content": "What rebate does the Supplier owe for late delivery?"})
        mem.wait_for_summary(30)
        prompt = mem.assemble()
        assert prompt.report.recall_degraded is not None
        assert 1 in prompt.report.recalled_turns
        assert "4.5 percent" in "\n".join(m.text for m in prompt.messages)


def test_a_long_message_is_quoted_by_the_part_holding_the_phrase_asked() -> None:
    # A new-user trial: "Section 23" asked of a pasted 40-section contract brought back
    # the part holding "23 business days": the turn was lifted for holding the phrase,
    # but quoted by its part that matched best otherwise.
    sections = [
        f"Section {k}. The parties agree that deliverable {k} is reviewed within {k + 5} "
        "business days."
        for k in range(1, 41)
    ]
    sections[22] = "Section 23. The vault access code for the archive room is 7731."
    with ConversationMemory.open(
        ":memory:", session="c", budget=2000, embedder=DeterministicFakeEmbedding(size=32)
    ) as mem:
        mem.add({"role": "user", "content": "Review this contract:\n\n" + "\n\n".join(sections)})
        mem.add({"role": "assistant", "content": "Reviewed: 40 sections."})
        for i in range(30):
            mem.add({"role": "user", "content": f"Gardening question number {i}."})
            mem.add({"role": "assistant", "content": "Water deeply and mulch."})
        mem.wait_until_indexed(timeout=30)
        for query in ("Section 23", "section 23 of the contract"):
            assert "7731" in mem.recall(query=query, max_tokens=200), query
            prompt = mem.assemble(query=query, budget=800)
            assert any("7731" in str(m.content) for m in prompt.messages), query
