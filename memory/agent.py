"""``AgentLoop``: a budgeted memory for agent loops written against a provider's SDK.

No SDK is imported: requests are plain dicts in OpenAI's or Anthropic's shape, and replies
are read from dicts or from SDK objects (anything with ``model_dump``)::

    loop = AgentLoop(memory, system="You are a coding agent.", tools={"ls": ls})
    loop.add_user("Why does the test fail?")
    while True:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=loop.openai_messages(),
            tools=[*my_tool_schemas, *loop.openai_tools()],
        ).choices[0].message
        calls = loop.add_openai_reply(reply)
        if not calls:
            break
        loop.run_tool_calls(calls)   # recall runs locally; results are stored
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage

from memory._anthropic import to_anthropic
from memory._assemble import Prompt
from memory._core import ConversationMemory
from memory._errors import MAX_ERROR_CHARS, ConfigError, InputError
from memory._messages import KNOWN_BLOCK_TYPES, normalize
from memory._recall.passages import RECALL_TOOL
from memory._timestamps import Timestamp
from memory.adapters._common import recall_tokens
from memory.tool import DEFAULT_RECALL_TOKENS, anthropic_schema, handle_tool_call, openai_schema

__all__ = ["AgentLoop", "ToolCall", "to_anthropic"]

logger = logging.getLogger("memory")

_OPENAI_FIELDS = ("role", "content", "tool_calls", "name", "timestamp")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model asked for, with its arguments parsed."""

    id: str
    name: str
    arguments: dict[str, Any]
    error: str | None = None
    """Why the call cannot run (its arguments were not JSON): ``run_tool_calls``
    answers it with this error instead of calling the tool, so the model can retry."""


def _plain(value: Any) -> Any:
    """Turn an SDK object (pydantic, ``model_dump``) into plain data; pass dicts through."""
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    raise InputError(f"expected a dict or an SDK object with model_dump, not {type(value)}")


def _is_blocks(value: object) -> bool:
    """Whether a tool's result is a list of content blocks (dicts whose ``type`` is a
    content block's: text, image...); records that merely have a ``type`` key (GitHub
    events, Stripe objects) are data, sent as JSON."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(b, dict) and b.get("type") in KNOWN_BLOCK_TYPES for b in value)
    )


class AgentLoop:
    """Keep a hand-written OpenAI or Anthropic agent loop under its token budget.

    Add each user turn, send the assembled prompt, hand back the model's reply; the tool
    calls it asked for come back as ``ToolCall`` values. ``run_tool_calls`` runs them
    (``recall`` locally, the others from ``tools``) and stores the results.

    Args:
        memory: The session's memory.
        system: The system prompt, sent first in every prompt.
        tools: Your tools by name; each is called with the call's arguments as keywords
            and returns text (anything else is sent as JSON).
    """

    def __init__(
        self,
        memory: ConversationMemory,
        *,
        system: str | None = None,
        tools: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        """Wrap an open memory.

        Raises:
            ConfigError: ``memory`` is not a ``ConversationMemory``, or ``tools`` is not
                a mapping of tool names to functions, or names one ``recall`` (the
                loop's own).
        """
        if not isinstance(memory, ConversationMemory):
            raise ConfigError(f"memory must be a ConversationMemory, not {type(memory).__name__}")
        if tools is not None and not (
            isinstance(tools, Mapping) and all(callable(f) for f in tools.values())
        ):
            raise ConfigError("tools must map each tool's name to its function: {'ls': ls}")
        if tools is not None and RECALL_TOOL in tools:
            raise ConfigError(
                "the tool name 'recall' is the loop's own (it answers the model's recall "
                "calls): give your tool another name"
            )
        self.memory = memory
        # The loop answers the model's recall calls, so its prompts may point to the tool.
        memory.policy = dataclasses.replace(memory.policy, recall_tool=True)
        self.system = system
        self.tools = dict(tools or {})
        self.last_prompt: Prompt | None = None

    def add_user(
        self, content: str | Sequence[Mapping[str, Any]], *, timestamp: Timestamp | None = None
    ) -> None:
        """Store a user turn (text, or OpenAI / Anthropic content blocks); ``timestamp``:
        when it was sent, as ``ConversationMemory.add`` takes it (None: now).

        Raises:
            InputError: the content or the timestamp cannot be accepted.
        """
        self.memory.add({"role": "user", "content": content}, timestamp=timestamp)

    def prompt(self) -> Prompt:
        """Assemble the prompt for the next model call (kept as ``last_prompt``).

        Raises:
            BudgetError: the system prompt and the current user turn alone do not fit.
        """
        self.last_prompt = self.memory.assemble(system=self.system)
        return self.last_prompt

    def openai_messages(self) -> list[dict[str, Any]]:
        """Return the next prompt as OpenAI chat messages (``messages=``)."""
        return [dict(m) for m in self.prompt().to_openai()]

    def anthropic_request(self) -> dict[str, Any]:
        """Return the next prompt as Anthropic arguments: ``system`` and ``messages``.

        The last block of the prompt's stable part (everything but the recall block and
        the turn it leads) carries a ``cache_control`` breakpoint, so Anthropic serves
        that prefix from its prompt cache on the next call (reads at 10% of the input
        price; see ``memory.pricing``).
        """
        return self.prompt().to_anthropic()  # lone surrogates as "?", as counted

    @staticmethod
    def openai_tools() -> list[dict[str, Any]]:
        """Return the ``recall`` tool in OpenAI's ``tools`` format, to add to yours."""
        return [openai_schema()]

    @staticmethod
    def anthropic_tools() -> list[dict[str, Any]]:
        """Return the ``recall`` tool in Anthropic's ``tools`` format, to add to yours."""
        return [anthropic_schema()]

    def _store_reply(
        self,
        reply: Mapping[str, Any],
        errors: Mapping[str, str] | None = None,
        timestamp: Timestamp | None = None,
    ) -> list[ToolCall]:
        messages = normalize(reply)
        self.memory.add(messages, timestamp=timestamp)
        errors = errors or {}
        return [
            ToolCall(str(c["id"]), c["name"], dict(c["args"]), errors.get(str(c["id"])))
            for m in messages
            if isinstance(m, AIMessage)
            for c in m.tool_calls
        ]

    def add_openai_reply(
        self, message: Any, *, timestamp: Timestamp | None = None
    ) -> list[ToolCall]:
        """Store the model's reply, ``choices[0].message`` (a dict or the SDK object);
        its time is its ``"timestamp"`` key, else ``timestamp``, else now.

        A tool call whose arguments are not JSON (cheap models write such calls) does
        not stop the run: it is stored with empty arguments and returned with
        ``ToolCall.error`` set, and ``run_tool_calls`` answers it with that error (the
        arguments the model wrote, and a request to call again with valid JSON) instead
        of calling the tool, so the model sees why and retries.

        Returns:
            The tool calls it asks for (empty when the model is done).

        Raises:
            InputError: the reply cannot be read (a call without an id...), or it is
                not the assistant's (another role: add such messages with ``add``).
        """
        data = _plain(message)
        reply = {k: data[k] for k in _OPENAI_FIELDS if data.get(k) is not None}
        reply.setdefault("role", "assistant")
        if reply["role"] != "assistant":
            raise InputError(
                f"a reply has the assistant's role, not {reply['role']!r}: pass "
                "choices[0].message; add other messages with add_user or mem.add"
            )
        reply.setdefault("content", "")
        return self._store_reply(reply, _mark_malformed(reply), timestamp)

    def add_anthropic_reply(
        self, content: Any, *, timestamp: Timestamp | None = None
    ) -> list[ToolCall]:
        """Store the model's reply: the response's ``content`` blocks, or the response
        (``timestamp``: when it was sent; None: now).

        Returns:
            The tool calls (``tool_use`` blocks) it asks for.

        Raises:
            InputError: a block cannot be read.
        """
        blocks = getattr(content, "content", content)
        plain = _plain(list(blocks) if isinstance(blocks, list | tuple) else blocks)
        if not isinstance(plain, list):
            raise InputError("expected the reply's content blocks")
        return self._store_reply({"role": "assistant", "content": plain}, timestamp=timestamp)

    def run_tool_calls(self, calls: Sequence[ToolCall]) -> list[str | list[dict[str, Any]]]:
        """Run tool calls and store their results (one transaction); return the results.

        ``recall`` runs against this session's archive; other names are looked up in
        ``tools``. A tool may return text, a list of content blocks (text and images, as
        MCP tools do: kept as blocks, images included), or anything else (sent as JSON).
        An unknown tool gets a result saying so, which the model can act on. A tool that
        raises (a wrong argument name, a failure of its own) gets the error as its result,
        stored with ``status="error"`` and logged with its traceback (logger ``memory``),
        as LangChain's ``ToolNode`` answers by default: the model sees what went wrong
        and the loop goes on. ``KeyboardInterrupt`` and other ``BaseException`` subclasses
        propagate, and nothing is stored.
        """
        recalls = sum(call.name == RECALL_TOOL for call in calls)
        outcomes = [self._outcome(call, recalls) for call in calls]
        self.memory.add(
            [
                ToolMessage(
                    result if isinstance(result, str) else [*result],
                    tool_call_id=call.id,
                    name=call.name,
                    status="error" if failed else "success",
                )
                for call, (result, failed) in zip(calls, outcomes, strict=True)
            ]
        )
        return [result for result, _ in outcomes]

    def _outcome(self, call: ToolCall, recalls: int) -> tuple[str | list[dict[str, Any]], bool]:
        """The call's result, and whether it is an error (the tool raised); ``recalls``:
        the recall calls of its round, which share the room for answers."""
        try:
            return self._run(call, recalls), False
        except Exception as exc:
            logger.warning("tool %r raised on call %s", call.name, call.id, exc_info=True)
            arguments = json.dumps(call.arguments, default=str)[:MAX_ERROR_CHARS]
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            return (
                f"tool {call.name!r} failed with arguments {arguments}: {error}. "
                "Fix the arguments and call it again, or try another way.",
                True,
            )

    def _run(self, call: ToolCall, recalls: int) -> str | list[dict[str, Any]]:
        if call.error is not None:
            return call.error
        if call.name == RECALL_TOOL:
            # Keep the result under compress_threshold, or it would be archived again.
            arguments = dict(call.arguments)
            requested = arguments.get("max_tokens", DEFAULT_RECALL_TOKENS)
            if isinstance(requested, str | float) and not isinstance(requested, bool):
                # Models send numbers as text or floats too ("4000", 4000.0), which the
                # recall's arguments accept: capped the same way.
                with contextlib.suppress(ValueError, OverflowError):
                    requested = int(float(requested))
            if isinstance(requested, int) and not isinstance(requested, bool):
                arguments["max_tokens"] = recall_tokens(self.memory, requested, recalls)
            return handle_tool_call(self.memory._state.recall, arguments)
        function = self.tools.get(call.name)
        if function is None:
            known = ", ".join(sorted([*self.tools, RECALL_TOOL]))
            return f"unknown tool {call.name!r}; available tools: {known}"
        result = function(**call.arguments)
        if isinstance(result, str):
            return result
        if _is_blocks(result):
            return list(result)  # content blocks (text, images) go to the model as they are
        return json.dumps(result, default=str)

    def add_tool_result(
        self, call_id: str, content: str | list[dict[str, Any]], *, name: str | None = None
    ) -> None:
        """Store the result of a tool call you ran yourself.

        Raises:
            InputError: no open call has this id.
        """
        blocks: str | list[str | dict[Any, Any]] = (
            content if isinstance(content, str) else [*content]
        )
        self.memory.add(ToolMessage(blocks, tool_call_id=call_id, name=name))


def _mark_malformed(reply: dict[str, Any]) -> dict[str, str]:
    """Give the calls whose arguments are not JSON empty arguments (in ``reply``, copies
    of those calls: the caller's objects stay as they were); return ``{call id: error}``."""
    errors: dict[str, str] = {}
    calls = reply.get("tool_calls")
    if not isinstance(calls, list):
        return errors
    fixed: list[Any] = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        if isinstance(function, Mapping) and isinstance(arguments, str):
            error = _arguments_error(arguments)
            if error is not None:
                errors[str(call.get("id"))] = error
            if error is not None or not arguments.strip():  # "" (no arguments) is "{}"
                call = {**call, "function": {**function, "arguments": "{}"}}
        fixed.append(call)
    reply["tool_calls"] = fixed
    return errors


def _arguments_error(arguments: str) -> str | None:
    """What is wrong with a call's arguments string (None: a JSON object, or empty)."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as exc:
        return (
            f"error: the arguments {arguments[:200]!r} are not valid JSON ({exc.msg} at "
            f"character {exc.pos}); nothing was run: call the tool again with valid JSON"
        )
    if not isinstance(parsed, dict):
        return (
            f"error: the arguments {arguments[:200]!r} are JSON but not an object; nothing "
            "was run: call the tool again with a JSON object of its parameters"
        )
    return None
