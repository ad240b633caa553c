"""``ContextAtticMiddleware``: budgeted prompts for langchain 1.x ``create_agent``.

Imported through :mod:`memory.adapters.langchain`, which turns a missing ``langchain``
into ``MissingDependencyError``. The graph's state keeps every message; only what is sent
to the model changes, so nothing is lost and other middleware sees the full history.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Unpack, cast

from langchain.agents.middleware.summarization import ContextSize, TriggerClause
from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
)
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, BaseMessage, SystemMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import InjectedState
from pydantic import Field

from memory._anthropic import marks_in, with_breakpoint
from memory._budget import Budget
from memory._closing import Closing
from memory._core import DEFAULT_BUDGET, DEFAULT_COMPRESS_THRESHOLD, ConversationMemory
from memory._engine import Engine
from memory._errors import BudgetError, ConfigError
from memory._options import ExtraOptions, OpenOptions, resolve_policy
from memory._report import Report
from memory._tokens import TokenCounter
from memory.adapters._common import (
    CounterLike,
    MemoryOpener,
    MessagesCounterFn,
    as_counter,
    recall_tokens,
    split_system,
)
from memory.adapters._sessions import (
    DEFAULT_IDLE_SECONDS,
    MAX_HELD_SESSIONS,
    HeldSession,
    Sessions,
)
from memory.pricing import model_name_of
from memory.tool import DEFAULT_RECALL_TOKENS, RECALL_DESCRIPTION, RecallInput

__all__ = ["DEFAULT_IDLE_SECONDS", "MAX_HELD_SESSIONS", "ContextAtticMiddleware"]

Trigger = ContextSize | TriggerClause | list[ContextSize | TriggerClause]


def _clauses(trigger: Trigger | None) -> list[dict[str, float]]:
    items = trigger if isinstance(trigger, list) else [trigger] if trigger else []
    clauses: list[dict[str, float]] = []
    for item in items:
        pairs = [item] if isinstance(item, tuple) else list(dict(item).items())
        clause: dict[str, float] = {}
        for kind, value in pairs:
            if kind not in ("tokens", "messages", "fraction") or not isinstance(value, int | float):
                raise ConfigError(f"bad trigger {item!r}: use tokens, messages or fraction > 0")
            if value <= 0:
                raise ConfigError(f"bad trigger {item!r}: use tokens, messages or fraction > 0")
            clause[kind] = float(value)
        clauses.append(clause)
    return clauses


def _max_input_tokens(model: BaseChatModel | None) -> int | None:
    profile = getattr(model, "profile", None) or {}
    value = profile.get("max_input_tokens")
    return int(value) if isinstance(value, int) else None


class _RecallArgs(RecallInput):
    """The recall tool's arguments, and the graph state's messages (injected by LangGraph,
    never shown to the model): a run without a thread id is found by its messages."""

    messages: Annotated[list[Any], InjectedState("messages")] = Field(default_factory=list)


ANTHROPIC_LLM_TYPES = frozenset({"anthropic-chat", "anthropic"})
"""``_llm_type`` of langchain-anthropic's ``ChatAnthropic`` (and its older name)."""


def _is_anthropic(model: object) -> bool:
    return getattr(model, "_llm_type", None) in ANTHROPIC_LLM_TYPES


class ContextAtticMiddleware(AgentMiddleware[AgentState[Any], Any, Any], Closing):
    """Send each model call a budgeted prompt instead of the whole message list.

    A drop-in for ``SummarizationMiddleware`` in ``create_agent(middleware=[...])``. Before
    each model call, the messages of the graph's state not yet stored are added to the
    session's memory (tool outputs above ``compress_threshold`` tokens are archived and
    sent as digests), and the model gets the assembled prompt: the system prompt, the
    running summary, the evicted turns relevant to the current one, then the recent turns
    that fit ``budget``, exchanges whole. The model's reply is stored as it
    comes. The ``recall`` tool is registered, so the model can read archived outputs
    back. The state itself is never rewritten: it keeps the full history.

    Args:
        model: The summarizer (a chat model, or a name for ``init_chat_model``) that
            writes the running summary; None uses the offline extractive summarizer.
        trigger: When to assemble, as in ``SummarizationMiddleware``: ``("tokens", n)``,
            ``("messages", n)``, ``("fraction", f)`` of the model's ``max_input_tokens``,
            a dict of them (all must hold) or a list (any may hold). None: every call.
            Below the trigger the model gets the full message list.
        keep: How much the prompt may hold when ``budget`` is not given: ``("tokens",
            n)``, ``("fraction", f)`` of the model's input window, or ``("messages", n)``
            (the tokens of the last ``n`` messages).
        token_counter: A ``TokenCounter``, a chat model, a ``str -> int`` callable or a
            LangChain ``messages -> int`` counter such as ``count_tokens_approximately``;
            None counts exactly with tiktoken.
        budget: A ``Budget`` or prompt tokens; wins over ``keep``. Default
            ``DEFAULT_BUDGET``.
        path: The SQLite file or PostgreSQL URL of the memories (default ``":memory:"``:
            a private store of this middleware, gone with it).
        engine: An ``Engine`` the application owns, used instead of ``path``.
        session: The session id; None uses the run's ``configurable.thread_id``. A run
            without one shares nothing: it gets a session of its own, ``run:`` and the
            id of its first message, released when idle.
        idle_seconds: A session's handle is released after this long without a call
            (a run's own session is also forgotten then).
        model_name: The name of the model the prompts are for: picks the tokenizer and
            the price (``money_saved_usd``...); None takes the agent's model's name
            (``model_name_of``) at its first call.
        embedder: LangChain ``Embeddings`` for archive search; None uses the bundled
            MiniLM.
        compress_threshold: Tool outputs above this many tokens are archived.
        options: Any other option of ``Engine.open`` (``policy``, ``recall_share``,
            ``max_output_bytes``, ``prices``, ``safety_margin``).

    Raises:
        ConfigError: a bad trigger, keep or budget.
    """

    def __init__(
        self,
        model: str | BaseChatModel | None = None,
        *,
        trigger: Trigger | None = None,
        keep: ContextSize | None = None,
        token_counter: CounterLike | MessagesCounterFn | None = None,
        budget: Budget | int | None = None,
        path: str | Path = ":memory:",
        engine: Engine | None = None,
        session: str | None = None,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        model_name: str | None = None,
        embedder: Embeddings | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        **options: Unpack[ExtraOptions],
    ) -> None:
        super().__init__()
        if isinstance(model, str):
            from langchain.chat_models import init_chat_model

            model = init_chat_model(model)
        if keep is not None and (
            not isinstance(keep, tuple)
            or keep[0] not in ("tokens", "messages", "fraction")
            or keep[1] <= 0
        ):
            raise ConfigError(f"bad keep {keep!r}: use ('tokens'|'messages'|'fraction', n > 0)")
        self.model = model
        self.trigger = trigger
        self.keep = keep
        self._clauses = _clauses(trigger)
        self._explicit_budget = budget is not None
        # The middleware registers the recall tool, so notes about left-out messages
        # may point the model to it.
        policy = dataclasses.replace(
            resolve_policy(options.pop("policy", None), None), recall_tool=True
        )
        shared = OpenOptions(
            **options,
            policy=policy,
            budget=DEFAULT_BUDGET if budget is None else budget,
            model=model_name,
            token_counter=as_counter(token_counter),
            summarizer=model,
            embedder=embedder,
            compress_threshold=compress_threshold,
        )
        own = Engine(":memory:", embedder=embedder)
        """The middleware's private store: runs without a thread id (a session per run),
        and every session when ``path`` is ``":memory:"``."""
        private = engine is None and str(path) == ":memory:"
        self._openers = (
            MemoryOpener(path=path, engine=own if private else engine, **shared),
            MemoryOpener(engine=own, **shared),
        )
        self._model_named = model_name is not None
        self._held = Sessions(*self._openers, session=session, idle_seconds=idle_seconds)
        self._own = own
        self.last_report: Report | None = None
        """The report of the latest assembled prompt (any session)."""
        self.tools: Sequence[BaseTool] = [self._recall_tool()]

    def memory(self, session: str) -> ConversationMemory:
        """Return the memory of ``session`` (a thread id, or ``run:<message id>``)."""
        return self._held.get(session).memory

    @property
    def sessions_held(self) -> int:
        """Sessions whose handles the middleware holds now."""
        return self._held.count

    def _recall_tool(self) -> BaseTool:
        def _recall(
            ref: str | None = None,
            query: str | None = None,
            max_tokens: int = DEFAULT_RECALL_TOKENS,
            page: int = 1,
            messages: Sequence[BaseMessage] = (),
        ) -> str:
            _, conversation = split_system(messages)
            with self._held.using(self._held.current(conversation)) as held:
                if held.ephemeral:  # a released run's store is rebuilt from its messages
                    with held.lock:
                        held.sync(conversation)
                limit = recall_tokens(held.memory, max_tokens)
                return held.memory.recall(ref=ref, query=query, max_tokens=limit, page=page)

        return StructuredTool.from_function(
            func=_recall, name="recall", description=RECALL_DESCRIPTION, args_schema=_RecallArgs
        )

    def _triggered(
        self, messages: Sequence[BaseMessage], request: ModelRequest[Any], counter: TokenCounter
    ) -> bool:
        if not self._clauses:
            return True
        tokens = counter.count_messages(messages)
        window = _max_input_tokens(request.model) or _max_input_tokens(self.model)
        for clause in self._clauses:
            if "fraction" in clause and window is None:
                raise ConfigError(
                    "a fraction trigger needs the model's max_input_tokens: give the model "
                    "a profile, or use ('tokens', n)"
                )
            met = (
                tokens >= clause.get("tokens", 0)
                and len(messages) >= clause.get("messages", 0)
                and tokens >= clause.get("fraction", 0) * (window or 0)
            )
            if met:
                return True
        return False

    def _call_budget(
        self, request: ModelRequest[Any], memory: ConversationMemory, system: str
    ) -> int | None:
        if self._explicit_budget or self.keep is None:
            return None
        kind, amount = self.keep
        if kind == "tokens":
            return int(amount)
        if kind == "fraction":
            window = _max_input_tokens(request.model) or _max_input_tokens(self.model)
            if window is None:
                raise ConfigError(
                    "keep=('fraction', f) needs the model's max_input_tokens: give the "
                    "model a profile, or use ('tokens', n)"
                )
            return max(1, int(window * amount))
        recent = request.messages[-int(amount) :]
        head = [SystemMessage(system)] if system else []
        return memory.counter.count_messages([*head, *recent])

    def _conversation(self, request: ModelRequest[Any]) -> list[BaseMessage]:
        """The request's messages but its system messages (the model named first: its
        sessions are opened priced and counted as the agent's model)."""
        if not self._model_named:
            self._model_named = True
            for opener in self._openers:
                opener.options["model"] = model_name_of(request.model)
        return split_system(request.messages)[1]

    def _prepare(self, request: ModelRequest[Any], session: HeldSession) -> ModelRequest[Any]:
        """Store new state messages; return the request carrying the assembled prompt."""
        system_texts, conversation = split_system(request.messages)
        with session.lock:
            graph = request.state.get("messages") if isinstance(request.state, dict) else None
            if graph is not None:  # history follows the graph: removed messages retracted
                session.follow(graph)
            session.sync(conversation)
        if not self._triggered(conversation, request, session.memory.counter):
            return request
        system = "\n\n".join(t for t in [request.system_prompt or "", *system_texts] if t)
        memory = session.memory
        budget = self._call_budget(request, memory, system)
        try:
            prompt = memory.assemble(system=system or None, budget=budget)
        except BudgetError:
            if budget is None or self.keep is None or self.keep[0] != "messages":
                raise
            prompt = memory.assemble(system=system or None)  # the pinned turn is older
        self.last_report = prompt.report
        head = [m for m in prompt.messages if isinstance(m, SystemMessage)]
        turns: list[AnyMessage] = [
            cast(AnyMessage, m) for m in prompt.messages if not isinstance(m, SystemMessage)
        ]
        system_message = self._system(request, head)
        if _is_anthropic(request.model):  # breakpoints: the stable part, and what folds keep
            stable, anchor = prompt.stable_count - len(head), prompt.anchor_count - len(head)
            taken = marks_in(system_message) if system_message is not None else 0
            turns = cast(
                list[AnyMessage], with_breakpoint(turns, stable, max(anchor, 0), taken=taken)
            )
            if system_message is not None and prompt.anchor_count == len(head) > 0:
                in_turns = sum(marks_in(m) for m in turns)  # the caller's and ours
                marked = with_breakpoint([system_message], 1, taken=in_turns)
                system_message = cast(SystemMessage, marked[0])
        return request.override(messages=turns, system_message=system_message)

    @staticmethod
    def _system(request: ModelRequest[Any], head: list[SystemMessage]) -> SystemMessage | None:
        """Fold the prompt's system parts (system, summary, recalled) into one message."""
        if not head:
            return None
        original = request.system_message
        if original is not None and not isinstance(original.content, str):
            # Keep the caller's blocks (cache_control...) and append the other parts.
            extra = [{"type": "text", "text": m.text} for m in head[1:]]
            return original.model_copy(update={"content": [*original.content, *extra]})
        return SystemMessage("\n\n".join(m.text for m in head))

    @staticmethod
    def _record(session: HeldSession, response: ModelResponse[Any]) -> None:
        with session.lock:
            session.record(response.result)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Send the model the assembled prompt; store what it replies."""
        with self._held.using(self._held.current(self._conversation(request))) as session:
            prepared = self._prepare(request, session)
            response = handler(prepared)
            self._record(session, response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Send the model the assembled prompt; store what it replies (async).

        The store, search and query embedding run on the engine's I/O threads, never on
        the event loop.
        """
        engine = self._own
        context = contextvars.copy_context()  # the run's config travels with the work
        name = context.run(self._held.current, self._conversation(request))
        session = await engine.run(lambda: context.run(self._held.take, name))
        try:  # held until the reply is stored (``Sessions.using``)
            prepared = await engine.run(lambda: context.run(self._prepare, request, session))
            response = await handler(prepared)
            await engine.run(lambda: self._record(session, response))
        finally:
            session.leave()
        return response

    def close(self) -> None:
        """Release every session's handle and the runs' private store (idempotent)."""
        self._held.close()
