"""Known vulnerabilities in the installed dependencies, by ``pip-audit``, judged by the
policy in docs/security.md: every finding blocks a release unless
``security/pip-audit-ignore.toml`` accepts it with a reason and an expiry date that has
not passed; an audit that could not check every dependency is no pass either.

pip-audit asks PyPI's JSON API for each installed version. Where that API cannot be
reached (a network without it), the audit test skips saying so, and fails under CI=true
like any missing service. The policy itself (ignore file, expiry, aliases) is checked
without the network.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_missing
from tests.faults.nodes_support import ROOT, write_result

IGNORE_FILE = ROOT / "security" / "pip-audit-ignore.toml"
MAX_ACCEPTANCE = dt.timedelta(days=90)
FIELDS = ("id", "package", "reason", "expires")


@dataclass(frozen=True)
class Accepted:
    id: str
    package: str
    reason: str
    expires: dt.date


def load_ignores(path: Path, today: dt.date) -> tuple[list[Accepted], list[str]]:
    """The entries of the ignore file and what is wrong with it (empty when valid)."""
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    entries: list[Accepted] = []
    problems: list[str] = []
    unknown = set(data) - {"ignore"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}: only [[ignore]] tables")
    for n, raw in enumerate(data.get("ignore", []), start=1):
        missing = [f for f in FIELDS if not raw.get(f)]
        if missing:
            problems.append(f"entry {n}: missing {missing}")
            continue
        extra = set(raw) - set(FIELDS)
        if extra:
            problems.append(f"entry {n}: unknown fields {sorted(extra)}")
        expires = raw["expires"]
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            problems.append(f"entry {n} ({raw['id']}): expires must be a TOML date")
            continue
        if expires > today + MAX_ACCEPTANCE:
            problems.append(
                f"entry {n} ({raw['id']}): expires {expires} is more than "
                f"{MAX_ACCEPTANCE.days} days ahead"
            )
        if len(str(raw["reason"]).strip()) < 20:
            problems.append(f"entry {n} ({raw['id']}): the reason must say why (20+ chars)")
        entries.append(
            Accepted(str(raw["id"]), str(raw["package"]).lower(), str(raw["reason"]), expires)
        )
    return entries, problems


def judge(report: dict[str, Any], accepted: list[Accepted], today: dt.date) -> dict[str, Any]:
    """Split pip-audit's JSON report into blocking, accepted and expired findings."""
    blocking: list[dict[str, Any]] = []
    ignored: list[dict[str, Any]] = []
    expired: list[dict[str, Any]] = []
    used: set[str] = set()
    for dep in report["dependencies"]:
        for vuln in dep.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            finding = {
                "package": dep["name"],
                "version": dep.get("version"),
                "id": vuln["id"],
                "aliases": sorted(vuln.get("aliases", [])),
                "fix_versions": vuln.get("fix_versions", []),
            }
            match = next(
                (a for a in accepted if a.id in ids and a.package == dep["name"].lower()), None
            )
            if match is None:
                blocking.append(finding)
            elif match.expires < today:
                expired.append({**finding, "expired": str(match.expires)})
            else:
                ignored.append({**finding, "until": str(match.expires), "reason": match.reason})
                used.add(match.id)
    return {
        "blocking": blocking,
        "ignored": ignored,
        "expired": expired,
        "unused_ignores": sorted(a.id for a in accepted if a.id not in used),
    }


def run_pip_audit(out: Path) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--local",  # this virtualenv's packages, not the system's
            "--skip-editable",  # Clarion itself is not on PyPI
            "--vulnerability-service",
            "pypi",
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--timeout",
            "30",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # exit 1 means "vulnerabilities found": the report is still complete
    if proc.returncode not in (0, 1) or not out.exists():
        raise RuntimeError(f"pip-audit failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text()), proc.stderr


@pytest.mark.faults
@pytest.mark.timeout(900)
def test_installed_dependencies_have_no_unaccepted_vulnerabilities(tmp_path: Path) -> None:
    today = dt.date.today()
    accepted, problems = load_ignores(IGNORE_FILE, today)
    assert not problems, problems
    report, _stderr = run_pip_audit(tmp_path / "audit.json")
    deps = report["dependencies"]
    skipped = [d for d in deps if "skip_reason" in d]
    verdict = judge(report, accepted, today)
    figures = {
        "dependencies": len(deps),
        "audited": len(deps) - len(skipped),
        "skipped": [d["skip_reason"] for d in skipped],
        "findings": sum(len(d.get("vulns", [])) for d in deps),
        **verdict,
    }
    write_result("pip_audit", figures)
    if deps and len(skipped) == len(deps):
        # Not one version could be looked up: the vulnerability service is out of reach
        # (PyPI's per-version JSON API), which says nothing about the dependencies.
        service_missing("PyPI's vulnerability JSON API (pip-audit)", skipped[0]["skip_reason"])
    assert not skipped, f"the audit is incomplete: {figures['skipped']}"
    assert not verdict["expired"], f"accepted findings whose date passed: {verdict['expired']}"
    assert not verdict["blocking"], f"known vulnerabilities: {verdict['blocking']}"


# --- the policy, without the network -----------------------------------------------------


def report_with(*vulns: tuple[str, str, list[str]]) -> dict[str, Any]:
    """A pip-audit JSON report (its format) with the given (package, id, aliases)."""
    return {
        "dependencies": [
            {
                "name": package,
                "version": "1.0",
                "vulns": [{"id": vid, "aliases": aliases, "fix_versions": ["1.1"]}],
            }
            for package, vid, aliases in vulns
        ],
        "fixes": [],
    }


@pytest.mark.faults
@pytest.mark.faults_quick
def test_ignore_policy(tmp_path: Path) -> None:
    today = dt.date(2026, 12, 7)
    # the committed file is valid
    _, problems = load_ignores(IGNORE_FILE, dt.date.today())
    assert not problems, problems

    good = tmp_path / "ignore.toml"
    good.write_text(
        "[[ignore]]\n"
        'id = "CVE-2026-0001"\n'
        'package = "Jinja2"\n'
        'reason = "only reachable through the sandbox we never enable"\n'
        "expires = 2027-01-31\n"
        "[[ignore]]\n"
        'id = "GHSA-old0-0000-0000"\n'
        'package = "httpx"\n'
        'reason = "accepted last quarter until the fixed release shipped"\n'
        "expires = 2026-12-01\n"
    )
    accepted, problems = load_ignores(good, today)
    assert not problems and len(accepted) == 2
    verdict = judge(
        report_with(
            ("jinja2", "GHSA-aaaa-bbbb-cccc", ["CVE-2026-0001"]),  # accepted by its alias
            ("httpx", "GHSA-old0-0000-0000", []),  # accepted, but the date has passed
            ("orjson", "PYSEC-2026-7", []),  # not accepted at all
            ("redis", "CVE-2026-0001", []),  # the same id in another package: not accepted
        ),
        accepted,
        today,
    )
    assert [f["package"] for f in verdict["ignored"]] == ["jinja2"]
    assert [f["package"] for f in verdict["expired"]] == ["httpx"]
    assert [f["package"] for f in verdict["blocking"]] == ["orjson", "redis"]
    assert verdict["unused_ignores"] == ["GHSA-old0-0000-0000"]

    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[[ignore]]\n"
        'id = "CVE-1"\n'
        'package = "x"\n'
        "expires = 2027-01-01\n"  # no reason
        "[[ignore]]\n"
        'id = "CVE-2"\n'
        'package = "x"\n'
        'reason = "too far ahead, nobody will look again"\n'
        "expires = 2030-01-01\n"
        "[[ignore]]\n"
        'id = "CVE-3"\n'
        'package = "x"\n'
        'reason = "a time is not a date, as the file asks"\n'
        "expires = 2027-01-01T00:00:00Z\n"
    )
    _, problems = load_ignores(bad, today)
    assert len(problems) == 3, problems
    assert "missing ['reason']" in problems[0]
    assert "more than 90 days" in problems[1]
    assert "TOML date" in problems[2]
