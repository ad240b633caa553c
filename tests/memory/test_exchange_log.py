"""ExchangeLog: the compact log groups turns exactly as ExchangeBuilder does."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from memory._assemble import omitted_ranges
from memory._exchange_log import ExchangeLog
from memory._folds import FoldSchedule, fold_points
from memory._messages import ExchangeBuilder, Turn

CALL_IDS = st.sampled_from(["a", "b", "c", "d"])
STEP = st.one_of(
    st.tuples(st.just("human"), st.integers(1, 50)),
    st.tuples(st.just("ai"), st.lists(CALL_IDS, max_size=3)),
    st.tuples(st.just("tool"), CALL_IDS),
)


def message(kind: str, detail: object) -> BaseMessage:
    if kind == "human":
        return HumanMessage("x" * int(str(detail)))
    if kind == "ai":
        calls = [{"name": "f", "args": {}, "id": c} for c in detail]  # type: ignore[attr-defined]
        return AIMessage("", tool_calls=calls)
    return ToolMessage("result", tool_call_id=str(detail))


def shape(exchanges: object) -> list[tuple[list[int], int, frozenset[str]]]:
    return [([t.seq for t in e.turns], e.tokens, e.open_calls) for e in exchanges]  # type: ignore[attr-defined]


@given(st.lists(STEP, max_size=40), st.integers(1, 5), st.sets(st.integers(0, 30)))
def test_the_log_groups_and_folds_like_the_builder(
    steps: list[tuple[str, object]], batch: int, kept: set[int]
) -> None:
    turns = [
        Turn(seq, message(k, d), seq % 7 + 1, seq % 7 + 1)
        for seq, (k, d) in enumerate(steps, start=1)
    ]
    builder = ExchangeBuilder()
    builder.extend(turns)
    by_seq = {t.seq: t.message for t in turns}
    log = ExchangeLog(by_seq.__getitem__)
    growing = FoldSchedule(7)  # kept up to date as the log grows, as a view's is
    for start in range(0, len(turns), batch):  # appended in batches, as adds come
        part = turns[start : start + batch]
        log.extend(
            [t.seq for t in part],
            [t.kind for t in part],
            [t.tokens for t in part],
            [t.tokens for t in part],
            [None] * len(part),
            [t.calls for t in part],
            [t.result_for for t in part],
            [float(t.seq) for t in part],
        )
        growing.update(log.exchanges())
        snapshot = log.exchanges()  # where summaries end, asked as the log grows (remembered)
        firsts = [e.first_seq for e in snapshot]
        for seq in range(len(turns) + 2):
            assert snapshot.begun_by(seq) == bisect.bisect_right(firsts, seq)
    exchanges = log.exchanges()
    assert growing.update(exchanges) == fold_points(builder.exchanges, 7)
    assert shape(exchanges) == shape(builder.exchanges)
    assert list(exchanges) == builder.exchanges  # the messages too, fetched by seq
    assert log.open_calls == builder.open_calls
    assert list(exchanges.tokens()) == [e.tokens for e in builder.exchanges]
    for block in (1, 10, 60):
        assert fold_points(exchanges, block) == fold_points(builder.exchanges, block)
    count = len(builder.exchanges)
    for start, stop in ((0, count), (1, count - 1), (count // 2, count), (3, 2)):
        counted = sum(len(e.turns) for e in builder.exchanges[start:stop])
        assert exchanges.turns_in(start, stop) == counted  # without building them
        if start < stop:
            seqs = [t.seq for e in builder.exchanges[start:stop] for t in e.turns]
            assert exchanges.seq_span(start, stop) == (min(seqs), max(seqs))
    kept_here = sorted(k for k in kept if k < count)  # the log spans runs, the list walks them
    assert omitted_ranges(exchanges, kept_here) == omitted_ranges(builder.exchanges, kept_here)
    if builder.exchanges:
        assert shape(exchanges[-2:]) == shape(builder.exchanges[-2:])
        assert exchanges[-1].first_seq == builder.exchanges[-1].first_seq


def test_a_snapshot_keeps_its_length_while_the_log_grows() -> None:
    log = ExchangeLog(lambda seq: HumanMessage(str(seq)))
    log.extend([1], ["human"], [3], [3], [None], [()], [None], [1.0])
    snapshot = log.exchanges()
    log.extend(
        [2, 3], ["ai", "tool"], [4, 5], [4, 5], [None, "r"], [("c",), ()], [None, "c"], [2.0, 3.0]
    )
    assert len(snapshot) == 1 and len(log.exchanges()) == 2
    assert [t.seq for t in log.exchanges()[1].turns] == [2, 3]
    assert log.turn(2).ref == "r" and log.turn(2).message.content == "3"
