"""Writes the sync client from the async one: ``clarion_client/_async_*.py`` become
``_sync_*.py`` with ``async``/``await`` taken out (the way httpcore keeps its two halves
alike). Run it after editing an ``_async_`` module; tests/sdk fails when they differ.

    python clients/python/scripts/unasync.py [--check]
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "clarion_client"
SOURCES = ("_async_base.py", "_async_resources.py", "_async_admin.py", "_async_client.py")

RULES: list[tuple[str, str]] = [
    (r"\b_async_(\w+)", r"_sync_\1"),
    (r"\basync def ", "def "),
    (r"\basync for ", "for "),
    (r"\basync with ", "with "),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_lines\b", "iter_lines"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"^import asyncio$", "import time"),
    (r"\basyncio\.sleep\b", "time.sleep"),
]


def unasync(source: str, name: str) -> str:
    out = source
    for pattern, repl in RULES:
        out = re.sub(pattern, repl, out, flags=re.MULTILINE)
    header = f"# Generated from {name} by scripts/unasync.py: edit that file, not this one.\n"
    return header + out


def _ruff(args: list[str], text: str, path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(path), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=PACKAGE.parent.parent.parent,
    )
    if done.returncode not in (0, 1) or not done.stdout:
        raise RuntimeError(f"ruff {args[0]} failed on {path.name}: {done.stderr}")
    return done.stdout


def formatted(text: str, path: Path) -> str:
    """Imports sorted again (module names changed) and laid out as ``ruff format`` would."""
    fixed = _ruff(["check", "--fix", "--quiet", "--select", "I"], text, path)
    return _ruff(["format", "--quiet"], fixed, path)


def generated() -> dict[Path, str]:
    out = {}
    for name in SOURCES:
        target = PACKAGE / name.replace("_async_", "_sync_")
        out[target] = formatted(unasync((PACKAGE / name).read_text(), name), target)
    return out


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path, text in generated().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not check:
            path.write_text(text)
    if check and stale:
        print("out of date (run scripts/unasync.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
