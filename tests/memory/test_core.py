"""ConversationMemory end to end: add, assemble, history, persistence, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from memory import (
    Budget,
    BudgetError,
    ClosedError,
    ConfigError,
    ConversationMemory,
    Engine,
    InputError,
    StoreError,
)

REPO = Path(__file__).resolve().parents[2]

TOOL_TURN = [
    {"role": "user", "content": "what is in /tmp?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "a.txt\nb.txt"},
    {"role": "assistant", "content": "Two files: a.txt and b.txt."},
]

FAKE = DeterministicFakeEmbedding(size=64)


def test_add_assemble_history(mem: ConversationMemory) -> None:
    assert mem.add(TOOL_TURN) == [1, 2, 3, 4]
    prompt = mem.assemble(system="You are terse.")
    assert prompt.to_openai()[0] == {"role": "system", "content": "You are terse."}
    assert [m["role"] for m in prompt.to_openai()] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert prompt.tokens == mem.counter.count_messages(list(prompt.messages))
    assert prompt.tokens <= mem.budget.prompt_tokens
    assert len(mem.history()) == 4
    assert prompt.report.raw_tokens == prompt.tokens


def test_a_second_open_sees_everything(db_path: Path) -> None:
    with ConversationMemory.open(db_path, session="u1", embedder=FAKE) as first:
        first.add(TOOL_TURN)
    with ConversationMemory.open(db_path, session="u1", embedder=FAKE) as second:
        assert [m.content for m in second.history()] == [
            "what is in /tmp?",
            "",
            "a.txt\nb.txt",
            "Two files: a.txt and b.txt.",
        ]
        second.add({"role": "user", "content": "thanks"})
        assert second.history()[-1] == HumanMessage("thanks")


def test_another_process_sees_everything_and_vice_versa(db_path: Path) -> None:
    with ConversationMemory.open(db_path, session="u1", embedder=FAKE) as mem:
        mem.add(TOOL_TURN)
        child = textwrap.dedent(
            f"""
            from langchain_core.embeddings import DeterministicFakeEmbedding
            from memory import ConversationMemory
            fake = DeterministicFakeEmbedding(size=64)
            with ConversationMemory.open({str(db_path)!r}, session="u1", embedder=fake) as mem:
                assert len(mem.history()) == 4, mem.history()
                mem.add({{"role": "user", "content": "from the child"}})
            """
        )
        subprocess.run([sys.executable, "-c", child], check=True, cwd=REPO, timeout=120)
        # the open view picks up what the other process added
        assert mem.history()[-1].content == "from the child"
        assert mem.assemble().messages[-1].content == "from the child"
        mem.add({"role": "assistant", "content": "welcome"})
        assert [r for r in mem.history()][-1].content == "welcome"


def test_sessions_are_isolated(db_path: Path) -> None:
    with ConversationMemory.open(db_path, session="alice", embedder=FAKE) as alice:
        alice.add({"role": "user", "content": "my secret is 42"})
    with ConversationMemory.open(db_path, session="bob", embedder=FAKE) as bob:
        assert bob.history() == []
        assert "42" not in str(bob.assemble(system="hi").messages)


def test_bad_batch_writes_nothing(mem: ConversationMemory) -> None:
    mem.add({"role": "user", "content": "hello"})
    with pytest.raises(InputError, match=r"message 2: .*never issued"):
        mem.add(
            [
                {"role": "user", "content": "ok"},
                {"role": "assistant", "content": "sure"},
                {"role": "tool", "tool_call_id": "nope", "content": "x"},
            ]
        )
    with pytest.raises(InputError, match=r"message 0: .*wizard"):
        mem.add([{"role": "wizard", "content": "x"}])
    assert mem.history() == [HumanMessage("hello")]


def test_tool_results_may_arrive_in_a_later_add(mem: ConversationMemory) -> None:
    mem.add(TOOL_TURN[:2])
    assert mem.assemble().report.pending_tool_calls == ("c1",)
    mem.add(TOOL_TURN[2:])
    prompt = mem.assemble()
    assert prompt.report.pending_tool_calls == ()
    assert any(isinstance(m, ToolMessage) for m in prompt.messages)


def test_anthropic_and_langchain_inputs(mem: ConversationMemory) -> None:
    mem.add(HumanMessage("hi"))
    mem.add(
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "ls", "input": {}}],
        }
    )
    mem.add(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}
    )
    history = mem.history()
    assert isinstance(history[1], AIMessage) and history[1].tool_calls[0]["id"] == "t1"
    assert isinstance(history[2], ToolMessage)


@pytest.mark.parametrize("session", ["", "   ", None, "x" * 600, "a\x00b", "lone \ud800"])
def test_bad_session_ids(session: object) -> None:
    with pytest.raises(InputError, match="session"):
        ConversationMemory.open(":memory:", session=session, embedder=FAKE)  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", [-1, 0])
def test_a_budget_that_is_no_positive_number_is_named(budget: int) -> None:
    with pytest.raises(ConfigError, match=f"budget must be a positive number .*not {budget}"):
        ConversationMemory.open(":memory:", session="s", budget=budget, embedder=FAKE)


def test_odd_but_valid_session_ids_are_scoped(db_path: Path) -> None:
    names = ["'; DROP TABLE turns; --", "../../etc/passwd", "ユーザー", "a/b\\c"]
    for name in names:
        with ConversationMemory.open(db_path, session=name, embedder=FAKE) as mem:
            mem.add({"role": "user", "content": name})
    for name in names:
        with ConversationMemory.open(db_path, session=name, embedder=FAKE) as mem:
            assert [m.content for m in mem.history()] == [name]


def test_closed_memory_raises(db_path: Path) -> None:
    mem = ConversationMemory.open(db_path, session="s", embedder=FAKE)
    mem.close()
    mem.close()  # idempotent
    for use in (lambda: mem.add(HumanMessage("x")), mem.assemble, mem.history):
        with pytest.raises(ClosedError, match="closed"):
            use()


def test_budget_error_from_memory(mem: ConversationMemory) -> None:
    mem.add({"role": "user", "content": "long " * 5000})
    with pytest.raises(BudgetError, match="over by"):
        mem.assemble(system="sys")
    assert mem.assemble(budget=Budget(context_window=20000)).tokens > 5000


def test_bad_summarizer_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="summarizer"):
        ConversationMemory.open(":memory:", session="s", summarizer=object(), embedder=FAKE)  # type: ignore[arg-type]


def test_not_a_database_is_a_store_error_and_the_file_is_untouched(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_bytes(b"this is not sqlite at all" * 100)
    before = bogus.read_bytes()
    with pytest.raises(StoreError, match="SQLite"):
        ConversationMemory.open(bogus, session="s", embedder=FAKE)
    assert bogus.read_bytes() == before


def test_counts_are_redone_when_the_tokenizer_changes(db_path: Path) -> None:
    with ConversationMemory.open(db_path, session="s", model="gpt-4o", embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "こんにちは世界、今日はいい天気ですね。" * 10})
        o200k = mem.history_tokens
    with ConversationMemory.open(db_path, session="s", model="gpt-4", embedder=FAKE) as mem:
        assert mem.history_tokens != o200k
        assert mem.history_tokens == mem.counter.count_message(mem.history()[0])


@settings(max_examples=30)
@given(
    turns=st.lists(
        st.tuples(st.sampled_from(["user", "assistant", "tool"]), st.text(max_size=300)),
        max_size=30,
    ),
    limit=st.integers(60, 1500),
)
def test_memory_properties_over_random_openai_histories(
    turns: list[tuple[str, str]], limit: int
) -> None:
    with ConversationMemory.open(":memory:", session="p", budget=limit, embedder=FAKE) as mem:
        call = 0
        for role, text in turns:
            if role == "tool":
                call += 1
                mem.add(
                    [
                        {
                            "role": "assistant",
                            "content": text[:20],
                            "tool_calls": [
                                {
                                    "id": f"c{call}",
                                    "type": "function",
                                    "function": {"name": "f", "arguments": "{}"},
                                }
                            ],
                        },
                        {"role": "tool", "tool_call_id": f"c{call}", "content": text},
                    ]
                )
            else:
                mem.add({"role": role, "content": text})
        try:
            prompt = mem.assemble(system="be kind")
        except BudgetError:
            return
        assert prompt.tokens <= limit
        assert prompt.tokens == mem.counter.count_messages(list(prompt.messages))
        sent = prompt.to_openai()
        for position, message in enumerate(sent):
            if message["role"] == "tool":
                previous = sent[position - 1]
                assert previous["role"] in {"assistant", "tool"}
        users = [m for m in mem.history() if isinstance(m, HumanMessage)]
        if users:
            sent_texts = [
                t
                for m in prompt.messages
                for t in (
                    [m.content]
                    if isinstance(m.content, str)
                    else [b.get("text") for b in m.content if isinstance(b, dict)]
                )
            ]
            assert users[-1].content in sent_texts or not str(users[-1].content).strip()


def test_tool_call_arguments_go_back_as_the_model_wrote_them() -> None:
    raw = '{"file_name":"x.py","lines":[1,2]}'  # compact, as models write them
    call = {"id": "c1", "type": "function", "function": {"name": "read", "arguments": raw}}
    with ConversationMemory.open(":memory:", session="a", embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "read it"})
        mem.add({"role": "assistant", "content": None, "tool_calls": [call]})
        mem.add({"role": "tool", "tool_call_id": "c1", "content": "print(1)"})
        sent = mem.assemble().to_openai()[1]
        assert sent["tool_calls"][0]["function"]["arguments"] == raw  # byte for byte
        assert mem.history()[1].tool_calls[0]["args"] == {"file_name": "x.py", "lines": [1, 2]}


def test_a_call_id_used_again_later_keeps_each_calls_own_arguments() -> None:
    def call(arguments: str) -> dict[str, object]:
        function = {"name": "bash", "arguments": arguments}
        return {"id": "c1", "type": "function", "function": function}  # same id twice

    with ConversationMemory.open(":memory:", session="a", embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "go"})
        for command in ('{"command":"ls"}', '{"command":"pwd"}'):
            mem.add({"role": "assistant", "content": None, "tool_calls": [call(command)]})
            mem.add({"role": "tool", "tool_call_id": "c1", "content": "ok"})
        sent = [m for m in mem.assemble().to_openai() if m.get("tool_calls")]
        arguments = [m["tool_calls"][0]["function"]["arguments"] for m in sent]  # type: ignore[index]
        assert arguments == ['{"command":"ls"}', '{"command":"pwd"}']


def test_arguments_of_the_wrong_type_raise_typed_errors_saying_what_to_pass() -> None:
    from memory.adapters.functional import summarize_messages

    with pytest.raises(ConfigError, match=r"model must be a model name \(str\), not int"):
        ConversationMemory.open(":memory:", session="s", model=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="did you mean 'compress_threshold'"):
        ConversationMemory.open(":memory:", session="s", compress_treshold=100)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"safety_margin\) must be >= 0"):
        ConversationMemory.open(":memory:", session="s", safety_margin=-1)
    for option in ("safety_margin", "recall_share"):  # checked when opened, not at first use
        with pytest.raises(ConfigError, match=f"{option}.* must be a number, not 'x'"):
            ConversationMemory.open(":memory:", session="s", **{option: "x"})  # type: ignore[arg-type]
    with ConversationMemory.open(":memory:", session="s", embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "hi"})
        with pytest.raises(ConfigError, match="system must be a str or None, not int"):
            mem.assemble(system=5)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="tool_calls must be a list of calls"):
            mem.add({"role": "assistant", "content": "", "tool_calls": {"id": "a"}})
        assert len(mem.history()) == 1  # nothing of the refused message was stored
    with pytest.raises(ConfigError, match="prices must map model names"):
        ConversationMemory.open(":memory:", session="s", prices={"x": 1.0})  # type: ignore[dict-item]
    from memory.agent import AgentLoop

    with pytest.raises(ConfigError, match="memory must be a ConversationMemory"):
        AgentLoop("mem")  # type: ignore[arg-type]
    with (
        ConversationMemory.open(":memory:", session="s", embedder=FAKE) as mem,
        pytest.raises(ConfigError, match="tools must map each tool's name"),
    ):
        AgentLoop(mem, tools=[print])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="location must be a path, a URL or a Store"):
        Engine(5)  # type: ignore[arg-type]
    with ConversationMemory.open(":memory:", session="s", embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "hi"})
        with pytest.raises(InputError, match=r"retract takes seqs \(int\) or message ids"):
            mem.retract(1.5)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="timeout must be seconds"):
            mem.wait_for_summary(timeout="5")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="timeout must be seconds"):
            mem.wait_until_indexed(timeout=-1)
    with pytest.raises(InputError, match="running_summary must be the RunningSummary"):
        summarize_messages([HumanMessage("hi")], budget=1000, running_summary="prev")  # type: ignore[arg-type]
