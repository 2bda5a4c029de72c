"""bench/readme_table.py on a copy of the README: only the block between the markers
changes, and it becomes summary.md's run line and table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.readme_table import END, START, main, rewrite

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = """# Clarion bench — quick run

Run: commit `abc123`, 2026-12-07T21:00+00:00, quick run, 2 cores.

| scenario | what | ratio |
| --- | --- | --- |
| S5 inbox | reads/s | 0.35x bare Starlette |

† depends on the machine.
"""


def test_the_readme_has_the_markers_once() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(START) == 1 and readme.count(END) == 1
    assert readme.index(START) < readme.index(END)


def test_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    original = (ROOT / "README.md").read_text()
    readme = tmp_path / "README.md"
    readme.write_text(original)
    summary = tmp_path / "summary.md"
    summary.write_text(SUMMARY)
    assert main(["--readme", str(readme), "--summary", str(summary)]) == 0
    new = readme.read_text()
    head, rest = new.split(START)
    block, tail = rest.split(END)
    assert head == original.split(START)[0]
    assert tail == original.split(END)[1]
    assert block.startswith("\nRun: commit `abc123`")
    assert "| S5 inbox | reads/s | 0.35x bare Starlette |" in block
    assert "# Clarion bench" not in block
    # current now: a second run changes nothing, and --check agrees
    assert main(["--readme", str(readme), "--summary", str(summary), "--check"]) == 0
    assert readme.read_text() == new


def test_check_reports_a_stale_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nafter\n")
    summary = tmp_path / "summary.md"
    summary.write_text(SUMMARY)
    assert main(["--readme", str(readme), "--summary", str(summary), "--check"]) == 1
    assert "old table" in readme.read_text()


def test_refuses_a_readme_without_markers_or_a_summary_without_table() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        rewrite("no markers here\n", SUMMARY)
    with pytest.raises(ValueError, match="comes before"):
        rewrite(f"{END}\n{START}\n", SUMMARY)
    with pytest.raises(ValueError, match="no table"):
        rewrite(f"{START}\n{END}\n", "# title\n\njust words\n")
