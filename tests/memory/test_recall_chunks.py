"""A prompt's recall block quotes archived chunks holding the query's words, never filler."""

from __future__ import annotations

import json

from memory import AssemblyPolicy, ConversationMemory

SERVICES = [{"id": i, "service": f"svc-{i}", "region": ["eu-west-1", "us-east-1"][i % 2],
             "replicas": i % 7 + 1, "healthy": i % 11 != 0} for i in range(300)]  # fmt: skip


def test_a_lookup_quotes_no_chunk_found_by_meaning_alone() -> None:
    """A new-user trial: "what branch are we on?" got 23 chunks of an unrelated 300-item
    JSON listing (5,650 of a 6,000-token prompt; 1,839 of 1,966 tokens without the
    floor) beside the turn that answers it."""
    policy = AssemblyPolicy(lookup_relevance_floor=4.0)
    with ConversationMemory.open(":memory:", session="c", budget=2000, policy=policy) as mem:
        for number, (name, result) in enumerate(
            [("list_services", json.dumps(SERVICES)), ("git_branch", "feature/refund-fix")]
        ):
            call = {"id": f"c{number}", "type": "function",
                    "function": {"name": name, "arguments": "{}"}}  # fmt: skip
            mem.add([{"role": "user", "content": f"Run {name}."},
                     {"role": "assistant", "content": "", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": f"c{number}", "name": name,
                      "content": result}])  # fmt: skip
        for i in range(30):
            mem.add([{"role": "user", "content": f"Step {i}: tidy the docs."},
                     {"role": "assistant", "content": "Done. " * 60}])  # fmt: skip
        mem.wait_until_indexed()
        branch = mem.assemble(query="what branch are we on?")
        block = next(str(m.content) for m in branch.messages if "recalled from" in str(m.content))
        assert "tool git_branch: feature/refund-fix" in block
        assert "[tool output" not in block and branch.report.parts.recalled < 600
        region = mem.assemble(query="which region is svc-137 in?")
        sent = "\n".join(str(m.content) for m in region.messages)
        assert '"service": "svc-137", "region": "us-east-1"' in sent


def test_a_lookup_quotes_a_chunk_holding_the_id_written_otherwise() -> None:
    """A second trial: "INC5521" and "the 1250 payment" dropped the chunk holding
    "INC-5521 ... EUR 1,250" (it holds no query word as written; the tool found it)."""
    log = "\n".join(f"09:{i // 60:02d}:{i % 60:02d} INFO queue depth {i % 40}" for i in range(400))
    log = log.replace("09:03:20 INFO", "09:03:20 ERROR incident INC-5521 refund of EUR 1,250", 1)
    with ConversationMemory.open(":memory:", session="i", budget=2000) as mem:
        _output_then_chat(mem, "tail", log)
        for query in ("INC5521", "what happened to INC5521?", "the 1250 payment"):
            prompt = mem.assemble(query=query)
            block = next(
                str(m.content) for m in prompt.messages if "recalled from" in str(m.content)
            )
            assert "INC-5521 refund of EUR 1,250" in block, query


def test_what_is_left_of_a_contraction_is_no_query_word() -> None:
    """A second trial: "what's the branch?" searched for "s", found in every "MB/s" of a
    disk log: 21 of its chunks padded a lookup that "what is the branch?" kept empty."""
    from stores.text_search import query_terms

    assert query_terms("what's the branch?") == query_terms("what is the branch?") == ["branch"]
    assert query_terms("why didn't it build? I'll look, you're right") == ["build", "look", "right"]
    iostat = "\n".join(f"sda {i % 90} MB/s read, {i % 40} MB/s write" for i in range(500))
    with ConversationMemory.open(":memory:", session="s", budget=2000) as mem:
        _output_then_chat(mem, "iostat", iostat)
        prompt = mem.assemble(query="what's the branch?")
        assert "MB/s" not in "\n".join(str(m.content) for m in prompt.messages)


def _output_then_chat(mem: ConversationMemory, tool: str, output: str) -> None:
    """One tool round returning ``output``, then 150 exchanges of chat; all indexed."""
    call = {"id": "c1", "type": "function", "function": {"name": tool, "arguments": "{}"}}
    mem.add([{"role": "user", "content": f"Run {tool}."},
             {"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "c1", "content": output}])  # fmt: skip
    for i in range(150):
        mem.add([{"role": "user", "content": f"Topic {i}: lunch menus and offsites."},
                 {"role": "assistant", "content": f"Noted {i}."}])  # fmt: skip
    mem.wait_until_indexed()
