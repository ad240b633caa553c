"""The token budget a prompt must fit."""

from __future__ import annotations

from dataclasses import dataclass

from memory._errors import ConfigError

__all__ = ["Budget", "as_budget"]


@dataclass(frozen=True, slots=True)
class Budget:
    """How many tokens a prompt may use.

    The prompt's counted tokens are always ``<= prompt_tokens``, that is
    ``context_window - reserve_output - tools_schema_tokens``.

    Args:
        context_window: The model's context window, in tokens.
        reserve_output: Tokens kept free for the model's reply.
        tools_schema_tokens: Tokens the provider spends on tool definitions.

    Raises:
        ConfigError: a value is negative, or nothing is left for the prompt.
    """

    context_window: int
    reserve_output: int = 0
    tools_schema_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("context_window", "reserve_output", "tools_schema_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an int, not {type(value).__name__}")
        if self.context_window <= 0:
            raise ConfigError(f"context_window must be > 0, not {self.context_window}")
        if self.reserve_output < 0 or self.tools_schema_tokens < 0:
            raise ConfigError("reserve_output and tools_schema_tokens must be >= 0")
        if self.prompt_tokens <= 0:
            raise ConfigError(
                f"reserve_output ({self.reserve_output}) + tools_schema_tokens "
                f"({self.tools_schema_tokens}) leave no room in a context window of "
                f"{self.context_window} tokens; lower them or raise context_window"
            )

    @property
    def prompt_tokens(self) -> int:
        """Tokens the prompt itself may use."""
        return self.context_window - self.reserve_output - self.tools_schema_tokens


def as_budget(budget: Budget | int) -> Budget:
    """Accept a ``Budget`` or a plain number of prompt tokens.

    Raises:
        ConfigError: ``budget`` is neither a ``Budget`` nor a positive int.
    """
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise ConfigError(f"budget must be a Budget or an int, not {type(budget).__name__}")
    if budget <= 0:
        raise ConfigError(f"budget must be a positive number of prompt tokens, not {budget}")
    return Budget(context_window=budget)
