"""A chunk of minified JSON is quoted by the records that match, not as a whole run."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from memory import ConversationMemory
from memory._focus import focus
from memory._records import MIN_RECORDS, records_of

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.lists(st.dictionaries(st.text(max_size=5), _values, max_size=3), max_size=12),
       st.sampled_from([None, (",", ":"), (", ", ": ")]))  # fmt: skip
def test_records_join_back_into_the_line_and_each_is_one_item(
    items: list[dict[str, Any]], separators: tuple[str, str] | None
) -> None:
    line = json.dumps(items, separators=separators)
    inner = line[1:-1]  # an archive chunk cut between records: no enclosing brackets
    records = records_of(inner)
    if records is None:
        assert len(items) < MIN_RECORDS
        return
    assert "".join(records) == inner
    assert [json.loads(r.rstrip(", ")) for r in records] == items


def test_text_without_records_is_left_alone() -> None:
    assert records_of('He said "}, {" is not JSON, fine.') is None
    assert records_of('{"a": [1, 2], "b": {"c": 3}}') is None
    assert records_of('{"a": "x}, {y"}, {"a": 2}, {"a": 3}') is None  # a string is no cut


def test_a_minified_listing_is_quoted_by_its_matching_records() -> None:
    rows = [{"id": i, "name": f"user{i}", "note": "flagged" if i % 9 == 0 else "regular"}
            for i in range(40)]  # fmt: skip
    line = json.dumps(rows)[1:-1]
    quoted = focus(line, "user13")
    assert quoted == '… {"id": 13, "name": "user13", "note": "regular"}, …'
    assert focus(line, "regular") == line  # most records match: the whole line


def test_recall_of_minified_json_returns_the_record_asked_for() -> None:
    """A new-user trial: an API's JSON (one line) came back as a run of about ten records,
    most of them not the one asked for; the same data indented came back as one record."""
    rows = [{"id": i, "name": f"user{i}", "city": ["Paris", "Lima", "Oslo"][i % 3],
             "note": "flagged for review" if i % 7 == 0 else "regular customer"}
            for i in range(300)]  # fmt: skip
    call = {"id": "c1", "type": "function", "function": {"name": "users", "arguments": "{}"}}
    with ConversationMemory.open(":memory:", session="api") as mem:
        mem.add([{"role": "user", "content": "list the users"},
                 {"role": "assistant", "content": "", "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "c1", "content": json.dumps(rows)}])  # fmt: skip
        ref = mem.archive.refs()[0].ref
        mem.wait_until_indexed()
        found = mem.recall(ref=ref, query="user137", max_tokens=300)
        assert '{"id": 137, "name": "user137", "city": "Oslo", "note": "regular customer"}' in found
        assert found.count('"id": ') == 1
        flagged = mem.recall(ref=ref, query="which users are flagged for review?")
        assert flagged.count('"id": ') == flagged.count("flagged for review") > 1


def test_a_chunk_cut_from_one_line_is_marked_where_it_is_cut() -> None:
    """A new-user trial: one line of JSON is chunked mid-record, and a quoted chunk ended
    ``{"id": 32`` with nothing to say the record goes on."""
    rows = [{"id": i, "service": f"svc-{i}", "region": ["eu-west-1", "us-east-1"][i % 2],
             "replicas": i % 9 + 1, "version": f"2.{i % 7}"} for i in range(300)]  # fmt: skip
    call = {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
    with ConversationMemory.open(":memory:", session="cut", budget=2000) as mem:
        mem.add([{"role": "user", "content": "list the services"},
                 {"role": "assistant", "content": "", "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "c1", "content": json.dumps(rows)}])  # fmt: skip
        mem.wait_until_indexed()
        bodies = []
        for query, max_tokens in [("service region replicas", 800), ("svc-51", 800),
                                  ("service region replicas", 8000)]:  # fmt: skip
            found = mem.recall(query=query, max_tokens=max_tokens)
            bodies += re.findall(r"<archived ref=[^>]*>\n(.*?)\n</archived>", found, re.S)
        assert len(bodies) > 3
        for body in bodies:
            assert body.startswith(("[", "{", "…")), body[:40]
            assert body.endswith(("}", "},", "]", "…")), body[-40:]
