"""context-attic: keep long LLM conversations cheap without making them forget.

>>> from memory import ConversationMemory, Budget
>>> mem = ConversationMemory.open(":memory:", session="user-42", budget=Budget(8000, 1000))
"""

from memory._assemble import Prompt, assemble
from memory._budget import Budget
from memory._core import ConversationMemory
from memory._engine import Engine
from memory._errors import (
    BudgetError,
    ClosedError,
    ConfigError,
    ConflictError,
    ContextAtticError,
    InputError,
    InterruptedWriteError,
    MissingDependencyError,
    RefNotFoundError,
    StoreError,
    SummarizerError,
)
from memory._messages import Exchange, Turn, normalize
from memory._policy import AssemblyPolicy
from memory._report import PartTokens, Report
from memory._summarize import ExtractiveSummarizer, LLMSummarizer, Summarizer, SummaryResult
from memory._tokens import (
    CallableCounter,
    ChatModelCounter,
    TiktokenCounter,
    TokenCounter,
    counter_for_model,
    seed_tiktoken_cache,
)
from memory._window import Summary
from memory.pricing import Price

__all__ = [
    "AssemblyPolicy",
    "Budget",
    "BudgetError",
    "CallableCounter",
    "ChatModelCounter",
    "ClosedError",
    "ConfigError",
    "ConflictError",
    "ContextAtticError",
    "ConversationMemory",
    "Engine",
    "Exchange",
    "ExtractiveSummarizer",
    "InputError",
    "InterruptedWriteError",
    "LLMSummarizer",
    "MissingDependencyError",
    "PartTokens",
    "Price",
    "Prompt",
    "RefNotFoundError",
    "Report",
    "StoreError",
    "Summarizer",
    "SummarizerError",
    "Summary",
    "SummaryResult",
    "TiktokenCounter",
    "TokenCounter",
    "Turn",
    "assemble",
    "counter_for_model",
    "normalize",
    "seed_tiktoken_cache",
]
