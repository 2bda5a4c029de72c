"""``bench/results/summary.md``: every target of the bench as a ratio first.

Absolute figures move with the machine (a busier or slower machine halves them), so each
row leads with a ratio to a ceiling or a peer measured in the SAME run (bare Starlette,
pgbench, asyncpg alone, django-notifications, socket.io ...), named in the cell, then the
target for that ratio and the verdict, then the machine's own figure for the reference,
then Clarion's absolute figure, marked † when it depends on the machine. A figure that is
missing from the results is "not measured", never a number made up.

:func:`build_summary` takes the results as dicts (one per ``results/<name>.json``), so it
can be checked without files; :func:`write_summary` loads them and writes the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS

NOT_MEASURED = "not measured"
MET = "met"
MISSED = "**missed**"
FILES = (
    "calibration",
    "s1_ingest",
    "s2_latency",
    "s3_fanout",
    "s4_connections",
    "s5_inbox",
    "s6_workers",
    "s7_digests",
    "s8_analytics",
    "s9_experiments",
    "s10_widget",
    "s_dashboard",
)
HEADER = (
    "| scenario | what | ratio (Clarion ÷ the reference named) | target | verdict "
    "| reference on this machine, same run | Clarion's figure († depends on the machine) |\n"
    "| --- | --- | --- | --- | --- | --- | --- |\n"
)


@dataclass(frozen=True)
class Row:
    scenario: str
    what: str
    ratio: str
    target: str
    verdict: str
    reference: str
    absolute: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.scenario,
            self.what,
            self.ratio,
            self.target,
            self.verdict,
            self.reference,
            self.absolute,
        )


def g(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...`` or None where any level is missing (a result that was not measured)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def num(v: Any) -> float | int | None:
    """A figure from a result, or None when it is missing or not a number."""
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return NOT_MEASURED
    if isinstance(v, float):
        v = f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v}{unit}"


def over(a: Any, b: Any) -> float | None:
    """a ÷ b, or None when either is missing (or b is zero)."""
    x, y = num(a), num(b)
    if x is None or y is None or y == 0:
        return None
    return x / y


def judge(value: Any, op: str, target: float) -> str:
    """``met`` / ``**missed**`` for ``value op target`` (op ``>=`` or ``<=``)."""
    v = num(value)
    if v is None:
        return NOT_MEASURED
    ok = v >= target if op == ">=" else v <= target
    return MET if ok else MISSED


def times(r: float | None, reference: str) -> str:
    """A ratio cell: ``0.32x pgbench -N``."""
    if r is None:
        return NOT_MEASURED
    shown = f"{r:,.1f}" if r >= 10 else f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"
    return f"{shown}x {reference}"


def star(text: str) -> str:
    """Mark an absolute figure as depending on the machine (not when there is none)."""
    return text if text in (NOT_MEASURED, "—") else f"{text} †"


class Table:
    """The rows of the table, and the two kinds of row it has."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(
        self,
        scenario: str,
        what: str,
        ratio: str,
        target: str,
        verdict: str,
        reference: str = "—",
        absolute: str = "—",
    ) -> None:
        self.rows.append(Row(scenario, what, ratio, target, verdict, reference, absolute))

    def ratio(
        self,
        scenario: str,
        what: str,
        value: float | None,
        reference: str,
        op: str | None,
        target: float | None,
        ref_figure: str,
        absolute: str,
    ) -> None:
        """A row whose target is a ratio (``op`` None: a ratio shown, with no target)."""
        if op is None or target is None:
            self.add(scenario, what, times(value, reference), "—", "—", ref_figure, absolute)
            return
        self.add(
            scenario,
            what,
            times(value, reference),
            f"{op} {target:g}x",
            judge(value, op, target),
            ref_figure,
            absolute,
        )


def load_results(directory: Path = RESULTS) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in FILES:
        path = directory / f"{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    table = directory / "s10_widget.md"
    if "s10_widget" not in out and table.exists():
        from bench.summary_more import s10_from_table

        out["s10_widget"] = s10_from_table(table.read_text())
    return out


def build_rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    # The scenarios' rows import this module's helpers: imported here, not at the top.
    from bench import summary_more as more
    from bench import summary_rows as rows

    t = Table()
    cal = results.get("calibration", {})
    for part in (
        rows.s1,
        rows.s2,
        rows.s3,
        rows.s4,
        rows.s5,
        rows.s6,
        rows.s7,
        rows.feature_costs,
        more.s8,
        more.s9,
        more.s10,
        more.dashboard,
    ):
        part(t, results, cal)
    return t.rows


def run_line(results: dict[str, dict[str, Any]], mode: str, commit: str, when: str) -> str:
    """The run (commit, date) and this machine's ceilings, measured in the same run."""
    cal = results.get("calibration", {})
    cap = g(cal, "starlette", "capacity")
    objective = fmt(g(cap, "objective_p99_ms") or 25, " ms")
    return (
        f"Run: commit `{commit[:12]}`, {when}, {mode} run, {fmt(g(cal, 'cpus'))} cores, "
        "everything on one machine. This machine's ceilings in the same run: "
        f"pgbench -N (8 clients) {fmt(num(g(cal, 'pgbench', 'tps')), ' TPS')}, PostgreSQL "
        f"CPU per transaction {fmt(num(g(cal, 'pgbench', 'server_cpu_us_per_tx')), ' µs')}; "
        f"bare Starlette (1 uvicorn process) {fmt(num(g(cal, 'starlette', 'ok_per_s')), ' req/s')}"
        f", CPU per request "
        f"{fmt(num(g(cal, 'starlette', 'server_cpu_us_per_request')), ' µs')}, capacity at "
        f"p99 <= {objective} {fmt(num(g(cap, 'rate_per_s')), '/s')}; bare "
        "`websockets.broadcast()` CPU per delivery "
        f"{fmt(num(g(cal, 'broadcast', 'server_cpu_us_per_delivery')), ' µs')}; Redis "
        f"PUBLISH {fmt(num(g(cal, 'redis', 'publish_per_s')), '/s')}."
    )


def other_runs(results: dict[str, dict[str, Any]], commit: str) -> str:
    """Results in the table that come from another run than this one (another commit or
    mode): the table mixes them, so it says which."""
    parts = []
    for name in FILES:
        r = results.get(name)
        if r is None or name == "calibration":
            continue
        if r.get("commit") and r.get("commit") != commit:
            parts.append(
                f"{name} (`{str(r['commit'])[:7]}`, {str(r.get('timestamp', '?'))[:16]}, "
                f"{r.get('mode', '?')})"
            )
    if not parts:
        return ""
    return "Rows from other runs: " + "; ".join(parts) + "."


def build_summary(
    results: dict[str, dict[str, Any]], mode: str, commit: str, when: str | None = None
) -> str:
    when = when or datetime.now(UTC).isoformat(timespec="minutes")
    rows = build_rows(results)
    body = "\n".join("| " + " | ".join(r.cells()) + " |" for r in rows)
    notes = other_runs(results, commit)
    return (
        f"# Clarion bench — {mode} run\n\n"
        f"{run_line(results, mode, commit, when)}\n\n"
        + (f"{notes}\n\n" if notes else "")
        + HEADER
        + body
        + "\n\n† depends on the machine: compare runs and machines by the ratio, not by this "
        "figure. Every ratio is Clarion's figure divided by the reference measured in the "
        'same run; "not measured" means the run did not produce that figure.\n'
    )


def write_summary(mode: str, commit: str, directory: Path = RESULTS) -> str:
    text = build_summary(load_results(directory), mode, commit)
    (directory / "summary.md").write_text(text)
    return text


def main() -> None:
    """Rebuild summary.md from the results on disk (after editing this module, or after a
    scenario was run on its own), naming the run the calibration in them belongs to."""
    results = load_results()
    cal = results.get("calibration", {})
    commit = str(cal.get("commit", "unknown"))
    when = str(cal.get("timestamp", ""))[:16] or None
    text = build_summary(results, str(cal.get("mode", "unknown")), commit, when)
    (RESULTS / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
