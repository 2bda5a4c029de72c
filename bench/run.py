"""Clarion's benchmark suite: ``python bench/run.py [--quick] [--only s1,s3] [--profile]``.

Runs the calibration (this machine's ceilings) and then each scenario against real
processes, writes ``bench/results/<scenario>.json`` and ``bench/results/summary.md``.
See bench/README.md for what each scenario measures and what limits it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    calibrate,
    s1_ingest,
    s5_inbox,
    s6_workers,
    s7_digests,
    s8_analytics,
    s9_experiments,
    s10_widget,
    s_dashboard,
    s_live,
)
from bench.common import RESULTS, Procs, git_commit, write_result
from bench.summary import write_summary

SCENARIOS = {
    "calibration": calibrate.run,
    "s1_ingest": s1_ingest.run,
    "s2_latency": s_live.s2,
    "s3_fanout": s_live.s3,
    "s4_connections": s_live.s4,
    "s5_inbox": s5_inbox.run,
    "s6_workers": s6_workers.run,
    "s7_digests": s7_digests.run,
    "s8_analytics": s8_analytics.run,
    "s9_experiments": s9_experiments.run,
    "s10_widget": s10_widget.run,
    "s_dashboard": s_dashboard.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, same code paths")
    parser.add_argument(
        "--only", default="", help="comma-separated prefixes, e.g. s1,s3 (calibration always)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the server meanwhile")
    args = parser.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    procs = Procs()
    mode = "quick" if args.quick else "full"
    failures = 0
    started = time.monotonic()
    try:
        for name, fn in SCENARIOS.items():
            if wanted and name != "calibration" and not any(name.startswith(w) for w in wanted):
                continue
            t0 = time.monotonic()
            print(f"== {name} ({mode})", flush=True)
            try:
                data = fn(procs, args.quick, args.profile)
                data["mode"] = mode
                data["wall_seconds"] = round(time.monotonic() - t0, 1)
                write_result(name, data)
                brief = {k: v for k, v in data.items() if k != "profile"}
                print(json.dumps(brief, default=str)[:1500], flush=True)
            except Exception:
                failures += 1
                traceback.print_exc()
                write_result(name, {"mode": mode, "error": traceback.format_exc()[-2000:]})
            finally:
                procs.stop_all()
    finally:
        procs.stop_all()
    summary = write_summary(mode, git_commit())
    print(summary)
    print(f"bench finished in {time.monotonic() - started:.0f} s, {failures} scenario(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
