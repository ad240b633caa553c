"""Digest source code into an outline: imports, signatures with line numbers, docstrings.

Python is outlined with :mod:`ast`; other languages, and Python that does not parse (an
excerpt, a broken edit), with line regexes. Editor views that number their lines
(``123:code``) keep those numbers. Top-level names are kept first, then imports, methods
and docstrings, until the budget is spent.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from memory._compress.base import Counter, Draft, DraftCompressor, clip, head_window, line_count
from memory._compress.fit import select_lines

__all__ = ["CodeCompressor", "draft_code", "outline_python", "outline_regex"]

_NUMBERED = re.compile(r"^(\d+):(.*)\Z")
_MODIFIERS = (
    r"(?:(?:export|public|private|protected|internal|static|async|abstract|final|sealed|"
    r"pub(?:\([^)]*\))?|unsafe|extern|inline|virtual|override|default|const|open|data)\s+)*"
)
_DEF = re.compile(
    r"^(?P<indent>[ \t]*)(?:@\w[\w.]*(?:\([^)]*\))?\s+)*" + _MODIFIERS + r"(?P<kw>def|class|"
    r"function\*?|fn|func|struct|enum|trait|interface|impl|type|module|namespace|object|"
    r"record|protocol|extension|union)\b"
)
_C_FUNC = re.compile(
    r"^(?P<indent>[ \t]{0,4})(?!(?:if|for|while|switch|return|catch|else|do|case)\b)"
    r"[A-Za-z_][\w:<>,*&\[\] ]*[\s*&]\**(?P<name>[A-Za-z_]\w*)\s*\([^;]*\)?\s*(?:const\s*)?\{?\s*\Z"
)
_IMPORT = re.compile(
    r"^\s*(?:import\s|from\s+\S+\s+import\s|#\s*include\b|use\s|require\b|using\s|package\s)"
)
_SIGNATURE_WIDTH = 160
MAX_CODE_CHARS = 1_000_000  # only this much of a huge file is outlined


@dataclass(frozen=True, slots=True)
class Outline:
    """A ranked outline of a source file.

    Attributes:
        lines: Outline lines in file order.
        ranks: One rank per line; lower ranks are kept first.
        definitions: Classes and functions found, at any depth.
        language: ``"python"`` or ``"code"``.
    """

    lines: list[str]
    ranks: list[float]
    definitions: int
    language: str


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    decorators = "".join(f"@{clip(ast.unparse(d), 40)} " for d in node.decorator_list)
    if isinstance(node, ast.ClassDef):
        bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
        suffix = f"({', '.join(bases)})" if bases else ""
        return clip(f"{decorators}class {node.name}{suffix}", _SIGNATURE_WIDTH)
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    text = f"{decorators}{prefix} {node.name}({ast.unparse(node.args)}){returns}"
    return clip(text, _SIGNATURE_WIDTH)


def _doc_line(node: ast.AST) -> str | None:
    if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    doc = ast.get_docstring(node, clean=True)
    if not doc:
        return None
    first = next((line for line in doc.splitlines() if line.strip()), "")
    return clip(first.strip(), 120) if first else None


def outline_python(source: str, numbers: list[int] | None = None) -> Outline:
    """Outline Python source with :mod:`ast`.

    Args:
        source: The Python source.
        numbers: Real line numbers of ``source``'s lines, for numbered editor views.

    Raises:
        SyntaxError: ``source`` does not parse.
        ValueError: ``source`` contains NUL bytes.
    """
    tree = ast.parse(source)
    lines: list[str] = []
    ranks: list[float] = []

    def number(lineno: int) -> int:
        return numbers[lineno - 1] if numbers and 0 < lineno <= len(numbers) else lineno

    def emit(text: str, rank: float) -> None:
        lines.append(text)
        ranks.append(rank)

    module_doc = _doc_line(tree)
    if module_doc:
        emit(f'"""{module_doc}"""', 0.5)

    def visit(body: list[ast.stmt], depth: int) -> None:
        pending_imports: list[str] = []
        for node in body:
            if isinstance(node, ast.Import) and depth == 0:
                pending_imports.extend(ast.unparse(a) for a in node.names)
                continue
            if pending_imports:
                emit("import " + clip(", ".join(pending_imports), 200), 1.0)
                pending_imports = []
            indent = "  " * depth
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                private = node.name.startswith("_") and not node.name.endswith("__")
                rank = 0.0 if depth == 0 else 1.5 + depth + (1.0 if private else 0.0)
                emit(f"L{number(node.lineno)} {indent}{_signature(node)}", rank)
                doc = _doc_line(node)
                if doc:
                    emit(f'{indent}    """{doc}"""', rank + 2.0)
                if isinstance(node, ast.ClassDef) or depth == 0:
                    visit(node.body, depth + 1)
            elif isinstance(node, ast.ImportFrom) and depth == 0:
                emit(clip(ast.unparse(node), 200), 1.0)
            elif depth == 0:
                _top_level_statement(node, number, emit)
        if pending_imports:
            emit("import " + clip(", ".join(pending_imports), 200), 1.0)

    visit(tree.body, 0)
    # The outline shows definitions down to methods; the count covers every depth.
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    definitions = sum(1 for node in ast.walk(tree) if isinstance(node, kinds))
    return Outline(lines, ranks, definitions, "python")


def _top_level_statement(
    node: ast.stmt, number: Callable[[int], int], emit: Callable[[str, float], None]
) -> None:
    """Outline a module-level statement that is not a definition or a plain import."""
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if names:
            public = any(n.isupper() or n.startswith("__") for n in names)
            emit(f"L{number(node.lineno)} {clip(ast.unparse(node), 100)}", 2.5 if public else 4.0)
    elif isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
        emit(f"L{number(node.lineno)} if {ast.unparse(node.test)}: …", 3.0)
    elif isinstance(node, ast.Try):
        for child in ast.walk(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                emit(f"L{number(child.lineno)} {clip(ast.unparse(child), 120)} (guarded)", 2.0)


def outline_regex(lines: list[str], numbers: list[int] | None = None) -> Outline:
    """Outline source in any language from definition and import lines."""
    out: list[str] = []
    ranks: list[float] = []
    definitions = 0
    for index, line in enumerate(lines):
        lineno = numbers[index] if numbers else index + 1
        match = _DEF.match(line) or _C_FUNC.match(line)
        if match:
            definitions += 1
            depth = len(match.group("indent").expandtabs(4)) // 4
            out.append(f"L{lineno} {clip(line.rstrip(), _SIGNATURE_WIDTH)}")
            ranks.append(0.0 if depth == 0 else 1.5 + depth)
        elif _IMPORT.match(line):
            out.append(f"L{lineno} {clip(line.strip(), 160)}")
            ranks.append(1.0)
    return Outline(out, ranks, definitions, "code")


def _unnumber(text: str) -> tuple[str, list[int] | None, list[str]]:
    """Strip ``123:`` prefixes of an editor view; return source, numbers, other lines."""
    lines = text.split("\n")
    matches = [_NUMBERED.match(line) for line in lines]
    numbered = sum(1 for m in matches if m)
    if numbered < 0.6 * max(1, sum(1 for line in lines if line.strip())):
        return text, None, []
    source = [m.group(2) for m in matches if m]
    numbers = [int(m.group(1)) for m in matches if m]
    others = [line for line, m in zip(lines, matches, strict=True) if not m and line.strip()]
    return "\n".join(source), numbers, others


def draft_code(text: str, *, count: Counter, max_tokens: int) -> Draft:
    """Make a code outline that fits the budget, top-level names first.

    Raises:
        ValueError: no definitions or imports were found.
    """
    window = head_window(text, MAX_CODE_CHARS)
    source, numbers, others = _unnumber(window)
    try:
        outline = outline_python(source, numbers)
    except (SyntaxError, ValueError, RecursionError):
        outline = outline_regex(source.split("\n"), numbers)
    if not outline.lines:
        raise ValueError("no definitions or imports found")
    header = "\n".join(clip(line, 160) for line in others[:3])
    if len(window) < len(text):
        skipped = text.count("\n", len(window)) + 1
        header += f"\n[outline of the first {window.count(chr(10)):,} lines; {skipped:,} more]"
        header = header.strip("\n")
    body = select_lines(
        outline.lines,
        outline.ranks,
        count=count,
        max_tokens=max_tokens,
        header=header,
        gap=lambda n: "…",
    )
    total = line_count(text)
    scope = f" in the first {line_count(window):,} lines" if len(window) < len(text) else ""
    note = f"{outline.language} · {total:,} lines · {outline.definitions} definitions{scope}"
    return Draft(body, outline.definitions, False, note)


class CodeCompressor(DraftCompressor):
    """Digest source code (see :func:`draft_code`)."""

    kind = "code"
    draft = staticmethod(draft_code)
