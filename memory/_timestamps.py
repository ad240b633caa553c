"""When a message was sent: read from the message or given to ``add``, shown as a date.

A message's time is, first found: a ``"timestamp"`` key of a dict message
(``convert_to_messages`` keeps it in ``additional_kwargs``) or a LangChain message's
``additional_kwargs["timestamp"]``; the ``timestamp`` argument of ``add``; else the time of
``add``. A given time is stored in the message too (``history()`` returns it). A time
is ISO 8601 text (``"2023-05-08T13:56:00+02:00"``; ``Z`` and a date alone are accepted;
text without an offset is read as UTC), epoch seconds (int or float) or a ``datetime``
(naive: UTC). It is stored as epoch seconds with the message (``TurnRecord.created_at``),
and recalled snippets and summaries show it as a date.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from langchain_core.messages import BaseMessage

from memory._errors import InputError

__all__ = [
    "TIMESTAMP_KEY",
    "Timestamp",
    "carry_time",
    "format_time",
    "iso_time",
    "message_time",
    "parse_timestamp",
    "times_sent",
    "with_time",
]

TIMESTAMP_KEY = "timestamp"
"""The key that carries a message's time in a dict message or ``additional_kwargs``."""
Timestamp = str | int | float | datetime | date
"""What a timestamp may be given as."""
_LATEST = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


def parse_timestamp(value: object, *, index: int | None = None) -> float:
    """Return ``value`` as epoch seconds (UTC).

    Args:
        value: ISO 8601 text, epoch seconds, a ``datetime`` or a ``date``.
        index: The message's position in the input, named in the error.

    Raises:
        InputError: the value is none of these, not a finite time, or before 1970.
    """
    seconds: float
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, datetime):
        seconds = _aware(value).timestamp()
    elif isinstance(value, date):
        seconds = datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    elif isinstance(value, str):
        try:
            seconds = _aware(datetime.fromisoformat(value.strip())).timestamp()
        except ValueError:
            seconds = math.nan
    else:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= _LATEST):
        raise InputError(
            f"timestamp {value!r} is not a time: give ISO 8601 text "
            "('2023-05-08T13:56:00Z'), epoch seconds or a datetime, from 1970 on",
            index=index,
        )
    return seconds


def message_time(message: BaseMessage, *, index: int | None = None) -> float | None:
    """Return the time a message carries in ``additional_kwargs["timestamp"]``, if any.

    Raises:
        InputError: the value is not a time (see ``parse_timestamp``).
    """
    value: Any = message.additional_kwargs.get(TIMESTAMP_KEY)
    return None if value is None else parse_timestamp(value, index=index)


def carry_time(converted: BaseMessage, original: object, index: int) -> BaseMessage:
    """Return ``converted`` with the time its input ``original`` carries, checked.

    The time goes into ``additional_kwargs["timestamp"]`` as ISO 8601 UTC text (the form
    stored with the message); a message without one is returned as it is.

    Raises:
        InputError: the input's time is not a time.
    """
    if isinstance(original, BaseMessage):
        value: Any = original.additional_kwargs.get(TIMESTAMP_KEY)
    elif isinstance(original, Mapping):
        value = original.get(TIMESTAMP_KEY)
    else:
        value = None
    if value is None:
        return converted
    text = iso_time(parse_timestamp(value, index=index))
    if converted.additional_kwargs.get(TIMESTAMP_KEY) == text:
        return converted
    kwargs = {**converted.additional_kwargs, TIMESTAMP_KEY: text}
    return converted.model_copy(update={"additional_kwargs": kwargs})


def times_sent(messages: Sequence[BaseMessage], default: Timestamp | None) -> list[float | None]:
    """Return each message's time: its own, else ``default``, else None (the store's now).

    Raises:
        InputError: ``default`` is not a time.
    """
    fallback = None if default is None else parse_timestamp(default)
    found = [message_time(m, index=i) for i, m in enumerate(messages)]
    return [fallback if at is None else at for at in found]


def with_time(message: BaseMessage, at: float | None) -> BaseMessage:
    """Return ``message`` carrying ``at`` (epoch seconds) as its timestamp, unless it has
    one already or ``at`` is None (the message itself is never changed)."""
    if at is None or TIMESTAMP_KEY in message.additional_kwargs:
        return message
    kwargs = {**message.additional_kwargs, TIMESTAMP_KEY: iso_time(at)}
    return message.model_copy(update={"additional_kwargs": kwargs})


def iso_time(seconds: float) -> str:
    """Show epoch seconds as ISO 8601 UTC text, e.g. ``"2023-05-08T13:56:00Z"``."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def format_time(seconds: float) -> str:
    """Show epoch seconds as a UTC date and minute, e.g. ``"2023-05-08 13:56 UTC"``.

    Midnight shows the date alone (a time given as a date).
    """
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    if moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
