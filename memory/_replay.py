"""Replay a recorded conversation through a memory, one model call at a time.

Transcripts come in two shapes: OpenAI-format chat messages (a ``{"messages": [...]}``
JSON object, a JSON list of messages, or JSONL of ``{id, source, messages}`` records) and
LoCoMo conversations (a JSON list of ``{sample_id, conversation}`` records).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memory._core import ConversationMemory
from memory._errors import InputError
from memory._report import Report
from memory.pricing import DEFAULT_PRICES, cached_tokens

SETTLE_SECONDS = 60.0
"""Longest a replay waits for the running summary before each model call."""

__all__ = [
    "DEFAULT_PRICE_PER_MTOK",
    "CallStats",
    "ReplayTotals",
    "load_transcript",
    "locomo_messages",
    "model_calls",
    "replay",
    "totals",
]

DEFAULT_PRICE_PER_MTOK = 0.15
"""Dollars per million input tokens: gpt-4o-mini's list price, the default model."""
DEFAULT_CACHE_RULE = DEFAULT_PRICES["gpt-4o-mini"]
"""OpenAI's caching rule, for replays whose model has no known price."""
_SESSION_KEY = re.compile(r"session_(\d+)")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class CallStats:
    """What one model call of a replay would have sent, with the prompt's full report."""

    call: int
    history_turns: int
    raw_tokens: int
    sent_tokens: int
    turns_omitted: int
    report: Report
    raw_cached_tokens: int = 0
    """Tokens of the raw history a provider would serve from its cache on this call."""

    @property
    def cached_tokens(self) -> int:
        """Tokens of the assembled prompt the provider serves from its cache."""
        return self.report.cached_tokens

    @property
    def tokens_saved(self) -> int:
        """Tokens not sent compared with the raw history."""
        return self.raw_tokens - self.sent_tokens

    def to_dict(self) -> dict[str, Any]:
        """Return the call number and its report as plain JSON-compatible data."""
        return {"call": self.call, **self.report.to_dict()}


@dataclass(frozen=True, slots=True)
class ReplayTotals:
    """The sums over every model call of a replay, and what the savings are worth."""

    calls: int
    raw_tokens: int
    sent_tokens: int
    largest_prompt: int
    archived_refs: int
    compression_saved: int
    price_per_mtok: float
    cached_tokens: int = 0
    raw_cached_tokens: int = 0
    cached_discount: float = 0.0
    """Share of the input price a cached token saves (the model's caching rule)."""
    billed_usd: float | None = None
    """The session's input cost as the ledger priced it: the model's caching rule, cache
    writes included (Anthropic: 1.25x); None without a known price."""
    raw_billed_usd: float | None = None
    """The same for sending the raw history at every call."""

    @property
    def tokens_saved(self) -> int:
        """Input tokens not sent over the whole replay."""
        return self.raw_tokens - self.sent_tokens

    @property
    def share_saved(self) -> float:
        """Share of the raw input tokens not sent (0 when there were none)."""
        return self.tokens_saved / self.raw_tokens if self.raw_tokens else 0.0

    @property
    def dollars_raw(self) -> float:
        """What sending the raw history at every call would cost."""
        return self.raw_tokens * self.price_per_mtok / 1_000_000

    @property
    def dollars_saved(self) -> float:
        """What the saved input tokens are worth at ``price_per_mtok``, caching ignored."""
        return self.tokens_saved * self.price_per_mtok / 1_000_000

    @property
    def effective_tokens(self) -> float:
        """Input tokens as billed with caching: uncached + (1 - discount) x cached."""
        return self.sent_tokens - self.cached_discount * self.cached_tokens

    @property
    def raw_effective_tokens(self) -> float:
        """The same for sending the raw history every call (append-only: it caches well)."""
        return self.raw_tokens - self.cached_discount * self.raw_cached_tokens

    @property
    def cost_ratio(self) -> float:
        """Our billed input over the raw history's, both with caching (< 1: cheaper):
        the ledger's dollars when it priced the session, else the tokens with the read
        discount."""
        if self.billed_usd is not None and self.raw_billed_usd:
            return self.billed_usd / self.raw_billed_usd
        return self.effective_tokens / self.raw_effective_tokens if self.raw_tokens else 1.0


def totals(
    rows: Sequence[CallStats],
    *,
    price_per_mtok: float = DEFAULT_PRICE_PER_MTOK,
    cached_discount: float = 0.0,
    billed: bool = False,
) -> ReplayTotals:
    """Sum the stats of a replay's model calls; price tokens per million, with caching.

    Args:
        rows: The replay's calls.
        price_per_mtok: Dollars per million uncached input tokens.
        cached_discount: Share of that price a cached token saves (0.5: gpt-4o-mini;
            see ``memory.pricing``).
        billed: Take the dollars from the last call's report (the session's ledger,
            which prices cache writes too), when it has them.
    """
    last = rows[-1].report if rows and billed else None
    refs = {ref for row in rows for ref in row.report.compressed_refs}
    return ReplayTotals(
        calls=len(rows),
        raw_tokens=sum(r.raw_tokens for r in rows),
        sent_tokens=sum(r.sent_tokens for r in rows),
        largest_prompt=max((r.sent_tokens for r in rows), default=0),
        archived_refs=len(refs),
        compression_saved=sum(r.report.compression_saved for r in rows),
        price_per_mtok=price_per_mtok,
        cached_tokens=sum(r.cached_tokens for r in rows),
        raw_cached_tokens=sum(r.raw_cached_tokens for r in rows),
        cached_discount=cached_discount,
        billed_usd=None if last is None else last.session_cost_usd,
        raw_billed_usd=None if last is None else last.session_raw_cost_usd,
    )


def _parse(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read transcript {str(file)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"transcript {str(file)!r} is not UTF-8 text: {exc.reason}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"{str(file)!r} is neither JSON nor JSONL: {exc}") from exc


def _record_id(record: Mapping[str, Any]) -> str | None:
    value = record.get("id", record.get("sample_id"))
    return None if value is None else str(value)


def _is_record(item: Any) -> bool:
    return isinstance(item, dict) and ("messages" in item or "conversation" in item)


def load_transcript(path: str | Path, *, record_id: str | None = None) -> list[dict[str, Any]]:
    """Read a transcript as OpenAI chat messages.

    Args:
        path: A JSON or JSONL file: ``{"messages": [...]}``, a list of messages, records
            ``{id, source, messages}`` (JSONL or a JSON list), or LoCoMo conversations
            ``{sample_id, conversation}`` (see :func:`locomo_messages`).
        record_id: Which record to take from a file of several (``id`` or ``sample_id``,
            e.g. ``"conv-26"``); the first one when None.

    Raises:
        InputError: the file is missing, unparsable, holds no list of messages, or no
            record has ``record_id``.
    """
    file = Path(path)
    data = _parse(file)
    if _is_record(data):
        data = [data]
    if isinstance(data, list) and data and all(_is_record(item) for item in data):
        records: list[dict[str, Any]] = data
        if record_id is not None:
            chosen = [r for r in records if _record_id(r) == record_id]
            if not chosen:
                known = ", ".join(str(_record_id(r)) for r in records[:20])
                raise InputError(f"{str(file)!r} has no record {record_id!r}; it has: {known}")
            records = chosen
        record = records[0]
        if "conversation" in record and "messages" not in record:
            return locomo_messages(record["conversation"])
        data = record["messages"]
    elif record_id is not None:
        raise InputError(f"{str(file)!r} holds one conversation without ids; drop the id")
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise InputError(f"{str(file)!r} holds no list of chat messages")
    return data


def locomo_messages(conversation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Turn one LoCoMo ``conversation`` into OpenAI chat messages.

    ``speaker_a`` speaks as the user, ``speaker_b`` as the assistant (each message carries
    the speaker's name); sessions come in order, the first turn of each prefixed with the
    session's date (``[1:56 pm on 8 May, 2023] ...``), and a shared image becomes its
    caption (``[shares an image: ...]``).

    Raises:
        InputError: the conversation has no sessions of turns.
    """
    numbered = sorted(
        (int(match.group(1)), key)
        for key in conversation
        if (match := _SESSION_KEY.fullmatch(key)) and isinstance(conversation[key], list)
    )
    if not numbered:
        raise InputError("the LoCoMo conversation has no session_N lists of turns")
    speaker_a = conversation.get("speaker_a")
    messages: list[dict[str, Any]] = []
    for _, key in numbered:
        date = conversation.get(f"{key}_date_time")
        for position, turn in enumerate(conversation[key]):
            if not isinstance(turn, dict):
                raise InputError(f"{key}[{position}] of the LoCoMo conversation is not a turn")
            text = str(turn.get("text", ""))
            if turn.get("blip_caption"):
                text += f" [shares an image: {turn['blip_caption']}]"
            if position == 0 and date:
                text = f"[{date}] {text}"
            speaker = str(turn.get("speaker", ""))
            message = {"role": "user" if speaker == speaker_a else "assistant", "content": text}
            name = _NAME_UNSAFE.sub("_", speaker).strip("_")
            if name:
                message["name"] = name
            messages.append(message)
    return messages


def _split_system(messages: Sequence[Mapping[str, Any]]) -> tuple[str | None, int]:
    parts = []
    position = 0
    while position < len(messages) and messages[position].get("role") == "system":
        parts.append(str(messages[position].get("content") or ""))
        position += 1
    return "\n\n".join(parts) or None, position


def model_calls(messages: Sequence[Mapping[str, Any]]) -> int:
    """Count the model calls :func:`replay` will make: one per assistant message."""
    _, position = _split_system(messages)
    return sum(1 for m in messages[position:] if m.get("role") == "assistant")


def replay(memory: ConversationMemory, messages: Sequence[dict[str, Any]]) -> Iterator[CallStats]:
    """Feed a transcript to ``memory``, yielding the prompt stats before each model reply.

    Leading system messages become the system prompt; every assistant message marks a
    model call, for which the memory assembles a prompt from what came before, once
    the running summary has caught up (so the numbers do not depend on timing).

    Raises:
        InputError: a message of the transcript cannot be accepted.
        BudgetError: a system prompt and user turn alone do not fit the budget.
    """
    system, position = _split_system(messages)
    pending: list[dict[str, Any]] = []
    call = previous_raw = 0
    price = memory.price or DEFAULT_CACHE_RULE
    for message in messages[position:]:
        if message.get("role") == "assistant":
            if pending:
                memory.add(pending)
                pending = []
            call += 1
            # As if the reply took long enough for the summary: numbers don't hang on timing.
            memory.wait_for_summary(timeout=SETTLE_SECONDS)
            prompt = memory.assemble(system=system)
            raw = prompt.report.raw_tokens
            yield CallStats(
                call=call,
                history_turns=prompt.report.turns_total,
                raw_tokens=raw,
                sent_tokens=prompt.tokens,
                turns_omitted=prompt.report.turns_omitted,
                report=prompt.report,
                raw_cached_tokens=cached_tokens(min(previous_raw, raw), raw, price),
            )
            previous_raw = raw
        pending.append(message)
    if pending:
        memory.add(pending)
