"""Fixtures for the compressor tests: a cheap deterministic counter and sample outputs."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def _count(text: str) -> int:
    # The plain encode() raises on lone surrogates, which the compressors must survive.
    return len(text.encode()) // 4 + 1


@pytest.fixture(scope="session")
def count() -> Callable[[str], int]:
    """Count about one token per four UTF-8 bytes."""
    return _count


@pytest.fixture(scope="session")
def error_log() -> str:
    """A service log with repeats, warnings, errors and a traceback."""
    lines = ["2024-05-01 10:00:00 INFO service starting version 1.2.3"]
    for i in range(300):
        lines.append(
            f"2024-05-01 10:{i // 60:02d}:{i % 60:02d} INFO handled request id={i} in {i % 7}ms"
        )
        if i == 120:
            lines.append("2024-05-01 10:02:00 WARNING cache miss ratio high: 0.93")
        if i == 200:
            lines += [
                "2024-05-01 10:03:20 ERROR request failed",
                "Traceback (most recent call last):",
                '  File "/srv/app/handler.py", line 42, in handle',
                "    result = compute(payload)",
                '  File "/srv/app/compute.py", line 7, in compute',
                "    return 1 / payload.size",
                "ZeroDivisionError: division by zero",
            ]
    lines.append("2024-05-01 10:05:00 INFO service stopped cleanly")
    return "\n".join(lines)


@pytest.fixture(scope="session")
def python_source() -> str:
    """A small Python module with a class, methods, functions and imports."""
    body = "\n".join(f"    x{i} = {i} * 2" for i in range(60))
    deeper = "\n".join(f"        x{i} = {i} * 2" for i in range(60))
    return f'''"""Tools for widgets.

More text here.
"""

import os
import sys
from pathlib import Path

MAX_WIDGETS = 10


class Widget(Base):
    """A widget that spins."""

    def __init__(self, name: str) -> None:
        self.name = name

    def spin(self, times: int = 1) -> int:
        """Spin the widget."""
{deeper}
        return times

    def _helper(self):
        pass


def make_widget(name: str) -> Widget:
    """Make a widget."""
{body}
    return Widget(name)


async def fetch(url):
    return url


if __name__ == "__main__":
    make_widget("x")
'''
