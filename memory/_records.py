"""Cut one line of minified JSON into its records, so a hit on it can be quoted by them.

An API's JSON comes on one line (``json.dumps`` without ``indent``): the archive's chunk of
it is a run of objects, and quoting the lines that match a query quotes the whole run. Cut
at the commas between its records, the objects (or arrays) that match can be quoted alone,
each as the original's exact text.
"""

from __future__ import annotations

__all__ = ["MIN_RECORDS", "records_of"]

MIN_RECORDS = 4
"""Fewest records a line must hold to be quoted by its records (fewer: the line as it is)."""
_OPEN = "{["
_CLOSE = "}]"


def records_of(line: str) -> list[str] | None:
    """Cut ``line`` at the commas between its records: the commas at the shallowest depth
    that sit between a closing and an opening bracket (``}, {``), outside strings.

    Returns:
        The records, each with the comma and spaces after it (they join back into
        ``line`` exactly), or None when the line holds fewer than ``MIN_RECORDS``.
    """
    if "}," not in line and "]," not in line:
        return None  # no comma after a record: prose, or a single record
    cuts: dict[int, list[int]] = {}  # depth -> positions just after a cutting comma
    depth, in_string, escaped, last = 0, False, False, ""
    for position, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif char == "," and last in _CLOSE:
            following = line[position + 1 :].lstrip(" ")
            if following[:1] in tuple(_OPEN):
                cuts.setdefault(depth, []).append(len(line) - len(following))
        if not char.isspace():
            last = char
    if not cuts:
        return None
    positions = cuts[min(cuts)]
    if len(positions) + 1 < MIN_RECORDS:
        return None
    starts = [0, *positions]
    ends = [*positions, len(line)]
    return [line[start:end] for start, end in zip(starts, ends, strict=True)]
