"""py-spy sampling of a server PID during a measured window, summarised as text.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;frame count``); the
summary ranks functions by inclusive share of samples (on the stack anywhere) and by self
share (the leaf), which is what bench/README.md quotes as hot spots.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.common import RESULTS, Procs

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def start(procs: Procs, pid: int, name: str, seconds: float) -> subprocess.Popen[bytes] | None:
    if not Path(PY_SPY).exists():
        return None
    out = RESULTS / f"{name}.folded.tmp"
    return procs.spawn(
        [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--subprocesses",  # serve --workers N: the worker processes too
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def finish(procs: Procs, proc: subprocess.Popen[bytes] | None, name: str, top: int = 25) -> str:
    """Wait for py-spy, write ``<name>.profile.txt`` and return it."""
    if proc is None:
        return "py-spy not installed"
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
    if proc in procs.started:
        procs.started.remove(proc)
    folded = RESULTS / f"{name}.folded.tmp"
    if not folded.exists():
        return "no profile"
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";") if f]
        for f in set(frames):
            inclusive[f] += n
        if frames:
            leaf[frames[-1]] += n
    lines = [f"py-spy, {total} samples at 200 Hz (idle not sampled)."]
    lines.append("Clarion functions, inclusive share (on the stack anywhere):")
    shown = 0
    for f, n in inclusive.most_common():
        if "(clarion/" not in f or f.startswith(("serve ", "main ")):
            continue
        lines.append(f"  {100 * n / max(1, total):5.1f}%  {f}")
        shown += 1
        if shown >= top:
            break
    lines.append("self share (leaf frames, where the CPU actually went):")
    for f, n in leaf.most_common(20):
        lines.append(f"  {100 * n / max(1, total):5.1f}%  {f}")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.profile.txt").write_text(text)
    return text


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"
