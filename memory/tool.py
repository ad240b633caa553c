"""The ``recall`` tool: the model pulls back exactly what it needs from the archive.

``recall(ref, query, max_tokens, page)``: by ref alone it pages through the original; with
a query it returns the most relevant chunks (of one ref, or of the whole session) under
``max_tokens``. It reads only its own session. Everything it returns is marked as data
quoted from the archive, so instructions inside a tool output are not mistaken for the
system's. Exposed as a LangChain tool and as OpenAI / Anthropic tool schemas.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, ValidationError

from memory._archive import Archive, Hit
from memory._errors import RefNotFoundError
from memory._focus import focus
from memory._quoted_hits import OPEN, cut, line_span, quote, render_hits
from memory._recall.passages import RECALL_TOOL, storable
from memory._recall.search import TOOL_FLOOR, Recall

__all__ = [
    "BUDGET_SHARE",
    "DEFAULT_RECALL_TOKENS",
    "MAX_RECALL_TOKENS",
    "MIN_RECALL_RESULT",
    "RECALL_DESCRIPTION",
    "RECALL_MARGIN",
    "RecallInput",
    "answer_room",
    "anthropic_schema",
    "handle_tool_call",
    "openai_schema",
    "recall",
    "recall_tool",
]

DEFAULT_RECALL_TOKENS = 800
RECALL_MARGIN = 32
"""Tokens kept free under ``compress_threshold`` for a recall answer's message overhead."""
MIN_RECALL_RESULT = 160
"""Smallest recall answer allowed, whatever the threshold, within the budget's share."""
BUDGET_SHARE = 4
"""A recall answer takes at most 1/4 of the prompt budget: the round that asked for it is
sent whole beside the system prompt and the user turn (an 800-token answer in a 600-token
budget made every later ``assemble`` raise ``BudgetError``)."""


def answer_room(
    requested: int, *, compress_threshold: int, prompt_tokens: int, answers: int = 1
) -> int:
    """The most tokens a recall answer may take in a session (tokens), one of ``answers``
    asked for in one round (parallel calls share the room).

    Under ``compress_threshold`` less ``RECALL_MARGIN`` (an answer above it would be
    archived as a digest, and the model would never read what it asked for) and within
    ``1 / BUDGET_SHARE`` of ``prompt_tokens``, shared among ``answers``;
    ``MIN_RECALL_RESULT`` at least where that share allows it."""
    share = prompt_tokens // (BUDGET_SHARE * max(1, answers))
    caps = (compress_threshold - RECALL_MARGIN, share)
    return max(min(MIN_RECALL_RESULT, share), min(int(requested), *caps))


MIN_RECALL_TOKENS = 64
MAX_RECALL_TOKENS = 8000
MAX_LISTED_REFS = 10
MIN_HITS = 6
"""Hits the tool asks for at the default ``max_tokens`` (800): what clears the relevance
floor among them comes back, a question with the reply to it."""
TOKENS_PER_HIT = 128
"""About what one hit's block takes: ``max_tokens`` over this is how many are asked for."""
ECHOED_CHARS = 200
"""Most characters of a query or ref quoted back in an answer that found nothing."""
RECALL_DESCRIPTION = (
    "Read archived tool outputs and earlier messages of this conversation. Large tool "
    "results appear in the conversation as a digest headed [ref XXXXXXXX · ...]. Call "
    "recall with that ref and a query to get the most relevant parts, with the ref alone "
    "to page through the whole original (page=2, 3...), or with a query alone to search "
    "every archived output and earlier message."
)


class RecallInput(BaseModel):
    """Arguments of the recall tool."""

    ref: str | None = Field(default=None, description="ref of an archived output, e.g. a1b2c3d4")
    query: str | None = Field(default=None, description="what to look for, in a few words")
    max_tokens: int = Field(default=DEFAULT_RECALL_TOKENS, description="most tokens to return")
    page: int = Field(default=1, description="page of the original, when reading by ref alone")


def _echo(text: str) -> str:
    """``text`` quoted back to the model, cut to ``ECHOED_CHARS`` (a query may be huge)."""
    return repr(text if len(text) <= ECHOED_CHARS else text[:ECHOED_CHARS] + "...")


def _unknown_ref(archive: Archive, ref: str) -> str:
    known = archive.refs()[-MAX_LISTED_REFS:]
    if not known:
        return f"No archived output with ref {_echo(ref)}: this conversation has none archived."
    listed = "; ".join(f"{r.ref} ({r.note or r.kind}, {r.tokens:,} tokens)" for r in known)
    return (
        f"No archived output with ref {_echo(ref)} in this conversation. Archived refs: {listed}."
    )


def _page(archive: Archive, ref: str, page: int, max_tokens: int) -> str:
    original = archive.get(ref)
    pages: list[tuple[int, int]] = []
    start, size = 0, 0
    wrapper = f'{OPEN}<archived ref="{ref}" page="999 of 999" lines="999999-999999">\n\n'
    wrapper += f'</archived> Next: recall(ref="{ref}", page=999).'
    budget = max_tokens - archive.counter.count(wrapper) - 2
    for record in archive.chunks(ref):
        tokens = archive.counter.count(original[record.start : record.end])
        if size and size + tokens > budget:
            pages.append((start, record.start))
            start, size = record.start, 0
        size += tokens
    pages.append((start, len(original)))
    if not 1 <= page <= len(pages):
        return (
            f"ref {ref} has {len(pages)} page(s) of about {max_tokens} tokens; "
            f"ask for page 1 to {len(pages)}."
        )
    begin, end = pages[page - 1]
    text = cut(original[begin:end], budget, archive)
    lines = line_span(original, begin, begin + len(text))
    more = f' Next: recall(ref="{ref}", page={page + 1}).' if page < len(pages) else ""
    return (
        f'{OPEN}<archived ref="{ref}" page="{page} of {len(pages)}" lines="{lines}">\n'
        f"{quote(text)}\n</archived>{more}"
    )


def recall(
    source: Recall | Archive,
    *,
    ref: str | None = None,
    query: str | None = None,
    max_tokens: int = DEFAULT_RECALL_TOKENS,
    page: int = 1,
) -> str:
    """Return what the recall tool returns for these arguments (always text, never raises
    for a bad ref or query: the model gets a message it can act on).

    ``source``: the session's ``Recall`` (archived outputs and earlier messages), or its
    ``Archive`` alone (archived outputs only). With a query, only what clears the
    relevance floor comes back, narrowed to the lines that match: often far less than
    ``max_tokens``.
    """
    archive = source.archive if isinstance(source, Recall) else source
    max_tokens = max(MIN_RECALL_TOKENS, min(MAX_RECALL_TOKENS, int(max_tokens)))
    # What a model sends may hold anything, lone surrogates included.
    ref = storable(ref).strip() or None if isinstance(ref, str) else None
    query = storable(query).strip() or None if isinstance(query, str) else None
    try:
        if ref is not None and query is None:
            return _page(archive, ref, page, max_tokens)
        if query is None:
            return _unknown_ref(archive, "(none given)").replace(
                "No archived output with ref '(none given)'", "Give a ref or a query"
            )
        if ref is not None:
            archive.get(ref)  # the ref must exist in this session
        if isinstance(source, Recall):
            hits = source.search(query, ref=ref, k=_hits(max_tokens), floor=TOOL_FLOOR)
        else:
            hits = archive.search(query, ref=ref, k=_hits(max_tokens), tight=True)
        hits = _with_neighbour(archive, hits, query)
        note = _degraded_note(source)
        if not hits:
            scope = f"ref {ref}" if ref else "the archive"
            if ref is None and isinstance(source, Recall) and source.words_too_common(query):
                return (
                    f"Nothing in {scope} stands out for {_echo(query)}: its words are in "
                    "most messages, so they pick out none. Ask with rarer words (a name, a "
                    f"number, a place, a word the original likely used).{note}"
                )
            return f"Nothing in {scope} matches {_echo(query)}.{note}"
        room = max_tokens - archive.counter.count(note)
        rendered = render_hits(archive, hits, room, query)
        if rendered == OPEN:  # not even the best match's opening lines fit
            return (
                f"The best match for {_echo(query)} does not fit in {max_tokens} tokens: "
                f"ask again with a larger max_tokens (up to {MAX_RECALL_TOKENS}).{note}"
            )
        return rendered + note
    except RefNotFoundError:
        return _unknown_ref(archive, ref or "")


def _hits(max_tokens: int) -> int:
    """Most hits asked for: ``MIN_HITS``, more as ``max_tokens`` grows (a turn's block is
    about ``TOKENS_PER_HIT``): with 2,000 tokens, 3 of 8 turns holding "fence" came back
    (a new-user trial)."""
    return max(MIN_HITS, max_tokens // TOKENS_PER_HIT)


def _degraded_note(source: Recall | Archive) -> str:
    """Say when search ran on words alone, so the model knows to try the original's words."""
    if isinstance(source, Recall):
        if source.degraded() is None:
            return ""
    elif source.indexer is None or source.indexer.degraded() is None:
        return ""
    # The reason itself (a client's error text) goes to the log and the report, not here.
    return (
        "\n(Search by meaning is unavailable right now, so what matches only by meaning "
        "may be missing: words the original likely used will find more.)"
    )


def _with_neighbour(archive: Archive, hits: list[Hit], query: str) -> list[Hit]:
    """Bring the chunk after the best hit along, so a passage cut by a boundary is whole
    (not when the hit narrows to its matching lines: they are whole already)."""
    if not hits or not hits[0].ref:
        return hits
    if focus(hits[0].text, query) != hits[0].text:
        return hits
    best = hits[0]
    following = [c for c in archive.chunks(best.ref) if c.idx == best.idx + 1]
    if not following:
        return hits
    nxt = following[0]
    extra = Hit(nxt.ref, nxt.idx, nxt.start, nxt.end, nxt.text, best.score)
    rest = [h for h in hits[1:] if not (h.ref == nxt.ref and h.idx == nxt.idx)]
    return [best, extra, *rest]


def handle_tool_call(source: Recall | Archive, arguments: str | dict[str, Any]) -> str:
    """Run a recall tool call from raw provider arguments (a JSON string or a dict)."""
    try:
        data = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        args = RecallInput.model_validate(data)
    except (json.JSONDecodeError, ValidationError, TypeError, ValueError) as exc:
        return _bad_arguments(exc)
    return recall(
        source, ref=args.ref, query=args.query, max_tokens=args.max_tokens, page=args.page
    )


def recall_tool(
    source: Recall | Archive,
    *,
    before: Callable[[], None] | None = None,
    room: Callable[[int], int] | None = None,
) -> BaseTool:
    """Return the recall tool as a LangChain tool bound to one session's recall.

    ``before`` runs before each call (``ConversationMemory`` loads the turns other
    processes stored, and raises ``ClosedError`` once the memory is closed); ``room``
    caps the ``max_tokens`` the model asks for (``answer_room``)."""

    def _run(
        ref: str | None = None,
        query: str | None = None,
        max_tokens: int = DEFAULT_RECALL_TOKENS,
        page: int = 1,
    ) -> str:
        if before is not None:
            before()
        if room is not None and isinstance(max_tokens, int) and max_tokens > 0:
            max_tokens = room(max_tokens)
        return recall(source, ref=ref, query=query, max_tokens=max_tokens, page=page)

    return StructuredTool.from_function(
        func=_run,
        name=RECALL_TOOL,
        description=RECALL_DESCRIPTION,
        args_schema=RecallInput,
        handle_validation_error=_bad_arguments,  # the model gets text, as from recall
    )


def _bad_arguments(error: Exception) -> str:
    """What the tool answers a call whose arguments do not fit ``RecallInput``."""
    return f"recall: bad arguments ({error}); expected ref, query, max_tokens, page."


def openai_schema() -> dict[str, Any]:
    """Return the recall tool's schema in OpenAI's ``tools`` format."""
    schema = convert_to_openai_tool(
        {"title": RECALL_TOOL, "description": RECALL_DESCRIPTION, **_parameters()}
    )
    return schema


def anthropic_schema() -> dict[str, Any]:
    """Return the recall tool's schema in Anthropic's ``tools`` format."""
    return {"name": RECALL_TOOL, "description": RECALL_DESCRIPTION, "input_schema": _parameters()}


def _parameters() -> dict[str, Any]:
    schema = RecallInput.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return schema
