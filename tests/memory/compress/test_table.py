"""Tests for memory._compress.table: formats, column ranges, first and last rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memory._compress.table import TableCompressor, draft_table, parse_table

Count = Callable[[str], int]

LS = "total 12\n" + "\n".join(
    f"-rw-r--r--  1 root staff  {100 * i:5d} Nov 22 18:45 file{i:03d}.txt" for i in range(1, 200)
)


def test_csv_with_header() -> None:
    table = parse_table("name,size,kind\nalpha,10,a\nbeta,20,b\ngamma,30,a\n")
    assert table.style == "csv"
    assert table.columns == ["name", "size", "kind"]
    assert table.rows[1] == ["beta", "20", "b"]
    assert table.header_lines == ["name,size,kind"]


def test_tsv_markdown_ls_find_apt_and_aligned() -> None:
    assert parse_table("a\tb\n1\t2\n3\t4").style == "tsv"
    markdown = parse_table("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |")
    assert (markdown.style, markdown.columns, markdown.rows) == (
        "markdown",
        ["a", "b"],
        [["1", "2"], ["3", "4"]],
    )
    ls = parse_table(LS)
    assert (ls.style, ls.preamble, ls.rows[0][-1]) == ("ls", ["total 12"], "file001.txt")
    find = parse_table(
        "  2230236      4 drwxr-xr-x   4 root  root   4096 Nov 22 18:45 /tmp/a b\n"
        "  2230276   6392 -rwxr-xr-x   1 root  root   6541 Nov 22 18:45 /tmp/c"
    )
    assert (find.style, find.rows[0][-1]) == ("find -ls", "/tmp/a b")
    apt = parse_table("python3-a - A thing - really\npython3-b - B thing")
    assert apt.rows[0] == ["python3-a", "A thing - really"]
    pip = parse_table("Package    Version\n---------- -------\nanyio      4.16.0\nidna       3.20")
    assert (pip.style, pip.columns, pip.rows[1]) == (
        "aligned",
        ["Package", "Version"],
        ["idna", "3.20"],
    )


def test_digest_has_header_counts_ranges_first_and_last_rows(count: Count) -> None:
    draft = draft_table(LS, count=count, max_tokens=300)
    text = draft.text
    assert text.startswith("199 rows x 9 columns (ls): mode | links | owner")
    assert "total 12" in text
    assert "size: number 100..19900" in text
    assert "owner: root x199" in text
    assert "file001.txt" in text
    assert "file199.txt" in text
    assert "rows omitted" in text
    assert draft.items == 199
    assert count(text) <= 300


def test_common_prefixes_are_factored(count: Count) -> None:
    rows = "\n".join(f"{i},/very/long/common/prefix/dir/item{i:03d}" for i in range(100))
    text = draft_table("id,path\n" + rows, count=count, max_tokens=200).text
    assert "all start '/very/long/common/prefix/dir/item0'" in text


def test_not_a_table_raises(count: Count) -> None:
    with pytest.raises(ValueError):
        draft_table("one line only", count=count, max_tokens=50)


def test_compressor(count: Count) -> None:
    digest = TableCompressor().compress(LS, count=count, max_tokens=200)
    assert digest.kind == "table"
    assert digest.note == "table · 199 rows x 9 cols"
