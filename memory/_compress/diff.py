"""Digest unified diffs and ``git log -p``: commits, files with +/- counts, hunks.

The outline always keeps each commit's header and subject and each file's change counts;
hunk headers come next, then the changed lines themselves, the first of each hunk first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from memory._compress.base import Counter, Draft, DraftCompressor, clip, head_window
from memory._compress.fit import select_lines

__all__ = ["DiffCompressor", "draft_diff"]

MAX_DIFF_CHARS = 4_000_000  # only this much of a huge diff is parsed
_HUNK = re.compile(r"^@@+ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@+")
_GIT_HEADER = re.compile(r"^diff --git a/(.*?) b/(.*)$")
_COMMIT = re.compile(r"^commit ([0-9a-f]{7,64})\b")


@dataclass
class _File:
    """Change counts of one file (mutable while parsing)."""

    name: str
    status: str = "M"
    added: int = 0
    removed: int = 0
    lines: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class _Commit:
    """One commit's header (mutable while parsing)."""

    sha: str
    author: str = ""
    date: str = ""
    subject: str = ""
    body: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"commit {self.sha[:12]}", self.author, self.date, self.subject]
        return clip(" · ".join(p for p in parts if p), 200)


@dataclass
class _Parse:
    """Everything the outline is built from (mutable while parsing)."""

    entries: list[_Commit | _File] = field(default_factory=list)
    files: int = 0
    commits: int = 0
    added: int = 0
    removed: int = 0


def _file_status(line: str, current: _File) -> None:
    if line.startswith("new file mode"):
        current.status = "A"
    elif line.startswith("deleted file mode"):
        current.status = "D"
    elif line.startswith(("rename from", "rename to", "similarity index")):
        current.status = "R"
    elif line.startswith("Binary files"):
        current.status += " binary"
    elif line.startswith("+++ ") and not line.startswith("+++ /dev/null"):
        name = line[4:].strip()
        current.name = name[2:] if name.startswith("b/") else name


def _starts_file(lines: list[str], index: int, current: _File | None) -> str | None:
    """Return the file name if ``lines[index]`` starts a new file's diff."""
    git = _GIT_HEADER.match(lines[index])
    if git:
        return git.group(2)
    line = lines[index]
    fresh = current is None or any(rank == 1.0 for _, rank in current.lines)
    following = lines[index + 1] if index + 1 < len(lines) else ""
    if fresh and line.startswith("--- ") and following.startswith("+++ "):
        return line[4:].split("\t")[0].strip().removeprefix("a/")
    return None


def _commit_line(commit: _Commit, line: str) -> None:
    if line.startswith("Author:"):
        commit.author = line[7:].split("<")[0].strip()
    elif line.startswith("Date:"):
        commit.date = line[5:].strip()
    elif line.startswith("Merge:"):
        commit.subject = commit.subject or line.strip()
    elif not commit.subject:
        commit.subject = line.strip()
    else:
        commit.body.append(clip(line, 160))


def _parse(lines: list[str]) -> _Parse:
    result = _Parse()
    current: _File | None = None
    old_left = new_left = 0
    for index, line in enumerate(lines):
        if current is not None and (old_left > 0 or new_left > 0):
            tag = line[:1]
            if tag in ("-", "+"):
                rank = 2.0 + 0.01 * len(current.lines)
                current.lines.append((f"  {clip(line)}", rank))
                current.removed += tag == "-"
                current.added += tag == "+"
            old_left -= tag != "+"
            new_left -= tag != "-"
            continue
        commit = _COMMIT.match(line)
        hunk = _HUNK.match(line)
        name = None if commit else _starts_file(lines, index, current)
        if commit:
            result.commits += 1
            result.entries.append(_Commit(commit.group(1)))
            current = None
        elif name is not None:
            current = _File(name)
            result.entries.append(current)
            result.files += 1
        elif hunk and current is not None:
            old_left, new_left = int(hunk.group(2) or 1), int(hunk.group(4) or 1)
            current.lines.append((f"  {clip(line, 160)}", 1.0))
        elif current is not None:
            _file_status(line, current)
        elif result.entries and isinstance(result.entries[-1], _Commit) and line.strip():
            _commit_line(result.entries[-1], line)
    for entry in result.entries:
        if isinstance(entry, _File):
            result.added += entry.added
            result.removed += entry.removed
    return result


def draft_diff(text: str, *, count: Counter, max_tokens: int) -> Draft:
    """Make a diff digest: commits, files with +/- counts, hunk headers, changed lines.

    Raises:
        ValueError: ``text`` contains no file diffs.
    """
    window = head_window(text, MAX_DIFF_CHARS)
    parsed = _parse(window.split("\n"))
    if parsed.files == 0:
        raise ValueError("no file diffs found")
    out: list[str] = []
    ranks: list[float] = []
    if len(window) < len(text):
        more = text.count("\ndiff --git ", len(window) - 1)
        out.append(f"[first {len(window):,} chars analysed; {more:,} more files after them]")
        ranks.append(0.0)
    for entry in parsed.entries:
        if isinstance(entry, _File):
            out.append(f"{entry.status} {entry.name}  +{entry.added} -{entry.removed}")
            ranks.append(0.0)
            out.extend(line for line, _ in entry.lines)
            ranks.extend(rank for _, rank in entry.lines)
        else:
            out.append(entry.line())
            ranks.append(0.0)
            out.extend(entry.body)
            ranks.extend(3.0 for _ in entry.body)
    body = select_lines(out, ranks, count=count, max_tokens=max_tokens, gap=lambda n: "  …")
    commits = f"{parsed.commits} commits · " if parsed.commits else ""
    note = f"diff · {commits}{parsed.files} files · +{parsed.added} -{parsed.removed}"
    return Draft(body, parsed.files, False, note)


class DiffCompressor(DraftCompressor):
    """Digest diffs (see :func:`draft_diff`)."""

    kind = "diff"
    draft = staticmethod(draft_diff)
