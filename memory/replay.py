"""Replay a recorded conversation through a memory, one model call at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memory.core import ConversationMemory
from memory.errors import InputError

__all__ = ["CallStats", "load_transcript", "replay"]


@dataclass(frozen=True, slots=True)
class CallStats:
    """What one model call of a replay would have sent."""

    call: int
    history_turns: int
    raw_tokens: int
    sent_tokens: int
    turns_omitted: int

    @property
    def tokens_saved(self) -> int:
        """Tokens not sent compared with the raw history."""
        return self.raw_tokens - self.sent_tokens


def load_transcript(path: str | Path) -> list[dict[str, Any]]:
    """Read an OpenAI-format transcript: ``{"messages": [...]}`` JSON or JSONL of messages.

    Raises:
        InputError: the file is missing or holds no list of messages.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read transcript {str(file)!r}: {exc.strerror}") from exc
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"{str(file)!r} is neither JSON nor JSONL: {exc}") from exc
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        data = data.get("messages")
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise InputError(f"{str(file)!r} holds no list of chat messages")
    return data


def replay(memory: ConversationMemory, messages: Sequence[dict[str, Any]]) -> Iterator[CallStats]:
    """Feed a transcript to ``memory``, yielding the prompt stats before each model reply.

    Leading system messages become the system prompt; every assistant message marks a
    model call, for which the memory assembles a prompt from what came before.
    """
    system_parts = []
    position = 0
    while position < len(messages) and messages[position].get("role") == "system":
        system_parts.append(str(messages[position].get("content") or ""))
        position += 1
    system = "\n\n".join(system_parts) or None
    pending: list[dict[str, Any]] = []
    call = 0
    for message in messages[position:]:
        if message.get("role") == "assistant":
            if pending:
                memory.add(pending)
                pending = []
            call += 1
            prompt = memory.assemble(system=system)
            yield CallStats(
                call=call,
                history_turns=prompt.report.turns_total,
                raw_tokens=prompt.report.raw_tokens,
                sent_tokens=prompt.tokens,
                turns_omitted=prompt.report.turns_omitted,
            )
        pending.append(message)
    if pending:
        memory.add(pending)
