"""context-attic: keep long LLM conversations cheap without making them forget.

>>> from memory import ConversationMemory, Budget
>>> mem = ConversationMemory.open(":memory:", session="user-42", budget=Budget(8000, 1000))
"""

from memory.assemble import Prompt, assemble
from memory.budget import Budget
from memory.core import ConversationMemory
from memory.engine import Engine
from memory.errors import (
    BudgetError,
    ClosedError,
    ConfigError,
    ConflictError,
    ContextAtticError,
    InputError,
    MissingDependencyError,
    RefNotFoundError,
    StoreError,
    SummarizerError,
)
from memory.messages import Exchange, Turn, normalize
from memory.policy import AssemblyPolicy
from memory.pricing import Price
from memory.report import PartTokens, Report
from memory.summarize import ExtractiveSummarizer, LLMSummarizer, Summarizer, SummaryResult
from memory.tokens import (
    CallableCounter,
    ChatModelCounter,
    TiktokenCounter,
    TokenCounter,
    counter_for_model,
    seed_tiktoken_cache,
)
from memory.window import Summary

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
