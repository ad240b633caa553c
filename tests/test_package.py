"""House rules: public names documented, modules small, README example runs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import memory

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
MAX_MODULE_LINES = 400


def test_all_is_sorted_and_importable() -> None:
    assert memory.__all__ == sorted(memory.__all__)
    for name in memory.__all__:
        assert getattr(memory, name) is not None


@pytest.mark.parametrize("name", memory.__all__)
def test_every_public_name_is_in_the_readme(name: str) -> None:
    assert re.search(rf"`{re.escape(name)}[`(]", README), f"{name} is not documented"


@pytest.mark.parametrize(
    "module",
    sorted(
        p.relative_to(REPO).as_posix()
        for d in ("memory", "stores")
        for p in (REPO / d).rglob("*.py")
    ),
)
def test_modules_stay_small(module: str) -> None:
    lines = (REPO / module).read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines; split it by concept"


def test_readme_opens_with_the_two_setup_commands() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert [
        line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))
    ] == ["make test"]


def test_readme_python_examples_run(  # ```python blocks run; ```py ones are sketches
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ```python block runs; one followed by "prints" and a ```text block prints
    exactly that text."""
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(
        r"```python\n(.*?)```(?:\n\nprints\n\n```text\n(.*?)```)?", README, flags=re.DOTALL
    )
    assert blocks and any(printed for _, printed in blocks)
    for block, printed in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {})
        if printed:
            assert out.getvalue() == printed


def test_the_public_names_section_is_exactly_memory_all() -> None:
    """One curated surface: the README's list and ``memory.__all__`` agree both ways."""
    section = README.split("## Public names", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(\w+)`", section)) - {"memory"}
    assert listed == set(memory.__all__)


PUBLIC_MODULES = {
    "memory/__init__.py",
    "memory/__main__.py",
    "memory/agent.py",
    "memory/forget.py",
    "memory/pricing.py",
    "memory/tool.py",
    "memory/adapters/__init__.py",
    "memory/adapters/classic.py",
    "memory/adapters/functional.py",
    "memory/adapters/langchain.py",
}


def test_internal_modules_are_private() -> None:
    """httpx-style: a module is documented public, or its name starts with ``_``."""
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "memory").rglob("*.py")}
    public = {m for m in modules if not any(part.startswith("_") for part in m.split("/")[1:])}
    public |= {m for m in modules if m.endswith(("/__init__.py", "/__main__.py"))} & PUBLIC_MODULES
    assert public == PUBLIC_MODULES
