"""clarion.gc_tuning.settle, in a process of its own (it changes process-wide state)."""

from __future__ import annotations

import subprocess
import sys

from clarion.gc_tuning import YOUNG_THRESHOLD

PROBE = """
import gc
from clarion import gc_tuning
import clarion.api.app  # what a server has imported by the time it settles
before = gc.get_threshold()
gc_tuning.settle()
after = gc.get_threshold()
print(gc.get_freeze_count(), after[0], after[1:] == before[1:])
"""


def test_settle_freezes_what_start_up_built_and_raises_the_young_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    frozen, young, rest_kept = int(out[0]), int(out[1]), out[2]
    assert frozen > 50_000  # the imported modules' objects, at least
    assert young == YOUNG_THRESHOLD
    assert rest_kept == "True"
