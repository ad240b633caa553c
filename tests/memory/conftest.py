"""Load ``prompt_checks.py`` so the test modules here can import it.

Tests are imported with ``--import-mode=importlib``, which puts no test folder on
``sys.path``; the shared checks are registered as ``prompt_checks``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "prompt_checks" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "prompt_checks", Path(__file__).with_name("prompt_checks.py")
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["prompt_checks"] = _module
    _spec.loader.exec_module(_module)
