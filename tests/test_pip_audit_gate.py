"""`make audit`'s gate (.ci/pip_audit_gate.py) on pip-audit JSON reports in pip-audit's own format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

GATE = REPO / ".ci" / "pip_audit_gate.py"
VULN = {"id": "PYSEC-2099-1", "fix_versions": ["2.0.1"], "aliases": ["CVE-2099-0001", "GHSA-aaaa-bbbb-cccc"]}
REPORT = {
    "dependencies": [
        {"name": "jinja2", "version": "2.0.0", "vulns": [VULN]},
        {"name": "requests", "version": "2.34.2", "vulns": []},
        {"name": "internal-pkg", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ],
    "fixes": [],
}


def _gate(tmp_path: Path, ignore: str, *extra: str, report: dict | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "report.json").write_text(json.dumps(report or REPORT))
    (tmp_path / "ignore").write_text(ignore)
    return subprocess.run(
        [sys.executable, str(GATE), "--report", str(tmp_path / "report.json"), "--ignore-file",
         str(tmp_path / "ignore"), "--today", "2026-12-03", *extra],
        capture_output=True, text=True, timeout=60,
    )


def test_an_unlisted_vulnerability_fails_and_names_package_id_and_fix(tmp_path: Path) -> None:
    res = _gate(tmp_path, "")
    assert res.returncode == 1
    assert "VULNERABLE jinja2 2.0.0 PYSEC-2099-1 (fix: 2.0.1; no recorded exception)" in res.stdout
    assert "2 packages audited, 1 unaccepted vulnerabilities, 1 not audited" in res.stdout


@pytest.mark.parametrize("vuln_id", ["PYSEC-2099-1", "CVE-2099-0001"])
def test_a_dated_exception_by_id_or_alias_accepts_it(tmp_path: Path, vuln_id: str) -> None:
    res = _gate(tmp_path, f"# comment\n{vuln_id} jinja2 2026-12-01 2027-03-01 template sandbox unused here\n")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "accepted jinja2 2.0.0 PYSEC-2099-1: template sandbox unused here" in res.stdout


def test_an_expired_exception_or_one_for_another_package_does_not_count(tmp_path: Path) -> None:
    expired = _gate(tmp_path, "PYSEC-2099-1 jinja2 2026-01-01 2026-06-01 old reason\n")
    assert expired.returncode == 1 and "exception expired on 2026-06-01" in expired.stdout
    other = _gate(tmp_path, "PYSEC-2099-1 requests 2026-12-01 2027-03-01 wrong package\n")
    assert other.returncode == 1 and "matched nothing" in other.stdout


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("PYSEC-2099-1 jinja2 2026-12-01", "expected 'VULN-ID PACKAGE RECORDED REVIEW-BY REASON'"),
        ("PYSEC-2099-1 jinja2 yesterday 2027-03-01 why", "dates must be YYYY-MM-DD"),
        ("PYSEC-2099-1 jinja2 2026-12-01 2026-11-01 why", "is before the recorded date"),
    ],
)
def test_a_malformed_exceptions_file_is_exit_2_naming_the_line(tmp_path: Path, line: str, message: str) -> None:
    res = _gate(tmp_path, f"\n{line}\n")
    assert res.returncode == 2 and "line 2" in res.stderr and message in res.stderr


def test_unaudited_packages_are_listed_and_fail_only_with_strict(tmp_path: Path) -> None:
    report = {"dependencies": [REPORT["dependencies"][2]], "fixes": []}
    res = _gate(tmp_path, "", report=report)
    assert res.returncode == 0 and "not audited (Dependency not found on PyPI" in res.stdout
    assert "WARNING: nothing was audited" in res.stdout
    assert _gate(tmp_path, "", "--strict", report=report).returncode == 1
