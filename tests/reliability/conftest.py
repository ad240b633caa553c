"""Load ``harness.py`` and ``fuzz.py`` (shared with ``benchmarks/reliability.py``).

Tests are imported with ``--import-mode=importlib``, which puts no test folder on
``sys.path``; the helpers are registered as ``reliability_harness`` and
``reliability_fuzz`` so every test module here can import them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load(name: str, filename: str) -> None:
    if name in sys.modules:
        return
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_load("reliability_harness", "harness.py")
_load("reliability_fuzz", "fuzz.py")
