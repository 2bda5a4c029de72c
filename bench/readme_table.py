"""Rewrite the performance table of the top-level README.md from bench/results/summary.md.

    python bench/readme_table.py [--readme README.md] [--summary bench/results/summary.md]
    python bench/readme_table.py --check   # exit 1 if the README's table is not the summary's

What lies between ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` in the
README is replaced by everything in summary.md below its title: the line naming the run
(commit, date, this machine's ceilings), which results come from other runs, the table and
its legend. Everything outside the markers is left as it is (the prose around the table
is written by hand and says what the figures mean).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- bench-table:start -->"
END = "<!-- bench-table:end -->"


def table_block(summary: str) -> str:
    """summary.md without its ``# `` title: the run line, the table and its legend."""
    lines = summary.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    block = "\n".join(lines).strip()
    if "\n| --- |" not in block:
        raise ValueError("the summary has no table (is it bench/results/summary.md?)")
    return block


def rewrite(readme: str, summary: str) -> str:
    """``readme`` with the block between the markers replaced by the summary's table."""
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise ValueError(f"the README needs exactly one {START} and one {END}")
    if readme.index(END) < readme.index(START):
        raise ValueError(f"{END} comes before {START}")
    head, rest = readme.split(START)
    _old, tail = rest.split(END)
    return f"{head}{START}\n{table_block(summary)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--summary", type=Path, default=ROOT / "bench" / "results" / "summary.md")
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    readme = args.readme.read_text()
    try:
        new = rewrite(readme, args.summary.read_text())
    except (ValueError, OSError) as exc:
        print(f"readme_table: {exc}", file=sys.stderr)
        return 2
    if new == readme:
        print(f"{args.readme}: the performance table is current")
        return 0
    if args.check:
        print(f"{args.readme}: the performance table differs from {args.summary}")
        return 1
    args.readme.write_text(new)
    print(f"{args.readme}: performance table rewritten from {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
